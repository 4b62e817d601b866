"""Key expiry (ttl): puts with a ttl, ttl(), persist(), invisibility of expired keys on every
read path, snapshots and transactions judging expiry at their start, the background sweep,
durability of expiries across reopen and power loss, and the format-version bump.

Time is controlled by a fake clock passed as `_clock`, never by sleeping (except one test that
lets the real background thread sweep).
"""
import math
import os
import time

import pytest

import kvdb
from tests.helpers import dump, open_after_drop

try:
    from kvdb._core.file import SimFS, SimulatedCrash
except ImportError:  # pragma: no cover
    SimFS = SimulatedCrash = None


class Clock:
    """A settable wall clock in seconds."""

    def __init__(self, t=1_700_000_000.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, seconds):
        self.t += seconds


def expiring_is(db, n):
    """The B+Tree counts keys with an expiry exactly (stats "expiring_keys"); the LSM does not
    keep that count (None)."""
    got = db.stats()["expiring_keys"]
    return got is None or got == n


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def db(db_path, engine, clock):
    d = kvdb.open(db_path, engine=engine, _clock=clock)
    yield d
    d.close()


def test_ttl_counts_down_and_key_expires(db, clock):
    db.put(b"k", b"v", ttl=10)
    db.put(b"plain", b"p")
    assert db.ttl(b"k") == pytest.approx(10.0)
    assert db.ttl(b"plain") is None
    clock.advance(4)
    assert db.ttl(b"k") == pytest.approx(6.0)
    assert db.get(b"k") == b"v" and b"k" in db and db[b"k"] == b"v"
    clock.advance(6)                       # expiry is inclusive: at the deadline it is gone
    assert db.get(b"k") is None
    assert db.get(b"k", b"dflt") == b"dflt"
    assert b"k" not in db
    with pytest.raises(KeyError):
        db[b"k"]
    with pytest.raises(KeyError):
        db.ttl(b"k")
    assert list(db.scan()) == [(b"plain", b"p")]
    assert list(db.scan(reverse=True)) == [(b"plain", b"p")]
    assert list(db.scan(prefix=b"k")) == []
    assert list(db.keys()) == [b"plain"] and list(db.items()) == [(b"plain", b"p")]
    # len() is a count of what is stored (O(1) on the B+Tree): the expired key counts until the
    # expiry sweep deletes it, as Redis's DBSIZE counts keys not yet evicted
    assert len(db) == 2
    db._sweep_expired()
    assert len(db) == 1


def test_ttl_accepts_int_and_float_rejects_the_rest(db, clock):
    db.put(b"a", b"1", ttl=1)
    db.put(b"b", b"1", ttl=0.25)
    db.put(b"c", b"1", ttl=0.0001)          # rounds up to one millisecond, never to "no expiry"
    assert db.ttl(b"b") == pytest.approx(0.25)
    assert 0 < db.ttl(b"c") <= 0.001
    for bad in ["5", b"5", [5], True, False, object()]:
        with pytest.raises(TypeError, match="ttl"):
            db.put(b"x", b"1", ttl=bad)
    for bad in [0, -1, 0.0, -0.5, math.nan, math.inf, -math.inf, 10 ** 20]:
        with pytest.raises(ValueError, match="ttl"):
            db.put(b"x", b"1", ttl=bad)
    assert b"x" not in db                    # a rejected put writes nothing
    with db.transaction() as tx:
        with pytest.raises(TypeError):
            tx.put(b"x", b"1", ttl="1")
        with pytest.raises(ValueError):
            tx.put(b"x", b"1", ttl=-3)
    assert b"x" not in db


def test_put_without_ttl_clears_expiry(db, clock):
    db.put(b"k", b"v1", ttl=5)
    db.put(b"k", b"v2")
    assert db.ttl(b"k") is None
    clock.advance(10)
    assert db[b"k"] == b"v2"
    db.put(b"k", b"v3", ttl=5)
    db.put(b"k", b"v4", ttl=50)              # a new ttl replaces the old one
    clock.advance(10)
    assert db[b"k"] == b"v4" and db.ttl(b"k") == pytest.approx(40)


