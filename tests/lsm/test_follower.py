"""LSM read-only opens following the primary, as RocksDB's secondary instances do
(kvdb/_core/lsm/follower.pyx; docs/ARCHITECTURE.md, "Read-only opens following the primary").

The primary runs in another process (multiprocessing, spawn) writing fillrandom-style puts and
some deletes with small memtables and tables, so it switches logs, flushes and compacts (and
deletes tables and logs) all along; it reports every commit through a pipe once the commit
returned. The follower (this process) must see every commit reported before its catch-up began
(precisely: after db.catch_up(), a key reads the value of the last reported commit on it, or of
a later one), keep its snapshots unchanged, and survive the primary's close, kill -9 and a new
primary. The lag from a commit returning in the primary to a polling get() in the follower
seeing it is printed (median, p99; run with -s to see it).
"""
import hashlib
import multiprocessing
import os
import random
import signal
import statistics
import time

import pytest

import kvdb
from kvdb._core.file import OsFS
from tests import helpers
from tests.helpers import dump

SPAWN = multiprocessing.get_context("spawn")
OPTS = dict(engine="lsm", sync="normal", memtable_size=32 << 10, sstable_size=32 << 10, level1_size=128 << 10)
KEYS = 4000                      # the fillrandom key space ("k" keys, overwritten)
BATCH = 16                       # commits per report from the primary
LAG_BOUND = 5.0                  # seconds; a generous bound, the lag is printed


def value(i):
    """The value commit i writes: its index first, so a reader can tell newer from older."""
    return b"%08d|" % i + hashlib.blake2b(b"%d" % i, digest_size=30).hexdigest().encode()


def index_of(v):
    return int(v[:8])


# -- the primary (another process) --------------------------------------------------


def primary_main(path, conn, ops, seed, close_on_request=True, opts=None, batch=BATCH):
    """Open `path` for writing (OPTS unless `opts`), report ("ready",), then run `ops` commits,
    reporting them every `batch` commits as ("ops", [(i, key, value or None for a delete,
    monotonic time when its commit returned)]), so that the reports cost the primary little.
    Keys "k..." are overwritten at random; keys "d..." are put once and some deleted once. Then
    report ("done", stats) and close when told to ("close"), reporting ("closed",)."""
    rng = random.Random(seed)
    db = kvdb.open(path, **(opts or OPTS))
    conn.send(("ready",))
    live_d = []
    pending = []
    for i in range(ops):
        r = rng.random()
        if r < 0.08 and live_d:
            key = live_d.pop(rng.randrange(len(live_d)))
            db.delete(key)
            v = None
        elif r < 0.2:
            key = b"d%07d" % i
            v = value(i)
            db.put(key, v)
            live_d.append(key)
        else:
            key = b"k%05d" % rng.randrange(KEYS)
            v = value(i)
            db.put(key, v)
        pending.append((i, key, v, time.monotonic()))
        if len(pending) >= batch or i == ops - 1:
            conn.send(("ops", pending))
            pending = []
    s = db.stats()
    conn.send(("done", {"flushes": s["lsm_flushes"], "compactions": s["lsm_compactions"], "seq": db.seq}))
    if close_on_request:
        conn.recv()
        db.close()
        conn.send(("closed",))
    else:
        time.sleep(3600)         # killed by the test


def idle_primary(path, conn):
    """Open `path` for writing, put one key, report ("ready",) and wait for ("close",)."""
    with kvdb.open(path, **OPTS) as db:
        db.put(b"held", b"by the primary")
        conn.send(("ready",))
        conn.recv()
    conn.send(("closed",))


class Primary:
    """A primary process and its end of the pipe; killed if the test leaves it running."""

    def __init__(self, target, *args):
        self.conn, child = SPAWN.Pipe()
        self.proc = SPAWN.Process(target=target, args=(args[0], child) + args[1:], daemon=True)
        self.proc.start()
        child.close()

    def recv(self, timeout=60):
        if not self.conn.poll(timeout):
            raise AssertionError(f"the primary process sent nothing for {timeout} s")
        return self.conn.recv()

    def stop(self):
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(10)
        self.conn.close()


@pytest.fixture
def primaries():
    started = []

    def start(target, *args):
        p = Primary(target, *args)
        started.append(p)
        return p
    yield start
    for p in started:
        p.stop()


# -- the follower's checks ----------------------------------------------------------


