"""Namespaces (issue 16, item 3): isolated key spaces with the whole API, on both engines; one
transaction spans several atomically; their counts (K1) stay exact through transactions,
conflicts, expiry, reopening and other processes; their keys never meet the document layer's or
the server's (K2)."""
import multiprocessing
import os

import pytest

import kvdb
from kvdb._core.database import NS_TAG
from tests.engine.test_ttl import Clock


@pytest.fixture
def db(engine, tmp_path):
    d = kvdb.open(str(tmp_path / "db"), engine=engine, sync="off")
    yield d
    d.close()


def test_namespaces_are_isolated_from_each_other_and_the_database(db):
    a, b = db.namespace("a"), db.namespace(b"a")       # a str and a bytes name are two namespaces
    db[b"k"] = b"db"
    a[b"k"] = b"A"
    b[b"k"] = b"B"
    assert (db[b"k"], a[b"k"], b[b"k"]) == (b"db", b"A", b"B")
    assert list(a.items()) == [(b"k", b"A")] and list(b.keys()) == [b"k"]
    assert len(a) == len(b) == 1
    assert a.delete(b"k") and b[b"k"] == b"B" and db[b"k"] == b"db"
    assert list(a) == [] and not a and len(a) == 0
    assert sorted(db.namespaces(), key=repr) == sorted(["a", b"a"], key=repr)
    for bad, error in [(3, TypeError), (None, TypeError), ("", ValueError), ("x" * 255, ValueError)]:
        with pytest.raises(error, match="namespace name"):
            db.namespace(bad)


def test_a_namespace_has_the_whole_api(engine, tmp_path):
    clock = Clock()
    with kvdb.open(str(tmp_path / "db"), engine=engine, _clock=clock) as db:
        ns = db.namespace("t", keys="str", values="str")
        ns.put("short", "1", ttl=5)
        ns["plain"] = "2"
        assert ns.ttl("short") == pytest.approx(5) and ns.ttl("plain") is None
        assert ns.persist("short") and ns.ttl("short") is None
        ns.put("gone", "3", ttl=1)
        clock.advance(2)
        assert "gone" not in ns and ns.get("gone") is None
        assert len(ns) == 3                              # counted until the sweep deletes it
        db._sweep_expired()
        assert len(ns) == 2 and dict(ns.items()) == {"plain": "2", "short": "1"}
        with ns.snapshot() as snap:
            ns["later"] = "4"
            assert "later" not in snap and len(snap) == 2
        with ns.transaction() as t:
            t["in-tx"] = "5"
            t.namespace("other", values="str")[b"x"] = "y"
            assert len(t) == 4
        assert ns["in-tx"] == "5" and len(ns) == 4 and db.namespace("other")[b"x"] == b"y"
        with ns.cursor() as c:
            assert c.seek("l") and c.key == "later" and c.prev() and c.key == "in-tx"


def test_one_transaction_spans_namespaces_atomically(db):
    with db.transaction() as tx:
        tx.namespace("from")[b"n"] = b"10"
    tx = db.transaction()
    src, dst = tx.namespace("from"), tx.namespace("to")
    dst[b"n"] = src.pop(b"n")
    db.namespace("from")[b"n"] = b"11"                  # a commit after tx read it
    with pytest.raises(kvdb.ConflictError):
        tx.commit()
    assert db.namespace("from")[b"n"] == b"11" and b"n" not in db.namespace("to")
    with db.transaction() as tx:
        src, dst = tx.namespace("from"), tx.namespace("to")
        dst[b"n"] = src.pop(b"n")
    assert len(db.namespace("from")) == 0 and db.namespace("to")[b"n"] == b"11"
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.namespace("to")[b"m"] = b"1"
            raise RuntimeError("rolled back")
    assert list(db.namespace("to")) == [b"n"] and len(db.namespace("to")) == 1


