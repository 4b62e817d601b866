# SSTable writer (format in sstable.pxd and docs/format/sstable.md): entries
# arrive in internal order; data blocks are built in C buffers, cut at
# BLOCK_SIZE, compressed with lz4 when that saves at least an eighth,
# checksummed and written as they fill; finish() writes the filter, properties
# and index blocks and the footer, then fsyncs.

import lz4.block

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy

from kvdb._core.coding cimport crc32c, put_u32, put_u64, put_varint, varint_len
from kvdb._core.file cimport File
from kvdb._core.merge cimport ENTRY_PUT, ENTRY_DELETE
from kvdb._core.memtable cimport Memtable, MemNode
from kvdb._core.sstable cimport (SST_DELETE, SST_PUT, SST_PUT_EXPIRES, TRAILER_SIZE, BLOCK_RAW, BLOCK_LZ4,
                                 BLOCK_SIZE, RESTART_INTERVAL, FOOTER_SIZE, SST_VERSION, BLOOM_BITS_PER_KEY,
                                 BLOOM_PROBES, bloom_hash, make_ikey)

SST_MAGIC = b"kvdb-sst"


cdef int buf_reserve(Buf *b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap
    cdef unsigned char *q
    if b.n + extra <= b.cap:
        return 0
    cap = max(b.cap * 2, b.n + extra, 256)
    q = <unsigned char *>realloc(b.p, cap)
    if q == NULL:
        raise MemoryError()
    b.p = q
    b.cap = cap
    return 0


cdef bytes varint_bytes(uint64_t v):
    cdef unsigned char buf[10]
    cdef unsigned char *q = put_varint(buf, v)
    return PyBytes_FromStringAndSize(<char *>buf, q - buf)


cdef class BlockWriter:
    """One raw block: prefix-compressed entries and restart points, in C buffers."""

    def __cinit__(self, int interval):
        self.interval = interval
        self.reset()

    def __dealloc__(self):
        free(self.data.p)
        free(self.restarts.p)
        free(self.last.p)

    cpdef reset(self):
        self.data.n = 0
        self.restarts.n = 0
        self.last.n = 0
        self.counter = 0
        self.entries = 0
        buf_reserve(&self.restarts, 4)
        put_u32(self.restarts.p, 0)
        self.restarts.n = 4

    cdef int add(self, const unsigned char *key, Py_ssize_t klen, const unsigned char *pre, Py_ssize_t plen,
                 const unsigned char *val, Py_ssize_t vlen) except -1:
        """Append key -> pre + val (pre: an optional prefix of the value, e.g. an expiry)."""
        cdef Py_ssize_t shared = 0, m, unshared
        cdef unsigned char *q
        if self.counter < self.interval:
            m = self.last.n if self.last.n < klen else klen
            while shared < m and self.last.p[shared] == key[shared]:
                shared += 1
        else:
            buf_reserve(&self.restarts, 4)
            put_u32(self.restarts.p + self.restarts.n, <uint32_t>self.data.n)
            self.restarts.n += 4
            self.counter = 0
        unshared = klen - shared
        buf_reserve(&self.data, 30 + unshared + plen + vlen)
        q = put_varint(self.data.p + self.data.n, shared)
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
        self.data.n = q - self.data.p
        buf_reserve(&self.last, klen)
        memcpy(self.last.p + shared, key + shared, unshared)
        self.last.n = klen
        self.counter += 1
        self.entries += 1
        return 0

    def add_bytes(self, bytes key, bytes value):
        self.add(<const unsigned char *>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), NULL, 0,
                 <const unsigned char *>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))

    cpdef Py_ssize_t size(self):
        return self.data.n + self.restarts.n + 4

    cpdef bytes finish(self):
        buf_reserve(&self.data, self.restarts.n + 4)
        memcpy(self.data.p + self.data.n, self.restarts.p, self.restarts.n)
        self.data.n += self.restarts.n
        put_u32(self.data.p + self.data.n, <uint32_t>(self.restarts.n // 4))
        self.data.n += 4
        return PyBytes_FromStringAndSize(<char *>self.data.p, self.data.n)

    cdef bytes last_key(self):
        return PyBytes_FromStringAndSize(<char *>self.last.p, self.last.n)


cdef class TableBuilder:
    """Writes one SSTable to `file`; add() entries in internal order, then finish()."""

    def __init__(self, File file, str path):
        self.file = file
        self.path = path
        self.data = BlockWriter(RESTART_INTERVAL)
        self.index = BlockWriter(1)
        self.offset = 0
        self.smallest = self.largest = None
        self.min_seq = 0xFFFFFFFFFFFFFFFF
        self.max_seq = 0

    def __dealloc__(self):
        free(self.ikey.p)
        free(self.hashes.p)
        free(self.prev_user.p)

    cdef int add_entry(self, const unsigned char *key, Py_ssize_t klen, uint64_t seq, int kind,
                       uint64_t expires, const unsigned char *val, Py_ssize_t vlen) except -1:
        """Append one entry (the caller guarantees internal order)."""
        cdef int sk
        cdef unsigned char pre[8]
        cdef Py_ssize_t plen = 0
        cdef bint same
        if kind == ENTRY_DELETE:
            sk = SST_DELETE
            vlen = 0
            self.deletions += 1
        elif expires:
            sk = SST_PUT_EXPIRES
            put_u64(pre, expires)
            plen = 8
            self.expiring += 1
        else:
            sk = SST_PUT
        buf_reserve(&self.ikey, klen + TRAILER_SIZE)
        memcpy(self.ikey.p, key, klen)
        put_u64(self.ikey.p + klen, (seq << 8) | <uint64_t>sk)
        self.ikey.n = klen + TRAILER_SIZE
        self.data.add(self.ikey.p, self.ikey.n, pre, plen, val, vlen)
        same = self.have_prev and self.prev_user.n == klen and \
            (klen == 0 or memcmp_eq(self.prev_user.p, key, klen))
        if not same:
            buf_reserve(&self.hashes, 4)
            put_u32(self.hashes.p + self.hashes.n, bloom_hash(key, klen))
            self.hashes.n += 4
            buf_reserve(&self.prev_user, klen)
            memcpy(self.prev_user.p, key, klen)
            self.prev_user.n = klen
            if not self.have_prev:
                self.smallest = PyBytes_FromStringAndSize(<const char *>key, klen)
            self.have_prev = True
        self.entries += 1
        self.raw_bytes += klen + plen + vlen
        if seq < self.min_seq:
            self.min_seq = seq
        if seq > self.max_seq:
            self.max_seq = seq
        if self.data.size() >= BLOCK_SIZE:
            self.flush_data()
        return 0

    def add(self, bytes key, uint64_t seq, int kind, uint64_t expires, value):
        """Append one entry (Python-level; value None for a tombstone)."""
        if value is None:
            self.add_entry(<const unsigned char *>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), seq, kind,
                           expires, NULL, 0)
        else:
            self.add_entry(<const unsigned char *>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), seq, kind,
                           expires, <const unsigned char *>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))

    def add_memtable(self, Memtable mem, list snaps):
        """Add a whole memtable (a flush), walking its skiplist in C: per key, the newest version
        of each snapshot stripe (tombstones are kept: older versions may sit in the tables)."""
        cdef Py_ssize_t n = len(snaps), i, lo, hi, mid
        cdef uint64_t *s = <uint64_t *>malloc((n + 1) * sizeof(uint64_t))
        cdef MemNode *x = mem.head.next[0]
        cdef MemNode *prev = NULL
        cdef Py_ssize_t last_stripe = -1
        if s == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                s[i] = snaps[i]
            while x != NULL:
                if prev == NULL or prev.klen != x.klen or not memcmp_eq(prev.key, x.key, x.klen):
                    last_stripe = -1
                lo = 0
                hi = n
                while lo < hi:                  # first snapshot >= seq
                    mid = (lo + hi) >> 1
                    if s[mid] < x.seq:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo != last_stripe:
                    last_stripe = lo
                    self.add_entry(x.key, x.klen, x.seq, x.kind, x.expires, x.value, x.vlen)
                prev = x
                x = x.next[0]
        finally:
            free(s)

    def estimated_size(self):
        return self.offset + self.data.size()

    cdef write_block(self, bytes raw, bint compress):
        """Write raw as one block (lz4 when it pays); returns (offset, payload size)."""
        cdef uint64_t off = self.offset
        cdef bytes payload = raw
        cdef int btype = BLOCK_RAW
        if compress and len(raw) > 64:
            packed = varint_bytes(len(raw)) + lz4.block.compress(raw, store_size=False)
            if len(packed) <= len(raw) - len(raw) // 8:
                payload = packed
                btype = BLOCK_LZ4
                self.compressed_blocks += 1
        cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
        out = bytearray(n + 5)
        out[:n] = payload
        out[n] = btype
        cdef unsigned char *p = <unsigned char *>(<char *>out)
        put_u32(p + n + 1, crc32c(p, n + 1))
        self.file.write_at(off, bytes(out))
        self.offset += n + 5
        return off, n

    cdef flush_data(self):
        if self.data.entries == 0:
            return
        last = self.data.last_key()
        off, n = self.write_block(self.data.finish(), True)
        self.index.add_bytes(last, varint_bytes(off) + varint_bytes(n))
        self.data.reset()
        self.data_blocks += 1

    def finish(self):
        """Write the remaining blocks and the footer, fsync; returns the file size."""
        if self.have_prev:
            self.largest = PyBytes_FromStringAndSize(<char *>self.prev_user.p, self.prev_user.n)
        self.flush_data()
        # bloom filter over the user keys
        cdef Py_ssize_t nkeys = self.hashes.n // 4, j
        cdef uint32_t nbits = max(64, nkeys * BLOOM_BITS_PER_KEY)
        nbits = (nbits + 7) // 8 * 8
        cdef bytes bits = PyBytes_FromStringAndSize(NULL, nbits // 8 + 1)
        cdef unsigned char *b = <unsigned char *>PyBytes_AS_STRING(bits)
        cdef uint32_t h, delta, bit
        cdef int i
        for j in range(nbits // 8):
            b[j] = 0
        for j in range(nkeys):
            h = (<uint32_t *>self.hashes.p)[j]
            delta = (h >> 17) | (h << 15)
            for i in range(BLOOM_PROBES):
                bit = h % nbits
                b[bit >> 3] |= 1 << (bit & 7)
                h += delta
        b[nbits // 8] = BLOOM_PROBES
        foff, fsize = self.write_block(bits, False)
        props = BlockWriter(1)
        values = {
            "data_blocks": self.data_blocks, "deletions": self.deletions, "entries": self.entries,
            "expiring": self.expiring, "largest": None, "max_seq": self.max_seq,
            "min_seq": self.min_seq if self.entries else 0, "raw_bytes": self.raw_bytes, "smallest": None,
        }
        for name in sorted(values):
            if name == "largest":
                v = self.largest or b""
            elif name == "smallest":
                v = self.smallest or b""
            else:
                v = (<uint64_t>values[name]).to_bytes(8, "little")
            props.add_bytes(name.encode() + bytes(TRAILER_SIZE), v)
        poff, psize = self.write_block(props.finish(), False)
        ioff, isize = self.write_block(self.index.finish(), False)
        footer = bytearray(FOOTER_SIZE)
        cdef unsigned char *f = <unsigned char *>(<char *>footer)
        put_u64(f, ioff)
        put_u32(f + 8, isize)
        put_u64(f + 12, foff)
        put_u32(f + 20, fsize)
        put_u64(f + 24, poff)
        put_u32(f + 32, psize)
        put_u32(f + 36, SST_VERSION)
        put_u32(f + 40, crc32c(f, 40))
        footer[44:52] = SST_MAGIC
        self.file.write_at(self.offset, bytes(footer))
        self.offset += FOOTER_SIZE
        self.file.sync()
        return self.offset


cdef inline bint memcmp_eq(const unsigned char *a, const unsigned char *b, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if a[i] != b[i]:
            return False
    return True
