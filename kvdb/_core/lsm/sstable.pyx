# SSTable reader: footer, index, bloom filter and properties at open; data
# blocks on demand through the block cache (see sstable.pxd for the format).

from collections import OrderedDict

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcmp, memcpy
from posix.mman cimport mmap, munmap, PROT_READ, MAP_SHARED, MAP_FAILED

from kvdb._core.coding cimport crc32c, get_u32, get_u64, put_u64, get_varint
from kvdb._core.file cimport File, FS, OsFile
from kvdb._core.lsm.lz4block cimport lz4_decompress
from kvdb._core.lsm.merge cimport Source, ENTRY_PUT, ENTRY_DELETE
from kvdb._core.lsm.memtable cimport MEM_ABSENT, MEM_PUT, MEM_DELETE

from kvdb.errors import CorruptionError, IOFailureError

SST_MAGIC = b"kvdb-sst"
# The format's constants for Python readers (`kvdb check`'s raw scan); their values live in sstable.pxd.
TABLE_FORMAT_VERSION = SST_VERSION
TABLE_FOOTER_SIZE = FOOTER_SIZE
TABLE_BLOCK_TRAILER_SIZE = BLOCK_TRAILER_SIZE
TABLE_BLOCK_RAW = BLOCK_RAW
TABLE_BLOCK_LZ4 = BLOCK_LZ4


cdef int ikey_cmp(const unsigned char *a, Py_ssize_t alen, const unsigned char *b, Py_ssize_t blen) noexcept nogil:
    """Sign of a - b for internal keys: user key ascending, then seq descending."""
    cdef Py_ssize_t ua = alen - TRAILER_SIZE, ub = blen - TRAILER_SIZE
    cdef Py_ssize_t n = ua if ua < ub else ub
    cdef int r = memcmp(a, b, n)
    cdef uint64_t sa, sb
    if r:
        return 1 if r > 0 else -1
    if ua != ub:
        return 1 if ua > ub else -1
    sa = get_u64(a + ua) >> 8
    sb = get_u64(b + ub) >> 8
    return (sa < sb) - (sa > sb)


cdef uint32_t bloom_hash(const unsigned char *k, Py_ssize_t n) noexcept nogil:
    return bloom_hash_of(crc32c(k, n))


cdef bytes make_ikey(bytes key, uint64_t seq, int kind):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(key)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n + TRAILER_SIZE)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(key), n)
    put_u64(p + n, (seq << 8) | <uint64_t>kind)
    return out


def decode_block(bytes raw, str path, uint64_t offset):
    """([internal key], [value]) of a raw block; CorruptionError if malformed."""
    cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef uint32_t nrest
    cdef const unsigned char *p
    cdef const unsigned char *end
    cdef uint64_t shared, unshared, vlen
    keys = []
    vals = []
    if n < 4:
        raise CorruptionError(f"{path}: block at offset {offset} is too short", path=path, offset=offset)
    nrest = get_u32(d + n - 4)
    if nrest == 0 or <uint64_t>nrest * 4 + 4 > <uint64_t>n:
        raise CorruptionError(f"{path}: block at offset {offset} has a bad restart array", path=path, offset=offset)
    end = d + n - 4 - 4 * nrest
    p = d
    prev = b""
    while p < end:
        p = entry_header(p, end, len(prev), &shared, &unshared, &vlen)
        if p == NULL:
            raise CorruptionError(f"{path}: block at offset {offset} has a malformed entry",
                                  path=path, offset=offset)
        key = prev[:shared] + PyBytes_FromStringAndSize(<const char *>p, unshared)
        p += unshared
        keys.append(key)
        vals.append(PyBytes_FromStringAndSize(<const char *>p, vlen))
        p += vlen
        prev = key
    return keys, vals


