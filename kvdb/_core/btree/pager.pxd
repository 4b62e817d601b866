# The pager: fixed-size checksummed pages in one file, a buffer pool over
# them, page allocation with deferred reuse, and the checkpoint that makes a
# committed version durable. Format: docs/format/pages.md.
#
# File header (page 0; only the first FILE_HEADER_SIZE bytes are used):
#   OFFSET SIZE
#   0      8    magic b"kvdb-bt\0"
#   8      4    format version (FORMAT_VERSION)
#   12     4    page size in bytes (power of two, 512..32768)
#   16     4    crc32c of bytes [0, 16)
#
# Every other page starts with a PAGE_HEADER_SIZE-byte header:
#   0      4    crc32c of bytes [4, page_size)
#   4      1    type (PAGE_BRANCH, PAGE_LEAF, PAGE_OVERFLOW, PAGE_FREELIST, PAGE_META)
#   5      1    flags (0)
#   6      2    ncells: cells in a branch or leaf page
#   8      4    pgno: the page's own number (catches misdirected writes)
#   12     4    link: branch = rightmost child; overflow/freelist = next page (0 = end)
#   16     2    lower: branch/leaf = end of the cell pointer array;
#               overflow = data bytes in this page; freelist = entries in this page
#   18     2    upper: branch/leaf = start of the cell content area
#   20     2    frag: branch/leaf = bytes lost to fragmentation between cells
#   22     2    reserved (0)
#
# Meta pages (pgno 1 and 2; each checkpoint writes the one it did not read the
# durable meta from; the valid one with the higher generation wins at open):
#   24     8    generation: checkpoints written so far
#   32     8    seq: the last commit included
#   40     4    root: root page of the tree (0 = empty)
#   44     4    freelist: first freelist page (0 = none)
#   48     4    page_count: pages in the file, the high-water mark
#   52     4    reserved (0)
#   56     8    entries: keys in the tree
#   64     8    expiring: keys in the tree that carry an expiry (CELL_EXPIRES)
#
# Invariants (tests name them by number):
#   P1. A page reachable from the durable meta is never written until a later
#       meta that no longer reaches it is durable.
#   P2. A page freed by the commit with sequence s is reused only when no live
#       snapshot has a sequence below s, and, if the page is on disk, only after
#       the checkpoint that stops referencing it.
#   P3. A dirty page is never evicted; a clean page may be evicted at any time.
#   P4. Every page read from the file is checked (checksum, pgno, type) before use; read
#       from the map, once per process until another process writes it (filemap.pxd, V2: a page this
#       process wrote is trusted, the map showing the image it sealed).
#   P5. With other opens (shared), a page free in the meta of generation g, or freed by the
#       checkpoint that wrote it, is reused only when every open's base generation is at least g
#       (O2 in shared.pxd): no open still reads an older meta that reaches it.
#   P6. A checkpoint of version s writes exactly the pages dirty when it began, while commits
#       after s go on: from its beginning those pages are never changed in place (a commit copies
#       them, B4) and, once freed, wait as on-disk pages do (P2); they are not evicted before
#       they are on disk (P3). One checkpoint of a file runs at a time (the checkpoint lock,
#       docs/format/shm.md).
#   P7. A dirty page may be written ahead of its checkpoint (spill_dirty: "spilled") only while no
#       meta reaches it and this open alone may write the file: it holds the checkpoint lock
#       (O4), taken while its view stood on the newest meta, until a checkpoint takes the page
#       (with other opens live, its background step checkpoints about once a second).
#       A spilled page is then clean (evictable, P3) but still unreachable from any meta; it is
#       changed in place again when no snapshot sees it (Pager.redirty), is freed like a dirty
#       page (P2: no checkpoint to wait for), and is made durable by the fsync of the next
#       checkpoint, which takes it without writing it again.

from cpython.ref cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from kvdb._core.file cimport File
from kvdb._core.btree.filemap cimport FileMap

cdef enum:
    FILE_HEADER_SIZE = 8 + 4 + 4 + 4        # magic, version, page size, crc
    FORMAT_VERSION = 2                     # 2: leaf cells may carry an expiry (TTL)
    PAGE_HEADER_SIZE = 4 + 1 + 1 + 2 + 4 + 4 + 2 + 2 + 2 + 2
    MIN_PAGE_SIZE = 512
    MAX_PAGE_SIZE = 32768
    META_PGNO_A = 1
    META_PGNO_B = 2
    FIRST_DATA_PGNO = 3

cdef enum PageType:
    PAGE_BRANCH = 1
    PAGE_LEAF = 2
    PAGE_OVERFLOW = 3
    PAGE_FREELIST = 4
    PAGE_META = 5

# Header field offsets.
cdef enum:
    OFF_CRC = 0
    OFF_TYPE = 4
    OFF_FLAGS = 5
    OFF_NCELLS = 6
    OFF_PGNO = 8
    OFF_LINK = 12
    OFF_LOWER = 16
    OFF_UPPER = 18
    OFF_FRAG = 20
    # meta body
    OFF_META_GEN = 24
    OFF_META_SEQ = 32
    OFF_META_ROOT = 40
    OFF_META_FREELIST = 44
    OFF_META_PAGE_COUNT = 48
    OFF_META_ENTRIES = 56
    OFF_META_EXPIRING = 64


