"""Differential test: kvdb.documents and mongomock give the same answers.

Hypothesis generates documents (nested documents, arrays, nulls, mixed types), then queries and
updates; each runs on a kvdb collection without indexes, one with indexes, and mongomock. The
generated cases avoid the places where mongomock itself differs from MongoDB (docs/documents.md,
"Differences from mongomock"), so a mismatch is a kvdb bug:
  - floats are never integral (mongomock counts $set of 2.0 over 2 as no change; MongoDB's binary
    comparison, and kvdb's, see a new type);
  - integers are never 0 or 1 when booleans are generated (mongomock matches True == 1);
  - nested paths never pass through a scalar (mongomock: {"a.b": null} does not match {a: 5});
  - comparison operands are never null (mongomock: {$gte: null} does not match a missing field);
  - sorts are on fields that never hold arrays (mongomock sorts an array by its first element);
  - no equality on embedded documents (mongomock ignores field order);
  - $exists only on top-level fields (mongomock: {c: [{}, {x: 1}]} has no "c.x");
  - $not only on top-level fields (mongomock: {"c.x": {$not: ...}} never matches {c: []});
  - no $type/$mod (mongomock lacks $mod and $type null), no NaN.
"""
import itertools

import pytest
from hypothesis import given, settings, strategies as st

from tests import helpers
import kvdb

mongomock = pytest.importorskip("mongomock")

SCALARS = st.one_of(st.none(), st.sampled_from([2, 3, 5, -4]), st.sampled_from([2.5, 3.5, -0.5]),
                    st.sampled_from(["a", "b", "ab", ""]), st.booleans())
LISTS = st.lists(SCALARS, max_size=3)
SUB = st.fixed_dictionaries({}, optional={"x": SCALARS, "y": st.one_of(SCALARS, LISTS)})


@st.composite
def documents(draw):
    n = draw(st.integers(0, 12))
    docs = []
    for i in range(n):
        doc = {"_id": i}
        for field, strat in (("a", SCALARS), ("b", SCALARS), ("t", LISTS), ("n", st.sampled_from([2, 3, 7, 10])),
                             ("c", st.one_of(SUB, st.lists(SUB, max_size=3)))):
            if draw(st.booleans()) or field == "n":
                doc[field] = draw(strat)
        docs.append(doc)
    return docs


FIELDS = ["a", "b", "c.x", "c.y", "t"]
OPERAND = SCALARS.filter(lambda v: v is not None)


@st.composite
def conditions(draw, depth=0):
    kind = draw(st.sampled_from(["eq", "cmp", "in", "nin", "ne", "exists", "size", "all", "elem", "not"]
                                + (["and", "or", "nor"] if depth < 2 else [])))
    field = draw(st.sampled_from(FIELDS))
    if kind == "eq":
        return {field: draw(SCALARS)}
    if kind == "cmp":
        ops = draw(st.lists(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), min_size=1, max_size=2, unique=True))
        return {field: {op: draw(OPERAND) for op in ops}}
    if kind == "in":
        return {field: {"$in": draw(st.lists(SCALARS, max_size=3))}}
    if kind == "nin":
        return {field: {"$nin": draw(st.lists(SCALARS, max_size=3))}}
    if kind == "ne":
        return {field: {"$ne": draw(SCALARS)}}
    if kind == "exists":
        field = draw(st.sampled_from(["a", "b", "t", "c"]))  # mongomock: {c: [{}, {x: 1}]} lacks "c.x"
        return {field: {"$exists": draw(st.booleans())}}
    if kind == "size":
        return {"t": {"$size": draw(st.integers(0, 3))}}
    if kind == "all":
        return {"t": {"$all": draw(st.lists(OPERAND, min_size=1, max_size=2))}}
    if kind == "elem":
        if draw(st.booleans()):
            return {"t": {"$elemMatch": {draw(st.sampled_from(["$gt", "$lt"])): draw(OPERAND)}}}
        return {"c": {"$elemMatch": {"x": draw(OPERAND)}}}
    if kind == "not":
        field = draw(st.sampled_from(["a", "b", "t"]))  # mongomock fails $not where a path reaches nothing
        return {field: {"$not": {draw(st.sampled_from(["$gt", "$lte"])): draw(OPERAND)}}}
    subs = draw(st.lists(conditions(depth + 1), min_size=1, max_size=3))
    return {"$" + kind: subs}


@st.composite
def updates(draw):
    field = draw(st.sampled_from(["a", "b", "c.x"]))
    kind = draw(st.sampled_from(["set", "unset", "inc", "min", "max", "push", "addToSet", "pull", "pop"]))  # no $mul in mongomock
    if kind == "set":
        return {"$set": {field: draw(st.one_of(SCALARS, LISTS))}}
    if kind == "unset":
        return {"$unset": {field: ""}}
    if kind == "inc":
        return {"$" + kind: {"n": draw(st.sampled_from([2, -3, 1.5]))}}
    if kind in ("min", "max"):
        return {"$" + kind: {"n": draw(st.sampled_from([2, 5, 8.5]))}}
    if kind == "push":
        return {"$push": {"t": draw(SCALARS)}}
    if kind == "addToSet":
        return {"$addToSet": {"t": draw(SCALARS)}}
    if kind == "pull":
        return {"$pull": {"t": draw(SCALARS)}}
    return {"$pop": {"t": draw(st.sampled_from([1, -1]))}}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    with kvdb.open(tmp_path_factory.mktemp("diff") / "db", sync="off") as d:
        yield d


