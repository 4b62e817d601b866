# SimFS: an in-memory file system that models what power loss does to files
# (included into file.pyx).
#
# Every file keeps two images: `durable` (what survives power loss) and
# `current` (what reads see). A pwrite or truncate changes `current` and is
# queued as pending; sync() moves the file's pending operations into
# `durable`. Directory operations (create, rename, remove) are pending per
# directory until sync_dir(). At crash(seed):
#   - each pending file write is, by a seeded choice, applied whole, dropped,
#     or torn (a random prefix applied), in order, so later writes can land
#     while earlier ones are lost (the OS writes back pages in any order);
#   - each directory keeps a random prefix of its pending operations;
#   - every file's current image is reset to its durable one, locks are freed.
# crash_after(n) makes the n-th I/O call from now, and all after it, raise
# SimulatedCrash, so a test can stop a workload at any point.
#
# Power loss also ends every thread of the crashed process. A database's background thread may be
# in the middle of work that does no I/O (a table build) when the crash point comes, and would go
# on writing into the revived file system, as no real process does. So each thread belongs to a
# power cycle (`epoch`): the one current at its first I/O call, or when it began (thread_started,
# called by the database's background thread). crash() starts a new cycle, which the thread that
# calls it joins; a thread of an older cycle gets SimulatedCrash from every call.

class SimulatedCrash(Exception):
    """Raised by every SimFS call after the crash point set by crash_after()."""


class _Inode:
    __slots__ = ("durable", "current", "pending", "serial")
    created = 0                      # inodes made so far: the order crash() visits them in

    def __init__(self):
        _Inode.created += 1
        self.serial = _Inode.created # creation order, so a seed replays the same crash
        self.durable = bytearray()   # bytes that survive a crash
        self.current = bytearray()   # bytes reads see
        self.pending = []            # [("w", offset, bytes) | ("t", size)] not yet synced


cdef class SimFile(File):
    cdef SimFS fs                    # owner; constant
    cdef object inode                # _Inode; constant
    cdef bint closed

    cdef Py_ssize_t pread(self, unsigned char *buf, Py_ssize_t n, uint64_t offset) except -1:
        self.fs._tick("read")
        cur = self.inode.current
        if offset >= <uint64_t>len(cur):
            return 0
        end = min(len(cur), offset + n)
        chunk = bytes(cur[offset:end])
        cdef Py_ssize_t got = len(chunk)
        if got:
            memcpy(buf, <const char *>chunk, got)
        return got

    cdef int pwrite(self, const unsigned char *buf, Py_ssize_t n, uint64_t offset) except -1:
        self.fs._tick("write")
        data = bytes((<const char *>buf)[:n])
        cur = self.inode.current
        if len(cur) < offset:
            cur.extend(bytes(offset - len(cur)))
        cur[offset:offset + n] = data
        self.inode.pending.append(("w", offset, data))
        return 0

    cdef int sync(self) except -1:
        self.fs._tick("fsync")
        _apply_all(self.inode.durable, self.inode.pending)
        self.inode.pending = []
        return 0

    cdef int truncate(self, uint64_t size) except -1:
        self.fs._tick("write")
        cur = self.inode.current
        if len(cur) > size:
            del cur[size:]
        else:
            cur.extend(bytes(size - len(cur)))
        self.inode.pending.append(("t", size))
        return 0

    cdef uint64_t size(self) except? 0xFFFFFFFFFFFFFFFF:
        return len(self.inode.current)

    cpdef close(self):
        self.closed = True


def _apply_all(durable, ops):
    for op in ops:
        _apply_one(durable, op, None)


def _apply_one(durable, op, keep):
    """Apply one pending op to `durable`; keep=None applies it whole, else only `keep` bytes."""
    if op[0] == "t":
        size = op[1]
        if len(durable) > size:
            del durable[size:]
        else:
            durable.extend(bytes(size - len(durable)))
        return
    _, offset, data = op
    if keep is not None:
        data = data[:keep]
    if not data:
        return
    if len(durable) < offset:
        durable.extend(bytes(offset - len(durable)))
    durable[offset:offset + len(data)] = data


