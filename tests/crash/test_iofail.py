"""Failed writes and fsyncs: the caller gets IOFailureError, every later write is refused until
the database is reopened, reads keep working, and reopening recovers every acknowledged commit.

First with SimFS.fail_after (deterministic), then in a real process under fiu-run (libfiu's
POSIX preload) with random EIO from write/pwrite/... or fsync/fdatasync.
"""
import gc
import os
import shutil
import subprocess
import sys

import pytest

import kvdb
from tests.helpers import apply_ops, check_commit_state, child_env, dump, value, CHILD

try:
    from kvdb._core.file import SimFS, SimulatedCrash
except ImportError:  # pragma: no cover
    SimFS = SimulatedCrash = None

PATH = "/sim/db"
OPTIONS = dict(page_size=512, cache_size=16 << 10, checkpoint_size=4 << 10)
ENGINE_OPTIONS = {
    "btree": OPTIONS,
    # tiny memtables and tables: failures land in memtable switches, flushes, compactions
    "lsm": dict(engine="lsm", cache_size=16 << 10, memtable_size=4 << 10, sstable_size=4 << 10,
                level1_size=16 << 10),
}


@pytest.fixture
def _need_simfs():
    if SimFS is None:
        pytest.fail("kvdb._core.file.SimFS is missing")


def tx_ops(i):
    ops = [("put", b"m:%03d" % i, b"%d" % i),
           ("put", b"t:%03d" % i, value(i, [10, 700, 3000][i % 3])),
           ("put", b"shared", b"%d" % i)]
    if i >= 2:
        ops.append(("delete", b"t:%03d" % (i - 2)))
    return ops



def commit(db, ops):
    with db.transaction() as tx:
        for op in ops:
            tx.put(op[1], op[2]) if op[0] == "put" else tx.delete(op[1])


WRITES = {
    "put": lambda db: db.put(b"refused", b"1"),
    "setitem": lambda db: db.__setitem__(b"refused", b"1"),
    "delete": lambda db: db.delete(b"m:000"),
    "transaction": lambda db: commit(db, [("put", b"refused", b"2")]),
    "checkpoint": lambda db: db.checkpoint(),
}


def assert_writes_refused(db, context):
    for name, write in WRITES.items():
        with pytest.raises(kvdb.IOFailureError):
            write(db)
            pytest.fail(f"{context}: {name} after an I/O failure did not raise IOFailureError")


def close_after_failure(db):
    try:
        db.close()
    except kvdb.IOFailureError:
        pass  # allowed: close cannot checkpoint a database that refuses writes


@pytest.mark.usefixtures("_need_simfs")
@pytest.mark.parametrize("op", ["fsync", "write"])
def test_failure_in_commit(op, engine):
    fs = SimFS()
    db = kvdb.open(PATH, _fs=fs, sync="full", checkpoint_size=1 << 30, engine=engine)
    model = {}
    for i in range(5):
        commit(db, tx_ops(i))
        apply_ops(model, tx_ops(i))
    fs.fail_after(1, op=op)
    with pytest.raises(kvdb.IOFailureError) as ei:
        commit(db, tx_ops(5))
    assert str(ei.value), "the error should say what failed"
    assert_writes_refused(db, f"fail_after(1, {op!r})")
    # reads still work and show the acknowledged state (the failed commit: all or nothing)
    failed = dict(model)
    apply_ops(failed, tx_ops(5))
    got = dump(db)
    assert got in (model, failed)
    assert db.get(b"m:004") == b"4"
    with db.snapshot() as snap:
        assert dump(snap) == got
    close_after_failure(db)
    db = kvdb.open(PATH, _fs=fs, sync="full")
    try:
        assert dump(db) in (model, failed)
        db.verify()
        db.put(b"works", b"again")  # reopening cleared the failure
        assert db.get(b"works") == b"again"
    finally:
        db.close()


def run_with_failure(fs, op, n, n_txns=25, options=OPTIONS):
    """Commit n_txns transactions with fail_after(n, op) armed, then keep writing until the
    failure shows. Returns (db, model of acknowledged commits, ops in flight or None)."""
    db = kvdb.open(PATH, _fs=fs, sync="full", **options)
    fs.fail_after(n, op=op)
    model = {}
    i = 0
    for i in range(n_txns + 300):
        ops = tx_ops(i)
        try:
            commit(db, ops)
        except kvdb.IOFailureError:
            return db, model, ops, i
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"fail_after({n}, {op!r}): commit {i} raised {e!r}, not IOFailureError")
        apply_ops(model, ops)
        if i % 7 == 6:
            try:
                db.checkpoint()
            except kvdb.IOFailureError:
                return db, model, None, i
    pytest.fail(f"fail_after({n}, {op!r}): {i + 1} commits later no write had failed: "
                "the injected failure was swallowed")


