"""The public API: every call, accepted and rejected types, limits, scans, lifecycle errors,
persistence, stats, backup, locking and fork safety."""
import gc
import mmap
import os
import threading
import time

import pytest

import kvdb
from tests.helpers import dump, model_scan, run_child, value


@pytest.fixture
def db(db_path, engine):
    d = kvdb.open(db_path, engine=engine)
    yield d
    d.close()


# -- module surface -----------------------------------------------------------

def test_errors_exported_and_rooted():
    names = ["CorruptionError", "ConflictError", "LockedError", "ClosedError",
             "ReadOnlyError", "IOFailureError", "ForkError"]
    for name in names:
        cls = getattr(kvdb, name)
        assert issubclass(cls, kvdb.Error), name
        assert cls is getattr(kvdb.errors, name)
    assert issubclass(kvdb.Error, Exception)


def test_limits_constants():
    assert kvdb.MAX_KEY_SIZE >= 4096
    assert kvdb.MAX_VALUE_SIZE >= 64 << 20


def test_open_creates_directory(db_path, engine):
    assert not os.path.exists(db_path)
    with kvdb.open(db_path, engine=engine) as db:
        assert os.path.isdir(db_path)
        assert db.get(b"k") is None


@pytest.mark.parametrize("kwargs", [
    dict(page_size=1000), dict(page_size=256), dict(page_size=65536), dict(page_size=0),
    dict(sync="sometimes"), dict(engine="no-such-engine"),
])
def test_open_rejects_bad_options(db_path, kwargs):
    with pytest.raises(ValueError):
        kvdb.open(db_path, **kwargs)


@pytest.mark.parametrize("page_size", [512, 32768])
def test_page_size_extremes(db_path, engine, page_size):
    with kvdb.open(db_path, engine=engine, page_size=page_size) as db:
        for i in range(300):
            db.put(b"k%05d" % i, value(i, i * 7 % 900))
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == {b"k%05d" % i: value(i, i * 7 % 900) for i in range(300)}
        db.verify()


def test_page_size_fixed_at_creation(db_path, engine):
    with kvdb.open(db_path, engine=engine, page_size=4096) as db:
        db.put(b"a", b"1")
    # Reopening with another page size must either refuse or keep the file's own size.
    try:
        db = kvdb.open(db_path, engine=engine, page_size=8192)
    except ValueError:
        return
    with db:
        assert db.get(b"a") == b"1"
        db.put(b"b", b"2" * 5000)
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == {b"a": b"1", b"b": b"2" * 5000}
        db.verify()


# -- basic operations ---------------------------------------------------------

def test_put_get_delete(db):
    assert db.get(b"k") is None
    db.put(b"k", b"v")
    assert db.get(b"k") == b"v"
    db.put(b"k", b"v2")
    assert db.get(b"k") == b"v2"
    assert db.delete(b"k") is True
    assert db.get(b"k") is None
    assert db.delete(b"k") is False
    assert db.delete(b"never") is False


def test_discard_deletes_without_saying_whether_it_existed(db):
    db.put(b"k", b"v")
    assert db.discard(b"k") is None
    assert db.get(b"k") is None and b"k" not in db
    assert db.discard(b"never") is None           # absent: nothing to do, no error
    db.put(b"k", b"again")                          # a put after the tombstone wins
    assert db.get(b"k") == b"again"
    assert len(db) == 1 and list(db.keys()) == [b"k"]
    with db.snapshot() as snap, pytest.raises(kvdb.ReadOnlyError):
        snap.discard(b"k")
    with pytest.raises(TypeError):
        db.discard(12)
    assert db.get(b"k") == b"again"


def test_get_default(db):
    assert db.get(b"x", b"default") == b"default"
    db.put(b"x", b"")
    assert db.get(b"x", b"default") == b""  # an empty value is a value, not "missing"
    assert db.get(b"x") == b""


def test_dict_like(db):
    db[b"k2"] = b"v2"
    assert db[b"k2"] == b"v2"
    assert b"k2" in db
    assert b"nope" not in db
    with pytest.raises(KeyError):
        db[b"nope"]
    del db[b"k2"]
    assert b"k2" not in db
    with pytest.raises(KeyError):
        del db[b"k2"]


