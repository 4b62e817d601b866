# The copy-on-write B+Tree (see btree.pxd for the cell formats and invariants).

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc
from libc.string cimport memcmp, memcpy, memmove

from kvdb._core.coding cimport (get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, get_varint, put_varint,
                                varint_len)
from kvdb._core.btree.pager cimport (Page, Pager, PAGE_HEADER_SIZE, PAGE_BRANCH, PAGE_LEAF, PAGE_OVERFLOW,
                               OFF_TYPE, OFF_NCELLS, OFF_LINK, OFF_LOWER, OFF_UPPER, OFF_FRAG, OFF_PGNO)

from kvdb._core.btree.filemap cimport FileMap
from kvdb.errors import CorruptionError


cdef extern from *:
    """
    #define KVDB_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3)
    """
    void KVDB_PREFETCH(const void *p) noexcept nogil

# -- slotted page primitives (pure C, the page already validated) ------------

cdef inline int ncells(const unsigned char *d) noexcept nogil:
    return get_u16(d + OFF_NCELLS)

cdef inline uint32_t cell_off(const unsigned char *d, int i) noexcept nogil:
    return get_u16(d + PAGE_HEADER_SIZE + 2 * i)

cdef inline uint32_t upper_of(const unsigned char *d, uint32_t ps) noexcept nogil:
    cdef uint32_t u = get_u16(d + OFF_UPPER)
    return ps if u == 0 else u

cdef inline int is_leaf(const unsigned char *d) noexcept nogil:
    return d[OFF_TYPE] == PAGE_LEAF

cdef inline uint32_t child_at(const unsigned char *d, int i) noexcept nogil:
    """Child slot i of a branch: cell i's child, or the rightmost child when i == ncells."""
    if i >= ncells(d):
        return get_u32(d + OFF_LINK)
    return get_u32(d + cell_off(d, i))

cdef inline void set_child(unsigned char *d, int i, uint32_t pgno) noexcept nogil:
    if i >= ncells(d):
        put_u32(d + OFF_LINK, pgno)
    else:
        put_u32(d + cell_off(d, i), pgno)

cdef inline Py_ssize_t key_part_size(const unsigned char *p, const unsigned char *end) noexcept nogil:
    """Bytes of a key part (flags, klen, key bytes) starting at p; -1 if malformed: a key
    longer than CELL_MAX_KEY, an inline key running past end, a spilled key no longer than
    the prefix kept in the page."""
    cdef uint64_t klen
    cdef const unsigned char *q
    if p >= end:
        return -1
    q = get_varint(p + 1, end, &klen)
    if q == NULL or klen > CELL_MAX_KEY:
        return -1
    if p[0] & CELL_KEY_OVERFLOW:
        if klen <= KEY_PREFIX_LEN or KEY_PREFIX_LEN + 4 > end - q:
            return -1
        return (q - p) + KEY_PREFIX_LEN + 4
    if klen > <uint64_t>(end - q):
        return -1
    return (q - p) + <Py_ssize_t>klen

cdef inline const unsigned char *leaf_vlen_at(const unsigned char *p, const unsigned char *end) noexcept nogil:
    """Where a (validated) leaf cell's value length starts: after the key part and the expiry."""
    cdef const unsigned char *q = p + key_part_size(p, end)
    if p[0] & CELL_EXPIRES:
        q += EXPIRES_SIZE
    return q

cdef inline uint64_t cell_expires(const unsigned char *p, const unsigned char *end) noexcept nogil:
    """A (validated) leaf cell's expiry in wall-clock ms; 0 when it has none."""
    if p[0] & CELL_EXPIRES:
        return get_u64(p + key_part_size(p, end))
    return 0

cdef inline bint expired(uint64_t expires, uint64_t now) noexcept nogil:
    return expires != 0 and now != 0 and expires <= now

cdef Py_ssize_t cell_size(const unsigned char *d, uint32_t off, uint32_t ps) noexcept nogil:
    """Total bytes of the cell at `off`; -1 if it does not fit the page."""
    cdef const unsigned char *p = d + off
    cdef const unsigned char *end = d + ps
    cdef uint64_t klen, vlen
    cdef const unsigned char *q
    cdef Py_ssize_t n
    if off < PAGE_HEADER_SIZE or off >= ps:
        return -1
    if is_leaf(d):
        n = key_part_size(p, end)
        if n < 0:
            return -1
        if p[0] & CELL_EXPIRES:
            n += EXPIRES_SIZE
        if off + n >= ps:
            return -1
        q = get_varint(p + n, end, &vlen)
        if q == NULL or vlen > CELL_MAX_VALUE:
            return -1
        if p[0] & CELL_VALUE_OVERFLOW:
            if vlen == 0:
                return -1
            vlen = 4
        elif vlen > <uint64_t>(end - q):
            return -1
        n = (q - p) + <Py_ssize_t>vlen
    else:
        if off + 5 > ps:
            return -1
        n = key_part_size(p + 4, end)
        if n < 0:
            return -1
        n += 4
    if off + n > ps or n <= 0:
        return -1
    return n

cdef void page_reset(unsigned char *d, uint32_t ps) noexcept nogil:
    put_u16(d + OFF_NCELLS, 0)
    put_u16(d + OFF_LOWER, PAGE_HEADER_SIZE)
    put_u16(d + OFF_UPPER, <uint16_t>(ps if ps < 65536 else 0))
    put_u16(d + OFF_FRAG, 0)

cdef Py_ssize_t used_bytes(const unsigned char *d, uint32_t ps) noexcept nogil:
    return (get_u16(d + OFF_LOWER) - PAGE_HEADER_SIZE) + (ps - upper_of(d, ps)) - get_u16(d + OFF_FRAG)

cdef void page_defrag(unsigned char *d, uint32_t ps, unsigned char *scratch) noexcept nogil:
    """Pack all cells at the end of the page, removing fragmentation."""
    cdef int n = ncells(d), i
    cdef uint32_t up = ps, off
    cdef Py_ssize_t sz
    memcpy(scratch, d, ps)
    for i in range(n):
        off = cell_off(scratch, i)
        sz = cell_size(scratch, off, ps)
        up -= sz
        memcpy(d + up, scratch + off, sz)
        put_u16(d + PAGE_HEADER_SIZE + 2 * i, up)
    put_u16(d + OFF_UPPER, <uint16_t>up)
    put_u16(d + OFF_FRAG, 0)

