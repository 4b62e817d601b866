# Containers the cyclic garbage collector need not watch.
#
# Catching up with other processes decodes every record they commit into a list of
# (key, value, expires) tuples, and keeps the keys of each in Database.recent while
# transactions are open: a few tuples and lists per foreign commit. Left tracked, they
# trigger a young collection every few hundred commits and, once some outlive it, full
# collections of the whole heap (measured: 5 to 8 per 3 s per process, 10 to 40 ms each,
# with four processes deleting from one kvdb.Cache). A container that holds only bytes,
# ints and None can be in no reference cycle, so reference counting alone frees it.

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void *op)


cdef inline object untracked(object container):
    """`container` (a new tuple or list that holds, and will only ever hold, bytes, ints,
    None and other untracked containers), no longer watched by the cyclic collector."""
    PyObject_GC_UnTrack(<void *>container)
    return container


cdef inline tuple keys_committed(object seq, list ops):
    """(seq, [key of each op]): what Database.recent keeps of a commit, for validating the
    transactions open beside it; untracked (the keys are bytes)."""
    return untracked((seq, untracked([(<tuple>op)[0] for op in ops])))