def test_empty_value_and_binary_keys(db):
    keys = [b"\x00", b"\x00\x00", b"\xff", b"\xff\xff", b"a\x00b", bytes(range(256))]
    for i, k in enumerate(keys):
        db.put(k, b"" if i % 2 else bytes([i]) * i)
    for i, k in enumerate(keys):
        assert db.get(k) == (b"" if i % 2 else bytes([i]) * i)
    assert [k for k, _ in db.scan()] == sorted(keys)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_like_accepted_returned_as_bytes(db, kind):
    db.put(kind(b"key"), kind(b"value"))
    got = db.get(kind(b"key"))
    assert type(got) is bytes and got == b"value"
    assert kind(b"key") in db
    assert db[kind(b"key")] == b"value"
    db[kind(b"k2")] = kind(b"v2")
    for k, v in db.scan(start=kind(b"a"), end=kind(b"z")):
        assert type(k) is bytes and type(v) is bytes
    assert [k for k, _ in db.scan(prefix=kind(b"k"))] == [b"k2", b"key"]
    assert db.delete(kind(b"key")) is True


def test_memoryview_slice_and_mutation_after_put(db):
    buf = bytearray(b"xxkeyxx")
    val = bytearray(b"value")
    db.put(memoryview(buf)[2:5], val)
    buf[2:5] = b"ZZZ"  # the db must have copied the key and the value
    val[:] = b"VALUE"
    assert db.get(b"key") == b"value"
    assert db.get(b"ZZZ") is None


BAD_TYPES = ["str", 1, None, 1.5, ["l"]]


@pytest.mark.parametrize("bad", BAD_TYPES, ids=repr)
def test_type_errors(db, bad):
    def check(fn, *args):
        with pytest.raises(TypeError) as ei:
            fn(*args)
        assert "bytes" in str(ei.value).lower(), f"message should say bytes were expected: {ei.value}"

    check(db.put, bad, b"v")
    check(db.put, b"k", bad)
    check(db.get, bad)
    check(db.delete, bad)
    check(db.__getitem__, bad)
    check(db.__setitem__, bad, b"v")
    check(db.__setitem__, b"k", bad)
    check(db.__contains__, bad)
    if bad is not None:  # None means "unbounded" for scan bounds
        check(lambda: list(db.scan(start=bad)))
        check(lambda: list(db.scan(end=bad)))
        check(lambda: list(db.scan(prefix=bad)))
    with db.transaction() as tx:
        check(tx.put, bad, b"v")
        check(tx.put, b"k", bad)
        check(tx.get, bad)
        check(tx.delete, bad)
    assert db.get(b"k") is None  # nothing was written by the rejected calls


# -- limits -------------------------------------------------------------------

def test_empty_key_rejected(db):
    for fn in (lambda: db.put(b"", b"v"), lambda: db.__setitem__(b"", b"v")):
        with pytest.raises(ValueError):
            fn()
    with db.transaction() as tx:
        with pytest.raises(ValueError):
            tx.put(b"", b"v")


def test_oversize_key_rejected(db):
    big = b"k" * (kvdb.MAX_KEY_SIZE + 1)
    with pytest.raises(ValueError) as ei:
        db.put(big, b"v")
    msg = str(ei.value)
    assert str(kvdb.MAX_KEY_SIZE) in msg or "MAX_KEY_SIZE" in msg, msg
    with db.transaction() as tx:
        with pytest.raises(ValueError):
            tx.put(big, b"v")
    assert list(db.scan()) == []


def test_oversize_value_rejected(db):
    # An anonymous mapping: bytes-like without touching MAX_VALUE_SIZE bytes of memory.
    m = mmap.mmap(-1, kvdb.MAX_VALUE_SIZE + 1)
    with pytest.raises(ValueError) as ei:
        db.put(b"k", memoryview(m))
    msg = str(ei.value)
    assert str(kvdb.MAX_VALUE_SIZE) in msg or "MAX_VALUE_SIZE" in msg, msg
    assert db.get(b"k") is None