cdef int page_insert(unsigned char *d, uint32_t ps, int i, const unsigned char *cell, Py_ssize_t size,
                     unsigned char *scratch) noexcept nogil:
    """Insert a cell at position i; 0 on success, -1 if the page has no room."""
    cdef uint32_t lower = get_u16(d + OFF_LOWER), up = upper_of(d, ps)
    cdef int n = ncells(d)
    if <Py_ssize_t>(up - lower) < size + 2:
        if <Py_ssize_t>(up - lower) + get_u16(d + OFF_FRAG) < size + 2:
            return -1
        page_defrag(d, ps, scratch)
        up = upper_of(d, ps)
        if <Py_ssize_t>(up - lower) < size + 2:
            return -1           # `frag` overstated the free bytes (a checked page never does)
    up -= size
    memcpy(d + up, cell, size)
    memmove(d + PAGE_HEADER_SIZE + 2 * (i + 1), d + PAGE_HEADER_SIZE + 2 * i, 2 * (n - i))
    put_u16(d + PAGE_HEADER_SIZE + 2 * i, up)
    put_u16(d + OFF_NCELLS, n + 1)
    put_u16(d + OFF_LOWER, lower + 2)
    put_u16(d + OFF_UPPER, <uint16_t>up)
    return 0

cdef void page_remove(unsigned char *d, uint32_t ps, int i) noexcept nogil:
    cdef int n = ncells(d)
    cdef uint32_t off = cell_off(d, i), up = upper_of(d, ps)
    cdef Py_ssize_t sz = cell_size(d, off, ps)
    if off == up:
        put_u16(d + OFF_UPPER, <uint16_t>(up + sz))
    else:
        put_u16(d + OFF_FRAG, get_u16(d + OFF_FRAG) + sz)
    memmove(d + PAGE_HEADER_SIZE + 2 * i, d + PAGE_HEADER_SIZE + 2 * (i + 1), 2 * (n - i - 1))
    put_u16(d + OFF_NCELLS, n - 1)
    put_u16(d + OFF_LOWER, get_u16(d + OFF_LOWER) - 2)


cdef bytes cell_bytes(Page page, int i, uint32_t ps):
    cdef uint32_t off = cell_off(page.data, i)
    return PyBytes_FromStringAndSize(<char *>page.data + off, cell_size(page.data, off, ps))


cdef bytes shortest_separator(bytes left, bytes right):
    """The shortest s with left < s <= right (right > left)."""
    cdef Py_ssize_t i = 0, n = min(len(left), len(right))
    while i < n and left[i] == right[i]:
        i += 1
    return right[:i + 1]


include "tree_heads.pxi"


