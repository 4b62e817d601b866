"""kvdb.cache.persistent.Deque and Index against diskcache.Deque and diskcache.Index: Hypothesis
runs the same calls on both and compares every result and the whole contents after each call."""
import collections
import os
import pickle
import threading

import diskcache
import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kvdb.cache import Cache
from kvdb.cache.persistent import Deque, Index
from tests import helpers

EXAMPLES = 300 if helpers.LONG else 50
STEPS = 60 if helpers.LONG else 30


def outcome(call):
    """What a call gave: ("ok", result) or ("raised", exception type name)."""
    try:
        return "ok", call()
    except Exception as e:
        return "raised", type(e).__name__


values = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none(), st.binary(max_size=3))
indices = st.integers(-7, 7)


class DequeMachine(RuleBasedStateMachine):
    """Our Deque and diskcache's, given the same calls."""

    @initialize(maxlen=st.sampled_from([None, 0, 1, 3, 6]))
    def start(self, maxlen):
        self.ours = Deque(maxlen=maxlen)
        self.theirs = diskcache.Deque(maxlen=maxlen)

    def both(self, call):
        got, want = outcome(lambda: call(self.ours)), outcome(lambda: call(self.theirs))
        assert got == want

    @rule(value=values)
    def append(self, value):
        self.both(lambda d: d.append(value))

    @rule(value=values)
    def appendleft(self, value):
        self.both(lambda d: d.appendleft(value))

    @rule(items=st.lists(values, max_size=4))
    def extend(self, items):
        self.both(lambda d: d.extend(items))

    @rule(items=st.lists(values, max_size=4))
    def extendleft(self, items):
        self.both(lambda d: d.extendleft(items))

    @rule(items=st.lists(values, max_size=3))
    def iadd(self, items):
        def call(d):
            d += items
        self.both(call)

    @rule()
    def pop(self):
        self.both(lambda d: d.pop())

    @rule()
    def popleft(self):
        self.both(lambda d: d.popleft())

    @rule()
    def peek(self):
        self.both(lambda d: d.peek())
        self.both(lambda d: d.peekleft())

    @rule(index=indices)
    def getitem(self, index):
        self.both(lambda d: d[index])

    @rule(index=indices, value=values)
    def setitem(self, index, value):
        def call(d):
            d[index] = value
        self.both(call)

    @rule(index=indices)
    def delitem(self, index):
        def call(d):
            del d[index]
        self.both(call)

    @rule(steps=st.integers(-8, 8))
    def rotate(self, steps):
        self.both(lambda d: d.rotate(steps))

    @rule()
    def reverse(self):
        self.both(lambda d: d.reverse())

    @rule(value=values)
    def remove_count_index_contains(self, value):
        self.both(lambda d: d.count(value))
        self.both(lambda d: value in d)
        self.both(lambda d: d.index(value))
        self.both(lambda d: d.remove(value))

    @rule()
    def clear(self):
        self.both(lambda d: d.clear())

    @rule(other=st.lists(st.integers(-2, 2), max_size=3))
    def compare(self, other):
        for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
            self.both(lambda d: getattr(d, op)(other))

    @invariant()
    def same_contents(self):
        if hasattr(self, "ours"):
            assert list(self.ours) == list(self.theirs)
            assert list(reversed(self.ours)) == list(reversed(self.theirs))
            assert len(self.ours) == len(self.theirs)

    def teardown(self):
        if hasattr(self, "ours"):
            self.ours.cache.close()
            self.theirs.cache.close()


DequeMachine.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None)
test_deque_matches_diskcache = DequeMachine.TestCase


# Int keys are negative, outside the integer queue's range (0, 10**15) of push/pull: at its edges
# diskcache is not a reference (its pull leaves key 0 out, and two push(side="front") onto a queue
# whose first key is 1 both pick key 0, an IntegrityError).
keys = st.one_of(st.sampled_from(["a", "b", "c", "d"]), st.integers(-3, -1), st.sampled_from([b"x", ("t", 1)]))
sides = st.sampled_from(["back", "front"])
prefixes = st.sampled_from([None, "q"])


