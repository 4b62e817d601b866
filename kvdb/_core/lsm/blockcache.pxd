# The LSM's block cache: raw data blocks (checked, decompressed, as bytes)
# shared by every table of a database, bounded by bytes, keyed by
# block_key = table number << BLOCK_KEY_SHIFT | block offset.
#
# A chained hash table in C (no Python object per lookup) with CLOCK eviction:
# a hit sets the entry's reference bit; an insert past the capacity sweeps the
# hand over the entries, clearing set bits and evicting the first entry whose
# bit is clear. CLOCK approximates LRU (a block read again soon survives one
# sweep) without moving anything on a hit.
#
# Invariants (tests name them by number):
#   E1. `used` is the sum over cached blocks of len(block) + BLOCK_CACHE_OVERHEAD,
#       and after every insert used <= capacity, unless the one block inserted
#       alone exceeds it (then it is not kept).
#   E2. A key maps to at most one block, and a lookup returns exactly the bytes
#       inserted under that key (until the entry is evicted or its table dropped).
# All of it is guarded by the GIL: every method runs with it held, and none
# calls back into Python between a lookup and its use of the table.

from cpython.ref cimport PyObject
from libc.stdint cimport uint8_t, int32_t, uint64_t

cdef enum:
    BLOCK_KEY_SHIFT = 40                 # block cache key: table number << BLOCK_KEY_SHIFT | block offset
    BLOCK_CACHE_OVERHEAD = 96            # bytes a cached block costs beyond its length (object header, entry, bucket)

cdef struct CacheEntry:
    uint64_t key                         # block key (meaningful while block != NULL)
    PyObject *block                      # an owned reference to the bytes, or NULL: a free entry
    int32_t next                         # next entry in the same bucket's chain, or the next free entry; -1 ends
    uint8_t ref                          # CLOCK reference bit: set by a hit, cleared by the hand

cdef class BlockCache:
    cdef CacheEntry *entries             # malloc'd; [0, nentries) in use or on the free list
    cdef Py_ssize_t nentries             # entries ever handed out (the hand's range)
    cdef Py_ssize_t cap_entries          # allocated entries
    cdef int32_t free_head               # first free entry, -1 none
    cdef int32_t *buckets                # malloc'd; chain heads, -1 empty; a power of two of them
    cdef Py_ssize_t nbuckets
    cdef Py_ssize_t count                # blocks cached
    cdef Py_ssize_t hand                 # CLOCK hand: next entry the sweep looks at
    cdef readonly Py_ssize_t capacity    # bytes; constant
    cdef readonly Py_ssize_t used        # bytes held (E1)
    cdef public uint64_t hits, misses

    cdef object get_block(self, uint64_t key)
    cdef int put_block(self, uint64_t key, bytes block) except -1
    cdef int32_t find(self, uint64_t key) noexcept
    cdef int unlink(self, int32_t i) except -1
    cdef int grow(self) except -1
    cdef int evict_one(self) except -1
