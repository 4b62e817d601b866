# SSTables: immutable sorted files of versioned entries. Format: docs/format/sstable.md.
#
# File:   data-block* filter-block props-block index-block footer
# Block on disk (BLOCK_TRAILER_SIZE bytes after the payload):
#   payload            raw block (BLOCK_RAW) or varint(raw length) + lz4 block (BLOCK_LZ4)
#   type u8            BLOCK_RAW | BLOCK_LZ4
#   crc  u32           crc32c of payload + type
# Raw data/index block:
#   entry*             shared varint, unshared varint, vlen varint, key[shared:], value
#   restart u32 * n    offsets of entries stored with shared = 0
#   n u32
# Internal key = user key + trailer u64 (seq << 8 | kind), ordered by user key
# ascending, then seq descending. A data entry's value is, for kind
# SST_PUT_EXPIRES, the expiry (u64 wall-clock ms) then the value; for SST_PUT
# the value; for SST_DELETE empty. An index entry maps the last internal key of
# a data block to its handle: offset varint, size varint (payload bytes).
# Footer (FOOTER_SIZE bytes at the end of the file):
#   0   8   index offset      8   4   index size
#   12  8   filter offset     20  4   filter size
#   24  8   props offset      32  4   props size
#   36  4   format version (SST_VERSION)
#   40  4   crc32c of bytes [0, 40)
#   44  8   magic b"kvdb-sst"

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from kvdb._core.coding cimport get_varint
from kvdb._core.file cimport File, FS
from kvdb._core.lsm.merge cimport Source
from kvdb._core.lsm.blockcache cimport BlockCache, BLOCK_KEY_SHIFT

cdef enum:
    SST_DELETE = 0
    SST_PUT = 1
    SST_PUT_EXPIRES = 2
    TRAILER_SIZE = 8                     # seq << 8 | kind
    BLOCK_RAW = 0
    BLOCK_LZ4 = 1
    BLOCK_TRAILER_SIZE = 1 + 4           # type, crc
    BLOCK_SIZE = 4096                    # raw bytes after which a data block is cut
    RESTART_INTERVAL = 16                # entries between restart points in data blocks
    FOOTER_SIZE = 8 + 4 + 8 + 4 + 8 + 4 + 4 + 4 + 8
    SST_VERSION = 1
    BLOOM_BITS_PER_KEY = 10
    BLOOM_PROBES = 7                     # about ln 2 * bits per key


cdef inline const unsigned char *entry_header(const unsigned char *p, const unsigned char *end,
                                             uint64_t prev_len, uint64_t *shared, uint64_t *unshared,
                                             uint64_t *vlen) noexcept nogil:
    """Decode a block entry's shared, unshared and value lengths at p. Returns where its key
    bytes start, or NULL when the header is truncated or impossible: more shared bytes than
    the previous key has (prev_len), key and value running past end, or an internal key
    shorter than its trailer."""
    p = get_varint(p, end, shared)
    if p != NULL:
        p = get_varint(p, end, unshared)
    if p != NULL:
        p = get_varint(p, end, vlen)
    if p == NULL or shared[0] > prev_len or unshared[0] > <uint64_t>(end - p) \
            or vlen[0] > <uint64_t>(end - p) - unshared[0] or shared[0] + unshared[0] < TRAILER_SIZE:
        return NULL
    return p


cdef struct SeekKey:
    # The key a block search decodes into: the stack buffer, or the heap for long keys.
    unsigned char *p                     # stack or heap
    unsigned char *heap                  # malloc'd (NULL while the stack buffer suffices); the caller frees it
    Py_ssize_t n
    Py_ssize_t cap
    unsigned char stack[256]

cdef int ikey_cmp(const unsigned char *a, Py_ssize_t alen, const unsigned char *b, Py_ssize_t blen) noexcept nogil
cdef uint32_t bloom_hash(const unsigned char *k, Py_ssize_t n) noexcept nogil

cdef inline uint32_t bloom_hash_of(uint32_t crc) noexcept nogil:
    """The bloom filters' hash of a key whose crc32c is crc (one crc serves every table)."""
    return crc ^ 0x5bd1e995
cdef bytes make_ikey(bytes key, uint64_t seq, int kind)
cdef int block_seek(const unsigned char *d, Py_ssize_t n, const unsigned char *t, Py_ssize_t tn,
                    SeekKey *k, const unsigned char **val, Py_ssize_t *vlen) noexcept nogil


