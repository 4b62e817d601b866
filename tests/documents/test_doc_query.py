"""Query operators and MongoDB's matching rules, each case run with and without an index."""
import datetime
import re

import pytest

import kvdb
from kvdb.documents import ObjectId


@pytest.fixture
def db(tmp_path):
    with kvdb.open(tmp_path / "db", sync="off") as d:
        yield d


def ids(coll, flt, **kw):
    return sorted(d["_id"] for d in coll.find(flt, **kw))


def check(db, docs, flt, expected, index=None):
    """find(flt) returns the documents with _id in `expected`, with and without an index on `index`."""
    coll = db.collection("c")
    coll.drop()
    coll.insert_many([dict(d) for d in docs])
    assert ids(coll, flt) == sorted(expected), ("no index", flt)
    assert coll.count_documents(flt) == len(expected)
    for spec in ([index] if isinstance(index, (str, list)) else (index or [])):
        coll.create_index(spec)
    if index:
        assert ids(coll, flt) == sorted(expected), ("indexed", flt, coll.find(flt).explain())


ARR = [{"_id": 1, "tags": ["red", "blue"]}, {"_id": 2, "tags": "red"}, {"_id": 3, "tags": ["green"]},
       {"_id": 4}, {"_id": 5, "tags": [["red"]]}, {"_id": 6, "tags": []}]


def test_array_any_element_or_whole(db):
    check(db, ARR, {"tags": "red"}, [1, 2], "tags")
    check(db, ARR, {"tags": ["red", "blue"]}, [1], "tags")
    check(db, ARR, {"tags": ["red"]}, [5], "tags")           # an element that is itself the array
    check(db, ARR, {"tags": []}, [6], "tags")
    check(db, ARR, {"tags": {"$in": ["green", "blue"]}}, [1, 3], "tags")


def test_conditions_on_arrays_may_use_different_elements(db):
    docs = [{"_id": 1, "a": [1, 20]}, {"_id": 2, "a": [10]}, {"_id": 3, "a": 30}, {"_id": 4, "a": [2, 3]}]
    check(db, docs, {"a": {"$gt": 5, "$lt": 15}}, [1, 2], "a")
    check(db, docs, {"a": {"$elemMatch": {"$gt": 5, "$lt": 15}}}, [2], "a")


def test_null_matches_null_and_missing_ne_includes_missing(db):
    docs = [{"_id": 1, "x": None}, {"_id": 2}, {"_id": 3, "x": 0}, {"_id": 4, "x": [None, 1]}, {"_id": 5, "x": []}]
    check(db, docs, {"x": None}, [1, 2, 4], "x")
    check(db, docs, {"x": {"$ne": None}}, [3, 5], "x")
    check(db, docs, {"x": {"$ne": 0}}, [1, 2, 4, 5], "x")
    check(db, docs, {"x": {"$exists": False}}, [2], "x")
    check(db, docs, {"x": {"$exists": True}}, [1, 3, 4, 5], "x")
    check(db, docs, {"x": {"$in": [None]}}, [1, 2, 4], "x")
    check(db, docs, {"x": {"$nin": [None]}}, [3, 5], "x")
    check(db, docs, {"x": {"$gte": None}}, [1, 2, 4], "x")
    check(db, docs, {"x": {"$gt": None}}, [], "x")
    check(db, docs, {"x": {"$type": "null"}}, [1, 4], "x")


def test_type_brackets(db):
    docs = [{"_id": 1, "v": 5}, {"_id": 2, "v": "7"}, {"_id": 3, "v": 6.5}, {"_id": 4, "v": True},
            {"_id": 5, "v": datetime.datetime(2020, 1, 1)}, {"_id": 6, "v": b"\x09"}, {"_id": 7, "v": "a"}]
    check(db, docs, {"v": {"$gt": 5}}, [3], "v")
    check(db, docs, {"v": {"$gte": 5}}, [1, 3], "v")
    check(db, docs, {"v": {"$lt": "b"}}, [2, 7], "v")
    check(db, docs, {"v": {"$gt": datetime.datetime(2019, 1, 1)}}, [5], "v")
    check(db, docs, {"v": {"$gte": False}}, [4], "v")
    check(db, docs, {"v": 1}, [], "v")            # True is not the number 1
    check(db, docs, {"v": True}, [4], "v")
    check(db, docs, {"v": {"$lt": b"\x00\x00"}}, [6], "v")
    check(db, docs, {"v": {"$lt": "b", "$gt": 2}}, [], "v")        # bounds of two brackets: nothing


