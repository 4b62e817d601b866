# SSTable writer (format in sstable.pxd and docs/format/sstable.md): entries
# arrive in internal order; data blocks are built in C buffers, cut at
# BLOCK_SIZE, lz4-compressed when that saves at least an eighth, checksummed
# and appended to the in-memory table image; builder_finish() adds the filter,
# properties and index blocks and the footer. Everything here is nogil except
# the TableBuilder wrapper.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport realloc, free
from libc.string cimport memcpy, memcmp, memset

from kvdb._core.coding cimport crc32c, put_u32, put_u64, put_varint, VARINT64_MAX_LEN
from kvdb._core.file cimport File
from kvdb._core.lsm.lz4block cimport lz4_compress, lz4_bound
from kvdb._core.lsm.merge cimport ENTRY_PUT, ENTRY_DELETE
from kvdb._core.lsm.sstable cimport (SST_DELETE, SST_PUT, SST_PUT_EXPIRES, TRAILER_SIZE, BLOCK_RAW, BLOCK_LZ4,
                                 BLOCK_TRAILER_SIZE, BLOCK_SIZE, RESTART_INTERVAL, FOOTER_SIZE, SST_VERSION,
                                 BLOOM_BITS_PER_KEY, BLOOM_PROBES, bloom_hash)

cdef const char *SST_MAGIC_C = b"kvdb-sst"


cdef int buf_reserve(Buf *b, Py_ssize_t extra) noexcept nogil:
    cdef Py_ssize_t cap
    cdef unsigned char *q
    if b.n + extra <= b.cap:
        return 0
    cap = b.cap * 2
    if cap < b.n + extra:
        cap = b.n + extra
    if cap < 256:
        cap = 256
    q = <unsigned char *>realloc(b.p, cap)
    if q == NULL:
        return -1
    b.p = q
    b.cap = cap
    return 0


cdef int buf_append(Buf *b, const void *src, Py_ssize_t n) noexcept nogil:
    if buf_reserve(b, n) < 0:
        return -1
    if n:
        memcpy(b.p + b.n, src, n)
    b.n += n
    return 0


cdef void buf_free(Buf *b) noexcept nogil:
    free(b.p)
    b.p = NULL
    b.n = b.cap = 0


cdef int block_add(Buf *data, Buf *restarts, Buf *last, int *counter, int interval,
                   const unsigned char *key, Py_ssize_t klen, const unsigned char *pre, Py_ssize_t plen,
                   const unsigned char *val, Py_ssize_t vlen) noexcept nogil:
    """Append key -> pre + val to a raw block (pre: an optional prefix of the value, the expiry)."""
    cdef Py_ssize_t shared = 0, m, unshared
    cdef unsigned char *q
    if counter[0] < interval:
        m = last.n if last.n < klen else klen
        while shared < m and last.p[shared] == key[shared]:
            shared += 1
    else:
        if buf_reserve(restarts, 4) < 0:
            return -1
        put_u32(restarts.p + restarts.n, <uint32_t>data.n)
        restarts.n += 4
        counter[0] = 0
    unshared = klen - shared
    if buf_reserve(data, 3 * VARINT64_MAX_LEN + unshared + plen + vlen) < 0 or buf_reserve(last, klen) < 0:
        return -1
    q = put_varint(data.p + data.n, shared)
    q = put_varint(q, unshared)
    q = put_varint(q, plen + vlen)
    memcpy(q, key + shared, unshared)
    q += unshared
    if plen:
        memcpy(q, pre, plen)
        q += plen
    if vlen:
        memcpy(q, val, vlen)
        q += vlen
    data.n = q - data.p
    memcpy(last.p + shared, key + shared, unshared)
    last.n = klen
    counter[0] += 1
    return 0


