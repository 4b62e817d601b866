"""Targeted tests of B+Tree code paths the model test reaches only by chance:
sorted batch loads that append at the right edge, descending loads, large keys
as separators, and mixed batches that leave the right edge part-way."""

import random

import pytest

import kvdb


def check(db, model):
    assert list(db.scan()) == sorted(model.items())
    assert list(db.scan(reverse=True)) == sorted(model.items(), reverse=True)
    db.verify()


@pytest.mark.parametrize("page_size", [512, 4096])
def test_ascending_batches_append_at_right_edge(tmp_path, page_size):
    model = {}
    with kvdb.open(tmp_path / "db", page_size=page_size, sync="off", cache_size=64 << 10,
                   checkpoint_size=64 << 10) as db:
        n = 0
        for batch in range(40):
            with db.transaction() as tx:
                for _ in range(97):
                    k, v = b"k%08d" % n, b"v%d" % n * (1 + n % 7)
                    tx.put(k, v)
                    model[k] = v
                    n += 1
            if batch % 9 == 0:
                # a snapshot forces the next batch to copy the right edge instead of changing it
                snap = db.snapshot()
                seen = dict(snap.scan())
                with db.transaction() as tx:
                    for i in range(50):
                        k = b"k%08d" % (n + i)
                        tx.put(k, b"x")
                        model[k] = b"x"
                n += 50
                assert dict(snap.scan()) == seen      # the snapshot still reads its version
                snap.close()
        check(db, model)
    with kvdb.open(tmp_path / "db") as db:
        check(db, model)


def test_batch_that_starts_inside_and_ends_past_the_edge(tmp_path):
    rng = random.Random(7)
    model = {}
    with kvdb.open(tmp_path / "db", page_size=512, sync="off") as db:
        for round_ in range(30):
            keys = sorted({b"%06d" % rng.randrange(0, 2000 + 300 * round_) for _ in range(80)})
            with db.transaction() as tx:
                for k in keys:
                    v = bytes([round_ % 256]) * rng.choice([3, 40, 200])
                    tx.put(k, v)
                    model[k] = v
                for k in keys[::5]:
                    tx.delete(k)
                    model.pop(k)
            if round_ % 7 == 0:
                check(db, model)
        check(db, model)


def test_descending_and_large_key_loads(tmp_path):
    model = {}
    with kvdb.open(tmp_path / "db", page_size=512, sync="off") as db:
        for i in range(1500, 0, -1):
            k = b"%05d" % i + (b"L" * 700 if i % 50 == 0 else b"")   # some keys overflow
            db.put(k, b"v%d" % i)
            model[k] = b"v%d" % i
        check(db, model)
        for k in list(model)[::3]:
            assert db.delete(k)
            del model[k]
        check(db, model)


def test_B4_a_snapshot_reads_its_version_while_every_page_changes(tmp_path):
    """B4: a page a live snapshot may reach is copied, never changed in place. With no
    checkpoint, every leaf and branch is rewritten in memory (each key overwritten, keys
    inserted between them, some deleted): a change made in place would show in the
    snapshot's reads."""
    old = {b"k%05d" % i: b"old%d" % i for i in range(0, 4000, 2)}
    model = dict(old)
    with kvdb.open(tmp_path / "db", page_size=512, sync="off", cache_size=64 << 20,
                   checkpoint_size=1 << 30) as db:
        with db.transaction() as tx:
            for k, v in old.items():
                tx.put(k, v)
        with db.snapshot() as snap:
            for round_ in range(3):
                with db.transaction() as tx:
                    for i in range(round_, 4000, 3):
                        k, v = b"k%05d" % i, b"new%d.%d" % (round_, i)
                        tx.put(k, v)
                        model[k] = v
                    for i in range(round_, 4000, 7):
                        k = b"k%05d" % i
                        tx.delete(k)
                        model.pop(k, None)
                assert db.stats()["checkpoints"] == 0
                assert dict(snap.scan()) == old, f"the snapshot's version changed in round {round_}"
                assert snap.get(b"k00000") == b"old0"
        check(db, model)


def test_P3_dirty_pages_are_never_evicted(tmp_path):
    """P3: the buffer pool evicts clean pages only. One commit dirties far more pages than
    the cache holds while it reads clean ones that push the pool over its budget; a dirty
    page evicted before the checkpoint writes it would be lost (its only copy is in memory),
    and the commit's later changes to it would read back stale or damaged bytes."""
    path = tmp_path / "db"
    model = {b"k%05d" % i: b"v%d" % i * 3 for i in range(6000)}
    with kvdb.open(path, page_size=512, sync="off") as db:
        with db.transaction() as tx:
            for k, v in model.items():
                tx.put(k, v)
    # reopened: every page is on disk and clean; the cache holds 64 pages
    with kvdb.open(path, sync="off", cache_size=32 << 10, checkpoint_size=1 << 30) as db:
        with db.transaction() as tx:
            for i in range(0, 6000, 3):
                k, v = b"k%05d" % i, b"new%d" % i
                tx.put(k, v)
                model[k] = v
        s = db.stats()
        assert s["cache_evictions"] > 0 and s["pages"] > 4 * s["cache_capacity_pages"]
        check(db, model)
    with kvdb.open(path) as db:
        check(db, model)