cdef class Page:
    cdef unsigned char *data    # page_size bytes: owned (malloc), or in `owner`'s read-only map when
                                # `mapped`; contents guarded by the writer lock
    cdef bint mapped            # data is a clean page read in place from the file's map: never
                                # written through, never freed here; constant
    cdef object owner           # the FileMap `data` points into while mapped (V3), else None; constant
    cdef uint32_t pgno          # constant
    cdef bint dirty             # written by no checkpoint yet, nor by one begun (P6): never evicted (P3),
                                # changed in place when no snapshot sees it (birth)
    cdef bint ref               # CLOCK reference bit
    cdef uint64_t birth         # seq of the commit that allocated the pgno; a dirty page with
                                # birth above every live snapshot may be changed in place
    cdef bint checked           # the B+Tree has validated its cell layout (set once)
    # Search heads (tree_heads.pxi, invariants A1-A3 in docs/format/README.md): built for a clean page at
    # its second search, freed with the page or when it turns dirty again. GIL held throughout.
    cdef uint16_t *heads        # per cell, 2 bytes of its key after the page's common prefix, big-endian,
                                # zero-padded; the prefix's bytes follow the array; NULL: none built
    cdef uint16_t heads_n       # cells the heads were built over (ncells of the page then)
    cdef uint8_t heads_cp       # length of the common prefix of all the page's keys
    cdef uint8_t searches       # 1 once the page was searched while clean and without heads
    cdef bint no_heads          # the page cannot have heads: a key stored long or in overflow, too many cells
    cdef uint8_t ring_entries   # entries of this page in pagers' CLOCK rings, which count its heads' bytes


cdef inline Py_ssize_t heads_bytes(Page page) noexcept:
    """Bytes the page's search heads take (0 without heads): the array and the prefix."""
    return page.heads_n * 2 + page.heads_cp if page.heads != NULL else 0


cdef class Meta:
    cdef public uint64_t generation
    cdef public uint64_t seq
    cdef public uint32_t root
    cdef public uint32_t freelist
    cdef public uint32_t page_count
    cdef public uint64_t entries
    cdef public uint64_t expiring   # keys with an expiry


cdef struct BirthMap:
    # pgno -> birth of a page written ahead of the checkpoint (P7), 0 for any other page (a commit's
    # seq is at least 1): 8 bytes a page of the file, a C array, not a dict of Python ints.
    uint64_t *birth             # `slots` entries (malloc'd, grown by birth_set); NULL before the first
    Py_ssize_t slots
    Py_ssize_t count            # entries that are not 0


cdef inline uint64_t birth_of(const BirthMap *m, uint32_t pgno) noexcept nogil:
    return m.birth[pgno] if pgno < m.slots else 0


cdef class CheckpointPlan:
    # One checkpoint between begin_checkpoint and end_checkpoint (or abort_checkpoint); written
    # at begin under the writer lock, then read by the checkpointing thread alone (P6).
    cdef list pages             # the Pages dirty at begin, sorted by pgno: written, never changed
    cdef list fl_pages          # the new freelist's Pages, at pgnos reserved past the old high-water mark
    cdef list moved             # [(seq, pgno)] on-disk pages freed before begin (pending_ckpt then)
    cdef Meta meta              # the meta the checkpoint makes durable
    cdef uint32_t saved_count   # page_count before the freelist pages were reserved
    cdef uint32_t slot          # meta page written (set by write_checkpoint_meta)
    cdef bint mirrored          # both meta pages written (set by write_checkpoint_meta)
    cdef BirthMap spilled       # the pages written ahead (Pager.spilled at begin, P7), made durable
                                # by this checkpoint's fsync without a second write; owned, freed at end


