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
import os
import os.path
import tempfile
import threading
import zlib

from kvdb.cache.constants import ENOVAL, Timeout
from kvdb.cache.core import Cache
from kvdb.cache.keys import entry_key
from kvdb.cache.memo import memoize
from kvdb.cache.persistent import Deque, Index
from kvdb.cache.settings import DEFAULT_SETTINGS

__all__ = ["FanoutCache", "key_crc", "shard_of"]

SHARD_NAME = "{:03d}"  # the shard's subdirectory under the FanoutCache's directory


# CRC-32 of a str key's entry_key prefix: a str key's CRC continues from it over the key's UTF-8.
_TEXT_CRC = zlib.crc32(entry_key(""))


def key_crc(key):
    """CRC-32 of the key as the Cache encodes it (kvdb.cache.keys.entry_key), so keys the Cache
    takes as one (1 and 1.0) get one CRC. It depends only on the key's bytes: the same in every
    process and run, unlike Python's salted hash(). str keys, the common case, skip building
    the encoded key."""
    if key.__class__ is str:
        return zlib.crc32(key.encode("utf-8", "surrogatepass"), _TEXT_CRC)
    return zlib.crc32(entry_key(key))


def shard_of(key, shards):
    """The shard (0 .. shards-1) that holds `key`: key_crc(key) modulo shards. A new cache format
    version (a new entry_key) would need a new FanoutCache layout too."""
    return key_crc(key) % shards


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, not {value!r}")