def test_persist(db, clock):
    db.put(b"k", b"v", ttl=5)
    db.put(b"plain", b"p")
    assert db.persist(b"k") is True
    assert db.ttl(b"k") is None
    assert db.persist(b"k") is False
    assert db.persist(b"plain") is False
    assert db.persist(b"absent") is False
    clock.advance(100)
    assert db[b"k"] == b"v"
    db.put(b"gone", b"v", ttl=1)
    clock.advance(1)
    assert db.persist(b"gone") is False       # an expired key cannot be revived
    assert b"gone" not in db
    with pytest.raises(TypeError):
        db.persist("text")


def test_delete_of_expired_key_reports_absent(db, clock):
    db.put(b"k", b"v", ttl=1)
    clock.advance(2)
    assert db.delete(b"k") is False
    with pytest.raises(KeyError):
        del db[b"k"]
    db.put(b"k", b"new")                      # the key can be written again
    assert db[b"k"] == b"new" and db.ttl(b"k") is None


def test_snapshot_judges_expiry_when_taken(db, clock):
    db.put(b"k", b"v", ttl=5)
    db.put(b"other", b"o", ttl=50)
    with db.snapshot() as snap:
        clock.advance(10)
        assert db.get(b"k") is None
        assert snap.get(b"k") == b"v" and b"k" in snap and snap[b"k"] == b"v"
        assert snap.ttl(b"k") == pytest.approx(5)
        assert dump(snap) == {b"k": b"v", b"other": b"o"}
        assert len(snap) == 2
    with db.snapshot() as later:
        assert later.get(b"k") is None
        with pytest.raises(KeyError):
            later.ttl(b"k")
        assert dump(later) == {b"other": b"o"}
        assert len(later) == 2          # len() counts what is stored: the expired key until the sweep


def test_iterator_uses_its_start_time(db, clock):
    for i in range(20):
        db.put(b"k%02d" % i, b"v", ttl=5)
    it = db.scan()
    first = next(it)
    clock.advance(10)                         # mid-iteration the keys expire
    rest = list(it)
    assert [first] + rest == [(b"k%02d" % i, b"v") for i in range(20)]
    assert list(db.scan()) == []


def test_transaction_reads_expired_as_absent_consistently(db, clock):
    db.put(b"k", b"v", ttl=5)
    clock.advance(5)
    with db.transaction() as tx:
        assert tx.get(b"k") is None and b"k" not in tx
        assert list(tx.scan()) == []
        assert tx.delete(b"k") is False
        tx.put(b"k", b"fresh", ttl=30)
        assert tx.get(b"k") == b"fresh"
    assert db[b"k"] == b"fresh" and db.ttl(b"k") == pytest.approx(30)


def test_transaction_put_ttl_and_clear(db, clock):
    db.put(b"a", b"1", ttl=5)
    with db.transaction() as tx:
        tx.put(b"a", b"2")                    # no ttl: clears the expiry
        tx.put(b"b", b"3", ttl=7)
        tx.put(b"c", b"4", ttl=7)
        tx.put(b"c", b"5")                    # last write wins, without expiry
        tx.put(b"d", b"6", ttl=7)
        tx.delete(b"d")
    assert db.ttl(b"a") is None and db.ttl(b"b") == pytest.approx(7) and db.ttl(b"c") is None
    assert b"d" not in db


def test_transaction_conflicts_when_a_read_key_expires_before_commit(db, clock):
    db.put(b"k", b"v", ttl=5)
    tx = db.transaction()
    assert tx.get(b"k") == b"v"
    tx.put(b"out", b"derived from k")
    clock.advance(6)
    with pytest.raises(kvdb.ConflictError, match="expired"):
        tx.commit()
    assert b"out" not in db
    # the same through a scan
    db.put(b"s", b"v", ttl=5)
    tx = db.transaction()
    assert list(tx.scan(prefix=b"s")) == [(b"s", b"v")]
    tx.put(b"out", b"x")
    clock.advance(6)
    with pytest.raises(kvdb.ConflictError):
        tx.commit()
    # a read key whose expiry is still ahead at commit does not conflict
    db.put(b"long", b"v", ttl=100)
    with db.transaction() as tx:
        assert tx.get(b"long") == b"v"
        clock.advance(1)
        tx.put(b"out", b"ok")
    assert db[b"out"] == b"ok"


