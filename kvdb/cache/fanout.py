"""FanoutCache: diskcache.FanoutCache's API over several kvdb Caches, keys spread by a stable hash.

    from kvdb.cache.fanout import FanoutCache

    cache = FanoutCache("/tmp/fanout", shards=8, size_limit=2**30)
    cache.set("key", "value", expire=60)

diskcache shards because SQLite takes one writer at a time: each shard is a database of its own,
so writers to different shards do not wait for each other. kvdb's B+Tree engine already lets
several threads and processes write one database at once (optimistic transactions), so kvdb does
not need shards for that; FanoutCache is here so programs written for diskcache.FanoutCache run
unchanged, and shards still spread the work of eviction, culling and expiry over smaller caches.

What follows diskcache:
- the directory holds one Cache per shard, in subdirectories "000", "001", ...;
- a key's shard is a stable hash of the key (the same in every process and run, unlike Python's
  salted hash()) modulo the shard count, so every process opening the directory with the same
  `shards` finds every key;
- `size_limit` is the whole cache's: each shard gets size_limit // shards;
- the mapping operations go to the key's shard; clear/expire/evict/cull sum the counts of the
  shards, stats() sums hits and misses, volume() the sizes, check() joins the warnings;
- len() and iteration walk the shards in order (so iteration is not in insertion order);
- transact() holds every shard's transaction, taken in shard order;
- cache(name), deque(name) and index(name) give a Cache, Deque or Index in the subdirectories
  cache/<name>, deque/<name> and index/<name>, one object per name;
- a setting (fanout.size_limit, .eviction_policy, ...) reads the first shard's; reset() sets all.
The queue calls (push/pull/peek), iterkeys and peekitem stay Cache's, as in diskcache.
"""
import contextlib
import functools
import os
import os.path
import pickle
import struct
import tempfile
import zlib

__all__ = ["FanoutCache", "shard_of"]

SHARD_NAME = "{:03d}"  # the shard's subdirectory under the FanoutCache's directory
_MISSING = object()
# The Cache settings a FanoutCache reads from its first shard (diskcache's DEFAULT_SETTINGS names).
SETTINGS = frozenset(["statistics", "tag_index", "eviction_policy", "size_limit", "cull_limit"])
SETTING_PREFIXES = ("sqlite_", "disk_")


def _cache_type():
    """kvdb.cache.Cache, imported when first needed (kvdb.cache's __init__ imports this module)."""
    from kvdb.cache import Cache
    return Cache


def _timeout_error():
    """The Cache's timeout exception if it has one (diskcache's Timeout), else a class never raised."""
    import kvdb.cache
    return getattr(kvdb.cache, "Timeout", _NeverRaised)


class _NeverRaised(Exception):
    pass


def _key_bytes(key):
    """Bytes that identify a key for sharding, equal for keys a Cache treats as one key: a type tag
    and the key's bytes for bytes, str, int and float (an integral float counts as the int, True
    as 1), else the pickle of the key at a fixed protocol."""
    if type(key) is bytes:
        return b"b" + key
    if type(key) is str:
        return b"s" + key.encode("utf-8", "surrogatepass")
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    if isinstance(key, int):
        return b"i" + str(int(key)).encode()
    if isinstance(key, float):
        return b"f" + struct.pack(">d", key)
    return b"p" + pickle.dumps(key, protocol=4)


def shard_of(key, shards):
    """The shard (0 .. shards-1) that holds `key`: CRC-32 of _key_bytes(key) modulo shards."""
    return zlib.crc32(_key_bytes(key)) % shards


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, not {value!r}")