class Model:
    """What the primary reported: key -> (index of the last commit on it, value or None)."""

    def __init__(self):
        self.last = {}

    def take(self, msg):
        """Take a report ("ops", [(i, key, value, time)]); returns its last commit."""
        for i, key, v, _ in msg[1]:
            self.last[key] = (i, v)
        return msg[1][-1]

    def shows(self, key, got, i, v):
        """Whether `got` (a follower's read of key) shows commit i (value v) or a later one."""
        if key.startswith(b"d"):
            # put once, deleted at most once: a later commit on it can only be its delete
            return got is None if v is None else got in (v, None)
        return got is not None and index_of(got) >= i

    def check(self, db):
        """Every reported commit is visible (the caller ran db.catch_up() after the reports)."""
        for key, (i, v) in self.last.items():
            got = db.get(key)
            assert self.shows(key, got, i, v), f"{key!r}: commit {i} ({v!r:.20}) reported, follower reads {got!r:.20}"

    def exact(self):
        return {k: v for k, (i, v) in self.last.items() if v is not None}


def lag_report(lags, commits, seconds, setting):
    lags = sorted(lags)
    median = statistics.median(lags)
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    print(f"\nLSM follower lag ({setting}) over {len(lags)} polled commits (the primary committing {commits / seconds:,.0f}/s): "
          f"median {median * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms, max {lags[-1] * 1e3:.3f} ms")
    return median, p99


# -- tests --------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["small", pytest.param("defaults", marks=pytest.mark.long_only)])
def test_follower_sees_acknowledged_commits_and_lag(db_path, primaries, setting):
    """`small`: 32 KiB memtables and tables, so the run flushes and compacts all along;
    `defaults` (--long): kvdb's default options, 200,000 commits."""
    ops = 60000 if setting == "small" else 200000
    p = primaries(primary_main, db_path, ops, 7, True, OPTS if setting == "small" else dict(engine="lsm", sync="normal"))
    assert p.recv() == ("ready",)
    db = kvdb.open(db_path, readonly=True)
    model = Model()
    lags = []
    snaps = []                   # (snapshot, what it showed when taken)
    done = None
    cycles = 0
    first = last = None          # monotonic times of the first and last commit reported
    while done is None:
        while p.conn.poll():
            msg = p.recv()
            if msg[0] == "done":
                done = msg[1]
                break
            model.take(msg)
        if done is not None:
            break
        cycles += 1
        if cycles % 40 == 0:
            db.catch_up()        # every commit reported so far was acknowledged before this began
            model.check(db)
            if len(snaps) < 4:
                s = db.snapshot()
                snaps.append((s, dump(s)))
            for s, seen in snaps:
                assert dump(s) == seen, "a snapshot changed while the primary flushed and compacted"
                assert len(s) == len(seen), "a snapshot's count of keys (L4) is not its scan's"
            with db.snapshot() as s:
                assert len(s) == len(dump(s)), "the follower's count of keys (L4) is not its scan's"
            db.catch_up()        # what the primary committed during the checks is not part of a lag
            continue
        msg = p.recv()           # a fresh report: poll the follower until it shows its last commit
        if msg[0] == "done":
            done = msg[1]
            break
        i, key, v, t0 = model.take(msg)
        first = t0 if first is None else first
        last = t0
        while not model.shows(key, db.get(key), i, v):
            assert time.monotonic() - t0 < LAG_BOUND, f"commit {i} not seen after {LAG_BOUND} s"
        lags.append(time.monotonic() - t0)
    if setting == "small":
        assert done["flushes"] >= 10 and done["compactions"] >= 1, done   # the run did flush and compact
    db.catch_up()
    assert db.seq == done["seq"]
    assert dump(db) == model.exact()
    for s, seen in snaps:
        assert dump(s) == seen
        s.close()
    p.conn.send(("close",))
    assert p.recv() == ("closed",)
    p.proc.join(30)
    assert dump(db) == model.exact()          # after the primary's close (its last flush)
    assert len(db) == len(model.exact()) and db.stats()["entries"] == len(db)
    db.verify()
    db.close()
    median, p99 = lag_report(lags, ops, last - first, setting)
    assert len(lags) >= 20 and p99 < LAG_BOUND