def test_max_key_and_big_value_roundtrip(db_path, engine):
    k4 = b"K" * 4095 + b"!"
    kmax = value(1, kvdb.MAX_KEY_SIZE)
    v5 = value(2, 5 << 20)
    with kvdb.open(db_path, engine=engine) as db:
        db.put(k4, b"four")
        db.put(kmax, b"max")
        db.put(b"big", v5)
        db.put(b"after", b"x")
        assert db.get(k4) == b"four" and db.get(kmax) == b"max"
        assert db.get(b"big") == v5
    with kvdb.open(db_path, engine=engine) as db:
        assert db.get(k4) == b"four" and db.get(kmax) == b"max"
        assert db.get(b"big") == v5
        assert [k for k, _ in db.scan()] == sorted([k4, kmax, b"big", b"after"])
        db.put(b"big", b"small now")  # freeing ~5 MiB of overflow pages
        db.verify()
    with kvdb.open(db_path, engine=engine) as db:
        assert db.get(b"big") == b"small now"
        db.verify()


def test_64mib_value_once(db_path, engine):
    v = value(3, 64 << 20)
    with kvdb.open(db_path, engine=engine, sync="normal") as db:
        db.put(b"huge", v)
        assert db.get(b"huge") == v
    with kvdb.open(db_path, engine=engine) as db:
        assert db.get(b"huge") == v
        db.verify()


# -- scans --------------------------------------------------------------------

SCAN_KEYS = [b"a", b"a\x00", b"ab", b"abc", b"b", b"ba", b"m", b"ma", b"user:1", b"user:2",
             b"user:10", b"user;", b"z", b"\xfe\xff", b"\xff", b"\xff\x00", b"\xff\xff",
             b"\xff\xff\x00", b"\xff\xff\xff"]


@pytest.fixture
def scan_db(db):
    model = {}
    for i, k in enumerate(SCAN_KEYS):
        model[k] = b"v%d" % i
        db.put(k, model[k])
    return db, model


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bounds", [
    dict(), dict(start=b"a", end=b"m"), dict(start=b"ab"), dict(end=b"b"),
    dict(start=b"ab", end=b"abc"), dict(start=b"aa", end=b"ab\x00"), dict(start=b"\xff"),
    dict(start=b"m", end=b"m"), dict(start=b"z", end=b"a"), dict(start=b"zz", end=b"zzz"),
    dict(end=b"\x00"), dict(start=b"\xff\xff\xff\xff"),
], ids=repr)
def test_scan_ranges(scan_db, bounds, reverse):
    db, model = scan_db
    got = list(db.scan(reverse=reverse, **bounds))
    assert got == model_scan(model, reverse=reverse, **bounds)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("prefix", [b"user:", b"a", b"ab", b"m", b"\xff", b"\xff\xff",
                                    b"\xff\xff\xff", b"\xfe", b"nothing", b"\x00"], ids=repr)
def test_scan_prefix(scan_db, prefix, reverse):
    db, model = scan_db
    got = list(db.scan(prefix=prefix, reverse=reverse))
    assert got == model_scan(model, prefix=prefix, reverse=reverse)


def test_scan_empty_db(db):
    assert list(db.scan()) == []
    assert list(db.scan(reverse=True)) == []
    assert list(db.scan(prefix=b"x")) == []


def test_scan_many_pages(db_path, engine):
    with kvdb.open(db_path, engine=engine, page_size=512, cache_size=32 << 10) as db:
        model = {}
        for i in range(0, 3000, 3):
            k = b"%06d" % i
            model[k] = value(i, i % 150)
        with db.transaction() as tx:
            for k, v in model.items():
                tx.put(k, v)
        assert list(db.scan()) == model_scan(model)
        assert list(db.scan(reverse=True)) == model_scan(model, reverse=True)
        assert list(db.scan(start=b"001000", end=b"002000", reverse=True)) == \
            model_scan(model, start=b"001000", end=b"002000", reverse=True)
        assert list(db.scan(prefix=b"0015")) == model_scan(model, prefix=b"0015")


# -- closed objects -----------------------------------------------------------

