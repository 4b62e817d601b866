# The LSM engine: memtables, SSTables in levels, flushes, leveled compaction
# and the manifest that records the tables of each level. The database layer
# above keeps the WAL, pins, transactions and the background thread; this
# module sees commits as (ops, seq) and snapshots as seq numbers (MVCC).
#
# State (one tuple, replaced whole so a reader always sees a consistent set):
#   current = (mem, imms, levels)
#     mem     the Memtable taking writes (guarded by the writer lock)
#     imms    immutable memtables waiting for their flush, newest first
#     levels  NUM_LEVELS lists of FileMeta (with .table open): level 0 newest
#             first (files may overlap), levels 1.. sorted by key, disjoint
# Locks (always taken in this order): `maint` (one flush or compaction at a
# time; building a table runs under it alone; re-entrant, because a compaction
# runs `flush_hook` between its output tables so that a memtable filled in the
# meantime is flushed at once instead of stalling writes until the compaction
# ends), then the database's writer lock (held by the caller of every *_install
# method and of apply/switch).
#
# Invariants:
#   L1. For one user key, every version in a newer source (mem, then imms
#       newest first, then L0 newest first, then L1, L2, ...) has a higher seq
#       than every version in an older source; so a read stops at the first
#       source holding a version <= its snapshot.
#   L2. A flush or compaction drops a version only if no snapshot can read it:
#       per key, each snapshot stripe keeps its newest version; a tombstone is
#       dropped only when every snapshot sees it and no deeper level may hold
#       the key.
#   L3. A table file is removed only after the manifest edit that drops it is
#       durable, and only when no reader holds its Table (weakref finalizer).
#   L4. While `counted` (key_count="exact", the default), `live` is the number
#       of user keys whose newest version is a put (expired or not) at the last
#       commit applied: len() in O(1).
#       apply() learns each written key's previous newest version from the
#       memtable insert's own descent, or else from kind_below() (bloom filters
#       answer most new keys). A memtable's flush edit records the count after
#       its last commit (M4), and recovery starts there and replays the logs
#       through apply(). Flushes and compactions change no newest version.

import os
import resource
import threading
import time
import weakref

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t

from kvdb._core.file cimport File, FS
from kvdb._core.lsm.memtable cimport Memtable, MEM_ABSENT
from kvdb._core.lsm.merge cimport Source, MergeCursor, ENTRY_PUT, ENTRY_DELETE, bytes_cmp
from kvdb._core.coding cimport crc32c
from kvdb._core.lsm.blockcache cimport BlockCache
from kvdb._core.lsm.sstable cimport Table, TableCache, TableSource, bloom_hash_of
from kvdb._core.lsm.manifest cimport NUM_LEVELS
from kvdb._core.lsm.table_merge cimport TableMerger
from kvdb._core.lsm.manifest import FileMeta, create_manifest, encode_edit, read_manifest, manifest_name

from kvdb.errors import CorruptionError

L0_COMPACTION_TRIGGER = 4        # level-0 files that start a compaction into level 1
L0_SLOWDOWN = 8                  # level-0 files at which each write is delayed 1 ms
L0_STOP = 12                     # level-0 files at which writes wait for compaction
MAX_IMMUTABLE = 4                # memtables waiting for a flush before writes wait
LEVEL_RATIO = 10                 # each level may hold this many times the bytes of the one above
MAX_OPEN_TABLES = 1000           # default bound of the table cache (open table files)


cdef inline bint key_in(Table t, const unsigned char *k, Py_ssize_t klen) noexcept:
    """The table's key range covers k."""
    return bytes_cmp(t.smallest, k, klen) <= 0 and bytes_cmp(t.largest, k, klen) >= 0


cdef Py_ssize_t level_find(list files, const unsigned char *k, Py_ssize_t klen) except -1:
    """In a level >= 1 (tables sorted by key, disjoint): the first table whose largest key is
    >= k, len(files) if none."""
    cdef Py_ssize_t lo = 0, hi = len(files), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if bytes_cmp((<Table>files[mid].table).largest, k, klen) < 0:
            lo = mid + 1
        else:
            hi = mid
    return lo


