"""cachetools-style memoizing decorators whose cache may be a kvdb Cache (or any mutable mapping).

    from kvdb.cache import Cache
    from kvdb.cache.decorators import cached, cachedmethod

    cache = Cache("/tmp/results")

    @cached(cache)
    def fetch(url): ...

The calls match cachetools' `cached(cache, key=hashkey, lock=None, condition=None, info=False)`
and `cachedmethod(cache, key=methodkey, ...)`, so a program moves from an in-memory cachetools
cache to a persistent one by changing the object it passes. The protocol is cachetools': a lookup
is `cache[key]` (KeyError is a miss), a store is `cache[key] = value`, and a ValueError from the
store (cachetools' "value too large") is ignored, so the result is returned uncached.

Keys: cachetools' default key functions put a private cachetools class into every key with
keyword arguments. A persistent cache outlives the cachetools version that wrote it, so the key
functions here (hashkey, typedkey, methodkey, typedmethodkey) give plain tuples with a marker this
module owns: `hashkey(1, 2) == cachetools.keys.hashkey(1, 2) == (1, 2)`, and keyword arguments
follow KeywordMark as sorted (name, value) pairs. Any key function works, cachetools' included.
A kvdb Cache finds a key by its serialized form, not by hash and ==, as diskcache does: the keys
(3,) and (3.0,) are one key in a dict and two in a kvdb Cache, so f(3) and f(3.0) are cached apart.
"""
import functools
from collections import namedtuple

__all__ = ["CacheInfo", "KeywordMark", "cached", "cachedmethod", "hashkey", "methodkey", "typedkey",
           "typedmethodkey"]

# What cache_info() returns, as in cachetools and functools.lru_cache.
CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])


class KeywordMark:
    """Separates positional arguments from keyword arguments inside a key. A class, so it pickles
    by name (kvdb.cache.decorators.KeywordMark) and a stored key reads the same in every process."""


def hashkey(*args, **kwargs):
    """A key for hashable arguments: the positional ones, then KeywordMark and the keyword ones as
    sorted (name, value) pairs."""
    if not kwargs:
        return args
    return args + (KeywordMark,) + tuple(sorted(kwargs.items()))


def typedkey(*args, **kwargs):
    """hashkey's key followed by the type of every argument, so f(3) and f(3.0) differ."""
    key = hashkey(*args, **kwargs)
    key += tuple(type(v) for v in args)
    key += tuple(type(v) for _, v in sorted(kwargs.items()))
    return key


def methodkey(self, *args, **kwargs):
    """hashkey for a method: `self` is left out (each instance brings its own cache)."""
    return hashkey(*args, **kwargs)


def typedmethodkey(self, *args, **kwargs):
    """typedkey for a method, `self` left out."""
    return typedkey(*args, **kwargs)


def _check_cache(cache):
    if cache is None:
        raise TypeError("cache must not be None: pass a kvdb Cache or a mutable mapping")


def _sizes(cache):
    """(maxsize, currsize) for cache_info(): a cachetools cache reports its own; any other mapping
    (a kvdb Cache among them, whose size_limit is in bytes, not items) has no maxsize and its len()."""
    maxsize = getattr(cache, "maxsize", None)
    currsize = getattr(cache, "currsize", None)
    if currsize is None or callable(currsize):
        currsize = len(cache)
    return maxsize, currsize


class _Counters:
    """Hits and misses of one decorated function, for cache_info()."""
    __slots__ = ("hits", "misses")

    def __init__(self):
        self.hits = 0     # calls answered from the cache
        self.misses = 0   # calls that ran the function

    def reset(self):
        self.hits = self.misses = 0


_MISSING = object()


def _lookup(cache, k):
    try:
        return cache[k]
    except KeyError:
        return _MISSING


def _store(cache, k, v):
    try:
        cache[k] = v
    except ValueError:  # cachetools' "value too large": return the value uncached
        pass


def _call(func, cache, key, lock, condition, counters, pending, args, kwargs):
    """One call of a memoized function: the lookup, the call on a miss, the store."""
    k = key(*args, **kwargs)
    if condition is not None:
        # cachetools' condition: one caller computes a key, the others wait for its result.
        with condition:
            condition.wait_for(lambda: k not in pending)
            v = _lookup(cache, k)
            if v is not _MISSING:
                counters.hits += 1
                return v
            counters.misses += 1
            pending.add(k)
        try:
            v = func(*args, **kwargs)
            with condition:
                _store(cache, k, v)
            return v
        finally:
            with condition:
                pending.discard(k)
                condition.notify_all()
    if lock is not None:
        with lock:
            v = _lookup(cache, k)
            if v is not _MISSING:
                counters.hits += 1
                return v
            counters.misses += 1
        v = func(*args, **kwargs)
        with lock:
            stored = _lookup(cache, k)  # another thread may have stored it meanwhile: keep theirs
            if stored is not _MISSING:
                return stored
            _store(cache, k, v)
        return v
    v = _lookup(cache, k)
    if v is not _MISSING:
        counters.hits += 1
        return v
    counters.misses += 1
    v = func(*args, **kwargs)
    _store(cache, k, v)
    return v


