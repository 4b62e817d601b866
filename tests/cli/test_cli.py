"""The command line (`python -m kvdb ...`), run as a subprocess on real databases.

Every subcommand's success path, the error paths (missing database, locked
database, corrupt file, bad input) and the round trips: dump -> load,
backup -> restore, compact.
"""
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time

import pytest

import kvdb
from kvdb.cli import byteargs
from kvdb.cli.progress import Progress

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args, input=None, timeout=120):
    """Run `python -m kvdb ARGS` from the repository root (so the in-place build imports)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("KVDB_DEBUG", None)
    for attempt in range(4):
        p = subprocess.run([sys.executable, "-m", "kvdb", *map(str, args)], cwd=REPO, env=env, input=input,
                           capture_output=True, timeout=timeout)
        # another engineer may be rebuilding the extension in place: retry a failed import
        if p.returncode == 0 or b"kvdb._core" not in p.stderr or b"Error" not in p.stderr or attempt == 3:
            return p
        time.sleep(2)
    return p


def out(p):
    return p.stdout.decode("utf-8", "replace")


def err(p):
    return p.stderr.decode("utf-8", "replace")


def assert_one_line_error(p, *words):
    """A failure: non-zero exit, exactly one line on stderr naming `words`, no traceback."""
    text = err(p)
    assert p.returncode != 0, (out(p), text)
    assert "Traceback" not in text, text
    assert text.count("\n") == 1 and text.endswith("\n"), text
    for w in words:
        assert w in text, (w, text)


def make_db(path, items):
    with kvdb.open(str(path)) as db:
        with db.transaction() as tx:
            for k, v in items:
                tx.put(k, v)


def contents(path):
    with kvdb.open(str(path)) as db:
        return list(db.scan())


def binary_items(n, seed=7):
    """Random binary keys and values, with the awkward ones always included."""
    rng = random.Random(seed)
    items = {b"\x00": b"\xff", b"\xff": b"\x00", b"\xff\xfe\x80": b"\xc3\x28 not utf-8",
             b"\x00\x00\x00": b"", b"tab\tnew\nline\\": b"\r\n\x7f", "ключ".encode(): "значение".encode()}
    while len(items) < n:
        items[rng.randbytes(rng.randint(1, 40))] = rng.randbytes(rng.choice([0, 1, 10, 100, 700, 5000]))
    return sorted(items.items())


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "db"
    make_db(path, [(b"k%03d" % i, b"v%d" % i) for i in range(100)] + [(b"\x00bin\xff", b"\x01\x02")])
    return path


# -- basics ----------------------------------------------------------------

def test_version():
    p = run_cli("--version")
    assert p.returncode == 0
    assert out(p).strip() == f"kvdb {kvdb.__version__}"


def test_help_lists_every_command():
    p = run_cli("--help")
    assert p.returncode == 0
    for cmd in ("demo", "check", "stats", "dump", "load", "backup", "restore", "compact", "get", "put", "delete",
                "scan", "bench"):
        assert cmd in out(p)


def test_demo(tmp_path):
    p = run_cli("demo", tmp_path / "demo", "-n", "2000")
    assert p.returncode == 0, err(p)
    assert "verify: ok" in out(p) and "entries=2000" in out(p)


def test_check_ok(db):
    p = run_cli("check", db)
    assert p.returncode == 0, err(p)
    text = out(p)
    assert "0 bad" in text and "keys: 101, in strictly increasing order" in text
    assert text.rstrip().endswith(f"{db}: ok")


def test_stats_text_and_json(db):
    p = run_cli("stats", db)
    assert p.returncode == 0, err(p)
    assert "entries" in out(p) and "101" in out(p)
    p = run_cli("stats", db, "--json")
    assert p.returncode == 0, err(p)
    stats = json.loads(out(p))
    assert stats["entries"] == 101 and stats["disk_bytes"] > 0


# -- get / put / delete / scan ----------------------------------------------

def test_put_get_delete_text_and_hex(tmp_path):
    path = tmp_path / "kv"
    p = run_cli("put", path, "0x00ff41", "hello")
    assert p.returncode == 0, err(p)
    assert "created a new database" in err(p)
    assert contents(path) == [(b"\x00\xffA", b"hello")]
    assert out(run_cli("get", path, "0x00ff41")) == "hello\n"
    p = run_cli("put", path, "name", "0x0a00ff5c")
    assert p.returncode == 0 and err(p) == ""
    assert out(run_cli("get", path, "name")) == "\\n\\x00\\xff\\\\\n"
    assert out(run_cli("get", path, "name", "--hex")) == "0a00ff5c\n"
    assert run_cli("get", path, "name", "--raw").stdout == b"\n\x00\xff\\"
    assert run_cli("delete", path, "name").returncode == 0
    assert_one_line_error(run_cli("get", path, "name"), "key not found: name")
    assert_one_line_error(run_cli("delete", path, "name"), "key not found")


def test_scan_options_and_binary_display(db):
    p = run_cli("scan", db, "--limit", "2")
    assert p.returncode == 0, err(p)
    assert out(p) == "\\x00bin\\xff\t\\x01\\x02\nk000\tv0\n"
    p = run_cli("scan", db, "--prefix", "k09", "--reverse", "--keys-only")
    assert out(p).split() == ["k099", "k098", "k097", "k096", "k095", "k094", "k093", "k092", "k091", "k090"]
    p = run_cli("scan", db, "--start", "k010", "--end", "k012", "--hex")
    assert out(p) == "6b303130\t763130\n6b303131\t763131\n"


def test_bad_hex_argument_is_one_line(db):
    assert_one_line_error(run_cli("get", db, "0xabc"), "hex")


def test_byteargs_round_trip():
    for raw in (b"\x00", b"\xff", b"a\\b", b"\t\n\r", bytes(range(256))):
        shown = byteargs.show(raw)
        assert shown.isascii() and shown.isprintable()
        assert eval("b'" + shown.replace("'", "\\'") + "'") == raw  # the bytes repr, minus b''
        assert byteargs.parse("0x" + byteargs.show(raw, hex_=True)) == raw
    assert byteargs.parse("plain") == b"plain"


# -- dump / load -----------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_dump_load_round_trip_binary(tmp_path, fmt):
    items = binary_items(600)
    make_db(tmp_path / "src", items)
    dump = tmp_path / f"dump.{fmt}"
    p = run_cli("dump", tmp_path / "src", "-o", dump)
    assert p.returncode == 0, err(p)
    assert f"dumped {len(items):,} keys" in err(p)
    p = run_cli("load", tmp_path / "dst", "-i", dump, "--batch", "100")
    assert p.returncode == 0, err(p)
    assert f"loaded {len(items):,} records in 6 transactions" in err(p)
    assert contents(tmp_path / "dst") == items


def test_dump_jsonl_is_base64(tmp_path):
    make_db(tmp_path / "src", [(b"\x00\xff", b"\xc3\x28")])
    p = run_cli("dump", tmp_path / "src")
    assert p.returncode == 0, err(p)
    assert json.loads(out(p)) == {"key": "AP8=", "value": "wyg="}


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_dump_stdout_to_load_stdin_with_prefix(tmp_path, fmt):
    items = binary_items(200) + [(b"p:" + bytes([i]), bytes([i]) * i) for i in range(256)]
    make_db(tmp_path / "src", items)
    p = run_cli("dump", tmp_path / "src", "--prefix", "p:", "--format", fmt)
    assert p.returncode == 0, err(p)
    p = run_cli("load", tmp_path / "dst", input=p.stdout)  # format sniffed from the first byte
    assert p.returncode == 0, err(p)
    assert contents(tmp_path / "dst") == sorted((k, v) for k, v in items if k.startswith(b"p:"))


def test_load_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"key": "AAE=", "value": "AA=="}\n{"key": "%%%", "value": ""}\n')
    p = run_cli("load", tmp_path / "dst", "-i", bad)
    assert_one_line_error(p, "line 2", "base64")
    p = run_cli("load", tmp_path / "dst", "-i", tmp_path / "missing.jsonl")
    assert_one_line_error(p, "no such file")
    trunc = tmp_path / "t.msgpack"
    trunc.write_bytes(b"\x92\xc4\x01a\xc4\x01b\x92\xc4")
    assert_one_line_error(run_cli("load", tmp_path / "dst2", "-i", trunc), "truncated")


# -- backup / restore / compact ----------------------------------------------

def test_backup_restore_round_trip(tmp_path):
    items = binary_items(400)
    make_db(tmp_path / "src", items)
    p = run_cli("backup", tmp_path / "src", tmp_path / "bak")
    assert p.returncode == 0, err(p)
    assert "verified" in err(p)
    assert_one_line_error(run_cli("backup", tmp_path / "src", tmp_path / "bak"), "already holds a database")
    p = run_cli("restore", tmp_path / "bak", tmp_path / "restored")
    assert p.returncode == 0, err(p)
    assert contents(tmp_path / "restored") == items
    assert run_cli("check", tmp_path / "restored").returncode == 0
    p = run_cli("restore", tmp_path / "bak", tmp_path / "src")
    assert_one_line_error(p, "refusing to overwrite")
    assert contents(tmp_path / "src") == items
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")], "no temporary directories left"


def test_restore_refuses_a_backup_in_use(tmp_path):
    make_db(tmp_path / "src", [(b"a", b"1")])
    with kvdb.open(str(tmp_path / "src")):
        assert_one_line_error(run_cli("restore", tmp_path / "src", tmp_path / "new"),
                              "is open in another process")
    assert not (tmp_path / "new").exists()


def test_compact_keeps_contents_and_verifies(tmp_path):
    path = tmp_path / "db"
    rng = random.Random(3)
    with kvdb.open(str(path)) as db:
        for round_ in range(4):
            with db.transaction() as tx:
                for i in range(3000):
                    tx.put(b"key%06d" % i, rng.randbytes(200))
        with db.transaction() as tx:
            for i in range(0, 3000, 3):
                tx.delete(b"key%06d" % i)
    before = contents(path)
    size_before = os.path.getsize(path / "data.kvdb")
    p = run_cli("compact", path)
    assert p.returncode == 0, err(p)
    assert "compacted" in err(p)
    assert contents(path) == before
    assert os.path.getsize(path / "data.kvdb") <= size_before
    assert run_cli("check", path).returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["db"], "no temporary directories left"


def test_compact_refuses_foreign_files(db):
    (db / "notes.txt").write_text("mine")
    assert_one_line_error(run_cli("compact", db), "notes.txt")
    assert (db / "notes.txt").read_text() == "mine"


# -- errors: missing, locked, corrupt ----------------------------------------

READERS = [["check"], ["stats"], ["dump"], ["get", "k"], ["scan"], ["delete", "k"], ["compact"]]


@pytest.mark.parametrize("cmd", READERS + [["backup", "DEST"]], ids=lambda c: c[0])
def test_missing_database_is_an_error_and_not_created(tmp_path, cmd):
    missing = tmp_path / "nothing-here"
    args = [cmd[0], missing] + [tmp_path / "dest" if a == "DEST" else a for a in cmd[1:]]
    assert_one_line_error(run_cli(*args), f"no database at {missing}")
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    args[1] = empty
    assert_one_line_error(run_cli(*args), f"no database at {empty}")
    assert os.listdir(empty) == []
    assert not (tmp_path / "dest").exists()


# Beside another open of a B+Tree database (issue 15): the reading tools and backup open
# read-only and work; put, delete and load share the database, and the holder sees their commit;
# compact rewrites the files, so it needs the database to itself and fails with one locked line
# (a B+Tree open records no pid, so the line names none).
LOADED = b'{"key": "bmV3", "value": "bG9hZGVk"}\n'       # new -> loaded, as dump writes jsonl


def _beside_an_open(cmd, p, holder, db, dest):
    """Check command cmd's result p, run while `holder` had the database at db open."""
    if cmd != "compact":
        assert p.returncode == 0 and "Traceback" not in err(p), (cmd, out(p), err(p))
    if cmd == "check":
        assert out(p).rstrip().endswith(f"{db}: ok") and "keys: 101" in out(p)
    elif cmd == "stats":
        assert "entries" in out(p) and "101" in out(p)
    elif cmd == "dump":
        assert [json.loads(line)["key"] for line in out(p).splitlines()][1:3] == ["azAwMA==", "azAwMQ=="]
        assert len(out(p).splitlines()) == 101
    elif cmd == "get":
        assert out(p) == "v5\n"
    elif cmd == "scan":
        assert len(out(p).splitlines()) == 101 and "k005\tv5" in out(p).splitlines()
    elif cmd == "backup":
        assert contents(dest) == list(holder.scan())
    elif cmd == "put":
        assert holder.get(b"k") == b"v"
    elif cmd == "delete":
        assert holder.get(b"k005") is None
    elif cmd == "load":
        assert holder.get(b"new") == b"loaded"
    elif cmd == "compact":
        assert_one_line_error(p, "locked")
        assert str(os.getpid()) not in err(p)        # B+Tree opens record no pid


