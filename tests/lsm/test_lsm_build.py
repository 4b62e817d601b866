"""The LSM engine's GIL-free build path: the LZ4 block codec, the C merge that flushes and
compactions run (corruption it meets is reported by file and offset), and that a build really
runs with the GIL released while Python threads go on."""
import os
import random
import threading
import time

import pytest

import kvdb
from tests.helpers import dump, value
from tests.lsm.test_lsm_engine import _corrupt, _one_table_db

from kvdb._core.lsm import lz4block

lz4_block = pytest.importorskip("lz4.block")


def _samples(rnd):
    yield b""
    yield b"a"
    yield bytes(13)
    yield os.urandom(5000)
    yield bytes(70000)
    yield (b"abcdefghij" * 1000)[:9999]
    for n in (65535, 65536, 65537):              # either side of the 16-bit-position encoder's limit
        yield bytes(rnd.choice(b"abc") for _ in range(n))
        yield (os.urandom(300) * 300)[:n]
    for _ in range(200):
        n = rnd.choice([1, 12, 13, 17, 64, 300, 4096, 20000])
        alphabet = rnd.choice([b"ab", b"abcdefgh", bytes(range(256))])
        yield bytes(rnd.choice(alphabet) for _ in range(n))


def test_lz4_blocks_round_trip_with_the_reference_codec():
    rnd = random.Random(7)
    for data in _samples(rnd):
        mine = lz4block.compress(data)
        assert lz4_block.decompress(mine, uncompressed_size=len(data)) == data
        theirs = lz4_block.compress(data, store_size=False)
        assert lz4block.decompress(theirs, len(data)) == data
        assert lz4block.decompress(mine, len(data)) == data
    assert len(lz4block.compress(bytes(4096))) < 64          # it does compress


def test_lz4_decoder_rejects_damaged_blocks_without_overrunning():
    rnd = random.Random(11)
    data = b"".join(b"key%06d value %d " % (i, i % 7) for i in range(400))
    packed = bytearray(lz4block.compress(data))
    for _ in range(500):
        bad = bytearray(packed)
        for _ in range(rnd.randint(1, 4)):
            bad[rnd.randrange(len(bad))] = rnd.randrange(256)
        cut = bytes(bad[: rnd.randint(0, len(bad))]) if rnd.random() < 0.3 else bytes(bad)
        try:
            out = lz4block.decompress(cut, len(data))
        except ValueError:
            continue
        assert len(out) == len(data)                          # decodable damage stays within bounds
    with pytest.raises(ValueError):
        lz4block.decompress(bytes(packed), len(data) - 1)     # the stated size must match


def test_compaction_reports_a_corrupt_block_by_file_and_offset(db_path):
    model, path = _one_table_db(db_path)
    _corrupt(path, 10)                                        # inside the first data block
    with kvdb.open(db_path) as db:
        with pytest.raises(kvdb.CorruptionError) as e:
            db.compact()
        assert e.value.path == path and e.value.offset == 0 and "checksum" in str(e.value)
        assert os.path.exists(path)                           # the input stays; nothing installed


def test_lsm_L2_flush_and_compaction_keep_versions_snapshots_need(db_path):
    """L2: a flush or compaction keeps the versions a snapshot can read, and drops the rest
    (tombstones included) once no snapshot needs them."""
    opts = dict(engine="lsm", memtable_size=64 << 10, sstable_size=16 << 10, level1_size=64 << 10)
    with kvdb.open(db_path, sync="off", **opts) as db:
        for i in range(2000):
            db.put(b"k%05d" % i, value(i, 60))
        snap = db.snapshot()
        for i in range(0, 2000, 2):
            db.delete(b"k%05d" % i)
        for i in range(1, 2000, 4):
            db.put(b"k%05d" % i, b"new", ttl=3600)
        db.compact()
        assert snap.get(b"k00000") == value(0, 60) and snap.get(b"k00001") == value(1, 60)
        assert db.get(b"k00000") is None and db.get(b"k00001") == b"new"
        assert db.ttl(b"k00001") > 3000
        del snap
        db.compact()
        assert set(dump(db)) == {b"k%05d" % i for i in range(1, 2000, 2)}
        db.verify()


