"""Secondary indexes: unique, compound, multikey, the planner and explain(), index builds, and the
invariant that index entries always equal what the documents give (also across simulated crashes)."""
import random
import threading
import weakref

import pytest
from hypothesis import given, settings, strategies as st

from tests import helpers
import kvdb
from kvdb.documents import verify
from kvdb.documents.keycodec import encode, invert
from kvdb.documents.keydecode import decode_fields

try:
    from kvdb._core.file import SimFS, SimulatedCrash
except ImportError:  # pragma: no cover
    SimFS = SimulatedCrash = None


@pytest.fixture
def db(tmp_path):
    with kvdb.open(tmp_path / "db", sync="off") as d:
        yield d


def test_key_encoding_orders_like_mongodb():
    import datetime
    from kvdb.documents import ObjectId
    values = [None, float("-inf"), -2 ** 63, -1.5, 0, 0.5, 1, 2 ** 53, 2 ** 53 + 1, 2 ** 63 - 1, float("inf"),
              "", "\x00", "a", "a\x00", "ab", "b", {}, {"a": 1}, {"a": 1, "b": 1}, {"b": 0}, [], [1], [1, 2], [2],
              b"", b"\xff", b"\x00\x00", ObjectId(b"\x00" * 12), ObjectId(b"\x01" * 12), False, True,
              datetime.datetime(1960, 1, 1), datetime.datetime(2020, 1, 1)]
    keys = [encode(v) for v in values]
    assert keys == sorted(keys)
    assert encode(1) == encode(1.0) and encode(-0.0) == encode(0)
    for v in values:
        assert decode_fields(encode(v), [1]) == [v] or v != v
        assert decode_fields(invert(encode(v)), [-1]) == [v]
    # prefix-free: a compound key sorts by its first field first
    assert encode("a") + encode(9) < encode("a\x00") + encode(0)
    assert invert(encode("a")) > invert(encode("ab"))


def test_unique_index_violation_names_index_and_value_and_writes_nothing(db):
    users = db.collection("users")
    users.create_index([("email", 1)], unique=True)
    users.insert_one({"_id": 1, "email": "a@x"})
    with pytest.raises(kvdb.DuplicateKeyError, match=r"email_1.*a@x") as e:
        users.insert_one({"_id": 2, "email": "a@x"})
    assert e.value.index_name == "email_1" and e.value.key == {"email": "a@x"}
    assert users.count_documents({}) == 1
    with pytest.raises(kvdb.DuplicateKeyError) as e:
        users.insert_many([{"_id": 3, "email": "b@x"}, {"_id": 4, "email": "a@x"}, {"_id": 5, "email": "c@x"}])
    assert e.value.doc_index == 1 and e.value.inserted_ids == [3] and "document 1" in str(e.value)
    assert sorted(d["_id"] for d in users.find()) == [1, 3]
    with pytest.raises(kvdb.DuplicateKeyError):
        users.insert_many([{"_id": 6, "email": "a@x"}, {"_id": 7, "email": "d@x"}], ordered=False)
    assert sorted(d["_id"] for d in users.find()) == [1, 3, 7]
    with pytest.raises(kvdb.DuplicateKeyError):
        users.update_one({"_id": 3}, {"$set": {"email": "a@x"}})
    assert users.find_one(3)["email"] == "b@x"
    users.update_one({"_id": 3}, {"$set": {"email": "b@x", "n": 1}})       # its own key is no conflict
    users.insert_one({"_id": 8})
    with pytest.raises(kvdb.DuplicateKeyError):                           # missing counts as null, like MongoDB
        users.insert_one({"_id": 9})
    assert verify(db) == {"users": []}


def test_compound_unique_and_multikey_rules(db):
    c = db.collection("c")
    c.create_index([("city", 1), ("age", -1)], unique=True)
    c.insert_one({"city": "L", "age": 1})
    c.insert_one({"city": "L", "age": 2})
    with pytest.raises(kvdb.DuplicateKeyError):
        c.insert_one({"city": "L", "age": 1.0})
    c.insert_one({"city": ["P", "Q"], "age": 3})                      # multikey on one field
    with pytest.raises(kvdb.InvalidDocument, match="parallel arrays"):
        c.insert_one({"city": ["X"], "age": [1, 2]})
    assert c.find_one({"city": "Q"})["age"] == 3
    assert [ix.get("multikey", False) for ix in c.list_indexes()] == [False, True]
    t = db.collection("t")
    t.create_index("tags", unique=True)
    t.insert_one({"_id": 1, "tags": ["a", "a", "b"]})                  # a document never clashes with itself
    with pytest.raises(kvdb.DuplicateKeyError):
        t.insert_one({"_id": 2, "tags": ["c", "b"]})
    assert verify(db) == {"c": [], "t": []}