def test_sweep_removes_expired_keys_in_bounded_steps(db, clock):
    for i in range(50):
        db.put(b"e%03d" % i, b"v", ttl=1)
    for i in range(30):
        db.put(b"p%03d" % i, b"v")
    db.put(b"later", b"v", ttl=100)
    assert expiring_is(db, 51)
    clock.advance(2)
    examined, deleted, wrapped = db._sweep_expired(20)
    assert (examined, deleted, wrapped) == (20, 20, False)
    total = deleted
    while True:
        examined, deleted, wrapped = db._sweep_expired(20)
        assert examined <= 20
        total += deleted
        if wrapped:
            break
    assert total == 50
    st = db.stats()
    assert st["expired_swept"] == 50 and expiring_is(db, 1) and st["sweep_steps"] >= 5
    assert len(db) == 31 and db.ttl(b"later") == pytest.approx(98)
    db.verify()


def test_sweep_keeps_a_key_renewed_after_it_expired(db, clock):
    db.put(b"k", b"old", ttl=1)
    clock.advance(2)
    db.put(b"k", b"new", ttl=10)
    assert db._sweep_expired(100)[1] == 0
    assert db[b"k"] == b"new"
    # and the sweep's decision is re-checked under the writer lock
    assert db._decide_sweep([(b"k", None, 0)]) == []


def test_sweep_deletes_conflict_with_transactions(db, clock):
    db.put(b"k", b"v", ttl=5)
    tx = db.transaction()
    clock.advance(4)
    assert tx.get(b"k") == b"v"
    clock.advance(2)
    db._sweep_expired()
    tx.put(b"x", b"y")
    with pytest.raises(kvdb.ConflictError):
        tx.commit()


def test_sweep_of_keys_a_transaction_never_saw_does_not_conflict(db, clock):
    db.put(b"k", b"v", ttl=5)
    db.put(b"other", b"o")
    clock.advance(6)                          # k expired before the transaction began
    with db.transaction() as tx:
        assert dict(tx.scan()) == {b"other": b"o"} and tx.get(b"k") is None
        assert db._sweep_expired()[1] == 1    # deletes k: nothing the transaction saw changed
        tx.put(b"x", b"y")
    assert db[b"x"] == b"y"


def test_background_thread_sweeps(db_path, engine):
    with kvdb.open(db_path, engine=engine, sync="off") as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"v", ttl=0.01)
        db.put(b"keep", b"v")
        deadline = time.monotonic() + 10
        while db.stats()["expired_swept"] < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.stats()["expired_swept"] == 100
        assert expiring_is(db, 0)
        assert dump(db) == {b"keep": b"v"}


def test_expiry_survives_reopen_replay_and_checkpoint(db_path, engine, clock):
    db = kvdb.open(db_path, engine=engine, _clock=clock)
    db.put(b"a", b"1", ttl=10)
    db.checkpoint()
    db.put(b"b", b"2", ttl=20)                # only in the log
    with db.transaction() as tx:
        tx.put(b"c", b"3", ttl=30)
    del db, tx                                # dropped without close: the log is replayed
    db = open_after_drop(db_path, engine=engine, _clock=clock)
    assert [db.ttl(k) for k in (b"a", b"b", b"c")] == [pytest.approx(10), pytest.approx(20), pytest.approx(30)]
    db.verify()
    db.close()
    clock.advance(15)
    with kvdb.open(db_path, engine=engine, _clock=clock) as db:
        assert dump(db) == {b"b": b"2", b"c": b"3"}
        assert expiring_is(db, 3)   # expired but not yet swept
        db._sweep_expired()
        assert expiring_is(db, 2)
    with kvdb.open(db_path, engine=engine, _clock=clock) as db:
        assert expiring_is(db, 2)
        db.verify()