def test_follower_survives_kill_9_and_follows_the_next_primary(db_path, primaries):
    p = primaries(primary_main, db_path, 6000, 11, False)
    assert p.recv() == ("ready",)
    db = kvdb.open(db_path, readonly=True)
    model = Model()
    while len(model.last) < 1500:
        model.take(p.recv())
    os.kill(p.proc.pid, signal.SIGKILL)
    p.proc.join(10)
    while True:                  # reports sent before the kill
        try:
            msg = p.conn.recv()
        except EOFError:
            break
        if msg[0] != "done":
            model.take(msg)
    db.catch_up()
    model.check(db)
    before = db.seq
    # A new primary recovers the logs, starts a new manifest and deletes the old files.
    q = primaries(idle_primary, db_path)
    assert q.recv() == ("ready",)
    assert db.get(b"held") == b"by the primary"
    assert db.seq > before
    model.check(db)
    q.conn.send(("close",))
    assert q.recv() == ("closed",)
    assert db.get(b"held") == b"by the primary"
    db.close()


def test_follower_open_of_a_missing_database_creates_nothing(tmp_path):
    missing = tmp_path / "missing"
    for engine in (None, "lsm"):
        with pytest.raises(FileNotFoundError):
            kvdb.open(str(missing), readonly=True, engine=engine)
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError):
        kvdb.open(str(empty), readonly=True, engine="lsm")
    assert os.listdir(empty) == []


def test_follower_refuses_writes_and_a_second_primary_is_locked(db_path, primaries):
    p = primaries(idle_primary, db_path)
    assert p.recv() == ("ready",)
    names = sorted(os.listdir(db_path))
    with kvdb.open(db_path, readonly=True) as db:
        assert db.get(b"held") == b"by the primary"
        for write in (lambda: db.put(b"x", b"y"), lambda: db.delete(b"held"), lambda: db.transaction(),
                      lambda: db.checkpoint(), lambda: db.compact()):
            with pytest.raises(kvdb.ReadOnlyError):
                write()
        for engine in (None, "lsm"):
            with pytest.raises(kvdb.LockedError):
                kvdb.open(db_path, engine=engine)
        assert db.get(b"held") == b"by the primary"
    assert sorted(os.listdir(db_path)) == names        # the follower wrote nothing
    p.conn.send(("close",))
    assert p.recv() == ("closed",)


# -- one process: the primary and the follower side by side (same rules, easier to damage) --


def small_primary(path):
    return kvdb.open(path, **OPTS)


def test_follower_reads_after_tables_it_never_saw_were_deleted(db_path):
    w = small_primary(db_path)
    w.put(b"first", b"1")
    r = kvdb.open(db_path, readonly=True)
    assert r.get(b"first") == b"1"
    model = {b"first": b"1"}
    seen_tables = set(n for n in os.listdir(db_path) if n.endswith(".sst"))
    with r.snapshot() as snap:
        it = r.scan()            # an iterator over the version before the compactions
        for round_ in range(3):
            for i in range(3000):
                k = b"k%05d" % (i * 7 % 2000)
                model[k] = value(round_ * 10000 + i)
                w.put(k, model[k])
            w.compact()          # tables added and dropped, files deleted, none read by the follower
        gone = seen_tables - set(os.listdir(db_path))
        assert dump(r) == model
        assert snap.get(b"first") == b"1" and snap.get(b"k00000") is None
        assert dict(it) == {b"first": b"1"}
    r.verify()
    del gone
    w.close()
    assert dump(r) == model
    r.close()


def test_follower_snapshot_keeps_versions_the_primary_merged_away(db_path):
    w = small_primary(db_path)
    old = {b"k%05d" % i: value(i) for i in range(2000)}
    for k, v in old.items():
        w.put(k, v)
    r = kvdb.open(db_path, readonly=True)
    snap = r.snapshot()
    new = {k: value(50000 + i) for i, k in enumerate(old)}
    for k, v in new.items():
        w.put(k, v)
    for k in list(old)[:500]:
        w.delete(k)
    w.compact()                  # the primary has no pin: the old versions are dropped
    assert dump(snap) == old
    assert all(snap.get(k) == v for k, v in list(old.items())[::97])
    want = {k: v for k, v in new.items() if k not in set(list(old)[:500])}
    assert dump(r) == want
    snap.close()
    w.close()
    r.close()