cdef Py_ssize_t lower_bound(list keys, bytes target):
    """First i with keys[i] >= target (internal order)."""
    cdef Py_ssize_t lo = 0, hi = len(keys), mid
    cdef bytes k
    cdef const unsigned char *t = <const unsigned char *>PyBytes_AS_STRING(target)
    cdef Py_ssize_t tn = PyBytes_GET_SIZE(target)
    while lo < hi:
        mid = (lo + hi) >> 1
        k = <bytes>keys[mid]
        if ikey_cmp(<const unsigned char *>PyBytes_AS_STRING(k), PyBytes_GET_SIZE(k), t, tn) < 0:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef int key_reserve(SeekKey *k, Py_ssize_t n) noexcept nogil:
    """Room for n bytes in k (the stack buffer, else the heap); -1 when out of memory."""
    cdef unsigned char *q
    if n <= k.cap:
        return 0
    q = <unsigned char *>realloc(k.heap, n)
    if q == NULL:
        return -1
    if k.heap == NULL and k.n:
        memcpy(q, k.p, k.n)
    k.heap = q
    k.p = q
    k.cap = n
    return 0


cdef int block_seek(const unsigned char *d, Py_ssize_t n, const unsigned char *t, Py_ssize_t tn,
                    SeekKey *k, const unsigned char **val, Py_ssize_t *vlen) noexcept nogil:
    """The first entry of raw block d[0:n] whose internal key is >= t: 1 with its key in k and
    its value in val/vlen, 0 if there is none, -1 if the block is malformed (-2: out of memory).
    Binary search over the restart points, then a scan from the last one below t."""
    cdef uint32_t nrest
    cdef const unsigned char *rest
    cdef const unsigned char *p
    cdef uint64_t shared, unshared, vl
    cdef Py_ssize_t left, right, mid
    cdef uint32_t off
    if n < 4:
        return -1
    nrest = get_u32(d + n - 4)
    if nrest == 0 or <uint64_t>nrest * 4 + 4 > <uint64_t>n:
        return -1
    rest = d + n - 4 - 4 * <Py_ssize_t>nrest
    left = 0
    right = nrest - 1
    while left < right:                             # the last restart whose key is < t
        mid = (left + right + 1) >> 1
        off = get_u32(rest + 4 * mid)
        if off >= <uint32_t>(rest - d):
            return -1
        p = entry_header(d + off, rest, 0, &shared, &unshared, &vl)   # a restart shares nothing
        if p == NULL:
            return -1
        if ikey_cmp(p, unshared, t, tn) < 0:
            left = mid
        else:
            right = mid - 1
    off = get_u32(rest + 4 * left)
    if off >= <uint32_t>(rest - d) and not (off == 0 and rest == d):
        return -1
    p = d + off
    k.n = 0
    while p < rest:
        p = entry_header(p, rest, k.n, &shared, &unshared, &vl)
        if p == NULL:
            return -1
        if key_reserve(k, shared + unshared) < 0:
            return -2
        memcpy(k.p + shared, p, unshared)
        k.n = shared + unshared
        p += unshared
        if ikey_cmp(k.p, k.n, t, tn) >= 0:
            val[0] = p
            vlen[0] = vl
            return 1
        p += vl
    return 0


cdef inline void seek_key_init(SeekKey *k) noexcept nogil:
    k.p = k.stack
    k.heap = NULL
    k.n = 0
    k.cap = sizeof(k.stack)


