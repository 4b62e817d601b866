# The file layer (see file.pxd): POSIX files for real use and an in-memory
# simulated file system that models power loss, for crash tests.

import errno as _errno
import fcntl
import os
import random
import threading
import time

from libc.errno cimport errno, EINTR, EIO
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from posix.unistd cimport close as c_close, pread as c_pread, pwrite as c_pwrite, ftruncate, fdatasync

cdef extern from "<fcntl.h>" nogil:
    int FALLOC_FL_PUNCH_HOLE, FALLOC_FL_KEEP_SIZE
    int c_fallocate "fallocate"(int fd, int mode, long offset, long length)

from kvdb.errors import LockedError, ReadOnlyError


cdef enum:
    RUN_MAX_BUFFERS = 64         # buffers SimFile.pwrite_pages writes in one call


cdef Py_ssize_t run_end(const uint64_t *offsets, Py_ssize_t n, Py_ssize_t i, Py_ssize_t size,
                        Py_ssize_t most) noexcept nogil:
    """The end of the run of buffers from i whose offsets follow each other, at most `most`."""
    cdef Py_ssize_t j = i + 1
    while j < n and j - i < most and offsets[j] == offsets[j - 1] + <uint64_t>size:
        j += 1
    return j


cdef int write_all(int fd, const unsigned char *buf, Py_ssize_t n, uint64_t offset) noexcept nogil:
    """pwrite n bytes whole: 0, or the errno."""
    cdef Py_ssize_t done = 0, r
    while done < n:
        r = c_pwrite(fd, buf + done, n - done, offset + done)
        if r < 0:
            if errno == EINTR:
                continue
            return errno
        if r == 0:
            return EIO
        done += r
    return 0


cdef class File:
    cdef Py_ssize_t pread(self, unsigned char *buf, Py_ssize_t n, uint64_t offset) except -1:
        raise NotImplementedError

    cdef int pwrite(self, const unsigned char *buf, Py_ssize_t n, uint64_t offset) except -1:
        raise NotImplementedError

    cdef int pwrite_pages(self, unsigned char **buffers, const uint64_t *offsets, Py_ssize_t n,
                          Py_ssize_t size) except -1:
        # Through pwrite, one call per run of adjacent buffers (SimFile: one write to tear).
        cdef Py_ssize_t i = 0, j, k
        cdef unsigned char *run
        while i < n:
            j = run_end(offsets, n, i, size, RUN_MAX_BUFFERS)
            run = <unsigned char *>malloc((j - i) * size)
            if run == NULL:
                raise MemoryError()
            try:
                for k in range(i, j):
                    memcpy(run + (k - i) * size, buffers[k], size)
                self.pwrite(run, (j - i) * size, offsets[i])
            finally:
                free(run)
            i = j
        return 0

    cdef int sync(self) except -1:
        raise NotImplementedError

    cdef int truncate(self, uint64_t size) except -1:
        raise NotImplementedError

    cdef int punch(self, uint64_t offset, uint64_t n) except -1:
        return 0

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

    cdef int pwrite_pages(self, unsigned char **buffers, const uint64_t *offsets, Py_ssize_t n,
                          Py_ssize_t size) except -1:
        # one pwrite a page, not a pwritev a run: see file.pxd (large folios)
        cdef Py_ssize_t i = 0
        cdef int err = 0
        if self.fd < 0:
            raise OSError(_errno.EBADF, "file is closed", self.path)
        self.inflight += 1
        with nogil:
            while i < n and err == 0:
                err = write_all(self.fd, buffers[i], size, offsets[i])
                i += 1
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

    cdef int punch(self, uint64_t offset, uint64_t n) except -1:
        cdef int r, err = 0
        with nogil:
            r = c_fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, n)
            if r != 0:
                err = errno
        if err in (_errno.EOPNOTSUPP, _errno.ENOSYS):
            return 0
        if err:
            raise OSError(err, os.strerror(err), self.path)
        return 1

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

    cpdef object lock(self, str path, str role):
        raise NotImplementedError

    cpdef int lock_settle(self, object handle) except -1:
        raise NotImplementedError

    cpdef bint lock_try_last(self, object handle) except -1:
        raise NotImplementedError

    cpdef unlock(self, object handle):
        raise NotImplementedError

    cpdef int thread_started(self) except -1:
        return 0


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

    cpdef object lock(self, str path, str role):
        """Take the database's `LOCK` file in `role` (ROLES); raises LockedError. See DbLock."""
        return DbLock(path, role)

    cpdef int lock_settle(self, object handle) except -1:
        """The first opener has set up what openers share: let the others in (byte 0 becomes
        shared; atomic, so no opener slips in between)."""
        if handle is not None and (<DbLock>handle).role != "exclusive":
            (<DbLock>handle).settle()
        return 0

    cpdef bint lock_try_last(self, object handle) except -1:
        """Whether this is the only open of the database, made so until unlock(): byte 0 is taken
        exclusive without waiting (closing: the last one out checkpoints)."""
        if handle is None:
            return False
        return (<DbLock>handle).try_last()

    cpdef unlock(self, object handle):
        if handle is not None:
            (<DbLock>handle).release()


