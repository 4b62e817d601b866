"""The LSM engine's own behaviour: flushes and compactions, snapshots and iterators across
them, file lifecycle (orphans, deferred removal), corruption reports naming file and offset,
crashes during flush / compaction / manifest switch, stats and space.

The engine-agnostic behaviour (API, transactions, model tests) runs on both engines through
the `engine` fixture elsewhere.
"""
import gc
import os
import weakref

import pytest

import kvdb
from tests.helpers import drop_abandoned, dump, value

try:
    from kvdb._core.file import SimFS, SimulatedCrash
except ImportError:  # pragma: no cover
    SimFS = SimulatedCrash = None

TINY = dict(engine="lsm", memtable_size=4 << 10, sstable_size=4 << 10, level1_size=16 << 10)


def tables(path):
    return sorted(n for n in os.listdir(path) if n.endswith(".sst"))


def live_tables(db):
    return sorted("%06d.sst" % number for _, number, _ in db.storage.tree.live_files())


def fill(db, n, seed=0, size=100, prefix=b"k"):
    model = {}
    for i in range(n):
        k = prefix + b"%05d" % ((i * 7919 + seed) % n)
        v = value(seed * 100000 + i, size)
        db.put(k, v)
        model[k] = v
    return model


def test_flushes_and_compactions_keep_every_key(db_path):
    with kvdb.open(db_path, sync="off", **TINY) as db:
        model = fill(db, 3000)
        for i in range(0, 3000, 3):
            k = b"k%05d" % i
            db.delete(k)
            model.pop(k, None)
        db.checkpoint()
        db.compact()
        s = db.stats()
        assert s["lsm_flushes"] > 10 and s["lsm_compactions"] + s["lsm_trivial_moves"] > 0
        assert sum(s["lsm_files_per_level"][1:]) > 0 and s["lsm_files_per_level"][0] == 0
        assert dump(db) == model and len(db) == len(model)
        for k in list(model)[:200]:
            assert db[k] == model[k]
        for i in range(0, 300, 3):
            assert db.get(b"k%05d" % i) is None
        db.verify()
        gc.collect()                        # retired tables go when their last reference does
        assert tables(db_path) == live_tables(db)
    with kvdb.open(db_path) as db:          # the directory says which engine
        assert db.engine == "lsm"
        assert dump(db) == model
        db.verify()


def test_a_load_in_key_order_moves_level0_tables_without_rewriting_them(db_path):
    """Level-0 tables that overlap neither each other nor level 1 move down whole (one manifest
    edit, as RocksDB moves them), so a load in key order rewrites nothing; tables that overlap
    are merged as before."""
    opts = dict(TINY, memtable_size=16 << 10)        # level-0 tables above half of sstable_size
    with kvdb.open(db_path, sync="off", **opts) as db:
        model = {}
        for i in range(3000):                        # ascending keys: disjoint level-0 tables
            model[b"k%05d" % i] = value(i, 100)
            db.put(b"k%05d" % i, model[b"k%05d" % i])
        db.checkpoint()
        s = db.stats()
        assert s["lsm_flushes"] > 10 and s["lsm_trivial_moves"] > 0
        assert s["lsm_bytes_compacted"] == 0 and s["lsm_bytes_compaction_read"] == 0
        assert sum(s["lsm_files_per_level"][1:]) > 0
        assert dump(db) == model
        db.verify()                                  # each level's tables in order, disjoint
        for i in range(0, 3000, 2):                  # rewrites over the whole range overlap
            model[b"k%05d" % i] = b"again"
            db.put(b"k%05d" % i, b"again")
        db.checkpoint()
        db.compact()
        assert db.stats()["lsm_bytes_compacted"] > 0
        assert dump(db) == model
        db.verify()
    with kvdb.open(db_path) as db:
        assert dump(db) == model


def test_small_level0_tables_in_key_order_are_merged_not_moved(tmp_path):
    """Flushes of a small memtable make level-0 tables under half of sstable_size: moving them
    would fill level 1 with tiny files (thousands of open files for a long load), so they are
    merged into full-size tables even when they do not overlap."""
    opts = dict(TINY, memtable_size=4 << 10, sstable_size=64 << 10, level1_size=1 << 20)
    with kvdb.open(str(tmp_path / "db"), sync="off", **opts) as db:
        for i in range(3000):
            db.put(b"k%05d" % i, value(i, 100))
        db.checkpoint()
        s = db.stats()
        assert s["lsm_flushes"] > 20 and s["lsm_bytes_compacted"] > 0
        level1 = db.storage.tree.current[2][1]
        assert level1 and sum(f.size for f in level1) / len(level1) > (16 << 10)
        db.verify()