cdef class BTree:
    def __init__(self, Pager pager, uint32_t root, uint64_t entries):
        self.pager = pager
        self.ps = pager.page_size
        self.max_cell = (self.ps - PAGE_HEADER_SIZE) // 4 - 2
        self.root = root
        self.entries = entries
        self.expiring = 0
        self.seq = 0
        self.max_live = 0
        self.path = []
        self.depth = 0
        self.scratch = PyBytes_FromStringAndSize(NULL, self.ps)
        self.cellbuf = PyBytes_FromStringAndSize(NULL, self.ps)

    # -- reading ---------------------------------------------------------

    cdef Page load(self, uint32_t pgno):
        cdef Page page = self.pager.get(pgno)
        if not page.checked:
            self._check_layout(page)
        return page

    def _check_layout(self, Page page):
        """Validate a page's cell array once, so the C paths can trust it."""
        cdef unsigned char *d = page.data
        cdef int n, i
        cdef uint32_t lower, up, off
        cdef Py_ssize_t sz
        t = d[OFF_TYPE]
        if t != PAGE_BRANCH and t != PAGE_LEAF:
            raise CorruptionError(f"{self.pager.path}: page {page.pgno} is a {t} page where the tree needs a "
                                  "branch or leaf", path=self.pager.path, pgno=page.pgno)
        n = ncells(d)
        lower = get_u16(d + OFF_LOWER)
        up = upper_of(d, self.ps)
        if lower != PAGE_HEADER_SIZE + 2 * n or lower > up or up > self.ps:
            raise CorruptionError(f"{self.pager.path}: page {page.pgno} has a bad cell array "
                                  f"(ncells {n}, lower {lower}, upper {up})", path=self.pager.path, pgno=page.pgno)
        cdef Py_ssize_t total = 0
        for i in range(n):
            off = cell_off(d, i)
            sz = cell_size(d, off, self.ps) if off >= up else -1
            if sz < 0:
                raise CorruptionError(f"{self.pager.path}: page {page.pgno} cell {i} at offset {off} is malformed",
                                      path=self.pager.path, pgno=page.pgno)
            total += sz
        # The cell area [upper, page end) holds the cells and `frag` bytes lost between them; a
        # larger frag would let an insert defragment into the cell pointer array.
        if total + get_u16(d + OFF_FRAG) > self.ps - up:
            raise CorruptionError(f"{self.pager.path}: page {page.pgno} claims {get_u16(d + OFF_FRAG)} fragmented "
                                  f"bytes, but its cells fill {total} of the {self.ps - up}-byte cell area",
                                  path=self.pager.path, pgno=page.pgno)
        page.checked = True
        self.pager.layouts_checked += 1
        if page.mapped:
            (<FileMap>page.owner).set_laid_out(page.pgno)  # a later handle for it is trusted too (V2)

    cdef bytes full_key(self, const unsigned char *kp, const unsigned char *end):
        """The whole key of a key part (reading its overflow chain if it has one)."""
        cdef uint64_t klen
        cdef const unsigned char *q = get_varint(kp + 1, end, &klen)
        if not kp[0] & CELL_KEY_OVERFLOW:
            return PyBytes_FromStringAndSize(<const char *>q, klen)
        return self.read_overflow(get_u32(q + KEY_PREFIX_LEN), klen)

    cdef int cmp_key(self, const unsigned char *kp, const unsigned char *end,
                     const unsigned char *k, Py_ssize_t klen) except -2:
        """Sign of (the key of key part kp) - k."""
        cdef uint64_t clen
        cdef const unsigned char *q = get_varint(kp + 1, end, &clen)
        cdef Py_ssize_t n
        cdef int r
        cdef bytes full
        if not kp[0] & CELL_KEY_OVERFLOW:
            n = clen if <Py_ssize_t>clen < klen else klen
            r = memcmp(q, k, n)
            if r:
                return 1 if r > 0 else -1
            return (<Py_ssize_t>clen > klen) - (<Py_ssize_t>clen < klen)
        n = KEY_PREFIX_LEN if KEY_PREFIX_LEN < klen else klen
        r = memcmp(q, k, n)
        if r:
            return 1 if r > 0 else -1
        if klen <= KEY_PREFIX_LEN:
            return 1            # the stored key is longer than the prefix, k is not
        full = self.full_key(kp, end)
        n = clen if <Py_ssize_t>clen < klen else klen
        r = memcmp(PyBytes_AS_STRING(full), k, n)
        if r:
            return 1 if r > 0 else -1
        return (<Py_ssize_t>clen > klen) - (<Py_ssize_t>clen < klen)

    cdef int search(self, Page page, const unsigned char *k, Py_ssize_t klen, bint upper, bint *found) except -1:
        """First cell whose key is >= k (or > k with `upper`); sets *found on an exact match.
        Through the page's search heads where it has them (tree_heads.pxi), else over its cells."""
        cdef int i
        if heads_ready(page, self.pager, self.ps):
            i = heads_search(page, self.pager, k, klen, upper, found)
            if i >= 0:
                return i
        return self.search_cells(page, k, klen, upper, found)

    cdef int search_cells(self, Page page, const unsigned char *k, Py_ssize_t klen, bint upper,
                          bint *found) except -1:
        """search() by a binary search over the page's cells."""
        cdef const unsigned char *d = page.data
        cdef const unsigned char *end = d + self.ps
        cdef int lo = 0, hi = ncells(d), mid, c
        cdef int kp_shift = 0 if is_leaf(d) else 4
        cdef const unsigned char *kp
        cdef Py_ssize_t clen, n
        found[0] = False
        while lo < hi:
            mid = (lo + hi) >> 1
            # The cells are scattered over the page: fetch both cells the next step may probe
            # while this one is compared, so their cache misses overlap.
            if lo < mid:
                KVDB_PREFETCH(d + cell_off(d, (lo + mid) >> 1))
            if mid + 1 < hi:
                KVDB_PREFETCH(d + cell_off(d, (mid + 1 + hi) >> 1))
            kp = d + cell_off(d, mid) + kp_shift
            if kp[0] & CELL_KEY_OVERFLOW == 0 and kp[1] < 0x80:
                # inline key with a one-byte length: compare right here
                clen = kp[1]
                n = clen if clen < klen else klen
                c = memcmp(kp + 2, k, n)
                if c == 0:
                    c = (clen > klen) - (clen < klen)
            else:
                c = self.cmp_key(kp, end, k, klen)
            if c < 0 or (upper and c == 0):
                lo = mid + 1
            else:
                if c == 0:
                    found[0] = True
                hi = mid
        return lo

    def _check_search(self, list keys):
        """For tests (A1): on every page of the tree, a search through the page's heads (built
        here where the page may have them) answers as the search over its cells, for each of
        `keys`, both ways (>= and >). Returns (pages searched through heads, pages); raises
        AssertionError naming the page and key of the first difference."""
        cdef list todo = [self.root] if self.root else []
        cdef Py_ssize_t with_heads = 0, pages = 0
        cdef Page page
        cdef int i, want, got, upper
        cdef bint want_found, got_found
        cdef bytes key
        while todo:
            page = self.load(<uint32_t>todo.pop())
            pages += 1
            if not is_leaf(page.data):
                todo.extend([child_at(page.data, i) for i in range(ncells(page.data) + 1)])
            heads_ready(page, self.pager, self.ps)      # counts a first search
            if not heads_ready(page, self.pager, self.ps):
                continue
            with_heads += 1
            for key in keys:
                for upper in range(2):
                    want = self.search_cells(page, <const unsigned char *>PyBytes_AS_STRING(key),
                                             PyBytes_GET_SIZE(key), upper, &want_found)
                    got = heads_search(page, self.pager, <const unsigned char *>PyBytes_AS_STRING(key),
                                       PyBytes_GET_SIZE(key), upper, &got_found)
                    if (got, got_found) != (want, want_found):
                        raise AssertionError(f"page {page.pgno} ({'leaf' if is_leaf(page.data) else 'branch'}, "
                                             f"prefix {page.heads_cp} bytes), key {key!r}, upper={upper}: "
                                             f"heads {(got, got_found)}, cells {(want, want_found)}")
        return with_heads, pages

    cdef bytes read_overflow(self, uint32_t pgno, uint64_t total):
        """The `total` bytes stored in the overflow chain starting at pgno."""
        cdef uint32_t n, cap = self.ps - PAGE_HEADER_SIZE
        if total > CELL_MAX_VALUE or total > <uint64_t>self.pager.page_count * cap:
            # checked before allocating: a lying length must not become a MemoryError
            raise CorruptionError(f"{self.pager.path}: overflow chain at page {pgno} claims {total} bytes, more "
                                  "than a value may hold or the file has", path=self.pager.path, pgno=pgno)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
        cdef char *dst = PyBytes_AS_STRING(out)
        cdef uint64_t done = 0
        cdef Page page
        cdef Py_ssize_t hops = 0
        while done < total:
            if pgno == 0 or hops > (total // cap) + 1:
                raise CorruptionError(f"{self.pager.path}: overflow chain ends after {done} of {total} bytes",
                                      path=self.pager.path, pgno=pgno)
            page = self.pager.get(pgno)
            n = get_u16(page.data + OFF_LOWER)
            if page.data[OFF_TYPE] != PAGE_OVERFLOW or n > cap or n > total - done or n == 0:
                raise CorruptionError(f"{self.pager.path}: page {pgno} is not a valid overflow page",
                                      path=self.pager.path, pgno=pgno)
            memcpy(dst + done, page.data + PAGE_HEADER_SIZE, n)
            done += n
            pgno = get_u32(page.data + OFF_LINK)
            hops += 1
        return out

    cdef object leaf_value(self, Page page, int i):
        cdef const unsigned char *d = page.data
        cdef const unsigned char *p = d + cell_off(d, i)
        cdef const unsigned char *end = d + self.ps
        cdef uint64_t vlen
        cdef const unsigned char *q = get_varint(leaf_vlen_at(p, end), end, &vlen)
        if p[0] & CELL_VALUE_OVERFLOW:
            return self.read_overflow(get_u32(q), vlen)
        return PyBytes_FromStringAndSize(<const char *>q, vlen)

    cdef uint64_t leaf_expires(self, Page page, int i):
        return cell_expires(page.data + cell_off(page.data, i), page.data + self.ps)

    cdef bytes leaf_key(self, Page page, int i):
        return self.full_key(page.data + cell_off(page.data, i), page.data + self.ps)

    cdef Page find_leaf(self, uint32_t root, bytes key, bint pinned, int *pos):
        """The leaf holding `key` in the version rooted at `root` (None if absent), its cell in *pos.

        An unpinned read (no snapshot) restarts if freed pages were reused while
        it waited for the disk with the GIL released (P2 covers pinned readers);
        the caller must then read the cell before it gives up the GIL again.
        """
        cdef const unsigned char *k = <const unsigned char *>PyBytes_AS_STRING(key)
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
        cdef uint64_t epoch
        cdef uint32_t pgno
        cdef Page page, result
        cdef bint found
        cdef int i, levels
        while True:
            epoch = self.pager.reuse_epoch
            if not pinned:
                root = self.root
            pgno = root
            result = None
            levels = 0
            while pgno:
                page = self.load(pgno)
                if is_leaf(page.data):
                    i = self.search(page, k, klen, False, &found)
                    if found:
                        result = page
                        pos[0] = i
                    break
                i = self.search(page, k, klen, True, &found)
                pgno = child_at(page.data, i)
                levels += 1
                if levels > MAX_DEPTH:
                    raise CorruptionError(f"{self.pager.path}: tree deeper than {MAX_DEPTH} levels at page {pgno}",
                                          path=self.pager.path, pgno=pgno)
            if pinned or self.pager.reuse_epoch == epoch:
                return result

    cpdef object get(self, uint32_t root, bytes key, bint pinned, uint64_t now):
        """The value of `key` in the version rooted at `root`, or None (also when the key's
        expiry is at or before `now`, wall-clock ms; 0 ignores expiries)."""
        cdef int pos = 0
        cdef Page leaf
        cdef uint64_t epoch
        while True:
            epoch = self.pager.reuse_epoch
            leaf = self.find_leaf(root, key, pinned, &pos)
            if leaf is None or expired(self.leaf_expires(leaf, pos), now):
                return None
            value = self.leaf_value(leaf, pos)     # may wait for overflow pages without the GIL
            if pinned or self.pager.reuse_epoch == epoch:
                return value

    cpdef object get_entry(self, uint32_t root, bytes key, bint pinned):
        """(value, expires) of `key`, expired or not (expires 0 = none), or None if absent."""
        cdef int pos = 0
        cdef Page leaf
        cdef uint64_t epoch
        while True:
            epoch = self.pager.reuse_epoch
            leaf = self.find_leaf(root, key, pinned, &pos)
            if leaf is None:
                return None
            entry = (self.leaf_value(leaf, pos), self.leaf_expires(leaf, pos))
            if pinned or self.pager.reuse_epoch == epoch:
                return entry

    # -- writing ---------------------------------------------------------

    cdef Page writable(self, Page page):
        """The page itself if no snapshot can see it, else a copy (B4)."""
        if page.dirty and page.birth > self.max_live:
            return page
        cdef Page copy
        if self.pager.spilled.count:
            copy = self.pager.redirty(page, self.max_live)   # written ahead, no meta reaches it (P7)
            if copy is not None:
                return copy
        copy = self.pager.alloc(page.data[OFF_TYPE], self.seq)
        memcpy(copy.data, page.data, self.ps)
        put_u32(copy.data + OFF_PGNO, copy.pgno)
        self.pager.free(page.pgno, self.seq)
        return copy

    cdef int descend(self, const unsigned char *k, Py_ssize_t klen) except -1:
        """Fill path/idx with the pages from the root to the leaf for k."""
        cdef Page page
        cdef uint32_t pgno = self.root
        cdef bint found
        cdef int i
        self.path = []
        self.depth = 0
        while True:
            page = self.load(pgno)
            self.path.append(page)
            self.depth += 1
            if is_leaf(page.data):
                return 0
            if self.depth >= MAX_DEPTH:
                raise CorruptionError(f"{self.pager.path}: tree deeper than {MAX_DEPTH} levels",
                                      path=self.pager.path, pgno=pgno)
            i = self.search(page, k, klen, True, &found)
            self.idx[self.depth - 1] = i
            pgno = child_at(page.data, i)

    cdef int make_path_writable(self) except -1:
        cdef int level
        cdef Page page, w
        for level in range(self.depth):
            page = <Page>self.path[level]
            w = self.writable(page)
            if w is not page:
                self.path[level] = w
                if level == 0:
                    self.root = w.pgno
                else:
                    set_child((<Page>self.path[level - 1]).data, self.idx[level - 1], w.pgno)
        return 0

    cdef uint32_t write_overflow(self, const unsigned char *src, uint64_t n) except 0:
        """Store n bytes in a new chain of overflow pages; returns its first pgno."""
        cdef uint32_t cap = self.ps - PAGE_HEADER_SIZE, chunk
        cdef uint64_t done = 0
        cdef Page page, prev = None
        cdef uint32_t first = 0
        while done < n:
            chunk = cap if n - done > cap else <uint32_t>(n - done)
            page = self.pager.alloc(PAGE_OVERFLOW, self.seq)
            memcpy(page.data + PAGE_HEADER_SIZE, src + done, chunk)
            put_u16(page.data + OFF_LOWER, <uint16_t>chunk)
            if prev is None:
                first = page.pgno
            else:
                put_u32(prev.data + OFF_LINK, page.pgno)
            prev = page
            done += chunk
        return first

    cdef int free_overflow(self, uint32_t pgno, uint64_t total) except -1:
        cdef Page page
        cdef uint32_t cap = self.ps - PAGE_HEADER_SIZE
        cdef uint64_t pages = (total + cap - 1) // cap, i
        for i in range(pages):
            if pgno == 0:
                break
            page = self.pager.get(pgno)
            if page.data[OFF_TYPE] != PAGE_OVERFLOW:
                raise CorruptionError(f"{self.pager.path}: page {pgno} is not a valid overflow page",
                                      path=self.pager.path, pgno=pgno)
            nxt = get_u32(page.data + OFF_LINK)
            self.pager.free(pgno, self.seq)
            pgno = nxt
        return 0

    cdef int free_cell_chains(self, const unsigned char *p, bint leaf) except -1:
        """Free the overflow chains a cell owns (its key's, and a leaf cell's value's)."""
        cdef const unsigned char *end = p + self.ps
        cdef uint64_t klen, vlen = 0
        cdef const unsigned char *q
        if not leaf:
            p += 4
        q = get_varint(p + 1, end, &klen)
        if p[0] & CELL_KEY_OVERFLOW:
            self.free_overflow(get_u32(q + KEY_PREFIX_LEN), klen)
            q += KEY_PREFIX_LEN + 4
        else:
            q += klen
        if leaf and p[0] & CELL_EXPIRES:
            q += EXPIRES_SIZE
        if leaf:
            q = get_varint(q, end, &vlen)
        if leaf and p[0] & CELL_VALUE_OVERFLOW:
            self.free_overflow(get_u32(q), vlen)
        return 0

    cdef bytes encode_key_part(self, bytes key, unsigned char flags, Py_ssize_t room):
        """flags|klen|key, spilling the key to overflow when it exceeds `room`."""
        cdef Py_ssize_t klen = len(key)
        cdef unsigned char buf[16]
        cdef unsigned char *q
        if 1 + varint_len(klen) + klen <= room:
            buf[0] = flags
            q = put_varint(buf + 1, klen)
            return PyBytes_FromStringAndSize(<char *>buf, q - buf) + key
        buf[0] = flags | CELL_KEY_OVERFLOW
        q = put_varint(buf + 1, klen)
        pg = self.write_overflow(<const unsigned char *>PyBytes_AS_STRING(key), klen)
        return PyBytes_FromStringAndSize(<char *>buf, q - buf) + key[:KEY_PREFIX_LEN] + pg.to_bytes(4, "little")

    cdef bytes encode_leaf_cell(self, bytes key, bytes value, uint64_t expires):
        cdef Py_ssize_t klen = len(key), vlen = len(value)
        cdef unsigned char buf[24]
        cdef unsigned char *q
        cdef unsigned char flags = CELL_EXPIRES if expires else 0
        cdef Py_ssize_t head = 1 + varint_len(klen) + varint_len(vlen) + (EXPIRES_SIZE if expires else 0)
        cdef bint key_inline, value_inline
        key_inline = head + klen + 4 <= self.max_cell
        if key_inline:
            value_inline = head + klen + vlen <= self.max_cell
        else:
            value_inline = head + KEY_PREFIX_LEN + 4 + vlen <= self.max_cell
        if not key_inline:
            flags |= CELL_KEY_OVERFLOW
        if not value_inline:
            flags |= CELL_VALUE_OVERFLOW
        buf[0] = flags
        q = put_varint(buf + 1, klen)
        parts = [PyBytes_FromStringAndSize(<char *>buf, q - buf)]
        if key_inline:
            parts.append(key)
        else:
            pg = self.write_overflow(<const unsigned char *>PyBytes_AS_STRING(key), klen)
            parts.append(key[:KEY_PREFIX_LEN])
            parts.append(pg.to_bytes(4, "little"))
        if expires:
            parts.append(expires.to_bytes(EXPIRES_SIZE, "little"))
        q = put_varint(buf, vlen)
        parts.append(PyBytes_FromStringAndSize(<char *>buf, q - buf))
        if value_inline:
            parts.append(value)
        else:
            pg = self.write_overflow(<const unsigned char *>PyBytes_AS_STRING(value), vlen)
            parts.append(pg.to_bytes(4, "little"))
        return b"".join(parts)

    cdef int put(self, bytes key, bytes value, uint64_t expires) except -1:
        cdef const unsigned char *k = <const unsigned char *>PyBytes_AS_STRING(key)
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), vlen = PyBytes_GET_SIZE(value)
        cdef Page leaf
        cdef bint found
        cdef int pos
        cdef uint32_t off
        cdef Py_ssize_t old_size, size
        cdef unsigned char *c = <unsigned char *>PyBytes_AS_STRING(self.cellbuf)
        cdef unsigned char *q
        cdef const unsigned char *cell
        cdef bytes encoded = None
        if self.root == 0:
            leaf = self.pager.alloc(PAGE_LEAF, self.seq)
            self.root = leaf.pgno
            self.path_valid = False
        if self.appends_at_right_edge(k, klen):
            # ascending keys past the end (a sorted batch load): the last put's path still holds
            pos = ncells((<Page>self.path[self.depth - 1]).data)
            found = False
        else:
            self.descend(k, klen)
            pos = self.search(<Page>self.path[self.depth - 1], k, klen, False, &found)
        size = 1 + varint_len(klen) + klen + varint_len(vlen) + vlen + (EXPIRES_SIZE if expires else 0)
        if size <= self.max_cell:
            # the common case: encode the inline cell straight into a reused buffer
            c[0] = CELL_EXPIRES if expires else 0
            q = put_varint(c + 1, klen)
            memcpy(q, k, klen)
            q += klen
            if expires:
                put_u64(q, expires)
                q += EXPIRES_SIZE
            q = put_varint(q, vlen)
            memcpy(q, PyBytes_AS_STRING(value), vlen)
            cell = c
        else:
            encoded = self.encode_leaf_cell(key, value, expires)
            cell = <const unsigned char *>PyBytes_AS_STRING(encoded)
            size = PyBytes_GET_SIZE(encoded)
        self.make_path_writable()
        leaf = <Page>self.path[self.depth - 1]
        if expires:
            self.expiring += 1
        if found:
            off = cell_off(leaf.data, pos)
            old_size = cell_size(leaf.data, off, self.ps)
            if leaf.data[off] & CELL_EXPIRES:
                self.expiring -= 1
            self.free_cell_chains(leaf.data + off, True)
            if old_size == size:         # same shape: overwrite in place
                memcpy(leaf.data + off, cell, size)
                return 0
            page_remove(leaf.data, self.ps, pos)
        else:
            self.entries += 1
        if page_insert(leaf.data, self.ps, pos, cell, size,
                       <unsigned char *>PyBytes_AS_STRING(self.scratch)) != 0:
            self.path_valid = False
            self.split(self.depth - 1, pos, PyBytes_FromStringAndSize(<const char *>cell, size))
        else:
            self.path_valid = True
        return 0

    cdef bint appends_at_right_edge(self, const unsigned char *k, Py_ssize_t klen) except -1:
        """True if the last put's path (all pages writable) ends at the rightmost leaf
        and k sorts after that leaf's last key."""
        cdef int level, n
        cdef Page leaf
        if not self.path_valid or self.depth == 0:
            return False
        for level in range(self.depth - 1):
            if self.idx[level] != ncells((<Page>self.path[level]).data):
                return False
        leaf = <Page>self.path[self.depth - 1]
        n = ncells(leaf.data)
        if n == 0:
            return False
        return self.cmp_key(leaf.data + cell_off(leaf.data, n - 1), leaf.data + self.ps, k, klen) < 0

    cdef int insert_cell(self, int level, int pos, bytes cell) except -1:
        cdef Page page = <Page>self.path[level]
        if page_insert(page.data, self.ps, pos, <const unsigned char *>PyBytes_AS_STRING(cell),
                       len(cell), <unsigned char *>PyBytes_AS_STRING(self.scratch)) == 0:
            return 0
        self.split(level, pos, cell)
        return 0

    cdef int rebuild(self, Page page, list cells) except -1:
        cdef bytes tmp = self.scratch
        page_reset(page.data, self.ps)
        for i, c in enumerate(cells):
            if page_insert(page.data, self.ps, i, <const unsigned char *>PyBytes_AS_STRING(c), len(c),
                           <unsigned char *>PyBytes_AS_STRING(tmp)) != 0:
                raise AssertionError("rebuild overflowed a page")
        return 0

    cdef int split(self, int level, int pos, bytes cell) except -1:
        """Split the full page at `level` while inserting `cell` at `pos`."""
        cdef Page page = <Page>self.path[level]
        cdef int n = ncells(page.data), m, i
        cdef bint leaf = is_leaf(page.data)
        cdef Page right
        cdef Py_ssize_t total, acc
        if leaf and pos == n and n > 0:
            # appending past the last key (sequential loads): the full page stays as it is
            # and the new cell starts the right page
            right = self.pager.alloc(PAGE_LEAF, self.seq)
            self.rebuild(right, [cell])
            sep = self.encode_key_part(shortest_separator(self.leaf_key(page, n - 1), self.leaf_key(right, 0)),
                                       0, self.max_cell - 4)
            self.insert_into_parent(level - 1, page.pgno, sep, right.pgno)
            return 0
        cells = [cell_bytes(page, i, self.ps) for i in range(n)]
        cells.insert(pos, cell)
        sizes = [len(c) + 2 for c in cells]
        total = sum(sizes)
        if leaf and pos == n:
            m = n                  # appending: keep the left page full (sequential loads)
        elif leaf and pos == 0:
            m = 1                  # prepending (descending loads)
        else:
            acc = 0
            m = 0
            while m < len(cells) - 1 and acc + sizes[m] <= total // 2:
                acc += sizes[m]
                m += 1
            m = max(1, m)
        right = self.pager.alloc(page.data[OFF_TYPE], self.seq)
        if leaf:
            self.rebuild(page, cells[:m])
            self.rebuild(right, cells[m:])
            left_last = self.leaf_key(page, m - 1)
            right_first = self.leaf_key(right, 0)
            sep = self.encode_key_part(shortest_separator(left_last, right_first), 0, self.max_cell - 4)
        else:
            if m >= len(cells) - 1:
                m = len(cells) - 2
            mid = <bytes>cells[m]
            old_rightmost = get_u32(page.data + OFF_LINK)
            self.rebuild(page, cells[:m])
            put_u32(page.data + OFF_LINK, get_u32(<const unsigned char *>PyBytes_AS_STRING(mid)))
            self.rebuild(right, cells[m + 1:])
            put_u32(right.data + OFF_LINK, old_rightmost)
            sep = mid[4:]           # the middle key moves up with its overflow chain
        self.insert_into_parent(level - 1, page.pgno, sep, right.pgno)
        return 0

    cdef int insert_into_parent(self, int level, uint32_t left, bytes key_part, uint32_t right) except -1:
        cdef Page parent
        cdef int i
        cell = left.to_bytes(4, "little") + key_part
        if level < 0:
            parent = self.pager.alloc(PAGE_BRANCH, self.seq)
            put_u32(parent.data + OFF_LINK, right)
            self.rebuild(parent, [cell])
            self.root = parent.pgno
            # the new root sits above the old path: shift the path down one level
            self.path.insert(0, parent)
            for i in range(self.depth, 0, -1):
                self.idx[i] = self.idx[i - 1]
            self.idx[0] = 0
            self.depth += 1
            return 0
        parent = <Page>self.path[level]
        i = self.idx[level]
        set_child(parent.data, i, right)
        self.insert_cell(level, i, cell)
        return 0

    cdef int delete(self, bytes key) except -1:
        """Remove key; 1 if it was present, 0 if not."""
        cdef const unsigned char *k = <const unsigned char *>PyBytes_AS_STRING(key)
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
        cdef bint found
        cdef int pos
        cdef Page leaf
        self.path_valid = False
        if self.root == 0:
            return 0
        self.descend(k, klen)
        pos = self.search(<Page>self.path[self.depth - 1], k, klen, False, &found)
        if not found:
            return 0
        self.make_path_writable()
        leaf = <Page>self.path[self.depth - 1]
        if leaf.data[cell_off(leaf.data, pos)] & CELL_EXPIRES:
            self.expiring -= 1
        self.free_cell_chains(leaf.data + cell_off(leaf.data, pos), True)
        page_remove(leaf.data, self.ps, pos)
        self.entries -= 1
        self.rebalance(self.depth - 1)
        return 1

    cdef int rebalance(self, int level) except -1:
        """Merge an under-full page with a sibling when both fit in one page."""
        cdef Page page = <Page>self.path[level], parent, sib, left, right
        cdef int i, s, n
        cdef bint leaf = is_leaf(page.data)
        if level == 0:
            if not leaf and ncells(page.data) == 0:
                self.root = get_u32(page.data + OFF_LINK)
                self.pager.free(page.pgno, self.seq)
            elif leaf and ncells(page.data) == 0:
                self.root = 0
                self.pager.free(page.pgno, self.seq)
            return 0
        if used_bytes(page.data, self.ps) >= (self.ps - PAGE_HEADER_SIZE) // 4:
            return 0
        parent = <Page>self.path[level - 1]
        i = self.idx[level - 1]
        n = ncells(parent.data)
        if n == 0:
            return 0
        if i > 0:
            s = i - 1
            sib = self.writable(self.load(child_at(parent.data, s)))
            set_child(parent.data, s, sib.pgno)
            left, right = sib, page
        else:
            s = 0
            sib = self.writable(self.load(child_at(parent.data, 1)))
            set_child(parent.data, 1, sib.pgno)
            left, right = page, sib
        cells = [cell_bytes(left, j, self.ps) for j in range(ncells(left.data))]
        sep_cell = cell_bytes(parent, s, self.ps)
        if not leaf:
            cells.append(get_u32(left.data + OFF_LINK).to_bytes(4, "little") + sep_cell[4:])
        cells.extend([cell_bytes(right, j, self.ps) for j in range(ncells(right.data))])
        if sum([len(c) + 2 for c in cells]) > self.ps - PAGE_HEADER_SIZE:
            return 0                # siblings too full to merge; stay under-full
        if leaf:
            self.free_cell_chains(<const unsigned char *>PyBytes_AS_STRING(sep_cell), False)
        else:
            put_u32(left.data + OFF_LINK, get_u32(right.data + OFF_LINK))
        self.rebuild(left, cells)
        self.pager.free(right.pgno, self.seq)
        page_remove(parent.data, self.ps, s)
        set_child(parent.data, s, left.pgno)
        self.rebalance(level - 1)
        return 0

    # -- python-level entry points for the database layer ---------------

    def apply(self, list ops, uint64_t seq, uint64_t max_live):
        """Apply [(key, value-or-None, expires)] as the commit `seq`."""
        self.seq = seq
        self.max_live = max_live
        self.path_valid = False
        cdef tuple op
        cdef Py_ssize_t i
        for i in range(len(ops)):
            op = ops[i]
            if op[1] is None:
                self.delete(op[0])
            else:
                self.put(op[0], op[1], op[2])
        self.path = []
        self.path_valid = False

    def apply_pairs(self, list keys, list values, uint64_t seq, uint64_t max_live):
        """apply() of puts without expiry, keys[i] -> values[i]."""
        self.seq = seq
        self.max_live = max_live
        self.path_valid = False
        cdef Py_ssize_t i
        for i in range(len(keys)):
            self.put(<bytes>keys[i], <bytes>values[i], 0)
        self.path = []
        self.path_valid = False

    cpdef object cursor(self, uint32_t root, object pin, bytes lo, bytes hi, bint reverse, uint64_t now=0):
        """Ordered (key, value) of the version at `root` in [lo, hi), skipping entries that
        expire at or before `now` (wall-clock ms; 0 skips none)."""
        cdef Cursor c = Cursor.__new__(Cursor)
        c.tree = self
        c.now = now
        c.pin = pin
        c.root = root
        c.lo = lo
        c.hi = hi
        c.reverse = reverse
        c.pages = []
        c.depth = 0
        c.valid = False
        c.started = False
        return c

    # -- verification ----------------------------------------------------

    def verify(self, uint32_t root, bint reread):
        """Check B1-B3, cell layouts, overflow chains and checksums (re-reading clean pages
        from the file when `reread`); returns (reachable pgnos, entries, entries with an expiry)."""
        seen = set()
        leaf_depths = set()
        count = [0, 0]
        if root:
            self._verify_page(root, None, None, 0, seen, leaf_depths, count, reread)
        if len(leaf_depths) > 1:
            raise CorruptionError(f"{self.pager.path}: leaves at different depths {sorted(leaf_depths)}",
                                  path=self.pager.path, pgno=root)
        return seen, count[0], count[1]

    def _mark(self, uint32_t pgno, set seen):
        if pgno in seen:
            raise CorruptionError(f"{self.pager.path}: page {pgno} is reachable twice", path=self.pager.path, pgno=pgno)
        if pgno < 3 or pgno >= self.pager.page_count:
            raise CorruptionError(f"{self.pager.path}: reference to page {pgno}, outside the file",
                                  path=self.pager.path, pgno=pgno)
        seen.add(pgno)

    def _verify_chain(self, uint32_t pgno, uint64_t total, set seen, bint reread):
        cdef uint32_t cap = self.ps - PAGE_HEADER_SIZE
        cdef uint64_t done = 0
        cdef Page page
        while done < total:
            self._mark(pgno, seen)
            page = self._fetch(pgno, reread)
            n = get_u16(page.data + OFF_LOWER)
            if page.data[OFF_TYPE] != PAGE_OVERFLOW or n == 0 or n > cap or n > total - done:
                raise CorruptionError(f"{self.pager.path}: page {pgno} is not a valid overflow page",
                                      path=self.pager.path, pgno=pgno)
            done += n
            pgno = get_u32(page.data + OFF_LINK)

    def _fetch(self, uint32_t pgno, bint reread):
        cdef Page page = self.pager.get(pgno)
        if reread and not page.dirty:
            self.pager.read_page_uncached(pgno)     # raises on a checksum mismatch on disk
        return page

    def _verify_page(self, uint32_t pgno, lo, hi, int depth, set seen, set leaf_depths, list count, bint reread):
        cdef Page page
        cdef int n, i
        cdef const unsigned char *p
        cdef const unsigned char *kp
        cdef uint64_t klen, vlen
        cdef const unsigned char *q
        if depth > MAX_DEPTH:
            raise CorruptionError(f"{self.pager.path}: tree deeper than {MAX_DEPTH} at page {pgno}",
                                  path=self.pager.path, pgno=pgno)
        self._mark(pgno, seen)
        page = self._fetch(pgno, reread)
        if not page.checked:
            self._check_layout(page)
        n = ncells(page.data)
        leaf = is_leaf(page.data)
        prev = lo
        for i in range(n):
            p = page.data + cell_off(page.data, i)
            kp = p if leaf else p + 4
            key = self.full_key(kp, page.data + self.ps)
            q = get_varint(kp + 1, page.data + self.ps, &klen)
            if kp[0] & CELL_KEY_OVERFLOW:
                self._verify_chain(get_u32(q + KEY_PREFIX_LEN), klen, seen, reread)
            if (i > 0 and key <= prev) or (lo is not None and key < lo) or (hi is not None and key >= hi):
                raise CorruptionError(f"{self.pager.path}: page {pgno} cell {i}: key {key[:40]!r} out of order",
                                      path=self.pager.path, pgno=pgno)
            if leaf:
                q = get_varint(leaf_vlen_at(p, page.data + self.ps), page.data + self.ps, &vlen)
                if p[0] & CELL_VALUE_OVERFLOW:
                    self._verify_chain(get_u32(q), vlen, seen, reread)
                count[0] += 1
                if p[0] & CELL_EXPIRES:
                    count[1] += 1
            else:
                self._verify_page(get_u32(p), prev, key, depth + 1, seen, leaf_depths, count, reread)
            prev = key
        if leaf:
            leaf_depths.add(depth)
        else:
            self._verify_page(get_u32(page.data + OFF_LINK), prev, hi, depth + 1, seen, leaf_depths, count, reread)


