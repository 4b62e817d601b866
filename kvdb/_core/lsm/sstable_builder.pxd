# SSTable writer (bodies in sstable_builder.pyx; format in sstable.pxd and
# docs/format/sstable.md). The builder is a C struct driven by nogil functions,
# so flushes and compactions build whole tables without the GIL: the table
# image grows in memory (`out`) and is written to its file in one piece.

from libc.stdint cimport uint64_t

cdef struct Buf:
    unsigned char *p             # malloc'd bytes (NULL until first use)
    Py_ssize_t n                 # bytes in use
    Py_ssize_t cap               # bytes allocated

cdef int buf_reserve(Buf *b, Py_ssize_t extra) noexcept nogil      # 0, or -1 when out of memory
cdef int buf_append(Buf *b, const void *src, Py_ssize_t n) noexcept nogil
cdef void buf_free(Buf *b) noexcept nogil

cdef struct Builder:
    # Owned by the one flush or compaction building the table; no lock.
    Buf out                      # the table image: blocks written so far, then the footer
    Buf block                    # entries of the data block being built
    Buf restarts                 # u32 restart offsets of that block (the first is 0)
    Buf last                     # the last internal key added to that block (prefix compression)
    int counter                  # entries since the block's last restart point
    Py_ssize_t block_entries     # entries in the block being built
    Buf index                    # entries of the index block (every one a restart point)
    Buf index_restarts           # u32 offsets of those entries
    Buf hashes                   # u32 bloom hashes of the distinct user keys
    Buf prev_user                # the previous user key (distinct-key hashing; the largest at the end)
    Buf smallest                 # the first user key
    bint have_prev               # an entry was added
    Buf scratch                  # compression output and small encodings
    uint64_t entries, deletions, expiring, min_seq, max_seq, raw_bytes, data_blocks, compressed_blocks

cdef void builder_reset(Builder *b) noexcept nogil       # start a new table (keeps the buffers)
cdef void builder_free(Builder *b) noexcept nogil
cdef Py_ssize_t builder_size(Builder *b) noexcept nogil   # bytes the table would have if cut now
# Append one entry (the caller guarantees internal order); -1 when out of memory.
cdef int builder_add(Builder *b, const unsigned char *key, Py_ssize_t klen, uint64_t seq, int kind,
                     uint64_t expires, const unsigned char *val, Py_ssize_t vlen) noexcept nogil
# Write the last data block, filter, properties and index blocks and the footer into `out`.
cdef int builder_finish(Builder *b) noexcept nogil

cdef class TableBuilder:
    # A Python handle on one Builder writing one table to `file` (tests and tools).
    cdef Builder b
    cdef object file                 # File
    cdef readonly str path
