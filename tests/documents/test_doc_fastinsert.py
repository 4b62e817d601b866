"""insert_many's C path (kvdb/documents/fastinsert.pyx) against the general Python path, and the
ObjectId generator it shares with ObjectId() (kvdb/documents/objectid.pyx).

The C path takes documents without an _id into collections with plain single-field indexes; the
general path (Collection._prepare, _insert_prepared) takes every other document. Both must store
exactly the same keys and values, and a document the C path cannot take must end up with the
general path's error, at the same index, with the documents before it stored."""
import contextlib
import copy
import datetime
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import kvdb
from kvdb.documents import InvalidDocument, ObjectId, fastinsert
from kvdb.documents import collection as collection_module
from kvdb.documents.codec import _names_ok
from kvdb.documents.objectid import new_id

NAMES = st.sampled_from(["a", "b", "grp", "tags", "x.y", "$x", "é", "", "n"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 64 - 1), st.floats(allow_nan=False),
    st.text(max_size=8), st.binary(max_size=8),
    st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(2100, 1, 1)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)),
    st.builds(ObjectId, st.binary(min_size=12, max_size=12)))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)), max_leaves=6)
DOCS = st.lists(st.dictionaries(NAMES, VALUES, max_size=5), min_size=1, max_size=12)


def stored(db):
    """Every key and value of the database (documents, index entries, catalog)."""
    return list(db.scan())


def open_dbs(tmp_path, name):
    """Three databases with the same collection and indexes: insert_many's C path, its general
    path, and insert_one."""
    dbs = [kvdb.open(tmp_path / f"{name}-{side}", sync="off") for side in ("fast", "general", "one")]
    colls = [db.collection("c") for db in dbs]
    for c in colls:
        c.create_index("grp")
        c.create_index("tags")
    return dbs, colls


def outcome(coll, docs, ordered):
    """(inserted ids, (error type, doc_index, message) or None) of insert_many."""
    try:
        return coll.insert_many(docs, ordered=ordered).inserted_ids, None
    except InvalidDocument as e:
        return getattr(e, "inserted_ids", None), (type(e), e.doc_index, str(e))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=DOCS, ordered=st.booleans())
def test_fast_path_stores_what_the_general_path_stores(tmp_path_factory, docs, ordered):
    tmp_path = tmp_path_factory.mktemp("pair")
    dbs, (fast, general, one) = open_dbs(tmp_path, "p")
    try:
        fast_docs = copy.deepcopy(docs)
        got = outcome(fast, fast_docs, ordered)
        # The general path: the same documents with the _ids the fast path gave them, so that
        # the keys are the same (a given _id always takes the general path).
        general_docs = copy.deepcopy(fast_docs)
        want = outcome(general, general_docs, ordered)
        assert got[1] == want[1]
        assert fast_docs == general_docs
        assert stored(dbs[0]) == stored(dbs[1])
        # Single inserts of the documents the bulk insert stored give the same database.
        for doc in copy.deepcopy(fast_docs):
            if "_id" in doc:               # the documents the bulk insert took
                with contextlib.suppress(InvalidDocument):
                    one.insert_one(doc)        # (its general path sets _id before an index check)
        assert stored(dbs[0]) == stored(dbs[2])
    finally:
        for db in dbs:
            db.close()


def test_fast_path_takes_plain_documents_without_the_general_path(tmp_path, monkeypatch):
    calls = []
    prepare = collection_module.Collection._prepare
    monkeypatch.setattr(collection_module.Collection, "_prepare",
                        lambda self, doc: calls.append(doc) or prepare(self, doc))
    with kvdb.open(tmp_path / "db", sync="off") as db:
        c = db.collection("c")
        c.create_index("grp")
        c.create_index("n")
        docs = [{"grp": i % 7, "n": f"name{i}", "sub": {"a": [1, {"b": 2}]}} for i in range(1000)]
        ids = c.insert_many(docs).inserted_ids
        assert calls == []
        assert [d["_id"] for d in docs] == ids and len(set(ids)) == 1000
        assert c.count_documents({"grp": 3}) == len([i for i in range(1000) if i % 7 == 3])
        assert c.find_one({"n": "name999"})["sub"] == {"a": [1, {"b": 2}]}
        # an array under an indexed field goes to the general path, which marks the index multikey
        c.insert_many([{"grp": 1}, {"grp": [1, 2]}, {"grp": 2}])
        assert len(calls) == 1 and calls[0]["grp"] == [1, 2]
        assert c.count_documents({"grp": 2}) == len([i for i in range(1000) if i % 7 == 2]) + 2