cdef class Pager:
    # All fields are guarded by the database's writer lock except where noted;
    # readers touch only `slots`, `ring`, `ring_cost`, `fmap` (made or replaced at a miss; its
    # verified bits), `map_reads` (cleared if the map is refused) and the counters, under the GIL.
    cdef File file              # the data file; constant
    cdef readonly str path      # constant
    cdef readonly uint32_t page_size        # constant after open
    cdef Py_ssize_t capacity    # pages (clean + dirty) the pool may hold: cache_size / page_size; constant
    cdef Py_ssize_t ring_cost   # bytes of cache_size the ring's entries count for: page_size per owned
                                # page, MAPPED_PAGE_COST per mapped one (stale entries until dropped)
    cdef bint map_reads         # read_path="mmap" and the file is a real one: misses read from `fmap`;
                                # cleared for good if the system refuses the map (then pread)
    cdef FileMap fmap           # the data file's read-only map (filemap.pxd), made at the first miss;
                                # None until then and with pread reads; replaced by a larger one as
                                # the file grows
    cdef PyObject **slots       # the pool: pgno -> every cached Page (clean and dirty), NULL if none;
                                # owns a reference to each (a C array, not a dict: a miss at 10M keys
                                # adds and evicts a page per read); changed only by pool_set, pool_del,
                                # pool_clear
    cdef Py_ssize_t nslots      # entries allocated in `slots`
    cdef list ring              # clean Pages in CLOCK order (may hold stale entries)
    cdef Py_ssize_t hand        # CLOCK hand into ring
    cdef dict dirty             # pgno -> Page to write at the next checkpoint (not yet begun, P6)
    cdef BirthMap spilled       # pages written ahead of the next checkpoint, clean since (spill_dirty,
                                # P7); taken by begin_checkpoint
    cdef list free_pages        # pgnos reusable now
    cdef list pending_snap      # [(seq, pgno)] sorted by seq: reusable once no snapshot is below seq
    cdef list pending_ckpt      # [(seq, pgno)] on-disk pages freed since the last checkpoint
    cdef list freelist_pages    # pgnos holding the durable freelist
    cdef readonly bint shared   # other opens (processes) read this file too: pages a checkpoint
                                # frees wait for every open's base generation (O2); constant
    cdef list pending_gen       # [(gen, pgno)] free, but reusable only once every open's base
                                # generation is at least gen (shared only; docs/format/shm.md O2)
    cdef uint64_t pending_gen_min   # no entry of pending_gen has a lower gen (reclaim scans the list
                                    # only once reuse_gen reaches it, not at every commit)
    cdef dict gen_gate          # pgno -> gen: pages in pending_snap that then wait in pending_gen
    cdef public uint64_t reuse_gen          # lowest base generation of any open (set by the engine)
    cdef readonly uint32_t page_count       # high-water mark, in pages
    cdef uint32_t written_count # one past the highest page this pager wrote: the file holds at least
                                # that many pages (V1), which the map may then serve; set by write_pages
                                # (a checkpoint beside commits runs it without the writer lock), read at
                                # misses: GIL
    cdef readonly Meta meta     # the durable meta (the last checkpoint)
    cdef readonly uint64_t reuse_epoch      # bumped whenever freed pages become reusable
    cdef readonly uint32_t meta_slot        # page (1 or 2) the durable meta was read from or last written to
    cdef readonly bint mirrored             # both meta pages hold the durable meta (clean close)
    cdef bint closed                        # close() has run: reads raise ClosedError
    # counters (GIL-protected)
    cdef public uint64_t hits, misses, evictions, pages_read, pages_written, checkpoints
    cdef public uint64_t pages_checked      # checksums verified (P4): every pread, a map's first loads (V2)
    cdef public uint64_t layouts_checked    # branch and leaf cell arrays the tree validated: every copy
                                            # it loads, a mapped page only at its first load (V2)
    cdef public uint64_t heads_built        # search heads built (tree_heads.pxi); GIL
    cdef public uint64_t pages_spilled      # dirty pages written ahead of their checkpoint (P7)

    cdef Page get(self, uint32_t pgno)
    cdef Page pool_get(self, uint32_t pgno)
    cdef int pool_set(self, uint32_t pgno, Page page) except -1
    cdef int pool_del(self, uint32_t pgno) except -1
    cdef int pool_clear(self) except -1
    cdef Page read_page_uncached(self, uint32_t pgno)
    cdef Page read_page_mapped(self, uint32_t pgno)
    cdef int check_reference(self, uint32_t pgno) except -1
    cdef int check_page(self, const unsigned char *data, uint32_t pgno, bint release_gil) except -1
    cdef bint map_covers(self, uint32_t pgno) except -1
    cdef Py_ssize_t ring_cost_of(self, Page page)
    cdef int ring_add(self, Page page) except -1
    cdef int ring_drop(self, Py_ssize_t i) except -1
    cdef Page alloc(self, uint8_t page_type, uint64_t seq)
    cdef int free(self, uint32_t pgno, uint64_t seq) except -1
    cdef int reclaim(self, uint64_t min_live_seq) except -1
    cdef int _admit(self, Page page) except -1
    cdef int evict_over(self) except -1
    cdef Py_ssize_t spill_dirty(self, Py_ssize_t keep) except -1
    cdef Page redirty(self, Page page, uint64_t max_live)
    cdef int set_heads(self, Page page, uint16_t *heads, uint16_t n, uint8_t cp) except -1
    cdef int drop_heads(self, Page page) except -1
    cdef int write_pages(self, list pages) except -1
    cdef CheckpointPlan begin_checkpoint(self, uint64_t seq, uint32_t root, uint64_t entries, uint64_t expiring)
    cdef int write_checkpoint_pages(self, CheckpointPlan plan) except -1
    cdef int write_checkpoint_meta(self, CheckpointPlan plan, bint mirror) except -1
    cdef int end_checkpoint(self, CheckpointPlan plan) except -1
    cdef int abort_checkpoint(self, CheckpointPlan plan) except -1



cdef Page new_page(uint32_t page_size, uint32_t pgno, uint8_t page_type)
cdef int seal_page(unsigned char *data, uint32_t page_size) noexcept nogil
