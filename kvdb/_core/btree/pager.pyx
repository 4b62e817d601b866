# The pager (see pager.pxd for the format, the fields and the invariants).

cimport cython
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdlib cimport malloc, calloc, realloc, free as c_free
from libc.string cimport memcpy, memset
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, UINT64_MAX

from kvdb._core.coding cimport crc32c, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64
from kvdb._core.file cimport File, OsFile
from kvdb._core.btree.filemap cimport FileMap, map_file, page_bit, MAPPED_PAGE_COST

from kvdb.errors import ClosedError, CorruptionError, IOFailureError

FILE_MAGIC = b"kvdb-bt\x00"
# The format's constants for Python readers (`kvdb check`'s raw scan); their values live in pager.pxd.
FILE_HEADER_BYTES = FILE_HEADER_SIZE
PAGE_FORMAT_VERSION = FORMAT_VERSION
PAGE_TYPE_NAMES = {PAGE_BRANCH: "branch", PAGE_LEAF: "leaf", PAGE_OVERFLOW: "overflow",
                   PAGE_FREELIST: "freelist", PAGE_META: "meta"}
PAGE_TYPE_NAMES = {1: "branch", 2: "leaf", 3: "overflow", 4: "freelist", 5: "meta"}

cdef uint32_t PAGE_COUNT_LIMIT = 0xFFFFFFF0u  # pages a file may hold: alloc() stops below it, a meta
                                              # claiming more is damage


@cython.no_gc
cdef class Page:
    # Not tracked by the garbage collector: its one object field, `owner`, holds a FileMap, which
    # holds no objects, so no cycle can pass through a Page (and the pool's tens of thousands
    # of pages would make every full collection walk them).
    def __dealloc__(self):
        if self.data != NULL and not self.mapped:
            c_free(self.data)
        c_free(self.heads)

    @property
    def number(self):
        return self.pgno

    def raw(self, uint32_t page_size):
        return bytes(self.data[:page_size])


cdef class Meta:
    def __repr__(self):
        return (f"Meta(generation={self.generation}, seq={self.seq}, root={self.root}, "
                f"freelist={self.freelist}, page_count={self.page_count}, entries={self.entries})")


cdef class CheckpointPlan:
    def __dealloc__(self):
        c_free(self.spilled.birth)


cdef int birth_set(BirthMap *m, uint32_t pgno, uint64_t birth) except -1:
    """Record `pgno` as written ahead, born at commit `birth` (at least 1)."""
    cdef Py_ssize_t n
    cdef uint64_t *grown
    if pgno >= m.slots:
        n = max(<Py_ssize_t>pgno + 1, m.slots * 2, 1024)
        grown = <uint64_t *>realloc(m.birth, n * sizeof(uint64_t))
        if grown == NULL:
            raise MemoryError()
        memset(grown + m.slots, 0, (n - m.slots) * sizeof(uint64_t))
        m.birth = grown
        m.slots = n
    if m.birth[pgno] == 0:
        m.count += 1
    m.birth[pgno] = birth
    return 0


cdef void birth_clear(BirthMap *m, uint32_t pgno) noexcept:
    if pgno < m.slots and m.birth[pgno] != 0:
        m.birth[pgno] = 0
        m.count -= 1


cdef void birth_free(BirthMap *m) noexcept:
    c_free(m.birth)
    m.birth = NULL
    m.slots = 0
    m.count = 0


cdef Page new_page(uint32_t page_size, uint32_t pgno, uint8_t page_type):
    """A zeroed page with its header filled in; branch/leaf get an empty cell area."""
    cdef Page page = Page.__new__(Page)
    page.data = <unsigned char *>calloc(page_size, 1)
    if page.data == NULL:
        raise MemoryError()
    page.pgno = pgno
    page.data[OFF_TYPE] = page_type
    put_u32(page.data + OFF_PGNO, pgno)
    if page_type == PAGE_BRANCH or page_type == PAGE_LEAF:
        put_u16(page.data + OFF_LOWER, PAGE_HEADER_SIZE)
        put_u16(page.data + OFF_UPPER, <uint16_t>(page_size if page_size < 65536 else 0))
    return page


cdef int seal_page(unsigned char *data, uint32_t page_size) noexcept nogil:
    """Store the checksum of bytes [4, page_size) in the first four bytes."""
    put_u32(data + OFF_CRC, crc32c(data + 4, page_size - 4))
    return 0


def _check_page_size(uint32_t page_size):
    if page_size < MIN_PAGE_SIZE or page_size > MAX_PAGE_SIZE or (page_size & (page_size - 1)):
        raise ValueError(f"page_size must be a power of two from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE}, "
                         f"got {page_size}")


