"""The command line on LSM databases (a directory with CURRENT, MANIFEST-*, *.sst, wal-*.log):
every subcommand, the engine read from the directory's files, the corrupt-table case and the
directories that hold no database (or a broken one).

Most commands run in-process through kvdb.cli.main.main (fast); a few run as a subprocess to
check the one-line error on stderr end to end. The B+Tree side is tests/cli/test_cli.py.
"""
import json
import os
import random

import pytest

import kvdb
from kvdb.cli.main import main
from tests.cli.test_cli import assert_one_line_error, err, out, run_cli

# small sizes, so a few thousand keys make several tables on more than one level
SMALL = dict(memtable_size=16 << 10, sstable_size=8 << 10, level1_size=32 << 10)


def make_lsm(path, items, **options):
    with kvdb.open(str(path), engine="lsm", **{**SMALL, **options}) as db:
        for start in range(0, len(items), 500):
            with db.transaction() as tx:
                for k, v in items[start:start + 500]:
                    tx.put(k, v)


def contents(path):
    with kvdb.open(str(path)) as db:
        assert db.engine == "lsm"
        return list(db.scan())


def binary_items(n, seed=11):
    rng = random.Random(seed)
    items = {b"\x00": b"\xff", b"\xff\xfe": b"", b"tab\tnew\nline": b"\r\n",
             "ключ".encode(): "значение".encode()}
    while len(items) < n:
        items[b"key%06d" % rng.randrange(10 ** 6) + rng.randbytes(rng.randint(0, 8))] = rng.randbytes(
            rng.choice([0, 5, 40, 300]))
    return sorted(items.items())


def tables(path):
    return sorted(n for n in os.listdir(path) if n.endswith(".sst"))


@pytest.fixture
def lsm(tmp_path):
    """An LSM database with 2,000 keys over several tables, some keys overwritten, some deleted."""
    path = tmp_path / "db"
    items = binary_items(2000)
    make_lsm(path, items)
    with kvdb.open(str(path), **SMALL) as db:
        with db.transaction() as tx:
            for k, _ in items[::7]:
                tx.put(k, b"new")
            for k, _ in items[3::11]:
                tx.delete(k)
    assert len(tables(path)) >= 2
    return path


def cli(capsys, *args):
    """(exit status, stdout, stderr) of an in-process `kvdb ARGS`."""
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- check ---------------------------------------------------------------------

def test_check_ok_reports_tables_and_levels(lsm, capsys):
    n = len(contents(lsm))
    status, text, _ = cli(capsys, "check", lsm)
    assert status == 0, text
    assert f"{lsm}: lsm, {len(tables(lsm))} tables in" in text
    assert "  level " in text and "tables: ok" in text
    assert f"keys: {n:,}, in strictly increasing order" in text
    assert text.rstrip().endswith(f"{lsm}: ok")
    assert not (lsm / "data.kvdb").exists(), "check never creates a B+Tree file"


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x41]))


def test_check_corrupt_table_names_file_and_offset(lsm, capsys):
    victim = max(tables(lsm), key=lambda n: os.path.getsize(lsm / n))
    _flip(lsm / victim, 5)  # inside the first data block (blocks start at offset 0)
    status, text, _ = cli(capsys, "check", lsm)
    assert status == 1, text
    assert f"problem: {lsm / victim}: block checksum mismatch at offset 0" in text
    assert text.count("problem: ") == 1, "verify's report of the same block is not repeated"
    assert text.rstrip().endswith("1 problem(s) found")
    # the read commands stop with one line naming the same file and offset
    p = run_cli("dump", lsm)
    assert_one_line_error(p, "corrupt database", victim, "offset 0")


def test_check_names_every_damaged_table(lsm, capsys):
    names = tables(lsm)
    first, last = names[0], names[-1]
    _flip(lsm / first, 5)
    _flip(lsm / last, os.path.getsize(lsm / last) - 20)  # the footer's checksummed part
    status, text, _ = cli(capsys, "check", lsm)
    assert status == 1
    problems = [line for line in text.splitlines() if line.startswith("problem: ")]
    assert f"{lsm}: lsm, does not open: {lsm / last}: sstable footer checksum mismatch" in text
    assert problems == [f"problem: {lsm / first}: block checksum mismatch at offset 0",
                        f"problem: {lsm / last}: sstable footer checksum mismatch at offset "
                        f"{os.path.getsize(lsm / last) - 52}"], text


def test_check_ignores_a_stray_table_the_manifest_does_not_list(lsm, capsys):
    (lsm / "999999.sst").write_bytes(b"half-written by a crashed compaction")
    status, text, _ = cli(capsys, "check", lsm)
    assert status == 0, text
    assert "999999.sst is not in the manifest" in text
    assert (lsm / "999999.sst").exists(), "check reads only: the next writable open removes the table"
    kvdb.open(str(lsm)).close()
    assert not (lsm / "999999.sst").exists(), "the engine removes unlisted tables at a writable open"


