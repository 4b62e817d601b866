"""Update operators, upserts, replace, find-and-modify, result objects, and invalid updates."""
import datetime

import pytest

import kvdb
from kvdb.documents import ObjectId, ReturnDocument


@pytest.fixture
def coll(tmp_path):
    with kvdb.open(tmp_path / "db", sync="off") as d:
        yield d.collection("c")


def after(coll, doc, update, **kw):
    coll.drop()
    coll.insert_one(dict(doc, _id=1))
    coll.update_one({"_id": 1}, update, **kw)
    out = coll.find_one({"_id": 1})
    del out["_id"]
    return out


def test_set_unset_inc_mul_min_max(coll):
    assert after(coll, {"a": 1}, {"$set": {"b.c": 2, "a": 5}}) == {"a": 5, "b": {"c": 2}}
    assert after(coll, {"a": 1, "b": 2}, {"$unset": {"a": "", "zz": 1}}) == {"b": 2}
    assert after(coll, {"a": 1}, {"$inc": {"a": 2, "n": 1.5}}) == {"a": 3, "n": 1.5}
    assert after(coll, {"a": 3}, {"$mul": {"a": 2, "z": 4}}) == {"a": 6, "z": 0}
    assert after(coll, {"a": 3}, {"$min": {"a": 1, "m": 9}}) == {"a": 1, "m": 9}
    assert after(coll, {"a": 3}, {"$max": {"a": 1}}) == {"a": 3}
    assert after(coll, {"a": 3}, {"$max": {"a": "x"}}) == {"a": "x"}          # strings sort above numbers
    assert after(coll, {"a": [1, 2]}, {"$set": {"a.1": 9, "a.3": 7}}) == {"a": [1, 9, None, 7]}
    assert after(coll, {"a": [{"b": 1}]}, {"$set": {"a.0.b": 2}}) == {"a": [{"b": 2}]}
    assert after(coll, {"a": [1, 2]}, {"$unset": {"a.0": 1}}) == {"a": [None, 2]}


def test_rename_and_set_on_insert(coll):
    assert after(coll, {"a": 1, "b": {"c": 2}}, {"$rename": {"a": "z", "b.c": "b.d"}}) == {"b": {"d": 2}, "z": 1}
    assert after(coll, {"a": 1}, {"$rename": {"missing": "x"}}) == {"a": 1}
    assert after(coll, {"a": 1}, {"$setOnInsert": {"x": 1}}) == {"a": 1}
    coll.drop()
    r = coll.update_one({"k": "v", "n": {"$gt": 1}}, {"$setOnInsert": {"x": 1}, "$set": {"y": 2}}, upsert=True)
    assert r.matched_count == 0 and r.modified_count == 0 and isinstance(r.upserted_id, ObjectId)
    doc = coll.find_one({"_id": r.upserted_id})
    assert doc == {"_id": r.upserted_id, "k": "v", "x": 1, "y": 2}
    r = coll.update_one({"_id": 7, "a.b": 3}, {"$inc": {"n": 1}}, upsert=True)
    assert r.upserted_id == 7 and coll.find_one(7) == {"_id": 7, "a": {"b": 3}, "n": 1}


def test_push_add_to_set_pull_pop(coll):
    assert after(coll, {"a": [1]}, {"$push": {"a": 2, "b": {"x": 1}}}) == {"a": [1, 2], "b": [{"x": 1}]}
    assert after(coll, {"a": [1]}, {"$push": {"a": {"$each": [2, 3, 4], "$slice": -2}}}) == {"a": [3, 4]}
    assert after(coll, {"a": [5]}, {"$push": {"a": {"$each": [1, 9], "$sort": -1}}}) == {"a": [9, 5, 1]}
    assert after(coll, {"a": [5]}, {"$push": {"a": {"$each": [1], "$position": 0}}}) == {"a": [1, 5]}
    assert after(coll, {"a": [1, 2]}, {"$addToSet": {"a": 2.0}}) == {"a": [1, 2]}
    assert after(coll, {"a": [1]}, {"$addToSet": {"a": {"$each": [1, 3, 3]}}}) == {"a": [1, 3]}
    assert after(coll, {"a": [1, 5, 2, 8]}, {"$pull": {"a": {"$gte": 5}}}) == {"a": [1, 2]}
    assert after(coll, {"a": [{"k": 1, "v": 2}, {"k": 2}]}, {"$pull": {"a": {"k": 1}}}) == {"a": [{"k": 2}]}
    assert after(coll, {"a": [1, 2, 1]}, {"$pull": {"a": 1}}) == {"a": [2]}
    assert after(coll, {"a": [1, 2, 3]}, {"$pullAll": {"a": [1, 3]}}) == {"a": [2]}
    assert after(coll, {"a": [1, 2, 3]}, {"$pop": {"a": 1}}) == {"a": [1, 2]}
    assert after(coll, {"a": [1, 2, 3]}, {"$pop": {"a": -1}}) == {"a": [2, 3]}