BESIDE = [["check"], ["stats"], ["dump"], ["get", "k005"], ["scan"], ["delete", "k005"], ["compact"],
          ["backup", "DEST"], ["put", "k", "v"], ["load"]]


@pytest.mark.parametrize("cmd", BESIDE, ids=lambda c: c[0])
def test_commands_beside_an_open_btree(db, tmp_path, cmd):
    before = contents(db)
    dest = tmp_path / "dest"
    args = [cmd[0], db] + [dest if a == "DEST" else a for a in cmd[1:]]
    with kvdb.open(str(db)) as holder:
        p = run_cli(*args, input=LOADED if cmd[0] == "load" else b"")
        _beside_an_open(cmd[0], p, holder, db, dest)
        expected = dict(before)
        if cmd[0] == "put":
            expected[b"k"] = b"v"
        elif cmd[0] == "delete":
            del expected[b"k005"]
        elif cmd[0] == "load":
            expected[b"new"] = b"loaded"
        assert dict(holder.scan()) == expected
    assert dict(contents(db)) == expected
    assert dest.exists() is (cmd[0] == "backup")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")], "no temporary directories left"


@pytest.mark.parametrize("cmd", READERS + [["backup", "DEST"], ["put", "k", "v"], ["load"]], ids=lambda c: c[0])
def test_locked_database_is_one_line(db, tmp_path, cmd):
    """Beside an exclusive open (what kvdb compact holds while it rewrites the files) every
    command fails with one locked line, and changes nothing; the line names the holder's pid
    (an exclusive open records it), except compact's, which only learns that some open is there."""
    before = contents(db)
    args = [cmd[0], db] + [tmp_path / "dest" if a == "DEST" else a for a in cmd[1:]]
    with kvdb.open(str(db), _exclusive=True):
        p = run_cli(*args, input=LOADED if cmd[0] == "load" else b"")
    assert_one_line_error(p, "locked", *([str(os.getpid())] if cmd[0] != "compact" else []))
    assert contents(db) == before
    assert not (tmp_path / "dest").exists()


