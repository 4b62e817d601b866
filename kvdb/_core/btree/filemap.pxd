# The B+Tree's memory-mapped read path: a read-only shared map of the data file, from which the
# pager reads clean pages in place instead of copying them with pread (the read_path="mmap"
# option; docs/ARCHITECTURE.md, "The B+Tree's read path").
#
# Why: a page that misses the pool then costs no system call, no copy and no allocation; the
# OS page cache is the cache, shared by every process that maps the file (as LMDB reads). The
# pool keeps only a small handle per mapped page (MAPPED_PAGE_COST against cache_size).
#
# Invariants (tests name them by number):
#   V1. Only pages below `pages` are touched, and `pages` never exceeds the page count of a meta
#       the pager read from the file (checked against the file's size, pager.pyx _decode_meta)
#       or made durable itself (a checkpoint writes every page below its count first), nor one
#       past the highest page this pager wrote (a write ahead of the checkpoint, P7, extends the
#       file to it): the file holds all of them, and never shrinks while open (only a torn
#       creation truncates it, before any map exists). A touch past the end of the file would
#       be SIGBUS.
#   V2. A mapped page is checked (checksum, pgno, type: P4) before its first use after any write
#       this process has not seen, and a branch or leaf's cell layout (tree.pyx _check_layout)
#       once too: its `verified` bit (and `laid_out` bit) is set by the check, or by this
#       process's own write of the page (Pager.write_pages: the map then shows the image it
#       sealed, whose cells the tree made); cleared before such a write (so a failed one leaves
#       the page to be checked) and when this process adopts a meta another process wrote (a
#       rebase clears every bit of the map it shares; a map an older view still holds keeps
#       its bits, harmless since that view reads only pinned pages, P2 and P5).
#   V3. The map stays mapped while any page handle points into it: each mapped Page holds a
#       reference to its FileMap, which unmaps in its deallocator only.
#   V4. No page changes in the map while a reader looks at it without a pin. An unpinned
#       descent (tree.find_leaf) reads the current view, whose pages no other open reuses (P5:
#       this open's base generation is the view's), and this open frees and reuses pages only
#       in commits, which need the GIL. So the mapped read path never gives the GIL up: the
#       check runs with it, and a miss past `pages` refreshes or remaps from the pager's own
#       meta (no fstat, no I/O call); then no commit can run between the load of a page and
#       the descent's last use of it. This open's writes made without the GIL are a
#       checkpoint's: pages whose image is an owned dirty page in the pool (which a lookup
#       returns instead of the map) and freelist pages (never read through the pool). Pinned
#       readers are covered by P2. The price: a page the OS must read from disk is faulted in
#       with the GIL held, where pread released it.
#
# What it trades: an I/O error on a mapped page is a SIGBUS that ends the process, where pread
# raises IOFailureError; read_path="pread" keeps that guarantee. Damage already on disk when a
# page is first loaded is still a CorruptionError naming it (V2); damage that appears later
# (another program writing the file, a disk returning other bytes after the OS dropped the
# page) is not checked again in this process. Faults on cold pages hold the GIL (V4).

from libc.stdint cimport uint8_t, uint32_t, uint64_t

cdef enum:
    MAPPED_PAGE_COST = 256          # bytes of cache_size a mapped page's handle counts for: the Page
                                    # object, its pool entry and ring slot (the page itself is in the
                                    # OS page cache, not in this process's memory budget)
    MAP_MIN_BYTES = 1 << 30         # the smallest map reserved: address space only, no memory

cdef class FileMap:
    cdef const unsigned char *base  # PROT_READ, MAP_SHARED view of the file's first `length` bytes;
                                    # constant; unmapped only in __dealloc__ (V3)
    cdef uint64_t length            # bytes mapped; may run past the end of the file (V1); constant
    cdef readonly uint32_t page_size    # constant
    cdef readonly uint32_t pages    # pages below the file's size when last looked at (V1); only grows
    cdef uint8_t *verified          # bit per page of `length`: checked since its last write (V2);
                                    # changed under the GIL
    cdef uint8_t *laid_out          # bit per page of `length`: a branch or leaf whose cell layout the
                                    # B+Tree validated since its last write (V2), so a handle made for it
                                    # again is trusted without a second pass over its cells; set only
                                    # with its `verified` bit, cleared with it; changed under the GIL

    cdef uint32_t page_limit(self) noexcept     # pages the map can hold: length // page_size
    cdef int refresh(self, uint32_t pages_in_file) except -1    # the file now holds that many pages
    cdef int forget(self, uint32_t pgno) noexcept          # pgno was written: check it again (V2)
    cdef int forget_all(self) noexcept                     # another process wrote: check all again
    cdef int set_laid_out(self, uint32_t pgno) noexcept     # the tree validated pgno's cells (verified)
    cdef int trust(self, uint32_t pgno, bint laid_out) noexcept     # checked, or this process wrote it


cdef inline bint page_bit(const uint8_t *bits, uint32_t pgno) noexcept nogil:
    return (bits[pgno >> 3] >> (pgno & 7)) & 1

cdef inline void set_page_bit(uint8_t *bits, uint32_t pgno) noexcept nogil:
    bits[pgno >> 3] |= <uint8_t>(1 << (pgno & 7))

cdef inline void clear_page_bit(uint8_t *bits, uint32_t pgno) noexcept nogil:
    bits[pgno >> 3] &= <uint8_t>~(1 << (pgno & 7))


cdef FileMap map_file(int fd, uint32_t page_size, uint32_t pages_in_file, FileMap older)   # None: refused