cdef extern from "fcntl.h" nogil:
    cdef struct flock:
        short l_type
        short l_whence
        long l_start
        long l_len
        int l_pid
    int F_OFD_SETLK, F_OFD_SETLKW, F_OFD_GETLK, F_RDLCK, F_WRLCK, F_UNLCK
    int c_fcntl "fcntl"(int fd, int cmd, ...)

# The bytes of LOCK that carry the roles (open-file-description locks: each open of the file is
# its own owner, in this process as in others, and the kernel drops them when the descriptor
# closes, also when its process is killed).
LOCK_BYTE_OPEN = 0         # every open holds it shared; the first opener, while it sets up what
                           # openers share, the last one while it closes, and an exclusive open
                           # hold it exclusive
LOCK_BYTE_WRITERS = 1      # members (the B+Tree's read-write opens) hold it shared; a sole writer
                           # (the LSM's primary, kvdb serve) exclusive
LOCK_BYTE_EXCLUSIVE = 2    # an exclusive open holds it too, so that waiting opens can tell it from
                           # a brief set-up or close and fail at once
LOCK_BYTE_DETACHED = 3     # read-only opens that cannot write LOCK (read-only media, no permission)
                           # hold it shared: they cannot register in shared state, so no writer
                           # may join while they read
ROLES = ("member", "writer", "reader", "exclusive")
OPEN_WAIT_SECONDS = 30.0   # how long an open waits for the first opener's set-up or the last one's close


cdef int byte_lock(int fd, int kind, long start, bint wait) except -2:
    """An open-file-description lock (BYTE_SHARED, BYTE_EXCLUSIVE) of byte `start`: 0 taken,
    -1 held by another open (without `wait`). BYTE_FREE lets go of this description's lock."""
    cdef flock fl
    cdef int r, err
    fl.l_type = F_RDLCK if kind == BYTE_SHARED else F_UNLCK if kind == BYTE_FREE else F_WRLCK
    fl.l_whence = 0
    fl.l_start = start
    fl.l_len = 1
    fl.l_pid = 0
    while True:
        if wait:
            with nogil:
                r = c_fcntl(fd, F_OFD_SETLKW, &fl)
        else:
            r = c_fcntl(fd, F_OFD_SETLK, &fl)
        if r == 0:
            return 0
        err = errno
        if err == EINTR:
            continue
        if err in (_errno.EAGAIN, _errno.EACCES) and not wait:
            return -1
        raise OSError(err, os.strerror(err))


cdef int byte_holder(int fd, long start) except -1:
    """How another open holds byte `start`: BYTE_FREE, BYTE_SHARED or BYTE_EXCLUSIVE (asked
    with F_OFD_GETLK, which takes and writes nothing)."""
    cdef flock fl
    fl.l_type = F_WRLCK
    fl.l_whence = 0
    fl.l_start = start
    fl.l_len = 1
    fl.l_pid = 0
    while c_fcntl(fd, F_OFD_GETLK, &fl) != 0:
        if errno != EINTR:
            raise OSError(errno, os.strerror(errno))
    return BYTE_FREE if fl.l_type == F_UNLCK else BYTE_SHARED if fl.l_type == F_RDLCK else BYTE_EXCLUSIVE