@pytest.mark.usefixtures("_need_simfs")
@pytest.mark.parametrize("op", ["fsync", "write"])
def test_failure_sweep(op, long_mode, engine):
    points = range(1, 121) if long_mode else list(range(1, 12)) + list(range(12, 120, 9))
    for n in points:
        context = f"fail_after({n}, {op!r})"
        for crash in (False, True):
            fs = SimFS()
            db, model, in_flight, i = run_with_failure(fs, op, n, options=ENGINE_OPTIONS[engine])
            assert_writes_refused(db, context)
            failed = dict(model)
            if in_flight:
                apply_ops(failed, in_flight)
            got = dump(db)
            assert got in (model, failed), f"{context}: reads after the failure show wrong data"
            if crash:
                fs.crash_after(1)  # the dead db must not write after the power loss
                db = None
                gc.collect()
                fs.crash(n)
            else:
                close_after_failure(db)
                db = None
            db = kvdb.open(PATH, _fs=fs, sync="full", **ENGINE_OPTIONS[engine])
            try:
                got = dump(db)
                assert got in (model, failed), \
                    f"{context}{' + crash(' + str(n) + ')' if crash else ''}: acknowledged commits lost " \
                    f"(commit {i} failed)"
                db.verify()
            finally:
                db.close()


@pytest.mark.usefixtures("_need_simfs")
def test_failure_in_background_checkpoint_is_sticky():
    """With sync="off" the only fsyncs are the checkpoints', which run in the background: a
    failed one must still make every later write fail (no silent loss), and reopening must
    recover every acknowledged commit."""
    fs = SimFS()
    db = kvdb.open(PATH, _fs=fs, sync="off", page_size=512, checkpoint_size=4 << 10)
    model = {}
    failed_at = None
    for i in range(2000):
        if i == 20:
            fs.fail_after(1, op="fsync")
        try:
            commit(db, tx_ops(i))
        except kvdb.IOFailureError:
            failed_at = i
            break
        apply_ops(model, tx_ops(i))
    assert failed_at is not None, "a failed checkpoint fsync was swallowed: writes never failed"
    assert_writes_refused(db, "after a failed checkpoint")
    failed = dict(model)
    apply_ops(failed, tx_ops(failed_at))
    assert dump(db) in (model, failed)
    close_after_failure(db)
    db = kvdb.open(PATH, _fs=fs)
    try:
        assert dump(db) in (model, failed)
        db.verify()
    finally:
        db.close()


@pytest.mark.usefixtures("_need_simfs")
@pytest.mark.parametrize("op", ["fsync", "write"])
def test_failure_during_recovery(op, long_mode):
    """An I/O failure while open() recovers the WAL: open raises a kvdb.Error (not a bare
    OSError) or opens a database that refuses writes; a later open recovers everything."""
    def make():
        fs = SimFS()
        db = kvdb.open(PATH, _fs=fs, sync="full", checkpoint_size=1 << 30, **{
            k: v for k, v in OPTIONS.items() if k != "checkpoint_size"})
        model = {}
        for i in range(8):
            commit(db, tx_ops(i))
            apply_ops(model, tx_ops(i))
        fs.crash_after(1)  # lose power with the commits only in the WAL
        try:
            db.put(b"x", b"never acknowledged")
        except (SimulatedCrash, kvdb.Error):
            pass
        return fs, model

    fs, model = make()
    gc.collect()
    fs.crash(0)
    before = fs.io_calls
    kvdb.open(PATH, _fs=fs).close()
    budget = fs.io_calls - before  # I/O calls of one recovery (an upper bound for op calls)
    for n in range(1, budget + 1 if long_mode else min(budget, 25) + 1):
        context = f"fail_after({n}, {op!r}) during recovery"
        fs, model = make()
        gc.collect()
        fs.crash(0)
        fs.fail_after(n, op=op)
        try:
            db = kvdb.open(PATH, _fs=fs)
        except kvdb.Error:
            pass
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{context}: open() raised {e!r}, not a kvdb.Error")
        else:
            try:
                assert dump(db) == model, f"{context}: recovered state differs"
                try:
                    db.put(b"probe", b"1")
                    wrote = True
                except kvdb.IOFailureError:
                    wrote = False
            finally:
                close_after_failure(db)
            if wrote:
                model[b"probe"] = b"1"
        fs.fail_after(10 ** 9, op=op)  # disarm a failure that open() did not reach
        with kvdb.open(PATH, _fs=fs) as db:
            got = dump(db)
            if b"probe" not in model:  # the probe put failed: it may or may not have landed
                got.pop(b"probe", None)
            assert got == model, f"{context}: acknowledged commits lost"
            db.verify()


# -- real process under libfiu ------------------------------------------------

FIU = shutil.which("fiu-run")


