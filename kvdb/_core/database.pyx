# The database: opening, the commit path (log, then engine, then publish), snapshots,
# optimistic transactions, key expiry and the background thread. The storage engine below is
# reached only through the Engine contract (engine.pxd), implemented by BTreeEngine
# (btree/engine.pyx) and LsmEngine (lsm/engine.pyx); nothing here depends on which one it is.
#
# Concurrency:
#   - `lock` (the writer lock) serialises commits, checkpoints and close.
#   - Readers take no lock. A reader without a snapshot checks the engine's `write_gen`
#     (odd while a commit is changing what it reads) and retries if it moved; a
#     snapshot or transaction pins its version under the writer lock, and an engine
#     never changes nor reuses what a pinned version reaches (B4, P2, L2).
#   - With sync="full", committers release the writer lock before fsync and
#     share one fsync (group commit, Wal.sync_to).

import bisect
import errno
import fnmatch
import functools
import logging
import math
import os
import threading
import weakref

cimport cython
from cpython.bytes cimport PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME

from kvdb._core.engine cimport Engine, EngineCursor, Pin
from kvdb._core.file cimport FS, OsFS
from kvdb._core.wal cimport Wal, ops_size, pairs_size, pairs_as_ops, keys_of_checked, key_read_or_scanned
from kvdb._core.untracked cimport keys_committed
from kvdb._core.btree.engine import BTreeEngine
from kvdb._core.lsm.engine import LsmEngine
from kvdb._core.options import check_options, check_path

from kvdb.errors import (ClosedError, ConflictError, CorruptionError, Error, ForkError, IOFailureError,
                         ReadOnlyError)

cdef enum:
    KEY_SIZE_LIMIT = 16384                   # bytes; keys longer than a page's share spill to overflow pages
    VALUE_SIZE_LIMIT = 256 * 1024 * 1024     # bytes
MAX_KEY_SIZE = KEY_SIZE_LIMIT        # the limits as Python sees them (kvdb.MAX_KEY_SIZE)
MAX_VALUE_SIZE = VALUE_SIZE_LIMIT
SYNC_MODES = {"full": 2, "normal": 1, "off": 0}
LOCK_FILE = "LOCK"
ENGINE_TYPES = {"btree": BTreeEngine, "lsm": LsmEngine}   # engine name -> its Engine implementation
ENGINES = tuple(ENGINE_TYPES)
NORMAL_SYNC_INTERVAL = 1.0           # seconds between background fsyncs with sync="normal"
MAX_EXPIRES_MS = 1 << 62             # expiries past this (about 146 million years) are refused
SWEEP_BATCH = 1000                   # keys one expiry-sweep step examines
SWEEP_MAX_STEPS = 8                  # steps per background wake while most examined keys were expired

cdef int STATE_OPEN = 0
cdef int STATE_CLOSED = 1
cdef int STATE_FORKED = 2

_live = weakref.WeakSet()
log = logging.getLogger("kvdb")

# Methods that upper layers attach to Database and Transaction (kvdb.documents registers
# "collection", "list_collections", "drop_collection" and "transaction_collection"), so the
# core names them without importing those layers: name -> function(owner, *args).
_extensions = {}


def register_extension(str name, function):
    """Attach `function(owner, *args)` as the implementation of the extension method `name`."""
    if not callable(function):
        raise TypeError(f"extension {name!r} must be callable")
    _extensions[name] = function


cdef object extension(str name):
    try:
        return _extensions[name]
    except KeyError:
        raise RuntimeError(f"{name}() needs the document layer: import kvdb (or kvdb.documents) first") from None


def detect_engine(str path, FS fs=None, str opening=None):
    """The engine whose database the directory `path` holds ("btree", "lsm"), or None if it
    holds none (missing, empty, or a directory of other files). The one place that tells the
    engines apart, by each engine's marker file. CorruptionError for a directory with two
    engines' markers, or with files of an engine but not its marker (a damaged database that
    must not be opened as a new one beside them) -- except files of the engine `opening`, which
    is about to open the directory and judges them itself (a crash while creating a database)."""
    if fs is None:
        fs = OsFS()
    marked = [name for name, engine_type in ENGINE_TYPES.items()
              if fs.exists(os.path.join(path, engine_type.marker))]
    if len(marked) > 1:
        raise CorruptionError(f"{path} holds both " + " and ".join(f"{ENGINE_TYPES[n].marker} ({n})" for n in marked)
                              + "; refusing to guess which one it is", path=path)
    if marked:
        return marked[0]
    if not fs.exists(path):
        return None
    names = fs.listdir(path)
    for name, engine_type in ENGINE_TYPES.items():
        if name == opening:
            continue
        remnants = sorted(n for n in names if any(fnmatch.fnmatchcase(n, pat) for pat in engine_type.remnants))
        if remnants:
            raise CorruptionError(f"{path} holds {name} files ({', '.join(remnants[:3])}"
                                  f"{', ...' if len(remnants) > 3 else ''}) but no {engine_type.marker} "
                                  f"{engine_type.marker_role}", path=path)
    return None