@pytest.mark.skipif(SimFS is None, reason="SimFS missing")
def test_expiry_survives_power_loss(engine, clock):
    fs = SimFS()
    db = kvdb.open("/sim/db", engine=engine, _fs=fs, _clock=clock, sync="full")
    db.put(b"a", b"1", ttl=10)
    db.put(b"b", b"2")
    db.persist(b"a")
    db.put(b"c", b"3", ttl=5)
    fs.crash_after(1)
    with pytest.raises((SimulatedCrash, kvdb.Error)):
        db.put(b"d", b"4", ttl=5)
    db = None
    fs.crash(7)
    with kvdb.open("/sim/db", engine=engine, _fs=fs, _clock=clock) as db:
        got = dump(db)
        assert got in ({b"a": b"1", b"b": b"2", b"c": b"3"}, {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"})
        assert db.ttl(b"a") is None and db.ttl(b"c") == pytest.approx(5)
        clock.advance(5)
        assert dump(db) == {b"a": b"1", b"b": b"2"}
        db.verify()


def test_backup_keeps_expiries(db_path, engine, clock, tmp_path):
    with kvdb.open(db_path, engine=engine, _clock=clock) as db:
        db.put(b"a", b"1", ttl=10)
        db.put(b"b", b"2")
        db.backup(str(tmp_path / "bk"))
    with kvdb.open(str(tmp_path / "bk"), engine=engine, _clock=clock) as copy:
        assert copy.ttl(b"a") == pytest.approx(10) and copy.ttl(b"b") is None
        copy.verify()


def test_large_and_overflow_entries_with_expiry(db_path, engine, clock):
    big_key = b"K" * 3000
    big_value = os.urandom(20000)
    with kvdb.open(db_path, engine=engine, _clock=clock, page_size=512) as db:
        db.put(big_key, big_value, ttl=5)
        db.put(b"small", b"s" * 100, ttl=5)
        for i in range(300):
            db.put(b"n%04d" % i, b"x" * (i % 200), ttl=(i % 7) + 1)
        db.verify()
        assert db[big_key] == big_value and db.ttl(big_key) == pytest.approx(5)
        db.put(big_key, big_value)            # overwrite: the overflow chains are freed and rewritten
        db.verify()
        clock.advance(4)
        live = {b"n%04d" % i for i in range(300) if (i % 7) + 1 > 4}
        assert {k for k, _ in db.scan(prefix=b"n")} == live
        while not db._sweep_expired(50)[2]:
            pass
        db.verify()
        assert expiring_is(db, len(live) + 1)      # and b"small"
    with kvdb.open(db_path, engine=engine, _clock=clock) as db:
        assert db[big_key] == big_value and db.ttl(big_key) is None
        db.verify()


def test_old_format_version_is_refused_clearly(db_path, engine):
    if engine != "btree":
        pytest.skip("the B+Tree data file's version")
    from kvdb._core.coding import crc32c_of
    with kvdb.open(db_path, engine=engine) as db:
        db.put(b"k", b"v")
    path = os.path.join(db_path, "data.kvdb")
    with open(path, "r+b") as f:
        header = bytearray(f.read(20))
        header[8:12] = (1).to_bytes(4, "little")
        header[16:20] = crc32c_of(bytes(header[0:16])).to_bytes(4, "little")
        f.seek(0)
        f.write(header)
    with pytest.raises(kvdb.CorruptionError, match="format version 1") as e:
        kvdb.open(db_path, engine=engine)
    assert "kvdb load" in str(e.value) and e.value.offset == 8


def test_old_log_version_is_refused_clearly(db_path, engine):
    from kvdb._core.coding import crc32c_of
    with kvdb.open(db_path, engine=engine) as db:
        db.put(b"k", b"v")
    path = os.path.join(db_path, sorted(n for n in os.listdir(db_path) if n.startswith("wal-"))[-1])
    with open(path, "r+b") as f:
        header = bytearray(f.read(32))
        header[8:12] = (1).to_bytes(4, "little")
        header[28:32] = crc32c_of(bytes(header[0:28])).to_bytes(4, "little")
        f.seek(0)
        f.write(header)
    with pytest.raises(kvdb.CorruptionError, match="log version 1"):
        kvdb.open(db_path, engine=engine)


def test_cli_compact_keeps_expiries(db_path, engine):
    # B+Tree: kvdb compact copies the live keys into a new file; LSM: it runs db.compact()
    import subprocess
    import sys
    from tests.helpers import child_env
    with kvdb.open(db_path, engine=engine) as db:
        db.put(b"a", b"1", ttl=1000)
        db.put(b"b", b"2")
        for i in range(50):
            db.put(b"n%02d" % i, b"x", ttl=0.001)
        time.sleep(0.01)
    p = subprocess.run([sys.executable, "-m", "kvdb", "compact", db_path], env=child_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == {b"a": b"1", b"b": b"2"}
        assert 990 < db.ttl(b"a") <= 1000 and db.ttl(b"b") is None
        assert expiring_is(db, 1)