@pytest.mark.parametrize("bad, error", [
    ({"$x": 1}, "must not start with '$'"),
    ({"a": {"b.c": 1}}, "must not start with '$' or contain '.'"),
    ({"a": (1, 2)}, "cannot store a value of type tuple"),
    ({"a": 2 ** 64}, "does not fit in 64 bits"),
    ({"grp": "x" * 20000}, "index key of 'grp_1'"),
    ({1: "a"}, "field names must be strings"),
])
def test_a_document_the_fast_path_refuses_gets_the_general_paths_error(tmp_path, bad, error):
    with kvdb.open(tmp_path / "db", sync="off") as db:
        c = db.collection("c")
        c.create_index("grp")
        docs = [{"grp": 1}, {"grp": 2}, bad, {"grp": 3}]
        with pytest.raises(InvalidDocument, match=re.escape(error)) as e:
            c.insert_many(docs)
        assert e.value.doc_index == 2 and "document 2 of insert_many" in str(e.value)
        assert sorted(d["grp"] for d in c.find({}, {"_id": 0})) == [1, 2]
        with pytest.raises(InvalidDocument):
            c.insert_many([{"grp": 5}, dict(bad), {"grp": 6}], ordered=False)
        assert sorted(d["grp"] for d in c.find({}, {"_id": 0})) == [1, 2, 5, 6]


def test_names_check_agrees_with_the_python_rule():
    docs = [{}, {"a": 1}, {"$a": 1}, {"a$": 1}, {"a.b": 1}, {"a": {"$b": 1}}, {"a": [{"b.c": 1}]},
            {"a": [[{"$": 1}]]}, {"": 1}, {"a": [1, "x.y", {"ok": {"fine": [{}]}}]}, {1: 2}, {"é": {"ü": 1}}]
    for doc in docs:
        assert fastinsert.check_names(doc) == _names_ok(doc), doc
    assert fastinsert.check_names([("a", 1)]) is False


def test_objectids_increase_and_share_one_counter():
    made = [new_id(), ObjectId().binary, new_id(), ObjectId().binary]
    counters = [int.from_bytes(b[9:], "big") for b in made]
    assert all((b - a) % (1 << 24) == 1 for a, b in zip(counters, counters[1:]))
    assert len({b[4:9] for b in made}) == 1
    assert abs(int.from_bytes(made[0][:4], "big") - datetime.datetime.now().timestamp()) < 5


def test_a_forked_process_draws_its_own_random_bytes():
    parent = new_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                        # the child: its first id, then exit at once
        try:
            os.write(write, new_id())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 12)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 12 and child[4:9] != parent[4:9]
    assert new_id()[4:9] == parent[4:9]           # the parent keeps its own


def test_objectid_is_a_value_the_collector_does_not_walk():
    import gc
    import pickle
    oid = ObjectId()
    assert not gc.is_tracked(oid)             # it holds only bytes: it can be in no cycle
    assert pickle.loads(pickle.dumps(oid)) == oid == copy.deepcopy(oid) == ObjectId(str(oid))
    assert ObjectId(oid) == oid and ObjectId(oid.binary) == oid and hash(ObjectId(oid)) == hash(oid)
    assert oid < ObjectId() and ObjectId() > oid and oid != ObjectId() and oid != oid.binary
    assert repr(oid) == f"ObjectId('{oid.binary.hex()}')"
    with pytest.raises(AttributeError):
        oid._bytes = bytes(12)                # immutable, like a hashable value must be
    for bad in ("zz" * 12, b"short", 12, None.__class__):
        with pytest.raises((ValueError, TypeError)):
            ObjectId(bad)
