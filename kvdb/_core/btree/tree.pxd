# The copy-on-write B+Tree over the pager. Format: docs/format/pages.md.
#
# Branch and leaf pages are slotted: after the page header comes an array of
# u16 cell offsets in key order; cells are packed from the end of the page.
#
# Leaf cell:
#   flags u8        CELL_VALUE_OVERFLOW | CELL_KEY_OVERFLOW | CELL_EXPIRES
#   klen  varint    full key length
#   key             klen bytes, or KEY_PREFIX_LEN prefix bytes + u32 overflow pgno
#   expires u64     only with CELL_EXPIRES: wall-clock ms after which the key reads as absent
#   vlen  varint    full value length
#   value           vlen bytes, or u32 overflow pgno
# Branch cell (child holds keys < key; the page's link field is the rightmost child):
#   child u32
#   flags u8        CELL_KEY_OVERFLOW
#   klen  varint
#   key             as in a leaf cell
# Overflow pages hold `lower` data bytes after the header and link to the next.
#
# Invariants:
#   B1. Keys strictly increase across the cells of a page and across leaves.
#   B2. Every key in the subtree of branch cell i is >= key[i-1] and < key[i].
#   B3. All leaves are at the same depth.
#   B4. A page that a live snapshot may reach is never changed: it is copied
#       (copy-on-write) and the copy's pgno replaces it in its parent.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from kvdb._core.btree.pager cimport Page, Pager
from kvdb._core.engine cimport EngineCursor

cdef enum:
    CELL_VALUE_OVERFLOW = 1
    CELL_KEY_OVERFLOW = 2
    CELL_EXPIRES = 4             # leaf cells only: an 8-byte expiry follows the key part
    EXPIRES_SIZE = 8             # bytes of the expiry field
    KEY_PREFIX_LEN = 32          # key bytes kept in the page when the key overflows
    MAX_DEPTH = 32
    # Longest key and value a cell may claim (kvdb.MAX_KEY_SIZE and kvdb.MAX_VALUE_SIZE, which the
    # database layer enforces on writes): a longer length read from disk is damage, refused before
    # anything is allocated for it.
    CELL_MAX_KEY = 16384
    CELL_MAX_VALUE = 256 * 1024 * 1024

cdef class BTree:
    # Fields are guarded by the database's writer lock; readers only read `root`.
    cdef Pager pager             # constant
    cdef uint32_t ps             # page size; constant
    cdef Py_ssize_t max_cell     # largest cell stored in a page; constant
    cdef public uint32_t root    # root of the newest version (0 = empty tree)
    cdef public uint64_t entries # keys in the newest version
    cdef public uint64_t expiring  # keys in the newest version that carry an expiry
    cdef public uint64_t seq     # the commit being applied (owner of new pages)
    cdef public uint64_t max_live  # highest live snapshot seq: pages born at or below are copied (B4)
    # the write path of the current operation
    cdef list path               # Page per level, root first
    cdef int idx[MAX_DEPTH]      # child slot taken at each branch level
    cdef int depth               # levels in `path`
    cdef bint path_valid         # `path` is still the writable path of the last put (no split since)
    cdef bytes scratch           # page-size buffer for defragmenting a page
    cdef bytes cellbuf           # page-size buffer for encoding an inline leaf cell
    cdef object __weakref__      # the engine tracks earlier views (trees of pinned versions) weakly

    cdef Page load(self, uint32_t pgno)
    cdef int cmp_key(self, const unsigned char *cell_key, const unsigned char *end,
                     const unsigned char *k, Py_ssize_t klen) except -2
    cdef int search(self, Page page, const unsigned char *k, Py_ssize_t klen, bint upper, bint *found) except -1
    cdef int search_cells(self, Page page, const unsigned char *k, Py_ssize_t klen, bint upper,
                          bint *found) except -1
    cdef bytes full_key(self, const unsigned char *kp, const unsigned char *end)
    cdef bytes read_overflow(self, uint32_t pgno, uint64_t total)
    cdef object leaf_value(self, Page page, int i)
    cdef uint64_t leaf_expires(self, Page page, int i)
    cdef Page find_leaf(self, uint32_t root, bytes key, bint pinned, int *pos)
    cdef bytes leaf_key(self, Page page, int i)
    cpdef object get(self, uint32_t root, bytes key, bint pinned, uint64_t now)
    cpdef object get_entry(self, uint32_t root, bytes key, bint pinned)
    # writing (the caller sets seq and max_live first)
    cdef Page writable(self, Page page)
    cdef int descend(self, const unsigned char *k, Py_ssize_t klen) except -1
    cdef bint appends_at_right_edge(self, const unsigned char *k, Py_ssize_t klen) except -1
    cdef int make_path_writable(self) except -1
    cdef uint32_t write_overflow(self, const unsigned char *src, uint64_t n) except 0
    cdef int free_overflow(self, uint32_t pgno, uint64_t total) except -1
    cdef int free_cell_chains(self, const unsigned char *p, bint leaf) except -1
    cdef bytes encode_key_part(self, bytes key, unsigned char flags, Py_ssize_t room)
    cdef bytes encode_leaf_cell(self, bytes key, bytes value, uint64_t expires)
    cdef int put(self, bytes key, bytes value, uint64_t expires) except -1
    cdef int insert_cell(self, int level, int pos, bytes cell) except -1
    cdef int rebuild(self, Page page, list cells) except -1
    cdef int split(self, int level, int pos, bytes cell) except -1
    cdef int insert_into_parent(self, int level, uint32_t left, bytes key_part, uint32_t right) except -1
    cdef int delete(self, bytes key) except -1
    cdef int rebalance(self, int level) except -1
    cpdef object cursor(self, uint32_t root, object pin, bytes lo, bytes hi, bint reverse, uint64_t now=*)


cdef class Cursor(EngineCursor):
    cdef BTree tree              # constant
    cdef object pin              # keeps the snapshot this cursor reads alive; dropped at the end
    cdef uint32_t root           # root of the version read; constant
    cdef list pages              # Page per level
    cdef int idx[MAX_DEPTH]      # cell (leaf) or child slot (branch) per level
    cdef int depth
    cdef bint valid
    cdef bint reverse
    cdef bint started
    cdef bytes lo                # inclusive lower bound or None
    cdef bytes hi                # exclusive upper bound or None
    cdef uint64_t now            # wall-clock ms: entries expiring at or before it are skipped (0 = none)
    cdef bytes cur_key           # key of the current entry when advance() decoded it, else None

    cdef Page push(self, uint32_t pgno)
    cdef int descend_edge(self, uint32_t pgno, bint rightmost) except -1
    cdef int start_at_edge(self, bint rightmost) except -1
    cdef int seek(self, bytes key) except -1
    cdef int step(self, bint forward) except -1
    cdef bint advance(self) except -1
    cdef object next_item(self)
    cdef object next_in_leaf(self)
