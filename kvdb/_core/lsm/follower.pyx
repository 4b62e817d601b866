# A read-only open following the primary (follower.pxd). What it relies on, all written by
# the primary (engine.pyx, tree.pyx; docs/format/manifest.md):
#   - an edit is durable before what it describes is used (M1): before the logs it retires
#     are deleted, before the tables it drops are deleted;
#   - every new log file is announced by an edit after its header is durable and before any
#     commit goes into it (M3), and a log is fsynced whole before the next one is created;
#   - a new manifest (each writable open starts one) is switched to by renaming CURRENT, and
#     then the old one is deleted.
# So the follower watches two sizes (stale(): the manifest's and the newest log's, one fstat
# each, plus the manifest's link count), and catch_up() reads the manifest first, then the
# logs. Anything missing or out of order (a log deleted, a log starting past what the follower
# has, a table listed but deleted) means the primary moved on since the manifest was read:
# the follower reads the manifest again and retries, and raises CorruptionError naming the
# file only when the manifest did not move. A record cut short at the end of the newest log,
# or at the end of the manifest, is one being written: reading stops there and resumes later.
#
# Versions: each log's records go into a memtable of their own; when log_number moves past a
# log (the primary flushed it) its memtable leaves `current`, and the tables now hold it.
# Pins keep the `current` they were taken on (Pin.view): the primary merges away versions only
# its own pins need, so a pinned read here goes through the tables and memtables of its time,
# whose files stay open (the table cache never evicts, tree.pyx keep_tables_open) until no
# version reaches them.

import os
import time
import weakref

from cpython.bytes cimport PyBytes_AS_STRING
from libc.stdint cimport uint32_t, uint64_t
from posix.stat cimport struct_stat, fstat

from kvdb._core.coding cimport get_u32, get_u64

from kvdb._core.file cimport File, FS, OsFile
from kvdb._core.wal cimport Wal, WAL_HEADER_SIZE, WAL_RECORD_HEADER_SIZE
from kvdb._core.untracked cimport keys_committed
from kvdb._core.lsm.memtable cimport Memtable, MEM_ABSENT
from kvdb._core.lsm.merge cimport ENTRY_PUT, ENTRY_DELETE
from kvdb._core.lsm.manifest cimport MANIFEST_HEADER_SIZE, NUM_LEVELS
from kvdb._core.lsm.sstable cimport Table, TableCache
from kvdb._core.lsm.tree cimport LsmTree, live_delta
from kvdb._core.engine import replayed_ops
from kvdb._core.lsm.manifest import check_header, current_manifest, read_edits
from kvdb._core.lsm.tree import table_name

from kvdb.errors import CorruptionError, IOFailureError

FOLLOW_ATTEMPTS = 1000                   # catch-up rounds while the primary keeps moving the manifest


def log_path(str path, uint64_t number):
    """The log file `number` of the LSM database in `path` (engine.pyx's wal_path)."""
    return os.path.join(path, "wal-%06d.log" % number)


def log_numbers(FS fs, str path, uint64_t lowest):
    """The numbers of the log files in path at or above `lowest`, ascending."""
    return sorted([int(n[4:10]) for n in fs.listdir(path)
                   if len(n) == 14 and n.startswith("wal-") and n.endswith(".log") and n[4:10].isdigit()
                   and int(n[4:10]) >= lowest])


cdef bint file_moved(File f, uint64_t seen):
    """The file's size is not `seen`, or it was deleted (one fstat for a real file)."""
    cdef struct_stat st
    if f is None:
        return True
    if isinstance(f, OsFile):
        if (<OsFile>f).fd < 0 or fstat((<OsFile>f).fd, &st) != 0:
            return True
        return <uint64_t>st.st_size != seen or st.st_nlink == 0
    return f.size() != seen


def _drop_table(TableCache tables, uint64_t number):
    """Finalizer of a Table that left the follower's version: close its file."""
    try:
        tables.drop(number)
    except Exception:
        pass


cdef class LogTail:
    pass