def test_closed_errors(db_path, engine):
    db = kvdb.open(db_path, engine=engine)
    for i in range(100):
        db.put(b"k%03d" % i, b"v")
    it = db.scan()
    assert next(it)[0] == b"k000"
    rit = db.scan(reverse=True)
    assert next(rit)[0] == b"k099"
    snap = db.snapshot().__enter__()
    tx = db.transaction().__enter__()
    tx.put(b"t", b"1")
    db.close()
    for call in [lambda: db.get(b"k000"), lambda: db.put(b"a", b"b"), lambda: db.delete(b"k000"),
                 lambda: db[b"k000"], lambda: b"k000" in db, lambda: list(db.scan()),
                 lambda: db.transaction(), lambda: db.snapshot(), lambda: db.stats(),
                 lambda: db.checkpoint(), lambda: db.verify(),
                 lambda: next(it), lambda: next(rit),
                 lambda: snap.get(b"k000"), lambda: snap[b"k000"], lambda: b"k000" in snap,
                 lambda: list(snap.scan()),
                 lambda: tx.get(b"k000"), lambda: tx.put(b"x", b"y"), lambda: tx.commit()]:
        with pytest.raises(kvdb.ClosedError):
            call()
    db.close()  # closing twice is harmless
    with kvdb.open(db_path, engine=engine) as db2:
        assert db2.get(b"t") is None  # the open transaction was not committed
        assert len(dump(db2)) == 100


def test_context_manager_closes(db_path, engine):
    with kvdb.open(db_path, engine=engine) as db:
        db.put(b"a", b"1")
    with pytest.raises(kvdb.ClosedError):
        db.get(b"a")


def test_snapshot_context_and_isolation(db):
    db.put(b"a", b"1")
    with db.snapshot() as snap:
        db.put(b"a", b"2")
        db.put(b"b", b"3")
        assert snap.get(b"a") == b"1"
        assert snap[b"a"] == b"1"
        assert b"b" not in snap
        assert snap.get(b"b") is None
        assert snap.get(b"b", b"dflt") == b"dflt"
        with pytest.raises(KeyError):
            snap[b"b"]
        assert list(snap.scan()) == [(b"a", b"1")]
        assert list(snap.scan(prefix=b"a", reverse=True)) == [(b"a", b"1")]
    with pytest.raises(kvdb.ClosedError):
        snap.get(b"a")
    assert db.get(b"a") == b"2"


def test_iterator_is_stable_under_writes(db):
    for i in range(200):
        db.put(b"k%03d" % i, b"old")
    it = db.scan()
    first = [next(it) for _ in range(10)]
    for i in range(200):
        db.put(b"k%03d" % i, b"new")
    db.put(b"k050x", b"inserted")
    rest = list(it)
    # Whether an iterator sees writes made after it started is not specified; it must still
    # yield each key once, in order, with a value that was really written.
    keys = [k for k, _ in first + rest]
    assert keys == sorted(set(keys))
    assert all(v in (b"old", b"new", b"inserted") for _, v in first + rest)


# -- persistence --------------------------------------------------------------

@pytest.mark.parametrize("sync", ["full", "normal", "off"])
def test_reopen_persistence(db_path, engine, sync):
    model = {}
    with kvdb.open(db_path, engine=engine, sync=sync) as db:
        for i in range(500):
            k = b"key%04d" % (i * 37 % 500)
            model[k] = value(i, i % 700)
            db.put(k, model[k])
        for i in range(0, 500, 3):
            k = b"key%04d" % i
            assert db.delete(k) is True
            del model[k]
        with db.transaction() as tx:
            tx.put(b"txkey", b"txval")
        model[b"txkey"] = b"txval"
    with kvdb.open(db_path, engine=engine, sync=sync) as db:
        assert dump(db) == model
        db.verify()
        db.put(b"second", b"session")
    model[b"second"] = b"session"
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == model


def test_reopen_after_checkpoint_and_more_writes(db_path, engine):
    with kvdb.open(db_path, engine=engine, checkpoint_size=1 << 30) as db:
        db.put(b"a", b"1")
        db.checkpoint()
        db.put(b"b", b"2")
        db.delete(b"a")
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == {b"b": b"2"}


# -- stats, checkpoint, verify ------------------------------------------------

STATS_KEYS = ["cache_hits", "cache_misses", "cache_evictions", "pages_read", "pages_written",
              "commits", "checkpoints"]


