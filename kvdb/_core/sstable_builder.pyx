# SSTable writer (format in sstable.pxd and docs/format/sstable.md): entries
# arrive in internal order; data blocks are cut at BLOCK_SIZE, compressed with
# lz4 when that saves at least an eighth, checksummed and written as they fill;
# finish() writes the filter, properties and index blocks and the footer, then
# fsyncs.

import lz4.block

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy

from kvdb._core.coding cimport crc32c, put_u32, put_u64, put_varint, varint_len
from kvdb._core.file cimport File
from kvdb._core.merge cimport ENTRY_PUT, ENTRY_DELETE
from kvdb._core.sstable cimport (SST_DELETE, SST_PUT, SST_PUT_EXPIRES, TRAILER_SIZE, BLOCK_RAW, BLOCK_LZ4,
                                 BLOCK_SIZE, RESTART_INTERVAL, FOOTER_SIZE, SST_VERSION, BLOOM_BITS_PER_KEY,
                                 BLOOM_PROBES, bloom_hash, make_ikey)

SST_MAGIC = b"kvdb-sst"


cdef bytes varint_bytes(uint64_t v):
    cdef unsigned char buf[10]
    cdef unsigned char *q = put_varint(buf, v)
    return PyBytes_FromStringAndSize(<char *>buf, q - buf)


cdef class BlockWriter:
    """Accumulates one raw block: prefix-compressed entries and restart points."""
    cdef bytearray buf
    cdef list restarts
    cdef int counter
    cdef int interval
    cdef bytes last
    cdef public Py_ssize_t entries

    def __init__(self, int interval):
        self.interval = interval
        self.reset()

    def reset(self):
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last = b""
        self.entries = 0

    cdef add(self, bytes key, bytes value):
        cdef Py_ssize_t shared = 0, n, m
        cdef const unsigned char *a
        cdef const unsigned char *b
        if self.counter < self.interval:
            a = <const unsigned char *>PyBytes_AS_STRING(self.last)
            b = <const unsigned char *>PyBytes_AS_STRING(key)
            m = min(PyBytes_GET_SIZE(self.last), PyBytes_GET_SIZE(key))
            while shared < m and a[shared] == b[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.counter = 0
        n = PyBytes_GET_SIZE(key) - shared
        self.buf += varint_bytes(shared)
        self.buf += varint_bytes(n)
        self.buf += varint_bytes(PyBytes_GET_SIZE(value))
        self.buf += key[shared:]
        self.buf += value
        self.last = key
        self.counter += 1
        self.entries += 1

    def size(self):
        return len(self.buf) + 4 * len(self.restarts) + 4

    cdef bytes finish(self):
        for r in self.restarts:
            self.buf += (<uint32_t>r).to_bytes(4, "little")
        self.buf += (<uint32_t>len(self.restarts)).to_bytes(4, "little")
        return bytes(self.buf)


cdef class TableBuilder:
    """Writes one SSTable to `file`; add() entries in internal order, then finish()."""
    cdef File file
    cdef readonly str path
    cdef BlockWriter data
    cdef BlockWriter index
    cdef uint64_t offset             # where the next block goes
    cdef bytes last_ikey
    cdef bytes pending_last          # last internal key of the block just written, awaiting its index entry
    cdef list hashes                 # bloom hashes of the user keys
    cdef bytes last_user_key
    cdef public bytes smallest, largest       # user keys
    cdef public uint64_t entries, deletions, expiring, min_seq, max_seq, raw_bytes, data_blocks
    cdef public uint64_t compressed_blocks

    def __init__(self, File file, str path):
        self.file = file
        self.path = path
        self.data = BlockWriter(RESTART_INTERVAL)
        self.index = BlockWriter(1)
        self.offset = 0
        self.hashes = []
        self.last_user_key = None
        self.smallest = self.largest = None
        self.min_seq = 0xFFFFFFFFFFFFFFFF
        self.max_seq = 0

    def add(self, bytes key, uint64_t seq, int kind, uint64_t expires, value):
        """Append one entry (the caller guarantees internal order)."""
        cdef int sk
        cdef bytes raw
        if kind == ENTRY_DELETE:
            sk = SST_DELETE
            raw = b""
            self.deletions += 1
        elif expires:
            sk = SST_PUT_EXPIRES
            raw = expires.to_bytes(8, "little") + value
            self.expiring += 1
        else:
            sk = SST_PUT
            raw = value
        ikey = make_ikey(key, seq, sk)
        self.data.add(ikey, raw)
        self.last_ikey = ikey
        if self.last_user_key is None or key != self.last_user_key:
            self.hashes.append(bloom_hash(<const unsigned char *>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)))
            self.last_user_key = key
        if self.smallest is None:
            self.smallest = key
        self.largest = key
        self.entries += 1
        self.raw_bytes += PyBytes_GET_SIZE(key) + PyBytes_GET_SIZE(raw)
        if seq < self.min_seq:
            self.min_seq = seq
        if seq > self.max_seq:
            self.max_seq = seq
        if self.data.size() >= BLOCK_SIZE:
            self.flush_data()

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
        off, n = self.write_block(self.data.finish(), True)
        self.index.add(self.last_ikey, varint_bytes(off) + varint_bytes(n))
        self.data.reset()
        self.data_blocks += 1

    def finish(self):
        """Write the remaining blocks and the footer, fsync; returns the file size."""
        self.flush_data()
        # bloom filter over the user keys
        cdef uint32_t nbits = max(64, len(self.hashes) * BLOOM_BITS_PER_KEY)
        nbits = (nbits + 7) // 8 * 8
        bits = bytearray(nbits // 8)
        cdef uint32_t h, delta, bit
        cdef int i
        for hv in self.hashes:
            h = hv
            delta = (h >> 17) | (h << 15)
            for i in range(BLOOM_PROBES):
                bit = h % nbits
                bits[bit >> 3] |= 1 << (bit & 7)
                h += delta
        bits.append(BLOOM_PROBES)
        foff, fsize = self.write_block(bytes(bits), False)
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
            props.add(name.encode() + bytes(TRAILER_SIZE), v)
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