def test_check_damaged_footer_fails_at_open(lsm, capsys):
    victim = tables(lsm)[0]
    _flip(lsm / victim, os.path.getsize(lsm / victim) - 1)  # the magic at the end of the footer
    status, text, _ = cli(capsys, "check", lsm)
    assert status == 1
    assert f"problem: {lsm / victim}: bad sstable magic in the footer at offset" in text
    assert_one_line_error(run_cli("stats", lsm), "corrupt database", victim, "offset")


def test_check_corrupt_manifest_pointer(lsm, capsys):
    (lsm / "CURRENT").write_text("nonsense\n")
    status, text, _ = cli(capsys, "check", lsm)
    assert status == 1 and "CURRENT: does not name a manifest" in text


# -- not a database --------------------------------------------------------------

COMMANDS = [["check"], ["stats"], ["compact"], ["dump"], ["scan"], ["get", "k"], ["delete", "k"],
            ["backup", "DEST"], ["restore", "DEST"], ["collections"], ["find", "c"]]


def _args(cmd, path, tmp_path):
    return [cmd[0], path] + [tmp_path / "dest" if a == "DEST" else a for a in cmd[1:]]


def _broken_dirs(tmp_path):
    """name -> (path, words the error must hold); built fresh for each use."""
    made = {}
    made["missing"] = (tmp_path / "missing", ["no database at", "does not exist"])
    empty = tmp_path / "empty"
    empty.mkdir()
    made["empty"] = (empty, ["no database at", "empty directory"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a database")
    made["other"] = (other, ["no database at", "neither data.kvdb nor CURRENT"])
    afile = tmp_path / "afile"
    afile.write_text("x")
    made["file"] = (afile, ["no database at", "not a directory"])
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / "000004.sst").write_bytes(b"\x00" * 100)
    (orphan / "MANIFEST-000002").write_bytes(b"kvdb-man")
    made["tables-without-CURRENT"] = (orphan, ["corrupt database", "000004.sst", "no CURRENT"])
    both = tmp_path / "both"
    both.mkdir()
    (both / "data.kvdb").write_bytes(b"x")
    (both / "CURRENT").write_text("MANIFEST-000002\n")
    made["both"] = (both, ["corrupt database", "both data.kvdb", "CURRENT"])
    return made


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c[0])
def test_not_a_database_is_one_line_and_nothing_is_created(tmp_path, capsys, cmd):
    for name, (path, words) in _broken_dirs(tmp_path).items():
        before = sorted(os.listdir(path)) if os.path.isdir(path) else None
        status, text, error = cli(capsys, *_args(cmd, path, tmp_path))
        assert status == 1, (name, text, error)
        assert error.count("\n") == 1 and "Traceback" not in error, (name, error)
        for w in words:
            assert w in error, (name, w, error)
        assert (sorted(os.listdir(path)) if os.path.isdir(path) else None) == before, name
        assert not (tmp_path / "dest").exists(), name
        if not os.path.isdir(path):
            assert not os.path.isdir(path)


def test_put_and_load_refuse_a_broken_directory(tmp_path, capsys):
    dirs = _broken_dirs(tmp_path)
    dump = tmp_path / "d.jsonl"
    dump.write_text('{"key": "YQ==", "value": "Yg=="}\n')
    for name in ("tables-without-CURRENT", "both"):
        path, words = dirs[name]
        before = sorted(os.listdir(path))
        for args in (["put", path, "k", "v"], ["load", path, "-i", dump], ["demo", path, "-n", "10"]):
            status, _, error = cli(capsys, *args)
            assert status == 1 and all(w in error for w in words), (name, args, error)
        assert sorted(os.listdir(path)) == before


def test_end_to_end_one_line_for_an_empty_directory(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli("check", empty), f"no database at {empty}")
    assert os.listdir(empty) == []


# -- stats ---------------------------------------------------------------------------

def test_stats_text_and_json(lsm, capsys):
    status, text, _ = cli(capsys, "stats", lsm, "--json")
    assert status == 0
    stats = json.loads(text)
    assert stats["engine"] == "lsm"
    files, sizes = stats["lsm_files_per_level"], stats["lsm_bytes_per_level"]
    assert sum(files) == len(tables(lsm)) and len(files) == len(sizes)
    assert sum(sizes) == sum(os.path.getsize(lsm / n) for n in tables(lsm))
    for key in ("lsm_write_amplification", "lsm_bloom_checks", "lsm_bloom_false_positives",
                "lsm_bloom_false_positive_rate", "block_cache_hit_rate", "lsm_stall_seconds", "disk_bytes"):
        assert key in stats, key
    status, text, _ = cli(capsys, "stats", lsm)
    assert status == 0
    lines = text.splitlines()
    assert lines[0].split() == ["engine", "lsm"]
    assert any(line.split()[:1] == ["lsm_stall_seconds"] for line in lines)
    total = [line.split() for line in lines if line.startswith("total")]
    assert total == [["total", f"{sum(files):,}", f"{sum(sizes):,}"]]
    assert [line.split()[0] for line in lines if line.startswith("L")] == [f"L{i}" for i in range(len(files))]