def test_stats(db_path, engine):
    if engine != "btree":
        pytest.skip("page and checkpoint counters are the B+Tree's; tests/lsm/test_lsm_engine.py covers the LSM's")
    with kvdb.open(db_path, engine=engine, page_size=512, cache_size=16 << 10,
                   checkpoint_size=1 << 30) as db:
        s0 = db.stats()
        assert isinstance(s0, dict)
        for key in STATS_KEYS:
            assert key in s0, key
            assert isinstance(s0[key], int) and s0[key] >= 0, (key, s0[key])
        db.put(b"a", b"1")
        db.put(b"b", b"2")
        db.delete(b"a")
        s1 = db.stats()
        assert s1["commits"] - s0["commits"] == 3
        with db.transaction() as tx:
            for i in range(2000):
                tx.put(b"k%05d" % i, value(i, 100))
        s2 = db.stats()
        assert s2["commits"] - s1["commits"] == 1
        db.checkpoint()
        s3 = db.stats()
        # (a checkpoint may already have run in the background: compare with s1)
        assert s3["checkpoints"] > s1["checkpoints"]
        assert s3["pages_written"] > s1["pages_written"]
        db.put(b"one", b"more")  # one small change: no background checkpoint
        s4 = db.stats()
        db.checkpoint()
        s5 = db.stats()
        assert s5["checkpoints"] == s4["checkpoints"] + 1
        assert s5["pages_written"] > s4["pages_written"]
    with kvdb.open(db_path, engine=engine, cache_size=16 << 10) as db:
        s0 = db.stats()
        for _ in range(2):
            assert len(list(db.scan())) == 2002
        s1 = db.stats()
        # 2000 * ~110 bytes cannot fit a 16 KiB cache: pages were read, missed and evicted.
        assert s1["pages_read"] > s0["pages_read"]
        assert s1["cache_misses"] > s0["cache_misses"]
        assert s1["cache_evictions"] > s0["cache_evictions"]
        for _ in range(50):
            db.get(b"k00001")
        assert db.stats()["cache_hits"] > s1["cache_hits"]
        for key in STATS_KEYS:
            assert db.stats()[key] >= s0[key], key  # counters never go down


def test_verify_passes_on_healthy_db(db_path, engine):
    with kvdb.open(db_path, engine=engine, page_size=512) as db:
        db.verify()
        for i in range(3000):
            db.put(b"%05d" % (i * 7919 % 3000), value(i, i % 400))
        db.verify()
        for i in range(0, 3000, 2):
            db.delete(b"%05d" % i)
        db.verify()
        db.checkpoint()
        db.verify()


# -- backup -------------------------------------------------------------------

def test_backup_while_writing(db_path, engine, tmp_path):
    dest = str(tmp_path / "backup")
    base = {b"base%04d" % i: value(i, 300) for i in range(1000)}
    with kvdb.open(db_path, engine=engine, checkpoint_size=64 << 10) as db:
        with db.transaction() as tx:
            for k, v in base.items():
                tx.put(k, v)
        stop = threading.Event()
        written = []
        errors = []

        def writer():
            try:
                i = 0
                while not stop.is_set() or i < 20:
                    with db.transaction() as tx:
                        tx.put(b"pair:a:%05d" % i, value(i, 200))
                        tx.put(b"pair:b:%05d" % i, value(i, 200))
                    written.append(i)
                    i += 1
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        t = threading.Thread(target=writer)
        t.start()
        while len(written) < 10:
            time.sleep(0.001)
        db.backup(dest)
        stop.set()
        t.join()
        assert not errors, errors
        final = dump(db)
    with kvdb.open(dest, engine=engine) as bk:
        bk.verify()
        got = dump(bk)
    for k, v in base.items():
        assert got.get(k) == v
    a = sorted(int(k.split(b":")[2]) for k in got if k.startswith(b"pair:a:"))
    b = sorted(int(k.split(b":")[2]) for k in got if k.startswith(b"pair:b:"))
    assert a == b, "the backup holds half of a transaction"
    assert a == list(range(len(a))), "the backup is not a prefix of the commit history"
    assert len(a) >= 10, "commits acknowledged before backup() started are missing"
    for k, v in got.items():
        assert final[k] == v
    # the source is unaffected
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == final


# -- locking ------------------------------------------------------------------

