"""The B+Tree's background checkpoint writes its pages while commits go on (P6 in
kvdb/_core/btree/pager.pxd), and one checkpoint of a file runs at a time (O4 in shared.pxd).

The simulated file system holds the checkpointing thread at one of its I/O calls
(SimFS.pause_next), so each test knows the checkpoint is half done while it commits."""
import random
import struct
import threading
import time

import pytest

import kvdb
from kvdb._core.btree.engine import LOG_RECYCLE_FACTOR
from kvdb._core.file import SimFS
from tests.helpers import dump

PATH = "/sim/db"
OPTIONS = dict(engine="btree", page_size=4096, cache_size=1 << 20, checkpoint_size=64 << 10)


def wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def in_thread(fn, seconds=20.0):
    """Run fn in another thread and return its result; fail (not hang) if it blocks."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:       # pragma: no cover - reported below
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked: the checkpoint held the writer lock while it wrote"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def load_until_paused(db, model, reached, prefix=b"k", states=None):
    """Commit puts until the paused checkpoint thread reports it reached its I/O call."""
    i = 0
    while not reached.is_set():
        key = prefix + b"%06d" % i
        val = b"v%06d-" % i + b"x" * 120
        db.put(key, val)
        model[key] = val
        if states is not None:
            states.append(dict(model))
        i += 1
        if i % 16 == 0:
            time.sleep(0.0005)   # SimFS never lets go of the GIL: let the background thread in
        assert i < 200_000, "no checkpoint started"
    return i


def checkpoints(db):
    return db.stats()["checkpoints"]


def test_P6_commits_and_reads_go_on_while_a_checkpoint_writes():
    fs = SimFS()
    db = kvdb.open(PATH, _fs=fs, sync="off", **OPTIONS)
    reached, resume = threading.Event(), threading.Event()
    fs.pause_next("fsync", reached, resume)      # the checkpoint's fsync of its pages
    model = {}
    n = load_until_paused(db, model, reached)
    before = checkpoints(db)
    snap = db.snapshot()
    frozen = dict(model)

    def go_on():
        rng = random.Random(1)
        for j in range(300):                 # overwrites of pages the checkpoint is writing, and new keys
            key = b"k%06d" % rng.randrange(n) if j % 2 else b"n%06d" % j
            val = b"w%06d" % j
            db.put(key, val)
            model[key] = val
        db.delete(b"k%06d" % 0)
        model.pop(b"k%06d" % 0, None)
        assert db.get(b"k%06d" % 1) == model[b"k%06d" % 1]
        return dump(db)

    assert in_thread(go_on) == model
    assert dump(snap) == frozen                 # a snapshot taken meanwhile keeps its version
    assert checkpoints(db) == before            # still under way
    resume.set()
    assert wait_for(lambda: checkpoints(db) > before)
    assert db.verify()
    assert dump(db) == model
    snap.close()
    db.close()
    db = kvdb.open(PATH, _fs=fs, **OPTIONS)
    assert dump(db) == model
    assert db.verify()
    db.close()


@pytest.mark.parametrize("seed", range(1, 9))
def test_P6_pages_in_flight_are_never_changed_in_place(seed):
    """The checkpoint is held before its first page write while every key is overwritten; then
    it finishes and the power fails. The file must hold a state some prefix of the commits made:
    a page changed in place after the checkpoint began would mix later commits into its version."""
    fs = SimFS()
    db = kvdb.open(PATH, _fs=fs, sync="off", **OPTIONS)
    reached, resume = threading.Event(), threading.Event()
    fs.pause_next("write", reached, resume)      # the checkpoint's first page write
    model, states = {}, [{}]
    n = load_until_paused(db, model, reached, states=states)
    before = checkpoints(db)
    order = list(range(n))
    random.Random(seed).shuffle(order)

    def overwrite():
        for i in order:
            key = b"k%06d" % i
            db.put(key, b"new%06d" % i)
            model[key] = b"new%06d" % i
            states.append(dict(model))

    in_thread(overwrite, 60.0)
    resume.set()
    assert wait_for(lambda: checkpoints(db) > before)
    for j in range(20):                          # records that name the checkpoint's commits durable (W2)
        db.put(b"after%02d" % j, b"z" * 50)
        model[b"after%02d" % j] = b"z" * 50
        states.append(dict(model))
    fs.crash(seed)                               # the log's unsynced tail is kept, dropped or torn
    del db
    db = kvdb.open(PATH, _fs=fs, **OPTIONS)
    got = dump(db)
    assert any(got == s for s in reversed(states)), "the file holds no state the commits passed through"
    assert db.verify()
    db.close()


def test_P6_a_crash_while_the_checkpoint_writes_loses_no_acknowledged_commit():
    fs = SimFS()
    db = kvdb.open(PATH, _fs=fs, sync="full", **OPTIONS)
    reached, resume = threading.Event(), threading.Event()
    fs.pause_next("fsync", reached, resume)      # a commit's fsync is the caller's: the checkpoint's is held
    model = {}
    load_until_paused(db, model, reached)

    def more():
        for j in range(50):
            db.put(b"m%03d" % j, b"after")
            model[b"m%03d" % j] = b"after"

    in_thread(more)
    fs.crash(7)                                  # power fails with the checkpoint half written
    resume.set()
    del db
    db = kvdb.open(PATH, _fs=fs, **OPTIONS)
    assert dump(db) == model
    assert db.verify()
    db.close()


def test_P6_a_failed_checkpoint_write_refuses_writes_and_loses_nothing():
    fs = SimFS()
    db = kvdb.open(PATH, _fs=fs, sync="full", **OPTIONS)
    reached, resume = threading.Event(), threading.Event()
    fs.pause_next("fsync", reached, resume)
    model = {}
    load_until_paused(db, model, reached)
    fs.fail_after(1, op="fsync")                 # the held fsync fails once it goes on
    resume.set()
    assert wait_for(lambda: not db._accepting_writes())
    with pytest.raises(kvdb.IOFailureError):
        db.put(b"x", b"y")
    assert db.get(b"k%06d" % 1) == model[b"k%06d" % 1]       # reads go on
    db.close()
    db = kvdb.open(PATH, _fs=fs, **OPTIONS)
    assert dump(db) == model
    assert db.verify()
    db.close()


def log_base(fs):
    """The base seq in the log's header: the commit the log was last recycled at (W3)."""
    return struct.unpack_from("<Q", fs.read_file(PATH + "/wal-000001.log"), 16)[0]