def _after_fork_in_child():
    # The child inherits the parent's descriptors, and with them the parent's locks (LOCK's byte
    # locks, the B+Tree's shared-memory slot): drop the child's copies, so that the locks live
    # exactly as long as the parent's open, and mark the database unusable here.
    for db in list(_live):
        (<Database>db).state = STATE_FORKED
        try:
            (<Database>db).fs.unlock((<Database>db).lock_handle)
            (<Database>db).storage.forget()
        except BaseException:
            pass


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
    if n == 0 or n > KEY_SIZE_LIMIT:
        raise ValueError(f"key length {n} is outside 1..{MAX_KEY_SIZE} bytes (kvdb.MAX_KEY_SIZE)")
    return <bytes>key


cdef inline bytes as_value(object value):
    if type(value) is not bytes:
        if isinstance(value, (bytearray, memoryview, bytes)):
            value = bytes(value)
        else:
            raise TypeError(f"value must be bytes, bytearray or memoryview, not {type(value).__name__}")
    if PyBytes_GET_SIZE(value) > VALUE_SIZE_LIMIT:
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


def missing_dirs(FS fs, str path):
    """The directories that creating `path` adds, deepest first ([] if it exists)."""
    missing = []
    while path and not fs.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def remove_files(FS fs, str path, set kept):
    """Remove the files of directory `path` not named in `kept` (a failed open creating a database
    takes back what it wrote); best effort, as the open's own error is the one to report."""
    try:
        for name in fs.listdir(path):
            if name not in kept and not os.path.isdir(os.path.join(path, name)):
                fs.remove(os.path.join(path, name))
    except Exception as e:
        log.warning("removing the files of the failed open of %s: %s", path, e)


def remove_dirs(FS fs, list made_dirs):
    """Remove the directories a failed open created (deepest first), each only if it is empty:
    never one that existed before, nor one that another process has since put files in. FS has
    no rmdir, so only on the real file system (an in-memory one is dropped with its test)."""
    if not isinstance(fs, OsFS):
        return
    for d in made_dirs:
        try:
            os.rmdir(d)
        except OSError:
            return


include "codecs.pxi"
include "handle.pxi"


