"""The command line on a live database (issue 15, item 5): `kvdb check`, `stats`, `get`,
`scan`, `dump`, `backup` (and `collections`, `find`, `index` listing) work while another
process has the database open and is writing it -- `kvdb serve`, or a plain program -- on both engines. The backup opens and holds every
key acknowledged before it started. `kvdb compact`, which rewrites the files, fails with a
one-line `locked` error and changes nothing.
"""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

import kvdb
from tests.cli.test_cli import REPO, assert_one_line_error, err, out, run_cli
from tests.serverutil import ServerProcess, _die_with_parent

ENGINES = ["btree", "lsm"]
HOLDERS = ["writer", "serve"]
INITIAL = 2000            # keys written before the tools run

# A program that has the database open: writes INITIAL keys, says READY, then commits one
# key per transaction (live:N) and says "ACK N" after each commit returns, until told PAUSE
# (stops writing, keeps the database open; says PAUSED) or until stdin closes (closes it).
WRITER = r"""
import sys, threading, kvdb
path, engine = sys.argv[1], sys.argv[2]
# small limits: checkpoints (B+Tree), flushes and compactions (LSM) run all the time
small = dict(memtable_size=32 << 10, sstable_size=32 << 10) if engine == "lsm" else dict(checkpoint_size=64 << 10)
db = kvdb.open(path, engine=engine, sync="normal", **small)
with db.transaction() as tx:
    for i in range(%d):
        tx.put(b"k%%05d" %% i, b"v%%d" %% i)
paused, done = threading.Event(), threading.Event()
def commands():
    for line in sys.stdin:
        if line.strip() == "PAUSE":
            paused.set()
    done.set()
threading.Thread(target=commands, daemon=True).start()
print("READY", flush=True)
n = 0
while not done.is_set():
    if paused.is_set():
        print("PAUSED", flush=True)
        done.wait()
        break
    db.put(b"live:%%08d" %% n, b"x" * 100)
    print("ACK %%d" %% n, flush=True)
    n += 1
db.close()
""" % INITIAL


