# The LSM engine (see the top of lsm/tree.pyx for its state, locks and invariants
# L1-L3; formats in docs/format/sstable.md and docs/format/manifest.md).

from libc.stdint cimport uint64_t
from kvdb._core.file cimport FS
from kvdb._core.lsm.memtable cimport Memtable, MEM_PUT
from kvdb._core.lsm.blockcache cimport BlockCache
from kvdb._core.lsm.sstable cimport TableCache

cdef inline int live_delta(int before, bint put) noexcept:
    """How one op changes the count of keys (L4): `before` is what the key's newest version was
    (MEM_ABSENT, MEM_PUT or MEM_DELETE), `put` whether the op is a put (else a delete)."""
    if put:
        return 0 if before == MEM_PUT else 1
    return -1 if before == MEM_PUT else 0


cdef class LsmTree:
    cdef FS fs                           # constant
    cdef readonly str path               # constant
    cdef readonly BlockCache cache       # constant
    cdef readonly TableCache tables      # open table files, bounded; constant
    cdef readonly bint map_reads         # read_path="mmap": tables read blocks from a map of their file; constant
    cdef public object current           # (mem, imms, levels): replaced whole under the writer lock
    cdef object manifest                 # ManifestWriter (maint + writer lock)
    cdef public uint64_t next_file       # next file number (writer lock)
    cdef readonly uint64_t log_number    # oldest WAL still needed
    cdef readonly uint64_t flushed_seq   # every commit up to it is in the tables
    cdef readonly uint64_t live          # keys stored at the last commit applied, expired or not, when
                                         # `counted` (L4; writer lock)
    cdef readonly bint counted           # `live` is exact: set by load() from the manifest (M4) or by
                                         # count_all(); never with key_count="scan", nor in a read-only
                                         # open of a database whose manifest holds no count
    cdef bytes tables_largest            # the largest key in any table of `largest_of`, or None (set with
    cdef object largest_of               # `current` by set_current(): the levels list it was computed for;
                                         # kind_below's shortcut for keys written in order)
    cdef readonly bint count_keys        # key_count="exact": keep `live` (and count once at open if the
                                         # manifest has no count); constant
    cdef public Py_ssize_t memtable_size     # bytes of arena after which the memtable is switched
    cdef public Py_ssize_t target_file_size  # bytes per compaction output table
    cdef public Py_ssize_t level1_bytes      # level 1 size limit; level n: level1_bytes * 10^(n-1)
    cdef public object maint             # threading.RLock: one flush or compaction at a time
    cdef public object flush_hook        # callable flushing waiting memtables (set by the database); constant after open
    cdef list compact_pointer            # per level: the largest key of the last file compacted from it
    # counters (GIL)
    cdef public uint64_t bytes_flushed, bytes_compacted, bytes_compaction_read, flushes, compactions
    cdef public uint64_t trivial_moves, slowdowns, stalls
    cdef public double stall_seconds
    cdef public double build_seconds     # time flushes and compactions spent merging and building (GIL released)
    cdef public list last_build_windows  # [(start, end)] monotonic times of the last build's GIL-free stretches
    cdef public uint64_t gone_bloom_checks, gone_bloom_negatives, gone_bloom_fp

    cpdef uint64_t new_file_number(self)
    cpdef object get_entry(self, uint64_t seq, bytes key)
    cpdef object get(self, uint64_t seq, bytes key, uint64_t now)
    cpdef object get_in(self, tuple cur, uint64_t seq, bytes key, uint64_t now)
    cdef object entry_in(self, tuple cur, uint64_t seq, bytes key)
    cpdef int apply(self, list ops, uint64_t seq) except -1
    cpdef int apply_pairs(self, list keys, list values, uint64_t seq) except -1
    cdef int count_op(self, tuple cur, bytes key, int before, bint put) except -1
    cpdef uint64_t count_at(self, uint64_t seq) except? 0
    cpdef Py_ssize_t filter_bytes(self)
    cdef int kind_below(self, tuple cur, bytes key) except -1
    cdef int set_current(self, Memtable mem, list imms, list levels) except -1
    cpdef int write_pressure(self)
    cdef object level_source(self, list files)