class IndexMachine(RuleBasedStateMachine):
    """Our Index and diskcache's, given the same calls."""

    @initialize()
    def start(self):
        self.ours = Index()
        self.theirs = diskcache.Index()

    def both(self, call):
        got, want = outcome(lambda: call(self.ours)), outcome(lambda: call(self.theirs))
        assert got == want

    @rule(key=keys, value=values)
    def setitem(self, key, value):
        def call(m):
            m[key] = value
        self.both(call)

    @rule(key=keys)
    def getitem_and_get(self, key):
        self.both(lambda m: m[key])
        self.both(lambda m: m.get(key, "default"))
        self.both(lambda m: key in m)

    @rule(key=keys)
    def delitem(self, key):
        def call(m):
            del m[key]
        self.both(call)

    @rule(key=keys, use_default=st.booleans())
    def pop(self, key, use_default):
        self.both(lambda m: m.pop(key, "default") if use_default else m.pop(key))

    @rule(last=st.booleans())
    def popitem(self, last):
        self.both(lambda m: m.popitem(last=last))

    @rule(last=st.booleans())
    def peekitem(self, last):
        self.both(lambda m: m.peekitem(last=last))

    @rule(key=keys, value=values)
    def setdefault(self, key, value):
        self.both(lambda m: m.setdefault(key, value))

    @rule(value=values, prefix=prefixes, side=sides)
    def push(self, value, prefix, side):
        self.both(lambda m: m.push(value, prefix=prefix, side=side))

    @rule(prefix=prefixes, side=sides)
    def pull(self, prefix, side):
        self.both(lambda m: m.pull(prefix=prefix, side=side))

    @rule(pairs=st.lists(st.tuples(keys, values), max_size=3))
    def update(self, pairs):
        self.both(lambda m: m.update(pairs))

    @rule()
    def clear(self):
        self.both(lambda m: m.clear())

    @invariant()
    def same_contents_in_the_same_order(self):
        if hasattr(self, "ours"):
            assert list(self.ours.items()) == list(self.theirs.items())
            assert list(reversed(self.ours)) == list(reversed(self.theirs))
            assert len(self.ours) == len(self.theirs)
            assert self.ours == collections.OrderedDict(self.theirs.items())
            assert self.ours == dict(self.theirs.items())

    def teardown(self):
        if hasattr(self, "ours"):
            self.ours.cache.close()
            self.theirs.cache.close()


IndexMachine.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None)
test_index_matches_diskcache = IndexMachine.TestCase


# -- Deque: the rest of its contract ---------------------------------------------------------------

def test_deque_persists_in_its_directory(tmp_path):
    path = str(tmp_path / "deque")
    deque = Deque("abc", directory=path)
    assert deque.directory == path
    deque.cache.close()
    again = Deque(directory=path)
    assert list(again) == ["a", "b", "c"]
    again.cache.close()


def test_deque_fromcache_shares_the_cache(tmp_path):
    with Cache(str(tmp_path / "c")) as cache:
        deque = Deque.fromcache(cache, [5, 6, 7, 8])
        assert deque.cache is cache
        assert len(deque) == 4 and 7 in deque and deque.popleft() == 5
        assert deque.copy().cache is cache and list(deque.copy()) == [6, 7, 8]


def test_deque_maxlen(tmp_path):
    deque = Deque(range(5), directory=str(tmp_path / "d"), maxlen=3)
    try:
        assert list(deque) == [2, 3, 4] and deque.maxlen == 3
        deque.appendleft(9)
        assert list(deque) == [9, 2, 3]
        deque.maxlen = 2
        assert list(deque) == [2, 3]
        assert Deque.fromcache(deque.cache).maxlen == float("inf")
    finally:
        deque.cache.close()


def test_deque_maxlen_inside_a_users_transact_block(tmp_path):
    # Cache's len() and iteration inside a block count the block's own writes, as diskcache's do
    deque = Deque([1, 2, 3], directory=str(tmp_path / "d"), maxlen=3)
    try:
        with deque.transact():
            deque.popleft()
            deque.append(4)
            deque.append(5)
            assert list(deque) == [3, 4, 5] and deque[-1] == 5 and len(deque) == 3
        assert list(deque) == [3, 4, 5]
    finally:
        deque.cache.close()


def test_deque_clear_inside_a_users_transact_block(tmp_path):
    deque = Deque([1, 2], directory=str(tmp_path / "d"))
    try:
        with deque.transact():
            deque.append(3)
            deque.clear()
            deque.append(4)
            assert list(deque) == [4]
        assert list(deque) == [4]
    finally:
        deque.cache.close()