def test_second_open_in_same_process(db_path, engine):
    """The B+Tree shares a database among opens (here two in one process, as in two processes);
    the LSM has one writable open, and a second one gets LockedError naming this process."""
    with kvdb.open(db_path, engine=engine) as db:
        db.put(b"a", b"1")
        if engine == "lsm":
            with pytest.raises(kvdb.LockedError) as ei:
                kvdb.open(db_path, engine=engine)
            assert ei.value.pid == os.getpid()
        else:
            with kvdb.open(db_path, engine=engine) as other:
                assert other.get(b"a") == b"1"
                other.put(b"c", b"3")
                assert db.get(b"c") == b"3"
                db.delete(b"c")
                assert other.get(b"c") is None
        assert db.get(b"a") == b"1"  # the other open did not disturb the first
        db.put(b"b", b"2")
    with kvdb.open(db_path, engine=engine) as db:  # released at close
        assert dump(db) == {b"a": b"1", b"b": b"2"}


def test_exclusive_open_excludes_every_other(db_path, engine):
    with kvdb.open(db_path, engine=engine) as db:
        db.put(b"a", b"1")
        with pytest.raises(kvdb.LockedError, match="to itself"):
            kvdb.open(db_path, _exclusive=True)
        assert db.get(b"a") == b"1"
    with kvdb.open(db_path, _exclusive=True) as db:
        with pytest.raises(kvdb.LockedError, match="held exclusively"):
            kvdb.open(db_path)
        with pytest.raises(kvdb.LockedError, match="held exclusively"):
            kvdb.open(db_path, readonly=True)
        assert db.get(b"a") == b"1"


def test_locked_other_process(db_path, engine):
    db = kvdb.open(db_path, engine=engine)
    try:
        db.put(b"a", b"1")
        r = run_child("lockprobe", db_path)
        assert r.returncode == 0, r.stderr
        if engine == "btree":
            assert r.stdout.strip() == "OPENED", r.stdout + r.stderr   # opens share a B+Tree
        else:
            assert r.stdout.startswith("LOCKED "), r.stdout + r.stderr
            _, pid, path, msg = r.stdout.strip().split(" ", 3)
            assert int(pid) == os.getpid()
            assert os.path.realpath(path).startswith(os.path.realpath(db_path)), path
            assert db_path in msg, msg
        assert db.get(b"a") == b"1"
    finally:
        db.close()
    r = run_child("lockprobe", db_path)
    assert r.stdout.strip() == "OPENED", r.stdout + r.stderr


# -- fork ---------------------------------------------------------------------

FORK_OK, FORK_NO_ERROR, FORK_WRONG_ERROR = 10, 11, 12


def _in_child(fn):
    """Run fn in a forked child; return its exit code (fn's return value or FORK_WRONG_ERROR)."""
    pid = os.fork()
    if pid == 0:
        code = FORK_WRONG_ERROR
        try:
            code = fn()
        except BaseException:  # noqa: BLE001
            code = FORK_WRONG_ERROR
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _expect_fork_error(call):
    def child():
        try:
            call()
        except kvdb.ForkError:
            return FORK_OK
        except BaseException:  # noqa: BLE001
            return FORK_WRONG_ERROR
        return FORK_NO_ERROR
    return child


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads
def test_fork_error_in_child(db_path, engine):
    with kvdb.open(db_path, engine=engine) as db:
        db.put(b"a", b"1")
        snap = db.snapshot().__enter__()
        tx = db.transaction().__enter__()
        it = db.scan()
        calls = {
            "get": lambda: db.get(b"a"),
            "put": lambda: db.put(b"b", b"child"),
            "delete": lambda: db.delete(b"a"),
            "scan": lambda: list(db.scan()),
            "transaction": lambda: db.transaction(),
            "snapshot.get": lambda: snap.get(b"a"),
            "tx.put": lambda: tx.put(b"c", b"child"),
            "iterator": lambda: next(it),
            "checkpoint": lambda: db.checkpoint(),
        }
        codes = {name: _in_child(_expect_fork_error(call)) for name, call in calls.items()}
        assert codes == {name: FORK_OK for name in calls}, \
            f"exit codes ({FORK_OK}=ForkError, {FORK_NO_ERROR}=no error, {FORK_WRONG_ERROR}=other error)"
        snap.__exit__(None, None, None)
        tx.rollback()
        # The parent is unaffected.
        assert db.get(b"a") == b"1"
        db.put(b"b", b"parent")
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == {b"a": b"1", b"b": b"parent"}
        db.verify()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_finalizer_does_not_touch_parent(db_path, engine):
    db = kvdb.open(db_path, engine=engine, checkpoint_size=1 << 30)
    try:
        for i in range(100):
            db.put(b"k%03d" % i, value(i, 500))

        def child():
            nonlocal db
            db = None  # the only reference: the finalizer runs, and must not touch the parent's files
            gc.collect()
            return FORK_OK
        assert _in_child(child) == FORK_OK
        # The lock is still held by the parent (the child's finalizer must not release it).
        r = run_child("exclusiveprobe", db_path)
        assert r.stdout.startswith("LOCKED "), r.stdout + r.stderr
        for i in range(100, 200):
            db.put(b"k%03d" % i, value(i, 500))
        db.verify()
    finally:
        db.close()
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == {b"k%03d" % i: value(i, 500) for i in range(200)}
        db.verify()