def test_stats_derived_figures():
    from kvdb.cli.cmd_stats import derived_lsm
    got = derived_lsm({"lsm_bytes_flushed": 100, "lsm_bytes_compacted": 250, "lsm_bloom_checks": 200,
                       "lsm_bloom_false_positives": 3})
    assert got == {"lsm_write_amplification": 3.5, "lsm_bloom_false_positive_rate": 0.015}
    assert derived_lsm({}) == {"lsm_write_amplification": None, "lsm_bloom_false_positive_rate": None}


# -- compact ---------------------------------------------------------------------------

def test_compact_merges_tables_and_keeps_contents(lsm, capsys):
    with kvdb.open(str(lsm)) as db:
        db.put(b"expiring", b"soon", ttl=3600)
    before = contents(lsm)
    with kvdb.open(str(lsm)) as db:
        tables_before = sum(db.stats()["lsm_files_per_level"])
    status, _, error = cli(capsys, "compact", lsm)
    assert status == 0, error
    assert f"compacted {lsm} (lsm): {tables_before} -> " in error and "verified" in error
    assert contents(lsm) == before
    with kvdb.open(str(lsm)) as db:
        files = db.stats()["lsm_files_per_level"]
        assert 3000 < db.ttl(b"expiring") <= 3600, "compaction keeps expiries"
    assert files[0] == 0 and sum(files) <= tables_before
    assert cli(capsys, "check", lsm)[0] == 0
    assert sorted(os.listdir(lsm.parent)) == ["db"], "no temporary directories"


# -- backup / restore, dump / load -----------------------------------------------------

def test_backup_restore_round_trip(lsm, tmp_path, capsys):
    items = contents(lsm)
    status, _, error = cli(capsys, "backup", lsm, tmp_path / "bak")
    assert status == 0, error
    assert f"backed up {len(items):,} keys" in error and "verified" in error
    assert (tmp_path / "bak" / "CURRENT").exists() and not (tmp_path / "bak" / "data.kvdb").exists()
    status, _, error = cli(capsys, "backup", lsm, tmp_path / "bak")
    assert status == 1 and "already holds a database" in error
    status, _, error = cli(capsys, "restore", tmp_path / "bak", tmp_path / "restored")
    assert status == 0, error
    assert contents(tmp_path / "restored") == items
    with kvdb.open(str(lsm)) as db:
        db.put(b"expiring", b"soon", ttl=3600)
    assert cli(capsys, "backup", lsm, tmp_path / "bak2")[0] == 0
    with kvdb.open(str(tmp_path / "bak2")) as db:
        assert 3000 < db.ttl(b"expiring") <= 3600, "backup keeps expiries"
    status, _, error = cli(capsys, "restore", tmp_path / "bak", lsm)
    assert status == 1 and "refusing to overwrite" in error
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")], "no temporary directories"


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_dump_load_round_trip_between_engines(lsm, tmp_path, capsys, fmt):
    items = contents(lsm)
    dump = tmp_path / f"dump.{fmt}"
    status, _, error = cli(capsys, "dump", lsm, "-o", dump)
    assert status == 0 and f"dumped {len(items):,} keys" in error
    status, _, error = cli(capsys, "load", tmp_path / "copy", "-i", dump, "--engine", "lsm", "--batch", "400")
    assert status == 0 and "created it, engine lsm" in error, error
    assert contents(tmp_path / "copy") == items
    status, _, error = cli(capsys, "load", tmp_path / "copy", "-i", dump)  # the existing engine is kept
    assert status == 0 and "created" not in error
    assert contents(tmp_path / "copy") == items
    status, _, error = cli(capsys, "load", tmp_path / "copy", "-i", dump, "--engine", "btree")
    assert status == 2 and "holds a database of engine lsm, not btree" in error
    status, _, error = cli(capsys, "load", tmp_path / "bt", "-i", dump)  # default: a B+Tree
    assert status == 0
    assert (tmp_path / "bt" / "data.kvdb").exists()
    with kvdb.open(str(tmp_path / "bt")) as db:
        assert list(db.scan()) == items


# -- get / put / delete / scan, documents, demo ------------------------------------------