def run_fiu_child(db_path, failpoint, probability, max_commits=300):
    cmd = ["fiu-run", "-x", "-c", f"enable_random name={failpoint},probability={probability}",
           sys.executable, CHILD, "commits", db_path, str(max_commits), str(16 << 10)]
    p = subprocess.run(cmd, env=child_env(), capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace").splitlines(), \
        p.stderr.decode(errors="replace")


@pytest.mark.skipif(FIU is None, reason="fiu-run not on PATH (Debian package fiu-utils)")
@pytest.mark.parametrize("failpoint,probability", [
    ("posix/io/sync/*", 0.05),
    ("posix/io/rw/*", 0.02),
])
def test_fiu_random_failures(db_path, failpoint, probability, long_mode):
    rounds = 20 if long_mode else 3
    sticky_checked = 0
    failures_seen = 0
    last = -1
    for r in range(rounds):
        context = f"round {r} under {failpoint} p={probability}"
        # Reads fail at random from the interpreter's start, its imports included: only about 15%
        # of children get through `import kvdb` under posix/io/rw/* at p=0.02, so 30 attempts
        # all failed about once in 130 rounds (a CI run saw it); 200 make that negligible, and
        # an attempt that fails in the interpreter takes about 50 ms.
        for _attempt in range(200):
            code, lines, err = run_fiu_child(db_path, failpoint, probability)
            if lines and lines[0] == "READY":
                break
            if lines and lines[0].startswith("OPENX "):
                pytest.fail(f"{context}: open() raised a non-kvdb exception under injected failures: "
                            f"{lines[0]}\n{err[-3000:]}")
            # the interpreter failed (reading its own modules) or open() raised a kvdb.Error: retry
        else:
            pytest.fail(f"{context}: the child never got past open(): {lines} {err[-2000:]}")
        acked = last
        for line in lines[1:]:
            if line.startswith("C "):
                acked = int(line.split()[1])
            elif line.startswith("X "):
                pytest.fail(f"{context}: a db call raised a non-kvdb exception: {line}\n{err[-3000:]}")
            elif line.startswith("E "):
                failures_seen += 1
                if failpoint.startswith("posix/io/sync"):
                    assert line.split()[1] == "IOFailureError", f"{context}: {line}"
            elif line.startswith("W2 ") and failpoint.startswith("posix/io/sync"):
                pytest.fail(f"{context}: a write succeeded after a failed fsync (not sticky)")
            elif line.startswith("E2 "):
                sticky_checked += 1
                assert line.split()[1] == "IOFailureError", f"{context}: {line}"
            elif line.startswith("R "):
                assert int(line.split()[1]) in (acked, acked + 1), f"{context}: read after failure: {line}"
        assert code == 0, f"{context}: child exit code {code}: {err[-2000:]}"
        with kvdb.open(db_path, sync="full") as db:
            n = check_commit_state(db, context)
            assert acked <= n <= acked + 1, \
                f"{context}: last acknowledged commit {acked}, database holds {n}"
            db.verify()
        last = n
    assert failures_seen, "no injected failure reached kvdb in any round"
    if failpoint.startswith("posix/io/sync"):
        assert sticky_checked, "the retry after a failure was never observed"


@pytest.mark.skipif(FIU is None, reason="fiu-run not on PATH (Debian package fiu-utils)")
@pytest.mark.parametrize("failpoint", ["posix/io/rw/pread", "posix/io/rw/pwrite", "posix/io/rw/ftruncate",
                                       "posix/io/rw/write", "posix/io/sync/fsync",
                                       "posix/io/sync/fdatasync"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-db", "existing-db"])
def test_fiu_open_failure_is_a_kvdb_error(tmp_path, failpoint, existing):
    """Every call of one I/O function fails: open() (and the first put) may fail, but only with
    a kvdb.Error - never a bare OSError - and the database is intact afterwards."""
    path = str(tmp_path / "db")
    if existing:
        r = subprocess.run([sys.executable, CHILD, "commits", path, "20", str(1 << 30)],
                           env=child_env(), capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
    p = subprocess.run(["fiu-run", "-x", "-c", f"enable name={failpoint}",
                        sys.executable, CHILD, "openprobe", path],
                       env=child_env(), capture_output=True, timeout=60)
    assert p.returncode in (0, 4), \
        f"under {failpoint}: exit code {p.returncode} (6 = open/put raised a non-kvdb exception)"
    with kvdb.open(path) as db:
        db.delete(b"probe")
        if existing:
            check_commit_state(db, failpoint)
        db.verify()


@pytest.mark.usefixtures("_need_simfs")
@pytest.mark.parametrize("with_transaction", [False, True])
def test_failed_database_dropped_unclosed_in_a_cycle(engine, with_transaction):
    # A commit that fails inside a function leaves a cycle: the exception's traceback holds the
    # function's frame, the frame holds the database (and the transaction). The collector then
    # frees the database with its pager/WAL/engine possibly already cleared; this used to crash
    # the interpreter. The lock must still be let go, so the database reopens in this process.
    fs = SimFS()

    def work():
        db = kvdb.open(PATH, _fs=fs, sync="full", **ENGINE_OPTIONS[engine])
        commit(db, tx_ops(0))
        fs.fail_after(1, op="fsync")
        if with_transaction:
            commit(db, tx_ops(1))
        else:
            db.put(b"single", b"put")

    with pytest.raises(kvdb.IOFailureError) as ei:
        work()
    kept = [ei.value]
    kept.append(kept)                      # the exception (and the database) only in a cycle now
    del ei, kept
    gc.collect()
    db = kvdb.open(PATH, _fs=fs, sync="full", **ENGINE_OPTIONS[engine])
    try:
        assert db.get(b"m:000") == b"0"
        db.put(b"after", b"ok")
        assert db.get(b"after") == b"ok"
    finally:
        db.close()
