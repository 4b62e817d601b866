"""Issue 14 item 8: `kvdb dump` keeps each key's expiry as an absolute wall-clock time and
`kvdb load` restores it, dropping records already expired (and saying how many); dumps in the
original format (no expiries) still load. And a dump that fails part-way leaves FILE.partial,
never FILE, and says so (docs/format/dump.md, D1-D4)."""
import base64
import json
import os
import time

import msgpack
import pytest

import kvdb
from kvdb.cli import dumpformat
from kvdb.cli.main import main

HOUR_MS = 3600 * 1000


def cli(capsys, *args):
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def make(path, engine="btree", n=300, ttl_every=3):
    """Keys k0000.., every ttl_every-th with an expiry an hour or more away; returns
    {key: (value, expires_ms or 0)} read back with _scan_expiry."""
    with kvdb.open(str(path), engine=engine) as db:
        with db.transaction() as tx:
            for i in range(n):
                key, value = b"k%04d" % i, b"v%d" % i * 3
                if i % ttl_every == 0:
                    tx.put(key, value, ttl=3600 + i)
                else:
                    tx.put(key, value)
        return {k: (v, e) for k, v, e in db._scan_expiry()}


def read_back(path):
    with kvdb.open(str(path)) as db:
        return {k: (v, e) for k, v, e in db._scan_expiry()}


def test_dump_version_is_stated():
    assert dumpformat.DUMP_VERSION == 2


@pytest.mark.parametrize("engine", ["btree", "lsm"])
@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_D2_dump_then_load_keeps_expiries(tmp_path, capsys, engine, fmt):
    model = make(tmp_path / "src", engine)
    assert sum(1 for _, e in model.values() if e) == 100
    out = tmp_path / f"d.{fmt}"
    status, _, error = cli(capsys, "dump", tmp_path / "src", "-o", out)
    assert status == 0, error
    status, _, error = cli(capsys, "load", tmp_path / "dst", "-i", out, "--engine", engine)
    assert status == 0, error
    assert "loaded 300 records" in error and "dropped" not in error
    assert read_back(tmp_path / "dst") == model, "every expiry restored to the same millisecond"


def test_jsonl_record_carries_expires_ms(tmp_path, capsys):
    model = make(tmp_path / "src", n=3)
    status, out, _ = cli(capsys, "dump", tmp_path / "src")
    assert status == 0
    recs = [json.loads(line) for line in out.splitlines()]
    assert recs[0] == {"key": "azAwMDA=", "value": "djB2MHYw", "expires_ms": model[b"k0000"][1]}
    assert recs[1] == {"key": "azAwMDE=", "value": "djF2MXYx"}, "no member for a key without expiry"
    now = time.time() * 1000
    assert now + 3500e3 < recs[0]["expires_ms"] < now + 3700e3, "absolute wall-clock ms"


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_D3_load_drops_records_already_expired(tmp_path, capsys, fmt):
    now = int(time.time() * 1000)
    recs = [(b"gone1", b"x", now - 1000), (b"kept", b"y", now + HOUR_MS), (b"gone2", b"z", 1), (b"plain", b"p", 0)]
    path = tmp_path / f"d.{fmt}"
    with open(path, "wb") as f:
        w = dumpformat.writer(fmt, f)
        for k, v, e in recs:
            w.write(k, v, e)
    status, _, error = cli(capsys, "load", tmp_path / "dst", "-i", path)
    assert status == 0, error
    assert "loaded 2 records" in error and "dropped 2 records whose expiry had already passed" in error
    assert read_back(tmp_path / "dst") == {b"kept": (b"y", now + HOUR_MS), b"plain": (b"p", 0)}


# Dumps written before DUMP_VERSION 2 (bytes as the old `kvdb dump` wrote them): no expiries.
OLD_JSONL = b'{"key": "AP8=", "value": "wyg="}\n{"key": "YQ==", "value": "Yg=="}\n'
OLD_MSGPACK = b"\x92\xc4\x02\x00\xff\xc4\x02\xc3\x28\x92\xc4\x01a\xc4\x01b"