def test_int_and_float_compare_equal(db):
    docs = [{"_id": 1, "n": 1}, {"_id": 2, "n": 1.0}, {"_id": 3, "n": 2}, {"_id": 4, "n": 2 ** 53 + 1},
            {"_id": 5, "n": float(2 ** 53)}]
    check(db, docs, {"n": 1}, [1, 2], "n")
    check(db, docs, {"n": 1.0}, [1, 2], "n")
    check(db, docs, {"n": {"$in": [2.0]}}, [3], "n")
    check(db, docs, {"n": {"$gt": 2 ** 53}}, [4], "n")
    check(db, docs, {"n": 2 ** 53}, [5], "n")


def test_nan(db):
    docs = [{"_id": 1, "n": float("nan")}, {"_id": 2, "n": 0}, {"_id": 3, "n": -1e300}]
    check(db, docs, {"n": float("nan")}, [1], "n")
    check(db, docs, {"n": {"$lt": 5}}, [2, 3], "n")
    check(db, docs, {"n": {"$gte": float("nan")}}, [1], "n")


def test_dot_paths_into_documents_and_arrays(db):
    docs = [{"_id": 1, "a": {"b": 1}}, {"_id": 2, "a": [{"b": 1}, {"b": 2}]}, {"_id": 3, "a": [{"c": 1}]},
            {"_id": 4, "a": 5}, {"_id": 5, "a": [[{"b": 1}]]}, {"_id": 6, "a": [{"b": [3, 1]}]}]
    check(db, docs, {"a.b": 1}, [1, 2, 6], "a.b")
    check(db, docs, {"a.b": {"$gt": 1}}, [2, 6], "a.b")
    check(db, docs, {"a.0.b": 1}, [2, 5, 6], "a.b")
    check(db, docs, {"a.1.b": 2}, [2])
    check(db, docs, {"a.b": None}, [3, 4], "a.b")
    check(db, docs, {"a.b": {"$exists": False}}, [3, 4, 5], "a.b")
    check(db, docs, {"a.0": {"b": 1}}, [2, 5])
    check(db, docs, {"a.c": {"$exists": True}}, [3])


def test_embedded_document_equality_is_ordered(db):
    docs = [{"_id": 1, "d": {"x": 1, "y": 2}}, {"_id": 2, "d": {"y": 2, "x": 1}}, {"_id": 3, "d": {"x": 1.0, "y": 2}}]
    check(db, docs, {"d": {"x": 1, "y": 2}}, [1, 3], "d")


def test_logical_operators(db):
    docs = [{"_id": i, "a": i % 3, "b": i % 2} for i in range(8)]
    check(db, docs, {"$or": [{"a": 0}, {"b": 1}]}, [0, 1, 3, 5, 6, 7], "a")
    check(db, docs, {"$and": [{"a": {"$gte": 1}}, {"b": 0}]}, [2, 4], ["a", "b"])
    check(db, docs, {"$nor": [{"a": 0}, {"b": 1}]}, [2, 4], "a")
    check(db, docs, {"a": {"$not": {"$gt": 0}}}, [0, 3, 6], "a")
    check(db, docs, {"a": {"$nin": [0, 1]}}, [2, 5], "a")