def test_a_record_being_written_is_not_damage(db_path):
    w = kvdb.open(db_path, engine="lsm", sync="full")
    w.put(b"a", b"1")
    r = kvdb.open(db_path, readonly=True)
    assert r.get(b"a") == b"1"
    logs = sorted(n for n in os.listdir(db_path) if n.startswith("wal-"))
    log = os.path.join(db_path, logs[-1])
    start = os.path.getsize(log)
    w.put(b"b", b"2" * 200)
    whole = open(log, "rb").read()
    with open(log, "r+b") as f:  # as if the primary were half-way through writing the record
        f.truncate(start + (len(whole) - start) // 2)
    assert r.get(b"b") is None and r.get(b"a") == b"1"
    with open(log, "r+b") as f:
        f.write(whole)
    assert r.get(b"b") == b"2" * 200
    assert r.stats()["recovery"] is None
    w.close()
    r.close()


def test_follower_meeting_a_damaged_table_names_it(db_path):
    w = small_primary(db_path)
    w.put(b"a", b"1")
    r = kvdb.open(db_path, readonly=True)
    assert r.get(b"a") == b"1"
    before = set(n for n in os.listdir(db_path) if n.endswith(".sst"))
    for i in range(200):
        w.put(b"k%04d" % i, value(i))
    w.checkpoint()               # a new level-0 table the follower has not opened
    new = sorted(set(n for n in os.listdir(db_path) if n.endswith(".sst")) - before)
    assert new
    path = os.path.join(db_path, new[-1])
    with open(path, "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"XXXX")         # the footer's magic
    with pytest.raises(kvdb.CorruptionError) as e:
        r.get(b"a")
    assert e.value.path == path
    r.close()
    w.close()


def test_follower_meeting_a_damaged_manifest_record_names_it(db_path):
    w = small_primary(db_path)
    w.put(b"a", b"1")
    r = kvdb.open(db_path, readonly=True)
    assert r.get(b"a") == b"1"
    manifest = os.path.join(db_path, open(os.path.join(db_path, "CURRENT")).read().strip())
    size = os.path.getsize(manifest)
    for i in range(200):
        w.put(b"k%04d" % i, value(i))
    w.checkpoint()               # appends edits (a new log, a flush) the follower has not read
    assert os.path.getsize(manifest) > size + 16
    with open(manifest, "r+b") as f:
        f.seek(size + 8)         # the first unread record's payload, with records after it
        b = f.read(1)
        f.seek(size + 8)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(kvdb.CorruptionError) as e:
        r.get(b"a")
    assert e.value.path == manifest and e.value.offset == size
    r.close()
    w.close()


def test_follower_meeting_a_damaged_log_record_names_it(db_path):
    w = kvdb.open(db_path, engine="lsm", sync="full")
    w.put(b"a", b"1")
    r = kvdb.open(db_path, readonly=True)
    assert r.get(b"a") == b"1"
    log = os.path.join(db_path, sorted(n for n in os.listdir(db_path) if n.startswith("wal-"))[-1])
    start = os.path.getsize(log)
    w.put(b"b", b"2" * 100)
    w.put(b"c", b"3")            # a whole record after the damaged one: not a record being written
    with open(log, "r+b") as f:
        f.seek(start + 40)
        b = f.read(1)
        f.seek(start + 40)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(kvdb.CorruptionError) as e:
        r.get(b"a")
    assert e.value.path == log and e.value.offset == start
    r.close()
    w.close()


class ManifestPrefixFS(OsFS):
    """The real file system, except that the manifest reads as a copy holding only its first
    `cut` bytes until the follower tries to open the table `gone`; the copy then gets the rest
    (the later edit that drops the table arrives while the follower looks for it)."""

    def __init__(self, manifest, cut, copy, gone, deliver=True):
        self.manifest, self.copy, self.gone, self.deliver = manifest, copy, gone, deliver
        with open(manifest, "rb") as src, open(copy, "wb") as dst:
            self.rest = src.read()
            dst.write(self.rest[:cut])
        self.rest = self.rest[cut:]
        self.asked = 0

    def open_read(self, path):
        if path == self.manifest:
            return OsFS.open_read(self, self.copy)
        if path == self.gone:
            self.asked += 1
            if self.deliver and self.rest:
                with open(self.copy, "ab") as dst:
                    dst.write(self.rest)
                self.rest = b""
        return OsFS.open_read(self, path)


@pytest.mark.parametrize("deliver", [True, False])
def test_a_listed_table_already_deleted(db_path, tmp_path, deliver):
    """The follower reads an edit adding a table, which a later edit (not read yet) drops and
    the primary deleted: it reads on, and raises CorruptionError naming the table only when
    no later edit comes."""
    w = small_primary(db_path)
    for i in range(300):
        w.put(b"k%04d" % (i * 7 % 300), value(i))   # out of key order: the tables overlap, so the
    w.checkpoint()                                   # compaction rewrites them (no trivial move)
    manifest = os.path.join(db_path, open(os.path.join(db_path, "CURRENT")).read().strip())
    cut = os.path.getsize(manifest)              # the edits up to here list the new tables
    tables = set(n for n in os.listdir(db_path) if n.endswith(".sst"))
    w.compact()                                   # drops and deletes them
    gone = sorted(tables - set(os.listdir(db_path)))
    assert gone
    fs = ManifestPrefixFS(manifest, cut, str(tmp_path / "manifest-copy"), os.path.join(db_path, gone[0]),
                          deliver)
    if deliver:
        with kvdb.open(db_path, readonly=True, _fs=fs) as r:
            assert fs.asked == 1
            assert dump(r) == dump(w)
    else:
        with pytest.raises(kvdb.CorruptionError) as e:
            kvdb.open(db_path, readonly=True, _fs=fs)
        assert e.value.path == os.path.join(db_path, gone[0]) and "missing" in str(e.value)
    w.close()


# -- a model: the primary and a follower in one process, against one dict ----------------

from hypothesis import settings as hyp_settings, strategies as st                     # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule  # noqa: E402

TINY = dict(engine="lsm", cache_size=16 << 10, memtable_size=2 << 10, sstable_size=2 << 10, level1_size=8 << 10)
model_keys = st.binary(min_size=1, max_size=3).map(lambda b: bytes(b"ab\x00\xff"[x % 4] for x in b))


class FollowerMachine(RuleBasedStateMachine):
    """Writes through the primary; every read through the follower must show the model (the
    commit returned before the read began), its snapshots what the model held when they were
    taken, through flushes, compactions, and the primary's close and reopen."""

    def __init__(self):
        super().__init__()
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="kvdb-follower-")
        self.path = os.path.join(self.dir, "db")
        self.w = kvdb.open(self.path, **TINY)
        self.r = kvdb.open(self.path, readonly=True)
        self.model = {}
        self.snaps = []
        self.n = 0

    @rule(k=model_keys, size=st.sampled_from([1, 40, 300]))
    def put(self, k, size):
        self.n += 1
        v = b"%d|" % self.n + b"v" * size
        self.w.put(k, v)
        self.model[k] = v

    @rule(k=model_keys)
    def delete(self, k):
        self.w.delete(k)
        self.model.pop(k, None)

    @rule(data=st.data())
    def batch(self, data):
        ops = data.draw(st.lists(st.tuples(model_keys, st.booleans()), min_size=1, max_size=8))
        with self.w.transaction() as tx:
            for k, put in ops:
                self.n += 1
                if put:
                    tx.put(k, b"%d" % self.n)
                    self.model[k] = b"%d" % self.n
                else:
                    tx.delete(k)
                    self.model.pop(k, None)

    @rule()
    def checkpoint(self):
        self.w.checkpoint()

    @rule()
    def compact(self):
        self.w.compact()

    @rule()
    def reopen_primary(self):
        self.w.close()
        self.w = kvdb.open(self.path, **TINY)

    @rule()
    def reopen_follower(self):
        self.r.close()
        self.r = kvdb.open(self.path, readonly=True)
        self.snaps = []

    @precondition(lambda self: len(self.snaps) < 3)
    @rule()
    def snapshot(self):
        self.snaps.append((self.r.snapshot(), dict(self.model)))

    @precondition(lambda self: self.snaps)
    @rule()
    def release_snapshot(self):
        s, _ = self.snaps.pop(0)
        s.close()

    @rule(k=model_keys)
    def get(self, k):
        assert self.r.get(k) == self.model.get(k)

    @invariant()
    def follows(self):
        assert dump(self.r) == self.model
        for s, seen in self.snaps:
            assert dump(s) == seen

    def teardown(self):
        import shutil
        for s, _ in self.snaps:
            s.close()
        self.r.close()
        self.w.close()
        shutil.rmtree(self.dir, ignore_errors=True)


TestFollowerMachine = FollowerMachine.TestCase
TestFollowerMachine.settings = hyp_settings(max_examples=400 if helpers.LONG else 60, stateful_step_count=40,
                                            deadline=None)


def primary_server(path, conn, opts):
    """The primary of TwoProcessMachine: runs each command it receives and replies ("ok",)
    once it returned: ("put", k, v), ("delete", k), ("batch", [(k, v or None)]),
    ("checkpoint",), ("compact",), ("reopen",); ("close",) closes and ends."""
    db = kvdb.open(path, **opts)
    conn.send(("ok",))
    while True:
        cmd = conn.recv()
        if cmd[0] == "put":
            db.put(cmd[1], cmd[2])
        elif cmd[0] == "delete":
            db.delete(cmd[1])
        elif cmd[0] == "batch":
            with db.transaction() as tx:
                for k, v in cmd[1]:
                    if v is None:
                        tx.delete(k)
                    else:
                        tx.put(k, v)
        elif cmd[0] == "checkpoint":
            db.checkpoint()
        elif cmd[0] == "compact":
            db.compact()
        elif cmd[0] == "reopen":
            db.close()
            db = kvdb.open(path, **opts)
        elif cmd[0] == "close":
            db.close()
            conn.send(("ok",))
            return
        conn.send(("ok",))


class TwoProcessMachine(FollowerMachine):
    """FollowerMachine with the primary in another process: each write is a command it runs
    and acknowledges; the follower here must show it on its next read."""

    def __init__(self):
        RuleBasedStateMachine.__init__(self)
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="kvdb-follower2-")
        self.path = os.path.join(self.dir, "db")
        self.primary = Primary(primary_server, self.path, TINY)
        assert self.primary.recv() == ("ok",)
        self.r = kvdb.open(self.path, readonly=True)
        self.model = {}
        self.snaps = []
        self.n = 0

    def ask(self, *cmd):
        self.primary.conn.send(cmd)
        assert self.primary.recv() == ("ok",)

    @rule(k=model_keys, size=st.sampled_from([1, 40, 300]))
    def put(self, k, size):
        self.n += 1
        v = b"%d|" % self.n + b"v" * size
        self.ask("put", k, v)
        self.model[k] = v

    @rule(k=model_keys)
    def delete(self, k):
        self.ask("delete", k)
        self.model.pop(k, None)

    @rule(data=st.data())
    def batch(self, data):
        ops = []
        for k, put in data.draw(st.lists(st.tuples(model_keys, st.booleans()), min_size=1, max_size=8)):
            self.n += 1
            ops.append((k, b"%d" % self.n if put else None))
        self.ask("batch", ops)
        for k, v in ops:
            if v is None:
                self.model.pop(k, None)
            else:
                self.model[k] = v

    @rule()
    def checkpoint(self):
        self.ask("checkpoint")

    @rule()
    def compact(self):
        self.ask("compact")

    @rule()
    def reopen_primary(self):
        self.ask("reopen")

    def teardown(self):
        import shutil
        try:
            for s, _ in self.snaps:
                s.close()
            self.r.close()
            self.ask("close")
        finally:
            self.primary.stop()
            shutil.rmtree(self.dir, ignore_errors=True)


