"""Cache.memoize: the keys diskcache's memoize builds (__cache_key__), typed, ignore, expire, tag."""
import time

import diskcache
import pytest

from kvdb.cache import Cache


@pytest.fixture
def caches(tmp_path):
    ours, theirs = Cache(str(tmp_path / "k")), diskcache.Cache(str(tmp_path / "d"))
    yield ours, theirs
    ours.close()
    theirs.close()


def decorate_both(caches, **options):
    calls = []

    def make(cache):
        @cache.memoize(**options)
        def f(a, b=2, *args, **kwargs):
            calls.append((a, b, args, kwargs))
            return (a, b, args, sorted(kwargs.items()))
        return f
    return make(caches[0]), make(caches[1]), calls


@pytest.mark.parametrize("options", [{}, {"typed": True}, {"ignore": {0, "b"}}, {"name": "custom"},
                                     {"typed": True, "ignore": {1, "z"}}])
def test_cache_keys_are_diskcaches(caches, options):
    ours, theirs, _ = decorate_both(caches, **options)
    for args, kwargs in [((1,), {}), ((1, 3), {}), ((1,), {"b": 3}), ((1, 2, 3), {"z": 1, "y": 2}),
                         ((1.0,), {}), (("s", b"b"), {"k": None})]:
        assert ours.__cache_key__(*args, **kwargs) == theirs.__cache_key__(*args, **kwargs)
        assert ours(*args, **kwargs) == theirs(*args, **kwargs)


def test_results_are_cached_as_in_diskcache(caches):
    cache = caches[0]
    ours, theirs, calls = decorate_both(caches)
    for f in (ours, theirs):
        f(3)
        f(3)
        f(3.0)                                  # the key is a pickled tuple: 3.0 pickles apart
    assert calls == [(3, 2, (), {}), (3.0, 2, (), {})] * 2
    assert cache[ours.__cache_key__(3)] == (3, 2, (), [])
    g, _, calls = decorate_both(caches, typed=True)
    g(3)
    g(3)
    g(3.0)
    assert len(calls) == 2


def test_ignore_leaves_arguments_out(caches):
    f, _, calls = decorate_both(caches, ignore={1, "b"})
    f(1, 2)
    f(1, 5)
    f(1, b=9)
    assert len(calls) == 1


def test_none_results_are_cached_and_wrapped_is_the_function(caches):
    cache = caches[0]
    calls = []

    @cache.memoize()
    def nothing():
        calls.append(1)

    assert nothing() is None and nothing() is None and calls == [1]
    assert nothing.__wrapped__() is None and calls == [1, 1]
    assert nothing.__name__ == "nothing"


def test_expire_and_tag(caches, monkeypatch):
    cache = caches[0]
    now = [1000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    calls = []

    @cache.memoize(expire=10, tag="fib")
    def f(x):
        calls.append(x)
        return x

    f(1)
    assert cache.get(f.__cache_key__(1), expire_time=True, tag=True) == (1, 1010.0, "fib")
    f(1)
    now[0] += 11
    f(1)
    assert calls == [1, 1]
    assert cache.evict("fib") == 1
    f(1)
    assert calls == [1, 1, 1]


def test_expire_zero_looks_up_but_never_stores(caches):
    cache = caches[0]
    calls = []

    @cache.memoize(expire=0)
    def f(x):
        calls.append(x)
        return x * 2

    f(1)
    f(1)
    assert calls == [1, 1] and len(cache) == 0
    cache[f.__cache_key__(1)] = "stored elsewhere"
    assert f(1) == "stored elsewhere"


def test_memoize_needs_the_call(caches):
    with pytest.raises(TypeError, match="name cannot be callable"):
        @caches[0].memoize
        def f():
            pass


def test_recursive_fibonacci(caches):
    cache = caches[0]

    @cache.memoize()
    def fibonacci(number):
        return number if number < 2 else fibonacci(number - 1) + fibonacci(number - 2)

    assert fibonacci(100) == 354224848179261915075
    assert cache[fibonacci.__cache_key__(100)] == 354224848179261915075