def test_checkpoint_writes_long_runs_and_scattered_pages(tmp_path):
    """One checkpoint writes a run of ~900 adjacent new pages, then pages scattered over the
    file; the reopened file holds every page whole."""
    rng = random.Random(11)
    model = {}
    with kvdb.open(tmp_path / "db", page_size=512, sync="off", cache_size=64 << 20,
                   checkpoint_size=1 << 30) as db:
        db.put_many((b"k%08d" % i, b"v" * 60) for i in range(6000))   # ~900 adjacent new pages
        model.update((b"k%08d" % i, b"v" * 60) for i in range(6000))
        db.checkpoint()
        for i in rng.sample(range(6000), 300):                         # scattered pages
            db.put(b"k%08d" % i, b"w%d" % i)
            model[b"k%08d" % i] = b"w%d" % i
        db.checkpoint()
        assert db.stats()["pages_written"] >= 900
        check(db, model)
    with kvdb.open(tmp_path / "db") as db:
        check(db, model)


def _written_bytes():
    """Bytes this process has sent to the storage layer (/proc/self/io write_bytes), or None."""
    try:
        with open("/proc/self/io") as f:
            return int(next(line for line in f if line.startswith("write_bytes")).split()[1])
    except (OSError, StopIteration, ValueError):
        return None


def test_checkpoints_write_only_their_pages_to_the_disk(tmp_path):
    """Random updates rewrite single pages all over the file, at pgnos earlier checkpoints
    wrote in runs: the bytes the system writes for the checkpoints stay close to the pages they
    write. (Written one pwritev a run, Linux caches each run as one large folio, and a later
    one-page write dirties, and writes back, the whole folio: 3-4x the bytes on ext4, Linux 6.18.)"""
    if _written_bytes() is None:
        pytest.skip("/proc/self/io is not readable here")
    rng = random.Random(5)
    with kvdb.open(tmp_path / "db", sync="off", checkpoint_size=1 << 30) as db:
        db.put_many((b"k%08d" % i, b"v" * 100) for i in range(60000))      # ~2,000 pages
        db.checkpoint()
        pages0, bytes0 = db.stats()["pages_written"], _written_bytes()
        for _ in range(8):
            for i in rng.sample(range(60000), 500):
                db.put(b"k%08d" % i, b"w" * 100)
            db.checkpoint()
        pages = db.stats()["pages_written"] - pages0
        written = _written_bytes() - bytes0
        assert pages > 2000
        assert written < 1.5 * pages * 4096 + (4 << 20), (written, pages)


@pytest.mark.parametrize("page_size", [512, 4096])
def test_scans_over_inline_overflow_and_expiring_cells_match_the_model(tmp_path, page_size):
    """A scan takes each leaf cell that holds its key and value inline and has no expiry in one
    step (Cursor.next_in_leaf) and every other cell through the general path: walks that mix
    the two, forward and reverse, with bounds on and between keys, give the model's items."""
    clock = [1000.0]
    rng = random.Random(7)
    model = {}
    with kvdb.open(tmp_path / "db", page_size=page_size, sync="off", _clock=lambda: clock[0]) as db:
        for n in range(600):
            kind = rng.randrange(6)
            key = b"k%05d" % (n * 3) + (b"K" * 700 if kind == 1 else b"")   # 1: key overflows
            value = b"v%d" % n * (400 if kind == 2 else 1)                    # 2: value overflows
            if kind == 3:
                db.put(key, value, ttl=1000)      # expires later than the scans: still read
                model[key] = value
            elif kind == 4:
                db.put(key, value, ttl=1)         # expired by the scans: skipped
            else:
                db.put(key, value)
                model[key] = value
        clock[0] += 10
        items = sorted(model.items())
        assert list(db.scan()) == items
        assert list(db.scan(reverse=True)) == items[::-1]
        keys = [k for k, _ in items]
        for _ in range(60):
            lo, hi = sorted(rng.sample(keys, 2))
            if rng.random() < 0.5:
                lo += b"\x00"                     # between two keys
            want = [(k, v) for k, v in items if lo <= k < hi]
            assert list(db.scan(start=lo, end=hi)) == want
            assert list(db.scan(start=lo, end=hi, reverse=True)) == want[::-1]
        db.verify()