cdef class TableCache:
    # The bounded set of open table files, shared by every table of a database: an LRU of
    # File objects keyed by table number. An evicted file is closed once no read that took it
    # still holds it (its File object goes); its Table reopens it on demand. With keep_open
    # nothing is evicted: a file is closed only by drop(), when its Table is gone. GIL-protected.
    cdef FS fs                           # constant
    cdef object lru                      # OrderedDict table number -> File, least recently used first
    cdef readonly Py_ssize_t capacity    # files kept open at most (>= 1); constant
    cdef readonly bint keep_open         # never evict (a read-only open following the primary: a
                                         # closed table file may be gone, deleted by the primary); constant
    cdef public uint64_t hits, misses, evictions

    cdef File get_file(self, uint64_t number, str path)
    cdef int put_file(self, uint64_t number, File f) except -1


cdef class Table:
    # Constant after open, except the counters.
    cdef File file                       # the open file when there is no table cache (else None)
    cdef TableCache tcache               # where the open file lives (None: `file` is kept open)
    cdef readonly str path
    cdef readonly uint64_t number        # file number (NNNNNN.sst)
    cdef readonly uint64_t file_size
    cdef BlockCache cache
    cdef bytes index_raw                 # the raw index block (searched in C by get())
    cdef uint64_t index_offset           # its offset in the file
    cdef list index_keys                 # last internal key of each data block
    cdef list index_offs                 # its offset
    cdef list index_sizes                # its payload size
    cdef bytes filter                    # bloom bits
    cdef uint32_t filter_bits
    cdef int probes
    cdef readonly dict props             # entries, deletions, expiring, min_seq, max_seq, ...
    cdef readonly bytes smallest         # smallest user key
    cdef readonly bytes largest          # largest user key
    cdef public uint64_t bloom_checks, bloom_negatives, bloom_false_positives
    cdef const unsigned char *map        # the file mapped read-only (read_path="mmap" on a real file), or
                                         # NULL: blocks are read with pread; unmapped in __dealloc__
    cdef object __weakref__              # the engine removes the file when the last reference goes

    cdef File open_file(self)
    cdef bytes read_block(self, uint64_t offset, uint64_t size, bint fill_cache)
    cdef bytes raw_block(self, uint64_t off, uint64_t size, bint fill_cache)
    cdef tuple block_at(self, Py_ssize_t b, bint fill_cache)
    cdef bint may_contain(self, uint32_t h) noexcept
    cdef Py_ssize_t find_block(self, bytes target)
    cdef bytes find_entry(self, const unsigned char *key, Py_ssize_t klen, uint32_t h, uint64_t snap_seq,
                          SeekKey *k, const unsigned char **v, Py_ssize_t *vlen)
    cpdef object get(self, bytes key, uint64_t snap_seq)
    cdef object get_hashed(self, const unsigned char *key, Py_ssize_t klen, uint32_t h, uint64_t snap_seq)
    cdef int newest_kind(self, const unsigned char *key, Py_ssize_t klen, uint32_t h) except -1


cdef class TableSource(Source):
    # Owned by one cursor (GIL). Forwards it parses the raw block entry by entry; backwards it
    # decodes the whole block (an entry's predecessor needs the prefix chain from a restart).
    cdef Table table
    cdef Py_ssize_t block                # index of the loaded data block (-1 none)
    cdef bint forward                    # the direction of the last seek
    cdef list keys                       # backwards: internal keys of the loaded block
    cdef list vals                       # backwards: raw values of the loaded block
    cdef Py_ssize_t pos                  # backwards: entry within the block
    cdef bytes raw                       # forwards: the loaded raw block
    cdef Py_ssize_t off                  # forwards: offset of the next entry in raw
    cdef Py_ssize_t end                  # forwards: end of raw's entries
    cdef SeekKey k                       # forwards: the current internal key (prefix-decoded)
    cdef bint fill_cache                 # compactions read around the cache

    cdef int load_block(self, Py_ssize_t b) except -1
    cdef int load(self) except -1
    cdef int load_raw(self, Py_ssize_t b) except -1
    cdef int set_entry(self, const unsigned char *v, Py_ssize_t vlen) except -1
    cdef int set_current(self, const unsigned char *ik, Py_ssize_t n, const unsigned char *v,
                         Py_ssize_t vlen) except -1
    cdef int next_forward(self) except -1