def test_K1_counts_are_exact_through_every_kind_of_write(db, tmp_path):
    ns = db.namespace("c")
    ns.put_many((b"%03d" % i, b"v") for i in range(100))
    ns.put_many((b"%03d" % i, b"w") for i in range(50, 150))      # 50 overwrites, 50 new
    assert len(ns) == 150
    ns.update({b"%03d" % i: b"x" for i in range(140, 160)})       # 10 new
    assert len(ns) == 160
    for i in range(0, 160, 2):
        ns.discard(b"%03d" % i)
    ns.discard(b"absent")
    assert len(ns) == 80
    with db.transaction() as tx:
        t = tx.namespace("c")
        t.put_many([(b"dup", b"1"), (b"dup", b"2")])
        t.delete(b"001")
        t.delete(b"001")
        assert len(t) == 80
    assert len(ns) == 80 and ns.pop(b"dup") == b"2" and len(ns) == 79
    ns.clear()
    assert len(ns) == 0 and "c" in db.namespaces()
    assert db.drop_namespace("c") and not db.drop_namespace("c")
    assert db.namespaces() == [] and len(db) == 0


def _write_and_die(path, engine):
    db = kvdb.open(path, engine=engine, sync="normal")
    db.namespace("a")[b"new"] = b"v"
    db.namespace("b")[b"x"] = b"v"
    os._exit(0)                                          # no close: the next open replays the log


def test_K1_counts_survive_reopening_and_a_crash(engine, tmp_path):
    path = str(tmp_path / "db")
    with kvdb.open(path, engine=engine) as db:
        db.namespace("a").put_many((b"%d" % i, b"v") for i in range(300))
        db.namespace("a").discard(b"7")
    with kvdb.open(path, engine=engine) as db:
        assert len(db.namespace("a")) == 299
    p = multiprocessing.get_context("spawn").Process(target=_write_and_die, args=(path, engine))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    with kvdb.open(path, engine=engine) as db:
        assert len(db.namespace("a")) == 300 == sum(1 for _ in db.namespace("a"))
        assert len(db.namespace("b")) == 1
        db.verify()


def _add_keys(path, worker, n):
    with kvdb.open(path) as db:
        ns = db.namespace("shared")
        for i in range(n):
            ns[b"w%d-%04d" % (worker, i)] = b"v"
            if i % 3 == 0:
                ns[b"common-%04d" % i] = b"v"           # both workers write these: overwrites
            if i % 5 == 0:
                ns.discard(b"w%d-%04d" % (worker, i))


def test_K1_counts_stay_exact_with_several_processes_writing(tmp_path):
    path = str(tmp_path / "db")
    kvdb.open(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_keys, args=(path, w, 300)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with kvdb.open(path) as db:
        ns = db.namespace("shared")
        assert len(ns) == sum(1 for _ in ns) == 2 * (300 - 60) + 100


def test_K2_only_namespaces_write_keys_starting_0x02(tmp_path):
    with kvdb.open(str(tmp_path / "db")) as db:
        db.collection("people").insert_one({"_id": 1, "name": "a"})
        db.collection("people").create_index("name")
        db.namespace("n")[b"k"] = b"v"
        firsts = {k[0] for k in db.keys()}
        assert NS_TAG in firsts
        assert [k for k in db.keys() if k[0] == NS_TAG] == [b"\x02\x00sn", b"\x02\x02snk"]   # record, key
        assert {k[0] for k in db.keys() if not k.startswith(b"\x02")} == {0}
        assert db.list_collections() == ["people"] and db.namespaces() == ["n"]


def test_a_namespace_of_a_snapshot_is_read_only(db):
    db.namespace("r")[b"k"] = b"v"
    with db.snapshot() as snap:
        ns = snap.namespace("r")
        assert ns[b"k"] == b"v" and len(ns) == 1
        with pytest.raises(kvdb.ReadOnlyError):
            ns[b"x"] = b"y"
