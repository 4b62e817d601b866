# The file layer: every byte kvdb reads or writes goes through a File, and
# every directory operation through an FS. Two implementations:
#   OsFile/OsFS   - POSIX pread/pwrite/fdatasync, the GIL released around each call.
#   SimFile/SimFS - in memory, for crash tests: written-but-unsynced data is
#                   kept apart and at a simulated power loss each pending write
#                   is applied, dropped or torn (seeded, reproducible).
# Layers above see only File and FS.

from libc.stdint cimport uint64_t

cdef class File:
    cdef readonly str path          # the name this file was opened under; constant

    cdef Py_ssize_t pread(self, unsigned char *buf, Py_ssize_t n, uint64_t offset) except -1
    cdef int pwrite(self, const unsigned char *buf, Py_ssize_t n, uint64_t offset) except -1
    # n buffers of `size` bytes each, buffers[i] to offsets[i] (ascending). OsFile writes each with
    # its own pwrite, releasing the GIL once for all of them (so a thread writing a checkpoint does
    # not take the GIL back from the committing thread per page). One pwrite a page, not one
    # pwritev a run of adjacent pages: Linux caches a range written in one call as one large folio,
    # and a later write of one page in it dirties, and writes back, the whole folio (measured on
    # ext4, Linux 6.18: rewrites of single pages of ranges first written 8 pages at a time were
    # accounted 24 KB each; a B+Tree fill of 1M keys wrote 3.2x the bytes its checkpoints wrote).
    # SimFile writes a run of adjacent buffers in one write, so a crash test can tear it.
    cdef int pwrite_pages(self, unsigned char **buffers, const uint64_t *offsets, Py_ssize_t n,
                          Py_ssize_t size) except -1
    cdef int sync(self) except -1                 # data durable (fdatasync)
    cdef int truncate(self, uint64_t size) except -1
    # Give the file system back the blocks of [offset, offset + n) (a hole, read as zeros), keeping
    # the size: 1 if done, 0 where the file or its file system cannot (SimFile, no hole support).
    cdef int punch(self, uint64_t offset, uint64_t n) except -1
    cdef uint64_t size(self) except? 0xFFFFFFFFFFFFFFFF
    cpdef close(self)

cdef class OsFile(File):
    cdef int fd                      # -1 once closed
    cdef int inflight                # calls running without the GIL; close() waits for them (GIL)

cdef class FS:
    cpdef File open(self, str path, bint create)
    cpdef File open_read(self, str path)  # an existing file, for reading only (writes fail: EBADF)
    cpdef bint exists(self, str path)
    cpdef remove(self, str path)
    cpdef rename(self, str src, str dst)
    cpdef sync_dir(self, str path)   # make creations/renames/removals in a directory durable
    cpdef makedirs(self, str path)
    cpdef list listdir(self, str path)
    cpdef object lock(self, str path, str role)   # the LOCK file in a role (file.pyx: DbLock); LockedError
    cpdef int lock_settle(self, object handle) except -1    # the first opener is set up: let others in
    cpdef bint lock_try_last(self, object handle) except -1  # no other open now; stays so until unlock
    cpdef unlock(self, object handle)
    cpdef int thread_started(self) except -1   # a database's own thread begins (SimFS: ties it to
                                               # the current power cycle; a no-op on real files)

cdef class OsFS(FS):
    pass


# Open-file-description byte locks (Linux): the LOCK file's roles (DbLock) and the B+Tree's
# shared-memory slots use them. The kernel drops them when the open's descriptor closes.
cdef enum:
    BYTE_FREE = 0
    BYTE_SHARED = 1
    BYTE_EXCLUSIVE = 2

cdef int byte_lock(int fd, int kind, long start, bint wait) except -2   # 0 taken, -1 held by another
cdef int byte_holder(int fd, long start) except -1                      # BYTE_FREE/SHARED/EXCLUSIVE
