"""The handles are collections.abc mappings (issue 16, item 1): a Database, a namespace and a
transaction behave as a dict does, checked against a dict model with Hypothesis on both engines,
including reopening; and what each method gives back (lazy views, not lists)."""
import collections.abc as abc
import shutil
import tempfile

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import kvdb

KEYS = st.lists(st.sampled_from([b"a", b"b", b"c", b"\x00", b"\xff"]), min_size=1, max_size=3).map(b"".join)
VALUES = st.binary(max_size=8)
PAIRS = st.lists(st.tuples(KEYS, VALUES), max_size=6)


class MappingMachine(RuleBasedStateMachine):
    """One handle (the database, or a namespace of it) against a dict; each rule one call of the
    MutableMapping API, compared with what the dict does."""
    engine = "btree"
    namespaced = False

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="kvdb-mapping-")
        self.db = None
        self.model = {}
        self._open()

    def _open(self):
        self.db = kvdb.open(self.dir + "/db", engine=self.engine, sync="off")
        self.h = self.db.namespace("ns") if self.namespaced else self.db

    def teardown(self):
        try:
            self.db.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(k=KEYS, v=VALUES)
    def setitem(self, k, v):
        self.h[k] = v
        self.model[k] = v

    @rule(pairs=PAIRS, how=st.sampled_from(["dict", "pairs", "put_many"]))
    def update(self, pairs, how):
        if how == "dict":
            self.h.update(dict(pairs))
        elif how == "pairs":
            self.h.update(iter(pairs))
        else:
            assert self.h.put_many(pairs) == len(pairs)
        self.model.update(pairs)

    @rule(k=KEYS, default=st.none() | VALUES)
    def pop(self, k, default):
        if default is None:
            if k in self.model:
                assert self.h.pop(k) == self.model.pop(k)
            else:
                with pytest.raises(KeyError):
                    self.h.pop(k)
        else:
            assert self.h.pop(k, default) == self.model.pop(k, default)

    @rule()
    def popitem(self):
        if not self.model:
            with pytest.raises(KeyError):
                self.h.popitem()
            return
        k, v = self.h.popitem()
        assert k == min(self.model) and self.model.pop(k) == v

    @rule(k=KEYS, v=VALUES)
    def setdefault(self, k, v):
        assert self.h.setdefault(k, v) == self.model.setdefault(k, v)

    @rule(k=KEYS, how=st.sampled_from(["del", "delete", "discard"]))
    def delete(self, k, how):
        present = k in self.model
        if how == "del":
            if present:
                del self.h[k]
            else:
                with pytest.raises(KeyError):
                    del self.h[k]
        elif how == "delete":
            assert self.h.delete(k) is present
        else:
            assert self.h.discard(k) is None
        self.model.pop(k, None)

    @precondition(lambda self: len(self.model) < 8)
    @rule()
    def clear(self):
        self.h.clear()
        self.model.clear()

    @rule(k=KEYS)
    def lookups(self, k):
        assert (k in self.h) is (k in self.model)
        assert self.h.get(k) == self.model.get(k)
        assert self.h.get(k, b"dflt") == self.model.get(k, b"dflt")
        if k in self.model:
            assert self.h[k] == self.model[k]
            assert k in self.h.keys() and (k, self.model[k]) in self.h.items()
        else:
            with pytest.raises(KeyError):
                self.h[k]
            assert k not in self.h.keys()

    @rule()
    def reopen(self):
        self.db.close()
        self._open()

    @rule(k=KEYS, v=VALUES)
    def transaction_view(self, k, v):
        """The same calls inside a transaction see its own writes, and commit them."""
        with self.db.transaction() as tx:
            h = tx.namespace("ns") if self.namespaced else tx
            assert len(h) == len(self.model)
            h[k] = v
            expected = dict(self.model)
            expected[k] = v
            assert len(h) == len(expected) and dict(h.items()) == expected
            assert h.setdefault(k, b"other") == v
        self.model[k] = v

    @invariant()
    def same_as_the_model(self):
        assert len(self.h) == len(self.model)
        assert bool(self.h) is bool(self.model)
        order = sorted(self.model)
        assert list(self.h) == order
        assert list(self.h.keys()) == order
        assert list(self.h.values()) == [self.model[k] for k in order]
        assert list(self.h.items()) == [(k, self.model[k]) for k in order]
        assert list(reversed(self.h.keys())) == order[::-1]
        assert self.h.keys() == set(order)            # a KeysView is a Set


class BTreeMapping(MappingMachine):
    engine = "btree"


class LsmMapping(MappingMachine):
    engine = "lsm"


class NamespaceMapping(MappingMachine):
    namespaced = True


class LsmNamespaceMapping(MappingMachine):
    engine = "lsm"
    namespaced = True


RUNS = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestBTreeMapping = BTreeMapping.TestCase
TestBTreeMapping.settings = RUNS
TestLsmMapping = LsmMapping.TestCase
TestLsmMapping.settings = RUNS
TestNamespaceMapping = NamespaceMapping.TestCase
TestNamespaceMapping.settings = RUNS
TestLsmNamespaceMapping = LsmNamespaceMapping.TestCase
TestLsmNamespaceMapping.settings = RUNS


def test_handles_are_registered_mappings(tmp_path):
    with kvdb.open(str(tmp_path / "db")) as db:
        assert isinstance(db, abc.MutableMapping)
        assert isinstance(db.namespace("a"), abc.MutableMapping)
        with db.transaction() as tx:
            assert isinstance(tx, abc.MutableMapping)
        with db.snapshot() as snap:
            assert isinstance(snap, abc.Mapping) and not isinstance(snap, abc.MutableMapping)


def test_views_are_lazy_and_live(tmp_path):
    """keys()/values()/items() read nothing when made, and each iteration reads the database
    as it is then (a view, as a dict's)."""
    with kvdb.open(str(tmp_path / "db")) as db:
        keys, values, items = db.keys(), db.values(), db.items()
        assert isinstance(keys, abc.KeysView) and isinstance(values, abc.ValuesView)
        assert isinstance(items, abc.ItemsView)
        assert db.stats()["snapshots"] == 0           # nothing pinned by making them
        assert list(keys) == [] and len(keys) == 0
        db[b"a"] = b"1"
        assert list(keys) == [b"a"] and list(values) == [b"1"] and list(items) == [(b"a", b"1")]
        assert len(items) == 1 and b"1" in values and (b"a", b"1") in items and (b"a", b"2") not in items
        assert db.stats()["snapshots"] == 0           # each iteration ran to its end and let go


def test_mapping_errors_change_nothing(tmp_path):
    with kvdb.open(str(tmp_path / "db")) as db:
        db[b"a"] = b"1"
        with pytest.raises(TypeError, match="value must be bytes"):
            db.update({b"b": b"2", b"c": 3})          # checked before the commit: b is not stored
        with pytest.raises(TypeError, match="key must be bytes"):
            db.put_many([(b"d", b"4"), ("e", b"5")])
        with pytest.raises(TypeError):
            db.setdefault(b"x")                         # None is no bytes value
        assert dict(db.items()) == {b"a": b"1"}
        with db.snapshot() as snap:
            for call in (lambda: snap.pop(b"a"), lambda: snap.popitem(), lambda: snap.setdefault(b"a", b"2"),
                         lambda: snap.update({b"a": b"2"}), lambda: snap.clear()):
                with pytest.raises(kvdb.ReadOnlyError):
                    call()
        assert dict(db.items()) == {b"a": b"1"}
