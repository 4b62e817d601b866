# The LSM engine: the Engine contract (kvdb/_core/engine.pxd) over an LSM tree (tree.pxd: memtables,
# leveled tables, manifest) and a chain of log files, one per memtable. Formats:
# docs/format/sstable.md, docs/format/manifest.md, docs/format/wal.md.

from libc.stdint cimport uint64_t
from kvdb._core.engine cimport Engine
from kvdb._core.lsm.tree cimport LsmTree
from kvdb._core.lsm.follower cimport Follower


cdef class LsmEngine(Engine):
    cdef readonly LsmTree tree           # memtables, levels, manifest; constant
    cdef uint64_t wal_number             # number of the log file taking commits (writer lock)
    cdef dict old_wals                   # number -> Wal of files whose memtable awaits its flush (writer lock)
    cdef bint full                       # the last commit filled the memtable (writer lock)
    cdef Py_ssize_t memtable_size        # options, as given; constant
    cdef Py_ssize_t cache_size
    cdef Py_ssize_t sstable_size
    cdef Py_ssize_t level1_size
    cdef bint count_keys                 # key_count="exact": the tree keeps the count of keys (L4)
    cdef object max_open_tables
    cdef bint map_reads                  # read_path="mmap": tables read blocks from a map of their file
    cdef object recovery                 # what recovery at open dropped (a torn tail, W2), or None
    cdef Follower follower               # a read-only open: follows the primary (follower.pyx); else None; constant

    cdef int switch_memtable_locked(self) except -1
    cdef int flush_all(self) except -1
