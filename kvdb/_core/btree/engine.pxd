# The B+Tree engine: the Engine contract (kvdb/_core/engine.pxd) over a copy-on-write B+Tree
# (tree.pxd) in one page file (pager.pxd) and one log file. Formats: docs/format/pages.md,
# docs/format/wal.md.

from libc.stdint cimport uint32_t, uint64_t
from kvdb._core.engine cimport Engine
from kvdb._core.btree.pager cimport Pager
from kvdb._core.btree.tree cimport BTree


cdef class BTreeEngine(Engine):
    cdef Pager pager                     # the data file's pages; constant
    cdef BTree tree                      # contents guarded by the writer lock
    cdef uint32_t page_size              # bytes per page asked for at creation; constant
    cdef Py_ssize_t cache_size           # bytes of clean pages kept in memory; constant
    cdef uint64_t checkpoint_size        # log bytes that trigger a checkpoint; constant
    cdef Py_ssize_t dirty_limit          # dirty pages that trigger a checkpoint; constant
    cdef object recovery                 # what recovery at open dropped (a torn tail, W2), or None; constant

    cdef int checkpoint_locked(self, bint mirror) except -1
