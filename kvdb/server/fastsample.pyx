# cython: language_level=3, boundscheck=False, wraparound=False
"""The loops of setsample._fill_pool (SPOP's pool) in C: select(), the selection
sampling over the set's records, and shuffle(), random.shuffle. They make the same
random calls as the Python code, so a seeded run picks and orders the same members
either way; setsample uses them when the extension is built."""
from cpython.bytes cimport PyBytes_GET_SIZE

import random

_random = random.random
_getrandbits = random.getrandbits


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


def shuffle(list x):
    """random.shuffle(x) in C: the same getrandbits() calls, so the same order for the
    same seed (Python 3.11's Random.shuffle with _randbelow_with_getrandbits)."""
    cdef Py_ssize_t i, j, n = len(x)
    cdef int k
    cdef unsigned long long bound
    getrandbits = _getrandbits
    for i in range(n - 1, 0, -1):
        bound = <unsigned long long>(i + 1)
        k = 0
        while (bound >> k) != 0:
            k += 1                     # (i + 1).bit_length()
        j = getrandbits(k)
        while j >= i + 1:
            j = getrandbits(k)
        x[i], x[j] = x[j], x[i]