# -- sizes around page and inline thresholds ---------------------------------

@pytest.mark.parametrize("page_size", [512, 4096])
def test_every_value_size_around_page_thresholds(db_path, engine, page_size):
    sizes = list(range(0, 2 * page_size + 64)) if page_size == 512 else \
        sorted({s + d for s in (0, page_size // 4, page_size // 2, page_size, 2 * page_size)
                for d in range(-40, 41) if s + d >= 0})
    model = {b"v%06d" % n: value(n, n) for n in sizes}
    with kvdb.open(db_path, engine=engine, page_size=page_size, cache_size=32 << 10) as db:
        with db.transaction() as tx:
            for k, v in model.items():
                tx.put(k, v)
        db.verify()
        for k in list(model)[::3]:
            db.delete(k)
            del model[k]
        assert dump(db) == model
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == model
        db.verify()


def test_every_key_size_around_page_thresholds(db_path, engine):
    sizes = list(range(1, 1100)) + [2000, 3000, kvdb.MAX_KEY_SIZE - 1, kvdb.MAX_KEY_SIZE]
    model = {}
    for n in sizes:
        k = (b"%05d" % n) * (n // 5 + 1)
        model[k[:n]] = b"%d" % n
    with kvdb.open(db_path, engine=engine, page_size=512, cache_size=32 << 10) as db:
        with db.transaction() as tx:
            for k, v in model.items():
                tx.put(k, v)
        for k, v in model.items():
            assert db.get(k) == v
        assert list(db.scan()) == model_scan(model)
        db.verify()
    with kvdb.open(db_path, engine=engine) as db:
        assert list(db.scan(reverse=True)) == model_scan(model, reverse=True)
        db.verify()


def test_long_keys_sharing_prefixes(db_path, engine):
    """Keys of 1..4 KiB that differ only near their end (overflow keys on 512-byte pages)."""
    rng = __import__("random").Random(3)
    stem = value(77, 3000)
    model = {}
    for i in range(400):
        k = stem[:rng.choice([900, 1500, 2990])] + b"%04d" % rng.randrange(1000) + b"x" * rng.randrange(3)
        model[k] = b"%d" % i
    with kvdb.open(db_path, engine=engine, page_size=512, cache_size=16 << 10) as db:
        for k, v in model.items():
            db.put(k, v)
        ks = sorted(model)
        lo, hi = ks[50], ks[300]
        assert list(db.scan(start=lo, end=hi)) == model_scan(model, start=lo, end=hi)
        assert list(db.scan(start=lo, end=hi, reverse=True)) == model_scan(model, start=lo, end=hi, reverse=True)
        p = stem[:1000]
        assert list(db.scan(prefix=p)) == model_scan(model, prefix=p)
        for k in ks[::2]:
            assert db.delete(k) is True
            del model[k]
        db.verify()
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == model
        db.verify()


# -- lifetimes ------------------------------------------------------------------

@pytest.mark.parametrize("owner", ["snapshot", "transaction"])
def test_iterator_outliving_its_snapshot_or_transaction(db_path, engine, owner):
    """An iterator outliving its snapshot (or transaction) raises ClosedError or keeps yielding
    the old data: it must never read pages that were reused meanwhile."""
    old = {b"k%04d" % i: value(i, 300) for i in range(400)}
    with kvdb.open(db_path, engine=engine, page_size=512, cache_size=16 << 10,
                   checkpoint_size=8 << 10) as db:
        with db.transaction() as tx:
            for k, v in old.items():
                tx.put(k, v)
        view = (db.snapshot() if owner == "snapshot" else db.transaction()).__enter__()
        it = view.scan()
        seen = [next(it) for _ in range(100)]
        view.__exit__(None, None, None)  # closes the snapshot / commits the (read-only) transaction
        for round_ in range(3):
            with db.transaction() as tx:
                for i in range(400):
                    tx.put(b"k%04d" % i, value(10000 * (round_ + 1) + i, 300))
            db.checkpoint()
        try:
            seen += list(it)
        except kvdb.ClosedError:
            return
        assert seen == list(old.items()), f"an iterator read pages reused after its {owner} ended"


def test_close_while_another_thread_iterates(db_path, engine):
    db = kvdb.open(db_path, engine=engine, page_size=512, cache_size=16 << 10)
    with db.transaction() as tx:
        for i in range(3000):
            tx.put(b"k%05d" % i, value(i, 200))
    outcome = []
    started = threading.Event()

    def reader():
        try:
            while True:
                for n, (k, v) in enumerate(db.scan()):
                    if n == 10:
                        started.set()
                    assert v == value(int(k[1:]), 200)
        except kvdb.ClosedError:
            outcome.append("closed")
        except BaseException as e:  # noqa: BLE001
            outcome.append(e)

    t = threading.Thread(target=reader)
    t.start()
    started.wait(10)
    db.close()
    t.join(30)
    assert not t.is_alive()
    assert outcome == ["closed"], outcome


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_can_open_other_databases(db_path, engine, tmp_path):
    """The fork guard is per object: a child opens its own databases normally (no deadlock on
    state inherited from the parent's threads)."""
    other = str(tmp_path / "child-db")
    with kvdb.open(db_path, engine=engine, checkpoint_size=4 << 10) as db:
        for i in range(300):
            db.put(b"k%03d" % i, value(i, 100))  # keeps the parent's background thread busy
        pid = os.fork()
        if pid == 0:
            code = FORK_WRONG_ERROR
            try:
                with kvdb.open(other, engine=engine, checkpoint_size=4 << 10) as cdb:
                    for i in range(300):
                        cdb.put(b"c%03d" % i, value(i, 100))
                with kvdb.open(other, engine=engine) as cdb:
                    code = FORK_OK if len(dump(cdb)) == 300 else FORK_NO_ERROR
                if engine == "btree":
                    # what pre-fork servers do: the child opens the parent's database afresh
                    with kvdb.open(db_path) as again:
                        if again.get(b"k299") != value(299, 100):
                            code = FORK_NO_ERROR
                        again.put(b"from-child", b"1")
                else:
                    try:
                        kvdb.open(db_path, engine=engine)  # the LSM's one writer is the parent
                        code = FORK_NO_ERROR
                    except kvdb.LockedError:
                        pass
            finally:
                os._exit(code)
        deadline = time.time() + 60
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.time() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung opening a new database")
            time.sleep(0.02)
        assert os.waitstatus_to_exitcode(status) == FORK_OK
        db.put(b"parent", b"still works")
        if engine == "btree":
            assert db.get(b"from-child") == b"1"


def test_space_is_reused(db_path, engine):
    """Writing and deleting the same amount again and again must not grow the file forever."""
    if engine != "btree":
        pytest.skip("the B+Tree's page reuse; tests/lsm/test_lsm_engine.py covers the LSM's space")
    sizes = []
    with kvdb.open(db_path, engine=engine, page_size=4096, checkpoint_size=256 << 10) as db:
        for r in range(8):
            with db.transaction() as tx:
                for i in range(500):
                    tx.put(b"k%04d" % i, value(r * 1000 + i, 1000))
            db.checkpoint()
            with db.transaction() as tx:
                for i in range(500):
                    tx.delete(b"k%04d" % i)
            db.checkpoint()
            sizes.append(os.path.getsize(os.path.join(db_path, "data.kvdb")))
        db.verify()
    assert sizes[-1] <= 3 * sizes[0], f"data file keeps growing: {sizes}"
