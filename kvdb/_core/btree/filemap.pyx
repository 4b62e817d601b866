# The B+Tree data file's read-only map (filemap.pxd: why, the fields, invariants V1-V4).

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free as c_free
from libc.string cimport memcpy, memset
from posix.mman cimport mmap, munmap, PROT_READ, MAP_SHARED, MAP_FAILED

cdef uint64_t map_min_bytes = MAP_MIN_BYTES    # the smallest map made; tests lower it to map again often


def set_map_min_bytes(uint64_t n):
    """Tests only: make maps from now on at least n bytes (instead of MAP_MIN_BYTES), so that a
    small file outgrows its map; returns the previous value."""
    global map_min_bytes
    old, map_min_bytes = map_min_bytes, n
    return old


cdef class FileMap:
    def __dealloc__(self):
        if self.base != NULL:
            munmap(<void *>self.base, self.length)      # V3: no page handle is left
        c_free(self.verified)
        c_free(self.laid_out)

    cdef uint32_t page_limit(self) noexcept:
        return <uint32_t>min(self.length // self.page_size, <uint64_t>0xFFFFFFFFu)

    cdef int refresh(self, uint32_t pages_in_file) except -1:
        cdef uint32_t limit = self.page_limit()
        if pages_in_file > limit:
            pages_in_file = limit
        if pages_in_file > self.pages:
            self.pages = pages_in_file                  # V1: the file never shrinks while open
        return 0

    cdef int forget(self, uint32_t pgno) noexcept:
        if pgno < self.page_limit():
            clear_page_bit(self.verified, pgno)
            clear_page_bit(self.laid_out, pgno)
        return 0

    cdef int forget_all(self) noexcept:
        memset(self.verified, 0, (self.page_limit() + 7) // 8)
        memset(self.laid_out, 0, (self.page_limit() + 7) // 8)
        return 0

    cdef int trust(self, uint32_t pgno, bint laid_out) noexcept:
        if pgno < self.page_limit():
            set_page_bit(self.verified, pgno)
            if laid_out:
                set_page_bit(self.laid_out, pgno)
        return 0

    cdef int set_laid_out(self, uint32_t pgno) noexcept:
        if pgno < self.page_limit() and page_bit(self.verified, pgno):
            set_page_bit(self.laid_out, pgno)
        return 0

    def __repr__(self):
        return f"<FileMap {self.pages} pages mapped of {self.page_limit()} reserved>"


cdef FileMap map_file(int fd, uint32_t page_size, uint32_t pages_in_file, FileMap older):
    """A map of the file `fd`, which holds at least `pages_in_file` pages, large enough for twice
    that, at least map_min_bytes: the file grows into it without a new map. `older`, a smaller
    map of the same file this replaces, passes its verified bits on (V2 holds for them: same
    process, same file). None if the system refuses the map (an address-space limit, a file
    system without mmap): the caller reads with pread instead. Makes no call that releases the
    GIL (V4)."""
    cdef FileMap m = FileMap.__new__(FileMap)
    cdef uint64_t want = max(map_min_bytes, 2 * <uint64_t>pages_in_file * page_size)
    cdef void *p
    want = (want + page_size - 1) // page_size * page_size
    p = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0)
    if p == MAP_FAILED:
        return None
    m.base = <const unsigned char *>p
    m.length = want
    m.page_size = page_size
    m.verified = <uint8_t *>calloc((m.page_limit() + 7) // 8 + 1, 1)
    m.laid_out = <uint8_t *>calloc((m.page_limit() + 7) // 8 + 1, 1)
    if m.verified == NULL or m.laid_out == NULL:
        raise MemoryError()
    m.pages = 0
    m.refresh(pages_in_file)
    if older is not None:
        memcpy(m.verified, older.verified, (older.page_limit() + 7) // 8)
        memcpy(m.laid_out, older.laid_out, (older.page_limit() + 7) // 8)
    return m
