# SSTable writer classes (bodies in sstable_builder.pyx; format in sstable.pxd).

from libc.stdint cimport uint64_t
from kvdb._core.file cimport File

cdef struct Buf:
    unsigned char *p
    Py_ssize_t n
    Py_ssize_t cap

cdef class BlockWriter:
    cdef Buf data                # the block being built
    cdef Buf restarts            # u32 offsets of the restart points
    cdef Buf last                # the previous key (prefix compression)
    cdef int counter             # entries since the last restart point
    cdef int interval            # entries between restart points; constant
    cdef public Py_ssize_t entries

    cpdef reset(self)
    cdef int add(self, const unsigned char *key, Py_ssize_t klen, const unsigned char *pre, Py_ssize_t plen,
                 const unsigned char *val, Py_ssize_t vlen) except -1
    cpdef Py_ssize_t size(self)
    cpdef bytes finish(self)
    cdef bytes last_key(self)

cdef class TableBuilder:
    # Owned by the one flush or compaction writing the table.
    cdef File file
    cdef readonly str path
    cdef BlockWriter data
    cdef BlockWriter index
    cdef uint64_t offset             # where the next block goes
    cdef Buf ikey                    # scratch: the internal key being added
    cdef Buf hashes                  # u32 bloom hashes of the distinct user keys
    cdef Buf prev_user               # the previous user key (distinct-key hashing)
    cdef bint have_prev
    cdef public bytes smallest, largest       # user keys
    cdef public uint64_t entries, deletions, expiring, min_seq, max_seq, raw_bytes, data_blocks
    cdef public uint64_t compressed_blocks

    cdef int add_entry(self, const unsigned char *key, Py_ssize_t klen, uint64_t seq, int kind,
                       uint64_t expires, const unsigned char *val, Py_ssize_t vlen) except -1
    cdef write_block(self, bytes raw, bint compress)
    cdef flush_data(self)