def test_planner_and_explain(db):
    c = db.collection("people")
    c.insert_many([{"_id": i, "age": i % 50, "city": "c%d" % (i % 7), "tags": ["t%d" % (i % 3), "x"]} for i in range(500)])
    c.create_index("age")
    c.create_index([("city", 1), ("age", -1)])
    c.create_index("tags")
    e = c.find({"age": 7}).explain()
    assert (e["plan"], e["index"], e["keysExamined"], e["docsExamined"], e["nReturned"]) == ("IXSCAN", "age_1", 10, 10, 10)
    e = c.find({"age": {"$gte": 10, "$lt": 12}}).explain()
    assert e["index"] == "age_1" and e["keysExamined"] == 20
    e = c.find({"city": "c3", "age": {"$gt": 40}}).explain()
    assert e["index"] == "city_1_age_-1" and e["keysExamined"] == e["nReturned"] == 12
    e = c.find({"city": {"$in": ["c1", "c2"]}}).explain()
    assert e["index"] == "city_1_age_-1" and e["nReturned"] == e["keysExamined"] == 144
    e = c.find({"tags": "t1", "age": {"$exists": True}}).explain()
    assert e["plan"] == "IXSCAN" and e["nReturned"] == 167
    e = c.find({"_id": 5}).explain()
    assert (e["plan"], e["index"], e["docsExamined"]) == ("IDHACK", "_id_", 1)
    e = c.find({"_id": {"$gte": 490}}).explain()
    assert (e["plan"], e["index"], e["docsExamined"]) == ("IXSCAN", "_id_", 10)
    e = c.find({"name": "x"}).explain()
    assert (e["plan"], e["index"], e["docsExamined"]) == ("COLLSCAN", None, 500)
    e = c.find({}).sort("age", -1).limit(3).explain()
    assert e["sort"] == "index" and e["keysExamined"] == 3
    e = c.find({"city": "c2"}).sort("age", -1).explain()
    assert e["sort"] == "index" and e["index"] == "city_1_age_-1"
    e = c.find({}).sort("tags", 1).explain()                     # multikey: never sorts by index
    assert e["sort"] == "in-memory"
    assert [d["age"] for d in c.find({}).sort("age", -1).limit(3)] == [49, 49, 49]
    assert [d["age"] for d in c.find({"city": "c2"}).sort("age", 1).limit(2)] == [0, 0]
    e = c.find({"age": {"$ne": 3}}).explain()
    assert e["plan"] == "COLLSCAN"
    import json
    json.dumps(e)                                                 # plain data


def test_index_build_on_existing_collection_with_progress(db, monkeypatch):
    from kvdb.documents import collection as collection_module
    monkeypatch.setattr(collection_module, "BUILD_BATCH", 100)
    c = db.collection("c")
    c.insert_many([{"_id": i, "v": i % 10} for i in range(1050)])
    seen = []
    c.create_index("v", progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 1050) and seen[-1] == (1050, 1050) and len(seen) == 12
    assert c.find({"v": 3}).explain()["index"] == "v_1"
    assert c.count_documents({"v": 3}) == 105
    assert c.create_index("v") == "v_1"                              # again: nothing to do
    c.insert_many([{"_id": 2000 + i, "u": i % 3} for i in range(30)])
    with pytest.raises(kvdb.DuplicateKeyError):
        c.create_index("u", unique=True)
    assert [ix["name"] for ix in c.list_indexes()] == ["_id_", "v_1"]
    c.drop_index("v_1")
    with pytest.raises(kvdb.IndexNotFoundError):
        c.drop_index("v_1")
    assert verify(db) == {"c": []}


def test_queries_stay_correct_while_an_index_builds(db, monkeypatch):
    from kvdb.documents import collection as collection_module
    monkeypatch.setattr(collection_module, "BUILD_BATCH", 50)
    c = db.collection("c")
    c.insert_many([{"_id": i, "v": i % 10} for i in range(1000)])
    stop = threading.Event()
    errors = []

    def writer():
        i = 0
        while not stop.is_set():
            try:
                c.insert_one({"_id": 10000 + i, "v": i % 10})
                c.update_one({"_id": i % 1000}, {"$inc": {"v": 10}})
                c.delete_one({"_id": 10000 + i - 5})
                i += 1
            except Exception as e:  # reported below
                errors.append(e)
                return

    def reader():
        while not stop.is_set():
            with db.transaction() as tx:
                col = tx.collection("c")
                expected = sum(1 for d in col.find() if d["v"] == 3)
                if col.count_documents({"v": 3}) != expected:
                    errors.append(AssertionError("count during build differs from a scan"))
                    return
    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        c.create_index("v")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert verify(db) == {"c": []}
    assert c.count_documents({"v": 3}) == sum(1 for d in c.find() if d["v"] == 3)


values = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([1.0, 2.5, "a", "b", True]),
                   st.lists(st.integers(0, 3), max_size=3))