def _corrupt_middle(path):
    """Flip one byte in the middle of data.kvdb; returns the page number it is in."""
    data = path / "data.kvdb"
    size = os.path.getsize(data)
    with open(data, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0x5A]))
    return (size // 2) // 4096


@pytest.fixture
def corrupt_db(tmp_path):
    path = tmp_path / "db"
    make_db(path, binary_items(3000))
    return path, _corrupt_middle(path)


def test_check_finds_a_flipped_byte_and_names_the_page(corrupt_db):
    path, page = corrupt_db
    p = run_cli("check", path)
    assert p.returncode == 1, out(p)
    assert "Traceback" not in err(p)
    assert f"page {page}" in out(p) and "checksum mismatch" in out(p)
    assert "problem(s) found" in out(p)


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 1]))


def test_check_flags_a_damaged_free_page_and_compact_drops_it(tmp_path):
    path = tmp_path / "db"
    with kvdb.open(str(path)) as db:
        with db.transaction() as tx:
            for i in range(5000):
                tx.put(b"k%05d" % i, bytes([i % 251]) * 100)
        db.checkpoint()
        with db.transaction() as tx:
            for i in range(4500):
                tx.delete(b"k%05d" % i)
    # find a page the tree no longer reaches: damage there leaves verify() passing
    free = None
    for pgno in range(3, os.path.getsize(path / "data.kvdb") // 4096):
        trial = tmp_path / "trial"
        shutil.copytree(path, trial)
        _flip(trial / "data.kvdb", pgno * 4096 + 100)
        try:
            with kvdb.open(str(trial)) as db:
                db.verify()
                free = pgno
        except kvdb.CorruptionError:
            pass
        shutil.rmtree(trial)
        if free is not None or pgno > 60:
            break
    if free is None:
        pytest.skip("no free page with content found in this engine build")
    _flip(path / "data.kvdb", free * 4096 + 100)
    p = run_cli("check", path)
    assert p.returncode == 1
    assert f"page {free}" in out(p) and "the data is intact" in out(p)
    before = [(b"k%05d" % i, bytes([i % 251]) * 100) for i in range(4500, 5000)]
    assert run_cli("compact", path).returncode == 0
    assert contents(path) == before
    assert run_cli("check", path).returncode == 0


@pytest.mark.parametrize("cmd", [["dump"], ["scan"], ["backup", "DEST"], ["compact"]], ids=lambda c: c[0])
def test_corrupt_database_is_one_line(corrupt_db, tmp_path, cmd):
    path, page = corrupt_db
    args = [cmd[0], path] + [tmp_path / "dest" if a == "DEST" else a for a in cmd[1:]]
    p = run_cli(*args)
    assert_one_line_error(p, "corrupt", f"page {page}")
    assert not (tmp_path / "dest").exists()
    assert sorted(os.listdir(tmp_path)) == ["db"], "no temporary directories or files left"


def test_not_a_kvdb_file(tmp_path):
    path = tmp_path / "db"
    path.mkdir()
    (path / "data.kvdb").write_bytes(b"this is not a database" * 400)
    p = run_cli("check", path)
    assert p.returncode == 1 and "Traceback" not in err(p)
    assert "bad magic" in out(p)
    assert_one_line_error(run_cli("dump", path), "corrupt", "magic")


# -- progress ------------------------------------------------------------------

def test_progress_draws_only_when_asked():
    stream = io.StringIO()
    with Progress("dump", total=10, unit="keys", stream=stream, show=True) as bar:
        bar.update(5)
        bar.set(10)
    assert "dump [" in stream.getvalue() and "keys" in stream.getvalue()
    quiet = io.StringIO()  # not a terminal: nothing at all
    with Progress("dump", total=10, stream=quiet) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""