def test_put_get_delete_scan(tmp_path, capsys):
    path = tmp_path / "kv"
    status, _, error = cli(capsys, "put", path, "0x00ff41", "hello", "--engine", "lsm")
    assert status == 0 and "created a new database" in error and "engine lsm" in error
    assert (path / "CURRENT").exists()
    assert cli(capsys, "put", path, "name", "0x0a00ff")[0] == 0  # no --engine: the directory's
    assert cli(capsys, "get", path, "0x00ff41") == (0, "hello\n", "")
    assert cli(capsys, "get", path, "name", "--hex") == (0, "0a00ff\n", "")
    assert cli(capsys, "scan", path) == (0, "\\x00\\xffA\thello\nname\t\\n\\x00\\xff\n", "")
    assert cli(capsys, "scan", path, "--reverse", "--keys-only") == (0, "name\n\\x00\\xffA\n", "")
    assert cli(capsys, "delete", path, "name")[0] == 0
    status, _, error = cli(capsys, "get", path, "name")
    assert status == 1 and "key not found: name" in error
    status, _, error = cli(capsys, "put", path, "k", "v", "--engine", "btree")
    assert status == 2 and "engine lsm" in error
    assert contents(path) == [(b"\x00\xffA", b"hello")]


def test_document_commands(tmp_path, capsys):
    path = tmp_path / "docs"
    with kvdb.open(str(path), engine="lsm", **SMALL) as db:
        db.collection("users").insert_many([{"_id": i, "age": i % 10} for i in range(200)])
    assert cli(capsys, "index", path, "users", "age") == (0, "age_1\n", "")
    status, text, _ = cli(capsys, "find", path, "users", '{"age": 3}', "--projection", '{"_id": 1}')
    assert status == 0 and [json.loads(x)["_id"] for x in text.splitlines()] == list(range(3, 200, 10))
    assert cli(capsys, "find", path, "users", '{"age": 3}', "--count")[1] == "20\n"
    status, text, _ = cli(capsys, "collections", path, "--verify")
    assert status == 0 and text.startswith("users\t200 documents") and text.rstrip().endswith("ok")
    assert not (path / "data.kvdb").exists()


def test_demo_lsm(tmp_path, capsys):
    status, text, _ = cli(capsys, "demo", tmp_path / "demo", "-n", "500", "--engine", "lsm")
    assert status == 0
    assert "lsm database at" in text and "verify: ok" in text and "lsm_files_per_level=" in text
    assert (tmp_path / "demo" / "CURRENT").exists()


def test_locked_lsm_database_is_one_line(lsm, tmp_path):
    """Beside the LSM's writer (its one writable open) check reads, from a read-only open; a
    second writer (put) fails with one locked line naming the writer's pid, and compact with one
    locked line; neither changes anything."""
    with kvdb.open(str(lsm)) as writer:
        before = list(writer.scan())
        p = run_cli("check", lsm)
        assert p.returncode == 0, (out(p), err(p))
        assert out(p).rstrip().endswith(f"{lsm}: ok")
        assert_one_line_error(run_cli("put", lsm, "k", "v"), "locked", str(os.getpid()))
        assert_one_line_error(run_cli("compact", lsm), "locked")
        assert list(writer.scan()) == before


def test_serve_an_existing_lsm_directory(tmp_path, capsys):
    """`engine` is the server's option for a new database; an existing one keeps its engine."""
    from tests.serverutil import ServerProcess
    data = tmp_path / "data"
    with kvdb.open(str(data), engine="lsm"):
        pass
    with ServerProcess(tmp_path, data=data) as srv:
        r = srv.client()
        assert r.set(b"k", b"v") and r.get(b"k") == b"v"
    assert (data / "CURRENT").exists() and not (data / "data.kvdb").exists()
    status, _, error = cli(capsys, "serve", "--data", data, "--engine", "btree", "--port", "0")
    assert status == 2 and "holds a database of engine lsm, not btree" in error


def test_raw_table_scan_agrees_with_the_engine(tmp_path):
    """sstscan (the raw pass of `kvdb check`) and db.verify() name the same damaged block, in a
    table with lz4-compressed blocks."""
    from kvdb.cli import sstscan
    path = tmp_path / "db"
    with kvdb.open(str(path), engine="lsm") as db:
        with db.transaction() as tx:
            for i in range(5000):
                tx.put(b"a/common/prefix/%08d" % i, b"compressible " * 20)
    (name,) = tables(path)
    clean = sstscan.scan_table(str(path / name))
    assert clean.bad == [] and clean.blocks > 50
    size = os.path.getsize(path / name)
    _flip(path / name, size // 3)
    (found,) = sstscan.scan_table(str(path / name)).bad
    assert found[1] == "block checksum mismatch" and found[0] <= size // 3
    with kvdb.open(str(path)) as db:
        with pytest.raises(kvdb.CorruptionError) as info:
            db.verify()
    assert (info.value.path, info.value.offset) == (str(path / name), found[0])