ops = st.lists(st.tuples(st.sampled_from(["insert", "update", "delete", "replace"]), st.integers(0, 8),
                         values, values), min_size=1, max_size=30)


@settings(max_examples=300 if helpers.LONG else 40)
@given(ops=ops)
def test_index_scan_equals_collection_scan(tmp_path_factory, ops):
    with kvdb.open(tmp_path_factory.mktemp("ix") / "db", sync="off") as db:
        c = db.collection("c")
        c.create_index("a")
        c.create_index([("b", -1), ("a", 1)])
        for op, i, a, b in ops:
            try:
                if op == "insert":
                    c.insert_one({"_id": i, "a": a, "b": b})
                elif op == "update":
                    c.update_many({"a": a}, {"$set": {"b": b}})
                elif op == "replace":
                    c.replace_one({"_id": i}, {"a": b, "b": a})
                else:
                    c.delete_many({"b": b})
            except (kvdb.DuplicateKeyError, kvdb.InvalidDocument):
                pass
            assert verify(db) == {"c": []}
        plain = db.collection("plain")
        docs = list(c.find())
        if docs:
            plain.insert_many(docs)
        for v in (None, 0, 1, 2.5, "a", True, [0, 1]):
            for flt in ({"a": v}, {"b": v}, {"a": {"$gte": v}}, {"b": {"$lt": v}}, {"b": v, "a": {"$gt": 0}},
                        {"a": {"$in": [v, 2]}}):
                by_id = lambda d: encode(d["_id"])  # noqa: E731  (plans differ in natural order)
                assert sorted(c.find(flt), key=by_id) == sorted(plain.find(flt), key=by_id), flt
                sort = [("b", -1), ("a", 1), ("_id", 1)]
                assert list(c.find(flt).sort(sort)) == list(plain.find(flt).sort(sort)), flt


def _doc_workload(db, seed, n):
    rng = random.Random(seed)
    c = db.collection("c")
    c.create_index("k")
    c.create_index("tags", unique=False)
    for step in range(n):
        i = rng.randrange(30)
        r = rng.random()
        try:
            if r < 0.4:
                c.insert_many([{"_id": i + j, "k": rng.randrange(5), "tags": [rng.randrange(4) for _ in range(2)]}
                               for j in range(3)])
            elif r < 0.7:
                c.update_many({"k": rng.randrange(5)}, {"$inc": {"k": 1}, "$push": {"tags": rng.randrange(4)}})
            elif r < 0.85:
                with db.transaction() as tx:
                    t = tx.collection("c")
                    t.delete_many({"tags": rng.randrange(4)})
                    t.insert_one({"_id": 100 + step, "k": 9, "tags": []})
            else:
                c.delete_one({"_id": i})
        except kvdb.DuplicateKeyError:
            pass


@pytest.mark.skipif(SimFS is None, reason="needs the crash simulator")
def test_crash_leaves_documents_and_indexes_in_agreement(long_mode):
    path = "/sim/docs"
    probe = SimFS()
    db = kvdb.open(path, _fs=probe, sync="full", page_size=512)
    before = probe.io_calls
    _doc_workload(db, 1, 25)
    total = probe.io_calls - before
    db.close()
    points = range(1, total, 1 if long_mode else max(1, total // 25))
    for k in points:
        fs = SimFS()
        fs.crash_after(k)
        db = abandoned = None
        try:
            db = kvdb.open(path, _fs=fs, sync="full", page_size=512)
            abandoned = weakref.ref(db)
            _doc_workload(db, 1, 25)
            db.close()
        except (SimulatedCrash, kvdb.Error):
            pass                        # the failed database is dropped unclosed and collected
        db = None
        helpers.drop_abandoned(abandoned)
        fs.crash(k)
        db = kvdb.open(path, _fs=fs, sync="full", page_size=512)
        try:
            assert verify(db) in ({}, {"c": []}), f"crash after {k} I/O calls"
        finally:
            db.close()


def test_database_lists_and_drops_collections(tmp_path, engine):
    with kvdb.open(tmp_path / "db", engine=engine, sync="off") as d:
        assert d.list_collections() == []
        d.collection("logs").insert_one({"msg": "x"})
        d.collection("placeholder").insert_one({})        # takes the next collection number first
        d.drop_collection("placeholder")
        keys_before = [k for k, _ in d.scan()]
        d.collection("users").insert_many([{"_id": i, "age": i} for i in range(50)])
        d.collection("users").create_index("age")
        assert sorted(d.list_collections()) == ["logs", "users"]
        assert d.drop_collection("users") is True
        assert d.drop_collection("users") is False           # already gone
        assert d.list_collections() == ["logs"]
        assert d.collection("users").count_documents({}) == 0
        assert [k for k, _ in d.scan()] == keys_before          # documents, index entries, catalog
        with pytest.raises(kvdb.InvalidName):
            d.drop_collection("")
        assert d.collection("logs").find_one({})["msg"] == "x"