def disjoint(list files):
    """True if no two of the tables share a key range (so they may sit side by side in a level)."""
    ordered = sorted(files, key=_smallest)
    for i in range(1, len(ordered)):
        if not ordered[i - 1].largest < ordered[i].smallest:
            return False
    return True


def table_name(uint64_t number):
    return "%06d.sst" % number


def default_max_open_tables():
    """MAX_OPEN_TABLES, or half the process's open-file limit if that is lower (the WAL, the
    manifest, compaction inputs and the application need descriptors too)."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return MAX_OPEN_TABLES
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return MAX_OPEN_TABLES
    return max(16, min(MAX_OPEN_TABLES, soft // 2))


def _remove_file(FS fs, str path):
    try:
        fs.remove(path)
    except Exception:
        pass                     # a finalizer must not raise; an orphan is removed at the next open


def _remove_table(TableCache tables, uint64_t number, FS fs, str path):
    """Finalizer of a retired Table: close its cached file, then remove it (L3)."""
    try:
        tables.drop(number)
    except Exception:
        pass
    _remove_file(fs, path)


cdef class LevelSource(Source):
    """A Source over one level >= 1 (disjoint files in key order)."""
    cdef list files              # [FileMeta]
    cdef Py_ssize_t i            # current file
    cdef TableSource cur

    cdef int open_file(self, Py_ssize_t i, bytes key, bint reverse, bint whole) except -1:
        self.i = i
        if i < 0 or i >= len(self.files):
            self.cur = None
            self.valid = False
            return 0
        self.cur = self.files[i].table.source()
        self.cur.seek(None if whole else key, reverse)
        return self.copy()

    cdef int copy(self) except -1:
        if self.cur is None or not self.cur.valid:
            self.valid = False
            return 0
        self.valid = True                # pointers into `cur`, which this source keeps
        self.key = self.cur.key
        self.klen = self.cur.klen
        self.seq = self.cur.seq
        self.kind = self.cur.kind
        self.expires = self.cur.expires
        self.val = self.cur.val
        self.vlen = self.cur.vlen
        return 0

    cdef int seek(self, bytes key, bint reverse) except -1:
        cdef Py_ssize_t i
        if not reverse:
            i = 0 if key is None else level_find(self.files, <const unsigned char *>PyBytes_AS_STRING(key),
                                                 PyBytes_GET_SIZE(key))
            self.open_file(i, key, False, False)
            if not self.cur_valid():
                self.open_file(i + 1, None, False, True)
        else:
            if key is None:
                i = len(self.files) - 1
            else:
                i = level_find(self.files, <const unsigned char *>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
                if i >= len(self.files):
                    i = len(self.files) - 1
            self.open_file(i, key, True, key is None)
            if not self.cur_valid():
                self.open_file(i - 1, None, True, True)
        return 0

    cdef bint cur_valid(self):
        return self.cur is not None and self.cur.valid

    cdef int step(self, bint reverse) except -1:
        if self.cur is None:
            self.valid = False
            return 0
        self.cur.step(reverse)
        if not self.cur.valid:
            self.open_file(self.i + (-1 if reverse else 1), None, reverse, True)
            return 0
        return self.copy()


cdef class LsmTree:
    """The LSM engine (fields in lsm.pxd)."""

    def __init__(self, FS fs, str path, Py_ssize_t memtable_size, Py_ssize_t cache_size,
                 Py_ssize_t target_file_size, Py_ssize_t level1_bytes, max_open_tables=None,
                 bint keep_tables_open=False, bint count_keys=True, bint map_reads=False):
        """keep_tables_open: a read-only open following the primary (follower.pyx), whose table
        files must never be closed while a version reaches them (the table cache never evicts).
        map_reads: read_path="mmap", tables read their blocks from a map of the file."""
        self.fs = fs
        self.map_reads = map_reads
        self.path = path
        self.count_keys = count_keys
        self.cache = BlockCache(cache_size)
        self.tables = TableCache(fs, default_max_open_tables() if max_open_tables is None else max_open_tables,
                                 keep_tables_open)
        self.memtable_size = max(memtable_size, 1024)
        self.target_file_size = max(target_file_size, 1024)
        self.level1_bytes = max(level1_bytes, 4096)
        self.maint = threading.RLock()
        self.flush_hook = None
        self.compact_pointer = [None] * NUM_LEVELS
        self.next_file = 1
        self.log_number = 0
        self.flushed_seq = 0
        self.stall_seconds = 0.0
        self.last_build_windows = []
        self.current = (Memtable(0, self.filter_bytes()), [], [[] for _ in range(NUM_LEVELS)])

    # -- open ----------------------------------------------------------------

    def load(self):
        """Read the manifest and open every table it lists. Returns (flushed seq, oldest
        WAL number to replay); (0, 0) for a new database."""
        got = read_manifest(self.fs, self.path)
        if got is None:
            strays = [n for n in self.fs.listdir(self.path) if n.endswith(".sst")]
            if strays:
                raise CorruptionError(f"{self.path}: holds tables ({strays[0]}, ...) but no CURRENT manifest",
                                      path=os.path.join(self.path, "CURRENT"))
            self.counted = self.count_keys
            self.live = 0
            return 0, 0
        number, edits, _ = got
        files = {}
        for e in edits:
            for level, num in e["deleted"]:
                files.pop(num, None)
            for f in e["added"]:
                files[f.number] = f
            if "log_number" in e:
                self.log_number = e["log_number"]
            if "next_file" in e:
                self.next_file = e["next_file"]
            if "last_seq" in e:
                self.flushed_seq = e["last_seq"]
                self.counted = self.count_keys and "live_keys" in e   # M4; version 1 holds no count
                self.live = e.get("live_keys", 0)
        levels = [[] for _ in range(NUM_LEVELS)]
        for f in files.values():
            tpath = os.path.join(self.path, table_name(f.number))
            if not self.fs.exists(tpath):
                raise CorruptionError(f"{tpath}: listed in {manifest_name(number)} (level {f.level}) but missing",
                                      path=tpath)
            f.table = Table(self.fs.open_read(tpath), tpath, f.number, self.cache, self.tables, self.map_reads)
            if f.table.file_size != f.size:
                raise CorruptionError(f"{tpath}: {f.table.file_size} bytes, the manifest says {f.size}",
                                      path=tpath, offset=f.table.file_size)
            levels[f.level].append(f)
        levels[0].sort(key=lambda f: f.max_seq, reverse=True)
        for level in range(1, NUM_LEVELS):
            levels[level].sort(key=lambda f: f.smallest)
        self.set_current(self.current[0], [], levels)
        if self.next_file <= max([0] + list(files)):
            raise CorruptionError(f"{self.path}: manifest's next file number {self.next_file} is not above its tables",
                                  path=self.path)
        return self.flushed_seq, self.log_number

    cpdef uint64_t count_at(self, uint64_t seq) except? 0:
        """The keys stored at seq, expired or not, counted with a scan (verify(); and count_all)."""
        cdef MergeCursor c = self.cursor(seq, None, None, None, False, 0)
        cdef uint64_t n = 0
        while c.next_visible(True):     # now=0: expired keys count too
            n += 1
        return n

    def count_all(self, uint64_t seq):
        """Count the keys stored at seq with a scan, once, when the manifest held no count
        (version 1, or written with key_count="scan"): from then on `live` is kept (L4)."""
        self.live = self.count_at(seq)
        self.counted = True

    def start(self, uint64_t seq):
        """After WAL replay into the memtable: flush what was replayed, write a fresh manifest
        naming a new WAL number, and remove files no version uses. Returns the new WAL number."""
        mem, imms, levels = self.current
        if mem.count:
            f = self.write_memtable(mem, [])
            levels = [list(l) for l in levels]
            levels[0] = f + levels[0]
            for x in f:
                self.bytes_flushed += x.size
            self.flushes += 1
        self.flushed_seq = seq
        new_log = self.new_file_number()
        man_num = self.new_file_number()
        self.log_number = new_log
        all_files = [f for l in levels for f in l]
        if self.count_keys and not self.counted:
            self.count_all(seq)
        snapshot = encode_edit(log_number=new_log, next_file=self.next_file, last_seq=seq, added=all_files,
                               live_keys=self.live if self.counted else None)
        old = self.manifest
        self.manifest = create_manifest(self.fs, self.path, man_num, snapshot)
        if old is not None:
            old.close()
        self.set_current(Memtable(new_log, self.filter_bytes()), [], levels)
        live = {table_name(f.number) for f in all_files}
        for name in self.fs.listdir(self.path):
            if (name.endswith(".sst") and name not in live) or \
                    (name.startswith("MANIFEST-") and name != manifest_name(man_num)) or name == "CURRENT.tmp":
                _remove_file(self.fs, os.path.join(self.path, name))
        return new_log

    cpdef Py_ssize_t filter_bytes(self):
        """A new memtable's expected_bytes: its key filter serves only the count of keys (L4)."""
        return self.memtable_size if self.count_keys else 0

    cdef int set_current(self, Memtable mem, list imms, list levels) except -1:
        """Publish a version (writer lock held, or at open): `current`, and the largest key of
        its tables for kind_below()."""
        self.tables_largest = max([f.largest for files in levels for f in files], default=None)
        self.largest_of = levels
        self.current = (mem, imms, levels)
        return 0

    cpdef uint64_t new_file_number(self):
        n = self.next_file
        self.next_file += 1
        return n

    # -- reads -----------------------------------------------------------------

    cpdef object get_entry(self, uint64_t seq, bytes key):
        """(value, expires) of the newest version of key at seq, expired or not, or None."""
        return self.entry_in(self.current, seq, key)

    cpdef object get_in(self, tuple cur, uint64_t seq, bytes key, uint64_t now):
        """get() through `cur`, a (mem, imms, levels) that `current` held when a pin was taken
        (a read-only open keeps its pins' versions so: the primary's merges keep only the
        versions its own pins need)."""
        entry = self.entry_in(cur, seq, key)
        if entry is None:
            return None
        if entry[1] and now and entry[1] <= now:
            return None
        return entry[0]

    cdef object entry_in(self, tuple cur, uint64_t seq, bytes key):
        """get_entry() through the version `cur`: the sources newest first (L1), the key's bloom
        hash computed once for every table."""
        cdef const unsigned char *k = <const unsigned char *>PyBytes_AS_STRING(key)
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), i
        cdef list levels = cur[2]
        cdef list files
        cdef Table t
        cdef uint32_t h
        r = (<Memtable>cur[0]).get(key, seq)
        if r is None:
            for m in <list>cur[1]:
                r = (<Memtable>m).get(key, seq)
                if r is not None:
                    break
        if r is None:
            h = bloom_hash_of(crc32c(k, klen))
            for f in <list>levels[0]:
                t = <Table>f.table
                if key_in(t, k, klen):
                    r = t.get_hashed(k, klen, h, seq)
                    if r is not None:
                        break
            if r is None:
                for level in range(1, NUM_LEVELS):
                    files = levels[level]
                    if not files:
                        continue
                    i = level_find(files, k, klen)
                    if i < len(files):
                        t = <Table>files[i].table
                        if bytes_cmp(t.smallest, k, klen) <= 0:
                            r = t.get_hashed(k, klen, h, seq)
                            if r is not None:
                                break
        if r is None or r[0] == ENTRY_DELETE:
            return None
        return (r[1], r[2])

    cpdef object get(self, uint64_t seq, bytes key, uint64_t now):
        entry = self.entry_in(self.current, seq, key)
        if entry is None:
            return None
        if entry[1] and now and entry[1] <= now:
            return None
        return entry[0]

    def cursor(self, uint64_t seq, pin, lo, hi, bint reverse, uint64_t now, cur=None):
        """A MergeCursor over `cur` (default: current) at seq."""
        if cur is None:
            cur = self.current
        mem, imms, levels = cur
        sources = [mem.source()] + [m.source() for m in imms] + [f.table.source() for f in levels[0]]
        for level in range(1, NUM_LEVELS):
            if levels[level]:
                sources.append(self.level_source(levels[level]))
        return MergeCursor(sources, seq, now, lo, hi, reverse, (pin, cur))

    cdef object level_source(self, list files):
        cdef LevelSource s = LevelSource.__new__(LevelSource)
        s.files = files
        s.valid = False
        return s

    def has_expiring(self):
        mem, imms, levels = self.current
        if mem.expiring or any([m.expiring for m in imms]):
            return True
        return any([f.table.props.get("expiring", 0) for l in levels for f in l])

    # -- writes (writer lock held by the caller) ---------------------------------

    cpdef int apply(self, list ops, uint64_t seq) except -1:
        """Add [(key, value-or-None, expires)] as commit seq, keeping `live` (L4); 1 when the
        memtable is full."""
        cdef tuple cur = self.current
        cdef Memtable mem = cur[0]
        cdef tuple op
        cdef int before
        for op in ops:
            if op[1] is None:
                before = mem.add(seq, ENTRY_DELETE, op[0], None, 0)
            else:
                before = mem.add(seq, ENTRY_PUT, op[0], op[1], op[2])
            if self.counted:
                self.count_op(cur, op[0], before, op[1] is not None)
        return mem.memory >= self.memtable_size

    cpdef int apply_pairs(self, list keys, list values, uint64_t seq) except -1:
        """apply() of puts without expiry, keys[i] -> values[i]."""
        cdef tuple cur = self.current
        cdef Memtable mem = cur[0]
        cdef Py_ssize_t i
        cdef int before
        for i in range(len(keys)):
            before = mem.add(seq, ENTRY_PUT, <bytes>keys[i], values[i], 0)
            if self.counted:
                self.count_op(cur, <bytes>keys[i], before, True)
        return mem.memory >= self.memtable_size

    cdef int count_op(self, tuple cur, bytes key, int before, bint put) except -1:
        """Keep `live` (L4) for one op on key, whose newest version in the memtable taking writes
        was `before` (MEM_ABSENT: look below)."""
        if before == MEM_ABSENT:
            before = self.kind_below(cur, key)
        self.live += live_delta(before, put)
        return 0

    cdef int kind_below(self, tuple cur, bytes key) except -1:
        """What the sources older than the memtable taking writes (imms, then the tables) hold
        for key, newest first: MEM_PUT / MEM_DELETE for its newest version there, MEM_ABSENT if
        none. In C but for the walk over the lists: bloom filters answer most new keys."""
        cdef const unsigned char *k = <const unsigned char *>PyBytes_AS_STRING(key)
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
        cdef list levels = cur[2]
        cdef list files
        cdef Table t
        cdef Py_ssize_t lo
        cdef int r
        cdef bint past = True
        if levels is self.largest_of:    # the published levels (a follower's too, unless it read
            largest = self.tables_largest    # new edits since): computed when they were published
        else:
            largest = max([f.largest for files in levels for f in files], default=None)
        if largest is None or bytes_cmp(largest, k, klen) < 0:
            for m in <list>cur[1]:
                if not (<Memtable>m).past_end(k, klen):
                    past = False
                    break
            if past:                     # after every key below (keys written in order): none there
                return MEM_ABSENT
        cdef uint32_t crc = crc32c(k, klen)
        cdef uint32_t h = bloom_hash_of(crc)
        for m in <list>cur[1]:
            r = (<Memtable>m).newest_kind(k, klen, crc)
            if r != MEM_ABSENT:
                return r
        for f in <list>levels[0]:
            t = <Table>f.table
            if key_in(t, k, klen):
                r = t.newest_kind(k, klen, h)
                if r != MEM_ABSENT:
                    return r
        for level in range(1, NUM_LEVELS):
            files = levels[level]
            lo = level_find(files, k, klen)
            if lo < len(files):
                t = <Table>files[lo].table
                if bytes_cmp(t.smallest, k, klen) <= 0:
                    r = t.newest_kind(k, klen, h)
                    if r != MEM_ABSENT:
                        return r
        return MEM_ABSENT

    def announce_log(self):
        """Writer lock held, a new log file's header durable, no commit in it yet: append an edit
        (next_file only) so that read-only opens following this one, which watch the manifest's
        size, list the directory and find the new log (M3)."""
        self.manifest.append(encode_edit(next_file=self.next_file))

    def switch(self, uint64_t seq, uint64_t new_log):
        """The memtable becomes immutable (holding commits up to seq); a new one, logged in
        WAL new_log, takes the writes."""
        mem, imms, levels = self.current
        if mem.count == 0:
            return False
        mem.immutable = True
        mem.last_seq_hint = seq
        mem.live_after = self.live if self.counted else None
        self.current = (Memtable(new_log, self.filter_bytes()), [mem] + imms, levels)
        return True

    def needs_flush(self):
        return bool(self.current[1])

    cpdef int write_pressure(self):
        """0 = write freely, 1 = slow down, 2 = wait (too many memtables or level-0 files)."""
        cdef tuple cur = self.current
        cdef list imms = cur[1]
        cdef Py_ssize_t n0 = len(cur[2][0])
        if len(imms) >= MAX_IMMUTABLE or n0 >= L0_STOP:
            return 2
        if n0 >= L0_SLOWDOWN:
            return 1
        return 0

    # -- building tables (maint lock, no writer lock) --------------------------------

    def build_tables(self, list runs, list snaps, int level, bint drop_tombstones):
        """Merge the runs (Memtables, or lists of Tables in key order) keeping what L2 says and
        write tables of up to target_file_size for `level` (one table for a flush). The merge,
        the block building and the compression run in TableMerger without the GIL; this
        function only names, writes and opens the results. Returns [FileMeta] (tables open);
        nothing is installed."""
        levels = self.current[2]
        deeper = [[(f.smallest, f.largest) for f in levels[d]] for d in range(level + 1, NUM_LEVELS)] \
            if drop_tombstones else []
        target = self.target_file_size if level > 0 else (1 << 62)
        merger = TableMerger(runs, snaps, drop_tombstones, deeper, target)
        out = []
        while merger.next_table():
            number = self.new_file_number()
            tpath = os.path.join(self.path, table_name(number))
            f = self.fs.open(tpath, True)
            try:
                f.truncate(0)
                size = merger.write_to(f)
            finally:
                f.close()
            meta = FileMeta(level, number, size, merger.smallest, merger.largest, merger.min_seq,
                            merger.max_seq, merger.entries)
            meta.table = Table(self.fs.open_read(tpath), tpath, number, self.cache, self.tables, self.map_reads)
            out.append(meta)
            if level > 0 and self.flush_hook is not None and self.current[1]:
                self.flush_hook()        # a memtable filled meanwhile: flush it now, not after the compaction
        self.build_seconds += merger.build_seconds
        self.last_build_windows = merger.windows[-16:]
        if out:
            self.fs.sync_dir(self.path)
        return out

    def flush_build(self, list snaps):
        """Write the oldest immutable memtable as a level-0 table; (memtable, [FileMeta]) or None."""
        mem, imms, levels = self.current
        if not imms:
            return None
        imm = imms[-1]
        return imm, self.write_memtable(imm, snaps)

    def write_memtable(self, Memtable mem, list snaps):
        """One level-0 table holding what some reader can see of the memtable (L2; tombstones
        stay: older versions may sit in the tables)."""
        return self.build_tables([mem], snaps, 0, False)

    def flush_install(self, built):
        """Writer lock held: record the flush in the manifest (M1), then publish it. Returns the
        oldest WAL number still needed (older WAL files may be deleted)."""
        imm, files = built
        mem, imms, levels = self.current
        rest = [m for m in imms if m is not imm]
        log_number = rest[-1].log_number if rest else mem.log_number
        last_seq = imm.last_seq_hint
        self.manifest.append(encode_edit(log_number=log_number, next_file=self.next_file, last_seq=last_seq,
                                         added=files, live_keys=imm.live_after))
        new_levels = list(levels)
        new_levels[0] = list(reversed(files)) + levels[0]
        self.set_current(mem, rest, new_levels)
        self.log_number = log_number
        self.flushed_seq = last_seq
        self.flushes += 1
        for x in files:
            self.bytes_flushed += x.size
        return log_number

    # -- compaction ------------------------------------------------------------------

    def level_bytes(self, list files):
        return sum([f.size for f in files])

    def level_limit(self, int level):
        return self.level1_bytes * (LEVEL_RATIO ** (level - 1))

    def pick_compaction(self, bint force=False):
        """(level, inputs, overlapping files in level + 1) for the most urgent compaction, or None."""
        levels = self.current[2]
        if force and levels[0]:
            inputs = list(levels[0])
            return 0, inputs, self.overlapping(levels[1], inputs)
        # The most urgent by score, as LevelDB: level 0 by files over the trigger, deeper levels
        # by bytes over their limit. Preferring level 0 whenever it reached the trigger let level 1
        # grow without bound under random writes (every level-0 file overlaps all of it), so each
        # L0->L1 compaction rewrote more of it: quadratic work, and writers stalled behind it.
        best = None
        if len(levels[0]) >= L0_COMPACTION_TRIGGER:
            best = (len(levels[0]) / L0_COMPACTION_TRIGGER, 0)
        for level in range(1, NUM_LEVELS - 1):
            if not levels[level]:
                continue
            score = self.level_bytes(levels[level]) / self.level_limit(level)
            if score > 1.0 and (best is None or score > best[0]):
                best = (score, level)
        if best is None:
            return None
        level = best[1]
        if level == 0:
            inputs = list(levels[0])
            return 0, inputs, self.overlapping(levels[1], inputs)
        files = levels[level]
        ptr = self.compact_pointer[level]
        pick = files[0]
        if ptr is not None:
            for f in files:
                if f.smallest > ptr:
                    pick = f
                    break
        return level, [pick], self.overlapping(levels[level + 1], [pick])

    def overlapping(self, list files, list inputs):
        lo = min([f.smallest for f in inputs])
        hi = max([f.largest for f in inputs])
        return [f for f in files if not (f.largest < lo or f.smallest > hi)]

    def is_trivial_move(self, int level, list inputs, list below):
        """The compaction only moves the input files down a level, rewriting no bytes: nothing
        below overlaps them, and (level 0, whose files may overlap) they do not overlap each
        other, as after a load in key order (RocksDB moves such level-0 files too), and each is
        at least half a compaction output's size: small flushes (a small memtable) are merged
        into full-size tables instead, or level 1 would fill with tiny files."""
        if below:
            return False
        if level > 0:
            return True
        for f in inputs:
            if f.size < self.target_file_size // 2:
                return False
        return disjoint(inputs)

    def compaction_build(self, int level, list inputs, list below, list snaps, bint may_move=True):
        """Merge inputs (level) with below (level + 1) into new level + 1 tables (no lock); None
        for a trivial move. A forced compaction (`may_move` False) rewrites level-0 files even
        when they could move, so that compact() drops what it can from them, as it always did."""
        if (may_move or level > 0) and self.is_trivial_move(level, inputs, below):
            return None
        if level == 0:
            runs = [[f.table] for f in inputs]           # level-0 files may overlap: one run each
        else:
            runs = [[f.table for f in inputs]]
        if below:
            runs.append([f.table for f in below])         # disjoint, in key order
        for f in inputs + below:
            self.bytes_compaction_read += f.size
        return self.build_tables(runs, snaps, level + 1, True)

    def compaction_install(self, int level, list inputs, list below, outputs):
        """Writer lock held: record the compaction in the manifest, publish the new version,
        and let go of the input tables (their files go when no reader holds them, L3)."""
        mem, imms, levels = self.current
        if outputs is None:
            moved = [FileMeta(level + 1, f.number, f.size, f.smallest, f.largest, f.min_seq, f.max_seq, f.entries)
                     for f in inputs]
            for m, f in zip(moved, inputs):
                m.table = f.table
            self.manifest.append(encode_edit(next_file=self.next_file,
                                             deleted=[(level, f.number) for f in inputs], added=moved))
            new_levels = list(levels)
            gone = {f.number for f in inputs}
            new_levels[level] = [f for f in levels[level] if f.number not in gone]
            new_levels[level + 1] = sorted(levels[level + 1] + moved, key=_smallest)
            self.set_current(mem, imms, new_levels)
            self.trivial_moves += 1
            self.compact_pointer[level] = max([f.largest for f in inputs])
            return
        deleted = [(level, f.number) for f in inputs] + [(level + 1, f.number) for f in below]
        self.manifest.append(encode_edit(next_file=self.next_file, deleted=deleted, added=outputs))
        gone = {f.number for f in inputs} | {f.number for f in below}
        new_levels = list(levels)
        new_levels[level] = [f for f in levels[level] if f.number not in gone]
        new_levels[level + 1] = sorted([f for f in levels[level + 1] if f.number not in gone] + outputs,
                                       key=_smallest)
        self.set_current(mem, imms, new_levels)
        self.compactions += 1
        for f in outputs:
            self.bytes_compacted += f.size
        if level > 0:
            self.compact_pointer[level] = max([f.largest for f in inputs])
        for f in inputs + below:
            self.retire(f)

    def retire(self, f):
        """The table left every version: drop its cached blocks, and remove its file once no
        reader holds the Table (L3)."""
        cdef Table t = f.table
        self.gone_bloom_checks += t.bloom_checks
        self.gone_bloom_negatives += t.bloom_negatives
        self.gone_bloom_fp += t.bloom_false_positives
        self.cache.drop_table(t.number)
        weakref.finalize(t, _remove_table, self.tables, t.number, self.fs, t.path)

    # -- verify and stats -------------------------------------------------------------

    def verify(self):
        """Every block checksum and the key order inside each table and across each level."""
        levels = self.current[2]
        for level, files in enumerate(levels):
            prev = None
            for f in files:
                n = f.table.check_blocks()
                if n != f.entries or f.table.smallest != f.smallest or f.table.largest != f.largest:
                    raise CorruptionError(f"{f.table.path}: contents do not match the manifest entry",
                                          path=f.table.path)
                if level > 0 and prev is not None and f.smallest <= prev.largest:
                    raise CorruptionError(f"{f.table.path}: level {level} key range overlaps "
                                          f"{table_name(prev.number)}", path=f.table.path)
                prev = f
        return True

    def stats(self):
        mem, imms, levels = self.current
        tables = [f.table for l in levels for f in l]
        checks = self.gone_bloom_checks + sum([t.bloom_checks for t in tables])
        negatives = self.gone_bloom_negatives + sum([t.bloom_negatives for t in tables])
        fp = self.gone_bloom_fp + sum([t.bloom_false_positives for t in tables])
        lookups = self.cache.hits + self.cache.misses
        return {
            "lsm_files_per_level": [len(l) for l in levels],
            "lsm_bytes_per_level": [self.level_bytes(l) for l in levels],
            "lsm_memtable_bytes": mem.memory,
            "lsm_immutable_memtables": len(imms),
            "lsm_bytes_flushed": self.bytes_flushed,
            "lsm_bytes_compacted": self.bytes_compacted,
            "lsm_bytes_compaction_read": self.bytes_compaction_read,
            "lsm_flushes": self.flushes,
            "lsm_compactions": self.compactions,
            "lsm_trivial_moves": self.trivial_moves,
            "lsm_bloom_checks": checks,
            "lsm_bloom_negatives": negatives,
            "lsm_bloom_false_positives": fp,
            "block_cache_hits": self.cache.hits,
            "block_cache_misses": self.cache.misses,
            "block_cache_hit_rate": (self.cache.hits / lookups) if lookups else 0.0,
            "block_cache_bytes": self.cache.used,
            "read_path": "mmap" if self.map_reads else "pread",
            "table_cache_open_files": self.tables.open_files,
            "table_cache_capacity": self.tables.capacity,
            "table_cache_hits": self.tables.hits,
            "table_cache_misses": self.tables.misses,
            "table_cache_evictions": self.tables.evictions,
            "lsm_slowdowns": self.slowdowns,
            "lsm_stalls": self.stalls,
            "lsm_stall_seconds": self.stall_seconds,
            "lsm_build_seconds": self.build_seconds,
            "entries_estimate": mem.count + sum([m.count for m in imms]) + sum([f.entries for l in levels for f in l]),
        }

    def live_files(self):
        return [(f.level, f.number, f.size) for l in self.current[2] for f in l]

    def close(self):
        if self.manifest is not None:
            self.manifest.close()
        self.tables.close()      # every open table file, retired tables' too


def _smallest(f):
    return f.smallest