TestTwoProcessMachine = TwoProcessMachine.TestCase
TestTwoProcessMachine.settings = hyp_settings(max_examples=150 if helpers.LONG else 15, stateful_step_count=40,
                                              deadline=None)


def test_M3_every_new_log_is_announced_before_its_first_commit(db_path):
    """M3 (lsm/manifest.pxd): each log file the primary starts (at open and at every memtable
    switch) is announced by a manifest edit before any commit goes into it, so a follower that
    lists the directory only when the manifest grew finds every log."""
    header = 32                  # WAL_HEADER_SIZE (docs/format/wal.md)

    def look():
        manifest = os.path.join(db_path, open(os.path.join(db_path, "CURRENT")).read().strip())
        logs = {}
        for n in os.listdir(db_path):
            if n.startswith("wal-"):
                try:
                    logs[n] = os.path.getsize(os.path.join(db_path, n))
                except FileNotFoundError:
                    pass             # a flushed log the background thread deleted after listdir
        return manifest, os.path.getsize(manifest), logs

    w = small_primary(db_path)
    manifest, size, logs = look()
    assert list(logs.values()) == [header]          # the open's log, announced, empty
    starts = 1
    for i in range(3000):
        w.put(b"k%05d" % (i * 7 % 1000), value(i))
        now_manifest, now_size, now_logs = look()
        new = set(now_logs) - set(logs)
        if new:
            starts += len(new)
            assert now_manifest == manifest and now_size > size, f"{sorted(new)} started, the manifest did not grow"
            assert all(now_logs[n] == header for n in new), "a commit went into a log before it was announced"
        manifest, size, logs = now_manifest, now_size, now_logs
    assert starts >= 10
    w.close()