# The garbage collector must not clear `fs` and `lock_handle` before __dealloc__ runs: a database
# caught in a reference cycle (a failed commit's traceback reaching a frame that holds it) is
# dropped through __dealloc__, which unlocks through them.
@cython.no_gc_clear
cdef class Database(Handle):
    cdef FS fs                   # constant
    cdef readonly str path       # constant
    cdef readonly str engine     # constant
    cdef readonly str sync       # constant
    cdef int sync_level          # constant: 2 full, 1 normal, 0 off
    cdef readonly Engine storage # the storage engine behind the contract (engine.pxd); constant
    cdef readonly bint readonly  # opened read-only: nothing is written, writes raise ReadOnlyError; constant
    cdef object lock             # the writer lock
    cdef object lock_handle      # the LOCK file handle; constant
    cdef public int state        # STATE_*
    cdef readonly uint64_t seq   # last committed (published) seq; written under `lock`
    cdef dict pins               # seq -> count of live pins (GIL)
    cdef dict txn_starts         # seq -> count of open transactions started there (GIL)
    cdef list recent             # [(seq, keys)] commits a running transaction may conflict with
    cdef object failed           # None, or why writes are refused until reopen
    cdef bint broken             # a commit failed part-way through the engine: reads refused too
    cdef object bg_error         # an unexpected failure of the background thread, raised by the next call (GIL)
    cdef object wake             # threading.Event for the background thread
    cdef object thread           # background checkpoint/sync thread
    cdef int pid                 # process that opened the database
    cdef public uint64_t commits, conflicts
    cdef object clock            # None (the system clock) or a callable giving seconds; constant
    cdef bytes sweep_from        # where the next expiry-sweep step starts (None = the first key); bg thread
    cdef public uint64_t expired_swept, sweep_steps    # keys the sweep deleted; steps it ran
    cdef Py_ssize_t _last_swept  # keys the last sweep commit deleted (writer lock)
    cdef object commit_listener  # None, or callable(seq, ops) run after each commit under the writer
                                 # lock, in commit order (the server's replication); set by its owner
    cdef object __weakref__

    def __init__(self, path, engine=None, sync="full", cache_size=64 << 20,
                 page_size=4096, checkpoint_size=64 << 20, FS _fs=None, _clock=None,
                 memtable_size=16 << 20, sstable_size=4 << 20, level1_size=64 << 20, key_count="exact",
                 max_open_tables=None, read_path="mmap", readonly=False, _exclusive=False, _sole_writer=False, keys=None, values=None):
        cdef Engine store
        if not isinstance(readonly, bool):
            raise TypeError(f"readonly must be True or False, not {readonly!r}")
        self.kc = key_codec(keys)
        self.vc = value_codec(values)
        # Every argument is checked before anything touches the disk (kvdb.Options's rules, so a
        # direct call is held to those of kvdb.open): a bad one creates nothing.
        path = check_path(path)
        checked = check_options(dict(
            engine=engine, sync=sync, cache_size=cache_size, page_size=page_size,
            checkpoint_size=checkpoint_size, memtable_size=memtable_size, sstable_size=sstable_size,
            level1_size=level1_size, key_count=key_count, max_open_tables=max_open_tables,
            read_path=read_path))
        engine, sync = checked["engine"], checked["sync"]
        if _clock is not None and not callable(_clock):
            raise TypeError("_clock must be a callable returning seconds since the epoch")
        fs = _fs if _fs is not None else OsFS()
        if isinstance(fs, OsFS) and os.path.exists(path) and not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, f"{path} is a file, not a database directory", path)
        found = detect_engine(path, fs, engine)
        if readonly and found is None:
            raise FileNotFoundError(errno.ENOENT, f"no database at {path}: a read-only open needs an existing one", path)
        if engine is None:               # the engine the directory holds; a new database gets the B+Tree
            engine = found or "btree"
        if found is not None and found != engine:   # before the LOCK file is touched
            raise ValueError(f"{path} holds an engine={found!r} database; open it with engine={found!r}")
        self.state = STATE_CLOSED
        self.fs = fs
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
        self.clock = _clock
        self.sweep_from = None
        self.expired_swept = self.sweep_steps = 0
        self.pid = os.getpid()
        self.wake = threading.Event()
        self.readonly = readonly
        # every engine takes every option and uses those that concern it
        store = ENGINE_TYPES[engine](fs, path, cache_size=checked["cache_size"], page_size=checked["page_size"],
                                     checkpoint_size=checked["checkpoint_size"],
                                     memtable_size=checked["memtable_size"], sstable_size=checked["sstable_size"],
                                     level1_size=checked["level1_size"], key_count=checked["key_count"],
                                     max_open_tables=checked["max_open_tables"], read_path=checked["read_path"])
        # What this open creates, so that a failed open leaves nothing behind: the directories
        # makedirs adds, and (creating a database) the files that were not there before.
        made_dirs = missing_dirs(fs, path)
        kept = None if found is not None else set() if made_dirs else set(fs.listdir(path))
        # The LOCK file's role: any number of B+Tree opens share a database, the LSM has one
        # writer, read-only opens follow either, and an exclusive open (a tool rewriting the files)
        # excludes every other. A read-only open of a directory without LOCK (one no writable open
        # has made yet) takes none.
        lock_path = os.path.join(path, LOCK_FILE)
        try:
            if readonly:
                self.lock_handle = self.fs.lock(lock_path, "reader") if fs.exists(lock_path) else None
            else:
                self.fs.makedirs(path)
                self.lock_handle = self.fs.lock(lock_path, "exclusive" if _exclusive else
                                                "writer" if _sole_writer else store.lock_role)
        except BaseException as e:
            remove_dirs(fs, made_dirs)       # only if still empty: a LockedError means the lock is another's
            if isinstance(e, OSError):
                raise IOFailureError(f"opening {path} failed: {e}") from e
            raise
        try:
            self.storage = store
            store.lock = self.lock
            store.pins = self.pins
            store.wake = self.wake
            store.host = weakref.ref(self)
            store.read_only = readonly
            store.first_open = getattr(self.lock_handle, "first", True)
            # a read-only open of a directory without LOCK (a copy no writable open has made) reads alone
            store.detached = getattr(self.lock_handle, "detached", readonly and self.lock_handle is None)
            self.seq = store.recover()
            self.fs.lock_settle(self.lock_handle)
        except BaseException as e:
            if kept is not None:         # creating a database: undo it, the lock still held
                remove_files(fs, path, kept)
            self.fs.unlock(self.lock_handle)
            remove_dirs(fs, made_dirs)
            if isinstance(e, OSError):
                raise IOFailureError(f"opening {path} failed: {e}") from e
            raise
        self.state = STATE_OPEN
        _live.add(self)
        if readonly:
            return                       # no background work: it would sync, checkpoint, flush or sweep
        self.thread = threading.Thread(target=_background, args=(weakref.ref(self), self.wake),
                                       name=f"kvdb-bg:{path}", daemon=True)
        store.thread = self.thread
        self.thread.start()

    # -- engine dispatch (the contract, engine.pxd) -------------------------

    cdef object pinned_get(self, Pin p, bytes key):
        """The value of key in the pinned version (None if absent or expired at the pin's time)."""
        return self.storage.get(p, key)

    cdef object pinned_entry(self, Pin p, bytes key):
        """(value, expires) of key in the pinned version, expired or not, or None."""
        return self.storage.get_entry(p, key)

    cdef object open_cursor(self, Pin p, object keep, lo, hi, bint reverse, uint64_t now):
        """An ordered cursor over the pinned version; `keep` (a pin) lives as long as it."""
        return self.storage.cursor(p, keep, lo, hi, reverse, now)

    cdef object newest_entry(self, bytes key):
        """(value, expires) of key in the newest version (writer lock held, or a retrying read)."""
        return self.storage.entry_newest(self.seq, key)

    cdef bint has_expiring(self):
        return self.storage.has_expiring()

    # -- what the engine asks of the database (maintenance, from any thread) --

    def _fail(self, exc):
        self.fail(exc)

    def _catch_up_locked(self):
        self.catch_up_locked()

    def _check_writable(self):
        self.check_writable()

    def _accepting_writes(self):
        return self.state == STATE_OPEN and self.failed is None

    def _is_open(self):
        return self.state == STATE_OPEN

    # -- state checks ----------------------------------------------------

    cdef inline int check_open(self) except -1:
        if self.bg_error is not None:
            err, self.bg_error = self.bg_error, None
            raise err
        if self.state != STATE_OPEN or self.broken:
            if self.state == STATE_OPEN:
                raise IOFailureError(f"database {self.path} stopped part-way through applying a commit "
                                     f"({self.failed}); reopen it to recover from the log")
            if self.state == STATE_FORKED:
                raise ForkError(f"database {self.path} was opened in process {self.pid} and inherited across "
                                "fork(); open it again in the child (processes share a B+Tree database; an "
                                "LSM database has one writer, so open it with readonly=True while the parent "
                                "writes)")
            raise ClosedError(f"database {self.path} is closed")
        return 0

    cdef inline int check_writable(self) except -1:
        self.check_open()
        if self.readonly:
            raise ReadOnlyError(f"database {self.path} was opened read-only")
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
            if self.storage.stale():
                self.catch_up_locked()
            p.pins = self.pins
            p.seq = self.seq
            self.storage.fill_pin(p)
            p.now_ms = self.now_ms()
            self.pins[p.seq] = self.pins.get(p.seq, 0) + 1
        return p

    # -- other opens of the database -------------------------------------

    cdef int refresh(self) except -1:
        """Catch up with the commits other opens (other processes) made, if there are any."""
        with self.lock:
            self.check_open()
            if self.storage.stale():
                self.catch_up_locked()
        return 0

    cdef int catch_up_locked(self, list deferred=None) except -1:
        """Writer lock held: apply other opens' commits and publish them here: those the engine
        finds, or `deferred`, those commit_ops read for a commit of its own (Engine.read_published;
        their keys already in `recent` if another transaction is open) when that commit failed. A failure part-way leaves the
        engine partly updated, like a failed commit: reads are refused until reopen."""
        cdef Engine store = self.storage
        store.write_gen += 1
        try:
            if deferred is None:
                applied = store.catch_up()
                if applied and self.txn_starts:
                    self.recent.extend(applied)
            else:
                store.apply_published(deferred)
                applied = deferred
            if applied:
                self.seq = store.seq
                store.published()
        except BaseException as e:
            self.fail(e)
            self.broken = True
            if isinstance(e, OSError):
                raise IOFailureError(f"catching up with other opens of {self.path} failed: {e}") from e
            raise
        finally:
            store.write_gen += 1
        return 0

    def catch_up(self):
        """See the commits other processes made since this open last looked. Reads, snapshots,
        transactions and commits do this by themselves; a read-only open following a writer in
        another process may call it to bound how far it lags while idle. Returns the last
        commit's sequence number."""
        self.refresh()
        return self.seq

    # -- reads -----------------------------------------------------------

    cdef object read(self, bytes key):
        """A read of the newest version without a pin. A key whose expiry has passed reads as
        absent."""
        return self.read_newest(key, False)

    cdef object read_entry(self, bytes key):
        """(value, expires) of the newest version, expired or not, or None (no pin)."""
        return self.read_newest(key, True)

    cdef object read_newest(self, bytes key, bint entry):
        """read() or read_entry(): catch up with other opens first, then read the newest version
        without a pin, retrying if a commit moved under the read."""
        cdef uint64_t gen
        cdef uint64_t now = 0 if entry else self.now_ms()
        cdef Engine store = self.storage
        if store.stale():
            self.refresh()
        while True:
            gen = store.write_gen
            if gen & 1:
                with self.lock:          # a commit is mid-way with the GIL released: wait for it
                    pass
                continue
            try:
                result = self.newest_entry(key) if entry else store.get_newest(self.seq, key, now)
            except Error:
                if store.write_gen != gen:
                    continue
                raise
            if store.write_gen == gen:
                return result

    # -- the Handle primitives (handle.pxi) and the reads they serve --------

    cdef int ready(self) except -1:
        return self.check_open()

    cdef object raw_get(self, bytes k):
        return self.read(k)

    def get(self, key, default=None):
        self.check_open()
        result = self.read(enc_key(self.kc, key))
        return default if result is None else dec_value(self.vc, result)

    def __getitem__(self, key):
        self.check_open()
        result = self.read(enc_key(self.kc, key))
        if result is None:
            raise KeyError(key)
        return dec_value(self.vc, result)

    def __contains__(self, key):
        self.check_open()
        return self.read(enc_key(self.kc, key)) is not None

    cdef object raw_scan(self, object lo, object hi, bint reverse):
        cdef Pin p = self.pin()
        cdef Iterator it = Iterator.__new__(Iterator)
        it.db = self
        it.left = -1
        it.plain = True
        it.it = self.open_cursor(p, p, lo, hi, reverse, p.now_ms)
        return it

    cdef object raw_cursor_source(self):
        cdef Snapshot snap = Snapshot(self)
        return snap, snap

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

    def __len__(self):
        """Keys stored: O(1), a count each engine keeps (a read-only open of an LSM database whose
        manifest predates the count scans). A key whose expiry has passed counts until the background
        sweep deletes it (within about a second), as Redis's DBSIZE counts it. Every key counts:
        those of namespaces, documents and the server too."""
        self.check_open()
        return self.raw_len()

    cdef object raw_len(self):
        count = self.storage.live_count()
        if count is not None:
            return count
        cdef Pin p = self.pin()
        return count_live(self.open_cursor(p, p, None, None, False, 0))   # stored keys, expired or not

    cdef object raw_ttl(self, bytes k):
        cdef uint64_t now = self.now_ms()
        entry = self.read_entry(k)
        if entry is None or is_expired(entry[1], now):
            raise KeyError(k)
        return None if entry[1] == 0 else (entry[1] - now) / 1000.0

    # -- writes ----------------------------------------------------------

    cdef int commit_ops(self, list ops, object txn, object decide=None, bint conflicts=True,
                        bint count_namespaces=True, list sync_out=None, list values=None) except -1:
        """Commit [(key, value-or-None, expires)]. The commit sequence, in order:
        1. (transactions) validate the read set against later commits;
           (`decide`) rewrite the ops from the current state under the lock: an empty
           list commits nothing (persist, the expiry sweep);
        2. append the record to the WAL (written to the OS);
        3. apply to the engine and publish the new seq;
        4. outside the lock: wait for fsync per the sync mode (group commit).
        Returns 1 if it committed, 0 if `decide` left nothing to commit. A commit with
        `conflicts` False (the expiry sweep: it deletes only keys no reader can see any more,
        and a transaction that saw one before it expired conflicts on its expiry) is not
        recorded for transaction validation. With `count_namespaces` False the ops are committed
        as they are, namespace records included (a replica applying its primary's log, whose
        records already carry them). With `sync_out` (a list) and sync="full", step 4 is left to
        the caller: (log, seq) is appended to it, for _wait_durable. With `values` (put_many, or
        a transaction's puts; no `decide`), `ops` holds the keys and `values` their values:
        puts without expiry, committed with no tuple per key (as ops when namespace records must
        be rewritten).
        """
        cdef uint64_t seq
        cdef Transaction t
        cdef Engine store = self.storage
        cdef Py_ssize_t length = -1         # the log payload's size, checked before anything is written
        cdef bint counts, apply_after_release, kept
        if values is not None and count_namespaces and namespaced_keys(ops):
            ops = pairs_as_ops(ops, values)   # the namespace records are rewritten from ops
            values = None
        counts = values is None and count_namespaces and namespaced(ops)   # namespace records to rewrite (K1)
        store.before_commit()
        if values is not None:
            length = pairs_size(ops, values)
            if length > 0xFFFFFFFF:
                raise ValueError("transaction too large: its log record would exceed 4 GiB")
        elif decide is None and not counts:
            length = ops_size(ops)
            if length > 0xFFFFFFFF:
                raise ValueError("transaction too large: its log record would exceed 4 GiB")
        apply_after_release = decide is None and not counts and self.commit_listener is None
        self.lock.acquire()
        try:
            self.check_writable()
            store.begin_commit()
        except BaseException:
            self.lock.release()
            raise
        try:
            last = self.seq
            deferred = None
            kept = False                 # deferred's keys went to self.recent
            if store.stale():
                if apply_after_release:
                    # Others' commits are read and validated against under the shared lock but
                    # applied after it, with this one: the lock is held for the log I/O only.
                    deferred = store.read_published()
                if deferred is None:
                    self.catch_up_locked()
                    last = self.seq
                elif deferred:
                    last = (<tuple>deferred[-1])[0]
                    if self.others_open(txn):
                        self.recent.extend([keys_of_checked((<tuple>r)[0], (<tuple>r)[1]) for r in deferred])
                        kept = True
            try:
                if txn is not None:
                    t = <Transaction>txn
                    t.validate(None if kept else deferred)
                    t.p.release()        # validated: its snapshot need not hold pages during apply
                if decide is not None:
                    ops = decide(ops)
                    if not ops:
                        return 0
                if counts:
                    ops = with_namespace_counts(self, list(ops))
                if length < 0:
                    length = ops_size(ops)
                    if length > 0xFFFFFFFF:
                        raise ValueError("transaction too large: its log record would exceed 4 GiB")
                seq = last + 1
                try:
                    store.wal.append_ops(ops, length, seq, values)
                except BaseException as e:
                    self.fail(e)
                    raise IOFailureError(f"write to the log failed: {e}; the database refuses writes until reopened") from e
            except BaseException:
                if deferred:
                    self.catch_up_locked(deferred)   # this commit failed; the others' stand
                raise
            if apply_after_release:
                store.end_commit()       # published (O1): the tree follows, outside the shared lock
            store.write_gen += 1
            try:
                if deferred:
                    store.apply_published(deferred)
                if values is None:
                    store.apply(ops, seq)
                else:
                    store.apply_pairs(ops, values, seq)
                self.seq = seq
                if conflicts and self.others_open(txn):
                    self.recent.append(keys_committed(seq, ops) if values is None else (seq, ops))
                store.published()
                if self.commit_listener is not None:
                    self.commit_listener(seq, ops if values is None else pairs_as_ops(ops, values))
            except BaseException as e:
                # The engine may hold part of this commit: nothing may read it until reopen,
                # which replays the whole commit from the log.
                self.fail(e)
                self.broken = True
                if isinstance(e, OSError):
                    raise IOFailureError(f"commit failed: {e}; the database refuses writes until reopened") from e
                raise
            finally:
                store.write_gen += 1
            self.commits += 1
            store.end_commit()           # publish and release the commit lock (the finally's call is
            store.committed()            # then a no-op) before the engine's maintenance trigger
            wal = store.wal              # the log this commit went to (committed() may start a new one)
        finally:
            try:
                store.end_commit()       # a no-op when it already ran (the commit succeeded)
            finally:
                self.lock.release()
        if self.sync_level == 2:
            if sync_out is not None:
                sync_out.append((wal, seq))
            else:
                self.sync_log(wal, seq)
        return 1

    cdef bint others_open(self, object txn):
        """Whether a transaction other than `txn` (None: any) is open in this open, whose
        validation needs the keys of the commit under way kept in self.recent. Writer lock
        held: no transaction starts meanwhile (pin() takes it)."""
        cdef Py_ssize_t n = len(self.txn_starts)
        if n == 0:
            return False
        if txn is None or n > 1:
            return True
        return self.txn_starts.get((<Transaction>txn).p.seq, 0) > 1

    cdef int sync_log(self, Wal wal, uint64_t seq) except -1:
        try:
            wal.sync_to(seq)
        except BaseException as e:
            self.fail(e)
            raise IOFailureError(f"fsync of the log failed: {e}; the database refuses writes until "
                                 "reopened") from e
        return 0

    def _wait_durable(self, token):
        """Wait until the commit of `token` (from Transaction._commit_deferring_sync) is durable;
        IOFailureError if the fsync failed (the database then refuses writes). Any thread."""
        if token is not None:
            self.sync_log(<Wal>token[0], <uint64_t>token[1])

    def _set_commit_listener(self, listener):
        """Have listener(seq, ops) called after every commit, under the writer lock and in commit
        order, with the ops as the log holds them; None stops it. For the server's replication
        (kvdb/server/replication): the listener must be quick and must not raise, since the
        commit is already durable per the sync mode when it runs."""
        if listener is not None and not callable(listener):
            raise TypeError("the commit listener must be callable or None")
        self.commit_listener = listener

    def _commit_log_ops(self, list ops):
        """Commit [(key, value-or-None, expires)] as one commit, exactly as given (namespace
        records are not recounted): a replica applying one commit of its primary's log. Returns
        the new seq."""
        self.check_writable()
        for op in ops:
            if type(op) is not tuple or len(op) != 3 or type(op[0]) is not bytes or \
                    (op[1] is not None and type(op[1]) is not bytes) or type(op[2]) is not int:
                raise TypeError("an operation is a (bytes key, bytes value or None, int expires) tuple")
            as_key(op[0])
        self.commit_ops(ops, None, None, True, False)
        return self.seq

    def compact(self, start=None, end=None):
        """Compact the key range [start, end) (None: everything) as far down as it goes. With the
        B+Tree engine this is a checkpoint (use `kvdb compact` to rewrite the file)."""
        self.check_writable()
        lo = as_key(start) if start is not None else None
        hi = as_key(end) if end is not None else None
        self.storage.compact(lo, hi)

    cdef fail(self, exc):
        if self.failed is None:
            self.failed = f"{type(exc).__name__}: {exc}"

    def put(self, key, value, ttl=None):
        """Store value under key. With `ttl` (seconds, int or float > 0) the key expires that
        long from now; without it any earlier expiry of the key is cleared."""
        self.check_writable()
        self.commit_put(enc_key(self.kc, key), enc_value(self.vc, value), ttl)

    cdef int raw_put(self, bytes k, bytes v, object ttl) except -1:
        self.check_writable()
        return self.commit_put(k, v, ttl)

    cdef int commit_put(self, bytes k, bytes v, object ttl) except -1:
        """Commit one put (writability checked by the caller)."""
        cdef uint64_t expires = 0 if ttl is None else expiry_from_ttl(ttl, self.now_ms())
        self.commit_ops([(k, v, expires)], None)
        return 0

    def persist(self, key):
        """Remove the expiry of `key`; True if it had one (False if it had none or is absent)."""
        self.check_writable()
        return self.raw_persist(enc_key(self.kc, key))

    cdef bint raw_persist(self, bytes k) except -1:
        self.check_writable()
        return self.commit_ops([(k, None, 0)], None, self._decide_persist) == 1

    def _decide_persist(self, ops):
        # under the writer lock: the key's current entry decides
        k = ops[0][0]
        entry = self.newest_entry(k)
        if entry is None or entry[1] == 0 or is_expired(entry[1], self.now_ms()):
            return []
        return [(k, entry[0], 0)]

    def __setitem__(self, key, value):
        self.check_writable()
        self.commit_put(enc_key(self.kc, key), enc_value(self.vc, value), None)

    cdef bint raw_delete(self, bytes k) except -1:
        self.check_writable()
        existed = self.read(k) is not None
        if existed:
            self.commit_ops([(k, None, 0)], None)
        return existed

    cdef int raw_discard(self, bytes k) except -1:
        """With the LSM engine a tombstone written without reading the key first (LevelDB's
        and RocksDB's Delete): one write, where delete() costs a read and a write. With the
        B+Tree it is delete() (the read is the same descent the delete makes)."""
        if not self.storage.blind_deletes:
            self.raw_delete(k)
            return 0
        self.check_writable()
        self.commit_ops([(k, None, 0)], None)
        return 0

    cdef int raw_put_many(self, list ops) except -1:
        """One commit of [(key, value, 0)]: the log record is encoded from the list as it is,
        without a transaction's buffer (put_many, update)."""
        self.check_writable()
        self.commit_ops(ops, None)
        return 0

    cdef int raw_put_pairs(self, list keys, list values) except -1:
        """raw_put_many of keys[i] -> values[i], with no tuple per key (put_many's fast path)."""
        self.check_writable()
        self.commit_ops(keys, None, None, True, True, None, values)
        return 0

    cdef int raw_delete_many(self, list keys) except -1:
        self.check_writable()
        self.commit_ops([(k, None, 0) for k in keys], None)
        return 0

    cdef object read_and_delete(self, bytes k):
        self.check_writable()
        box = []
        self.commit_ops([(k, None, 0)], None, functools.partial(self._decide_pop, box))
        return box[0]

    def _decide_pop(self, list box, ops):
        # under the writer lock: delete the key if it is live, and say what it held
        k = ops[0][0]
        entry = self.newest_entry(k)
        live = entry is not None and not is_expired(entry[1], self.now_ms())
        box.append(entry[0] if live else None)
        return [(k, None, 0)] if live else []

    cdef object read_or_put(self, bytes k, bytes v):
        self.check_writable()
        box = []
        self.commit_ops([(k, v, 0)], None, functools.partial(self._decide_setdefault, box))
        return box[0]

    def _decide_setdefault(self, list box, ops):
        # under the writer lock: keep a live value, else store the default
        k = ops[0][0]
        entry = self.newest_entry(k)
        live = entry is not None and not is_expired(entry[1], self.now_ms())
        box.append(entry[0] if live else None)
        return [] if live else ops

    def transaction(self):
        """A read-write transaction: `with db.transaction() as tx:` commits at the end of the
        block, rolls back if it raises. It uses this handle's codecs."""
        self.check_writable()
        cdef Transaction t = Transaction(self)
        t.kc, t.vc = self.kc, self.vc
        return t

    def snapshot(self):
        """A read-only view of the newest version; never blocks writers. It uses this handle's
        codecs."""
        self.check_open()
        cdef Snapshot snap = Snapshot(self)
        snap.kc, snap.vc = self.kc, self.vc
        return snap

    # -- namespaces (namespace.pxi) --------------------------------------

    def namespaces(self):
        """The names of the namespaces that hold keys or have held some since they were last
        dropped (str or bytes, as they were made), in the order of their records."""
        self.check_open()
        with self.raw_scan(NS_RECORD, prefix_successor(NS_RECORD), False) as it:
            return [namespace_name(k) for k, _ in it]

    def drop_namespace(self, name):
        """Delete namespace `name`, every key and its record, in one commit; returns whether it
        existed. (The commit holds every key of the namespace in memory.)"""
        self.check_writable()
        prefix, record = namespace_layout(name)
        end = prefix_successor(prefix)
        while True:
            tx = Transaction(self)
            try:
                existed = tx.raw_get(record) is not None
                with tx.raw_scan(prefix, end, False) as it:
                    doomed = [k for k, _ in it]
                if not existed and not doomed:
                    return False
                for k in doomed:
                    tx.raw_discard(k)
                tx.raw_discard(record)
                tx.commit()
                return True
            except ConflictError:
                continue         # a commit into the namespace raced the drop: collect again
            finally:
                tx.rollback()

    # -- document collections (kvdb.documents attaches them: register_extension) --

    def collection(self, str name):
        """The document collection `name` (see kvdb.documents); created by its first write."""
        self.require_bytes("document collections")
        return extension("collection")(self, name)

    def list_collections(self):
        """Names of the document collections that hold documents or indexes."""
        self.require_bytes("document collections")
        return extension("list_collections")(self)

    def drop_collection(self, str name):
        """Delete collection `name` (documents, indexes, catalog record) in one transaction;
        returns whether it existed."""
        self.require_bytes("document collections")
        return extension("drop_collection")(self, name)

    # -- maintenance -----------------------------------------------------

    def checkpoint(self):
        """Write every committed change to the data file and recycle the log (LSM: flush
        every memtable to level 0 and delete the log files they no longer need)."""
        self.check_writable()
        self.storage.checkpoint()

    def _background_step(self):
        if self.state != STATE_OPEN or self.failed is not None:
            return
        if self.storage.stale():
            self.refresh()           # keeps this open close to the others while it is idle
        wal = self.storage.wal
        if self.sync_level == 1 and wal.written_seq > wal.synced_seq:
            try:
                wal.sync_to(wal.written_seq)
            except BaseException as e:
                self.fail(e)
                return
        self.storage.maintain()
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
        return self.storage.verify()

    def backup(self, str dest):
        """Write a consistent, openable copy of the newest version to directory `dest`
        (which must not hold a database), while the database stays online."""
        self.check_open()
        cdef Pin p = self.pin()
        try:
            if not self.storage.backup(p, dest):
                self.copy_keys(p, dest)
        finally:
            p.release()

    cdef copy_keys(self, Pin p, str dest):
        """A logical backup: every live key of the pinned version, with its expiry, into a new
        database at dest with this one's engine and options, then checkpointed."""
        if detect_engine(dest) is not None:
            raise FileExistsError(f"{dest} holds a database; backup needs an empty directory")
        out = Database(dest, engine=self.engine, sync="off", _clock=self.clock, **self.storage.creation_options())
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

    def stats(self):
        self.check_open()
        wal = self.storage.wal
        s = {"engine": self.engine, "path": self.path, "sync": self.sync, "seq": self.seq, "readonly": self.readonly,
             "commits": self.commits, "conflicts": self.conflicts, "wal_bytes": wal.write_off if wal is not None else 0,
             "fsyncs": wal.fsyncs if wal is not None else 0, "snapshots": sum(self.pins.values()),
             "expired_swept": self.expired_swept, "sweep_steps": self.sweep_steps, "failed": self.failed}
        s.update(self.storage.stats())
        return s

    def close(self):
        """Checkpoint and close. Idempotent."""
        if self.state == STATE_FORKED:
            self.state = STATE_CLOSED
            return
        if self.state != STATE_OPEN:
            return
        self.wake.set()
        err = None
        if self.failed is None and not self.readonly:
            try:
                self.storage.prepare_close()
            except BaseException as e:
                err = e
        with self.storage.maint:
            with self.lock:
                if self.state != STATE_OPEN:
                    return
                self.state = STATE_CLOSED
                self.wake.set()
                try:
                    if self.failed is None and err is None and not self.readonly:
                        self.storage.close_locked(self.fs.lock_try_last(self.lock_handle))
                except BaseException as e:
                    err = e
                finally:
                    self._release()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)
        if err is not None:
            raise err

    cdef _release(self):
        try:
            self.storage.release()
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
        return f"<kvdb.Database {self.path!r} engine={self.engine} sync={self.sync} {state}{' read-only' if self.readonly else ''}>"