class FanoutCache:
    """A cache of `shards` kvdb Caches in one directory, with diskcache.FanoutCache's methods.

    directory: where the shards live (None: a new temporary directory, not removed afterwards).
    shards: how many Caches (default 8); every open of the directory must use the same number.
    timeout: each shard's timeout, seconds: how long a write waits for another block's
    transact() or retries write conflicts before it times out (then `retry` decides).
    disk: the Disk (serializer) type passed to each shard (None: the Cache's default).
    settings: any Cache setting (size_limit, eviction_policy, cull_limit, statistics, ...);
    size_limit is the total, split evenly over the shards."""

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
        disk_arg = {} if disk is None else {"disk": disk}
        self._directory = directory      # the FanoutCache's directory (constant)
        self._count = shards             # how many shards (constant)
        self._timeout = timeout          # passed to every shard (constant)
        self._disk = disk                # the shards' Disk type, None for the default (constant)
        self._settings = dict(settings)  # the settings as given, for pickling (constant)
        self._subs = {}                  # (kind, name) -> the Cache/Deque/Index cache()/deque()/index() gave
        self._subs_lock = threading.Lock()  # guards creating an entry of _subs
        self._shards = []                # the shard Caches, index = shard number
        try:
            for number in range(shards):
                path = os.path.join(directory, SHARD_NAME.format(number))
                self._shards.append(Cache(path, timeout=timeout, **disk_arg, **shard_settings))
        except BaseException:
            self.close()
            raise

    # -- where a key lives ----------------------------------------------------------------------

    @property
    def directory(self):
        """The cache's directory."""
        return self._directory

    def _shard(self, key):
        return self._shards[key_crc(key) % self._count]

    # -- one key --------------------------------------------------------------------------------
    # diskcache's rule for every call with `retry`: a Timeout (another block holds the shard's
    # transact() lock, or write conflicts outlast the shard's timeout) is retried if retry is
    # True, else the call gives up and returns its failure value (False, None or the default).

    def set(self, key, value, expire=None, read=False, tag=None, retry=False):
        """Set key to value in its shard; True, or False if it timed out without retry."""
        shard = self._shards[key_crc(key) % self._count]
        while True:
            try:
                return shard.set(key, value, expire, read, tag)
            except Timeout:
                if not retry:
                    return False

    def __setitem__(self, key, value):
        self.set(key, value, retry=True)

    def touch(self, key, expire=None, retry=False):
        """Give key a new expiry (None: never); True if the key was there."""
        shard = self._shard(key)
        while True:
            try:
                return shard.touch(key, expire)
            except Timeout:
                if not retry:
                    return False

    def add(self, key, value, expire=None, read=False, tag=None, retry=False):
        """Set key only if it is not there (atomic); True if added."""
        shard = self._shard(key)
        while True:
            try:
                return shard.add(key, value, expire, read, tag)
            except Timeout:
                if not retry:
                    return False

    def incr(self, key, delta=1, default=0, retry=False):
        """Add delta to key's value (atomic); a missing key starts at default (None: KeyError).
        None if it timed out without retry."""
        shard = self._shard(key)
        while True:
            try:
                return shard.incr(key, delta, default)
            except Timeout:
                if not retry:
                    return None

    def decr(self, key, delta=1, default=0, retry=False):
        """Subtract delta from key's value (atomic); as incr."""
        return self.incr(key, -delta, default, retry)

    def get(self, key, default=None, read=False, expire_time=False, tag=False, retry=False):
        """key's value, or default (see Cache.get for read, expire_time and tag)."""
        # the hot path: key_crc inlined for str keys, the plain call when no option is asked for
        if key.__class__ is str:
            shard = self._shards[zlib.crc32(key.encode("utf-8", "surrogatepass"), _TEXT_CRC) % self._count]
        else:
            shard = self._shards[key_crc(key) % self._count]
        while True:
            try:
                if read or expire_time or tag:
                    return shard.get(key, default, read, expire_time, tag)
                return shard.get(key, default)
            except Timeout:
                if not retry:
                    return default

    def __getitem__(self, key):
        value = self.get(key, ENOVAL, retry=True)
        if value is ENOVAL:
            raise KeyError(key)
        return value

    def read(self, key):
        """A binary file opened on key's value (KeyError if missing)."""
        handle = self.get(key, default=ENOVAL, read=True, retry=True)
        if handle is ENOVAL:
            raise KeyError(key)
        return handle

    def __contains__(self, key):
        return key in self._shard(key)

    def pop(self, key, default=None, expire_time=False, tag=False, retry=False):
        """Remove key and return its value, or default (atomic)."""
        shard = self._shard(key)
        while True:
            try:
                return shard.pop(key, default, expire_time, tag)
            except Timeout:
                if not retry:
                    return default

    def delete(self, key, retry=False):
        """Remove key; True if it was there."""
        shard = self._shard(key)
        while True:
            try:
                return shard.delete(key)
            except Timeout:
                if not retry:
                    return False

    def __delitem__(self, key):
        if not self.delete(key, retry=True):
            raise KeyError(key)

    # -- every shard ----------------------------------------------------------------------------

    def _each(self, retry, call):
        """[call(shard) for every shard], retrying a shard's Timeout if retry, else leaving that
        shard out (diskcache's whole-cache calls count what the shards that answered removed)."""
        results = []
        for shard in self._shards:
            while True:
                try:
                    results.append(call(shard))
                    break
                except Timeout:
                    if not retry:
                        break
        return results

    def check(self, fix=False, retry=False):
        """Every shard's check(), the warnings joined in one list."""
        return [w for found in self._each(retry, lambda shard: shard.check(fix)) for w in found]

    def expire(self, retry=False):
        """Remove expired items from every shard; how many were removed."""
        return sum(self._each(retry, lambda shard: shard.expire()))

    def create_tag_index(self):
        """diskcache's call; kvdb's Cache always keeps a tag index, so there is nothing to do
        unless the shards have the call."""
        for shard in self._shards:
            if hasattr(shard, "create_tag_index"):
                shard.create_tag_index()

    def drop_tag_index(self):
        """diskcache's call; as create_tag_index."""
        for shard in self._shards:
            if hasattr(shard, "drop_tag_index"):
                shard.drop_tag_index()

    def evict(self, tag, retry=False):
        """Remove the items tagged `tag` from every shard; how many were removed."""
        return sum(self._each(retry, lambda shard: shard.evict(tag)))

    def cull(self, retry=False):
        """Cull every shard down to its share of size_limit; how many items were removed."""
        return sum(self._each(retry, lambda shard: shard.cull()))

    def clear(self, retry=False):
        """Remove every item of every shard; how many were removed."""
        return sum(self._each(retry, lambda shard: shard.clear()))

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
        """Hold a transaction on every shard, taken in shard order (so two blocks never wait on
        each other in a cycle), so a block's reads and writes of any keys are atomic. Waits as long
        as it takes, whatever retry says, as diskcache's FanoutCache.transact does."""
        with contextlib.ExitStack() as stack:
            for shard in self._shards:
                while True:  # diskcache's FanoutCache blocks until it holds every shard
                    try:
                        stack.enter_context(shard.transact())
                        break
                    except Timeout:
                        continue
            yield

    memoize = memoize  # Cache.memoize's decorator (kvdb.cache.memo), storing results in this FanoutCache

    # -- settings -------------------------------------------------------------------------------

    def __getattr__(self, name):
        """A setting (size_limit, eviction_policy, cull_limit, ...) as the first shard has it."""
        if name.startswith("_") or not self.__dict__.get("_shards"):
            raise AttributeError(name)
        if name not in DEFAULT_SETTINGS:
            raise AttributeError(f"FanoutCache has no attribute or cache setting {name!r}")
        return getattr(self._shards[0], name)

    def reset(self, key, value=ENOVAL):
        """Set (or, without value, reload) setting `key` on every shard; the first shard's value."""
        if value is ENOVAL:
            results = [shard.reset(key) for shard in self._shards]
        else:
            results = [shard.reset(key, value) for shard in self._shards]
        return results[0]

    # -- sub-collections ------------------------------------------------------------------------

    def _sub_path(self, kind, name):
        if not isinstance(name, str) or not name or os.sep in name or name in (".", ".."):
            raise ValueError(f"{kind} name must be a non-empty str naming one directory, not {name!r}")
        return os.path.join(self._directory, kind, name)

    def _sub(self, kind, name, make):
        """The sub-collection (kind, name), made by make(path) the first time."""
        key = (kind, name)
        sub = self._subs.get(key)
        if sub is None:
            path = self._sub_path(kind, name)
            with self._subs_lock:
                sub = self._subs.get(key)
                if sub is None:
                    sub = self._subs[key] = make(path)
        return sub

    def cache(self, name, timeout=60, disk=None, **settings):
        """The Cache in subdirectory cache/<name> (one object per name; disk None: this one's)."""
        disk = disk if disk is not None else self._disk
        disk_arg = {} if disk is None else {"disk": disk}
        return self._sub("cache", name, lambda path: Cache(path, timeout=timeout, **disk_arg, **settings))

    def deque(self, name, maxlen=None):
        """The Deque in subdirectory deque/<name> (one object per name; maxlen counts the first time)."""
        return self._sub("deque", name, lambda path: Deque.fromcache(
            Cache(path, eviction_policy="none", **self._disk_arg()), maxlen=maxlen))

    def index(self, name):
        """The Index in subdirectory index/<name> (one object per name)."""
        return self._sub("index", name, lambda path: Index.fromcache(
            Cache(path, eviction_policy="none", **self._disk_arg())))

    def _disk_arg(self):
        return {} if self._disk is None else {"disk": self._disk}

    # -- life -----------------------------------------------------------------------------------

    def close(self):
        """Close every shard and sub-collection (a later call reopens them, as Cache does)."""
        for shard in self._shards:
            shard.close()
        for sub in list(self._subs.values()):
            getattr(sub, "cache", sub).close()

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