cdef class TableCache:
    """At most `capacity` open table files (see sstable.pxd)."""

    def __init__(self, FS fs, Py_ssize_t capacity, bint keep_open=False):
        self.fs = fs
        self.lru = OrderedDict()
        self.capacity = max(capacity, 1)
        self.keep_open = keep_open

    cdef File get_file(self, uint64_t number, str path):
        """The open file of table `number`, reopened from path if it was evicted."""
        cdef File f = self.lru.get(number)
        if f is not None:
            self.hits += 1
            self.lru.move_to_end(number)
            return f
        self.misses += 1
        if self.keep_open:
            # Never evicted, so its Table dropped it: a read through a Table no version holds.
            raise IOFailureError(f"{path}: the table file was closed; a read-only open cannot reopen a table "
                                 "the primary may have deleted")
        try:
            f = self.fs.open_read(path)
        except OSError as e:
            raise IOFailureError(f"{path}: reopening the table failed: {e}") from e
        self.put_file(number, f)
        return self.lru.get(number, f)

    cdef int put_file(self, uint64_t number, File f) except -1:
        if number in self.lru:              # another thread reopened it meanwhile: keep that one
            return 0
        self.lru[number] = f
        while len(self.lru) > self.capacity and not self.keep_open:
            self.lru.popitem(last=False)    # closed when the last read holding it lets go
            self.evictions += 1
        return 0

    def drop(self, uint64_t number):
        """Close the file of a table that is gone (its Table was collected)."""
        f = self.lru.pop(number, None)
        if f is not None:
            f.close()

    @property
    def open_files(self):
        return len(self.lru)

    def close(self):
        for f in list(self.lru.values()):
            f.close()
        self.lru.clear()


