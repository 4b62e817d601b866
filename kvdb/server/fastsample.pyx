# cython: language_level=3, boundscheck=False, wraparound=False
"""select(it, skip, count, need, max_bytes, overhead): the selection-sampling loop of
setsample._fill_pool (SPOP's pool) in C. It reads the same records and calls
random.random() the same number of times as the Python loop, so a seeded run picks
the same members either way; setsample uses it when the extension is built."""
from cpython.bytes cimport PyBytes_GET_SIZE

import random

_random = random.random


def select(it, Py_ssize_t skip, Py_ssize_t count, Py_ssize_t need, Py_ssize_t max_bytes, Py_ssize_t overhead):
    """From the (key, value) records of `it` (a set's member records in order, `count`
    of them), each member (the key after its first `skip` bytes) is taken with
    probability need / left (Knuth's algorithm S): a uniformly random subset of `need`
    members, in key order. None when the members taken, counted with `overhead` bytes
    each, pass max_bytes."""
    cdef list out = []
    cdef Py_ssize_t left = count, size = 0, n
    cdef bytes k
    rand = _random
    if need <= 0:
        return out
    for item in it:
        if <double>rand() * left < need:
            k = <bytes>(<tuple>item)[0]
            n = PyBytes_GET_SIZE(k) - skip
            out.append(k[skip:])
            size += n + overhead
            if size > max_bytes:
                return None
            need -= 1
            if need == 0:
                break
        left -= 1
    return out