_names = itertools.count()


def setup(db, docs):
    n = next(_names)
    plain, indexed = db.collection(f"plain{n}"), db.collection(f"indexed{n}")
    for spec in ("a", [("b", -1), ("a", 1)], "c.x", "t", "c.y"):
        indexed.create_index(spec)
    mock = mongomock.MongoClient().db[f"m{n}"]
    if docs:
        plain.insert_many([dict(d) for d in docs])
        indexed.insert_many([dict(d) for d in docs])
        mock.insert_many([dict(d) for d in docs])
    return plain, indexed, mock


def by_id(docs):
    return sorted(docs, key=lambda d: d["_id"])


def same(got, want, what):
    assert got == want, f"{what}\nkvdb:      {got}\nmongomock: {want}"


@settings(max_examples=500 if helpers.LONG else 60)
@given(docs=documents(), queries=st.lists(conditions(), min_size=1, max_size=4),
       sort_field=st.sampled_from(["a", "b", "n"]), direction=st.sampled_from([1, -1]))
def test_queries_match_mongomock(db, docs, queries, sort_field, direction):
    plain, indexed, mock = setup(db, docs)
    for q in queries:
        want = by_id(mock.find(q))
        same(by_id(plain.find(q)), want, f"find {q}")
        same(by_id(indexed.find(q)), want, f"indexed find {q}")
        same(plain.count_documents(q), len(want), f"count {q}")
        sort = [(sort_field, direction), ("_id", 1)]
        want_sorted = list(mock.find(q).sort(sort))
        same(list(plain.find(q).sort(sort)), want_sorted, f"sorted {q} {sort}")
        same(list(indexed.find(q).sort(sort)), want_sorted, f"indexed sorted {q} {sort}")
        same(list(indexed.find(q, {"a": 1, "_id": 0}).sort(sort).skip(1).limit(2)),
             list(mock.find(q, {"a": 1, "_id": 0}).sort(sort).skip(1).limit(2)), f"projected {q}")


@settings(max_examples=300 if helpers.LONG else 40)
@given(docs=documents(), steps=st.lists(st.tuples(conditions(), updates(), st.integers(-1, 12)), min_size=1,
                                        max_size=4))
def test_updates_match_mongomock(db, docs, steps):
    plain, indexed, mock = setup(db, docs)
    for q, u, one in steps:
        if one >= 0:          # update_one on {_id: one} AND q: the same document everywhere
            q = {"$and": [{"_id": one}, q]}
        before = by_id(plain.find())
        fn = "update_many" if one < 0 else "update_one"
        try:
            r = getattr(plain, fn)(q, u)
        except (kvdb.InvalidUpdate, kvdb.InvalidDocument):
            # refused ($inc on a string, a field inside a scalar...): nothing changed, in either
            with pytest.raises((kvdb.InvalidUpdate, kvdb.InvalidDocument)):
                getattr(indexed, fn)(q, u)
            same(by_id(plain.find()), before, f"refused {q} {u} changed documents")
            same(by_id(indexed.find()), before, f"refused {q} {u} changed indexed documents")
            continue
        ri = getattr(indexed, fn)(q, u)
        try:
            rm = getattr(mock, fn)(q, u)
        except Exception:  # mongomock cannot do some updates MongoDB does ($set into arrays): resync it
            mock.delete_many({})
            if plain.count_documents({}):
                mock.insert_many(by_id(plain.find()))
            same(by_id(indexed.find()), by_id(plain.find()), f"indexed after {fn} {q} {u}")
            continue
        same((r.matched_count, r.modified_count), (rm.matched_count, rm.modified_count), f"counts {q} {u}")
        same((ri.matched_count, ri.modified_count), (rm.matched_count, rm.modified_count), f"counts {q} {u}")
        want = by_id(mock.find())
        same(by_id(plain.find()), want, f"after {fn} {q} {u}")
        same(by_id(indexed.find()), want, f"indexed after {fn} {q} {u}")
    assert kvdb.documents.verify(db, indexed.name) == {indexed.name: []}


@settings(max_examples=200 if helpers.LONG else 30)
@given(docs=documents(), q=conditions())
def test_deletes_and_distinct_match_mongomock(db, docs, q):
    plain, indexed, mock = setup(db, docs)
    for field in ("a", "t", "c.x"):
        got = plain.distinct(field, q)
        want = mock.distinct(field, q)
        # mongomock keeps 2 and 2.0 apart and drops nothing; compare as encoded sets
        from kvdb.documents.keycodec import encode
        assert {encode(v) for v in got} == {encode(v) for v in want}, (field, q, got, want)
    n = mock.delete_many(q).deleted_count
    same(plain.delete_many(q).deleted_count, n, f"delete {q}")
    same(indexed.delete_many(q).deleted_count, n, f"indexed delete {q}")
    same(by_id(plain.find()), by_id(mock.find()), f"after delete {q}")
    same(by_id(indexed.find()), by_id(mock.find()), f"indexed after delete {q}")
    assert kvdb.documents.verify(db, indexed.name) == {indexed.name: []}
