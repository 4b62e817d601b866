"""The LSM engine's count of keys (invariant L4 in kvdb/_core/lsm/tree.pyx; M4 in
docs/format/manifest.md): len() reads a number the commit path keeps, never scans, and the
number survives flushes, compactions, reopening and a manifest of version 1 (which holds none).
The Hypothesis models (tests/engine/test_model.py) compare len() with a dict through reopen and
simulated-crash steps, and verify() checks the count against a scan there."""
import os
import random
import struct

import pytest

import kvdb
from kvdb._core.coding import crc32c_of as crc32c
from kvdb._core.lsm.manifest import decode_edit, encode_edit, read_manifest
from kvdb._core.file import OsFS

SMALL = dict(engine="lsm", sync="off", memtable_size=8 << 10, sstable_size=8 << 10, level1_size=32 << 10,
             cache_size=64 << 10)


def scan_count(db):
    return sum(1 for _ in db.keys())


def fill_mixed(db, rng, n, space):
    """n random commits over `space` keys: puts, overwrites, deletes of present and absent
    keys, and transactions writing one key twice; returns the model."""
    model = {}
    for i in range(n):
        k = b"k%05d" % rng.randrange(space)
        r = rng.random()
        if r < 0.55:
            db.put(k, b"v%d" % i)
            model[k] = b"v%d" % i
        elif r < 0.8:
            db.discard(k)
            model.pop(k, None)
        elif r < 0.9:
            with db.transaction() as tx:      # put then delete, delete then put, in one commit
                tx.put(k, b"a")
                tx.delete(k)
                k2 = b"k%05d" % rng.randrange(space)
                tx.delete(k2)
                tx.put(k2, b"b")
            model.pop(k, None)
            model[k2] = b"b"
        else:
            pairs = [(b"k%05d" % rng.randrange(space), b"m%d" % i) for _ in range(20)]
            db.put_many(pairs)
            model.update(pairs)
    return model


def test_lsm_L4_len_counts_through_flushes_and_compactions(tmp_path):
    rng = random.Random(4)
    with kvdb.open(str(tmp_path / "db"), **SMALL) as db:
        model = fill_mixed(db, rng, 6000, 1500)
        s = db.stats()
        assert s["lsm_flushes"] > 3 and s["lsm_compactions"] + s["lsm_trivial_moves"] > 0, s
        assert len(db) == len(model) == scan_count(db) == s["entries"]
        db.compact()
        assert len(db) == len(model)
        db.verify()                              # the count against a scan of the same version
    with kvdb.open(str(tmp_path / "db"), **SMALL) as db:
        assert len(db) == len(model)


def test_lsm_L4_len_reads_no_table(tmp_path):
    with kvdb.open(str(tmp_path / "db"), **SMALL) as db:
        db.put_many([(b"k%06d" % i, b"x" * 50) for i in range(20000)])
        db.checkpoint()                          # every memtable flushed: the keys are in tables
        before = db.stats()
        assert len(db) == 20000
        after = db.stats()
        assert (after["block_cache_hits"], after["block_cache_misses"], after["lsm_bloom_checks"]) == \
            (before["block_cache_hits"], before["block_cache_misses"], before["lsm_bloom_checks"])


def test_lsm_L4_snapshots_and_transactions_count_their_version(tmp_path):
    with kvdb.open(str(tmp_path / "db"), **SMALL) as db:
        db.put_many([(b"k%04d" % i, b"v") for i in range(3000)])
        with db.snapshot() as snap:
            for i in range(0, 3000, 2):
                db.delete(b"k%04d" % i)
            assert len(snap) == 3000 and len(db) == 1500
            with db.transaction() as tx:
                tx.put(b"new", b"1")
                tx.delete(b"k0001")
                assert len(tx) == 1500
        assert len(db) == 1500


def test_lsm_L4_expired_keys_count_until_deleted(tmp_path):
    now = [1000.0]
    with kvdb.open(str(tmp_path / "db"), _clock=lambda: now[0], **SMALL) as db:
        db.put(b"a", b"1", ttl=5)
        db.put(b"b", b"2")
        now[0] += 10
        assert b"a" not in db
        assert len(db) == 2                      # stored until the sweep deletes it, as DBSIZE counts
        assert db.delete(b"a") is False          # expired: no delete, as on the B+Tree
        assert len(db) == 2
        while not db._sweep_expired(1000)[2]:    # the sweep deletes it
            pass
        assert len(db) == 1


