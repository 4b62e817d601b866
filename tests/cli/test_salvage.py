"""Issue 14 item 7: `kvdb salvage PATH DEST` and `kvdb dump --salvage` recover every record that
can still be read and verified from a damaged database, on both engines, report what was lost
(pages, blocks, key ranges) and never write to PATH.

The acceptance case: 5 damaged leaf pages (B+Tree) or 5 damaged data blocks (LSM); DEST must
hold exactly the keys outside them, with their values and expiries, and the report must name
the 5. Which keys the damage took is found independently of salvage: on a copy of the damaged
directory, db.get(key) raises CorruptionError exactly for the keys on a damaged page or block
(each key is written once, so no older version hides behind the damage)."""
import base64
import json
import os
import shutil
import struct

import kvdb
from kvdb.cli import sstscan
from kvdb.cli.main import main

PAGE_LEAF, PAGE_OVERFLOW = 2, 3
HOUR = 3600
SMALL_LSM = dict(memtable_size=16 << 10, sstable_size=8 << 10, level1_size=32 << 10)


def cli(capsys, *args):
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def snapshot(path):
    """{file: (bytes, mtime_ns)} of every file under path."""
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = (f.read(), os.stat(full).st_mtime_ns)
    return out


def items(n):
    """Keys written once each: (key, value, ttl or None); every 10th key expires in an hour."""
    return [(b"key%06d" % i, (b"value-%d-" % i) * 8, HOUR if i % 10 == 0 else None) for i in range(n)]


def build_btree(path, n=6000):
    with kvdb.open(str(path), page_size=4096) as db:
        with db.transaction() as tx:
            for k, v, ttl in items(n):
                tx.put(k, v, ttl=ttl)
            tx.put(b"zz-big", bytes(range(256)) * 100)       # an overflow chain of several pages


def build_lsm(path, n=6000):
    with kvdb.open(str(path), engine="lsm", **SMALL_LSM) as db:
        rows = items(n)
        for start in range(0, n, 500):
            with db.transaction() as tx:
                for k, v, ttl in rows[start:start + 500]:
                    tx.put(k, v, ttl=ttl)


def flip(path, offset, mask=0x20):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


def readable(path, tmp_path):
    """{key: (value, expires)} of the keys a copy of the damaged database can still read with get()."""
    copy = tmp_path / "oracle"
    shutil.copytree(path, copy)
    with kvdb.open(str(copy)) as db:
        # the keys as written: the damaged scan cannot list them, so list them from the model
        keys = [k for k, _v, _t in items(6000)] + [b"zz-big"]
        out = {}
        for k in keys:
            try:
                v = db.get(k)
            except kvdb.CorruptionError:
                continue
            if v is not None:
                out[k] = v
    shutil.rmtree(copy)
    return out


def contents(path):
    with kvdb.open(str(path)) as db:
        return {k: (v, e) for k, v, e in db._scan_expiry()}


