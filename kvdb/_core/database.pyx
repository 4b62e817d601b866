# The database: opening and recovery, the commit path (WAL, then tree, then
# publish), snapshots, optimistic transactions, checkpoints and the background
# thread. The engine below (BTree over Pager) is reached only through
# get/apply/cursor/verify, the boundary an LSM engine plugs in at.
#
# Concurrency:
#   - `lock` (the writer lock) serialises commits, checkpoints and close.
#   - Readers take no lock. A reader without a snapshot checks `write_gen`
#     (odd while a commit is changing pages) and retries if it moved; a
#     snapshot or transaction pins its version under the writer lock, and
#     pinned versions are never changed in place (B4) nor their pages reused (P2).
#   - With sync="full", committers release the writer lock before fsync and
#     share one fsync (group commit, Wal.sync_to).

import bisect
import functools
import math
import os
import threading
import time
import weakref

cimport cython
from cpython.bytes cimport PyBytes_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME

from kvdb._core.btree cimport BTree, Cursor
from kvdb._core.file cimport File, FS, OsFS
from kvdb._core.pager cimport Pager, Page
from kvdb._core.wal cimport Wal
from kvdb._core.pager import reclaim_pages
from kvdb._core.wal import encode_ops, decode_ops
from kvdb._core.lsm cimport LsmEngine

from kvdb.errors import (ClosedError, ConflictError, CorruptionError, Error, ForkError, IOFailureError,
                         ReadOnlyError)

MAX_KEY_SIZE = 16384                 # bytes; keys longer than a page's share spill to overflow pages
MAX_VALUE_SIZE = 256 * 1024 * 1024   # bytes
SYNC_MODES = {"full": 2, "normal": 1, "off": 0}
DATA_FILE = "data.kvdb"
WAL_FILE = "wal-000001.log"
LOCK_FILE = "LOCK"
LSM_CURRENT = "CURRENT"              # the LSM engine's manifest pointer (its presence marks an LSM database)
ENGINES = ("btree", "lsm")
NORMAL_SYNC_INTERVAL = 1.0           # seconds between background fsyncs with sync="normal"
MAX_EXPIRES_MS = 1 << 62             # expiries past this (about 146 million years) are refused
SWEEP_BATCH = 1000                   # keys one expiry-sweep step examines
SWEEP_MAX_STEPS = 8                  # steps per background wake while most examined keys were expired

cdef int STATE_OPEN = 0
cdef int STATE_CLOSED = 1
cdef int STATE_FORKED = 2

_live = weakref.WeakSet()


def _after_fork_in_child():
    for db in list(_live):
        (<Database>db).state = STATE_FORKED


os.register_at_fork(after_in_child=_after_fork_in_child)


cdef inline bytes as_key(object key):
    cdef Py_ssize_t n
    if type(key) is not bytes:
        if isinstance(key, (bytearray, memoryview)):
            key = bytes(key)
        elif isinstance(key, bytes):
            key = bytes(key)
        else:
            raise TypeError(f"key must be bytes, bytearray or memoryview, not {type(key).__name__}")
    n = PyBytes_GET_SIZE(key)
    if n == 0 or n > MAX_KEY_SIZE:
        raise ValueError(f"key length {n} is outside 1..{MAX_KEY_SIZE} bytes (kvdb.MAX_KEY_SIZE)")
    return <bytes>key


cdef inline bytes as_value(object value):
    if type(value) is not bytes:
        if isinstance(value, (bytearray, memoryview, bytes)):
            value = bytes(value)
        else:
            raise TypeError(f"value must be bytes, bytearray or memoryview, not {type(value).__name__}")
    if PyBytes_GET_SIZE(value) > MAX_VALUE_SIZE:
        raise ValueError(f"value length {PyBytes_GET_SIZE(value)} exceeds kvdb.MAX_VALUE_SIZE "
                         f"({MAX_VALUE_SIZE} bytes)")
    return <bytes>value