def _clear(cache, lock, condition, counters):
    guard = condition if condition is not None else lock
    if guard is not None:
        with guard:
            cache.clear()
    else:
        cache.clear()
    counters.reset()


def _info(cache, lock, condition, counters):
    guard = condition if condition is not None else lock
    if guard is not None:
        with guard:
            return CacheInfo(counters.hits, counters.misses, *_sizes(cache))
    return CacheInfo(counters.hits, counters.misses, *_sizes(cache))


def cached(cache, key=hashkey, lock=None, condition=None, info=False):
    """Decorator: memoize a function's results in `cache` (a kvdb Cache, FanoutCache, Index or any
    mutable mapping), as cachetools.cached does.

    key(*args, **kwargs) makes the cache key. lock (a context manager, e.g. threading.Lock)
    guards every access to the cache; the function itself runs outside it. condition (a
    threading.Condition) also makes concurrent callers with one key wait for the first one's
    result instead of computing it again. info=True adds cache_info() -> CacheInfo(hits, misses,
    maxsize, currsize). The wrapper has cache, cache_key, cache_lock, cache_condition and
    cache_clear() (which clears the whole cache and the counters)."""
    _check_cache(cache)
    if not callable(key):
        raise TypeError(f"key must be a callable that makes a key from the arguments, not {type(key).__name__}")
    if condition is not None and lock is None:
        lock = condition

    def decorator(func):
        counters = _Counters()
        pending = set()

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return _call(func, cache, key, lock, condition, counters, pending, args, kwargs)

        wrapper.cache = cache
        wrapper.cache_key = key
        wrapper.cache_lock = lock
        wrapper.cache_condition = condition
        wrapper.cache_clear = lambda: _clear(cache, lock, condition, counters)
        if info:
            wrapper.cache_info = lambda: _info(cache, lock, condition, counters)
        return wrapper

    return decorator


class _CachedMethod:
    """The descriptor cachedmethod returns: read on an instance, it gives that instance's memoized
    method, whose cache, lock and condition come from the callables given to cachedmethod."""

    def __init__(self, func, cache, key, lock, condition, info):
        self.func = func              # the undecorated method
        self.cache = cache            # self -> the instance's cache
        self.key = key                # (self, *args, **kwargs) -> key
        self.lock = lock              # None or self -> a lock
        self.condition = condition    # None or self -> a threading.Condition
        self.info = info              # whether bound methods have cache_info()
        self.counters = _Counters()   # hits and misses over every instance
        self.pending = set()          # keys being computed under a condition
        functools.update_wrapper(self, func)

    def __set_name__(self, owner, name):
        self.__name__ = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        cache = self.cache(obj)
        _check_cache(cache)
        condition = self.condition(obj) if self.condition is not None else None
        lock = self.lock(obj) if self.lock is not None else condition
        func = self.func
        key = self.key

        def method(*args, **kwargs):
            return _call(lambda *a, **kw: func(obj, *a, **kw), cache, lambda *a, **kw: key(obj, *a, **kw),
                         lock, condition, self.counters, self.pending, args, kwargs)

        functools.update_wrapper(method, func)
        method.cache = cache
        method.cache_key = key
        method.cache_lock = lock
        method.cache_condition = condition
        method.cache_clear = lambda: _clear(cache, lock, condition, self.counters)
        if self.info:
            method.cache_info = lambda: _info(cache, lock, condition, self.counters)
        return method

    def __call__(self, obj, *args, **kwargs):
        return self.__get__(obj)(*args, **kwargs)


def cachedmethod(cache, key=methodkey, lock=None, condition=None, info=False):
    """Decorator: memoize a method's results, as cachetools.cachedmethod does. cache, lock and
    condition are callables given the instance (e.g. `lambda self: self.cache`), so every instance
    may keep its own cache; key(self, *args, **kwargs) makes the key (methodkey leaves self out).
    Read on an instance, the method has cache, cache_key, cache_lock, cache_condition,
    cache_clear() and, with info=True, cache_info() (whose hits and misses count every instance)."""
    for name, value in (("cache", cache), ("lock", lock), ("condition", condition)):
        if value is not None and not callable(value):
            raise TypeError(f"cachedmethod's {name} must be a callable given the instance "
                            f"(e.g. lambda self: self.{name}), not {type(value).__name__}")
    if cache is None:
        raise TypeError("cache must not be None: pass a callable given the instance, e.g. lambda self: self.cache")
    if not callable(key):
        raise TypeError(f"key must be a callable that makes a key from the arguments, not {type(key).__name__}")

    def decorator(func):
        return _CachedMethod(func, cache, key, lock, condition, info)

    return decorator