cdef class Table:
    """An open SSTable: its index, filter and properties stay in memory; its file is kept
    open by the table cache (if given) and reopened when the cache evicted it."""

    def __init__(self, File file, str path, uint64_t number, BlockCache cache, TableCache tcache=None,
                 bint map_reads=False):
        self.file = file
        self.path = path
        self.number = number
        self.cache = cache
        self.file_size = file.size()
        if self.file_size < FOOTER_SIZE:
            raise CorruptionError(f"{path}: file of {self.file_size} bytes is too short for an sstable footer",
                                  path=path, offset=0)
        cdef uint64_t foff = self.file_size - FOOTER_SIZE
        try:
            footer = file.read_at(foff, FOOTER_SIZE)
        except OSError as e:
            raise IOFailureError(f"{path}: reading the footer at offset {foff} failed: {e}") from e
        cdef const unsigned char *f = <const unsigned char *>PyBytes_AS_STRING(footer)
        if len(footer) != FOOTER_SIZE or footer[44:52] != SST_MAGIC:
            raise CorruptionError(f"{path}: bad sstable magic in the footer at offset {foff}", path=path, offset=foff)
        if get_u32(f + 40) != crc32c(f, 40):
            raise CorruptionError(f"{path}: sstable footer checksum mismatch at offset {foff}", path=path, offset=foff)
        if get_u32(f + 36) != SST_VERSION:
            raise CorruptionError(f"{path}: unsupported sstable version {get_u32(f + 36)}", path=path, offset=foff + 36)
        cdef uint64_t ioff = get_u64(f), foff2 = get_u64(f + 12), poff = get_u64(f + 24)
        cdef uint32_t isize = get_u32(f + 8), fsize = get_u32(f + 20), psize = get_u32(f + 32)
        for off, size in ((ioff, isize), (foff2, fsize), (poff, psize)):
            if off + size + BLOCK_TRAILER_SIZE > foff:
                raise CorruptionError(f"{path}: footer at offset {foff} points past the data (block at {off})",
                                      path=path, offset=foff)
        self.index_raw = self.read_block(ioff, isize, False)
        self.index_offset = ioff
        keys, vals = decode_block(self.index_raw, path, ioff)
        self.index_keys = keys
        self.index_offs = []
        self.index_sizes = []
        cdef uint64_t boff, bsize
        cdef const unsigned char *p
        cdef const unsigned char *vend
        for v in vals:
            p = <const unsigned char *>PyBytes_AS_STRING(v)
            vend = p + len(v)
            p = get_varint(p, vend, &boff)
            if p != NULL:
                p = get_varint(p, vend, &bsize)
            # compared without a sum that could wrap around 2^64
            if p == NULL or boff > ioff or bsize > ioff - boff or BLOCK_TRAILER_SIZE > ioff - boff - bsize:
                raise CorruptionError(f"{path}: index block at offset {ioff} has a bad block handle",
                                      path=path, offset=ioff)
            self.index_offs.append(boff)
            self.index_sizes.append(bsize)
        flt = self.read_block(foff2, fsize, False)
        if len(flt) < 1:
            raise CorruptionError(f"{path}: empty filter block at offset {foff2}", path=path, offset=foff2)
        self.probes = flt[len(flt) - 1]
        self.filter = flt[:len(flt) - 1]
        self.filter_bits = len(self.filter) * 8
        pk, pv = decode_block(self.read_block(poff, psize, False), path, poff)
        self.props = {}
        for k, v in zip(pk, pv):
            self.props[k[:len(k) - TRAILER_SIZE].decode("ascii", "replace")] = v
        try:
            self.smallest = self.props.pop("smallest")
            self.largest = self.props.pop("largest")
            for name in list(self.props):
                self.props[name] = int.from_bytes(self.props[name], "little")
        except (KeyError, ValueError):
            raise CorruptionError(f"{path}: properties block at offset {poff} lacks the key range",
                                  path=path, offset=poff) from None
        if map_reads and isinstance(file, OsFile):
            # the whole file, read-only: a table never changes once written (a refused map: pread)
            m = mmap(NULL, self.file_size, PROT_READ, MAP_SHARED, (<OsFile>file).fd, 0)
            if m != MAP_FAILED:
                self.map = <const unsigned char *>m
        if tcache is not None:
            self.tcache = tcache
            tcache.put_file(number, file)
            self.file = None

    def __dealloc__(self):
        if self.map != NULL:
            munmap(<void *>self.map, self.file_size)

    cdef File open_file(self):
        if self.tcache is None:
            return self.file
        return self.tcache.get_file(self.number, self.path)

    def get_file(self):
        """The table's open file (reopened if the table cache closed it); hold it while reading."""
        return self.open_file()

    def close(self):
        if self.tcache is None:
            self.file.close()
        else:
            self.tcache.drop(self.number)

    @property
    def data_end(self):
        return self.index_offs[-1] + self.index_sizes[-1] + BLOCK_TRAILER_SIZE if self.index_offs else 0

    cdef bytes read_block(self, uint64_t offset, uint64_t size, bint fill_cache):
        """The raw bytes of the block at offset (checksum checked, lz4 undone): read in place
        from the table's map, or with pread (docs/format/sstable.md, after the footer)."""
        if offset > self.file_size or size > self.file_size - offset \
                or BLOCK_TRAILER_SIZE > self.file_size - offset - size:
            raise CorruptionError(f"{self.path}: block handle (offset {offset}, size {size}) points past the end "
                                  f"of the file", path=self.path, offset=offset)
        cdef File f
        cdef Py_ssize_t n = size + BLOCK_TRAILER_SIZE, got
        cdef bytes data = None
        cdef const unsigned char *d
        cdef uint64_t ulen
        cdef const unsigned char *q
        cdef bytes out
        if self.map != NULL:
            d = self.map + offset        # inside the file (checked above), which never changes
        else:
            f = self.open_file()
            data = PyBytes_FromStringAndSize(NULL, n)
            d = <const unsigned char *>PyBytes_AS_STRING(data)
            try:
                got = f.pread(<unsigned char *>d, n, offset) if n else 0
            except OSError as e:
                # as the B+Tree reports a failed page read: a kvdb.Error naming the file, the cause kept
                raise IOFailureError(f"{self.path}: reading the block at offset {offset} failed: {e}") from e
            if got != n:
                raise CorruptionError(f"{self.path}: block at offset {offset} is cut short by the end of the file",
                                      path=self.path, offset=offset)
        if get_u32(d + size + 1) != crc32c(d, size + 1):
            raise CorruptionError(f"{self.path}: block checksum mismatch at offset {offset}",
                                  path=self.path, offset=offset)
        if d[size] == BLOCK_RAW:
            return data[:size] if data is not None else PyBytes_FromStringAndSize(<const char *>d, size)
        if d[size] != BLOCK_LZ4:
            raise CorruptionError(f"{self.path}: block at offset {offset} has unknown type {d[size]}",
                                  path=self.path, offset=offset)
        q = get_varint(d, d + size, &ulen)
        # lz4 expands at most about 255:1; a larger claim is a lie, refused before allocating it
        if q == NULL or ulen > (<uint64_t>1 << 31) or ulen > <uint64_t>(size - (q - d)) * 255 + 64:
            raise CorruptionError(f"{self.path}: compressed block at offset {offset} has a bad length",
                                  path=self.path, offset=offset)
        out = PyBytes_FromStringAndSize(NULL, ulen)
        if lz4_decompress(q, d + size - q, <unsigned char *>PyBytes_AS_STRING(out), ulen) != <Py_ssize_t>ulen:
            raise CorruptionError(f"{self.path}: compressed block at offset {offset} does not decompress",
                                  path=self.path, offset=offset)
        return out

    cdef bytes raw_block(self, uint64_t off, uint64_t size, bint fill_cache):
        """The raw data block at off, through the block cache."""
        cdef uint64_t ck = (self.number << BLOCK_KEY_SHIFT) | off
        raw = self.cache.get_block(ck) if fill_cache else None
        if raw is None:
            raw = self.read_block(off, size, fill_cache)
            if fill_cache:
                self.cache.put_block(ck, raw)
        return <bytes>raw

    cdef tuple block_at(self, Py_ssize_t b, bint fill_cache):
        """([internal key], [value]) of data block b, through the block cache."""
        cdef uint64_t off = self.index_offs[b]
        return decode_block(self.raw_block(off, self.index_sizes[b], fill_cache), self.path, off)

    cdef bint may_contain(self, uint32_t h) noexcept:
        """h: bloom_hash() of the key."""
        cdef uint32_t delta = (h >> 17) | (h << 15)
        cdef uint32_t bit
        cdef int i
        cdef const unsigned char *bits = <const unsigned char *>PyBytes_AS_STRING(self.filter)
        if self.filter_bits == 0:
            return True
        for i in range(self.probes):
            bit = h % self.filter_bits
            if not (bits[bit >> 3] & (1 << (bit & 7))):
                return False
            h += delta
        return True

    cdef Py_ssize_t find_block(self, bytes target):
        """The first data block whose last key is >= target (len(index) if none)."""
        return lower_bound(self.index_keys, target)

    cdef bytes find_entry(self, const unsigned char *key, Py_ssize_t klen, uint32_t h, uint64_t snap_seq,
                          SeekKey *k, const unsigned char **v, Py_ssize_t *vlen):
        """The raw data block holding the newest version of key with seq <= snap_seq, with that
        entry's internal key in k (its kind at k.p[klen]) and its value in v/vlen; None when the
        table holds no such version (the bloom filter, or the search, says so). The caller
        initialised k and frees k.heap; h is bloom_hash() of the key."""
        cdef unsigned char stack[256]
        cdef const unsigned char *t
        cdef const unsigned char *q
        cdef Py_ssize_t tn = klen + TRAILER_SIZE
        cdef uint64_t boff, bsize
        cdef int r
        cdef bytes target = None
        self.bloom_checks += 1
        if not self.may_contain(h):
            self.bloom_negatives += 1
            return None
        if tn <= 256:                    # the internal key to seek: key, then the trailer
            memcpy(stack, key, klen)
            put_u64(stack + klen, (snap_seq << 8) | 0xff)
            t = stack
        else:
            target = make_ikey(PyBytes_FromStringAndSize(<const char *>key, klen), snap_seq, 0xff)
            t = <const unsigned char *>PyBytes_AS_STRING(target)
        r = block_seek(<const unsigned char *>PyBytes_AS_STRING(self.index_raw), PyBytes_GET_SIZE(self.index_raw),
                       t, tn, k, v, vlen)
        if r == 0:
            self.bloom_false_positives += 1
            return None
        q = NULL
        if r == 1:
            q = get_varint(v[0], v[0] + vlen[0], &boff)
            if q != NULL:
                q = get_varint(q, v[0] + vlen[0], &bsize)
        if q == NULL:
            if r == -2:
                raise MemoryError()
            raise CorruptionError(f"{self.path}: index block at offset {self.index_offset} is malformed",
                                  path=self.path, offset=self.index_offset)
        raw = self.raw_block(boff, bsize, True)
        r = block_seek(<const unsigned char *>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), t, tn, k, v, vlen)
        if r < 0:
            if r == -2:
                raise MemoryError()
            raise CorruptionError(f"{self.path}: block at offset {boff} has a malformed entry",
                                  path=self.path, offset=boff)
        if r == 0 or k.n - TRAILER_SIZE != klen or memcmp(k.p, key, klen) != 0:
            self.bloom_false_positives += 1
            return None
        if k.p[klen] > SST_PUT_EXPIRES or (k.p[klen] == SST_PUT_EXPIRES and vlen[0] < 8):
            raise CorruptionError(f"{self.path}: block at offset {boff} has an entry of unknown kind {k.p[klen]}",
                                  path=self.path, offset=boff)
        return raw

    cpdef object get(self, bytes key, uint64_t snap_seq):
        """(kind, value, expires) of the newest version of key with seq <= snap_seq, else None."""
        cdef const unsigned char *k = <const unsigned char *>PyBytes_AS_STRING(key)
        return self.get_hashed(k, PyBytes_GET_SIZE(key), bloom_hash(k, PyBytes_GET_SIZE(key)), snap_seq)

    cdef object get_hashed(self, const unsigned char *key, Py_ssize_t klen, uint32_t h, uint64_t snap_seq):
        """get() of the key key[:klen], whose bloom_hash() is h."""
        cdef SeekKey k
        cdef const unsigned char *v
        cdef Py_ssize_t vlen
        cdef int kind
        seek_key_init(&k)
        try:
            raw = self.find_entry(key, klen, h, snap_seq, &k, &v, &vlen)
            if raw is None:
                return None
            kind = k.p[klen]
            if kind == SST_DELETE:
                return (ENTRY_DELETE, None, 0)
            if kind == SST_PUT_EXPIRES:
                return (ENTRY_PUT, PyBytes_FromStringAndSize(<const char *>v + 8, vlen - 8), get_u64(v))
            return (ENTRY_PUT, PyBytes_FromStringAndSize(<const char *>v, vlen), 0)
        finally:
            free(k.heap)

    cdef int newest_kind(self, const unsigned char *key, Py_ssize_t klen, uint32_t h) except -1:
        """MEM_PUT / MEM_DELETE for the key's newest version in this table, MEM_ABSENT if it has
        none (get() without building the value); h is bloom_hash() of the key."""
        cdef SeekKey k
        cdef const unsigned char *v
        cdef Py_ssize_t vlen
        seek_key_init(&k)
        try:
            if self.find_entry(key, klen, h, <uint64_t>-1 >> 8, &k, &v, &vlen) is None:
                return MEM_ABSENT
            return MEM_DELETE if k.p[klen] == SST_DELETE else MEM_PUT
        finally:
            free(k.heap)

    def filter_offset(self):
        """The filter block's offset, read again from the footer (kept only by reports)."""
        cdef File f = self.open_file()
        footer = f.read_at(self.file_size - FOOTER_SIZE, FOOTER_SIZE)
        return get_u64(<const unsigned char *>PyBytes_AS_STRING(footer) + 12)

    def source(self, bint fill_cache=True):
        cdef TableSource s = TableSource.__new__(TableSource)
        s.table = self
        s.block = -1
        s.valid = False
        s.fill_cache = fill_cache
        return s

    def check_blocks(self):
        """Read every data block around the cache (checksums, decoding, key order, and that the
        bloom filter passes every key); returns the number of entries. CorruptionError names the
        file and the block's offset."""
        cdef Py_ssize_t b, i, n = 0
        prev = None
        for b in range(len(self.index_keys)):
            off = self.index_offs[b]
            keys, _ = decode_block(self.read_block(off, self.index_sizes[b], False), self.path, off)
            for k in keys:
                if prev is not None and ikey_cmp(<const unsigned char *>PyBytes_AS_STRING(prev), len(prev),
                                                 <const unsigned char *>PyBytes_AS_STRING(k), len(k)) >= 0:
                    raise CorruptionError(f"{self.path}: keys out of order in the block at offset {off}",
                                          path=self.path, offset=off)
                if not self.may_contain(bloom_hash(<const unsigned char *>PyBytes_AS_STRING(k), len(k) - TRAILER_SIZE)):
                    # A filter whose checksum holds but that rejects a key of its table makes get()
                    # miss that key while a scan finds it.
                    foff = self.filter_offset()
                    raise CorruptionError(f"{self.path}: the bloom filter block at offset {foff} rejects the key "
                                          f"{k[:len(k) - TRAILER_SIZE][:40]!r} of the block at offset {off}",
                                          path=self.path, offset=foff)
                prev = k
            if keys and keys[-1] != self.index_keys[b]:
                raise CorruptionError(f"{self.path}: index entry {b} does not match the block at offset {off}",
                                      path=self.path, offset=off)
            n += len(keys)
        if n != self.props.get("entries", n):
            raise CorruptionError(f"{self.path}: holds {n} entries, its properties say {self.props['entries']}",
                                  path=self.path)
        return n