cdef inline uint64_t expiry_from_ttl(object ttl, uint64_t now) except 0:
    """The absolute expiry (wall-clock ms) of a put with `ttl` seconds at `now`."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"ttl must be a number of seconds (int or float), not {type(ttl).__name__}")
    if not ttl > 0 or ttl == math.inf:
        raise ValueError(f"ttl must be a positive, finite number of seconds, not {ttl!r}")
    ms = math.ceil(ttl * 1000) if isinstance(ttl, float) else ttl * 1000
    if ms + now >= MAX_EXPIRES_MS:
        raise ValueError(f"ttl {ttl!r} is too large (the expiry would pass year 146,000,000)")
    return max(1, ms) + now


cdef inline bint is_expired(uint64_t expires, uint64_t now) noexcept:
    return expires != 0 and expires <= now


cdef class Pin:
    """Keeps one committed version readable: its pages are neither changed nor reused.
    Reads through it judge expiries at `now_ms`, the wall-clock time it was taken."""
    cdef Database db
    cdef readonly uint64_t seq
    cdef readonly uint32_t root
    cdef readonly uint64_t entries
    cdef readonly uint64_t expiring      # entries with an expiry (some may be expired at now_ms)
    cdef readonly uint64_t now_ms        # wall-clock ms at which the pin was taken
    cdef bint released

    def clone(self):
        """Another pin on the same version (an iterator must outlive its snapshot safely)."""
        cdef Pin p = Pin.__new__(Pin)
        if self.released:
            raise ClosedError("snapshot is closed")
        p.db = self.db
        p.seq = self.seq
        p.root = self.root
        p.entries = self.entries
        p.expiring = self.expiring
        p.now_ms = self.now_ms
        self.db.pins[p.seq] = self.db.pins.get(p.seq, 0) + 1
        return p

    def release(self):
        if not self.released:
            self.released = True
            self.db._unpin(self.seq)

    def __dealloc__(self):
        if not self.released and self.db is not None:
            try:
                self.db._unpin(self.seq)
            except Exception:
                pass


# The garbage collector must not clear `fs` and `lock_handle` before __dealloc__ runs: a database
# caught in a reference cycle (a failed commit's traceback reaching a frame that holds it) is
# dropped through __dealloc__, which unlocks through them.
@cython.no_gc_clear
cdef class Database:
    cdef FS fs                   # constant
    cdef readonly str path       # constant
    cdef readonly str engine     # constant
    cdef readonly str sync       # constant
    cdef int sync_level          # constant: 2 full, 1 normal, 0 off
    cdef Pager pager             # constant (btree engine; None for lsm)
    cdef BTree tree              # contents guarded by `lock` (btree engine; None for lsm)
    cdef readonly LsmEngine lsm  # the LSM engine (None for btree); constant
    cdef uint64_t wal_number     # lsm: number of the WAL file taking commits (writer lock)
    cdef dict old_wals           # lsm: number -> Wal of files whose memtable awaits its flush (writer lock)
    cdef Wal wal                 # guarded by `lock` (group commit by its own condition)
    cdef object lock             # the writer lock
    cdef object lock_handle      # the LOCK file handle; constant
    cdef public int state        # STATE_*
    cdef readonly uint64_t seq   # last committed (published) seq; written under `lock`
    cdef uint64_t write_gen      # odd while a commit changes pages (readers retry)
    cdef dict pins               # seq -> count of live pins (GIL)
    cdef dict txn_starts         # seq -> count of open transactions started there (GIL)
    cdef list recent             # [(seq, keys)] commits a running transaction may conflict with
    cdef object failed           # None, or why writes are refused until reopen
    cdef bint broken             # a commit failed part-way through the tree: reads refused too
    cdef uint64_t checkpoint_size    # WAL bytes that trigger a checkpoint; constant
    cdef Py_ssize_t dirty_limit  # dirty pages that trigger a checkpoint; constant
    cdef object wake             # threading.Event for the background thread
    cdef object thread           # background checkpoint/sync thread
    cdef int pid                 # process that opened the database
    cdef public uint64_t commits, conflicts
    cdef object clock            # None (the system clock) or a callable giving seconds; constant
    cdef bytes sweep_from        # where the next expiry-sweep step starts (None = the first key); bg thread
    cdef public uint64_t expired_swept, sweep_steps    # keys the sweep deleted; steps it ran
    cdef Py_ssize_t _last_swept  # keys the last sweep commit deleted (writer lock)
    cdef object __weakref__

    def __init__(self, str path, engine=None, str sync="full", cache_size=64 << 20,
                 page_size=4096, checkpoint_size=64 << 20, FS _fs=None, _clock=None,
                 memtable_size=16 << 20, sstable_size=4 << 20, level1_size=64 << 20, max_open_tables=None):
        if engine is None:               # the engine the directory holds; a new database gets the B+Tree
            engine = "lsm" if (_fs if _fs is not None else OsFS()).exists(os.path.join(path, LSM_CURRENT)) \
                else "btree"
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; available: 'btree', 'lsm'")
        for name, v in (("memtable_size", memtable_size), ("sstable_size", sstable_size),
                        ("level1_size", level1_size)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive number of bytes, not {v!r}")
        if max_open_tables is not None and (not isinstance(max_open_tables, int) or max_open_tables <= 0):
            raise ValueError(f"max_open_tables must be a positive number of files, not {max_open_tables!r}")
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be 'full', 'normal' or 'off', not {sync!r}")
        if cache_size < 0 or checkpoint_size < 0:
            raise ValueError("cache_size and checkpoint_size must not be negative")
        self.state = STATE_CLOSED
        self.fs = _fs if _fs is not None else OsFS()
        self.path = path
        self.engine = engine
        self.sync = sync
        self.sync_level = SYNC_MODES[sync]
        self.lock = threading.Lock()
        self.pins = {}
        self.txn_starts = {}
        self.recent = []
        self.failed = None
        self.commits = self.conflicts = 0
        if _clock is not None and not callable(_clock):
            raise TypeError("_clock must be a callable returning seconds since the epoch")
        self.clock = _clock
        self.sweep_from = None
        self.expired_swept = self.sweep_steps = 0
        self.checkpoint_size = max(checkpoint_size, 4096)
        self.pid = os.getpid()
        try:
            self.fs.makedirs(path)
            self.lock_handle = self.fs.lock(os.path.join(path, LOCK_FILE))
        except OSError as e:
            raise IOFailureError(f"opening {path} failed: {e}") from e
        self.old_wals = {}
        try:
            if engine == "lsm":
                self._open_lsm(cache_size, memtable_size, sstable_size, level1_size, max_open_tables)
            else:
                self._open_files(page_size, cache_size)
        except OSError as e:
            self.fs.unlock(self.lock_handle)
            raise IOFailureError(f"opening {path} failed: {e}") from e
        except BaseException:
            self.fs.unlock(self.lock_handle)
            raise
        # dirty pages count against cache_size too; checkpoint when they fill three quarters
        if self.pager is not None:
            self.dirty_limit = max(64, (cache_size // self.pager.page_size) * 3 // 4)
        self.state = STATE_OPEN
        _live.add(self)
        self.wake = threading.Event()
        self.thread = threading.Thread(target=_background, args=(weakref.ref(self), self.wake),
                                       name=f"kvdb-bg:{path}", daemon=True)
        self.thread.start()

    def _open_files(self, page_size, cache_size):
        data_path = os.path.join(self.path, DATA_FILE)
        wal_path = os.path.join(self.path, WAL_FILE)
        if self.fs.exists(os.path.join(self.path, LSM_CURRENT)):
            raise ValueError(f"{self.path} holds an engine='lsm' database; open it with engine='lsm'")
        created = not self.fs.exists(data_path)
        data = self.fs.open(data_path, True)
        wal_file = self.fs.open(wal_path, True)
        if created:
            self.fs.sync_dir(self.path)
        self.pager = Pager(data, data_path, page_size, cache_size)
        meta = self.pager.meta
        self.tree = BTree(self.pager, meta.root, meta.entries)
        self.tree.expiring = meta.expiring
        self.wal = Wal(wal_file, wal_path)
        records = self.wal.recover(meta.seq)
        self.seq = meta.seq
        for seq, payload in records:
            try:
                ops = decode_ops(payload)
            except ValueError:
                raise CorruptionError(f"{wal_path}: record for commit {seq} has a valid checksum but "
                                      "undecodable operations", path=wal_path) from None
            self.tree.apply(ops, seq, 0)
            self.seq = seq
        if records:
            self.pager.checkpoint(self.seq, self.tree.root, self.tree.entries, False, self.tree.expiring)
        self.wal.reset(self.seq)
        if created:
            self.fs.sync_dir(self.path)

    def _open_lsm(self, cache_size, memtable_size, sstable_size, level1_size, max_open_tables=None):
        """Open the LSM engine: manifest, then replay every WAL file it still needs, then flush
        what was replayed and start a new WAL (recovery = manifest + WAL replay)."""
        if self.fs.exists(os.path.join(self.path, DATA_FILE)):
            raise ValueError(f"{self.path} holds an engine='btree' database; open it with engine='btree'")
        self.lsm = LsmEngine(self.fs, self.path, memtable_size, cache_size, sstable_size, level1_size,
                             max_open_tables)
        self.lsm.flush_hook = functools.partial(_lsm_flush_hook, weakref.ref(self))
        flushed, log_number = self.lsm.load()
        self.seq = flushed
        numbers = sorted([int(n[4:10]) for n in self.fs.listdir(self.path)
                          if len(n) == 14 and n.startswith("wal-") and n.endswith(".log") and n[4:10].isdigit()])
        for num in numbers:
            if num < log_number:
                continue
            wpath = lsm_wal_path(self.path, num)
            w = Wal(self.fs.open(wpath, False), wpath)
            try:
                records = w.recover(self.seq)
            finally:
                w.close()
            for seq, payload in records:
                try:
                    ops = decode_ops(payload)
                except ValueError:
                    raise CorruptionError(f"{wpath}: record for commit {seq} has a valid checksum but "
                                          "undecodable operations", path=wpath) from None
                self.lsm.apply(ops, seq)
                self.seq = seq
        new_log = self.lsm.start(self.seq)
        wpath = lsm_wal_path(self.path, new_log)
        self.wal = Wal(self.fs.open(wpath, True), wpath)
        self.wal.reset(self.seq)
        self.wal_number = new_log
        for num in numbers:
            if num < new_log:
                try:
                    self.fs.remove(lsm_wal_path(self.path, num))
                except OSError:
                    pass
        self.fs.sync_dir(self.path)

    # -- engine dispatch (the boundary both engines implement) -------------

    cdef object pinned_get(self, Pin p, bytes key):
        """The value of key in the pinned version (None if absent or expired at the pin's time)."""
        if self.lsm is None:
            return self.tree.get(p.root, key, True, p.now_ms)
        return self.lsm.get(p.seq, key, p.now_ms)

    cdef object pinned_entry(self, Pin p, bytes key):
        """(value, expires) of key in the pinned version, expired or not, or None."""
        if self.lsm is None:
            return self.tree.get_entry(p.root, key, True)
        return self.lsm.get_entry(p.seq, key)

    cdef object open_cursor(self, Pin p, object keep, lo, hi, bint reverse, uint64_t now):
        """An ordered cursor over the pinned version; `keep` (a pin) lives as long as it."""
        if self.lsm is None:
            return self.tree.cursor(p.root, keep, lo, hi, reverse, now)
        return self.lsm.cursor(p.seq, keep, lo, hi, reverse, now)

    cdef object newest_entry(self, bytes key):
        """(value, expires) of key in the newest version (writer lock held, or a retrying read)."""
        if self.lsm is None:
            return self.tree.get_entry(0, key, False)
        return self.lsm.get_entry(self.seq, key)

    cdef bint has_expiring(self):
        if self.lsm is None:
            return self.tree.expiring > 0
        return self.lsm.has_expiring()

    # -- state checks ----------------------------------------------------

    cdef inline int check_open(self) except -1:
        if self.state != STATE_OPEN or self.broken:
            if self.state == STATE_OPEN:
                raise IOFailureError(f"database {self.path} stopped part-way through applying a commit "
                                     f"({self.failed}); reopen it to recover from the log")
            if self.state == STATE_FORKED:
                raise ForkError(f"database {self.path} was opened in process {self.pid} and inherited across "
                                "fork(); open it again in the child")
            raise ClosedError(f"database {self.path} is closed")
        return 0

    cdef inline int check_writable(self) except -1:
        self.check_open()
        if self.failed is not None:
            raise IOFailureError(f"database {self.path} refuses writes after an I/O failure ({self.failed}); "
                                 "reopen it to recover")
        return 0

    cdef uint64_t now_ms(self) except? 0:
        """Wall-clock milliseconds since the epoch (the injected clock in tests)."""
        cdef timespec ts
        if self.clock is None:
            clock_gettime(CLOCK_REALTIME, &ts)
            return <uint64_t>ts.tv_sec * 1000 + <uint64_t>ts.tv_nsec // 1000000
        return <uint64_t>max(1, int(self.clock() * 1000))

    # -- pins ------------------------------------------------------------

    cdef Pin pin(self):
        """Pin the newest version (under the writer lock, so no commit is half applied)."""
        cdef Pin p = Pin.__new__(Pin)
        with self.lock:
            self.check_open()
            p.db = self
            p.seq = self.seq
            if self.lsm is None:
                p.root = self.tree.root
                p.entries = self.tree.entries
                p.expiring = self.tree.expiring
            p.now_ms = self.now_ms()
            self.pins[p.seq] = self.pins.get(p.seq, 0) + 1
        return p

    def _unpin(self, uint64_t seq):
        n = self.pins.get(seq, 0) - 1
        if n <= 0:
            self.pins.pop(seq, None)
        else:
            self.pins[seq] = n

    cdef uint64_t max_live(self):
        return max(self.pins) if self.pins else 0

    cdef uint64_t min_live(self):
        return min(self.pins) if self.pins else self.seq + 1

    # -- reads -----------------------------------------------------------

    cdef object read(self, bytes key):
        """A read of the newest version without a pin: retry if a commit moved under us.
        A key whose expiry has passed reads as absent."""
        cdef uint64_t gen
        cdef uint64_t now = self.now_ms()
        while True:
            gen = self.write_gen
            if gen & 1:
                with self.lock:          # a commit is mid-way with the GIL released: wait for it
                    pass
                continue
            try:
                if self.lsm is None:
                    result = self.tree.get(0, key, False, now)
                else:
                    result = self.lsm.get(self.seq, key, now)
            except Error:
                if self.write_gen != gen:
                    continue
                raise
            if self.write_gen == gen:
                return result

    cdef object read_entry(self, bytes key):
        """(value, expires) of the newest version, expired or not, or None (no pin; retries
        like read())."""
        cdef uint64_t gen
        while True:
            gen = self.write_gen
            if gen & 1:
                with self.lock:
                    pass
                continue
            try:
                result = self.newest_entry(key)
            except Error:
                if self.write_gen != gen:
                    continue
                raise
            if self.write_gen == gen:
                return result

    def get(self, key, default=None):
        self.check_open()
        result = self.read(as_key(key))
        return default if result is None else result

    def __getitem__(self, key):
        self.check_open()
        result = self.read(as_key(key))
        if result is None:
            raise KeyError(key)
        return result

    def __contains__(self, key):
        self.check_open()
        return self.read(as_key(key)) is not None

    def scan(self, start=None, end=None, prefix=None, bint reverse=False):
        """Iterate (key, value) in key order from start (inclusive) to end (exclusive),
        or over the keys with `prefix`, reading one consistent version."""
        self.check_open()
        if prefix is None:
            lo = as_key(start) if start is not None else None
            hi = as_key(end) if end is not None else None
        else:
            lo, hi = scan_bounds(start, end, prefix)
        cdef Pin p = self.pin()
        cdef Iterator it = Iterator.__new__(Iterator)
        it.db = self
        it.it = self.open_cursor(p, p, lo, hi, reverse, p.now_ms)
        return it

    def _scan_expiry(self, start=None, end=None):
        """(key, value, expires) of the live keys in [start, end), expires in wall-clock ms
        (0 = none): for tools that copy a database with its expiries (kvdb compact)."""
        self.check_open()
        lo, hi = scan_bounds(start, end, None)
        cdef Pin p = self.pin()
        c = self.open_cursor(p, p, lo, hi, False, p.now_ms)
        try:
            for k, v in c:
                yield k, v, c.last_expires
        finally:
            c.finish()

    def __iter__(self):
        return (k for k, _ in self.scan())

    def keys(self):
        return [k for k, _ in self.scan()]

    def items(self):
        return list(self.scan())

    def __len__(self):
        """Keys present now: O(1), except that while keys with an expiry exist it counts
        the live keys with a scan."""
        self.check_open()
        if self.lsm is None and self.tree.expiring == 0:
            return self.tree.entries
        cdef Pin p = self.pin()
        return count_live(self.open_cursor(p, p, None, None, False, p.now_ms))

    def ttl(self, key):
        """Seconds until `key` expires (a float), or None if it has no expiry.
        KeyError if the key is absent or already expired."""
        self.check_open()
        k = as_key(key)
        cdef uint64_t now = self.now_ms()
        entry = self.read_entry(k)
        if entry is None or is_expired(entry[1], now):
            raise KeyError(key)
        return None if entry[1] == 0 else (entry[1] - now) / 1000.0

    # -- writes ----------------------------------------------------------

    cdef int commit_ops(self, list ops, object txn, object decide=None, bint conflicts=True) except -1:
        """Commit [(key, value-or-None, expires)]. The commit sequence, in order:
        1. (transactions) validate the read set against later commits;
           (`decide`) rewrite the ops from the current state under the lock: an empty
           list commits nothing (persist, the expiry sweep);
        2. append the record to the WAL (written to the OS);
        3. apply to the tree and publish the new seq;
        4. outside the lock: wait for fsync per the sync mode (group commit).
        Returns 1 if it committed, 0 if `decide` left nothing to commit. A commit with
        `conflicts` False (the expiry sweep: it deletes only keys no reader can see any more,
        and a transaction that saw one before it expired conflicts on its expiry) is not
        recorded for transaction validation.
        """
        cdef uint64_t seq
        cdef Transaction t
        cdef bint full = False
        payload = None
        if self.lsm is not None:
            self.lsm_throttle()
        if decide is None:
            payload = encode_ops(ops)
            if PyBytes_GET_SIZE(payload) > 0xFFFFFFFF:
                raise ValueError("transaction too large: its log record would exceed 4 GiB")
        self.lock.acquire()
        try:
            self.check_writable()
            if txn is not None:
                t = <Transaction>txn
                t.validate()
                t.p.release()        # validated: its snapshot need not hold pages during apply
            if decide is not None:
                ops = decide(ops)
                if not ops:
                    return 0
                payload = encode_ops(ops)
            seq = self.seq + 1
            try:
                self.wal.append(payload, seq)
            except BaseException as e:
                self.fail(e)
                raise IOFailureError(f"write to the log failed: {e}; the database refuses writes until reopened") from e
            self.write_gen += 1
            try:
                if self.lsm is None:
                    self.tree.apply(ops, seq, self.max_live())
                else:
                    full = self.lsm.apply(ops, seq)
                self.seq = seq
                if self.txn_starts and conflicts:
                    self.recent.append((seq, [op[0] for op in ops]))
                if self.lsm is None:
                    reclaim_pages(self.pager, self.min_live())
            except BaseException as e:
                # The tree may hold part of this commit: nothing may read it until reopen,
                # which replays the whole commit from the log.
                self.fail(e)
                self.broken = True
                if isinstance(e, OSError):
                    raise IOFailureError(f"commit failed: {e}; the database refuses writes until reopened") from e
                raise
            finally:
                self.write_gen += 1
            self.commits += 1
            if self.lsm is not None:
                if full:
                    self.switch_memtable_locked()
            elif self.wal.write_off >= self.checkpoint_size or len(self.pager.dirty) >= self.dirty_limit:
                self.wake.set()
        finally:
            self.lock.release()
        if self.sync_level == 2:
            try:
                self.wal.sync_to(seq)
            except BaseException as e:
                self.fail(e)
                raise IOFailureError(f"fsync of the log failed: {e}; the database refuses writes until "
                                     "reopened") from e
        return 1

    cdef int switch_memtable_locked(self) except -1:
        """LSM, writer lock held: the memtable becomes immutable and a new WAL file takes the
        next commits. The old WAL is fsynced first, so recovery can chain the files with no
        gap; the old file is deleted once the memtable's flush is in the manifest."""
        cdef uint64_t num
        old = self.wal
        try:
            old.sync_to(old.written_seq)
            num = self.lsm.new_file_number()
            wpath = lsm_wal_path(self.path, num)
            w = Wal(self.fs.open(wpath, True), wpath)
            w.reset(self.seq)
            self.fs.sync_dir(self.path)
        except BaseException as e:
            self.fail(e)
            raise IOFailureError(f"starting a new log file failed: {e}; the database refuses writes until "
                                 "reopened") from e
        self.lsm.switch(self.seq, num)
        self.old_wals[self.wal_number] = old
        self.wal = w
        self.wal_number = num
        self.wake.set()
        return 0

    cdef int lsm_throttle(self) except -1:
        """Before a commit (no lock held): delay it 1 ms while level 0 is crowded, and wait while
        too many memtables or level-0 files wait for the background thread."""
        cdef int pressure = self.lsm.write_pressure()
        if pressure == 0 or threading.current_thread() is self.thread:
            return 0             # the background thread (its expiry sweep) must never wait for itself
        t0 = time.monotonic()
        if pressure == 1:
            self.lsm.slowdowns += 1
            time.sleep(0.001)
        else:
            self.lsm.stalls += 1
            while self.lsm.write_pressure() == 2 and self.state == STATE_OPEN and self.failed is None:
                self.wake.set()
                time.sleep(0.001)
        self.lsm.stall_seconds += time.monotonic() - t0
        return 0

    def _lsm_flush_one(self):
        """Flush the oldest immutable memtable to level 0; False if there was none."""
        with self.lsm.maint:
            if self.state != STATE_OPEN or self.failed is not None:
                return False
            built = self.lsm.flush_build(sorted(self.pins))
            if built is None:
                return False
            with self.lock:
                if self.state != STATE_OPEN or self.failed is not None:
                    return False        # the written table is an orphan, removed at the next open
                log_number = self.lsm.flush_install(built)
                for num in [n for n in self.old_wals if n < log_number]:
                    w = self.old_wals.pop(num)
                    w.close()
                    try:
                        self.fs.remove(lsm_wal_path(self.path, num))
                    except OSError:
                        pass
        return True

    def _lsm_compact_one(self, bint force=False):
        """Run the most urgent compaction (any level-0 file counts with force); False if none."""
        with self.lsm.maint:
            if self.state != STATE_OPEN or self.failed is not None:
                return False
            pick = self.lsm.pick_compaction(force)
            if pick is None:
                return False
            level, inputs, below = pick
            outputs = self.lsm.compaction_build(level, inputs, below, sorted(self.pins))
            with self.lock:
                if self.state != STATE_OPEN or self.failed is not None:
                    return False
                self.lsm.compaction_install(level, inputs, below, outputs)
        return True

    def _lsm_flush_all(self):
        """Switch a non-empty memtable and flush every immutable one (no lock held on entry)."""
        with self.lock:
            self.check_writable()
            if self.lsm.current[0].count:
                self.switch_memtable_locked()
        while self.lsm.needs_flush():
            try:
                if not self._lsm_flush_one():
                    break
            except BaseException as e:
                self.fail(e)
                raise IOFailureError(f"memtable flush failed: {e}; the database refuses writes until reopened") from e
        self.check_writable()

    def compact(self, start=None, end=None):
        """Compact the key range [start, end) (None: everything) as far down as it goes. With the
        B+Tree engine this is a checkpoint (use `kvdb compact` to rewrite the file)."""
        self.check_writable()
        if self.lsm is None:
            self.checkpoint()
            return
        lo = as_key(start) if start is not None else None
        hi = as_key(end) if end is not None else None
        self._lsm_flush_all()
        try:
            while self._lsm_compact_one(True):
                pass
            with self.lsm.maint:
                for level in range(1, len(self.lsm.current[2]) - 1):
                    while True:
                        files = self.lsm.current[2][level]
                        inputs = [f for f in files
                                  if (hi is None or f.smallest < hi) and (lo is None or f.largest >= lo)]
                        if not inputs:
                            break
                        below = self.lsm.overlapping(self.lsm.current[2][level + 1], inputs)
                        outputs = self.lsm.compaction_build(level, inputs, below, sorted(self.pins))
                        with self.lock:
                            self.check_writable()
                            self.lsm.compaction_install(level, inputs, below, outputs)
        except Error:
            raise
        except BaseException as e:
            self.fail(e)
            raise IOFailureError(f"compaction failed: {e}; the database refuses writes until reopened") from e

    cdef fail(self, exc):
        if self.failed is None:
            self.failed = f"{type(exc).__name__}: {exc}"

    def put(self, key, value, ttl=None):
        """Store value under key. With `ttl` (seconds, int or float > 0) the key expires that
        long from now; without it any earlier expiry of the key is cleared."""
        self.check_writable()
        k = as_key(key)
        v = as_value(value)
        cdef uint64_t expires = 0 if ttl is None else expiry_from_ttl(ttl, self.now_ms())
        self.commit_ops([(k, v, expires)], None)

    def persist(self, key):
        """Remove the expiry of `key`; True if it had one (False if it had none or is absent)."""
        self.check_writable()
        k = as_key(key)
        return self.commit_ops([(k, None, 0)], None, self._decide_persist) == 1

    def _decide_persist(self, ops):
        # under the writer lock: the key's current entry decides
        k = ops[0][0]
        entry = self.newest_entry(k)
        if entry is None or entry[1] == 0 or is_expired(entry[1], self.now_ms()):
            return []
        return [(k, entry[0], 0)]

    def __setitem__(self, key, value):
        self.put(key, value)

    def delete(self, key):
        """Delete key; True if it was present."""
        self.check_writable()
        k = as_key(key)
        existed = self.read(k) is not None
        if existed:
            self.commit_ops([(k, None, 0)], None)
        return existed

    def discard(self, key):
        """Delete key if it is present; returns None. With the LSM engine this writes a
        tombstone without reading the key first (LevelDB's and RocksDB's Delete): one write,
        where delete() costs a read and a write. With the B+Tree it is delete() (the read is
        the same descent the delete makes)."""
        if self.lsm is None:
            self.delete(key)
            return
        self.check_writable()
        self.commit_ops([(as_key(key), None, 0)], None)

    def __delitem__(self, key):
        if not self.delete(key):
            raise KeyError(key)

    def transaction(self):
        """A read-write transaction: `with db.transaction() as tx:` commits at the end of the
        block, rolls back if it raises."""
        self.check_writable()
        return Transaction(self)

    def collection(self, str name):
        """The document collection `name` (see kvdb.documents); created by its first write."""
        from kvdb.documents import collection_of
        return collection_of(self, name)

    def list_collections(self):
        """Names of the document collections that hold documents or indexes."""
        from kvdb.documents import list_collections
        return list_collections(self)

    def drop_collection(self, str name):
        """Delete collection `name` (documents, indexes, catalog record) in one transaction;
        returns whether it existed."""
        from kvdb.documents import drop_collection
        return drop_collection(self, name)

    def snapshot(self):
        """A read-only view of the newest version; never blocks writers."""
        self.check_open()
        return Snapshot(self)

    # -- maintenance -----------------------------------------------------

    def checkpoint(self):
        """Write every committed change to the data file and recycle the log (LSM: flush
        every memtable to level 0 and delete the log files they no longer need)."""
        self.check_writable()
        if self.lsm is not None:
            self._lsm_flush_all()
            return
        with self.lock:
            self.check_writable()
            self._checkpoint_locked(False)

    def _checkpoint_locked(self, bint mirror):
        try:
            if self.pager.dirty or self.pager.meta.seq != self.seq or self.pager.pending_ckpt \
                    or (mirror and not self.pager.mirrored):
                self.pager.checkpoint(self.seq, self.tree.root, self.tree.entries, mirror, self.tree.expiring)
            self.wal.mark_synced(self.seq)
            self.write_gen += 1
            try:
                reclaim_pages(self.pager, self.min_live())
            finally:
                self.write_gen += 1
            self.wal.reset(self.seq)
        except BaseException as e:
            self.fail(e)
            raise IOFailureError(f"checkpoint failed: {e}; the database refuses writes until reopened") from e

    def _background_step(self):
        if self.state != STATE_OPEN or self.failed is not None:
            return
        wal = self.wal
        if self.sync_level == 1 and wal.written_seq > wal.synced_seq:
            try:
                wal.sync_to(wal.written_seq)
            except BaseException as e:
                self.fail(e)
                return
        if self.lsm is not None:
            try:
                while self.lsm.needs_flush() and self._lsm_flush_one():
                    pass
                for _ in range(4):
                    if self.lsm.needs_flush() or not self._lsm_compact_one():
                        break
            except BaseException as e:
                if self.state == STATE_OPEN:
                    self.fail(e)
                return
        elif self.wal.write_off >= self.checkpoint_size or len(self.pager.dirty) >= self.dirty_limit:
            with self.lock:
                if self.state == STATE_OPEN and self.failed is None:
                    try:
                        self._checkpoint_locked(False)
                    except Error:
                        pass
        if self.has_expiring():
            for _ in range(SWEEP_MAX_STEPS):
                examined, deleted, wrapped = self._sweep_expired(SWEEP_BATCH)
                if wrapped or deleted * 4 < examined or self.state != STATE_OPEN:
                    break

    def _sweep_expired(self, int limit=SWEEP_BATCH):
        """One step of the expiry sweep: examine up to `limit` keys from where the last step
        stopped (wrapping at the end) and delete those whose expiry has passed, as one commit
        that re-checks each key under the writer lock. Returns (examined, deleted, wrapped)."""
        cdef uint64_t now
        self.check_writable()
        if not self.has_expiring():
            return 0, 0, True
        cdef Pin p = self.pin()
        now = p.now_ms
        doomed = []
        examined = 0
        wrapped = False
        try:
            c = self.open_cursor(p, None, self.sweep_from, None, False, 0)
            last = None
            while examined < limit:
                item = c.next_key_expires()
                if item is None:
                    wrapped = True
                    break
                examined += 1
                last = item[0]
                if is_expired(item[1], now):
                    doomed.append(item[0])
            c.finish()
        finally:
            p.release()
        self.sweep_from = None if wrapped or last is None else last + b"\x00"
        self.sweep_steps += 1
        deleted = 0
        if doomed:
            self.commit_ops([(k, None, 0) for k in doomed], None, self._decide_sweep, False)
            deleted = self._last_swept
            self.expired_swept += deleted
        return examined, deleted, wrapped

    def _decide_sweep(self, ops):
        # under the writer lock: delete only keys still expired (a put may have renewed one)
        cdef uint64_t now = self.now_ms()
        keep = []
        for op in ops:
            entry = self.newest_entry(op[0])
            if entry is not None and is_expired(entry[1], now):
                keep.append(op)
        self._last_swept = len(keep)
        return keep

    def verify(self):
        """Check every page checksum (re-reading clean pages from the file), every tree
        invariant, and that each page is in the tree, the freelist or pending reuse.
        Raises CorruptionError naming the page. (LSM: every block checksum of every table,
        the key order inside each table and across each level; names the file and offset.)"""
        self.check_open()
        if self.lsm is not None:
            return self.lsm.verify()
        with self.lock:
            reachable, count, expiring = self.tree.verify(self.tree.root, True)
            if count != self.tree.entries:
                raise CorruptionError(f"{self.pager.path}: tree holds {count} keys, meta says {self.tree.entries}",
                                      path=self.pager.path)
            if expiring != self.tree.expiring:
                raise CorruptionError(f"{self.pager.path}: tree holds {expiring} keys with an expiry, meta says "
                                      f"{self.tree.expiring}", path=self.pager.path)
            free, pending, fl = self.pager.free_list_snapshot()
            owners = {}
            for name, group in (("tree", reachable), ("free", free), ("pending", pending), ("freelist", fl)):
                for pgno in group:
                    if pgno in owners and not (name == "pending" and owners[pgno] == "pending"):
                        raise CorruptionError(f"{self.pager.path}: page {pgno} is both {owners[pgno]} and {name}",
                                              path=self.pager.path, pgno=pgno)
                    owners[pgno] = name
            for pgno in range(3, self.pager.page_count):
                if pgno not in owners:
                    raise CorruptionError(f"{self.pager.path}: page {pgno} is leaked (neither in the tree "
                                          "nor free)", path=self.pager.path, pgno=pgno)
        return True

    def backup(self, str dest):
        """Write a consistent, openable copy of the newest version to directory `dest`
        (which must not hold a database), while the database stays online."""
        self.check_open()
        if self.lsm is not None:
            return self._backup_lsm(dest)
        cdef Pin p = self.pin()
        try:
            reachable, _, _ = self.tree.verify(p.root, False)
            os.makedirs(dest, exist_ok=True)
            target = os.path.join(dest, DATA_FILE)
            if os.path.exists(target):
                raise FileExistsError(f"{target} exists; backup needs an empty directory")
            tmp = target + ".tmp"
            fs = OsFS()
            out = Pager(fs.open(tmp, True), tmp, self.pager.page_size, 1 << 20)
            for n, pgno in enumerate(sorted(reachable)):
                out.adopt(pgno, self.pager.get_raw(pgno))
                if n % 4096 == 4095:
                    out.spill()          # bounded memory: the copy's meta is written last
            out.set_page_count(self.pager.page_count,
                               [n for n in range(3, self.pager.page_count) if n not in reachable])
            out.checkpoint(p.seq, p.root, p.entries, True, p.expiring)
            out.close()
            fs.rename(tmp, target)
            wal = Wal(fs.open(os.path.join(dest, WAL_FILE), True), os.path.join(dest, WAL_FILE))
            wal.reset(p.seq)
            wal.close()
            fs.sync_dir(dest)
        finally:
            p.release()

    def _backup_lsm(self, str dest):
        """LSM backup: a logical copy of one pinned version (with expiries) into a new LSM
        database at dest, compacted into few tables."""
        if os.path.exists(os.path.join(dest, LSM_CURRENT)) or os.path.exists(os.path.join(dest, DATA_FILE)):
            raise FileExistsError(f"{dest} holds a database; backup needs an empty directory")
        cdef Pin p = self.pin()
        try:
            out = Database(dest, engine="lsm", sync="off", _clock=self.clock, memtable_size=self.lsm.memtable_size,
                           sstable_size=self.lsm.target_file_size, level1_size=self.lsm.level1_bytes)
            try:
                c = self.open_cursor(p, None, None, None, False, p.now_ms)
                batch = []
                for k, v in c:
                    batch.append((k, v, c.last_expires))
                    if len(batch) >= 1000:
                        out.commit_ops(batch, None)
                        batch = []
                if batch:
                    out.commit_ops(batch, None)
                out.checkpoint()
            finally:
                out.close()
        finally:
            p.release()

    def stats(self):
        self.check_open()
        if self.lsm is not None:
            s = {"engine": self.engine, "path": self.path, "sync": self.sync, "seq": self.seq,
                 "commits": self.commits, "conflicts": self.conflicts, "wal_bytes": self.wal.write_off,
                 "wal_bytes_written": self.wal.bytes_written + sum([w.bytes_written for w in self.old_wals.values()]),
                 "fsyncs": self.wal.fsyncs, "snapshots": sum(self.pins.values()),
                 "expiring_keys": None, "expired_swept": self.expired_swept, "sweep_steps": self.sweep_steps,
                 "failed": self.failed}
            s.update(self.lsm.stats())
            # The LSM keeps no exact count of live keys (len() counts them by scanning);
            # entries_estimate counts every stored version and tombstone.
            s["entries"] = None
            return s
        s = {
            "engine": self.engine,
            "path": self.path,
            "sync": self.sync,
            "seq": self.seq,
            "entries": self.tree.entries,
            "commits": self.commits,
            "conflicts": self.conflicts,
            "wal_bytes": self.wal.write_off,
            "wal_bytes_written": self.wal.bytes_written,
            "fsyncs": self.wal.fsyncs,
            "snapshots": sum(self.pins.values()),
            "expiring_keys": self.tree.expiring,
            "expired_swept": self.expired_swept,
            "sweep_steps": self.sweep_steps,
            "failed": self.failed,
        }
        s.update(self.pager.stats())
        return s

    def close(self):
        """Checkpoint and close. Idempotent."""
        if self.state == STATE_FORKED:
            self.state = STATE_CLOSED
            return
        if self.state != STATE_OPEN:
            return
        self.wake.set()
        if self.lsm is not None:
            self._close_lsm()
            return
        with self.lock:
            if self.state != STATE_OPEN:
                return
            self.state = STATE_CLOSED
            self.wake.set()
            err = None
            try:
                if self.failed is None:
                    self._checkpoint_locked(True)
                    try:
                        self.wal.shrink()
                    except OSError as e:
                        raise IOFailureError(f"shrinking the log after the final checkpoint failed: {e} "
                                             "(every commit is already durable)") from e
            except BaseException as e:
                err = e
            finally:
                self._release()
            if err is not None:
                raise err
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)

    def _close_lsm(self):
        err = None
        if self.failed is None:
            try:
                self._lsm_flush_all()        # reopening then replays nothing
            except BaseException as e:
                err = e
        with self.lsm.maint:
            with self.lock:
                if self.state != STATE_OPEN:
                    return
                self.state = STATE_CLOSED
                self.wake.set()
                self._release()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)
        if err is not None:
            raise err

    cdef _release(self):
        try:
            if self.lsm is not None:
                self.lsm.close()
                for w in self.old_wals.values():
                    w.close()
            else:
                self.pager.close()
            self.wal.close()
        finally:
            self.fs.unlock(self.lock_handle)
            _live.discard(self)

    def __enter__(self):
        self.check_open()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __dealloc__(self):
        # Dropped without close(): the WAL already holds every commit, so only the lock needs
        # letting go; each File closes its own descriptor when it is freed. The pager, WAL and
        # engine are not called: when the collector breaks a cycle they may already be cleared.
        if self.state == STATE_OPEN and self.pid == os.getpid():
            self.state = STATE_CLOSED
            try:
                self.fs.unlock(self.lock_handle)
            except BaseException:
                pass

    def __repr__(self):
        state = {0: "open", 1: "closed", 2: "forked"}.get(self.state)
        return f"<kvdb.Database {self.path!r} engine={self.engine} sync={self.sync} {state}>"


