# Search heads: a page's keys as a compact array, so a binary search over a clean page touches
# a few cache lines instead of one scattered cell per probe (included by tree.pyx).
#
# A branch or leaf page keeps its cells wherever inserts put them; the cell pointer array is in
# key order, but each probe of a binary search reads a key at a random place in the page. On a
# page that is not in the CPU's cache that is one memory miss per probe: the profile of a server
# GET put half of BTree.search on the load of the probed cell's first byte.
#
# The heads of a page hold, for each cell i, the two bytes of its key that follow the prefix all
# the page's keys share (zero-padded if the key ends sooner), big-endian, in a uint16_t array,
# with the shared prefix's bytes after it. A search compares the key with the prefix once, then
# binary-searches the heads, and reads a cell only where its head equals the key's: for keys
# that differ within those two bytes, that is the one cell the search lands on.
#
# Invariants (tests/engine/test_search_heads.py names them):
#   A1. A page's heads, while it has them, answer every search exactly as the plain search over
#       its cells does: they are monotonic in key order, and a tie is settled by the cell's key.
#   A2. Only a clean page has heads: they are built when a clean page is searched a second time,
#       and freed before a page turns dirty again (Pager.abort_checkpoint) and with the page.
#       A clean page never changes in place (B4, P6), so its heads stay true; a search also
#       checks the cell count they were built over and falls back to the plain search if it moved.
#   A3. Heads take at most page_size / 8 bytes per cached page: a page whose heads would take
#       more (more cells than page_size / 16), or with a key stored in overflow or with a
#       length of two bytes or more, gets none and is searched as before (so does a page of
#       fewer than HEADS_MIN_CELLS cells).

cdef enum:
    HEADS_MIN_CELLS = 4          # fewer cells: a plain search is as quick


cdef inline bint heads_ready(Page page, Pager pager, uint32_t ps) except -1:
    """Whether `page` has search heads, building them at its second search while clean (A2)."""
    if page.heads != NULL:
        return not page.dirty
    if page.dirty or page.no_heads or not page.checked:
        return False
    if page.searches == 0:
        page.searches = 1
        return False
    return heads_build(page, pager, ps)


cdef bint heads_build(Page page, Pager pager, uint32_t ps) except -1:
    cdef const unsigned char *d = page.data
    cdef int n = ncells(d), i
    cdef int shift = 0 if is_leaf(d) else 4
    cdef const unsigned char *kp
    cdef const unsigned char *first
    cdef const unsigned char *last
    cdef Py_ssize_t cp = 0, m, clen
    if page.ring_entries > 1:
        return False                             # in two pagers' rings (a rebase): see Pager.set_heads
    if n < HEADS_MIN_CELLS or n * 2 > <int>(ps // 8):
        page.no_heads = True                     # A3
        return False
    for i in range(n):
        kp = d + cell_off(d, i) + shift
        if kp[0] & CELL_KEY_OVERFLOW or kp[1] >= 0x80:
            page.no_heads = True                 # A3: only inline keys with a one-byte length
            return False
    first = d + cell_off(d, 0) + shift
    last = d + cell_off(d, n - 1) + shift
    m = first[1] if first[1] < last[1] else last[1]
    while cp < m and first[2 + cp] == last[2 + cp]:
        cp += 1                                  # sorted keys: all share what the first and last do
    if n * 2 + cp > <Py_ssize_t>(ps // 8):
        page.no_heads = True                     # A3
        return False
    cdef uint16_t *heads = <uint16_t *>malloc(n * sizeof(uint16_t) + cp)
    if heads == NULL:
        return False                             # no memory: search without heads
    for i in range(n):
        kp = d + cell_off(d, i) + shift
        clen = kp[1]
        heads[i] = <uint16_t>(((kp[2 + cp] if clen > cp else 0) << 8) | (kp[3 + cp] if clen > cp + 1 else 0))
    memcpy(<unsigned char *>(heads + n), first + 2, cp)
    pager.set_heads(page, heads, <uint16_t>n, <uint8_t>cp)
    return True


cdef int heads_search(Page page, Pager pager, const unsigned char *k, Py_ssize_t klen, bint upper,
                      bint *found) except -2:
    """BTree.search through the page's heads: the first cell whose key is >= k (> k with
    `upper`), *found set on an exact match; -1 if the heads no longer fit the page (A2)."""
    cdef const unsigned char *d = page.data
    cdef int n = page.heads_n
    if n != ncells(d):
        pager.drop_heads(page)
        page.no_heads = True
        return -1
    cdef const uint16_t *heads = page.heads
    cdef Py_ssize_t cp = page.heads_cp
    cdef const unsigned char *prefix = <const unsigned char *>(heads + n)
    cdef int shift = 0 if is_leaf(d) else 4
    cdef int lo = 0, hi = n, mid, c
    cdef Py_ssize_t clen, m
    cdef const unsigned char *kp
    cdef uint16_t h, want
    found[0] = False
    m = cp if cp < klen else klen
    c = memcmp(k, prefix, m)
    if c < 0 or (c == 0 and klen < cp):
        return 0                 # k sorts before the prefix every key starts with
    if c > 0:
        return n                 # ... or after all of them
    want = <uint16_t>(((k[cp] if klen > cp else 0) << 8) | (k[cp + 1] if klen > cp + 1 else 0))
    while lo < hi:
        mid = (lo + hi) >> 1
        h = heads[mid]
        if h < want:
            c = -1
        elif h > want:
            c = 1
        else:                    # a tie: the cell's key decides (inline, one-byte length: A3)
            kp = d + cell_off(d, mid) + shift
            clen = kp[1]
            m = clen if clen < klen else klen
            c = memcmp(kp + 2, k, m)
            if c == 0:
                c = (clen > klen) - (clen < klen)
        if c < 0 or (upper and c == 0):
            lo = mid + 1
        else:
            if c == 0:
                found[0] = True
            hi = mid
    return lo