cdef class SimFS(FS):
    """An in-memory file system for crash tests; see the top of simfs.pxi."""
    cdef dict current                # name -> _Inode, what lookups see
    cdef dict durable                # name -> _Inode, the directory entries that survive a crash
    cdef list dir_pending            # [(dirname, op, args)] directory operations not yet synced
    cdef set dirs                    # directories that exist
    cdef set locks                   # paths locked by a live database
    cdef public long io_calls        # I/O calls made so far
    cdef long crash_countdown        # calls until SimulatedCrash; -1 = never
    cdef bint dead                   # every call raises SimulatedCrash until crash()
    cdef dict fail_countdown         # op ("write"/"fsync"/"read") -> calls until one OSError(EIO)
    cdef long epoch                  # power cycles so far: crash() counts one
    cdef object pause                # [op, reached, resume, thread ident, calls to skip] or None: pause_next()
    cdef object threads              # threading.local: .epoch, the power cycle of the calling thread

    def __init__(self):
        self.current = {}
        self.durable = {}
        self.dir_pending = []
        self.dirs = {"/", ""}
        self.locks = set()
        self.io_calls = 0
        self.crash_countdown = -1
        self.dead = False
        self.fail_countdown = {}
        self.epoch = 0
        self.threads = threading.local()
        self.pause = None

    # -- fault injection -------------------------------------------------

    def crash_after(self, long n):
        """The n-th I/O call from now (n >= 1) and every later one raise SimulatedCrash."""
        self.crash_countdown = n

    def fail_after(self, long n, str op="fsync"):
        """The n-th `op` call from now ("write", "fsync" or "read") raises OSError(EIO), once."""
        if op not in ("write", "fsync", "read"):
            raise ValueError("op must be 'write', 'fsync' or 'read'")
        self.fail_countdown[op] = n

    def pause_next(self, str op, reached, resume, long skip=0):
        """The next `op` call ("write", "fsync" or "read") made by a thread other than the
        calling one, after `skip` such calls, sets the threading.Event `reached`, then waits for
        `resume` before it goes on: a test holds another thread (a background checkpoint, say)
        at that point."""
        if op not in ("write", "fsync", "read"):
            raise ValueError("op must be 'write', 'fsync' or 'read'")
        self.pause = [op, reached, resume, threading.get_ident(), skip]

    cpdef int thread_started(self) except -1:
        self.threads.epoch = self.epoch
        return 0

    def _tick(self, str op):
        if self.dead:
            raise SimulatedCrash("simulated power loss")
        mine = getattr(self.threads, "epoch", None)
        if mine is None:
            self.threads.epoch = self.epoch
        elif mine != self.epoch:
            raise SimulatedCrash("simulated power loss (a thread of the crashed process)")
        self.io_calls += 1
        pause = self.pause
        if pause is not None and pause[0] == op and pause[3] != threading.get_ident():
            if pause[4] > 0:
                pause[4] -= 1
                pause = None
            else:
                self.pause = None
        else:
            pause = None
        if pause is not None:
            pause[1].set()
            pause[2].wait()
            if self.dead or getattr(self.threads, "epoch", self.epoch) != self.epoch:
                raise SimulatedCrash("simulated power loss (while paused)")
        if self.crash_countdown > 0:
            self.crash_countdown -= 1
            if self.crash_countdown == 0:
                self.dead = True
                self.crash_countdown = -1
                raise SimulatedCrash("simulated power loss")
        n = self.fail_countdown.get(op)
        if n is not None:
            if n <= 1:
                del self.fail_countdown[op]
                raise OSError(_errno.EIO, f"simulated {op} failure")
            self.fail_countdown[op] = n - 1

    def crash(self, seed=0):
        """Simulate power loss: keep, drop or tear every unsynced change (seeded)."""
        rng = random.Random(seed)
        # Directory operations: each directory keeps a random prefix of its pending ops.
        by_dir = {}
        for entry in self.dir_pending:
            by_dir.setdefault(entry[0], []).append(entry)
        for d, ops in sorted(by_dir.items()):
            keep = rng.randint(0, len(ops))
            for _, op, args in ops[:keep]:
                self._apply_dir_op(self.durable, op, args)
        self.dir_pending = []
        # File data: each pending write applied, dropped or torn.
        inodes = {i.serial: i for i in list(self.current.values()) + list(self.durable.values())}
        for key in sorted(inodes):
            inode = inodes[key]
            for op in inode.pending:
                choice = rng.random()
                if choice < 0.4:
                    _apply_one(inode.durable, op, None)
                elif choice < 0.7 or op[0] == "t":
                    pass
                else:
                    _apply_one(inode.durable, op, rng.randint(0, len(op[2])))
            inode.pending = []
            inode.current = bytearray(inode.durable)
        self.current = dict(self.durable)
        self.locks = set()
        self.epoch += 1
        self.threads.epoch = self.epoch
        self.dead = False
        self.crash_countdown = -1
        self.fail_countdown = {}

    def _apply_dir_op(self, table, op, args):
        if op == "create":
            table[args[0]] = args[1]
        elif op == "remove":
            table.pop(args[0], None)
        elif op == "rename":
            src, dst = args
            if src in table:
                table[dst] = table.pop(src)

    # -- tools for tests -------------------------------------------------

    def read_file(self, str path):
        return bytes(self.current[path].current)

    def write_file(self, str path, data):
        """Replace a file's bytes, durably (for corruption tests)."""
        inode = self.current[path]
        inode.current = bytearray(data)
        inode.durable = bytearray(data)
        inode.pending = []

    # -- FS interface ----------------------------------------------------

    cpdef File open(self, str path, bint create):
        self._tick("open")
        inode = self.current.get(path)
        if inode is None:
            if not create:
                raise FileNotFoundError(_errno.ENOENT, "no such file", path)
            inode = _Inode()
            self.current[path] = inode
            self.dir_pending.append((os.path.dirname(path), "create", (path, inode)))
        f = SimFile()
        f.fs = self
        f.inode = inode
        f.path = path
        return f

    cpdef File open_read(self, str path):
        return self.open(path, False)      # the simulator does not enforce it; read-only code never writes

    cpdef bint exists(self, str path):
        return path in self.current or path in self.dirs

    cpdef remove(self, str path):
        self._tick("remove")
        if path not in self.current:
            raise FileNotFoundError(_errno.ENOENT, "no such file", path)
        del self.current[path]
        self.dir_pending.append((os.path.dirname(path), "remove", (path,)))

    cpdef rename(self, str src, str dst):
        self._tick("rename")
        if src not in self.current:
            raise FileNotFoundError(_errno.ENOENT, "no such file", src)
        self.current[dst] = self.current.pop(src)
        self.dir_pending.append((os.path.dirname(dst), "rename", (src, dst)))

    cpdef sync_dir(self, str path):
        self._tick("fsync")
        keep = []
        for entry in self.dir_pending:
            if entry[0] == path:
                self._apply_dir_op(self.durable, entry[1], entry[2])
            else:
                keep.append(entry)
        self.dir_pending = keep

    cpdef makedirs(self, str path):
        while path not in self.dirs:
            self.dirs.add(path)
            path = os.path.dirname(path)

    cpdef list listdir(self, str path):
        if path not in self.dirs:
            raise FileNotFoundError(_errno.ENOENT, "no such directory", path)
        return sorted([os.path.basename(p) for p in self.current if os.path.dirname(p) == path])

    cpdef object lock(self, str path, str role):
        # One open per database at a time: the simulated file system models one process.
        if path in self.locks:
            raise LockedError(f"database is locked: {path} is held by process {os.getpid()} (this process); "
                              "the simulated file system allows one open at a time",
                              path=path, pid=os.getpid())
        self.locks.add(path)
        return path

    cpdef int lock_settle(self, object handle) except -1:
        return 0

    cpdef bint lock_try_last(self, object handle) except -1:
        return handle is not None

    cpdef unlock(self, object handle):
        if handle is None:
            return
        self.locks.discard(handle)
