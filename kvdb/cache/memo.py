"""Cache.memoize: a decorator that keeps a function's results in the cache, keyed by its
arguments, as diskcache's memoize does (the same keys, so __cache_key__ gives the same tuples)."""
import functools

from kvdb.cache.constants import ENOVAL


def full_name(func):
    """The name memoize gives `func` by default: module and qualified name."""
    return f"{func.__module__}.{func.__qualname__}"


def args_to_key(base, args, kwargs, typed, ignore):
    """The cache key of a call: `base` (the name), the positional arguments not ignored, None,
    the keyword arguments not ignored as sorted name, value pairs; with `typed`, then the types
    of those arguments."""
    if ignore:
        args = tuple(arg for index, arg in enumerate(args) if index not in ignore)
        kwargs = {name: value for name, value in kwargs.items() if name not in ignore}
    key = base + args + (None,)
    if kwargs:
        items = sorted(kwargs.items())
        for item in items:
            key += item
    if typed:
        key += tuple(type(arg) for arg in args)
        if kwargs:
            key += tuple(type(value) for _, value in items)
    return key


def memoize(cache, name=None, typed=False, expire=None, tag=None, ignore=()):
    """Memoizing cache decorator: calls with equal arguments return the cached result.

    name: the key's first element (default: module.qualname of the function). typed: arguments
    of different types (3 and 3.0) are cached apart. expire: seconds a result lives (0: results
    are looked up but never stored). tag: the tag of stored results. ignore: positions and names
    of arguments left out of the key. The wrapper's __cache_key__(*args, **kwargs) gives the key
    and __wrapped__ the function.
    """
    if callable(name):
        raise TypeError("name cannot be callable")
    ignore = frozenset(ignore)

    def decorator(func):
        base = (full_name(func) if name is None else name,)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            key = __cache_key__(*args, **kwargs)
            result = cache.get(key, ENOVAL)
            if result is ENOVAL:
                result = func(*args, **kwargs)
                if expire is None or expire > 0:
                    cache.set(key, result, expire, tag=tag)
            return result

        def __cache_key__(*args, **kwargs):
            return args_to_key(base, args, kwargs, typed, ignore)

        wrapper.__cache_key__ = __cache_key__
        return wrapper

    return decorator