def _background(ref, wake):
    """The background thread: sync="normal" fsyncs, the engine's maintenance (checkpoints,
    flushes, compactions), the expiry sweep. A failure it did not expect is logged through the
    "kvdb" logger and raised by the database's next call."""
    db = ref()
    if db is not None:
        (<Database>db).fs.thread_started()
    del db
    while True:
        wake.wait(NORMAL_SYNC_INTERVAL)
        wake.clear()
        db = ref()
        if db is None or (<Database>db).state != STATE_OPEN:
            return
        try:
            db._background_step()
        except Exception as e:
            if (<Database>db).state == STATE_OPEN:
                log.error("kvdb: background work on %s failed: %s: %s", (<Database>db).path, type(e).__name__, e,
                          exc_info=True)
                (<Database>db).fail(e)   # its effect on the files is unknown: refuse writes until reopened
                (<Database>db).bg_error = background_error((<Database>db).path, e)
        del db


cdef object background_error(str path, exc):
    """What the next call raises for a failure of the background thread: a kvdb error as it is,
    an OSError as IOFailureError, anything else as Error (each chained to the original)."""
    if isinstance(exc, Error):
        return exc
    message = f"background work on {path} failed: {type(exc).__name__}: {exc}; the database refuses writes until reopened"
    err = IOFailureError(message) if isinstance(exc, OSError) else Error(message)
    err.__cause__ = exc
    return err


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
include "cursor.pxi"
include "namespace.pxi"