def test_regex_size_all_type_mod(db):
    docs = [{"_id": 1, "s": "Apple", "t": [1, 2, 3]}, {"_id": 2, "s": "banana", "t": [2]},
            {"_id": 3, "s": ["cherry", "apricot"], "t": []}, {"_id": 4, "s": 5, "t": [-7, 7.5]}]
    check(db, docs, {"s": {"$regex": "^a"}}, [3], "s")
    check(db, docs, {"s": {"$regex": "^a", "$options": "i"}}, [1, 3], "s")
    check(db, docs, {"s": re.compile("an")}, [2], "s")
    check(db, docs, {"s": {"$not": re.compile("an")}}, [1, 3, 4], "s")
    check(db, docs, {"t": {"$size": 1}}, [2], "t")
    check(db, docs, {"t": {"$size": 0}}, [3], "t")
    check(db, docs, {"t": {"$all": [2, 3]}}, [1], "t")
    check(db, docs, {"t": {"$all": []}}, [], "t")
    check(db, docs, {"t": {"$type": "array"}}, [1, 2, 3, 4], "t")
    check(db, docs, {"t": {"$type": "double"}}, [4], "t")
    check(db, docs, {"s": {"$type": ["int", "long"]}}, [4], "s")
    check(db, docs, {"t": {"$mod": [2, 0]}}, [1, 2], "t")
    check(db, docs, {"t": {"$mod": [2, -1]}}, [4], "t")        # -7 % 2 is -1 (C remainder)
    check(db, docs, {"t": {"$elemMatch": {"$gte": 3}}}, [1, 4], "t")


def test_elem_match_documents(db):
    docs = [{"_id": 1, "r": [{"k": "a", "v": 1}, {"k": "b", "v": 2}]}, {"_id": 2, "r": [{"k": "a", "v": 2}]}]
    check(db, docs, {"r": {"$elemMatch": {"k": "a", "v": 2}}}, [2], "r.k")
    check(db, docs, {"r.k": "a", "r.v": 2}, [1, 2], "r.k")
    check(db, docs, {"r": {"$all": [{"$elemMatch": {"v": {"$gt": 1}}}]}}, [1, 2])


def test_bytes_order_is_length_first(db):
    docs = [{"_id": 1, "b": b"\xff"}, {"_id": 2, "b": b"\x00\x00"}]
    check(db, docs, {"b": {"$gt": b"\xff"}}, [2], "b")