def test_P6_a_log_past_the_recycle_factor_is_recycled_by_the_next_checkpoint():
    """Many commits come while a checkpoint writes: it leaves the log whole (they are past its
    meta). The next checkpoint finds the log LOG_RECYCLE_FACTOR times checkpoint_size long, so it
    holds the writer lock while it writes, and the log starts again at the newest commit."""
    fs = SimFS()
    db = kvdb.open(PATH, _fs=fs, sync="off", **OPTIONS)
    reached, resume = threading.Event(), threading.Event()
    fs.pause_next("fsync", reached, resume)      # the first checkpoint's page fsync
    model = {}
    load_until_paused(db, model, reached)
    base = log_base(fs)
    reached2, resume2 = threading.Event(), threading.Event()
    fs.pause_next("fsync", reached2, resume2, skip=1)   # after its meta fsync: the next one's pages

    def flood():                             # far more than checkpoint_size / TAIL_FACTOR of log
        for i in range((LOG_RECYCLE_FACTOR + 1) * OPTIONS["checkpoint_size"] // 100):
            db.put(b"f%06d" % i, b"w" * 60)
            model[b"f%06d" % i] = b"w" * 60

    in_thread(flood, 60.0)
    seq = db.stats()["seq"]
    resume.set()                             # the first checkpoint ends; the commits woke the
    assert reached2.wait(20)                 # background thread, whose next checkpoint is held
    assert log_base(fs) == base              # the first one left the log as it was
    late = threading.Thread(target=db.put, args=(b"late", b"x"), daemon=True)
    late.start()
    late.join(1.0)
    assert late.is_alive(), "the recycling checkpoint let a commit in while it wrote"
    resume2.set()
    late.join(20)
    assert not late.is_alive()
    model[b"late"] = b"x"
    assert log_base(fs) == seq               # recycled at the last commit before `late`
    assert dump(db) == model
    db.close()
    db = kvdb.open(PATH, _fs=fs, **OPTIONS)
    assert dump(db) == model
    assert db.verify()
    db.close()


def test_O4_two_opens_checkpoint_one_at_a_time(tmp_path):
    """Two opens of one database, each committing and checkpointing in the background with a
    small checkpoint_size: every checkpoint waits for the other's, and nothing is lost."""
    path = str(tmp_path / "db")
    a = kvdb.open(path, sync="off", **OPTIONS)
    b = kvdb.open(path, sync="off", **OPTIONS)
    model, lock = {}, threading.Lock()

    def writer(db, tag):
        for i in range(4000):
            key = b"%s%05d" % (tag, i % 1500)
            val = b"%s-%d-" % (tag, i) + b"y" * 100
            with lock:
                db.put(key, val)
                model[key] = val
            if i % 500 == 499:
                db._background_step()        # checkpoint now too, whatever the background thread does

    ta = threading.Thread(target=writer, args=(a, b"a"))
    tb = threading.Thread(target=writer, args=(b, b"b"))
    ta.start(), tb.start()
    ta.join(120), tb.join(120)
    assert not ta.is_alive() and not tb.is_alive()
    assert dump(a) == model and dump(b) == model
    assert a.verify() and b.verify()
    a.close()
    b.close()
    db = kvdb.open(path, **OPTIONS)
    assert dump(db) == model
    assert db.verify()
    db.close()