cdef class Follower:
    """Follows the primary of the LSM database in `path` (see the top of this file)."""

    def __init__(self, FS fs, str path, LsmTree tree):
        self.fs = fs
        self.path = path
        self.tree = tree
        self.empty = Memtable(0)
        self.files = {}
        self.tables = {}
        self.tails = {}
        self.log_numbers = []
        self.levels = [[] for _ in range(NUM_LEVELS)]

    # -- open ------------------------------------------------------------

    def open(self):
        """Read the version and the logs as they are now; returns the last commit's seq.
        A primary moving on meanwhile makes it start again (a few times at most)."""
        cdef int attempt
        self.opening = True
        try:
            for attempt in range(FOLLOW_ATTEMPTS):
                try:
                    self.follow_manifest(None)
                    problem = self.follow_logs(None)
                except (CorruptionError, FileNotFoundError):
                    if not self.manifest_moved():
                        raise
                    self.reset()         # e.g. a log deleted under Wal.recover: start again
                    continue
                if problem is None:
                    self.publish()
                    return self.seq
                if not self.manifest_moved():
                    raise CorruptionError(problem[0], path=problem[1], offset=problem[2])
                self.reset()
            raise IOFailureError(f"{self.path}: the primary kept changing the manifest while this read-only "
                                 "open read it")
        finally:
            self.opening = False

    def reset(self):
        """Forget everything read (open starts again)."""
        self.close()
        self.man_path = None
        self.man_file = None
        self.man_off = self.man_seen = 0
        self.files = {}
        self.tables = {}
        self.levels = [[] for _ in range(NUM_LEVELS)]
        self.levels_stale = False
        self.log_number = self.last_seq = self.next_file = 0
        self.last_live = None
        self.live = 0
        self.counted = False
        self.tails = {}
        self.log_numbers = []
        self.listed_at = None
        self.newest = None
        self.seq = 0
        self.recovery = None

    # -- noticing and catching up ------------------------------------------

    cdef bint stale(self):
        """The manifest or the newest log changed size (or the manifest was deleted: a new
        primary started another) since they were read. Two fstat calls."""
        if file_moved(self.man_file, self.man_seen):
            return True
        return self.newest is not None and file_moved(self.newest.wal.file, self.newest.seen_size)

    cdef list catch_up(self):
        """Apply the primary's new edits and commits; [(seq, keys or None)] (None: commits
        the follower only sees as tables, when it fell behind a flush)."""
        cdef int attempt
        applied = []
        for attempt in range(FOLLOW_ATTEMPTS):
            self.follow_manifest(applied)
            problem = self.follow_logs(applied)
            if problem is None:
                self.publish()
                return applied
            if not self.manifest_moved():
                self.publish()
                raise CorruptionError(problem[0], path=problem[1], offset=problem[2])
        self.publish()
        raise IOFailureError(f"{self.path}: the primary kept changing the manifest while this read-only open "
                             "caught up")

    cdef bint manifest_deleted(self) except -1:
        """The manifest being read was deleted (a new primary switched CURRENT to another)."""
        cdef struct_stat st
        if isinstance(self.man_file, OsFile):
            return (<OsFile>self.man_file).fd < 0 or fstat((<OsFile>self.man_file).fd, &st) != 0 \
                or st.st_nlink == 0
        return not self.fs.exists(self.man_path)

    cdef bint manifest_moved(self) except -1:
        """The manifest grew or was deleted since it was read, or CURRENT names another one."""
        if self.man_file is None:
            return current_manifest(self.fs, self.path) is not None
        if file_moved(self.man_file, self.man_seen) or self.manifest_deleted():
            return True
        return current_manifest(self.fs, self.path) != self.man_path

    # -- the manifest ------------------------------------------------------

    cdef int follow_manifest(self, list applied) except -1:
        """Apply the edits appended since the last look (all of them after a switch to a new
        manifest), then open the tables the version gained. A listed table that is missing was
        deleted by a later edit the follower has not read yet: it reads on, and raises
        CorruptionError naming the table only when the manifest holds nothing more."""
        self.read_edits()
        while True:
            missing = None
            for meta in self.files.values():
                if meta.table is not None:
                    continue
                t = self.tables.get(meta.number)
                if t is None:
                    tpath = os.path.join(self.path, table_name(meta.number))
                    try:
                        f = self.fs.open_read(tpath)
                    except FileNotFoundError:
                        missing = (meta, tpath)
                        break
                    t = Table(f, tpath, meta.number, self.tree.cache, self.tree.tables, self.tree.map_reads)
                    if (<Table>t).file_size != meta.size:
                        raise CorruptionError(f"{tpath}: {(<Table>t).file_size} bytes, the manifest says {meta.size}",
                                              path=tpath, offset=(<Table>t).file_size)
                    self.tables[meta.number] = t
                meta.table = t
            if missing is None:
                break
            if not self.read_edits():
                meta, tpath = missing
                raise CorruptionError(f"{tpath}: listed in {os.path.basename(self.man_path)} (level {meta.level}) "
                                      "but missing", path=tpath)
        for number in [n for n in self.tables if n not in self.files]:
            t = self.tables.pop(number)     # left the version: its file closes when no pin reaches it
            self.tree.cache.drop_table(number)
            weakref.finalize(t, _drop_table, self.tree.tables, number)
        return 0

    cdef bint read_edits(self) except -1:
        """Read and apply the manifest's whole edits past man_off, switching to the manifest
        CURRENT names when the one being read was deleted (or at the first call). True if
        anything new was applied."""
        cdef bint fresh = False
        if self.man_file is None or self.manifest_deleted():
            mpath = current_manifest(self.fs, self.path)
            if mpath is None:
                if self.man_file is not None:
                    raise CorruptionError(f"{self.path}: CURRENT is gone", path=os.path.join(self.path, "CURRENT"))
                strays = [n for n in self.fs.listdir(self.path) if n.endswith(".sst")]
                if strays:
                    raise CorruptionError(f"{self.path}: holds tables ({strays[0]}, ...) but no CURRENT manifest",
                                          path=os.path.join(self.path, "CURRENT"))
                return False                 # a primary creating the database: no version yet
            if mpath != self.man_path:
                f = self.fs.open_read(mpath)
                if self.man_file is not None:
                    self.man_file.close()
                self.man_file = f
                self.man_path = mpath
                self.man_off = self.man_seen = 0
                fresh = True
        cdef uint64_t size = self.man_file.size()
        if fresh:
            head = self.man_file.read_at(0, MANIFEST_HEADER_SIZE)
            check_header(head, self.man_path)
            self.man_off = MANIFEST_HEADER_SIZE
        self.man_seen = size
        if size <= self.man_off:
            if fresh:
                raise CorruptionError(f"{self.man_path}: manifest holds no complete edit", path=self.man_path,
                                      offset=MANIFEST_HEADER_SIZE)
            return False
        data = self.man_file.read_at(self.man_off, size - self.man_off)
        edits, end = read_edits(data, self.man_off, self.man_path)
        if fresh:
            if not edits:
                raise CorruptionError(f"{self.man_path}: manifest holds no complete edit", path=self.man_path,
                                      offset=MANIFEST_HEADER_SIZE)
            # A new manifest starts with the whole version: every table is listed again (the
            # open Tables are reused by number), the log chain starts afresh.
            self.files = {}
        self.man_off = end
        for e in edits:
            for level, num in e["deleted"]:
                self.files.pop(num, None)
            for meta in e["added"]:
                self.files[meta.number] = meta
            if "log_number" in e:
                self.log_number = e["log_number"]
            if "next_file" in e:
                self.next_file = e["next_file"]
            if "last_seq" in e:
                self.last_seq = e["last_seq"]
                self.last_live = e.get("live_keys")
        self.levels_stale = True
        if fresh and self.last_seq < self.seq:
            raise CorruptionError(f"{self.man_path}: the primary's new manifest holds commits up to {self.last_seq}, "
                                  f"but this read-only open had read up to {self.seq}: commits it saw are gone "
                                  "(reopen it)", path=self.man_path)
        if fresh:
            for num in list(self.tails):     # a new primary starts a new log chain
                (<LogTail>self.tails.pop(num)).wal.close()
            self.newest = None
        return bool(edits)

    # -- the logs ----------------------------------------------------------

    cdef object follow_logs(self, list applied):
        """Read the records appended to the logs at or above log_number into their memtables.
        None when done, else (message, path, offset) of what stopped it: a log missing or
        starting past the follower's seq, a damaged or cut-short record in a log that is not
        the newest; the caller reads the manifest again (the primary moved on) or raises it."""
        cdef LogTail tail
        cdef Wal w
        cdef uint64_t size, seq, n
        cdef Py_ssize_t i
        for num in [n for n in self.tails if n < self.log_number]:
            (<LogTail>self.tails.pop(num)).wal.close()  # flushed: its memtable leaves with publish()
        if self.last_seq > self.seq:
            if applied is not None:
                applied.append((self.last_seq, None))   # commits only seen in the tables (flushed meanwhile)
            self.seq = self.last_seq
        if self.last_seq == self.seq:    # the count at last_seq is the manifest's (M4)
            self.counted = self.tree.count_keys and self.last_live is not None
            self.live = self.last_live if self.counted else 0
        if self.listed_at != (self.man_path, self.man_off) or not self.log_numbers:
            self.log_numbers = log_numbers(self.fs, self.path, self.log_number)
            self.listed_at = (self.man_path, self.man_off)
        numbers = [n for n in self.log_numbers if n >= self.log_number]
        self.newest = None
        for i in range(len(numbers)):
            num = numbers[i]
            last = i == len(numbers) - 1
            wpath = log_path(self.path, num)
            tail = self.tails.get(num)
            if tail is None:
                try:
                    w = Wal(self.fs.open_read(wpath), wpath)
                except FileNotFoundError:
                    return (f"{wpath}: log deleted while being read", wpath, 0)
                header = w.read_header()
                if header is None and last:
                    w.close()
                    self.listed_at = None        # its header is being written: list again next time
                    break
                tail = LogTail.__new__(LogTail)
                tail.number = num
                tail.wal = w
                tail.mem = Memtable(num, self.tree.filter_bytes())
                if header is not None and not self.opening:
                    tail.salt, base = header
                    if base > self.seq:
                        w.close()
                        return (f"{wpath}: the log starts after commit {base} but this read-only open has "
                                f"read only up to commit {self.seq}", wpath, 16)
                    tail.off = WAL_HEADER_SIZE
                    tail.expect = base + 1
                else:
                    # At open (and for a damaged header) the recovery's own checks decide (W2): a
                    # log starting past the follower's seq, damage hiding commits, a torn tail
                    # (reported when it is not simply the record being written).
                    size = w.file.size()
                    try:
                        records, note = w.recover(self.seq, False)
                    except CorruptionError:
                        w.close()
                        raise
                    tail.salt = w.salt
                    tail.off = w.write_off if header is not None else size
                    tail.expect = w.written_seq + 1
                    tail.seen_size = size
                    if note is not None:
                        self.recovery = note
                    for seq, payload in records:
                        self.apply_record(tail, seq, payload, wpath, applied)
                self.tails[num] = tail
            size = tail.wal.file.size()
            if size != tail.seen_size or tail.off < size:
                if size > tail.off and tail.salt:
                    got = tail.wal.read_records(tail.salt, tail.off, 0, tail.expect)
                    records, end = got
                    n = len(records)
                    for seq, payload in records:
                        self.apply_record(tail, seq, payload, wpath, applied)
                    if n and self.recovery is not None and self.recovery.get("log") == wpath:
                        self.recovery = None     # the "torn tail" was a record being written
                    tail.off = end
                    tail.expect += n
                    if end < size:
                        self.check_stop(tail, size, wpath)
                tail.seen_size = size
            self.newest = tail
            if not last and tail.off < size:
                return (f"{wpath}: log record for commit {tail.expect} at offset {tail.off} is damaged, and a "
                        f"later log follows it", wpath, tail.off)
        return None

    cdef int check_stop(self, LogTail tail, uint64_t size, str wpath) except -1:
        """Reading the log stopped at tail.off, before its end: a record being written is the
        last thing in the file, so a valid record of the log's generation further on means the
        one at tail.off is damaged (as recovery's W2 check): CorruptionError naming the log."""
        cdef Wal w = tail.wal
        cdef uint32_t saved = w.salt
        cdef Py_ssize_t probe, n
        data = w.file.read_at(tail.off, size - tail.off)
        cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
        n = len(data)
        w.salt = tail.salt
        try:
            for probe in range(1, n - WAL_RECORD_HEADER_SIZE + 1):
                if get_u32(d + probe + 24) == tail.salt and w._valid_at(d, n, probe, 0) >= 0 \
                        and get_u64(d + probe + 8) >= tail.expect:
                    raise CorruptionError(f"{wpath}: log record for commit {tail.expect} at offset {tail.off} is "
                                          f"damaged, but commit {get_u64(d + probe + 8)} follows it at offset "
                                          f"{tail.off + probe}", path=wpath, offset=tail.off)
        finally:
            w.salt = saved
        return 0

    cdef int apply_record(self, LogTail tail, uint64_t seq, bytes payload, str wpath, list applied) except -1:
        """Add one log record's operations to its log's memtable (unless the follower has it)."""
        if seq <= self.seq:
            return 0
        ops = replayed_ops(payload, seq, wpath)
        cdef Memtable mem = tail.mem
        cdef int before
        cdef tuple below = None          # what is older than this log: the older logs' memtables, the tables
        for op in ops:
            if op[1] is None:
                before = mem.add(seq, ENTRY_DELETE, op[0], None, 0)
            else:
                before = mem.add(seq, ENTRY_PUT, op[0], op[1], op[2])
            if not self.counted:
                continue
            if before == MEM_ABSENT:     # kept as the primary keeps it (L4)
                if below is None:
                    older = [(<LogTail>self.tails[n]).mem for n in sorted(self.tails, reverse=True)
                             if n < tail.number]
                    below = (mem, older, self.current_levels())
                before = self.tree.kind_below(below, op[0])
            self.live += live_delta(before, op[1] is not None)
        self.seq = seq
        if applied is not None:
            applied.append(keys_committed(seq, ops))
        return 0

    # -- publishing ---------------------------------------------------------

    cdef list current_levels(self):
        """The levels of the version the edits read so far make (built again when they changed)."""
        if self.levels_stale:
            levels = [[] for _ in range(NUM_LEVELS)]
            for meta in self.files.values():
                if meta.table is not None:
                    levels[meta.level].append(meta)
            levels[0].sort(key=lambda f: f.max_seq, reverse=True)
            for level in range(1, NUM_LEVELS):
                levels[level].sort(key=lambda f: f.smallest)
            self.levels = levels
            self.levels_stale = False
        return self.levels

    cdef int publish(self) except -1:
        """Make what was read the tree's `current` (the caller holds the writer lock; readers
        were told to retry)."""
        cdef LsmTree tree = self.tree
        mems = [(<LogTail>self.tails[n]).mem for n in sorted(self.tails) if n >= self.log_number]
        tree.set_current(mems[-1] if mems else self.empty, list(reversed(mems[:-1])), self.current_levels())
        tree.live = self.live
        tree.counted = self.counted
        tree.log_number = self.log_number
        tree.flushed_seq = self.last_seq
        if self.next_file > tree.next_file:
            tree.next_file = self.next_file
        return 0

    def newest_wal(self):
        """The newest log being followed (stats() reports it), or None."""
        return self.newest.wal if self.newest is not None else None

    def close(self):
        """Close the manifest and the logs (the tables close with the tree's table cache)."""
        if self.man_file is not None:
            self.man_file.close()
        for tail in self.tails.values():
            (<LogTail>tail).wal.close()
