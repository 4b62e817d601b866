# The B+Tree's memory-mapped read path: a read-only shared map of the data file, from which the
# pager reads clean pages in place instead of copying them with pread (the read_path="mmap"
# option; docs/ARCHITECTURE.md, "The B+Tree's read path").
#
# Why: a page that misses the pool then costs no system call, no copy and no allocation; the
# OS page cache is the cache, shared by every process that maps the file (as LMDB reads). The
# pool keeps only a small handle per mapped page (MAPPED_PAGE_COST against cache_size).
#
# Invariants (tests name them by number):
#   V1. Only pages below `pages` are touched, and `pages` never exceeds the file's size at a
#       moment after which the file only grew: a touch past the end of the file would be SIGBUS.
#       (The data file never shrinks while open: only a torn creation truncates it, before any
#       map exists.)
#   V2. A mapped page is checked (checksum, pgno, type: P4) before its first use after any write
#       this process may not have seen: its `verified` bit is set by the check and cleared when
#       this process writes the page (a checkpoint) or adopts a meta another process wrote (a
#       rebase clears every bit).
#   V3. The map stays mapped while any page handle points into it: each mapped Page holds a
#       reference to its FileMap, which unmaps in its deallocator only.
#   V4. No page changes in the map while a reader looks at it without a pin. The only writes
#       made without the GIL are a checkpoint's, of pages whose image is an owned dirty page in
#       the pool (which a lookup returns instead of the map); a page an unpinned reader holds
#       can change only if commits free, reclaim and reuse it meanwhile, and commits need the
#       GIL. So a mapped page is checked with the GIL held, and an unpinned descent keeps it
#       from the load of each page to its last use of it. Pinned readers are covered by P2.
#
# What it trades: an I/O error on a mapped page is a SIGBUS that ends the process, where pread
# raises IOFailureError; read_path="pread" keeps that guarantee. Corruption is still a
# CorruptionError (V2), read once per page per process instead of once per pool miss.

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

    cdef uint32_t page_limit(self) noexcept     # pages the map can hold: length // page_size
    cdef int refresh(self, uint64_t file_size) except -1   # the file is now at least file_size bytes
    cdef int forget(self, uint32_t pgno) noexcept          # pgno was written: check it again (V2)
    cdef int forget_all(self) noexcept                     # another process wrote: check all again


cdef FileMap map_file(int fd, uint32_t page_size, uint64_t file_size, FileMap older)
