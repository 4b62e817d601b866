# The file layer (see file.pxd): POSIX files for real use and an in-memory
# simulated file system that models power loss, for crash tests.

import errno as _errno
import fcntl
import os
import random
import time

from libc.errno cimport errno, EINTR, EIO
from libc.stdint cimport uint64_t
from libc.string cimport memcpy
from posix.unistd cimport close as c_close, pread as c_pread, pwrite as c_pwrite, ftruncate, fdatasync

from kvdb.errors import LockedError


cdef class File:
    cdef Py_ssize_t pread(self, unsigned char *buf, Py_ssize_t n, uint64_t offset) except -1:
        raise NotImplementedError

    cdef int pwrite(self, const unsigned char *buf, Py_ssize_t n, uint64_t offset) except -1:
        raise NotImplementedError

    cdef int sync(self) except -1:
        raise NotImplementedError

    cdef int truncate(self, uint64_t size) except -1:
        raise NotImplementedError

    cdef uint64_t size(self) except? 0xFFFFFFFFFFFFFFFF:
        raise NotImplementedError

    cpdef close(self):
        pass

    # Python-level helpers for tools and tests (not used on hot paths).
    def read_at(self, uint64_t offset, Py_ssize_t n):
        buf = bytearray(n)
        cdef unsigned char[::1] view = buf
        got = self.pread(&view[0], n, offset) if n else 0
        return bytes(buf[:got])

    def write_at(self, uint64_t offset, data):
        cdef const unsigned char[::1] view = bytes(data)
        if view.shape[0]:
            self.pwrite(&view[0], view.shape[0], offset)

    def fsync(self):
        self.sync()

    def length(self):
        return self.size()


cdef class OsFile(File):
    def __cinit__(self):
        self.fd = -1

    def __init__(self, str path, bint create, bint writable=True):
        flags = (os.O_RDWR if writable else os.O_RDONLY) | (os.O_CREAT if create else 0)
        if hasattr(os, "O_CLOEXEC"):
            flags |= os.O_CLOEXEC
        self.fd = os.open(path, flags, 0o644)
        self.path = path

    cdef Py_ssize_t pread(self, unsigned char *buf, Py_ssize_t n, uint64_t offset) except -1:
        cdef Py_ssize_t done = 0, r = 0
        cdef int err = 0
        if self.fd < 0:
            raise OSError(_errno.EBADF, "file is closed", self.path)
        self.inflight += 1
        with nogil:
            while done < n:
                r = c_pread(self.fd, buf + done, n - done, offset + done)
                if r < 0:
                    if errno == EINTR:
                        continue
                    err = errno
                    break
                if r == 0:
                    break
                done += r
        self.inflight -= 1
        if err:
            raise OSError(err, os.strerror(err), self.path)
        return done

    cdef int pwrite(self, const unsigned char *buf, Py_ssize_t n, uint64_t offset) except -1:
        cdef Py_ssize_t done = 0, r = 0
        cdef int err = 0
        if self.fd < 0:
            raise OSError(_errno.EBADF, "file is closed", self.path)
        self.inflight += 1
        with nogil:
            while done < n:
                r = c_pwrite(self.fd, buf + done, n - done, offset + done)
                if r < 0:
                    if errno == EINTR:
                        continue
                    err = errno
                    break
                if r == 0:
                    err = EIO
                    break
                done += r
        self.inflight -= 1
        if err:
            raise OSError(err, os.strerror(err), self.path)
        return 0

    cdef int sync(self) except -1:
        cdef int r, err = 0
        if self.fd < 0:
            raise OSError(_errno.EBADF, "file is closed", self.path)
        self.inflight += 1
        with nogil:
            r = fdatasync(self.fd)
            if r != 0:
                err = errno
        self.inflight -= 1
        if err:
            raise OSError(err, os.strerror(err), self.path)
        return 0

    cdef int truncate(self, uint64_t size) except -1:
        cdef int r, err = 0
        with nogil:
            r = ftruncate(self.fd, size)
            if r != 0:
                err = errno
        if err:
            raise OSError(err, os.strerror(err), self.path)
        return 0

    cdef uint64_t size(self) except? 0xFFFFFFFFFFFFFFFF:
        return os.fstat(self.fd).st_size

    cpdef close(self):
        # A thread may be inside pread/pwrite/fsync with the GIL released: let it finish
        # before the descriptor number can be reused by another open.
        while self.inflight > 0:
            time.sleep(0.0002)
        if self.fd >= 0:
            c_close(self.fd)
            self.fd = -1

    def __dealloc__(self):
        if self.fd >= 0:
            c_close(self.fd)


cdef class FS:
    cpdef File open(self, str path, bint create):
        raise NotImplementedError

    cpdef File open_read(self, str path):
        raise NotImplementedError

    cpdef bint exists(self, str path):
        raise NotImplementedError

    cpdef remove(self, str path):
        raise NotImplementedError

    cpdef rename(self, str src, str dst):
        raise NotImplementedError

    cpdef sync_dir(self, str path):
        raise NotImplementedError

    cpdef makedirs(self, str path):
        raise NotImplementedError

    cpdef list listdir(self, str path):
        raise NotImplementedError

    cpdef object lock(self, str path):
        raise NotImplementedError

    cpdef object lock_shared(self, str path):
        raise NotImplementedError

    cpdef unlock(self, object handle):
        raise NotImplementedError


cdef class OsFS(FS):
    """The real file system."""

    cpdef File open(self, str path, bint create):
        return OsFile(path, create)

    cpdef File open_read(self, str path):
        return OsFile(path, False, False)

    cpdef bint exists(self, str path):
        return os.path.exists(path)

    cpdef remove(self, str path):
        os.remove(path)

    cpdef rename(self, str src, str dst):
        os.replace(src, dst)

    cpdef sync_dir(self, str path):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    cpdef makedirs(self, str path):
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            parent = os.path.dirname(os.path.abspath(path))
            self.sync_dir(parent)

    cpdef list listdir(self, str path):
        return os.listdir(path)

    cpdef object lock(self, str path):
        """flock() the file: exclusive against other processes and other opens in this one."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        _flock(fd, path, fcntl.LOCK_EX, "; only one process may open a database for writing")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        return fd

    cpdef object lock_shared(self, str path):
        """flock() the file shared, without creating or writing it: read-only opens share it with
        each other and exclude a writer (and a writer excludes them). None if there is no lock file
        (a directory no writer has opened yet)."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        _flock(fd, path, fcntl.LOCK_SH, ", which has it open for writing; a read-only open needs it closed")
        return fd

    cpdef unlock(self, object handle):
        if handle is None:
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            os.close(handle)


def _flock(int fd, str path, int mode, str why):
    """flock(fd, mode) without waiting. If another holds the lock, close fd and raise LockedError
    naming the holder (the pid a writer keeps in the file) and `why`."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except OSError as e:
        try:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        except OSError:
            holder = ""
        os.close(fd)
        if e.errno in (_errno.EWOULDBLOCK, _errno.EAGAIN, _errno.EACCES):
            pid = int(holder) if holder.isdigit() else None
            raise LockedError(f"database is locked: {path} is held by process {pid if pid else 'unknown'}"
                              f"{' (this process)' if pid == os.getpid() else ''}{why}",
                              path=path, pid=pid) from None
        raise


include "simfs.pxi"