def test_compaction_builds_tables_with_the_gil_released(db_path):
    """A Python thread keeps running while a compaction builds its tables: during every
    GIL-free stretch the engine records, the thread takes timestamps. If the build held the
    GIL, no timestamp could fall inside a stretch."""
    opts = dict(engine="lsm", memtable_size=8 << 20, sstable_size=64 << 20, level1_size=256 << 20)
    with kvdb.open(db_path, sync="off", **opts) as db:
        rnd = random.Random(3)
        for i in range(120000):
            db.put(b"key%08d" % rnd.randrange(10 ** 8), value(i, 100))
        db.checkpoint()                                       # level-0 tables to merge
        stop = threading.Event()
        stamps = []

        def count():
            n = 0
            while not stop.is_set():
                n += 1
                if n % 32 == 0:
                    stamps.append(time.monotonic())

        t = threading.Thread(target=count)
        t.start()
        try:
            db.compact()
        finally:
            stop.set()
            t.join()
        windows = [(a, b) for a, b in db.storage.tree.last_build_windows if b - a > 0.005]
        assert windows, "the compaction built no table"
        inside = sum(1 for s in stamps if any(a < s < b for a, b in windows))
        assert inside > 0
        assert db.stats()["lsm_build_seconds"] > 0


def test_table_cache_bounds_open_files_and_reopens_evicted_tables(db_path):
    from tests.lsm.test_lsm_engine import TINY, fill, live_tables, tables
    import gc

    with kvdb.open(db_path, sync="off", max_open_tables=3, **TINY) as db:
        model = fill(db, 3000)
        db.checkpoint()
        s = db.stats()
        assert s["table_cache_capacity"] == 3 and sum(s["lsm_files_per_level"]) > 6
        assert s["table_cache_open_files"] <= 3
        it = iter(db.scan())                               # an iterator reading across evictions
        first = [next(it) for _ in range(10)]
        for k in list(model)[::7]:
            assert db[k] == model[k]                       # point reads reopen evicted tables
        assert first + list(it) == sorted(model.items())
        s = db.stats()
        assert s["table_cache_open_files"] <= 3
        assert s["table_cache_evictions"] > 0 and s["table_cache_misses"] > 0
        db.compact()                                       # compaction reads evicted tables too
        assert dump(db) == model
        db.verify()
        gc.collect()
        assert tables(db_path) == live_tables(db)          # retired files are still removed (L3)
    with kvdb.open(db_path, max_open_tables=1) as db:     # reopen with a smaller bound
        assert dump(db) == model and db.stats()["table_cache_open_files"] <= 1
    with pytest.raises(ValueError, match="max_open_tables"):
        kvdb.open(db_path, max_open_tables=0)


def test_compaction_picks_the_most_urgent_level_not_always_level_0(tmp_path):
    """Level 0 at its trigger (score 1) must not starve a level 1 four times over its limit:
    random writes overlap all of level 1, so always emptying level 0 first made level 1 grow
    without bound and every L0->L1 compaction rewrite all of it."""
    from kvdb._core.file import OsFS
    from kvdb._core.lsm.tree import LsmTree, L0_COMPACTION_TRIGGER
    from kvdb._core.lsm.manifest import FileMeta
    from kvdb._core.lsm.memtable import Memtable

    eng = LsmTree(OsFS(), str(tmp_path), 1 << 20, 0, 1 << 20, 1 << 20)

    def meta(level, n, lo, hi, size):
        return FileMeta(level, n, size, lo, hi, 1, 1, 1)

    l0 = [meta(0, i, b"a", b"z", 1 << 20) for i in range(L0_COMPACTION_TRIGGER)]
    l1 = [meta(1, 10 + i, b"%c" % (97 + 2 * i), b"%c" % (98 + 2 * i), 1 << 20) for i in range(4)]
    l2 = [meta(2, 20, b"a", b"b", 1 << 20)]
    eng.current = (Memtable(0), [], [l0, l1, l2] + [[] for _ in range(4)])
    level, inputs, below = eng.pick_compaction()
    assert level == 1 and len(inputs) == 1 and below == l2        # level 1 scores 4, level 0 only 1
    eng.current = (Memtable(0), [], [l0 * 5, l1, l2] + [[] for _ in range(4)])
    assert eng.pick_compaction()[0] == 0                           # level 0 at 5x its trigger wins
    eng.current = (Memtable(0), [], [l0[:1], [], []] + [[] for _ in range(4)])
    assert eng.pick_compaction() is None
    assert eng.pick_compaction(force=True)[0] == 0                 # db.compact() takes any level-0 table