def leaf_pages(data_path, ps=4096):
    with open(data_path, "rb") as f:
        data = f.read()
    return [p for p in range(3, len(data) // ps) if data[p * ps + 4] == PAGE_LEAF
            and struct.unpack_from("<I", data, p * ps + 8)[0] == p]


def data_blocks(path):
    """[(table name, block offset, block size)] of every data block of every table."""
    out = []
    for name in sorted(n for n in os.listdir(path) if n.endswith(".sst")):
        full = os.path.join(path, name)
        scan = sstscan.TableScan(name, 0)
        with open(full, "rb") as f:
            fd = f.fileno()
            handles = sstscan._footer(fd, os.fstat(fd).st_size, scan)
            index = sstscan._block(fd, handles[0][0], handles[0][1], scan)
            out += [(name,) + sstscan._handle(v) for v in sstscan._values(index)]
    return out


def check_salvage(capsys, tmp_path, path, damaged_names):
    """Salvage path; DEST must hold exactly the readable keys, and the report name each damage."""
    expected = readable(path, tmp_path)
    before = snapshot(path)
    status, _, report = cli(capsys, "salvage", path, tmp_path / "dest")
    assert status == 0, report
    assert snapshot(path) == before, "salvage wrote to the damaged directory"
    got = contents(tmp_path / "dest")
    assert {k: v for k, (v, _e) in got.items()} == expected
    written = {k: ttl for k, _v, ttl in items(6000)}
    for k, (_v, e) in got.items():
        assert bool(e) == bool(written.get(k)), f"{k!r}: expiry lost or invented"
    assert f"salvaged {len(expected):,} keys" in report
    assert report.count("  lost ") == len(damaged_names), report
    for name in damaged_names:
        assert name in report, (name, report)
    return expected, report


def test_btree_salvage_recovers_every_key_outside_5_damaged_leaf_pages(tmp_path, capsys):
    path = tmp_path / "db"
    build_btree(path)
    data_path = os.path.join(path, "data.kvdb")
    leaves = leaf_pages(data_path)
    assert len(leaves) > 40
    damaged = [leaves[i] for i in (3, 11, 19, 27, 35)]
    for p in damaged:
        flip(data_path, p * 4096 + 2048)
    expected, report = check_salvage(capsys, tmp_path, path, [f"lost page {p}:" for p in damaged])
    assert 6001 - 5 * 80 < len(expected) < 6001 - 5 * 5, "each damaged leaf held some dozens of keys"
    assert "checksum mismatch" in report and "keys from 'key" in report, "key ranges come from the parents"
    assert "zz-big" in str(contents(tmp_path / "dest").keys()), "overflow chains are followed"


def test_lsm_salvage_recovers_every_key_outside_5_damaged_data_blocks(tmp_path, capsys):
    path = tmp_path / "db"
    build_lsm(path)
    blocks = data_blocks(path)
    assert len(blocks) > 40 and len({b[0] for b in blocks}) > 3
    damaged = [blocks[i] for i in range(2, len(blocks), len(blocks) // 5)][:5]
    for name, off, size in damaged:
        flip(os.path.join(path, name), off + size // 2)
    expected, report = check_salvage(capsys, tmp_path, path,
                                     [f"lost {name} block at offset {off}:" for name, off, _ in damaged])
    assert len(expected) < 6000 - 5 * 5
    assert "block checksum mismatch" in report and "after 'key" in report and "up to 'key" in report


def test_salvage_of_an_undamaged_database_copies_everything_including_the_log(tmp_path, capsys):
    """Commits still only in the log (the directory copied while open, as after a crash) are
    replayed; a delete in the log removes the key."""
    live = tmp_path / "live"
    db = kvdb.open(str(live), page_size=4096)
    try:
        with db.transaction() as tx:
            for k, v, ttl in items(2000):
                tx.put(k, v, ttl=ttl)
        db.checkpoint()
        db.put(b"key000005", b"changed in the log")
        db.delete(b"key000006")
        db.put(b"only-in-log", b"x", ttl=HOUR)
        shutil.copytree(live, tmp_path / "crashed")
    finally:
        db.close()
    status, _, report = cli(capsys, "salvage", tmp_path / "crashed", tmp_path / "dest")
    assert status == 0 and "nothing was lost" in report and "3 commits of them replayed from the log" in report
    got = contents(tmp_path / "dest")
    assert got[b"key000005"][0] == b"changed in the log" and b"key000006" not in got
    assert got[b"only-in-log"][1] > 0 and len(got) == 2000
    assert got == contents(live)


def test_lsm_salvage_keeps_the_newest_version_and_deletes(tmp_path, capsys):
    path = tmp_path / "db"
    build_lsm(path, 3000)
    with kvdb.open(str(path)) as db:
        db.put(b"key000001", b"newer")
        db.delete(b"key000002")
    status, _, report = cli(capsys, "salvage", path, tmp_path / "dest")
    assert status == 0, report
    assert contents(tmp_path / "dest") == contents(path)


def test_salvage_reports_a_damaged_overflow_chain_by_its_key(tmp_path, capsys):
    path = tmp_path / "db"
    build_btree(path, 500)
    data_path = os.path.join(path, "data.kvdb")
    with open(data_path, "rb") as f:
        data = f.read()
    overflow = [p for p in range(3, len(data) // 4096) if data[p * 4096 + 4] == PAGE_OVERFLOW]
    flip(data_path, overflow[1] * 4096 + 100)
    status, _, report = cli(capsys, "salvage", path, tmp_path / "dest")
    assert status == 0
    assert f"lost overflow page {overflow[1]}" in report and "key 'zz-big'" in report
    got = contents(tmp_path / "dest")
    assert b"zz-big" not in got and len(got) == 500


def test_dump_salvage_writes_the_recovered_records(tmp_path, capsys):
    path = tmp_path / "db"
    build_btree(path)
    data_path = os.path.join(path, "data.kvdb")
    leaf = leaf_pages(data_path)[10]
    flip(data_path, leaf * 4096 + 3000)
    expected = readable(path, tmp_path)
    before = snapshot(path)
    out = tmp_path / "d.jsonl"
    status, _, report = cli(capsys, "dump", "--salvage", path, "-o", out)
    assert status == 0, report
    assert snapshot(path) == before
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert {base64.b64decode(r["key"]): base64.b64decode(r["value"]) for r in recs} == expected
    assert sum("expires_ms" in r for r in recs) == sum(1 for k in expected if k[3:].isdigit() and int(k[3:]) % 10 == 0)
    assert f"lost page {leaf}:" in report
    # the ordinary dump stops at the damage and leaves a partial file
    status, _, error = cli(capsys, "dump", path, "-o", tmp_path / "e.jsonl")
    assert status == 1 and "e.jsonl.partial" in error and "--salvage" in error


def test_salvage_never_writes_an_existing_dest_or_into_path(tmp_path, capsys):
    path = tmp_path / "db"
    build_btree(path, 100)
    before = snapshot(path)
    (tmp_path / "dest").mkdir()
    status, _, error = cli(capsys, "salvage", path, tmp_path / "dest")
    assert status == 2 and "already exists" in error
    status, _, error = cli(capsys, "salvage", path, path / "inside")
    assert status == 2 and "inside" in error
    status, _, error = cli(capsys, "salvage", tmp_path / "nothing", tmp_path / "d2")
    assert status == 1 and "no database" in error
    assert not (tmp_path / "d2").exists() and snapshot(path) == before


def test_btree_damaged_branch_page_loses_nothing_its_leaves_still_hold(tmp_path, capsys):
    """The root (a branch) is damaged: the tree cannot be walked, so every good leaf is read
    as a leaf the tree no longer reaches; built in one transaction, there are no older copies,
    so every key comes back, and the report says where they came from."""
    path = tmp_path / "db"
    build_btree(path)
    data_path = os.path.join(path, "data.kvdb")
    with open(data_path, "rb") as f:
        data = f.read()
    branches = [p for p in range(3, len(data) // 4096) if data[p * 4096 + 4] == 1]
    assert branches
    for p in branches:
        flip(data_path, p * 4096 + 1000)
    status, _, report = cli(capsys, "salvage", path, tmp_path / "dest")
    assert status == 0, report
    assert report.count("  lost page ") == 1, "the root is reported; the branches under it are never reached"
    assert "6,001 keys in the lost ranges were taken from" in report
    got = contents(tmp_path / "dest")
    model = {k: v for k, v, _ttl in items(6000)} | {b"zz-big": bytes(range(256)) * 100}
    assert {k: v for k, (v, _e) in got.items()} == model
    assert sum(1 for _v, e in got.values() if e) == 600, "expiries come back with their keys"


def test_btree_stale_leaf_copies_fill_in_a_damaged_leaf_and_say_so(tmp_path, capsys):
    """A leaf rewritten by a later checkpoint leaves its older copy on a free page; when the
    current leaf is damaged, keys found only on the older copy come back, counted in a note.
    The files are copied while the database is open, as a crash leaves them: the last open's
    clean close would punch the free pages as holes."""
    live = tmp_path / "live"
    path = tmp_path / "db"
    with kvdb.open(str(live), page_size=4096) as db:
        with db.transaction() as tx:
            for i in range(3000):
                tx.put(b"key%06d" % i, b"v%06d" % i * 10)
        db.checkpoint()
        with db.transaction() as tx:
            for i in range(0, 3000, 3):
                tx.put(b"key%06d" % i, b"w%06d" % i * 10)      # every leaf rewritten once
        db.checkpoint()
        os.makedirs(path)
        for name in ("data.kvdb", "wal-000001.log"):
            shutil.copyfile(live / name, path / name)
    data_path = os.path.join(path, "data.kvdb")
    with open(data_path, "rb") as f:
        data = f.read()
    needle = b"w%06d" % 1500 * 10
    page = data.index(needle) // 4096
    flip(data_path, page * 4096 + 30)
    status, _, report = cli(capsys, "salvage", path, tmp_path / "dest")
    assert status == 0, report
    assert f"lost page {page}:" in report and "leaf pages the tree no longer reaches" in report
    got = contents(tmp_path / "dest")
    assert len(got) > 3000 - 5, "the older copy of the damaged leaf supplied (older) values for its keys"
    assert got[b"key000000"][0] == b"w%06d" % 0 * 10, "values from reachable leaves are the newest"


def test_lsm_damaged_index_block_loses_the_table_with_its_key_range(tmp_path, capsys):
    path = tmp_path / "db"
    build_lsm(path)
    name = sorted(n for n in os.listdir(path) if n.endswith(".sst"))[0]
    full = os.path.join(path, name)
    scan = sstscan.TableScan(name, 0)
    with open(full, "rb") as f:
        handles = sstscan._footer(f.fileno(), os.fstat(f.fileno()).st_size, scan)
    flip(full, handles[0][0] + 3)
    status, _, report = cli(capsys, "salvage", path, tmp_path / "dest")
    assert status == 0, report
    assert f"lost {name} (whole table): block checksum mismatch; keys from 'key" in report
    assert report.count("  lost ") == 1


def test_salvage_says_where_the_log_stops_at_mid_log_damage(tmp_path, capsys):
    live = tmp_path / "live"
    db = kvdb.open(str(live), page_size=4096)
    try:
        db.put(b"base", b"1")
        db.checkpoint()
        for i in range(20):
            db.put(b"log%02d" % i, b"x" * 50)
        shutil.copytree(live, tmp_path / "crashed")
    finally:
        db.close()
    log = tmp_path / "crashed" / "wal-000001.log"
    with open(log, "rb") as f:
        at = f.read().index(b"log10")
    flip(log, at)
    status, _, report = cli(capsys, "salvage", tmp_path / "crashed", tmp_path / "dest")
    assert status == 0, report
    assert "note: wal-000001.log: record at offset" in report and "were lost" in report
    assert sorted(contents(tmp_path / "dest")) == [b"base"] + [b"log%02d" % i for i in range(10)]


def test_btree_both_meta_pages_damaged(tmp_path, capsys):
    """Without a meta the root is unknown: every good leaf is read, and the report says so."""
    path = tmp_path / "db"
    build_btree(path, 2000)
    data_path = os.path.join(path, "data.kvdb")
    for pgno in (1, 2):
        flip(data_path, pgno * 4096 + 30)
    status, _, report = cli(capsys, "salvage", path, tmp_path / "dest")
    assert status == 0, report
    assert "lost meta pages 1-2: neither meta page is valid" in report and "note: meta page 1:" in report
    assert len(contents(tmp_path / "dest")) == 2001


def test_lsm_damaged_manifest_falls_back_to_every_table(tmp_path, capsys):
    path = tmp_path / "db"
    build_lsm(path, 3000)
    before = contents(path)
    manifest = [n for n in os.listdir(path) if n.startswith("MANIFEST-")][0]
    flip(os.path.join(path, manifest), 3)            # its header
    status, _, report = cli(capsys, "salvage", path, tmp_path / "dest")
    assert status == 0, report
    assert "damaged header" in report and "every table and log in the directory was used" in report
    assert contents(tmp_path / "dest") == before


def test_salvage_into_the_other_engine(tmp_path, capsys):
    path = tmp_path / "db"
    build_btree(path, 1000)
    status, _, report = cli(capsys, "salvage", path, tmp_path / "dest", "--engine", "lsm")
    assert status == 0, report
    with kvdb.open(str(tmp_path / "dest")) as db:
        assert db.engine == "lsm"
    assert contents(tmp_path / "dest") == contents(path)