cdef class Pager:
    def __init__(self, File file, str path, uint32_t page_size, Py_ssize_t cache_size, bint shared=False,
                 bint map_reads=False):
        """Open the data file, creating it when empty; read and pick the meta page. With
        `map_reads`, pool misses read clean pages in place from a map of the file (filemap.pxd).

        A file that never finished being created (at most three pages, with no valid
        header or no valid meta page) is created again: no commit can depend on it,
        because the log is started only after the new file is fsynced.
        """
        _check_page_size(page_size)
        self.file = file
        self.path = path
        self.ring = []
        self.ring_cost = 0
        self.hand = 0
        self.map_reads = map_reads and isinstance(file, OsFile)    # SimFS files have nothing to map
        self.fmap = None
        self.dirty = {}
        self.free_pages = []
        self.pending_snap = []
        self.pending_ckpt = []
        self.freelist_pages = []
        self.shared = shared
        self.pending_gen = []
        self.pending_gen_min = UINT64_MAX
        self.gen_gate = {}
        self.reuse_gen = 0
        self.reuse_epoch = 0
        self.hits = self.misses = self.evictions = 0
        self.pages_read = self.pages_written = self.checkpoints = self.pages_checked = 0
        self.layouts_checked = 0
        self.heads_built = 0
        self.pages_spilled = 0
        size = file.size()
        header = file.read_at(0, FILE_HEADER_SIZE)
        if size == 0 or not header.strip(b"\0") and size <= 3 * MAX_PAGE_SIZE \
                and not file.read_at(0, 3 * MAX_PAGE_SIZE).strip(b"\0"):
            self.page_size = page_size
            self._create()
        else:
            try:
                self.page_size = self._read_header(header)
                self._read_metas()
            except CorruptionError:
                ps = self._unfinished_creation(size)
                if not ps:
                    raise
                self.page_size = ps             # a creation torn by a crash: start again
                self.file.truncate(0)
                self._create()
            else:
                self._load_freelist()
        self.capacity = max(8, cache_size // self.page_size)

    # -- open ------------------------------------------------------------

    def _creation_image(self, uint32_t ps):
        """Page 0 and both meta pages of an empty database with page size ps."""
        from kvdb._core.coding import crc32c_of
        image = bytearray(3 * ps)
        image[0:8] = FILE_MAGIC
        image[8:12] = FORMAT_VERSION.to_bytes(4, "little")
        image[12:16] = ps.to_bytes(4, "little")
        image[16:20] = crc32c_of(bytes(image[0:16])).to_bytes(4, "little")
        meta = Meta()
        meta.seq = 0
        meta.root = 0
        meta.freelist = 0
        meta.page_count = FIRST_DATA_PGNO
        meta.entries = 0
        saved = self.page_size
        self.page_size = ps
        for slot, gen in ((META_PGNO_A, 0), (META_PGNO_B, 1)):
            meta.generation = gen
            image[slot * ps:(slot + 1) * ps] = self._encode_meta(meta, slot)
        self.page_size = saved
        return bytes(image), meta

    def _unfinished_creation(self, size):
        """The page size of the creation this file is a torn copy of (every non-zero byte
        where creation would have put it), or 0 if it is anything else."""
        data = self.file.read_at(0, size)
        ps = MIN_PAGE_SIZE
        while ps <= MAX_PAGE_SIZE:
            if size <= 3 * ps:
                image, _ = self._creation_image(ps)
                if all([b == 0 or b == image[i] for i, b in enumerate(data)]):
                    return ps
            ps *= 2
        return 0

    def _create(self):
        """Write page 0 and both meta pages of an empty database, then fsync."""
        image, meta = self._creation_image(self.page_size)
        self.file.write_at(0, image)
        self.file.sync()
        self.meta = meta
        self.page_count = meta.page_count
        self.meta_slot = META_PGNO_B
        self.mirrored = False

    def _read_header(self, bytes header):
        from kvdb._core.coding import crc32c_of
        if len(header) < FILE_HEADER_SIZE:
            raise CorruptionError(f"{self.path}: file header is truncated ({len(header)} bytes)",
                                  path=self.path, pgno=0, offset=0)
        if header[0:8] != FILE_MAGIC:
            raise CorruptionError(f"{self.path}: bad magic {header[0:8]!r}, not a kvdb data file",
                                  path=self.path, pgno=0, offset=0)
        if int.from_bytes(header[16:20], "little") != crc32c_of(header[0:16]):
            raise CorruptionError(f"{self.path}: file header checksum mismatch", path=self.path, pgno=0, offset=16)
        version = int.from_bytes(header[8:12], "little")
        if version == 1:
            raise CorruptionError(f"{self.path}: format version 1 (written before keys could expire) is no longer "
                                  f"read; this kvdb reads version {FORMAT_VERSION}: `kvdb dump` it with the kvdb "
                                  "build that wrote it and `kvdb load` the dump into a new database", path=self.path, pgno=0, offset=8)
        if version != FORMAT_VERSION:
            raise CorruptionError(f"{self.path}: unsupported format version {version} "
                                  f"(this kvdb reads version {FORMAT_VERSION})", path=self.path, pgno=0, offset=8)
        ps = int.from_bytes(header[12:16], "little")
        try:
            _check_page_size(ps)
        except ValueError:
            raise CorruptionError(f"{self.path}: file header has invalid page size {ps}",
                                  path=self.path, pgno=0, offset=12) from None
        return ps

    def _decode_meta(self, uint32_t slot):
        """The meta page in `slot`, or a string saying why it is not valid."""
        raw = self.file.read_at(slot * <uint64_t>self.page_size, self.page_size)
        if len(raw) < self.page_size:
            return "truncated"
        cdef const unsigned char *p = raw
        if get_u32(p) != crc32c(p + 4, self.page_size - 4):
            return "checksum mismatch"
        if p[OFF_TYPE] != PAGE_META or get_u32(p + OFF_PGNO) != slot:
            return "not a meta page"
        meta = Meta()
        meta.generation = get_u64(p + OFF_META_GEN)
        meta.seq = get_u64(p + OFF_META_SEQ)
        meta.root = get_u32(p + OFF_META_ROOT)
        meta.freelist = get_u32(p + OFF_META_FREELIST)
        meta.page_count = get_u32(p + OFF_META_PAGE_COUNT)
        meta.entries = get_u64(p + OFF_META_ENTRIES)
        meta.expiring = get_u64(p + OFF_META_EXPIRING)
        if meta.page_count < FIRST_DATA_PGNO or meta.root >= meta.page_count or meta.freelist >= meta.page_count:
            return "fields out of range"
        # Every checkpoint writes its pages (freelist pages last, at the top) before the meta, so
        # the file holds page_count pages; a larger count is a lie, which would later make
        # alloc() write far past the end or report the page number space exhausted.
        if meta.page_count >= PAGE_COUNT_LIMIT or meta.page_count * <uint64_t>self.page_size > self.file.size():
            return f"page count {meta.page_count} beyond the file's {self.file.size() // self.page_size} pages"
        if (meta.root != 0 and meta.root < FIRST_DATA_PGNO) or (meta.freelist != 0 and meta.freelist < FIRST_DATA_PGNO):
            return "root or freelist points at a header or meta page"
        return meta

    def _read_metas(self):
        a = self._decode_meta(META_PGNO_A)
        b = self._decode_meta(META_PGNO_B)
        valid = [m for m in (a, b) if isinstance(m, Meta)]
        if not valid:
            raise CorruptionError(f"{self.path}: both meta pages are damaged (page 1: {a}; page 2: {b})",
                                  path=self.path, pgno=META_PGNO_A, offset=META_PGNO_A * self.page_size)
        best = max(valid, key=lambda m: m.generation)
        # A damaged meta is what a torn meta write leaves; the other one is still whole (P1).
        self.meta_slot = META_PGNO_A if best is a else META_PGNO_B
        self.mirrored = isinstance(a, Meta) and isinstance(b, Meta) and a.generation == b.generation \
            and a.seq == b.seq and a.root == b.root
        self.meta = best
        self.page_count = best.page_count

    def newest_generation(self):
        """The highest generation of a valid meta page in the file now (P7: a meta written by
        another open, even one not yet published, is seen)."""
        metas = [m for m in (self._decode_meta(META_PGNO_A), self._decode_meta(META_PGNO_B)) if isinstance(m, Meta)]
        return max([m.generation for m in metas]) if metas else 0

    def _load_freelist(self):
        cdef uint32_t pgno = self.meta.freelist
        cdef Page page
        cdef uint32_t n, i
        cdef set seen = set()
        cdef set listed = set()
        per = (self.page_size - PAGE_HEADER_SIZE) // 4
        while pgno:
            if pgno in seen:
                raise CorruptionError(f"{self.path}: freelist loops at page {pgno}", path=self.path, pgno=pgno)
            seen.add(pgno)
            page = self.read_page_uncached(pgno)
            if page.data[OFF_TYPE] != PAGE_FREELIST:
                raise CorruptionError(f"{self.path}: page {pgno} should be a freelist page but is "
                                      f"{PAGE_TYPE_NAMES.get(page.data[OFF_TYPE], 'unknown')}",
                                      path=self.path, pgno=pgno)
            n = get_u16(page.data + OFF_LOWER)
            if n > per:
                raise CorruptionError(f"{self.path}: freelist page {pgno} claims {n} entries", path=self.path, pgno=pgno)
            for i in range(n):
                entry = get_u32(page.data + PAGE_HEADER_SIZE + 4 * i)
                if entry < FIRST_DATA_PGNO or entry >= self.page_count:
                    raise CorruptionError(f"{self.path}: freelist page {pgno} lists page {entry}, out of range",
                                          path=self.path, pgno=pgno)
                if entry in listed:
                    # handed out twice, two owners would overwrite each other
                    raise CorruptionError(f"{self.path}: freelist page {pgno} lists page {entry} a second time",
                                          path=self.path, pgno=pgno)
                listed.add(entry)
                if self.shared:
                    self.pending_gen.append((self.meta.generation, entry))   # P5
                    self.pending_gen_min = min(self.pending_gen_min, self.meta.generation)
                else:
                    self.free_pages.append(entry)
            self.freelist_pages.append(pgno)
            pgno = get_u32(page.data + OFF_LINK)
        for pgno in self.freelist_pages:
            if pgno in listed:
                raise CorruptionError(f"{self.path}: page {pgno} holds the freelist and is listed in it as free",
                                      path=self.path, pgno=pgno)

    def release_free_space(self):
        """Give the file system back the blocks of the pages the durable freelist lists, as holes
        (read as zeros, as a backup leaves its free pages; `kvdb check` counts them as never
        written). Only when both meta pages hold the durable meta (a clean close), so that no
        meta reaches those pages (P1), and by the last open, so that no other reads them. The
        file keeps its size; a later write of such a page takes a block again. Returns the
        pages released (0 where the file system has no holes)."""
        cdef Page page
        cdef uint32_t n, i
        if not self.mirrored:
            return 0
        listed = []
        pgno = self.meta.freelist
        while pgno:
            page = self.read_page_uncached(pgno)     # checked (P4): the list is trusted only whole
            n = get_u16(page.data + OFF_LOWER)
            for i in range(min(n, (self.page_size - PAGE_HEADER_SIZE) // 4)):
                listed.append(get_u32(page.data + PAGE_HEADER_SIZE + 4 * i))
            pgno = get_u32(page.data + OFF_LINK)
            if len(listed) > self.meta.page_count:
                return 0                             # a loop: _load_freelist reports it at open
        listed.sort()
        cdef uint64_t ps = self.page_size
        released = 0
        k = 0
        while k < len(listed):
            start = k
            while k + 1 < len(listed) and listed[k + 1] == listed[k] + 1:
                k += 1
            if not self.file.punch(listed[start] * ps, (k - start + 1) * ps):
                return released                      # no holes here
            released += k - start + 1
            k += 1
        return released

    def free_list_snapshot(self):
        """(free_pages, pending pgnos, freelist pages) for verify()."""
        return (list(self.free_pages),
                [p for _, p in self.pending_snap] + [p for _, p in self.pending_ckpt]
                + [p for _, p in self.pending_gen],
                list(self.freelist_pages))

    def adopt_clean(self, Pager older):
        """Take over the clean pages another pager of this file (an earlier view) holds that are
        live in both views: not free in the older one's version (its freelist, its pending and
        reusable pages: a page freed there may be cached from an even older version and rewritten
        since) nor in this one's meta. Such a page is unchanged since it was read, because the
        opener's base generation kept it from reuse (P5)."""
        free = {p for _, p in self.pending_gen}
        free.update(self.free_pages)
        free.update(self.freelist_pages)
        free.update(older.free_pages)
        free.update(older.freelist_pages)
        free.update([p for _, p in older.pending_gen])
        free.update([p for _, p in older.pending_snap])
        free.update([p for _, p in older.pending_ckpt])
        for p in older.ring:
            page = <Page>p
            if page.dirty or page.pgno >= self.page_count or page.pgno >= older.meta.page_count \
                    or page.pgno in free or self.pool_get(page.pgno) is not None \
                    or birth_of(&older.spilled, page.pgno):
                continue
            if older.pool_get(page.pgno) is not page:
                continue                 # a stale ring entry
            if self.ring_cost >= self.capacity * <Py_ssize_t>self.page_size:
                break
            self.pool_set(page.pgno, page)
            self.ring_add(page)

    def share_map(self, Pager older):
        """Read through `older`'s map of the same file (a rebase: this pager's meta is one another
        open wrote). Every page is checked again at its next load (V2): the other open's
        checkpoints rewrote pages this process may have checked before."""
        if self.map_reads and older.fmap is not None:
            self.fmap = older.fmap
            self.fmap.forget_all()

    # -- page access -----------------------------------------------------

    cdef Page read_page_uncached(self, uint32_t pgno):
        """Read and check one page from the file (P4), bypassing the pool."""
        cdef uint32_t ps = self.page_size
        cdef Page page = Page.__new__(Page)
        page.data = <unsigned char *>malloc(ps)
        if page.data == NULL:
            raise MemoryError()
        page.pgno = pgno
        self.check_reference(pgno)
        try:
            got = self.file.pread(page.data, ps, pgno * <uint64_t>ps)
        except OSError as e:
            if self.closed:
                raise ClosedError(f"database file {self.path} was closed during a read") from None
            raise IOFailureError(f"{self.path}: reading page {pgno} failed: {e}") from e
        self.pages_read += 1
        if got < ps:
            raise CorruptionError(f"{self.path}: page {pgno} is beyond the end of the file (short read of "
                                  f"{got} bytes)", path=self.path, pgno=pgno, offset=pgno * <uint64_t>ps)
        self.check_page(page.data, pgno, True)
        return page

    cdef int check_reference(self, uint32_t pgno) except -1:
        """`pgno` may be read: a data page inside the file, and the file still open."""
        if pgno < FIRST_DATA_PGNO or pgno >= self.page_count:
            raise CorruptionError(f"{self.path}: reference to page {pgno}, outside the file's "
                                  f"{self.page_count} pages", path=self.path, pgno=pgno)
        if self.closed:
            raise ClosedError(f"database file {self.path} is closed")
        return 0

    cdef int check_page(self, const unsigned char *data, uint32_t pgno, bint release_gil) except -1:
        """P4 on the image of page `pgno`: checksum, page number, type. The checksum runs without
        the GIL when `release_gil` (a pread copy); a mapped page keeps it (V4)."""
        cdef uint32_t ps = self.page_size
        cdef uint32_t stored = get_u32(data), actual
        if release_gil:
            with nogil:
                actual = crc32c(data + 4, ps - 4)
        else:
            actual = crc32c(data + 4, ps - 4)
        self.pages_checked += 1
        if stored != actual:
            raise CorruptionError(f"{self.path}: page {pgno} checksum mismatch (stored {stored:#010x}, "
                                  f"computed {actual:#010x})", path=self.path, pgno=pgno, offset=pgno * <uint64_t>ps)
        if get_u32(data + OFF_PGNO) != pgno:
            raise CorruptionError(f"{self.path}: page {pgno} holds page number {get_u32(data + OFF_PGNO)} "
                                  "(misdirected write)", path=self.path, pgno=pgno, offset=pgno * <uint64_t>ps)
        if data[OFF_TYPE] < PAGE_BRANCH or data[OFF_TYPE] > PAGE_FREELIST:
            raise CorruptionError(f"{self.path}: page {pgno} has unknown type {data[OFF_TYPE]}",
                                  path=self.path, pgno=pgno, offset=pgno * <uint64_t>ps)
        return 0

    cdef bint map_covers(self, uint32_t pgno) except -1:
        """`pgno` can be read from the map: below the pages the file is known to hold (V1), the
        durable meta's page count, which grows with this pager's checkpoints, or one past the
        highest page it wrote ahead of one. Past the map's `pages`, refresh it from that count,
        or map again, larger, when the file outgrew the map; all without giving the GIL up (V4).
        A refused map turns the map off for good."""
        cdef uint32_t durable = max(self.meta.page_count, self.written_count)
        cdef FileMap grown
        if self.fmap is not None and pgno < self.fmap.pages:
            return True
        if not self.map_reads or self.closed or pgno >= durable:
            return False
        if self.fmap is None or durable > self.fmap.page_limit():
            grown = map_file((<OsFile>self.file).fd, self.page_size, durable, self.fmap)
            if grown is None:
                self.map_reads = False           # pread from now on
                return False
            self.fmap = grown
        else:
            self.fmap.refresh(durable)
        return pgno < self.fmap.pages

    cdef Page read_page_mapped(self, uint32_t pgno):
        """The page `pgno` in place in the map (map_covers(pgno) is true), checked once (V2):
        the checks of read_page_uncached, without the read."""
        cdef uint32_t ps = self.page_size
        cdef FileMap fmap = self.fmap
        cdef const unsigned char *data = fmap.base + pgno * <uint64_t>ps
        self.check_reference(pgno)
        if not page_bit(fmap.verified, pgno):
            self.check_page(data, pgno, False)      # with the GIL: see filemap.pxd, V4
            fmap.trust(pgno, False)
        cdef Page page = Page.__new__(Page)
        page.data = <unsigned char *>data       # read only: a clean page is copied before any change (B4)
        page.mapped = True
        page.checked = page_bit(fmap.laid_out, pgno)    # its cells were validated by an earlier handle
        page.owner = fmap                       # V3
        page.pgno = pgno
        self.pages_read += 1
        return page

    cdef Page get(self, uint32_t pgno):
        """The page `pgno`, from the pool or read from the file (in place from the map, or
        copied) and cached."""
        cdef Page page
        if pgno < self.nslots and self.slots[pgno] != NULL:
            page = <Page>self.slots[pgno]
            page.ref = True
            self.hits += 1
            return page
        self.misses += 1
        if self.map_reads and self.map_covers(pgno):
            page = self.read_page_mapped(pgno)
        else:
            page = self.read_page_uncached(pgno)
        if pgno < self.nslots and self.slots[pgno] != NULL:
            return <Page>self.slots[pgno]   # another thread loaded it while the GIL was free
        self._admit(page)
        return page

    cdef int pool_set(self, uint32_t pgno, Page page) except -1:
        cdef Py_ssize_t n
        cdef PyObject **grown
        if pgno >= self.nslots:
            n = max(<Py_ssize_t>pgno + 1, self.nslots * 2, 1024)
            grown = <PyObject **>realloc(self.slots, n * sizeof(PyObject *))
            if grown == NULL:
                raise MemoryError()
            memset(grown + self.nslots, 0, (n - self.nslots) * sizeof(PyObject *))
            self.slots = grown
            self.nslots = n
        cdef PyObject *old = self.slots[pgno]
        Py_INCREF(page)
        self.slots[pgno] = <PyObject *>page
        Py_XDECREF(old)
        return 0

    cdef int pool_del(self, uint32_t pgno) except -1:
        """Drop the pool's page `pgno` (KeyError if none, as a dict would)."""
        cdef PyObject *old
        if pgno >= self.nslots or self.slots[pgno] == NULL:
            raise KeyError(pgno)
        old = self.slots[pgno]
        self.slots[pgno] = NULL
        Py_XDECREF(old)
        return 0

    cdef int pool_clear(self) except -1:
        cdef Py_ssize_t i
        cdef PyObject *old
        for i in range(self.nslots):
            old = self.slots[i]
            if old != NULL:
                self.slots[i] = NULL
                Py_XDECREF(old)
        return 0

    cdef Page pool_get(self, uint32_t pgno):
        """The pool's page `pgno`, or None."""
        if pgno < self.nslots and self.slots[pgno] != NULL:
            return <Page>self.slots[pgno]
        return None

    def __dealloc__(self):
        self.pool_clear()
        c_free(self.slots)
        c_free(self.spilled.birth)

    cdef inline Py_ssize_t ring_cost_of(self, Page page):
        """What one ring entry of `page` counts against cache_size: the page (or a mapped page's
        handle) and its search heads."""
        return (MAPPED_PAGE_COST if page.mapped else self.page_size) + heads_bytes(page)

    cdef int ring_add(self, Page page) except -1:
        self.ring.append(page)
        self.ring_cost += self.ring_cost_of(page)
        page.ring_entries += 1
        return 0

    cdef int ring_drop(self, Py_ssize_t i) except -1:
        """Take entry i out of the ring (the last entry takes its place)."""
        cdef Page page = <Page>self.ring[i]
        cdef Py_ssize_t last = len(self.ring) - 1
        self.ring_cost -= self.ring_cost_of(page)
        page.ring_entries -= 1
        self.ring[i] = self.ring[last]
        self.ring.pop()
        return 0

    cdef int _admit(self, Page page) except -1:
        """Cache a clean page, evicting by CLOCK while over capacity (P3). Budgets are in bytes:
        an owned page counts page_size, a mapped one only its handle (MAPPED_PAGE_COST), each
        plus its search heads' bytes (ring_cost_of)."""
        self.pool_set(page.pgno, page)
        self.ring_add(page)
        page.ref = True
        return self.evict_over()

    cdef int evict_over(self) except -1:
        """Evict clean pages by CLOCK while the ring is over what the dirty pages leave of the
        budget: clean and dirty pages share it, and dirty ones are never evicted (P3)."""
        cdef Page victim
        cdef Py_ssize_t n
        cdef Py_ssize_t ps = self.page_size
        while self.ring_cost > max(8 * ps, (self.capacity - len(self.dirty)) * ps) and self.ring:
            n = len(self.ring)
            if self.hand >= n:
                self.hand = 0
            victim = <Page>self.ring[self.hand]
            if victim.dirty or victim.pgno >= self.nslots or self.slots[victim.pgno] != <PyObject *>victim:
                # Stale entry (became dirty, was freed, or replaced): drop it from the ring.
                self.ring_drop(self.hand)
                continue
            if victim.ref:
                victim.ref = False
                self.hand += 1
                continue
            self.ring_drop(self.hand)
            self.pool_del(victim.pgno)
            self.evictions += 1
        return 0

    cdef int set_heads(self, Page page, uint16_t *heads, uint16_t n, uint8_t cp) except -1:
        """Give a clean page of this pager's pool its search heads (tree_heads.pxi), counted
        against cache_size like the page (A3): only a page with at most one ring entry, this
        pager's, gets them, so the entry's cost stays what ring_drop will take off."""
        page.heads = heads
        page.heads_n = n
        page.heads_cp = cp
        self.ring_cost += heads_bytes(page) * page.ring_entries
        self.heads_built += 1
        return 0

    def _check_ring_cost(self):
        """For tests: (ring_cost, the sum it should be over the ring's entries now)."""
        return self.ring_cost, sum([self.ring_cost_of(<Page>p) for p in self.ring])

    cdef int drop_heads(self, Page page) except -1:
        """Free a page's search heads (before it may change in place: A2)."""
        if page.heads != NULL:
            self.ring_cost -= heads_bytes(page) * page.ring_entries
            c_free(page.heads)
            page.heads = NULL
        page.searches = 0
        return 0

    # -- writing dirty pages ahead of the checkpoint (P7) -------------------

    cdef Py_ssize_t spill_dirty(self, Py_ssize_t keep) except -1:
        """Write dirty leaf and overflow pages (the oldest first) to their own pgnos until at
        most `keep` pages are dirty, and let them be evicted: the OS page cache, not the pool,
        then holds them until the next checkpoint, whose fsync makes them durable. The caller
        holds the writer lock and has made sure this open alone writes the file (P7); no meta
        reaches a dirty page (P1). Branch pages stay dirty: every commit passes through them.
        Returns the pages written. On a write error the pages stay dirty and it raises."""
        cdef Page page
        cdef Py_ssize_t want = len(self.dirty) - keep
        if want <= 0:
            return 0
        pages = []
        for p in self.dirty.values():
            page = <Page>p
            if page.data[OFF_TYPE] != PAGE_BRANCH:
                pages.append(page)
                if len(pages) >= want:
                    break
        if not pages:
            return 0
        pages.sort(key=_pgno_of)
        self.write_pages(pages)
        for p in pages:
            page = <Page>p
            page.dirty = False
            del self.dirty[page.pgno]
            birth_set(&self.spilled, page.pgno, page.birth)
            self.ring_add(page)
        self.pages_spilled += len(pages)
        self.evict_over()
        return len(pages)

    cdef Page redirty(self, Page page, uint64_t max_live):
        """`page` (clean, the pool's) as a dirty page to change in place, if it was written
        ahead (P7) and no snapshot sees it (born after max_live, B4); else None. A page read in
        place from the map is copied first."""
        cdef uint64_t birth = birth_of(&self.spilled, page.pgno)
        cdef Page own
        if birth == 0 or birth <= max_live:
            return None
        if page.mapped:
            own = Page.__new__(Page)
            own.data = <unsigned char *>malloc(self.page_size)
            if own.data == NULL:
                raise MemoryError()
            memcpy(own.data, page.data, self.page_size)
            own.pgno = page.pgno
            own.checked = page.checked
        else:
            own = page
            self.drop_heads(own)             # it changes in place from now on (A2)
        # The pool holds it again even if it was evicted since the tree read it; a ring entry
        # left behind is stale (dirty, or not the pool's) and dropped as CLOCK reaches it.
        self.pool_set(own.pgno, own)
        own.dirty = True
        own.birth = birth
        birth_clear(&self.spilled, own.pgno)
        self.dirty[own.pgno] = own
        return own

    cdef Page alloc(self, uint8_t page_type, uint64_t seq):
        """A new dirty page for the commit `seq`, at a reusable pgno or the end of the file."""
        cdef uint32_t pgno
        if self.free_pages:
            pgno = self.free_pages.pop()
        else:
            if self.page_count >= PAGE_COUNT_LIMIT:
                raise ValueError("database is full: the 32-bit page number space is exhausted")
            pgno = self.page_count
            self.page_count += 1
        cdef Page page = new_page(self.page_size, pgno, page_type)
        page.dirty = True
        page.checked = True
        page.birth = seq
        self.pool_set(pgno, page)
        self.dirty[pgno] = page
        return page

    cdef int free(self, uint32_t pgno, uint64_t seq) except -1:
        """Free `pgno`, replaced or dropped by the commit `seq`; reuse waits per P2."""
        cdef Page found = self.pool_get(pgno)
        if found is not None and found.dirty:
            # Never written: no checkpoint to wait for, but snapshots may still read it,
            # so it stays in the pool (dirty pages are not evicted) until reclaimed.
            self.dirty.pop(pgno, None)
            self.pending_snap.append((seq, pgno))
        elif birth_of(&self.spilled, pgno):
            birth_clear(&self.spilled, pgno)
            # Written ahead, but no meta reaches it (P7): snapshots only, as a dirty page.
            self.pending_snap.append((seq, pgno))
        else:
            self.pending_ckpt.append((seq, pgno))
        return 0

    cdef int reclaim(self, uint64_t min_live_seq) except -1:
        """Move freed pages no snapshot can see (seq <= min_live_seq) to the reusable list."""
        cdef Py_ssize_t i = 0, n = len(self.pending_snap)
        cdef bint moved = False
        while i < n and (<tuple>self.pending_snap[i])[0] <= min_live_seq:
            pgno = (<tuple>self.pending_snap[i])[1]
            found = self.pool_get(pgno)
            if found is not None and (<Page>found).dirty:
                self.pool_del(pgno)
            gen = self.gen_gate.pop(pgno, None) if self.gen_gate else None
            if gen is not None and gen > self.reuse_gen:
                self.pending_gen.append((gen, pgno))     # P5: another open may still read it
                self.pending_gen_min = min(self.pending_gen_min, <uint64_t>gen)
            else:
                self.free_pages.append(pgno)
                moved = True
            i += 1
        if i:
            del self.pending_snap[:i]
        if self.pending_gen and self.pending_gen_min <= self.reuse_gen:
            keep = []
            self.pending_gen_min = UINT64_MAX
            for entry in self.pending_gen:
                gen = (<tuple>entry)[0]
                if gen <= self.reuse_gen:
                    self.free_pages.append((<tuple>entry)[1])
                    moved = True
                else:
                    keep.append(entry)
                    self.pending_gen_min = min(self.pending_gen_min, <uint64_t>gen)
            self.pending_gen = keep
        if moved:
            self.reuse_epoch += 1
        return 0

    # -- checkpoint ------------------------------------------------------

    cdef int write_pages(self, list pages) except -1:
        """Seal and write pages (sorted by pgno); the file coalesces runs of adjacent pages. The
        seals and the writes each run without the GIL in one piece: a checkpoint written beside
        commits does not take the GIL back from the committing thread per page. The pages do not
        change meanwhile (P6; under the writer lock for a checkpoint that holds it)."""
        cdef uint32_t ps = self.page_size
        cdef Py_ssize_t k, n = len(pages)
        cdef uint32_t top = 0
        cdef Page page
        cdef unsigned char **buffers
        cdef uint64_t *offsets
        if n == 0:
            return 0
        buffers = <unsigned char **>malloc(n * sizeof(unsigned char *))
        offsets = <uint64_t *>malloc(n * sizeof(uint64_t))
        try:
            if buffers == NULL or offsets == NULL:
                raise MemoryError()
            for k in range(n):
                page = <Page>pages[k]
                buffers[k] = page.data
                offsets[k] = page.pgno * <uint64_t>ps
                top = max(top, page.pgno + 1)
                if self.fmap is not None:
                    self.fmap.forget(page.pgno)     # V2: untrusted until the write is done
            with nogil:
                for k in range(n):
                    seal_page(buffers[k], ps)
            self.file.pwrite_pages(buffers, offsets, n, ps)
            self.pages_written += n
            self.written_count = max(self.written_count, top)     # the file holds them now (V1)
            if self.map_reads and self.fmap is None:
                self.map_covers(top - 1)        # the map, so it can trust what is written
            if self.fmap is not None:
                for k in range(n):              # V2: the map shows the images just sealed, whose
                    page = <Page>pages[k]       # cells the tree made (checked: it trusts them)
                    self.fmap.trust(page.pgno, page.checked and (page.data[OFF_TYPE] == PAGE_LEAF
                                                                 or page.data[OFF_TYPE] == PAGE_BRANCH))
        finally:
            c_free(buffers)
            c_free(offsets)
        return 0

    def _encode_meta(self, Meta meta, uint32_t slot):
        cdef Page page = new_page(self.page_size, slot, PAGE_META)
        put_u64(page.data + OFF_META_GEN, meta.generation)
        put_u64(page.data + OFF_META_SEQ, meta.seq)
        put_u32(page.data + OFF_META_ROOT, meta.root)
        put_u32(page.data + OFF_META_FREELIST, meta.freelist)
        put_u32(page.data + OFF_META_PAGE_COUNT, meta.page_count)
        put_u64(page.data + OFF_META_ENTRIES, meta.entries)
        put_u64(page.data + OFF_META_EXPIRING, meta.expiring)
        seal_page(page.data, self.page_size)
        return page.raw(self.page_size)

    def checkpoint(self, uint64_t seq, uint32_t root, uint64_t entries, bint mirror, uint64_t expiring=0):
        """Make the version `seq` (tree `root`) durable, all under the writer lock: begin_checkpoint,
        write_checkpoint_pages, write_checkpoint_meta, end_checkpoint (abort_checkpoint on a failure)."""
        cdef CheckpointPlan plan = self.begin_checkpoint(seq, root, entries, expiring)
        try:
            self.write_checkpoint_pages(plan)
            self.write_checkpoint_meta(plan, mirror)
        except BaseException:
            self.abort_checkpoint(plan)
            raise
        self.end_checkpoint(plan)

    cdef CheckpointPlan begin_checkpoint(self, uint64_t seq, uint32_t root, uint64_t entries, uint64_t expiring):
        """What the checkpoint of version `seq` writes (writer lock held; quick, in memory):
        1. the freelist of that version, in pages reserved past the high-water mark;
        2. every dirty page, which from now on is written, not changed: `dirty` is cleared (so a
           commit copies the page before changing it, B4, and a page freed from now on waits
           as an on-disk page does, P2) while the page stays in the pool, out of the CLOCK ring
           until end_checkpoint (so it is not evicted before it is on disk, P3);
        3. the on-disk pages freed so far, which the new meta no longer reaches (P6)."""
        cdef uint32_t ps = self.page_size
        cdef uint32_t per = (ps - PAGE_HEADER_SIZE) // 4
        cdef Page page
        cdef uint32_t i, n_fl
        cdef Py_ssize_t k
        cdef uint32_t fpg
        cdef CheckpointPlan plan = CheckpointPlan.__new__(CheckpointPlan)
        free_now = list(self.free_pages)
        free_now.extend([p for _, p in self.pending_snap])
        free_now.extend([p for _, p in self.pending_ckpt])
        free_now.extend([p for _, p in self.pending_gen])
        free_now.extend(self.freelist_pages)
        free_now.sort()
        n_fl = (len(free_now) + per - 1) // per
        if <uint64_t>self.page_count + n_fl >= PAGE_COUNT_LIMIT:
            raise ValueError("database is full: the 32-bit page number space is exhausted")
        fl_pages = []
        for i in range(n_fl):
            page = new_page(ps, self.page_count + i, PAGE_FREELIST)
            chunk = free_now[i * per:(i + 1) * per]
            for k in range(len(chunk)):
                fpg = chunk[k]
                put_u32(page.data + PAGE_HEADER_SIZE + 4 * k, fpg)
            put_u16(page.data + OFF_LOWER, len(chunk))
            put_u32(page.data + OFF_LINK, self.page_count + i + 1 if i + 1 < n_fl else 0)
            fl_pages.append(page)
        plan.saved_count = self.page_count
        self.page_count += n_fl              # reserved: commits from now on allocate past them
        plan.pages = sorted(self.dirty.values(), key=_pgno_of)
        for p in plan.pages:
            (<Page>p).dirty = False
        self.dirty = {}
        plan.fl_pages = fl_pages
        plan.spilled = self.spilled         # durable with this checkpoint's fsync (P7)
        self.spilled.birth = NULL           # the plan owns the array now
        self.spilled.slots = 0
        self.spilled.count = 0
        plan.moved = self.pending_ckpt
        self.pending_ckpt = []
        meta = Meta()
        meta.generation = self.meta.generation + 1
        meta.seq = seq
        meta.root = root
        meta.freelist = (<Page>fl_pages[0]).pgno if fl_pages else 0
        meta.page_count = self.page_count
        meta.entries = entries
        meta.expiring = expiring
        plan.meta = meta
        return plan

    cdef int write_checkpoint_pages(self, CheckpointPlan plan) except -1:
        """Write the plan's pages and freelist, fsync. None of them is reachable from the
        durable meta (P1), and no commit changes them (P6): needs the checkpoint exclusion,
        not the writer lock."""
        self.write_pages(plan.pages + plan.fl_pages)
        self.file.sync()
        return 0

    cdef int write_checkpoint_meta(self, CheckpointPlan plan, bint mirror) except -1:
        """After write_checkpoint_pages: the plan's meta to the slot the durable meta was not
        read from, fsync: the version is durable. With `mirror`, the meta is then copied to the
        other slot as well (clean close), so a later bit flip in either meta page still leaves a
        whole one. Writer lock held, and with other opens the commit mutex, so that an open that
        joins or rebases never finds a meta the shared memory does not announce (O1)."""
        cdef uint32_t ps = self.page_size
        # never overwrite the meta the durable version was read from
        plan.slot = META_PGNO_B if self.meta_slot == META_PGNO_A else META_PGNO_A
        self.file.write_at(plan.slot * <uint64_t>ps, self._encode_meta(plan.meta, plan.slot))
        self.file.sync()
        plan.mirrored = False
        if mirror:
            other = META_PGNO_B if plan.slot == META_PGNO_A else META_PGNO_A
            self.file.write_at(other * <uint64_t>ps, self._encode_meta(plan.meta, other))
            self.file.sync()
            plan.mirrored = True
        return 0

    cdef int end_checkpoint(self, CheckpointPlan plan) except -1:
        """The plan's meta is durable (writer lock held): its pages become clean and evictable,
        and the pages it stopped reaching wait for the snapshots (P2) and other opens (P5)."""
        cdef Page page
        self.meta_slot = plan.slot
        self.mirrored = plan.mirrored
        for p in plan.pages:
            page = <Page>p
            if self.pool_get(page.pgno) is page:
                self.ring_add(page)
        old_fl = self.freelist_pages
        self.freelist_pages = [(<Page>p).pgno for p in plan.fl_pages]
        moved = plan.moved
        moved.extend([(plan.meta.seq + 1, p) for p in old_fl])
        if self.shared:
            for _, p in moved:
                self.gen_gate[p] = plan.meta.generation     # P5: opens on older metas may read them
        if moved:
            self.pending_snap.extend(moved)
            self.pending_snap.sort()
        self.meta = plan.meta
        self.checkpoints += 1
        birth_free(&plan.spilled)           # on disk with this meta: pages like any other now
        # Trim the ring back under capacity now that it holds the freshly written pages.
        if self.ring_cost > max(8, self.capacity - len(self.dirty)) * <Py_ssize_t>self.page_size and self.ring:
            page = <Page>self.ring[len(self.ring) - 1]
            self.ring_drop(len(self.ring) - 1)
            if not page.dirty and page.pgno < self.nslots and self.slots[page.pgno] == <PyObject *>page:
                self._admit(page)               # (a stale entry is only dropped: _admit would
                                                # put it back over the page the pool holds now)
        return 0

    cdef int abort_checkpoint(self, CheckpointPlan plan) except -1:
        """Writing the checkpoint failed (writer lock held; the database then refuses writes): the
        pages freed before it began wait again, and the plan's pages, which the file may not hold,
        stay dirty, so they are never evicted and re-read."""
        plan.moved.extend(self.pending_ckpt)
        self.pending_ckpt = plan.moved
        cdef uint32_t pgno
        if plan.spilled.count:
            # still reached by no meta: they stay written ahead, but for the ones freed since
            freed = {p for _, p in self.pending_ckpt}
            for pgno in range(plan.spilled.slots):
                if plan.spilled.birth[pgno] and pgno not in freed:
                    birth_set(&self.spilled, pgno, plan.spilled.birth[pgno])
        birth_free(&plan.spilled)
        for p in plan.pages:
            if self.pool_get((<Page>p).pgno) is p:
                self.drop_heads(<Page>p)        # dirty again: it may change in place (A2)
                (<Page>p).dirty = True
                self.dirty[(<Page>p).pgno] = p
        if self.page_count == plan.saved_count + len(plan.fl_pages):
            self.page_count = plan.saved_count      # nothing allocated since: the reservation goes
        return 0

    def stats(self):
        return {
            "page_size": self.page_size,
            "pages": self.page_count,
            "cache_pages": len(self.ring),
            "cache_pages_mapped": sum([1 for p in self.ring if (<Page>p).mapped]),
            "cache_capacity_pages": self.capacity,
            "dirty_pages": len(self.dirty),
            "spilled_pages": self.spilled.count,
            "pages_spilled": self.pages_spilled,
            "free_pages": len(self.free_pages),
            "pending_free_pages": len(self.pending_snap) + len(self.pending_ckpt) + len(self.pending_gen),
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "cache_evictions": self.evictions,
            "pages_read": self.pages_read,
            "pages_written": self.pages_written,
            "pages_checked": self.pages_checked,
            "layouts_checked": self.layouts_checked,
            "cache_bytes": self.ring_cost,
            "search_heads_built": self.heads_built,
            "read_path": "mmap" if self.map_reads else "pread",
            "mapped_pages": self.fmap.pages if self.fmap is not None else 0,
            "checkpoints": self.checkpoints,
        }

    # -- used by Database.backup to build a copy through a second Pager ---

    def adopt(self, uint32_t pgno, bytes raw):
        """Take a copy of another file's page as a dirty page at the same pgno."""
        cdef Page page = new_page(self.page_size, pgno, 0)
        memcpy(page.data, <const char *>raw, self.page_size)
        page.dirty = True
        self.pool_set(pgno, page)
        self.dirty[pgno] = page

    def spill(self):
        """Write the dirty pages without a meta page and drop them from memory. Only for a
        file no meta yet reaches (a backup being built), where P1 cannot be broken."""
        pages = sorted(self.dirty.values(), key=_pgno_of)
        self.write_pages(pages)
        for p in pages:
            self.pool_del((<Page>p).pgno)
        self.dirty = {}

    def get_raw(self, uint32_t pgno):
        cdef Page page = self.get(pgno)
        return page.raw(self.page_size)

    def set_page_count(self, uint32_t count, list free):
        self.page_count = count
        self.free_pages = list(free)

    def close(self):
        self.closed = True
        self.file.close()
        self.pool_clear()
        self.ring = []
        self.ring_cost = 0
        self.dirty = {}
        birth_free(&self.spilled)


def _pgno_of(Page page):
    return page.pgno


def reclaim_pages(Pager pager, uint64_t min_live_seq):
    """Python entry to Pager.reclaim (for the database layer and tests)."""
    pager.reclaim(min_live_seq)

