# The LSM engine (engine.pxd). Recovery = the manifest (the tables and the oldest log still
# needed) plus a replay of every log file from that one on; then a new log file takes commits.
# A full memtable becomes immutable and gets a new log file (switch_memtable_locked); the
# background thread flushes immutable memtables to level 0 and compacts levels, each under
# `maint`, taking the writer lock only to install the result.

import functools
import os
import threading
import time
import weakref

from libc.stdint cimport uint64_t

from kvdb._core.engine cimport Pin
from kvdb._core.file cimport FS
from kvdb._core.wal cimport Wal
from kvdb._core.lsm.follower cimport Follower
from kvdb._core.engine import replayed_ops

from kvdb.errors import CorruptionError, Error, IOFailureError

CURRENT = "CURRENT"                      # the manifest pointer: its presence marks an LSM database


def wal_path(str path, uint64_t number):
    """The log file `number` of the LSM database in `path`."""
    return os.path.join(path, "wal-%06d.log" % number)


cdef class LsmEngine(Engine):
    """Memtables and leveled tables (LsmTree) with a chain of log files."""
    marker = CURRENT
    marker_role = "naming its manifest"
    files = (CURRENT, "wal-*.log", "*.sst", "MANIFEST-*", CURRENT + ".tmp")
    lock_role = "writer"                 # one writable open (the primary); read-only opens follow it
    remnants = ("*.sst", "MANIFEST-*")

    def __init__(self, FS fs, str path, cache_size=64 << 20, memtable_size=16 << 20, sstable_size=4 << 20,
                 level1_size=64 << 20, key_count="exact", max_open_tables=None, read_path="mmap",
                 **btree_options):
        """The options are kvdb.open's; those of the B+Tree engine (page_size, checkpoint_size)
        are ignored."""
        self.fs = fs
        self.path = path
        self.cache_size = cache_size
        self.memtable_size = memtable_size
        self.sstable_size = sstable_size
        self.level1_size = level1_size
        self.count_keys = key_count == "exact"
        self.max_open_tables = max_open_tables
        self.map_reads = read_path == "mmap"
        self.blind_deletes = True
        self.old_wals = {}

    cdef object recover(self):
        self.tree = LsmTree(self.fs, self.path, self.memtable_size, self.cache_size, self.sstable_size,
                            self.level1_size, self.max_open_tables, self.read_only, self.count_keys,
                            self.map_reads)
        self.maint = self.tree.maint
        self.recovery = None
        if self.read_only:
            # Follows the primary, if one runs (follower.pyx): nothing is written, the logs'
            # commits stay in memtables, and reads catch up through stale()/catch_up().
            self.follower = Follower(self.fs, self.path, self.tree)
            self.seq = self.follower.open()
            self.recovery = self.follower.recovery
            self.wal = self.follower.newest_wal()
            return self.seq
        self.tree.flush_hook = functools.partial(_flush_waiting, weakref.ref(self))
        flushed, log_number = self.tree.load()
        self.seq = flushed
        numbers = sorted([int(n[4:10]) for n in self.fs.listdir(self.path)
                          if len(n) == 14 and n.startswith("wal-") and n.endswith(".log") and n[4:10].isdigit()])
        for num in numbers:
            if num < log_number:
                continue
            wpath = wal_path(self.path, num)
            w = Wal(self.fs.open(wpath, False), wpath)
            try:
                records, note = w.recover(self.seq, False)
                if note is not None:
                    self.recovery = note
            finally:
                w.close()
            for seq, payload in records:
                self.tree.apply(replayed_ops(payload, seq, wpath), seq)
                self.seq = seq
        new_log = self.tree.start(self.seq)
        wpath = wal_path(self.path, new_log)
        self.wal = Wal(self.fs.open(wpath, True), wpath)
        self.wal.reset(self.seq, True)   # fresh: a reused file number keeps none of its old records
        self.wal_number = new_log
        self.tree.announce_log()         # M3: read-only opens following this one find the new log
        for num in numbers:
            if num < new_log:
                try:
                    self.fs.remove(wal_path(self.path, num))
                except OSError:
                    pass
        self.fs.sync_dir(self.path)
        return self.seq

    # -- reads -----------------------------------------------------------

    cdef int fill_pin(self, Pin p) except -1:
        p.entries = self.tree.live       # keys stored, expired or not (L4; writer lock held)
        p.counted = self.tree.counted
        if self.follower is not None:
            p.view = self.tree.current   # the primary's merges keep only the versions its own pins need
        return 0

    cdef object get(self, Pin p, bytes key):
        if p.view is not None:
            return self.tree.get_in(p.view, p.seq, key, p.now_ms)
        return self.tree.get(p.seq, key, p.now_ms)

    cdef object get_entry(self, Pin p, bytes key):
        if p.view is not None:
            return self.tree.entry_in(p.view, p.seq, key)
        return self.tree.get_entry(p.seq, key)

    cdef object get_newest(self, uint64_t seq, bytes key, uint64_t now):
        return self.tree.get(seq, key, now)

    cdef object entry_newest(self, uint64_t seq, bytes key):
        return self.tree.get_entry(seq, key)

    cdef object cursor(self, Pin p, object keep, object lo, object hi, bint reverse, uint64_t now):
        return self.tree.cursor(p.seq, keep, lo, hi, reverse, now, p.view)

    cdef bint has_expiring(self):
        return self.tree.has_expiring()

    cdef object live_count(self):
        return self.tree.live if self.tree.counted else None

    # -- following the primary (a read-only open) -------------------------

    cdef bint stale(self):
        """A read-only open: the primary appended to the manifest or the newest log since this
        open last read them (two fstat calls). The primary itself: never."""
        return self.follower is not None and self.follower.stale()

    cdef list catch_up(self):
        if self.follower is None:
            return []
        applied = self.follower.catch_up()
        self.seq = self.follower.seq
        self.wal = self.follower.newest_wal()
        return applied

    # -- the commit path -------------------------------------------------

    cdef int before_commit(self) except -1:
        """No lock held: delay a commit 1 ms while level 0 is crowded, and wait while too many
        memtables or level-0 files wait for the background thread."""
        cdef int pressure = self.tree.write_pressure()
        if pressure == 0 or threading.current_thread() is self.thread:
            return 0             # the background thread (its expiry sweep) must never wait for itself
        t0 = time.monotonic()
        if pressure == 1:
            self.tree.slowdowns += 1
            time.sleep(0.001)
        else:
            self.tree.stalls += 1
            while self.tree.write_pressure() == 2 and self.accepting_writes():
                self.wake.set()
                time.sleep(0.001)
        self.tree.stall_seconds += time.monotonic() - t0
        return 0

    cdef int apply(self, list ops, uint64_t seq) except -1:
        self.full = self.tree.apply(ops, seq)
        self.seq = seq
        return 0

    cdef int apply_pairs(self, list keys, list values, uint64_t seq) except -1:
        self.full = self.tree.apply_pairs(keys, values, seq)
        self.seq = seq
        return 0

    cdef int published(self) except -1:
        return 0

    cdef int committed(self) except -1:
        if self.full:
            self.full = False
            self.switch_memtable_locked()
        return 0

    cdef int switch_memtable_locked(self) except -1:
        """Writer lock held: the memtable becomes immutable and a new log file takes the next
        commits. The old log is fsynced first, so recovery can chain the files with no gap;
        the old file is deleted once the memtable's flush is in the manifest."""
        cdef uint64_t num
        old = self.wal
        try:
            old.sync_to(old.written_seq)
            num = self.tree.new_file_number()
            wpath = wal_path(self.path, num)
            w = Wal(self.fs.open(wpath, True), wpath)
            w.reset(self.seq, True)
            self.fs.sync_dir(self.path)
            self.tree.announce_log()     # M3: before any commit goes into the new log
        except BaseException as e:
            self.host()._fail(e)
            raise IOFailureError(f"starting a new log file failed: {e}; the database refuses writes until "
                                 "reopened") from e
        self.tree.switch(self.seq, num)
        self.old_wals[self.wal_number] = old
        self.wal = w
        self.wal_number = num
        self.wake.set()
        return 0

    # -- maintenance -----------------------------------------------------

    def accepting_writes(self):
        db = self.host()
        return db is not None and db._accepting_writes()

    def flush_one(self):
        """Flush the oldest immutable memtable to level 0; False if there was none."""
        with self.tree.maint:
            if not self.accepting_writes():
                return False
            built = self.tree.flush_build(sorted(self.pins))
            if built is None:
                return False
            with self.lock:
                if not self.accepting_writes():
                    return False        # the written table is an orphan, removed at the next open
                log_number = self.tree.flush_install(built)
                for num in [n for n in self.old_wals if n < log_number]:
                    w = self.old_wals.pop(num)
                    w.close()
                    try:
                        self.fs.remove(wal_path(self.path, num))
                    except OSError:
                        pass
        return True

    def compact_one(self, bint force=False, bint trivial_only=False):
        """Run the most urgent compaction (any level-0 file counts with force); False if none,
        or if `trivial_only` and it would rewrite tables rather than move them."""
        with self.tree.maint:
            if not self.accepting_writes():
                return False
            pick = self.tree.pick_compaction(force)
            if pick is None:
                return False
            level, inputs, below = pick
            if trivial_only and not self.tree.is_trivial_move(level, inputs, below):
                return False
            outputs = self.tree.compaction_build(level, inputs, below, sorted(self.pins), not force)
            with self.lock:
                if not self.accepting_writes():
                    return False
                self.tree.compaction_install(level, inputs, below, outputs)
        return True

    cdef int flush_all(self) except -1:
        """Switch a non-empty memtable and flush every immutable one (no lock held on entry)."""
        with self.lock:
            self.host()._check_writable()
            if self.tree.current[0].count:
                self.switch_memtable_locked()
        while self.tree.needs_flush():
            try:
                if not self.flush_one():
                    break
            except BaseException as e:
                self.host()._fail(e)
                raise IOFailureError(f"memtable flush failed: {e}; the database refuses writes until reopened") from e
        self.host()._check_writable()
        return 0

    cdef int checkpoint(self) except -1:
        return self.flush_all()

    cdef int compact(self, object lo, object hi) except -1:
        self.flush_all()
        try:
            while self.compact_one(True):
                pass
            with self.tree.maint:
                for level in range(1, len(self.tree.current[2]) - 1):
                    while True:
                        files = self.tree.current[2][level]
                        inputs = [f for f in files
                                  if (hi is None or f.smallest < hi) and (lo is None or f.largest >= lo)]
                        if not inputs:
                            break
                        below = self.tree.overlapping(self.tree.current[2][level + 1], inputs)
                        outputs = self.tree.compaction_build(level, inputs, below, sorted(self.pins))
                        with self.lock:
                            self.host()._check_writable()
                            self.tree.compaction_install(level, inputs, below, outputs)
        except Error:
            raise
        except BaseException as e:
            self.host()._fail(e)
            raise IOFailureError(f"compaction failed: {e}; the database refuses writes until reopened") from e
        return 0

    cdef int maintain(self) except -1:
        try:
            while self.tree.needs_flush() and self.flush_one():
                # A trivial move is one manifest edit: do it between flushes, so that a load in
                # key order never crowds level 0 (and slows writers) while flushes keep coming.
                while self.compact_one(False, True):
                    pass
            for _ in range(4):
                if self.tree.needs_flush() or not self.compact_one():
                    break
        except BaseException as e:
            db = self.host()
            if db is not None and db._is_open():
                db._fail(e)
                raise
        return 0

    cdef object verify(self):
        self.tree.verify()
        cdef uint64_t n
        with self.lock:                  # the count (L4) against a scan of the same version
            if not self.tree.counted:
                return True
            n = self.tree.count_at(self.seq)
            if n != self.tree.live:
                raise CorruptionError(f"{self.path}: the tables and memtables hold {n} keys, the count kept "
                                      f"since the manifest's (M4) says {self.tree.live}", path=self.path)
        return True

    cdef bint backup(self, Pin p, str dest) except -1:
        return False                     # a logical copy, compacted into few tables

    cdef dict stats(self):
        s = {"entries": None, "expiring_keys": None,
             "wal_bytes_written": (self.wal.bytes_written if self.wal is not None else 0)
                                  + sum([w.bytes_written for w in self.old_wals.values()]),
             "recovery": self.recovery}     # a torn tail dropped at open (W2), or None
        s.update(self.tree.stats())
        # entries: keys stored (L4; None where no count is kept, len() scans); entries_estimate
        # counts every stored version and tombstone.
        s["entries"] = self.tree.live if self.tree.counted else None
        return s

    cdef dict creation_options(self):
        return {"memtable_size": self.tree.memtable_size, "sstable_size": self.tree.target_file_size,
                "level1_size": self.tree.level1_bytes}

    cdef int prepare_close(self) except -1:
        self.flush_all()                 # reopening then replays nothing
        return 0

    cdef int close_locked(self, bint last) except -1:
        return 0

    cdef int release(self) except -1:
        try:
            if self.follower is not None:
                self.follower.close()
            self.tree.close()
            for w in self.old_wals.values():
                w.close()
        finally:
            if self.wal is not None:
                self.wal.close()
        return 0


def _flush_waiting(engine_ref):
    """Run by a compaction between its output tables (maint held, re-entrant): flush the
    memtables that filled meanwhile, so writers do not stall until the compaction ends."""
    engine = engine_ref()
    if engine is not None:
        while engine.tree.needs_flush() and engine.flush_one():
            pass