def test_engine_mismatch_is_refused(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    kvdb.open(a, engine="lsm").close()
    kvdb.open(b, engine="btree").close()
    with pytest.raises(ValueError, match="engine='lsm'"):
        kvdb.open(a, engine="btree")
    with pytest.raises(ValueError, match="engine='btree'"):
        kvdb.open(b, engine="lsm")
    for bad in (dict(memtable_size=0), dict(sstable_size=-1)):
        with pytest.raises(ValueError):
            kvdb.open(str(tmp_path / "c"), engine="lsm", **bad)
    with pytest.raises(TypeError, match="level1_size must be an integer"):
        kvdb.open(str(tmp_path / "c"), engine="lsm", level1_size="big")


def test_snapshot_and_iterator_survive_compaction(db_path):
    with kvdb.open(db_path, sync="off", **TINY) as db:
        before = fill(db, 1500, seed=1)
        snap = db.snapshot()
        it = db.scan()
        head = [next(it) for _ in range(10)]
        after = fill(db, 1500, seed=2)             # every key overwritten
        for k in list(after)[:500]:
            db.delete(k)
            del after[k]
        db.compact()
        s = db.stats()
        assert s["lsm_files_per_level"][0] == 0
        assert dump(snap) == before                 # its versions were kept for it
        assert snap.get(b"k00001") == before[b"k00001"]
        rest = list(it)
        assert dict(head + rest) == before          # the iterator saw one consistent version
        assert dump(db) == after
        snap.close()
        db.compact()                                # nothing pins the old versions now
        assert dump(db) == after
        db.verify()


def test_old_versions_go_once_no_snapshot_needs_them(db_path):
    with kvdb.open(db_path, sync="off", **TINY) as db:
        for rnd in range(5):
            fill(db, 800, seed=rnd)
        db.compact()
        s = db.stats()
        assert s["entries_estimate"] == 800         # one version per key is left
        assert s["entries"] == 800                  # the exact count of keys (L4)
        live = sum(s["lsm_bytes_per_level"])
        for rnd in range(5, 10):
            fill(db, 800, seed=rnd)
        db.compact()
        assert sum(db.stats()["lsm_bytes_per_level"]) < live * 1.5
        for i in range(800):
            db.delete(b"k%05d" % i)
        db.compact()
        s = db.stats()
        assert s["entries_estimate"] == 0 and sum(s["lsm_files_per_level"]) == 0   # tombstones dropped
        gc.collect()
        assert tables(db_path) == []


def test_lsm_L3_compacted_files_are_removed_only_when_no_iterator_holds_them(db_path):
    """L3: a table file leaves the disk only when no reader holds its Table."""
    # three flushes, three level-0 tables: below the compaction trigger, so no background
    # compaction races the test
    with kvdb.open(db_path, sync="off", engine="lsm", memtable_size=1 << 30) as db:
        model = {}
        for rnd in range(3):
            model.update(fill(db, 1000, seed=rnd))
            db.checkpoint()
        old = set(tables(db_path))
        assert len(old) == 3
        it = db.scan()
        next(it)
        db.compact()
        assert old - set(live_tables(db)), "compaction replaced no table"
        assert old <= set(tables(db_path)), "a table an iterator reads was removed"
        assert len(list(it)) == len(model) - 1
        it.close()
        del it
        gc.collect()
        assert tables(db_path) == live_tables(db)


def test_lsm_L1_newer_sources_hold_newer_versions(db_path):
    """L1: per key, every version in a newer source (the memtables, level-0 tables newest
    first, then levels 1, 2, ...) is newer than every version in an older one, so a read
    stops at the first source holding the key. Each put writes a counter that grows with the
    commit order; the newest version of a key in each source, read newest source first,
    must give falling counters."""
    import random
    rng = random.Random(4)
    with kvdb.open(db_path, sync="off", **TINY) as db:
        n = 0
        for round_ in range(6):
            for _ in range(600):
                n += 1
                db.put(b"k%03d" % rng.randrange(300), b"%08d" % n + b"x" * 60)
            if round_ in (1, 3):
                db.compact()                         # rounds 4 and 5 stay in level 0 and the memtable
        mem, imms, levels = db.storage.tree.current
        sources = [mem] + list(imms) + [f.table for f in levels[0]]
        sources += [f.table for level in levels[1:] for f in level]   # disjoint within a level
        newest = (1 << 56) - 1
        several = 0
        for i in range(300):
            key = b"k%03d" % i
            found = [int(r[1][:8]) for r in (s.get(key, newest) for s in sources) if r is not None]
            assert found == sorted(found, reverse=True) and len(set(found)) == len(found), \
                f"{key!r}: versions by source, newest source first: {found}"
            several += len(found) > 1
        assert several, "no key had versions in two sources: the test checked nothing"


def test_orphans_are_removed_at_open(db_path):
    with kvdb.open(db_path, **TINY) as db:
        fill(db, 500)
    for name in ("999990.sst", "MANIFEST-999991", "CURRENT.tmp"):
        with open(os.path.join(db_path, name), "wb") as f:
            f.write(b"left by a crash")
    with kvdb.open(db_path) as db:
        names = os.listdir(db_path)
        assert "999990.sst" not in names and "MANIFEST-999991" not in names and "CURRENT.tmp" not in names
        assert tables(db_path) == live_tables(db)
        assert len(db) == 500


def test_stats_report_levels_amplification_bloom_and_cache(db_path):
    with kvdb.open(db_path, sync="off", cache_size=1 << 20, **TINY) as db:
        fill(db, 2000)
        db.checkpoint()
        for i in range(2000):
            db.get(b"k%05d" % i)
            db.get(b"missing%05d" % i)
        s = db.stats()
        for key in ("lsm_files_per_level", "lsm_bytes_per_level", "lsm_bytes_flushed", "lsm_bytes_compacted",
                    "lsm_bloom_checks", "lsm_bloom_false_positives", "block_cache_hit_rate", "lsm_stall_seconds"):
            assert key in s, key
        assert len(s["lsm_files_per_level"]) == 7
        assert s["lsm_bytes_flushed"] > 2000 * 100 / 2          # lz4 cannot shrink random values much
        assert s["lsm_bloom_checks"] > 2000 and s["lsm_bloom_negatives"] > 1000
        assert s["lsm_bloom_false_positives"] < s["lsm_bloom_checks"] * 0.1
        assert 0 < s["block_cache_hit_rate"] <= 1


def _corrupt(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def _one_table_db(db_path):
    with kvdb.open(db_path, sync="off", engine="lsm", memtable_size=1 << 20) as db:
        model = fill(db, 300)
    (name,) = tables(db_path)
    return model, os.path.join(db_path, name)


@pytest.mark.parametrize("read_path", ["mmap", "pread"])
def test_both_read_paths_read_the_same_tables(db_path, read_path):
    """read_path="mmap" checks and decompresses a block straight from the table's map; "pread"
    copies it in first. Values compressible and not, over several tables, read alike."""
    with kvdb.open(db_path, sync="off", **TINY) as db:
        model = fill(db, 2000)
        model.update(fill(db, 500, seed=3, size=300, prefix=b"z"))
        db.compact()
    with kvdb.open(db_path, read_path=read_path, cache_size=0) as db:   # every read misses the cache
        assert db.stats()["read_path"] == read_path
        assert dump(db) == model and list(db.scan(reverse=True)) == sorted(model.items(), reverse=True)
        for k in list(model)[::7]:
            assert db[k] == model[k]
        db.verify()


@pytest.mark.parametrize("read_path", ["mmap", "pread"])
def test_corrupt_data_block_names_file_and_offset(db_path, read_path):
    model, path = _one_table_db(db_path)
    _corrupt(path, 10)                              # inside the first data block
    with kvdb.open(db_path, read_path=read_path) as db:
        with pytest.raises(kvdb.CorruptionError) as e:
            db.verify()
        assert e.value.path == path and e.value.offset == 0 and path in str(e.value)
        with pytest.raises(kvdb.CorruptionError) as e:
            dump(db)
        assert e.value.path == path and "offset 0" in str(e.value)


@pytest.mark.parametrize("where", ["footer", "index"])
def test_corrupt_footer_or_index_is_reported_at_open(db_path, where):
    model, path = _one_table_db(db_path)
    size = os.path.getsize(path)
    footer = 52
    if where == "footer":
        _corrupt(path, size - 10)
    else:
        _corrupt(path, size - footer - 8)           # the index block sits right before the footer
    with pytest.raises(kvdb.CorruptionError) as e:
        kvdb.open(db_path)
    assert e.value.path == path and e.value.offset is not None and path in str(e.value)


def test_missing_table_is_reported(db_path):
    model, path = _one_table_db(db_path)
    os.remove(path)
    with pytest.raises(kvdb.CorruptionError, match="missing"):
        kvdb.open(db_path)


def test_M2_manifest_recovery_ignores_a_torn_tail_and_refuses_damage_before_it(db_path):
    """M2: a record cut short at the end of the manifest is a torn append and is ignored; a
    damaged record with more bytes after it is CorruptionError naming the file and offset."""
    import shutil
    import struct
    with kvdb.open(db_path, sync="off", engine="lsm", memtable_size=1 << 30) as db:
        model = {}
        for rnd in range(3):
            model.update(fill(db, 300, seed=rnd, prefix=b"r%d" % rnd))
            db.checkpoint()                          # a flush: one more manifest record
    with open(os.path.join(db_path, "CURRENT")) as f:
        name = f.read().strip()
    with open(os.path.join(db_path, name), "rb") as f:
        pristine = f.read()
    header, record = 16, 8                           # docs/format/manifest.md
    assert len(pristine) > header + record + struct.unpack_from("<I", pristine, header + 4)[0] + record
    damaged = db_path + "-damaged"
    shutil.copytree(db_path, damaged)

    with open(os.path.join(db_path, name), "ab") as f:   # a record header promising 100 bytes, then 10
        f.write(struct.pack("<II", 0, 100) + b"x" * 10)
    with kvdb.open(db_path) as db:
        assert dump(db) == model

    data = bytearray(pristine)
    data[header + record] ^= 0x40                    # the first record's first byte; records follow
    with open(os.path.join(damaged, name), "wb") as f:
        f.write(data)
    with pytest.raises(kvdb.CorruptionError) as e:
        kvdb.open(damaged)
    assert e.value.path == os.path.join(damaged, name) and e.value.offset == header


# -- crashes ---------------------------------------------------------------------

SIM = "/sim/lsm"


def _workload(db, acked, rounds):
    """Puts, deletes, transactions, checkpoints (flush + manifest edits) and compactions
    (manifest edits, file removal); `acked` gets each acknowledged state."""
    state = dict(acked[-1])
    for r in range(rounds):
        for i in range(40):
            k = b"k%03d" % ((r * 37 + i * 11) % 150)
            if i % 5 == 4:
                db.delete(k)
                state.pop(k, None)
            else:
                v = b"%d-%d" % (r, i) * 8
                db.put(k, v)
                state[k] = v
            acked.append(dict(state))
        if r % 2 == 1:
            db.checkpoint()
        if r % 3 == 2:
            db.compact()


@pytest.mark.skipif(SimFS is None, reason="SimFS missing")
def test_M1_crash_during_flush_compaction_and_manifest_switch(long_mode):
    """M1: a manifest edit is durable before what it describes is used (and L3: a table file
    goes only after the edit that drops it). Power loss at every I/O call of a workload with
    flushes, compactions and manifest switches: reopening loses nothing acknowledged, and every
    table on disk is in use."""
    probe = SimFS()
    db = kvdb.open(SIM, _fs=probe, **TINY)
    base = probe.io_calls
    _workload(db, [{}], 6)
    total = probe.io_calls - base
    db.close()
    step = 1 if long_mode else max(1, total // 60)
    for n in range(1, total + 1, step):
        fs = SimFS()
        db = kvdb.open(SIM, _fs=fs, **TINY)
        acked = [{}]
        fs.crash_after(n)
        try:
            _workload(db, acked, 6)
        except (SimulatedCrash, kvdb.Error):
            pass
        abandoned = weakref.ref(db)
        db = None
        drop_abandoned(abandoned)
        fs.crash(n)
        db = kvdb.open(SIM, _fs=fs, **TINY)
        got = dump(db)
        # sync="full": the last acknowledged state, or that plus the interrupted commit
        assert got == acked[-1] or _one_more(acked[-1], got), f"crash at call {n}: lost an acknowledged commit"
        db.verify()
        on_disk = sorted(p.rsplit("/", 1)[1] for p in _sim_files(fs) if p.endswith(".sst"))
        assert on_disk == live_tables(db), f"crash at call {n}: orphan tables after reopen"
        db.close()


def _one_more(state, got):
    """got differs from state by exactly one key (the interrupted single-key commit)."""
    diff = {k for k in set(state) | set(got) if state.get(k) != got.get(k)}
    return len(diff) == 1


def _sim_files(fs):
    return [SIM + "/" + n for n in fs.listdir(SIM)]