def test_objectid_and_dates(db):
    a, b = ObjectId(), ObjectId()
    when = datetime.datetime(2024, 5, 1, 12, 0, 0, 123456)
    docs = [{"_id": 1, "o": a, "w": when}, {"_id": 2, "o": b, "w": datetime.datetime(2025, 1, 1)}]
    check(db, docs, {"o": a}, [1], "o")
    check(db, docs, {"o": {"$gt": a}}, [2], "o")
    check(db, docs, {"w": when}, [1], "w")                      # stored to the millisecond
    coll = db.collection("c")
    assert coll.find_one({"_id": 1})["w"] == when.replace(microsecond=123000)
    aware = datetime.datetime(2024, 5, 1, 14, 0, 0, 123000, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert ids(coll, {"w": aware}) == [1]


def test_bad_queries_raise_clear_errors(db):
    coll = db.collection("c")
    coll.insert_one({"a": 1})
    for flt, msg in [({"a": {"$bogus": 1}}, "unknown operator"), ({"$where": "x"}, "unknown top-level"),
                     ({"a": {"$in": 5}}, "need a list"), ({"$or": []}, "non-empty"),
                     ({"a": {"$size": -1}}, "non-negative"), ({"a": {"$mod": [0, 1]}}, "divisor"),
                     ({"a": {"$regex": "("}}, "invalid regex"), ({"a": {"$type": "nope"}}, "unknown \\$type"),
                     ({"a": object()}, "cannot compare"), ("notadict", "must be a dict")]:
        with pytest.raises(kvdb.InvalidQuery, match=msg):
            list(coll.find(flt))
    with pytest.raises(ValueError):
        coll.count_documents({"a": {"$gt": 1, "b": 2}})


def test_sort_cross_type_order_and_arrays(db):
    coll = db.collection("c")
    docs = [{"_id": 1, "v": True}, {"_id": 2, "v": "s"}, {"_id": 3}, {"_id": 4, "v": None}, {"_id": 5, "v": 3},
            {"_id": 6, "v": {"a": 1}}, {"_id": 7, "v": [2, 9]}, {"_id": 8, "v": b"b"}, {"_id": 9, "v": ObjectId()},
            {"_id": 10, "v": datetime.datetime(2020, 1, 1)}, {"_id": 11, "v": []}, {"_id": 12, "v": [[1]]}]
    coll.insert_many(docs)
    asc = [d["_id"] for d in coll.find().sort([("v", 1), ("_id", 1)])]
    # [] (undefined) < null/missing < numbers (2 from [2, 9], 3) < string < object < array [[1]] < bytes ...
    assert asc == [11, 3, 4, 7, 5, 2, 6, 12, 8, 9, 1, 10]
    desc = [d["_id"] for d in coll.find().sort([("v", -1), ("_id", 1)])]
    # descending uses the largest element: [2, 9] sorts as 9
    assert desc == [10, 1, 9, 8, 12, 6, 2, 7, 5, 3, 4, 11]
    coll.create_index("v")
    assert [d["_id"] for d in coll.find().sort([("v", 1), ("_id", 1)])] == asc


def test_projection(db):
    coll = db.collection("c")
    coll.insert_one({"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [{"c": 4, "f": 5}, 6]})
    assert coll.find_one({}, {"a": 1}) == {"_id": 1, "a": 1}
    assert coll.find_one({}, {"a": 1, "_id": 0}) == {"a": 1}
    assert coll.find_one({}, {"b.c": 1, "e.c": 1}) == {"_id": 1, "b": {"c": 2}, "e": [{"c": 4}]}
    assert coll.find_one({}, {"b.c": 0, "e.f": 0, "_id": 0}) == {"a": 1, "b": {"d": 3}, "e": [{"c": 4}, 6]}
    assert coll.find_one({}, ["a"]) == {"_id": 1, "a": 1}
    assert coll.find_one({}, {"_id": 0}) == {"a": 1, "b": {"c": 2, "d": 3}, "e": [{"c": 4, "f": 5}, 6]}
    with pytest.raises(kvdb.InvalidQuery, match="mix"):
        coll.find({}, {"a": 1, "b": 0})
    with pytest.raises(kvdb.InvalidQuery, match="not supported"):
        coll.find({}, {"e": {"$slice": 1}})


def test_cursor_skip_limit_and_find_one_forms(db):
    coll = db.collection("c")
    coll.insert_many([{"_id": i, "n": i} for i in range(10)])
    assert [d["n"] for d in coll.find({"n": {"$gte": 2}}).sort("n", -1).skip(2).limit(3)] == [7, 6, 5]
    assert [d["n"] for d in coll.find(sort=[("n", 1)], skip=8)] == [8, 9]
    assert coll.find_one(3) == {"_id": 3, "n": 3}
    assert coll.find_one({"n": 99}) is None
    cur = coll.find()
    next(cur)
    with pytest.raises(kvdb.InvalidQuery, match="started"):
        cur.sort("n")
    assert coll.distinct("n", {"n": {"$lt": 3}}) == [0, 1, 2]
    assert coll.count_documents({}, skip=3, limit=4) == 4
    assert coll.estimated_document_count() == 10
    assert db.collection("nothing").find_one() is None
    assert list(db.collection("nothing").find({"a": 1})) == []


def test_find_one_lets_its_snapshot_go_at_once(tmp_path):
    """find_one returns from inside its cursor's loop; the cursor is closed there, not left in a
    reference cycle (cursor <-> generator) that pins a snapshot until the collector runs."""
    import gc
    with kvdb.open(str(tmp_path / "db")) as db:
        coll = db.collection("c")
        coll.insert_many([{"_id": i, "n": i % 3} for i in range(10)])
        gc.disable()
        try:
            assert coll.find_one({"n": 1})["_id"] == 1
            assert coll.find_one({"n": 2}, sort=[("_id", -1)])["_id"] == 8
            assert db.stats()["snapshots"] == 0
        finally:
            gc.enable()