class Writer:
    """The plain program holding the database (WRITER), run as a subprocess."""

    def __init__(self, path, engine):
        self.path, self.engine = path, engine
        self.acked = -1           # the highest live:N whose commit returned
        self.lines = []
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), engine], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, PYTHONPATH=REPO), text=True,
                                     preexec_fn=_die_with_parent)
        self.ready, self.paused = threading.Event(), threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        assert self.ready.wait(60), f"the writer did not start: {self.proc.stderr.read()}"

    def _read(self):
        for line in self.proc.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "ACK":
                self.acked = int(rest)
            elif word == "READY":
                self.ready.set()
            elif word == "PAUSED":
                self.paused.set()

    def acknowledged(self):
        """Every key whose commit had returned by now."""
        last = self.acked
        keys = {b"k%05d" % i: b"v%d" % i for i in range(INITIAL)}
        keys.update((b"live:%08d" % n, b"x" * 100) for n in range(last + 1))
        return keys

    def wait_for(self, commits):
        deadline = time.monotonic() + 30
        while self.acked < commits:
            assert time.monotonic() < deadline and self.proc.poll() is None, "the writer stopped writing"
            time.sleep(0.01)

    def pause(self):
        self.proc.stdin.write("PAUSE\n")
        self.proc.stdin.flush()
        assert self.paused.wait(30), "the writer did not pause"

    def stop(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Served:
    """`kvdb serve` holding the database, with a client thread writing to it."""

    def __init__(self, tmp_path, path, engine):
        self.engine = engine
        self.srv = ServerProcess(tmp_path, "--engine", engine, "--sync", "normal", data=path).start()
        self.r = self.srv.client()
        for i in range(0, INITIAL, 500):
            self.r.mset({b"k%05d" % j: b"v%d" % j for j in range(i, i + 500)})
        self.acked = -1
        self.stopping = threading.Event()
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.writer.start()

    def _write(self):
        w = self.srv.client()
        n = 0
        while not self.stopping.is_set():
            w.set(b"live:%08d" % n, b"x" * 100)
            self.acked = n
            n += 1

    def acknowledged(self):
        last = self.acked
        keys = {b"k%05d" % i: b"v%d" % i for i in range(INITIAL)}
        keys.update((b"live:%08d" % n, b"x" * 100) for n in range(last + 1))
        return keys

    def wait_for(self, commits):
        deadline = time.monotonic() + 30
        while self.acked < commits:
            assert time.monotonic() < deadline and self.writer.is_alive(), "the client stopped writing"
            time.sleep(0.01)

    def pause(self):
        self.stopping.set()
        self.writer.join(30)

    def stop(self):
        self.pause()
        return self.srv.stop()


def meta_key_hex(name):
    """The server's record of string key `name` in logical database 0 (docs/format/server-keys.md),
    as the command line's 0x hex."""
    from kvdb.server.keyspace import meta_key
    return "0x" + meta_key(0, name).hex()


def stored(db, holder, key):
    """The value of `key` as the holder wrote it, read from the database's files."""
    if holder == "writer":
        return db.get(key)
    from kvdb.server.keyspace import decode_entry, meta_key
    entry = decode_entry(db.get(meta_key(0, key)))
    return None if entry is None else entry.body


def files(path):
    """{name: (bytes, mtime_ns)} of every file in the directory."""
    found = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            try:
                with open(full, "rb") as f:
                    found[name] = (f.read(), os.fstat(f.fileno()).st_mtime_ns)
            except FileNotFoundError:
                found[name] = None       # removed while listed (a flushed LSM log): still changing
    return found


def settled(path, quiet=3.5, limit=60):
    """The directory's files once they have stayed the same for `quiet` seconds (the holder's
    background work after its last write: a flush, a compaction). The background thread wakes
    once a second (NORMAL_SYNC_INTERVAL) and may do one piece of work per wake, and on a loaded
    machine a wake can come late: a quiet second is not enough to know it has finished (a CI
    run saw a checkpoint land after one), so wait through several wakes."""
    deadline = time.monotonic() + limit
    before = files(path)
    while True:
        time.sleep(quiet)
        now = files(path)
        if now == before:
            return now
        assert time.monotonic() < deadline, "the database directory never settled"
        before = now


@pytest.fixture(params=[(h, e) for h in HOLDERS for e in ENGINES], ids=lambda p: f"{p[0]}-{p[1]}")
def live(request, tmp_path):
    holder, engine = request.param
    path = tmp_path / "db"
    h = Writer(path, engine) if holder == "writer" else Served(tmp_path, path, engine)
    h.kind, h.path, h.engine = holder, path, engine
    try:
        h.wait_for(50)
        yield h
    finally:
        h.stop()


def test_reading_tools_on_a_live_database(live, tmp_path):
    path = live.path
    for _ in range(3):      # while the holder checkpoints, flushes and compacts
        p = run_cli("check", path)
        assert p.returncode == 0, out(p) + err(p)
        assert out(p).rstrip().endswith(f"{path}: ok"), out(p)
        assert "problem" not in out(p)

    p = run_cli("stats", path, "--json")
    assert p.returncode == 0, err(p)
    stats = json.loads(out(p))
    assert stats["engine"] == live.engine and stats["readonly"] is True

    key = b"k00007"
    if live.kind == "writer":
        p = run_cli("get", path, "k00007")
        assert p.returncode == 0 and out(p) == "v7\n", err(p)
        p = run_cli("scan", path, "--prefix", "k", "--limit", "3")
        assert out(p).splitlines() == ["k00000\tv0", "k00001\tv1", "k00002\tv2"], err(p)
    else:   # the server's records: the value follows the type byte and the expiry
        p = run_cli("get", path, meta_key_hex(key), "--hex")
        assert p.returncode == 0 and out(p).strip().endswith(b"v7".hex()), err(p)
        p = run_cli("scan", path, "--prefix", meta_key_hex(b"k0000"), "--keys-only", "--hex")
        assert p.returncode == 0, err(p)
        assert out(p).split() == [meta_key_hex(b"k%05d" % i)[2:] for i in range(10)]

    for cmd in (["collections", path], ["find", path, "people"], ["index", path, "people"]):
        p = run_cli(*cmd)
        assert p.returncode == 0, (cmd, err(p))

    dump = tmp_path / "live.jsonl"
    p = run_cli("dump", path, "-o", dump)
    assert p.returncode == 0, err(p)
    with open(dump) as f:
        assert sum(1 for _ in f) >= INITIAL
    assert live.acked >= 0


def test_backup_of_a_live_database_holds_every_acknowledged_key(live, tmp_path):
    live.wait_for(live.acked + 20)            # the holder is writing right now
    expected = live.acknowledged()            # before the backup starts
    dest = tmp_path / "copy"
    p = run_cli("backup", live.path, dest)
    assert p.returncode == 0, err(p)
    assert "backed up" in err(p) and "verified" in err(p), err(p)
    after = live.acked
    with kvdb.open(str(dest), readonly=True) as db:
        assert db.engine == live.engine
        db.verify()
        missing = [k for k, v in expected.items() if stored(db, live.kind, k) != v]
        assert not missing, f"{len(missing)} acknowledged keys missing from the backup, e.g. {missing[:3]}"
    live.wait_for(after + 5)                  # the holder goes on writing after the backup


def test_compact_of_a_live_database_is_refused_and_changes_nothing(live, tmp_path):
    live.pause()                              # still open, no longer writing
    before = settled(live.path)
    inode = os.stat(live.path).st_ino
    p = run_cli("compact", live.path)
    assert_one_line_error(p, "locked")
    assert os.stat(live.path).st_ino == inode, "compact replaced the directory of a live database"
    after = files(live.path)
    changed = sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))
    assert not changed, f"compact changed files of a live database: {changed}"
    leftovers = [n for n in os.listdir(tmp_path) if ".compact" in n]
    assert not leftovers, leftovers
    if live.kind == "serve":                  # the holder still works
        assert live.r.get(b"k00001") == b"v1" and live.r.set(b"after-compact", b"1")
