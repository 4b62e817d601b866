"""kvdb.cache.decorators: cachetools' cached/cachedmethod semantics, over a dict, a cachetools cache
and a kvdb Cache, each compared with what cachetools itself does on the same calls."""
import pickle
import threading
import time

import cachetools
import cachetools.keys
import pytest

from kvdb.cache import Cache
from kvdb.cache.decorators import (CacheInfo, KeywordMark, cached, cachedmethod, hashkey, methodkey, typedkey,
                                   typedmethodkey)


def kvdb_cache(tmp_path):
    return Cache(str(tmp_path / "cache"))


@pytest.fixture(params=["dict", "lru", "kvdb", "fanout", "index"])
def make_cache(request, tmp_path):
    """A factory of empty caches of one kind; kvdb caches are closed at the end."""
    opened = []

    def make():
        if request.param == "dict":
            return {}
        if request.param == "lru":
            return cachetools.LRUCache(maxsize=100)
        cache = kvdb_cache(tmp_path / str(len(opened)))
        opened.append(cache)
        if request.param == "fanout":
            from kvdb.cache.fanout import FanoutCache
            cache.close()
            cache = FanoutCache(str(tmp_path / f"fanout{len(opened)}"), shards=2)
            opened.append(cache)
        elif request.param == "index":
            from kvdb.cache.persistent import Index
            return Index.fromcache(cache)
        return cache

    yield make
    for cache in opened:
        cache.close()


# -- keys -----------------------------------------------------------------------------------------

def test_hashkey_equals_cachetools_without_keywords_and_is_a_plain_tuple():
    for args in [(), (1,), (1, "a", b"b", 2.5, None, (1, 2))]:
        assert hashkey(*args) == cachetools.keys.hashkey(*args) == args
        assert type(hashkey(*args)) is tuple


def test_keyword_arguments_are_sorted_after_the_mark():
    assert hashkey(1, b=2, a=3) == (1, KeywordMark, ("a", 3), ("b", 2))
    assert hashkey(1, b=2, a=3) == hashkey(1, a=3, b=2)
    assert hashkey(1, 2) != hashkey(1, b=2)
    assert hash(hashkey(1, a=[1].__len__())) == hash(hashkey(1, a=1))


def test_keys_pickle_to_the_same_bytes_each_time():
    # a persistent cache finds keys by their serialized form: hashing a key must not change it
    k = hashkey(1, x="y")
    before = pickle.dumps(k)
    hash(k)
    assert pickle.dumps(k) == before
    assert pickle.loads(before) == k


def test_typedkey_and_method_keys():
    assert typedkey(3) != typedkey(3.0)
    assert hashkey(3) == hashkey(3.0)
    assert typedkey(1, a=2) == typedkey(1, a=2)
    assert methodkey(object(), 1, a=2) == hashkey(1, a=2)
    assert typedmethodkey(object(), 1) == typedkey(1)


# -- cached ---------------------------------------------------------------------------------------

def test_cached_memoizes_like_cachetools(make_cache):
    ours, theirs = make_cache(), {}
    calls = []

    def body(x, y=1):
        calls.append((x, y))
        return [x, y]  # a mutable result: the cache hands back equal values

    f = cached(ours, info=True)(body)
    g = cachetools.cached(theirs, info=True)(body)
    for args, kwargs in [((1,), {}), ((1,), {}), ((2,), {"y": 3}), ((2,), {"y": 3}), ((1,), {"y": 1})]:
        assert f(*args, **kwargs) == g(*args, **kwargs)
    ours_info, theirs_info = f.cache_info(), g.cache_info()
    assert (ours_info.hits, ours_info.misses, ours_info.currsize) == (theirs_info.hits, theirs_info.misses,
                                                                        theirs_info.currsize) == (2, 3, 3)
    assert isinstance(ours_info, CacheInfo)
    assert f.__wrapped__ is body and f.__name__ == "body"
    assert f.cache is ours and f.cache_key is hashkey and f.cache_lock is None


def test_cache_clear_empties_the_cache_and_the_counters(make_cache):
    cache = make_cache()
    f = cached(cache, info=True)(lambda x: x * 2)
    f(1), f(1), f(2)
    assert f.cache_info().currsize == 2
    f.cache_clear()
    assert len(cache) == 0
    assert f.cache_info()[:2] == (0, 0)
    assert f(1) == 2 and f.cache_info().misses == 1


def test_maxsize_is_the_cachetools_caches_own_and_none_otherwise(make_cache):
    cache = make_cache()
    f = cached(cache, info=True)(lambda x: x)
    f(1)
    assert f.cache_info().maxsize == (100 if isinstance(cache, cachetools.Cache) else None)


