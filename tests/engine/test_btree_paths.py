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