class FanoutCache:
    """A cache of `shards` kvdb Caches in one directory, with diskcache.FanoutCache's methods.

    directory: where the shards live (None: a new temporary directory, not removed afterwards).
    shards: how many Caches (default 8); every open of the directory must use the same number.
    timeout: kept for diskcache's signature and passed to each shard.
    disk: the Disk (serializer) type passed to each shard (None: the Cache's default).
    settings: any Cache setting (size_limit, eviction_policy, cull_limit, statistics, ...);
    size_limit is the total, split evenly over the shards."""

    _shard_type = None  # the Cache class of the shards (None: kvdb.cache.Cache); tests may set it

    def __init__(self, directory=None, shards=8, timeout=0.010, disk=None, **settings):
        _check_positive_int("shards", shards)
        if directory is None:
            directory = tempfile.mkdtemp(prefix="kvdb-fanout-")
        elif not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory must be a str or os.PathLike path, not {type(directory).__name__}")
        directory = os.path.expanduser(os.fspath(directory))
        shard_settings = dict(settings)
        if "size_limit" in settings:
            limit = settings["size_limit"]
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
                raise ValueError(f"size_limit must be a positive number of bytes, not {limit!r}")
            shard_settings["size_limit"] = max(1, int(limit) // shards)
        cache_type = self._shard_type or _cache_type()
        disk_arg = {} if disk is None else {"disk": disk}
        self._directory = directory      # the FanoutCache's directory (constant)
        self._count = shards             # how many shards (constant)
        self._timeout = timeout          # passed to every shard (constant)
        self._disk = disk                # the shards' Disk type, None for the default (constant)
        self._settings = dict(settings)  # the settings as given, for pickling (constant)
        self._cache_type = cache_type    # the Cache class of shards and sub-caches (constant)
        self._subs = {}                  # (kind, name) -> the Cache/Deque/Index cache()/deque()/index() gave
        self._shards = []                # the shard Caches, index = shard number
        try:
            for number in range(shards):
                path = os.path.join(directory, SHARD_NAME.format(number))
                self._shards.append(cache_type(path, timeout=timeout, **disk_arg, **shard_settings))
        except BaseException:
            self.close()
            raise
        self._timeout_error = _timeout_error() if self._shard_type is None else _NeverRaised

    # -- where a key lives ----------------------------------------------------------------------

    @property
    def directory(self):
        """The cache's directory."""
        return self._directory

    def _shard(self, key):
        return self._shards[shard_of(key, self._count)]

    # -- one key --------------------------------------------------------------------------------

    def set(self, key, value, expire=None, read=False, tag=None, retry=False):
        """Set key to value in its shard (see Cache.set); False if the shard timed out without retry."""
        try:
            return self._shard(key).set(key, value, expire=expire, read=read, tag=tag, retry=retry)
        except self._timeout_error:
            return False

    def __setitem__(self, key, value):
        self._shard(key)[key] = value

    def touch(self, key, expire=None, retry=False):
        """Give key a new expiry (None: never); True if the key was there."""
        try:
            return self._shard(key).touch(key, expire=expire, retry=retry)
        except self._timeout_error:
            return False

    def add(self, key, value, expire=None, read=False, tag=None, retry=False):
        """Set key only if it is not there (atomic); True if added."""
        try:
            return self._shard(key).add(key, value, expire=expire, read=read, tag=tag, retry=retry)
        except self._timeout_error:
            return False

    def incr(self, key, delta=1, default=0, retry=False):
        """Add delta to key's value (atomic); a missing key starts at default (None: KeyError)."""
        try:
            return self._shard(key).incr(key, delta, default, retry=retry)
        except self._timeout_error:
            return None

    def decr(self, key, delta=1, default=0, retry=False):
        """Subtract delta from key's value (atomic); a missing key starts at default (None: KeyError)."""
        try:
            return self._shard(key).decr(key, delta, default, retry=retry)
        except self._timeout_error:
            return None

    def get(self, key, default=None, read=False, expire_time=False, tag=False, retry=False):
        """key's value, or default (see Cache.get for read, expire_time and tag)."""
        try:
            return self._shard(key).get(key, default=default, read=read, expire_time=expire_time, tag=tag,
                                        retry=retry)
        except self._timeout_error:
            return default

    def __getitem__(self, key):
        return self._shard(key)[key]

    def read(self, key):
        """A binary file opened on key's value (KeyError if missing)."""
        return self._shard(key).read(key)

    def __contains__(self, key):
        return key in self._shard(key)

    def pop(self, key, default=None, expire_time=False, tag=False, retry=False):
        """Remove key and return its value, or default (atomic)."""
        try:
            return self._shard(key).pop(key, default=default, expire_time=expire_time, tag=tag, retry=retry)
        except self._timeout_error:
            return default

    def delete(self, key, retry=False):
        """Remove key; True if it was there."""
        try:
            return self._shard(key).delete(key, retry=retry)
        except self._timeout_error:
            return False

    def __delitem__(self, key):
        del self._shard(key)[key]

    # -- every shard ----------------------------------------------------------------------------

    def check(self, fix=False, retry=False):
        """Every shard's check(), the warnings joined in one list."""
        warnings = []
        for shard in self._shards:
            warnings.extend(shard.check(fix=fix, retry=retry))
        return warnings

    def expire(self, retry=False):
        """Remove expired items from every shard; how many were removed."""
        return sum(shard.expire(retry=retry) for shard in self._shards)

    def create_tag_index(self):
        """Create the tag index on every shard."""
        for shard in self._shards:
            shard.create_tag_index()

    def drop_tag_index(self):
        """Drop the tag index on every shard."""
        for shard in self._shards:
            shard.drop_tag_index()

    def evict(self, tag, retry=False):
        """Remove the items tagged `tag` from every shard; how many were removed."""
        return sum(shard.evict(tag, retry=retry) for shard in self._shards)

    def cull(self, retry=False):
        """Cull every shard down to its share of size_limit; how many items were removed."""
        return sum(shard.cull(retry=retry) for shard in self._shards)

    def clear(self, retry=False):
        """Remove every item of every shard; how many were removed."""
        return sum(shard.clear(retry=retry) for shard in self._shards)

    def stats(self, enable=True, reset=False):
        """(hits, misses) summed over the shards; enable and reset apply to each."""
        hits = misses = 0
        for shard in self._shards:
            h, m = shard.stats(enable=enable, reset=reset)
            hits += h
            misses += m
        return hits, misses

    def volume(self):
        """The estimated size on disk of every shard together, in bytes."""
        return sum(shard.volume() for shard in self._shards)

    def __len__(self):
        """How many items the shards hold, expired ones included (as Cache counts)."""
        return sum(len(shard) for shard in self._shards)

    def __iter__(self):
        """Every key, shard after shard."""
        for shard in self._shards:
            yield from shard

    def __reversed__(self):
        """Every key in the reverse of __iter__'s order."""
        for shard in reversed(self._shards):
            yield from reversed(shard)

    @contextlib.contextmanager
    def transact(self, retry=True):
        """Hold a transaction on every shard, taken in shard order, so a block's reads and writes
        of any keys are atomic."""
        with contextlib.ExitStack() as stack:
            for shard in self._shards:
                stack.enter_context(shard.transact(retry))
            yield

    def memoize(self, name=None, typed=False, expire=None, tag=None, ignore=()):
        """Cache.memoize's decorator, storing results in this FanoutCache (see Cache.memoize)."""
        return _memoize(self, name, typed, expire, tag, ignore)

    # -- settings -------------------------------------------------------------------------------

    def __getattr__(self, name):
        """A setting (size_limit, eviction_policy, cull_limit, ...) as the first shard has it."""
        if name.startswith("_") or not self.__dict__.get("_shards"):
            raise AttributeError(name)
        if name not in SETTINGS and not name.startswith(SETTING_PREFIXES):
            raise AttributeError(f"FanoutCache has no attribute or cache setting {name!r}")
        return getattr(self._shards[0], name)

    def reset(self, key, value=_MISSING):
        """Set (or, without value, reload) setting `key` on every shard; the first shard's value."""
        if value is _MISSING:
            results = [shard.reset(key) for shard in self._shards]
        else:
            results = [shard.reset(key, value) for shard in self._shards]
        return results[0]

    # -- sub-collections ------------------------------------------------------------------------

    def _sub_path(self, kind, name):
        if not isinstance(name, str) or not name or os.sep in name or name in (".", ".."):
            raise ValueError(f"{kind} name must be a non-empty str naming one directory, not {name!r}")
        return os.path.join(self._directory, kind, name)

    def cache(self, name, timeout=60, disk=None, **settings):
        """The Cache in subdirectory cache/<name> (one object per name; disk None: this one's)."""
        key = ("cache", name)
        if key not in self._subs:
            path = self._sub_path("cache", name)
            disk = disk if disk is not None else self._disk
            disk_arg = {} if disk is None else {"disk": disk}
            self._subs[key] = self._cache_type(path, timeout=timeout, **disk_arg, **settings)
        return self._subs[key]

    def deque(self, name, maxlen=None):
        """The Deque in subdirectory deque/<name> (one object per name)."""
        key = ("deque", name)
        if key not in self._subs:
            from kvdb.cache.persistent import Deque
            path = self._sub_path("deque", name)
            cache = self._cache_type(path, eviction_policy="none", **self._disk_arg())
            self._subs[key] = Deque.fromcache(cache, maxlen=maxlen)
        return self._subs[key]

    def index(self, name):
        """The Index in subdirectory index/<name> (one object per name)."""
        key = ("index", name)
        if key not in self._subs:
            from kvdb.cache.persistent import Index
            path = self._sub_path("index", name)
            cache = self._cache_type(path, eviction_policy="none", **self._disk_arg())
            self._subs[key] = Index.fromcache(cache)
        return self._subs[key]

    def _disk_arg(self):
        return {} if self._disk is None else {"disk": self._disk}

    # -- life -----------------------------------------------------------------------------------

    def close(self):
        """Close every shard and sub-collection (a later call reopens them, as Cache does)."""
        for shard in self._shards:
            shard.close()
        for sub in self._subs.values():
            getattr(sub, "cache", sub).close()
        self._subs.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        return (self._directory, self._count, self._timeout, self._disk, self._settings)

    def __setstate__(self, state):
        directory, shards, timeout, disk, settings = state
        self.__init__(directory, shards, timeout, disk, **settings)

    def __repr__(self):
        return f"FanoutCache(directory={self._directory!r}, shards={self._count})"


# -- memoize ----------------------------------------------------------------------------------------

_KWARGS_MARK = (None,)  # separates positional from keyword arguments in a memoize key


def _full_name(func):
    return f"{func.__module__}.{func.__qualname__}"


def _args_to_key(base, args, kwargs, typed, ignore):
    """A memoize key: base (the function's name), the positional arguments not ignored, then
    _KWARGS_MARK and the sorted keyword arguments not ignored, then their types if typed."""
    args = tuple(a for i, a in enumerate(args) if i not in ignore)
    key = base + args
    items = sorted((k, v) for k, v in kwargs.items() if k not in ignore)
    if items:
        key += _KWARGS_MARK
        for item in items:
            key += item
    if typed:
        key += tuple(type(a) for a in args)
        key += tuple(type(v) for _, v in items)
    return key


def _memoize(cache, name, typed, expire, tag, ignore):
    """diskcache's memoize over any object with get/set: results are stored under
    (name, *args, ...) keys; expire=0 looks results up but never stores them."""
    if callable(name):
        raise TypeError("name cannot be callable: call memoize() when decorating, @cache.memoize()")
    ignore = frozenset(ignore)

    def decorator(func):
        base = (_full_name(func),) if name is None else (name,)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            key = wrapper.__cache_key__(*args, **kwargs)
            result = cache.get(key, default=_MISSING, retry=True)
            if result is _MISSING:
                result = func(*args, **kwargs)
                if expire is None or expire > 0:
                    cache.set(key, result, expire, tag=tag, retry=True)
            return result

        def __cache_key__(*args, **kwargs):
            return _args_to_key(base, args, kwargs, typed, ignore)

        wrapper.__cache_key__ = __cache_key__
        return wrapper

    return decorator