def _rewrite_as_version_1(path):
    """Rewrite the LSM database's manifest as version 1 wrote it: no live_keys field (M4)."""
    number, edits, _ = read_manifest(OsFS(), path)
    name = os.path.join(path, "MANIFEST-%06d" % number)
    out = bytearray(b"kvdb-man" + struct.pack("<I", 1))
    out += struct.pack("<I", crc32c(bytes(out)))
    for e in edits:
        fields = {k: e[k] for k in ("log_number", "next_file") if k in e}
        payload = encode_edit(added=e["added"], deleted=e["deleted"], **fields)
        if "last_seq" in e:
            payload += bytes([3]) + _varint(e["last_seq"])
        assert decode_edit(payload).get("live_keys") is None
        body = struct.pack("<I", len(payload)) + payload
        out += struct.pack("<I", crc32c(body)) + body
    with open(name, "wb") as f:
        f.write(out)


def _varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def test_M4_every_edit_with_last_seq_carries_the_count(tmp_path):
    path = str(tmp_path / "db")
    with kvdb.open(path, **SMALL) as db:
        fill_mixed(db, random.Random(7), 3000, 800)
        expected = len(db)
    _, edits, _ = read_manifest(OsFS(), path)
    with_seq = [e for e in edits if "last_seq" in e]
    assert len(with_seq) >= 2
    assert all("live_keys" in e for e in with_seq)
    assert with_seq[-1]["live_keys"] == expected     # close flushed everything


def test_M4_a_version_1_manifest_is_counted_once_at_open(tmp_path):
    path = str(tmp_path / "db")
    with kvdb.open(path, **SMALL) as db:
        model = fill_mixed(db, random.Random(9), 3000, 800)
    _rewrite_as_version_1(path)
    with open(os.path.join(path, "CURRENT")) as f:
        old_manifest = f.read().strip()
    with kvdb.open(path, readonly=True) as ro:       # a read-only open of it keeps no count: it scans
        assert ro.stats()["entries"] is None
        assert len(ro) == len(model)
    with kvdb.open(path, **SMALL) as db:
        assert db.stats()["entries"] == len(model) == len(db)
        db.put(b"zz-new", b"1")
        assert len(db) == len(model) + 1
    with open(os.path.join(path, "CURRENT")) as f:
        assert f.read().strip() != old_manifest      # the open wrote a version 2 manifest
    _, edits, _ = read_manifest(OsFS(), path)
    assert edits[0]["live_keys"] == len(model)


def test_a_manifest_of_a_later_version_is_refused(tmp_path):
    path = str(tmp_path / "db")
    with kvdb.open(path, **SMALL) as db:
        db.put(b"a", b"1")
    with open(os.path.join(path, "CURRENT")) as f:
        name = os.path.join(path, f.read().strip())
    data = bytearray(open(name, "rb").read())
    data[8:12] = struct.pack("<I", 99)
    data[12:16] = struct.pack("<I", crc32c(bytes(data[:12])))
    open(name, "wb").write(data)
    with pytest.raises(kvdb.CorruptionError, match="unsupported manifest version 99"):
        kvdb.open(path, engine="lsm")


def test_lsm_L4_a_read_only_open_keeps_the_count_while_following(tmp_path):
    path = str(tmp_path / "db")
    rng = random.Random(11)
    with kvdb.open(path, **SMALL) as db:
        model = fill_mixed(db, rng, 500, 400)
        with kvdb.open(path, readonly=True) as ro:
            for _ in range(8):
                model.update(fill_mixed(db, rng, 400, 400))   # the model of the last round's keys only
                ro.catch_up()
                s = ro.stats()
                assert s["entries"] is not None
                assert len(ro) == scan_count(ro) == len(db) == scan_count(db)
            assert db.stats()["lsm_flushes"] > 2


def test_key_count_scan_writes_blind_and_exact_counts_again_at_open(tmp_path):
    path = str(tmp_path / "db")
    rng = random.Random(13)
    with kvdb.open(path, **SMALL) as db:
        model = fill_mixed(db, rng, 1500, 600)
    with kvdb.open(path, **dict(SMALL, key_count="scan")) as db:
        before = db.stats()["lsm_bloom_checks"]
        for i in range(300):
            db.put(b"k%05d" % i, b"blind")           # overwrites and new keys: no lookup
            model[b"k%05d" % i] = b"blind"
        assert db.stats()["lsm_bloom_checks"] == before
        assert db.stats()["entries"] is None
        assert len(db) == len(model)                 # a scan
    _, edits, _ = read_manifest(OsFS(), path)
    last = [e for e in edits if "last_seq" in e][-1]
    assert "live_keys" not in last                   # M4: "not counted"
    with kvdb.open(path, readonly=True) as ro:       # no count to start from: it scans
        assert ro.stats()["entries"] is None and len(ro) == len(model)
    with kvdb.open(path, **SMALL) as db:             # exact again: counted once at open
        assert db.stats()["entries"] == len(model) == len(db)
        db.verify()


def test_key_count_must_be_exact_or_scan(tmp_path):
    with pytest.raises(ValueError, match="key_count must be 'exact' or 'scan'"):
        kvdb.open(str(tmp_path / "db"), engine="lsm", key_count="approximate")
    assert not os.path.exists(tmp_path / "db")
