# The memtable: a skiplist in C over an arena, holding sequence-numbered
# entries (puts and tombstones) in internal order (user key ascending, seq
# descending). Written by one committer at a time under the database's writer
# lock, read by any thread under the GIL; nodes are never removed or changed
# once linked, so a reader never sees a half-written entry (an insert runs
# with the GIL held from allocation to the last link). The whole memtable is
# dropped at once when nothing refers to it any more (after its flush).

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from kvdb._core.lsm.merge cimport Source

cdef enum:
    MEM_MAX_HEIGHT = 12
    MEM_BRANCHING = 4                # a node reaches the next level with probability 1/4
    ARENA_BLOCK = 64 * 1024          # bytes per arena block; larger entries get a block of their own
    # What a source holds for a key (add(), newest_kind(); the tree's count of keys, L4)
    MEM_ABSENT = 0                   # no version of the key
    MEM_PUT = 1                      # the newest version is a put
    MEM_DELETE = 2                   # the newest version is a tombstone
    MEM_FILTER_MIN_BITS = 1 << 12    # the key filter's size bounds (bits, powers of two)
    MEM_FILTER_MAX_BITS = 1 << 24

cdef struct MemNode:
    uint64_t seq
    uint64_t expires                 # wall-clock ms, 0 = never
    uint32_t klen
    uint32_t vlen
    uint8_t kind                     # ENTRY_PUT / ENTRY_DELETE
    uint8_t height
    unsigned char *key               # klen bytes inside the same arena allocation
    unsigned char *value             # vlen bytes right after the key
    MemNode *next[MEM_MAX_HEIGHT]    # only `height` slots are allocated

cdef struct Arena:
    char **blocks                    # malloc'd blocks
    Py_ssize_t nblocks
    Py_ssize_t cap_blocks
    char *ptr                        # free space in the current block
    Py_ssize_t left
    Py_ssize_t used                  # bytes handed out to entries

cdef class Memtable:
    cdef Arena arena                 # owned; freed in __dealloc__
    cdef MemNode *head               # sentinel of full height
    cdef MemNode *tail[MEM_MAX_HEIGHT]   # last node of each level (head while the level is empty);
                                     # used and kept by add() only, so an append skips the descent
    cdef int height                  # levels in use
    cdef uint64_t rnd                # xorshift state for node heights
    cdef readonly uint64_t count     # entries (all versions, tombstones included)
    cdef readonly uint64_t min_seq, max_seq
    cdef readonly uint64_t expiring  # entries with an expiry
    cdef readonly uint64_t log_number    # the WAL file holding these entries; constant
    cdef public bint immutable       # set when a new memtable takes the writes
    cdef public uint64_t last_seq_hint   # the database seq when it became immutable (its last commit)
    cdef uint64_t *filter            # key filter (bloom, 2 probes of crc32c(key)), or NULL when the engine
                                     # keeps no count: set by add(), read by newest_kind(), both under the
                                     # writer lock; owned, freed in __dealloc__
    cdef uint64_t filter_mask        # its bits - 1 (a power of two); constant
    cdef public object live_after    # the tree's count of keys after its last commit (set when it became
                                     # immutable; None if the tree kept none): its flush edit records it (M4)

    cdef MemNode *alloc_node(self, int height, Py_ssize_t klen, Py_ssize_t vlen) except NULL
    cdef MemNode *find_ge(self, const unsigned char *k, Py_ssize_t klen, uint64_t seq, MemNode **prev)
    cdef MemNode *find_lt_key(self, const unsigned char *k, Py_ssize_t klen)
    cdef MemNode *find_last(self)
    cdef MemNode *find_before(self, MemNode *node)
    cdef int add(self, uint64_t seq, int kind, bytes key, object value, uint64_t expires) except -1
    cdef int newest_kind(self, const unsigned char *k, Py_ssize_t klen, uint32_t h) noexcept
    cdef bint past_end(self, const unsigned char *k, Py_ssize_t klen) noexcept
    cpdef object get(self, bytes key, uint64_t snap_seq)


cdef class MemSource(Source):
    cdef Memtable mem                # keeps the arena alive
    cdef MemNode *node               # current node (NULL at the end)
    cdef int load(self) except -1