cdef class TableSource(Source):
    """A Source over one table."""

    def __cinit__(self):
        seek_key_init(&self.k)

    def __dealloc__(self):
        free(self.k.heap)

    cdef int load_raw(self, Py_ssize_t b) except -1:
        """Forwards: load data block b raw, before its first entry."""
        cdef uint32_t nrest
        cdef Py_ssize_t n
        cdef uint64_t off = self.table.index_offs[b]
        self.block = b
        self.raw = self.table.raw_block(off, self.table.index_sizes[b], self.fill_cache)
        n = PyBytes_GET_SIZE(self.raw)
        nrest = get_u32(<const unsigned char *>PyBytes_AS_STRING(self.raw) + n - 4) if n >= 4 else 0
        if nrest == 0 or <uint64_t>nrest * 4 + 4 > <uint64_t>n:
            raise CorruptionError(f"{self.table.path}: block at offset {off} has a bad restart array",
                                  path=self.table.path, offset=off)
        self.end = n - 4 - 4 * <Py_ssize_t>nrest
        self.off = 0
        self.k.n = 0
        return 0

    cdef int set_entry(self, const unsigned char *v, Py_ssize_t vlen) except -1:
        """The current entry from the internal key in k and its raw value v (in `raw`)."""
        cdef Py_ssize_t n = self.k.n - TRAILER_SIZE
        return self.set_current(self.k.p, n, v, vlen)

    cdef int set_current(self, const unsigned char *ik, Py_ssize_t n, const unsigned char *v,
                         Py_ssize_t vlen) except -1:
        """The current entry: user key ik[:n] followed by its trailer, raw value v; both in memory
        this source keeps (k, raw, or the keys and vals lists) until it moves."""
        cdef const unsigned char *p = ik + n
        self.valid = True
        self.key = ik
        self.klen = n
        self.seq = get_u64(p) >> 8
        if p[0] == SST_DELETE:
            self.kind = ENTRY_DELETE
            self.expires = 0
            self.val = NULL
            self.vlen = 0
        elif p[0] == SST_PUT_EXPIRES and vlen >= 8:
            self.kind = ENTRY_PUT
            self.expires = get_u64(v)
            self.val = v + 8
            self.vlen = vlen - 8
        elif p[0] == SST_PUT:
            self.kind = ENTRY_PUT
            self.expires = 0
            self.val = v
            self.vlen = vlen
        else:
            self.valid = False
            off = self.table.index_offs[self.block]
            raise CorruptionError(f"{self.table.path}: block at offset {off} has an entry of unknown kind {p[0]} "
                                  f"or a short expiry", path=self.table.path, offset=off)
        return 0

    cdef int next_forward(self) except -1:
        """Forwards: parse the entry at `off`, moving to the next blocks as they run out."""
        cdef const unsigned char *d
        cdef const unsigned char *p
        cdef const unsigned char *end
        cdef uint64_t shared, unshared, vlen
        while self.off >= self.end:
            if self.block + 1 >= len(self.table.index_offs):
                self.valid = False
                return 0
            self.load_raw(self.block + 1)
        d = <const unsigned char *>PyBytes_AS_STRING(self.raw)
        end = d + self.end
        p = entry_header(d + self.off, end, self.k.n, &shared, &unshared, &vlen)
        if p == NULL:
            off = self.table.index_offs[self.block]
            raise CorruptionError(f"{self.table.path}: block at offset {off} has a malformed entry",
                                  path=self.table.path, offset=off)
        if key_reserve(&self.k, shared + unshared) < 0:
            raise MemoryError()
        memcpy(self.k.p + shared, p, unshared)
        self.k.n = shared + unshared
        p += unshared
        self.off = (p + vlen) - d
        return self.set_entry(p, vlen)

    cdef int load_block(self, Py_ssize_t b) except -1:
        self.block = b
        if 0 <= b < len(self.table.index_keys):
            self.keys, self.vals = self.table.block_at(b, self.fill_cache)
        else:
            self.keys = self.vals = []
        return 0

    cdef int load(self) except -1:
        cdef bytes ik, v
        # move across block boundaries
        while self.pos >= len(self.keys) and 0 <= self.block < len(self.table.index_keys) - 1:
            self.load_block(self.block + 1)
            self.pos = 0
        while self.pos < 0 and self.block > 0:
            self.load_block(self.block - 1)
            self.pos = len(self.keys) - 1
        if self.pos < 0 or self.pos >= len(self.keys):
            self.valid = False
            return 0
        ik = <bytes>self.keys[self.pos]
        v = <bytes>self.vals[self.pos]
        return self.set_current(<const unsigned char *>PyBytes_AS_STRING(ik), PyBytes_GET_SIZE(ik) - TRAILER_SIZE,
                                <const unsigned char *>PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v))

    cdef int seek(self, bytes key, bint reverse) except -1:
        cdef Py_ssize_t nb = len(self.table.index_keys), b
        cdef const unsigned char *v
        cdef Py_ssize_t vlen
        cdef int r
        self.forward = not reverse
        if not reverse:
            if key is None:
                if nb == 0:
                    self.valid = False
                    return 0
                self.load_raw(0)
                return self.next_forward()
            target = make_ikey(key, 0xFFFFFFFFFFFFFF, 0xff)
            b = self.table.find_block(target)
            if b >= nb:
                self.valid = False
                return 0
            self.load_raw(b)
            r = block_seek(<const unsigned char *>PyBytes_AS_STRING(self.raw), PyBytes_GET_SIZE(self.raw),
                           <const unsigned char *>PyBytes_AS_STRING(target), PyBytes_GET_SIZE(target),
                           &self.k, &v, &vlen)
            if r == 1:
                self.off = (v + vlen) - <const unsigned char *>PyBytes_AS_STRING(self.raw)
                return self.set_entry(v, vlen)
            if r < 0:
                if r == -2:
                    raise MemoryError()
                off = self.table.index_offs[b]
                raise CorruptionError(f"{self.table.path}: block at offset {off} has a malformed entry",
                                      path=self.table.path, offset=off)
            self.off = self.end
            self.k.n = 0
            return self.next_forward()
        if key is None:
            self.load_block(nb - 1)
            self.pos = len(self.keys) - 1
        else:
            target = make_ikey(key, 0xFFFFFFFFFFFFFF, 0xff)
            b = self.table.find_block(target)
            if b >= nb:
                self.load_block(nb - 1)
                self.pos = len(self.keys) - 1
            else:
                self.load_block(b)
                self.pos = lower_bound(self.keys, target) - 1
        return self.load()

    cdef int step(self, bint reverse) except -1:
        if not self.valid:
            return 0
        if self.forward:
            return self.next_forward()
        self.pos -= 1
        return self.load()