cdef int block_seal(Buf *data, Buf *restarts) noexcept nogil:
    """Append the restart array and its count: data now holds the finished raw block."""
    if buf_append(data, restarts.p, restarts.n) < 0 or buf_reserve(data, 4) < 0:
        return -1
    put_u32(data.p + data.n, <uint32_t>(restarts.n // 4))
    data.n += 4
    return 0


cdef void restarts_reset(Buf *restarts) noexcept nogil:
    restarts.n = 0
    if buf_reserve(restarts, 4) == 0:       # 256 bytes at least: cannot fail after the first time
        put_u32(restarts.p, 0)
        restarts.n = 4


cdef int write_block(Builder *b, const unsigned char *raw, Py_ssize_t n, bint compress,
                     uint64_t *off, uint64_t *size) noexcept nogil:
    """Append raw as one block (lz4 when it saves an eighth); its handle goes to off/size."""
    cdef Py_ssize_t got, hdr
    cdef unsigned char *q
    cdef int btype = BLOCK_RAW
    off[0] = b.out.n
    if compress and n > 64:
        if buf_reserve(&b.scratch, VARINT64_MAX_LEN + lz4_bound(n)) < 0:
            return -1
        hdr = put_varint(b.scratch.p, n) - b.scratch.p
        got = lz4_compress(raw, n, b.scratch.p + hdr, n - n // 8 - hdr)
        if got > 0 and hdr + got <= n - n // 8:
            raw = b.scratch.p
            n = hdr + got
            btype = BLOCK_LZ4
            b.compressed_blocks += 1
    if buf_reserve(&b.out, n + BLOCK_TRAILER_SIZE) < 0:
        return -1
    q = b.out.p + b.out.n
    memcpy(q, raw, n)
    q[n] = btype
    put_u32(q + n + 1, crc32c(q, n + 1))
    b.out.n += n + BLOCK_TRAILER_SIZE
    size[0] = n
    return 0


cdef int flush_data(Builder *b) noexcept nogil:
    """Cut the data block being built: write it and add its index entry."""
    cdef uint64_t off, size
    cdef unsigned char handle[2 * VARINT64_MAX_LEN]
    cdef unsigned char *q
    cdef int index_counter = 1                    # the index restarts at every entry
    if b.block_entries == 0:
        return 0
    if block_seal(&b.block, &b.restarts) < 0 or write_block(b, b.block.p, b.block.n, True, &off, &size) < 0:
        return -1
    q = put_varint(handle, off)
    q = put_varint(q, size)
    if b.index.n == 0:
        index_counter = 0                         # the first entry is the block's implicit restart 0
        b.scratch.n = 0                           # scratch serves as the index's previous key
    if block_add(&b.index, &b.index_restarts, &b.scratch, &index_counter, 1, b.last.p, b.last.n,
                 NULL, 0, handle, q - handle) < 0:
        return -1
    b.block.n = 0
    restarts_reset(&b.restarts)
    b.last.n = 0
    b.counter = 0
    b.block_entries = 0
    b.data_blocks += 1
    return 0


cdef void builder_reset(Builder *b) noexcept nogil:
    b.out.n = 0
    b.block.n = 0
    restarts_reset(&b.restarts)
    b.last.n = 0
    b.counter = 0
    b.block_entries = 0
    b.index.n = 0
    restarts_reset(&b.index_restarts)
    b.hashes.n = 0
    b.prev_user.n = 0
    b.smallest.n = 0
    b.have_prev = False
    b.scratch.n = 0
    b.entries = b.deletions = b.expiring = b.raw_bytes = b.data_blocks = b.compressed_blocks = 0
    b.min_seq = 0xFFFFFFFFFFFFFFFF
    b.max_seq = 0


cdef void builder_free(Builder *b) noexcept nogil:
    buf_free(&b.out)
    buf_free(&b.block)
    buf_free(&b.restarts)
    buf_free(&b.last)
    buf_free(&b.index)
    buf_free(&b.index_restarts)
    buf_free(&b.hashes)
    buf_free(&b.prev_user)
    buf_free(&b.smallest)
    buf_free(&b.scratch)


cdef Py_ssize_t builder_size(Builder *b) noexcept nogil:
    return b.out.n + b.block.n + b.restarts.n + 4


cdef int builder_add(Builder *b, const unsigned char *key, Py_ssize_t klen, uint64_t seq, int kind,
                     uint64_t expires, const unsigned char *val, Py_ssize_t vlen) noexcept nogil:
    cdef int sk
    cdef unsigned char pre[8]
    cdef unsigned char trailer[TRAILER_SIZE]
    cdef Py_ssize_t plen = 0
    cdef uint32_t h
    if kind == ENTRY_DELETE:
        sk = SST_DELETE
        vlen = 0
        b.deletions += 1
    elif expires:
        sk = SST_PUT_EXPIRES
        put_u64(pre, expires)
        plen = 8
        b.expiring += 1
    else:
        sk = SST_PUT
    # scratch holds the internal key: user key + trailer
    b.scratch.n = 0
    put_u64(trailer, (seq << 8) | <uint64_t>sk)
    if buf_append(&b.scratch, key, klen) < 0 or buf_append(&b.scratch, trailer, TRAILER_SIZE) < 0:
        return -1
    if block_add(&b.block, &b.restarts, &b.last, &b.counter, RESTART_INTERVAL, b.scratch.p, b.scratch.n,
                 pre, plen, val, vlen) < 0:
        return -1
    b.block_entries += 1
    if not b.have_prev or b.prev_user.n != klen or (klen and memcmp(b.prev_user.p, key, klen) != 0):
        h = bloom_hash(key, klen)
        if buf_append(&b.hashes, &h, 4) < 0:
            return -1
        b.prev_user.n = 0
        if buf_append(&b.prev_user, key, klen) < 0:
            return -1
        if not b.have_prev:
            b.smallest.n = 0
            if buf_append(&b.smallest, key, klen) < 0:
                return -1
        b.have_prev = True
    b.entries += 1
    b.raw_bytes += klen + plen + vlen
    if seq < b.min_seq:
        b.min_seq = seq
    if seq > b.max_seq:
        b.max_seq = seq
    if b.block.n + b.restarts.n + 4 >= BLOCK_SIZE:
        return flush_data(b)
    return 0


cdef int props_add_u64(Buf *blk, Buf *restarts, Buf *last, int *counter, const char *name,
                       uint64_t v) noexcept nogil:
    cdef unsigned char val[8]
    put_u64(val, v)
    return props_add(blk, restarts, last, counter, name, val, 8)


cdef int props_add(Buf *blk, Buf *restarts, Buf *last, int *counter, const char *name,
                   const unsigned char *val, Py_ssize_t vlen) noexcept nogil:
    cdef unsigned char key[64]
    cdef Py_ssize_t n = 0
    while name[n]:
        key[n] = name[n]
        n += 1
    memset(key + n, 0, TRAILER_SIZE)
    return block_add(blk, restarts, last, counter, 1, key, n + TRAILER_SIZE, NULL, 0, val, vlen)


cdef int builder_finish(Builder *b) noexcept nogil:
    cdef Py_ssize_t nkeys, j, nbytes
    cdef uint32_t nbits, h, delta, bit
    cdef int i, counter = 0
    cdef uint64_t foff, fsize, poff, psize, ioff, isize
    cdef unsigned char *bits
    cdef unsigned char *f
    if flush_data(b) < 0:
        return -1
    # bloom filter over the distinct user keys, built in `block` (free now)
    nkeys = b.hashes.n // 4
    nbits = <uint32_t>(nkeys * BLOOM_BITS_PER_KEY if nkeys * BLOOM_BITS_PER_KEY > 64 else 64)
    nbits = (nbits + 7) // 8 * 8
    nbytes = nbits // 8
    b.block.n = 0
    if buf_reserve(&b.block, nbytes + 1) < 0:
        return -1
    bits = b.block.p
    memset(bits, 0, nbytes)
    for j in range(nkeys):
        h = (<uint32_t *>b.hashes.p)[j]
        delta = (h >> 17) | (h << 15)
        for i in range(BLOOM_PROBES):
            bit = h % nbits
            bits[bit >> 3] |= 1 << (bit & 7)
            h += delta
    bits[nbytes] = BLOOM_PROBES
    if write_block(b, bits, nbytes + 1, False, &foff, &fsize) < 0:
        return -1
    # properties, in name order
    b.block.n = 0
    restarts_reset(&b.restarts)
    b.last.n = 0
    if props_add_u64(&b.block, &b.restarts, &b.last, &counter, "data_blocks", b.data_blocks) < 0 or \
            props_add_u64(&b.block, &b.restarts, &b.last, &counter, "deletions", b.deletions) < 0 or \
            props_add_u64(&b.block, &b.restarts, &b.last, &counter, "entries", b.entries) < 0 or \
            props_add_u64(&b.block, &b.restarts, &b.last, &counter, "expiring", b.expiring) < 0 or \
            props_add(&b.block, &b.restarts, &b.last, &counter, "largest", b.prev_user.p, b.prev_user.n) < 0 or \
            props_add_u64(&b.block, &b.restarts, &b.last, &counter, "max_seq", b.max_seq) < 0 or \
            props_add_u64(&b.block, &b.restarts, &b.last, &counter, "min_seq",
                          b.min_seq if b.entries else 0) < 0 or \
            props_add_u64(&b.block, &b.restarts, &b.last, &counter, "raw_bytes", b.raw_bytes) < 0 or \
            props_add(&b.block, &b.restarts, &b.last, &counter, "smallest", b.smallest.p, b.smallest.n) < 0 or \
            block_seal(&b.block, &b.restarts) < 0 or \
            write_block(b, b.block.p, b.block.n, False, &poff, &psize) < 0:
        return -1
    if block_seal(&b.index, &b.index_restarts) < 0 or write_block(b, b.index.p, b.index.n, False, &ioff, &isize) < 0:
        return -1
    if buf_reserve(&b.out, FOOTER_SIZE) < 0:
        return -1
    f = b.out.p + b.out.n
    put_u64(f, ioff)
    put_u32(f + 8, <uint32_t>isize)
    put_u64(f + 12, foff)
    put_u32(f + 20, <uint32_t>fsize)
    put_u64(f + 24, poff)
    put_u32(f + 32, <uint32_t>psize)
    put_u32(f + 36, SST_VERSION)
    put_u32(f + 40, crc32c(f, 40))
    memcpy(f + 44, SST_MAGIC_C, 8)
    b.out.n += FOOTER_SIZE
    return 0


cdef class TableBuilder:
    """Writes one SSTable to `file`: add() entries in internal order, then finish()."""

    def __cinit__(self):
        memset(&self.b, 0, sizeof(Builder))
        builder_reset(&self.b)

    def __init__(self, File file, str path):
        self.file = file
        self.path = path

    def __dealloc__(self):
        builder_free(&self.b)

    def add(self, bytes key, uint64_t seq, int kind, uint64_t expires, value):
        """Append one entry (value None for a tombstone)."""
        cdef const unsigned char *v = NULL
        cdef Py_ssize_t vlen = 0
        if value is not None:
            v = <const unsigned char *>PyBytes_AS_STRING(value)
            vlen = PyBytes_GET_SIZE(value)
        if builder_add(&self.b, <const unsigned char *>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), seq, kind,
                       expires, v, vlen) < 0:
            raise MemoryError()

    def finish(self):
        """Write the table to the file and fsync; returns the file size."""
        cdef File f = self.file
        if builder_finish(&self.b) < 0:
            raise MemoryError()
        f.pwrite(self.b.out.p, self.b.out.n, 0)
        f.sync()
        return self.b.out.n

    @property
    def entries(self):
        return self.b.entries

    @property
    def smallest(self):
        return PyBytes_FromStringAndSize(<char *>self.b.smallest.p, self.b.smallest.n) if self.b.have_prev else None

    @property
    def largest(self):
        return PyBytes_FromStringAndSize(<char *>self.b.prev_user.p, self.b.prev_user.n) if self.b.have_prev else None