def test_current_date(coll):
    before = datetime.datetime.utcnow().replace(microsecond=0)
    doc = after(coll, {}, {"$currentDate": {"t": True, "u": {"$type": "date"}}})
    assert doc["t"] >= before and doc["u"].microsecond % 1000 == 0


def test_new_fields_are_added_in_lexicographic_order(coll):
    assert list(after(coll, {"m": 0}, {"$set": {"z": 1, "b": 1, "a": 1}})) == ["m", "a", "b", "z"]


@pytest.mark.parametrize("update, msg", [
    ({"$inc": {"s": 1}}, "non-numeric type"),
    ({"$inc": {"a": "x"}}, "non-numeric argument"),
    ({"$set": {"s.x": 1}}, "cannot create field"),
    ({"$push": {"s": 1}}, "must be an array"),
    ({"$set": {"a": 1}, "$inc": {"a": 1}}, "conflict"),
    ({"$set": {"a": 1, "a.b": 1}}, "conflict"),
    ({"$set": {"_id": 2}}, "immutable"),
    ({"$bogus": {"a": 1}}, "unknown update operator"),
    ({"a": 1}, "only \\$-operators|start with"),
    ({"$set": {"a.$": 1}}, "positional"),
    ({"$set": {"a": object()}}, "cannot store"),
    ({}, "non-empty"),
])
def test_invalid_updates_change_nothing(coll, update, msg):
    coll.insert_many([{"_id": 1, "a": 1, "s": "str"}, {"_id": 2, "a": 2, "s": 5}])
    before = list(coll.find())
    with pytest.raises((kvdb.InvalidUpdate, kvdb.InvalidDocument), match=msg):
        coll.update_many({}, update)
    assert list(coll.find()) == before


def test_update_many_is_all_or_nothing(coll):
    coll.insert_many([{"_id": 1, "v": 1}, {"_id": 2, "v": "x"}, {"_id": 3, "v": 3}])
    with pytest.raises(kvdb.InvalidUpdate):
        coll.update_many({}, {"$inc": {"v": 1}})
    assert [d["v"] for d in coll.find()] == [1, "x", 3]


def test_result_counts(coll):
    coll.insert_many([{"_id": i, "v": i % 2} for i in range(6)])
    r = coll.update_many({"v": 1}, {"$set": {"v": 1}})
    assert (r.matched_count, r.modified_count, r.upserted_id) == (3, 0, None)
    r = coll.update_many({"v": 1}, {"$set": {"w": 1}})
    assert (r.matched_count, r.modified_count) == (3, 3)
    assert r.raw_result["nModified"] == 3
    r = coll.update_one({"v": 0}, {"$set": {"w": 2}})
    assert (r.matched_count, r.modified_count) == (1, 1)
    assert coll.delete_one({"v": 0}).deleted_count == 1
    assert coll.delete_many({"v": 0}).deleted_count == 2
    assert coll.delete_many({"nothing": 1}).deleted_count == 0


def test_replace_one(coll):
    coll.insert_one({"_id": 1, "a": 1, "b": 2})
    r = coll.replace_one({"a": 1}, {"c": 3})
    assert (r.matched_count, r.modified_count) == (1, 1)
    assert coll.find_one(1) == {"_id": 1, "c": 3}
    with pytest.raises(kvdb.InvalidUpdate, match="operators"):
        coll.replace_one({}, {"$set": {"a": 1}})
    with pytest.raises(kvdb.InvalidUpdate, match="_id cannot change"):
        coll.replace_one({}, {"_id": 2})
    r = coll.replace_one({"_id": 5}, {"z": 1}, upsert=True)
    assert r.upserted_id == 5 and coll.find_one(5) == {"_id": 5, "z": 1}