@pytest.mark.parametrize("name,data", [("old.jsonl", OLD_JSONL), ("old.msgpack", OLD_MSGPACK)])
def test_D4_old_format_dump_still_loads(tmp_path, capsys, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    status, _, error = cli(capsys, "load", tmp_path / "dst", "-i", path)
    assert status == 0, error
    assert "loaded 2 records" in error
    assert read_back(tmp_path / "dst") == {b"\x00\xff": (b"\xc3\x28", 0), b"a": (b"b", 0)}


def test_D4_a_dump_without_expiries_is_the_old_format(tmp_path, capsys):
    with kvdb.open(str(tmp_path / "src")) as db:
        db.put(b"\x00\xff", b"\xc3\x28")
        db.put(b"a", b"b")
    for fmt, old in (("jsonl", OLD_JSONL), ("msgpack", OLD_MSGPACK)):
        out = tmp_path / f"d.{fmt}"
        assert cli(capsys, "dump", tmp_path / "src", "-o", out)[0] == 0
        assert out.read_bytes() == old


@pytest.mark.parametrize("bad", [b'{"key": "YQ==", "value": "Yg==", "expires_ms": "soon"}\n',
                                 b'{"key": "YQ==", "value": "Yg==", "expires_ms": -5}\n',
                                 b'{"key": "YQ==", "value": "Yg==", "expires_ms": 1.5}\n',
                                 msgpack.packb([b"a", b"b", "x"]), msgpack.packb([b"a", b"b", 0])])
def test_D2_bad_expiry_is_refused(tmp_path, capsys, bad):
    path = tmp_path / ("d.jsonl" if bad[:1] == b"{" else "d.msgpack")
    path.write_bytes(bad)
    status, _, error = cli(capsys, "load", tmp_path / "dst", "-i", path)
    assert status == 1 and "expires_ms" in error


def test_D1_prefix_dump_keeps_order_and_expiries(tmp_path, capsys):
    model = make(tmp_path / "src")
    status, out, _ = cli(capsys, "dump", tmp_path / "src", "--prefix", "k001")
    assert status == 0
    recs = [json.loads(line) for line in out.splitlines()]
    keys = [base64.b64decode(r["key"]) for r in recs]
    assert keys == sorted(set(keys)), "strictly ascending keys"
    got = {base64.b64decode(r["key"]): (base64.b64decode(r["value"]), r.get("expires_ms", 0)) for r in recs}
    assert got == {k: v for k, v in model.items() if k.startswith(b"k001")}


# -- a dump that fails part-way ------------------------------------------------------------

def damaged_btree(path, n=3000):
    """A B+Tree of n keys with one leaf page in the middle damaged (checksum mismatch);
    returns the keys, in order, that come before the damaged leaf."""
    keys = [b"k%05d" % i for i in range(n)]
    with kvdb.open(str(path)) as db:
        with db.transaction() as tx:
            for k in keys:
                tx.put(k, k * 10)
    data_file = os.path.join(str(path), "data.kvdb")
    with open(data_file, "r+b") as f:
        data = bytearray(f.read())
        at = data.find(keys[n // 2] * 10)
        assert at > 0
        data[at + 5] ^= 0x40
        f.seek(0)
        f.write(data)
    with open(data_file, "rb") as f:   # the keys stored on the damaged page
        ps, page = 4096, at // 4096
        on_page = f.read()[page * ps:(page + 1) * ps]
    first = min(k for k in keys if k * 10 in on_page)
    return [k for k in keys if k < first]


def test_D5_failed_dump_leaves_a_partial_file_and_says_so(tmp_path, capsys):
    before = damaged_btree(tmp_path / "db")
    out = tmp_path / "d.jsonl"
    status, _, error = cli(capsys, "dump", tmp_path / "db", "-o", out)
    assert status == 1
    assert error.count("\n") == 1 and "corrupt" in error
    assert f"{out}.partial" in error and f"the {len(before):,} keys dumped before it" in error
    assert not out.exists(), "a failed dump never takes the real name"
    assert sorted(os.listdir(tmp_path)) == ["d.jsonl.partial", "db"], "no temporary file left"
    got = [base64.b64decode(json.loads(line)["key"]) for line in (tmp_path / "d.jsonl.partial").read_text().splitlines()]
    assert got == before


def test_D5_failed_dump_to_stdout_says_how_far_it_got(tmp_path, capsys):
    before = damaged_btree(tmp_path / "db")
    status, out, error = cli(capsys, "dump", tmp_path / "db")
    assert status == 1 and "corrupt" in error
    assert f"stdout got the {len(before):,} keys before it" in error
    assert len(out.splitlines()) == len(before)
    assert sorted(os.listdir(tmp_path)) == ["db"]


def test_D5_failed_lsm_dump_leaves_a_partial_file(tmp_path, capsys):
    from kvdb.cli import sstscan
    path = tmp_path / "db"
    with kvdb.open(str(path), engine="lsm", memtable_size=16 << 10, sstable_size=8 << 10) as db:
        for start in range(0, 3000, 500):
            with db.transaction() as tx:
                for i in range(start, start + 500):
                    tx.put(b"k%05d" % i, b"v" * 50)
    name = sorted(n for n in os.listdir(path) if n.endswith(".sst"))[-1]
    full = os.path.join(path, name)
    scan = sstscan.TableScan(name, 0)
    with open(full, "r+b") as f:
        handles = sstscan._footer(f.fileno(), os.fstat(f.fileno()).st_size, scan)
        first = sstscan._handle(sstscan._values(sstscan._block(f.fileno(), *handles[0], scan))[-1])
        f.seek(first[0] + first[1] // 2)
        b = f.read(1)
        f.seek(first[0] + first[1] // 2)
        f.write(bytes([b[0] ^ 1]))
    out = tmp_path / "d.msgpack"
    status, _, error = cli(capsys, "dump", path, "-o", out)
    assert status == 1 and "corrupt" in error and f"{out}.partial" in error
    assert not out.exists() and (tmp_path / "d.msgpack.partial").exists()
    assert sorted(os.listdir(tmp_path)) == ["d.msgpack.partial", "db"]


def test_D5_a_dump_that_fails_before_its_first_record_leaves_no_file_and_says_so(tmp_path, capsys):
    path = tmp_path / "db"
    path.mkdir()
    (path / "data.kvdb").write_bytes(b"this is not a database" * 400)
    status, _, error = cli(capsys, "dump", path, "-o", tmp_path / "d.jsonl")
    assert status == 1 and "corrupt" in error and "nothing was written to" in error
    assert sorted(os.listdir(tmp_path)) == ["db"]
