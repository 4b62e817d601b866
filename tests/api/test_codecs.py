"""Codecs (issue 16, item 2): kvdb.open(path, keys=, values=) and db.namespace(..., keys=, values=)
encode every read and write of the handle; the key codecs keep order (K3); bad names, types and
values get clear errors and store nothing."""
import json
import math
import pickle

import pytest
from hypothesis import given, settings, strategies as st

import kvdb

JSONABLE = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8)
                        | st.floats(allow_nan=False, allow_infinity=False),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                        max_leaves=8)
MSGPACKABLE = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=8)
                           | st.binary(max_size=8) | st.floats(allow_nan=False),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                           max_leaves=8)
INT_KEYS = st.integers(min_value=-(2**1000), max_value=2**1000) | st.integers(-300, 300)
STR_KEYS = st.text(min_size=1, max_size=6)


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory):
    db = kvdb.open(str(tmp_path_factory.mktemp("codecs") / "db"), sync="off")
    yield db
    db.close()


def _fresh(db, name):
    db.drop_namespace(name)
    return name


@settings(max_examples=60, deadline=None)
@given(keys=st.sets(INT_KEYS, min_size=1, max_size=20))
def test_K3_int_keys_sort_numerically(shared_db, keys):
    ns = shared_db.namespace(_fresh(shared_db, "ints"), keys="int", values="str")
    ns.put_many((k, str(k)) for k in keys)
    assert list(ns.keys()) == sorted(keys)
    assert list(reversed(ns.keys())) == sorted(keys, reverse=True)
    assert all(ns[k] == str(k) for k in keys)
    lo = sorted(keys)[len(keys) // 2]
    assert list(ns.scan(start=lo, keys_only=True)) == [k for k in sorted(keys) if k >= lo]


@settings(max_examples=60, deadline=None)
@given(keys=st.sets(STR_KEYS, min_size=1, max_size=20))
def test_K3_str_keys_sort_by_code_point(shared_db, keys):
    ns = shared_db.namespace(_fresh(shared_db, "strs"), keys="str", values="str")
    ns.update({k: k * 2 for k in keys})
    assert list(ns) == sorted(keys)
    assert dict(ns.items()) == {k: k * 2 for k in keys}
    first = sorted(keys)[0][:1]
    assert list(ns.scan(prefix=first, keys_only=True)) == sorted(k for k in keys if k.startswith(first))


@settings(max_examples=80, deadline=None)
@given(value=JSONABLE)
def test_json_values_round_trip(shared_db, value):
    ns = shared_db.namespace("json", keys="str", values="json")
    ns["v"] = value
    assert ns["v"] == json.loads(json.dumps(value))


@settings(max_examples=80, deadline=None)
@given(value=MSGPACKABLE)
def test_msgpack_values_round_trip(shared_db, value):
    ns = shared_db.namespace("msgpack", keys="str", values="msgpack")
    ns["v"] = value
    got = ns["v"]
    assert got == value or (isinstance(value, float) and math.isnan(value) and math.isnan(got))


def test_pickle_and_str_values_round_trip(shared_db):
    ns = shared_db.namespace("pickle", values="pickle")
    obj = {"set": {1, 2}, "tuple": (1, "a"), "complex": 1 + 2j}
    ns[b"o"] = obj
    assert ns[b"o"] == obj and shared_db.namespace("pickle")[b"o"] == pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    s = shared_db.namespace("str", keys="str", values="str")
    s["ключ"] = "значение \ud800"                      # a lone surrogate survives
    assert s["ключ"] == "значение \ud800"


def test_open_with_codecs_applies_to_transactions_snapshots_and_cursors(tmp_path):
    with kvdb.open(str(tmp_path / "db"), keys="str", values="json") as db:
        assert (db.key_codec, db.value_codec) == ("str", "json")
        db["a"] = {"n": 1}
        with db.transaction() as tx:
            tx["b"] = [tx["a"]["n"] + 1]
        with db.snapshot() as snap:
            assert dict(snap.items()) == {"a": {"n": 1}, "b": [2]}
        with db.cursor() as c:
            assert c.seek_last() and (c.key, c.value) == ("b", [2])
        assert db.pop("a") == {"n": 1} and db.setdefault("c", None) is None and db["c"] is None
    with kvdb.open(str(tmp_path / "db")) as raw:         # the files hold the encoded bytes
        assert dict(raw.items()) == {b"b": b"[2]", b"c": b"null"}


@pytest.mark.parametrize("keys, values, error, match", [
    ("utf8", "bytes", ValueError, "unknown key codec 'utf8'; keys= accepts 'bytes', 'str', 'int'"),
    ("bytes", "yaml", ValueError, "unknown value codec 'yaml'"),
    (b"str", "bytes", TypeError, "keys must be one of"),
    ("bytes", 1, TypeError, "values must be one of"),
    ("json", "bytes", ValueError, "unknown key codec 'json'"),
])
def test_unknown_codecs_are_refused_before_anything_is_created(tmp_path, keys, values, error, match):
    path = tmp_path / "db"
    with pytest.raises(error, match=match):
        kvdb.open(str(path), keys=keys, values=values)
    assert not path.exists()
    with kvdb.open(str(path)) as db:
        with pytest.raises(error, match=match):
            db.namespace("n", keys=keys, values=values)
        assert db.namespaces() == []


def test_values_a_codec_cannot_encode_store_nothing(tmp_path):
    with kvdb.open(str(tmp_path / "db")) as db:
        j = db.namespace("j", keys="str", values="json")
        m = db.namespace("m", keys="str", values="msgpack")
        i = db.namespace("i", keys="int")
        s = db.namespace("s", keys="str", values="str")
        for call, match in [
            (lambda: j.put("k", {1, 2}), 'cannot be stored with the "json" codec'),
            (lambda: j.put("k", float("nan")), 'cannot be stored with the "json" codec'),
            (lambda: m.put("k", object()), 'cannot be stored with the "msgpack" codec'),
            (lambda: m.put("k", 2**64), 'cannot be stored with the "msgpack" codec'),
            (lambda: i.put("1", b"v"), 'key must be int'),
            (lambda: i.put(True, b"v"), 'key must be int'),
            (lambda: s.put(b"k", "v"), 'key must be str'),
            (lambda: s.put("k", b"v"), 'value must be str'),
            (lambda: j.put_many([("a", 1), ("b", {1})]), '"json" codec'),
            (lambda: j.update(a=1, b=object()), '"json" codec'),
        ]:
            with pytest.raises(TypeError, match=match):
                call()
        with pytest.raises(ValueError, match="int key .* is too large"):
            i.put(2**1100, b"v")
        with pytest.raises(TypeError, match="int keys have no prefixes"):
            i.scan(prefix=1)
        assert len(db) == 0 and db.namespaces() == []


def test_pickle_loads_only_what_was_written_with_it(tmp_path):
    """A value not written by the pickle codec fails to load with pickle's error, not silently."""
    with kvdb.open(str(tmp_path / "db")) as db:
        db.namespace("p")[b"k"] = b"not a pickle"
        with pytest.raises(pickle.UnpicklingError):
            db.namespace("p", values="pickle")[b"k"]