def test_a_none_result_is_cached(make_cache):
    calls = []
    f = cached(make_cache())(lambda x: calls.append(x))
    assert f(1) is None and f(1) is None
    assert calls == [1]


def test_typed_key(make_cache):
    f = cached(make_cache(), key=typedkey)(lambda x: type(x).__name__)
    assert f(3) == "int" and f(3.0) == "float"
    cache = make_cache()
    g = cached(cache)(lambda x: type(x).__name__)
    if isinstance(cache, (dict, cachetools.Cache)):
        assert g(3) == "int" and g(3.0) == "int"  # (3,) == (3.0,): one key, as in cachetools
    else:
        # a kvdb Cache finds a tuple key by its pickle, as diskcache does: (3,) and (3.0,) differ
        assert g(3) == "int" and g(3.0) == "float"


def test_a_value_error_from_the_store_returns_the_value_uncached():
    class Small(dict):
        def __setitem__(self, key, value):
            raise ValueError("value too large")

    calls = []
    f = cached(Small())(lambda x: calls.append(x) or x)
    assert f(5) == 5 and f(5) == 5
    assert calls == [5, 5]


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="cache must not be None"):
        cached(None)
    with pytest.raises(TypeError):
        cachetools.cached(None)  # cachetools refuses it too
    with pytest.raises(TypeError, match="key must be a callable"):
        cached({}, key="x")
    with pytest.raises(TypeError, match="callable given the instance"):
        cachedmethod({})


def test_lock_keeps_the_first_stored_value_and_is_not_held_during_the_call(make_cache):
    cache = make_cache()
    lock = threading.RLock()
    inside = []

    def body(x):
        inside.append(lock.acquire(blocking=False) and (lock.release() or True))
        return x

    f = cached(cache, lock=lock)(body)
    assert f(1) == 1 and f(1) == 1
    assert len(inside) == 1 and f.cache_lock is lock


def test_condition_computes_each_key_once_across_threads(make_cache):
    cache = make_cache()
    condition = threading.Condition()
    calls = []

    def slow(x):
        calls.append(x)
        time.sleep(0.05)
        return x * 10

    f = cached(cache, condition=condition, info=True)(slow)
    results = []
    threads = [threading.Thread(target=lambda: results.append(f(7))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [70] * 4
    assert calls == [7]
    assert f.cache_info()[:2] == (3, 1)


def test_a_kvdb_cache_keeps_results_across_reopen(tmp_path):
    path = str(tmp_path / "c")
    calls = []
    with Cache(path) as cache:
        f = cached(cache)(lambda x, scale=1: calls.append(x) or x * scale)
        assert f(2, scale=3) == 6
    with Cache(path) as cache:
        f = cached(cache)(lambda x, scale=1: calls.append(x) or x * scale)
        assert f(2, scale=3) == 6
        assert cache[hashkey(2, scale=3)] == 6
    assert calls == [2]


# -- cachedmethod ---------------------------------------------------------------------------------

def test_cachedmethod_uses_each_instances_cache(make_cache):
    class Calc:
        def __init__(self, cache):
            self.cache = cache
            self.calls = 0

        @cachedmethod(lambda self: self.cache, info=True)
        def double(self, x):
            self.calls += 1
            return x * 2

    a, b = Calc(make_cache()), Calc(make_cache())
    assert a.double(2) == 4 and a.double(2) == 4 and b.double(2) == 4
    assert (a.calls, b.calls) == (1, 1)
    assert a.double.cache is a.cache and b.double.cache is b.cache
    assert a.double.cache_info().currsize == 1
    assert a.double.__name__ == "double"
    a.double.cache_clear()
    assert len(a.cache) == 0 and len(b.cache) == 1
    assert Calc.double(b, 2) == 4 and b.calls == 1


def test_cachedmethod_keys_leave_self_out_like_cachetools():
    class Theirs:
        cache = {}

        @cachetools.cachedmethod(lambda self: self.cache)
        def f(self, x, y=0):
            return x + y

    class Ours:
        cache = {}

        @cachedmethod(lambda self: self.cache)
        def f(self, x, y=0):
            return x + y

    Theirs().f(1), Ours().f(1), Theirs().f(1, y=2), Ours().f(1, y=2)
    assert list(Theirs.cache)[0] == list(Ours.cache)[0] == (1,)
    assert list(Ours.cache)[1] == (1, KeywordMark, ("y", 2))


def test_cachedmethod_with_a_lock():
    class Obj:
        def __init__(self):
            self.cache, self.lock = {}, threading.Lock()

        @cachedmethod(lambda self: self.cache, lock=lambda self: self.lock)
        def f(self, x):
            return -x

    o = Obj()
    assert o.f(3) == -3 and o.cache == {(3,): -3}
    assert o.f.cache_lock is o.lock