def test_find_one_and_modify(coll):
    coll.insert_many([{"_id": i, "n": i} for i in range(5)])
    before = coll.find_one_and_update({"n": {"$gte": 2}}, {"$inc": {"n": 10}}, sort=[("n", -1)])
    assert before == {"_id": 4, "n": 4}
    after_ = coll.find_one_and_update({"_id": 3}, {"$inc": {"n": 10}}, return_document=ReturnDocument.AFTER,
                                      projection={"_id": 0})
    assert after_ == {"n": 13}
    assert coll.find_one_and_replace({"_id": 0}, {"r": 1}, return_document=True) == {"_id": 0, "r": 1}
    assert coll.find_one_and_delete({"n": 1}) == {"_id": 1, "n": 1}
    assert coll.find_one_and_delete({"n": 1}) is None
    up = coll.find_one_and_update({"_id": 9}, {"$set": {"u": 1}}, upsert=True, return_document=True)
    assert up == {"_id": 9, "u": 1}
    assert coll.find_one_and_update({"_id": 10}, {"$set": {"u": 1}}, upsert=True) is None


def test_invalid_documents(coll):
    with pytest.raises(kvdb.InvalidDocument, match="must not start"):
        coll.insert_one({"$a": 1})
    with pytest.raises(kvdb.InvalidDocument, match="must not start"):
        coll.insert_one({"a": {"b.c": 1}})
    with pytest.raises(TypeError, match="x.1"):
        coll.insert_one({"x": [1, {1, 2}]})
    with pytest.raises(kvdb.InvalidDocumentType, match="'t'"):
        coll.insert_one({"t": (1, 2)})
    with pytest.raises(kvdb.InvalidDocument, match="64 bits"):
        coll.insert_one({"big": 1 << 64})
    with pytest.raises(kvdb.InvalidDocument, match="array"):
        coll.insert_one({"_id": [1]})
    with pytest.raises(kvdb.InvalidDocument):
        coll.insert_one("nope")
    assert coll.count_documents({}) == 0


def test_insert_sets_id_and_keeps_it_first(coll):
    doc = {"a": 1}
    r = coll.insert_one(doc)
    assert doc["_id"] == r.inserted_id
    coll.insert_one({"b": 2, "_id": "x"})
    assert list(coll.find_one("x")) == ["_id", "b"]
    with pytest.raises(kvdb.DuplicateKeyError, match="_id_"):
        coll.insert_one({"_id": "x"})
    for value in ({"k": [1, 2]}, 1.5, None, b"raw", datetime.datetime(2020, 1, 1)):
        coll.insert_one({"_id": value, "v": 1})
        assert coll.find_one({"_id": value})["v"] == 1
    coll.insert_one({"_id": 2})
    with pytest.raises(kvdb.DuplicateKeyError):
        coll.insert_one({"_id": 2.0})          # 2 and 2.0 are the same _id


def test_transactions_are_atomic_across_documents(tmp_path):
    with kvdb.open(tmp_path / "db", sync="off") as db:
        users = db.collection("users")
        users.create_index("email", unique=True)
        with db.transaction() as tx:
            c = tx.collection("users")
            c.insert_one({"_id": 1, "email": "a"})
            c.update_one({"_id": 1}, {"$set": {"n": 1}})
            assert c.find_one(1) == {"_id": 1, "email": "a", "n": 1}
            assert users.find_one(1) is None        # not visible outside yet
        assert users.find_one(1)["n"] == 1
        with pytest.raises(RuntimeError):
            with db.transaction() as tx:
                tx.collection("users").insert_one({"_id": 2, "email": "b"})
                raise RuntimeError("abort")
        assert users.find_one(2) is None and users.count_documents({"email": "b"}) == 0
        with db.transaction() as tx:
            c = tx.collection("users")
            with pytest.raises(kvdb.DuplicateKeyError):
                c.insert_many([{"_id": 3, "email": "c"}, {"_id": 4, "email": "a"}])
            with pytest.raises(kvdb.InvalidUpdate):
                c.update_many({}, {"$inc": {"email": 1}})    # fails on the first doc: nothing joins tx
        assert sorted(d["_id"] for d in users.find()) == [1, 3]
        assert users.find_one(1) == {"_id": 1, "email": "a", "n": 1}