def _background(ref, wake):
    """Group the periodic work: sync="normal" fsyncs, checkpoints by WAL size."""
    while True:
        wake.wait(NORMAL_SYNC_INTERVAL)
        wake.clear()
        db = ref()
        if db is None or (<Database>db).state != STATE_OPEN:
            return
        try:
            db._background_step()
        except Exception:
            pass
        del db


def _lsm_flush_hook(db_ref):
    """Run by a compaction between its output tables (maint held, re-entrant): flush the
    memtables that filled meanwhile, so writers do not stall until the compaction ends."""
    db = db_ref()
    if db is not None:
        while db.lsm.needs_flush() and db._lsm_flush_one():
            pass


def lsm_wal_path(str path, uint64_t number):
    return os.path.join(path, "wal-%06d.log" % number)


def count_live(it):
    """Entries a cursor yields (it skips expired ones)."""
    cdef Py_ssize_t n = 0
    for _ in it:
        n += 1
    return n


def scan_bounds(start, end, prefix):
    lo = as_key(start) if start is not None else None
    hi = as_key(end) if end is not None else None
    if prefix is not None:
        if type(prefix) is not bytes:
            if isinstance(prefix, (bytearray, memoryview)):
                prefix = bytes(prefix)
            else:
                raise TypeError(f"prefix must be bytes, not {type(prefix).__name__}")
        if prefix:
            plo = prefix
            phi = prefix_successor(prefix)
            lo = plo if lo is None or plo > lo else lo
            if phi is not None:
                hi = phi if hi is None or phi < hi else hi
    return lo, hi


def prefix_successor(bytes prefix):
    """The smallest key greater than every key with this prefix (None if none exists)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xff:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


include "transaction.pxi"