cdef class Cursor:
    """An ordered walk over one version of the tree between lo (inclusive) and hi (exclusive);
    iterating it is EngineCursor's (engine.pyx)."""

    cdef Page push(self, uint32_t pgno):
        """Load pgno as the next level down."""
        if self.depth >= MAX_DEPTH:
            raise CorruptionError(f"{self.tree.pager.path}: tree deeper than {MAX_DEPTH}",
                                  path=self.tree.pager.path, pgno=pgno)
        cdef Page page = self.tree.load(pgno)
        self.pages.append(page)
        self.depth += 1
        return page

    cdef int descend_edge(self, uint32_t pgno, bint rightmost) except -1:
        cdef Page page
        while True:
            page = self.push(pgno)
            if is_leaf(page.data):
                self.idx[self.depth - 1] = (ncells(page.data) - 1) if rightmost else 0
                return 0
            self.idx[self.depth - 1] = ncells(page.data) if rightmost else 0
            pgno = child_at(page.data, self.idx[self.depth - 1])

    cdef int start_at_edge(self, bint rightmost) except -1:
        """Position at the first (or, rightmost, the last) key of the tree."""
        self.pages = []
        self.depth = 0
        self.descend_edge(self.root, rightmost)
        self.valid = True
        if ncells((<Page>self.pages[self.depth - 1]).data) == 0:
            self.step(not rightmost)
        return 0

    cdef int seek(self, bytes key) except -1:
        """Position at the first key >= key."""
        cdef const unsigned char *k = <const unsigned char *>PyBytes_AS_STRING(key)
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
        cdef uint32_t pgno = self.root
        cdef Page page
        cdef bint found
        cdef int i
        self.pages = []
        self.depth = 0
        while True:
            page = self.push(pgno)
            if is_leaf(page.data):
                self.idx[self.depth - 1] = self.tree.search(page, k, klen, False, &found)
                break
            i = self.tree.search(page, k, klen, True, &found)
            self.idx[self.depth - 1] = i
            pgno = child_at(page.data, i)
        self.valid = True
        if self.idx[self.depth - 1] >= ncells((<Page>self.pages[self.depth - 1]).data):
            self.step(True)
        return 0

    cdef int step(self, bint forward) except -1:
        """Move to the next (or previous) key; clears `valid` at the end."""
        cdef int level
        cdef Page page
        level = self.depth - 1
        page = <Page>self.pages[level]
        if forward:
            self.idx[level] += 1
            if self.idx[level] < ncells(page.data):
                return 0
        else:
            self.idx[level] -= 1
            if self.idx[level] >= 0:
                return 0
        while True:
            # climb to a branch with another child in this direction
            level = self.depth - 2
            while level >= 0:
                page = <Page>self.pages[level]
                if forward and self.idx[level] < ncells(page.data):
                    break
                if not forward and self.idx[level] > 0:
                    break
                level -= 1
            if level < 0:
                self.valid = False
                return 0
            self.idx[level] += 1 if forward else -1
            del self.pages[level + 1:]
            self.depth = level + 1
            self.descend_edge(child_at(page.data, self.idx[level]), not forward)
            page = <Page>self.pages[self.depth - 1]
            if ncells(page.data) > 0:
                return 0
            # an empty leaf (only possible mid-rebalance on a damaged tree): keep walking

    cdef bint advance(self) except -1:
        """Move to the next entry inside the bounds (expired or not); False at the end."""
        cdef Page page
        cdef int i
        self.cur_key = None
        if not self.started:
            self.started = True
            if self.root == 0:
                self.valid = False
            elif not self.reverse:
                if self.lo is not None:
                    self.seek(self.lo)
                else:
                    self.start_at_edge(False)
            elif self.hi is not None:
                self.seek(self.hi)          # first key >= hi, then one back
                if self.valid:
                    self.step(False)
                else:
                    self.start_at_edge(True)
            else:
                self.start_at_edge(True)
        elif self.valid:
            self.step(not self.reverse)
        if not self.valid:
            self.finish()
            return False
        page = <Page>self.pages[self.depth - 1]
        i = self.idx[self.depth - 1]
        if self.reverse:
            if self.lo is not None:
                key = self.tree.leaf_key(page, i)
                if key < self.lo:
                    self.finish()
                    return False
                self.cur_key = key
        elif self.hi is not None:
            key = self.tree.leaf_key(page, i)
            if key >= self.hi:
                self.finish()
                return False
            self.cur_key = key
        return True

    cdef object next_item(self):
        """The next live (key, value), or None at the end."""
        cdef Page page
        cdef int i
        cdef uint64_t exp
        item = self.next_in_leaf()
        if item is not None:
            return item
        while self.advance():
            page = <Page>self.pages[self.depth - 1]
            i = self.idx[self.depth - 1]
            exp = self.tree.leaf_expires(page, i)
            if expired(exp, self.now):
                continue
            self.last_expires = exp
            if exp and (self.min_expires == 0 or exp < self.min_expires):
                self.min_expires = exp
            key = self.cur_key if self.cur_key is not None else self.tree.leaf_key(page, i)
            return (key, self.tree.leaf_value(page, i))
        return None

    cdef object next_in_leaf(self):
        """next_item()'s common case, in one pass over one cell (readseq's per-entry cost): the
        next cell of the current leaf in the walk's direction, inside the bounds, with its key
        and value in the page and no expiry. None when that is not the case: then nothing
        moved, and advance() takes the general path."""
        cdef const unsigned char *d
        cdef const unsigned char *p
        cdef const unsigned char *end
        cdef const unsigned char *key
        cdef const unsigned char *value
        cdef uint64_t klen, vlen
        cdef Py_ssize_t blen
        cdef int level, i, r
        cdef bytes bound
        if not self.started or not self.valid:
            return None
        level = self.depth - 1
        d = (<Page>self.pages[level]).data
        i = self.idx[level] + (-1 if self.reverse else 1)
        if i < 0 or i >= ncells(d):
            return None
        p = d + cell_off(d, i)
        if p[0] & (CELL_KEY_OVERFLOW | CELL_VALUE_OVERFLOW | CELL_EXPIRES):
            return None
        end = d + self.tree.ps
        key = get_varint(p + 1, end, &klen)     # the page's cells were checked when it was loaded
        bound = self.lo if self.reverse else self.hi
        if bound is not None:
            blen = PyBytes_GET_SIZE(bound)
            r = memcmp(key, PyBytes_AS_STRING(bound), <size_t>klen if <Py_ssize_t>klen < blen else blen)
            if r == 0:
                r = (<Py_ssize_t>klen > blen) - (<Py_ssize_t>klen < blen)
            if (r < 0) if self.reverse else (r >= 0):
                return None                      # past the bound: advance() finishes the walk
        value = get_varint(key + klen, end, &vlen)
        self.idx[level] = i
        self.cur_key = None
        self.last_expires = 0
        return (PyBytes_FromStringAndSize(<const char *>key, klen),
                PyBytes_FromStringAndSize(<const char *>value, vlen))

    def next_key_expires(self):
        """The next (key, expires) inside the bounds, expired or not, without reading the
        value; None at the end (the background expiry sweep walks with this)."""
        cdef Page page
        cdef int i
        if not self.advance():
            return None
        page = <Page>self.pages[self.depth - 1]
        i = self.idx[self.depth - 1]
        key = self.cur_key if self.cur_key is not None else self.tree.leaf_key(page, i)
        return (key, self.tree.leaf_expires(page, i))

    cpdef int finish(self) except -1:
        """Stop early: release the pages and the snapshot pin."""
        self.valid = False
        self.started = True
        self.pages = []
        self.depth = 0
        self.pin = None
        return 0