def test_deque_pickles_by_directory_and_maxlen(tmp_path):
    deque = Deque([1, 2], directory=str(tmp_path / "d"), maxlen=5)
    clone = pickle.loads(pickle.dumps(deque))
    try:
        assert clone.directory == deque.directory and clone.maxlen == 5 and list(clone) == [1, 2]
        assert repr(deque) == f"Deque(directory={deque.directory!r})"
    finally:
        deque.cache.close()
        clone.cache.close()


def test_deque_transact_makes_a_block_atomic(tmp_path):
    deque = Deque(range(10), directory=str(tmp_path / "d"))
    try:
        def rotate_many():
            for _ in range(20):
                with deque.transact():
                    deque.appendleft(deque.pop())

        threads = [threading.Thread(target=rotate_many) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(deque) == list(range(10)) and len(deque) == 10
        assert list(deque) == [(i - 60) % 10 for i in range(10)]
    finally:
        deque.cache.close()


def test_deque_bad_input_is_refused_and_changes_nothing(tmp_path):
    deque = Deque([1, 2, 3], directory=str(tmp_path / "d"))
    try:
        for maxlen in (-1, 1.5, "3"):
            with pytest.raises(ValueError, match="maxlen"):
                Deque(directory=str(tmp_path / "e"), maxlen=maxlen)
            with pytest.raises(ValueError, match="maxlen"):
                deque.maxlen = maxlen
        with pytest.raises(TypeError, match="integers"):
            deque["a"]
        with pytest.raises(TypeError, match="integer"):
            deque.rotate(1.5)
        with pytest.raises(TypeError, match="directory"):
            Deque(directory=42)
        assert list(deque) == [1, 2, 3] and deque.maxlen == float("inf")
    finally:
        deque.cache.close()


# -- Index: the rest of its contract ---------------------------------------------------------------

def test_index_directory_argument_and_persistence(tmp_path):
    path = str(tmp_path / "index")
    index = Index(path, [("a", 1)], b=2)
    assert index.directory == path and repr(index) == f"Index({path!r})"
    index.cache.close()
    again = Index(path, c=3)
    try:
        assert list(again.items()) == [("a", 1), ("b", 2), ("c", 3)]
        clone = pickle.loads(pickle.dumps(again))
        assert clone == again
        clone.cache.close()
    finally:
        again.cache.close()


def test_index_fromcache_and_views(tmp_path):
    with Cache(str(tmp_path / "c")) as cache:
        index = Index.fromcache(cache, {"a": 1, "b": 2, "c": 3})
        assert index.cache is cache
        assert "b" in index.keys() and 2 in index.values() and ("c", 3) in index.items()
        assert list(index.keys()) == ["a", "b", "c"] and list(index.values()) == [1, 2, 3]
        assert index.keys() & {"a", "z"} == {"a"}


def test_index_equality_rules(tmp_path):
    with Cache(str(tmp_path / "c")) as cache:
        index = Index.fromcache(cache, [("a", 1), ("b", 2)])
        assert index == {"b": 2, "a": 1}                                 # dict: any order
        assert index == collections.OrderedDict([("a", 1), ("b", 2)])
        assert index != collections.OrderedDict([("b", 2), ("a", 1)])   # OrderedDict: in order
        assert index != {"a": 1}
        assert index.__eq__(5) is NotImplemented and index != 5


def test_index_memoize(tmp_path):
    with Cache(str(tmp_path / "c")) as cache:
        index = Index.fromcache(cache)
        calls = []

        @index.memoize()
        def fib(n):
            calls.append(n)
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        assert fib(40) == 102334155 and len(calls) == 41
        assert index[fib.__cache_key__(40)] == 102334155
        with pytest.raises(TypeError, match="name cannot be callable"):
            @index.memoize
            def forgot():
                pass


def test_index_transact(tmp_path):
    with Cache(str(tmp_path / "c")) as cache:
        index = Index.fromcache(cache)

        def add():
            for _ in range(20):
                with index.transact():
                    index["total"] = index.get("total", 0) + 2
                    index["count"] = index.get("count", 0) + 1

        threads = [threading.Thread(target=add) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert (index["total"], index["count"]) == (120, 60)


def test_index_temporary_directory():
    index = Index({"a": 1})
    try:
        assert os.path.isdir(index.directory) and index["a"] == 1
    finally:
        index.cache.close()
