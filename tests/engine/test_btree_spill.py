"""B+Tree: dirty pages written ahead of the checkpoint (P7 in kvdb/_core/btree/pager.pxd).

When a commit leaves more dirty pages than dirty_limit (three quarters of the cache), the oldest
dirty leaves are written to their own page numbers, which no meta reaches, and become evictable;
the next checkpoint (due by the log's size) makes them durable with its fsync. These tests check
that such pages are changed in place again rather than copied, that snapshots and other opens
never see them, that power loss and a failed write lose nothing acknowledged, and that another
open cannot checkpoint while they wait.
"""
import threading

import pytest

import kvdb
from tests.helpers import dump

try:
    from kvdb._core.file import SimFS
except ImportError:  # pragma: no cover - reported by the tests that need it
    SimFS = None

# 32 pages of cache: dirty_limit is its floor, 64 pages; a log threshold no test reaches.
SMALL = dict(page_size=512, cache_size=16 << 10, checkpoint_size=1 << 30)
SIM_PATH = "/sim/db"


def fill(db, n, value):
    model = {}
    for i in range(n):
        key = b"k%06d" % ((i * 7919) % n)     # scattered: every leaf keeps being touched
        db.put(key, value)
        model[key] = value
    return model


def test_P7_pages_written_ahead_are_changed_in_place_until_the_checkpoint(tmp_path):
    path = tmp_path / "db"
    with kvdb.open(path, sync="off", **SMALL) as db:
        db.put(b"a", b"1")
        early = db.snapshot()            # sees none of the pages below, and keeps freed ones from reuse
        model = fill(db, 3000, b"v" * 60)
        s = db.stats()
        assert s["pages_spilled"] > 0 and s["spilled_pages"] > 0
        assert s["checkpoints"] == 0 and s["dirty_pages"] < 64
        pages = s["pages"]
        model = fill(db, 3000, b"w" * 60)
        s = db.stats()
        assert s["checkpoints"] == 0
        # Overwriting every key touched every leaf: pages written ahead were made dirty again at
        # their own numbers, not copied (a copy would add a page per leaf, about as many again,
        # since the snapshot keeps the freed ones from reuse).
        assert s["pages"] - pages < pages // 10, (pages, s["pages"])
        assert early.get(b"k000001") is None and early.get(b"a") == b"1"
        early.close()
        model[b"a"] = b"1"
        assert dump(db) == model
        db.verify()
        db.checkpoint()
        s = db.stats()
        assert s["spilled_pages"] == 0 and s["checkpoints"] == 1
        db.verify()
    with kvdb.open(path, **SMALL) as db:
        assert dump(db) == model
        db.verify()


def test_P7_a_snapshot_keeps_reading_what_was_written_ahead(tmp_path):
    with kvdb.open(tmp_path / "db", sync="off", **SMALL) as db:
        old = fill(db, 3000, b"v" * 60)
        assert db.stats()["spilled_pages"] > 0
        with db.snapshot() as snap:
            new = fill(db, 3000, b"w" * 70)      # pages the snapshot sees are copied, not changed
            for i in range(0, 3000, 7):
                db.delete(b"k%06d" % i)
                del new[b"k%06d" % i]
            assert db.stats()["pages_spilled"] > 0
            assert dict(snap.scan()) == old
            assert all(snap.get(k) == v for k, v in old.items())
        assert dump(db) == new
        db.verify()


@pytest.mark.skipif(SimFS is None, reason="kvdb._core.file.SimFS is missing")
@pytest.mark.parametrize("seed", range(4))
def test_P7_power_loss_with_pages_written_ahead_loses_no_commit(seed):
    fs = SimFS()
    db = kvdb.open(SIM_PATH, _fs=fs, sync="full", **SMALL)
    model = fill(db, 1500, b"v" * 60)
    model.update(fill(db, 700, b"w" * 60))
    assert db.stats()["pages_spilled"] > 0 and db.stats()["checkpoints"] == 0
    fs.crash_after(1)                   # the abandoned open must not write after the power loss
    db = None
    fs.crash(seed)
    with kvdb.open(SIM_PATH, _fs=fs, sync="full", **SMALL) as db:
        assert dump(db) == model
        db.verify()


@pytest.mark.skipif(SimFS is None, reason="kvdb._core.file.SimFS is missing")
def test_P7_a_failed_write_ahead_refuses_writes_and_loses_no_commit():
    """A sweep of failing writes, some of which land in a write-ahead of dirty pages: the
    database then refuses writes, and a reopen holds every acknowledged commit."""
    hit = 0
    for n in range(1, 700, 23):
        fs = SimFS()
        db = kvdb.open(SIM_PATH, _fs=fs, sync="full", **SMALL)
        fs.fail_after(n, op="write")
        model = {}
        try:
            for i in range(3000):
                key = b"k%06d" % ((i * 7919) % 3000)
                db.put(key, b"%d" % i * 20)
                model[key] = b"%d" % i * 20
            pytest.fail(f"fail_after({n}): no write failed")
        except kvdb.IOFailureError as e:
            in_flight = (key, b"%d" % i * 20)
            hit += "ahead of the checkpoint" in str(e)
        with pytest.raises(kvdb.IOFailureError):
            db.put(b"refused", b"1")
        db.close()
        with kvdb.open(SIM_PATH, _fs=fs, sync="full", **SMALL) as db:
            got = dump(db)
            assert got in (model, {**model, in_flight[0]: in_flight[1]}), f"fail_after({n}): commits lost"
            db.verify()
    assert hit, "no failure landed in a write-ahead of dirty pages"


def test_P7_another_open_does_not_checkpoint_while_pages_wait(tmp_path):
    path = tmp_path / "db"
    with kvdb.open(path, sync="off", **SMALL) as a, kvdb.open(path, sync="off", **SMALL) as b:
        model = fill(a, 3000, b"a" * 60)
        assert a.stats()["spilled_pages"] > 0
        for i in range(2000):            # b cannot write ahead: a holds the checkpoint lock
            b.put(b"b%06d" % i, b"b" * 60)
            model[b"b%06d" % i] = b"b" * 60
        assert b.stats()["pages_spilled"] == 0
        seen = []

        def checkpoint_b():
            try:
                b.checkpoint()
                seen.append(a.stats()["spilled_pages"])     # a's pages were taken first
            except BaseException as e:  # noqa: BLE001 - reported below
                seen.append(e)

        t = threading.Thread(target=checkpoint_b)
        t.start()
        # a's background step hands the lock over within about a second (other opens exist);
        # b's checkpoint can only end after a's has taken the pages a wrote ahead
        t.join(30)
        assert not t.is_alive() and seen == [0], seen
        assert a.stats()["checkpoints"] >= 1
        assert dump(a) == model and dump(b) == model
        a.verify()
        b.verify()
    with kvdb.open(path, **SMALL) as db:
        assert dump(db) == model
        db.verify()