cdef class DbLock:
    """A database's hold on its directory's LOCK file, by role:
      member    - the B+Tree's read-write opens, any number of processes: bytes 0 and 1 shared
      writer    - a sole writer (the LSM's primary; kvdb serve, whose counters and expiry index
                  need every write to pass through it): byte 0 shared, byte 1 exclusive
      reader    - read-only opens: byte 0 shared; the file is opened read-only when it cannot be
                  opened for writing, and then never set up (`first` stays False)
      exclusive - bytes 0 and 2 exclusive for the whole open (tools that rewrite the files)
    `first` is True when no other open held the database: the opener then sets up what openers
    share (the B+Tree's shared-memory file, recovery) and calls settle(), which lets others in."""
    cdef readonly int fd
    cdef readonly str path
    cdef readonly str role
    cdef readonly bint first
    cdef readonly bint detached          # a reader that cannot write LOCK: reads the files alone
    cdef bint writable

    def __init__(self, str path, str role):
        if role not in ROLES:
            raise ValueError(f"lock role must be one of {ROLES}, not {role!r}")
        self.fd = -1
        self.path = path
        self.role = role
        cloexec = getattr(os, "O_CLOEXEC", 0)
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | cloexec, 0o644) if role != "reader" \
                else os.open(path, os.O_RDWR | cloexec)
            self.writable = True
        except PermissionError:
            if role != "reader":
                raise
            self.fd = os.open(path, os.O_RDONLY | cloexec)
        except OSError as e:
            if role == "reader" and e.errno == _errno.EROFS:
                self.fd = os.open(path, os.O_RDONLY | cloexec)
            else:
                raise
        try:
            self._take()
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            raise

    cdef _take(self):
        cdef double deadline = time.monotonic() + OPEN_WAIT_SECONDS
        if self.role == "exclusive":
            if byte_lock(self.fd, BYTE_EXCLUSIVE, LOCK_BYTE_OPEN, False) < 0:
                self._locked("; it is open in another process (or another open in this one), and this needs it "
                             "to itself", False)
            byte_lock(self.fd, BYTE_EXCLUSIVE, LOCK_BYTE_EXCLUSIVE, False)
            self._record_pid()
            self.first = True
            return
        if self.writable and byte_lock(self.fd, BYTE_EXCLUSIVE, LOCK_BYTE_OPEN, False) == 0:
            self.first = True
        else:
            # Others have it open: wait while one of them holds byte 0 exclusive (setting up or
            # closing, brief), but not for an exclusive open (a tool rewriting the files).
            while byte_lock(self.fd, BYTE_SHARED, LOCK_BYTE_OPEN, False) < 0:
                if byte_holder(self.fd, LOCK_BYTE_EXCLUSIVE) != BYTE_FREE:
                    self._locked("; it is held exclusively (a tool rewriting the database, such as kvdb compact)", True)
                if time.monotonic() > deadline:
                    self._locked(f"; waited {OPEN_WAIT_SECONDS:.0f} s for another open to finish setting up or "
                                 "closing", False)
                time.sleep(0.002)
        if self.role == "writer":
            if byte_lock(self.fd, BYTE_EXCLUSIVE, LOCK_BYTE_WRITERS, False) < 0:
                if byte_holder(self.fd, LOCK_BYTE_WRITERS) == BYTE_SHARED:
                    self._locked("; other processes have it open for writing, and this open must be its only "
                                 "writer (read-only opens may join it)", False)
                self._locked("; it has one writer at a time (open it with readonly=True to read beside it)", True)
            self._record_pid()
        elif self.role == "member":
            if byte_lock(self.fd, BYTE_SHARED, LOCK_BYTE_WRITERS, False) < 0:
                self._locked("; it has one writer at a time (kvdb serve, or an LSM database's writer); open it "
                             "with readonly=True to read beside it", True)
        elif self.role == "reader" and not self.writable:
            # Cannot write LOCK, so cannot take part in what opens share: read alone, and keep
            # writers out meanwhile. Refused if one is already in.
            if byte_holder(self.fd, LOCK_BYTE_WRITERS) != BYTE_FREE:
                raise ReadOnlyError(f"{self.path}: a read-only open without write access to this file cannot "
                                    "follow the processes that have the database open for writing; open it when "
                                    "they have closed it, or with write access")
            byte_lock(self.fd, BYTE_SHARED, LOCK_BYTE_DETACHED, False)
            self.detached = True
        elif self.role == "reader" and byte_holder(self.fd, LOCK_BYTE_DETACHED) != BYTE_FREE:
            self.detached = True     # beside a detached reader no writer is in, and shared state may be
            self.first = False       # stale: read the files alone too
        if self.role in ("member", "writer") and byte_holder(self.fd, LOCK_BYTE_DETACHED) != BYTE_FREE:
            self._locked("; a read-only open without write access to it is reading the database and cannot follow "
                         "writers; it must close first", False)

    cdef _record_pid(self):
        note = b"exclusive" if self.role == "exclusive" else b"writer"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, b"%d %s\n" % (os.getpid(), note), 0)

    cdef _locked(self, str why, bint named):
        """LockedError; `named`: the holder wrote its pid into the file (a sole writer or an
        exclusive open), else the holders are members, which do not."""
        pid = None
        if named:
            try:
                parts = os.pread(self.fd, 64, 0).decode("ascii", "replace").split()
            except OSError:
                parts = []
            pid = int(parts[0]) if parts and parts[0].isdigit() else None
        raise LockedError(f"database is locked: {self.path} is held by "
                          f"{f'process {pid}' if pid else 'another open'}"
                          f"{' (this process)' if pid == os.getpid() else ''}{why}", path=self.path, pid=pid)

    def settle(self):
        if self.first and self.fd >= 0:
            byte_lock(self.fd, BYTE_SHARED, LOCK_BYTE_OPEN, True)

    def try_last(self):
        if self.fd < 0 or not self.writable:
            return False
        return byte_lock(self.fd, BYTE_EXCLUSIVE, LOCK_BYTE_OPEN, False) == 0

    def release(self):
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)            # drops every lock this description holds

    def __dealloc__(self):
        if self.fd >= 0:
            c_close(self.fd)


include "simfs.pxi"
