"""KvdbCache: a Django cache backend on kvdb's FanoutCache (diskcache's DjangoCache, on kvdb).

    CACHES = {
        "default": {
            "BACKEND": "kvdb.contrib.django.KvdbCache",
            "LOCATION": "/var/cache/mysite",        # the cache's directory
            "TIMEOUT": 300,                         # seconds; None: forever; 0: do not store
            "OPTIONS": {"size_limit": 2**30, "shards": 8},
        },
    }

It follows Django's cache API (django.core.cache.backends.base.BaseCache): keys go through
make_key (KEY_PREFIX, VERSION, KEY_FUNCTION) and validate_key (CacheKeyWarning for keys memcached
would refuse), timeouts are Django's (the default TIMEOUT, None for ever, 0 or less: the value is
not stored, and set() removes the key's stored value), incr/decr raise ValueError for a missing key, set_many
returns the keys it could not store.

close(): Django calls it at the end of every request. Opening a kvdb database takes milliseconds
(an SQLite connection far less), so by default KvdbCache keeps its shards open across requests,
as a persistent connection, and close() leaves them open (each Cache writes what it notes in
memory, LRU/LFU accesses and statistics, on its own schedule: docs/cache.md). With OPTIONS
"persistent": False, close() closes the shards and the next call reopens them.

OPTIONS: "shards" (default 8) and "timeout" (default 0.010) are FanoutCache's, "persistent"
(default True) is close()'s above; every other option in lowercase is a Cache setting
(size_limit, eviction_policy, cull_limit, statistics, ...), with size_limit the whole cache's
bytes, split over the shards. Django's MAX_ENTRIES and
CULL_FREQUENCY count entries, which a byte-limited cache does not do: they are refused with
ImproperlyConfigured rather than ignored; use size_limit.

Beyond Django's API, as diskcache's DjangoCache: pop, expire, evict(tag), cull, stats, memoize,
and cache(name)/deque(name)/index(name) sub-collections; set/add/get take diskcache's `tag` and
`read` arguments.
"""
import re

from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH, BaseCache
from django.core.exceptions import ImproperlyConfigured

from kvdb.cache.fanout import FanoutCache

__all__ = ["KvdbCache"]

DEFAULT_SHARDS = 8       # as diskcache's DjangoCache
DEFAULT_TIMEOUT_S = 0.010  # FanoutCache's timeout option
_COUNTED_OPTIONS = ("MAX_ENTRIES", "CULL_FREQUENCY", "max_entries", "cull_frequency")
_MISSING = object()
# The characters memcached refuses in a key (control characters, space, DEL), which BaseCache's
# validate_key warns about; compiled here because Django's own pattern is a lazy object whose
# every use costs a microsecond.
_MEMCACHED_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")


class KvdbCache(BaseCache):
    """Django's cache API over a kvdb FanoutCache in directory LOCATION."""

    def __init__(self, directory, params):
        super().__init__(params)
        if not directory or not isinstance(directory, str):
            raise ImproperlyConfigured("KvdbCache needs LOCATION: the cache's directory, a non-empty str")
        options = dict(params.get("OPTIONS") or {})
        counted = [name for name in _COUNTED_OPTIONS if name in options]
        if counted:
            raise ImproperlyConfigured(f"KvdbCache limits the cache's size in bytes, not entries: use "
                                       f"OPTIONS['size_limit'] instead of {', '.join(counted)}")
        shards = options.pop("shards", DEFAULT_SHARDS)
        timeout = options.pop("timeout", DEFAULT_TIMEOUT_S)
        persistent = options.pop("persistent", True)
        if not isinstance(persistent, bool):
            raise ImproperlyConfigured(f"KvdbCache's OPTIONS['persistent'] must be True or False, not {persistent!r}")
        self._persistent = persistent  # close() keeps the shards open (constant)
        self._directory = directory  # LOCATION (constant)
        self._shards = shards        # the FanoutCache's shard count (constant)
        self._timeout = timeout      # the FanoutCache's timeout (constant)
        self._settings = options     # Cache settings for the shards (constant)
        self._fanout = None          # the open FanoutCache; None until first used and after close()
        self._open()                 # open now, so bad settings fail at startup

    def _open(self):
        if self._fanout is None:
            self._fanout = FanoutCache(self._directory, shards=self._shards, timeout=self._timeout,
                                       **self._settings)
        return self._fanout

    @property
    def directory(self):
        """The cache's directory (LOCATION)."""
        return self._directory

    # -- keys -----------------------------------------------------------------------------------

    def validate_key(self, key):
        """BaseCache's check (a CacheKeyWarning for a key memcached would refuse), with the common
        case, a key that passes, decided without building BaseCache's generator of warnings."""
        if len(key) <= MEMCACHE_MAX_KEY_LENGTH and _MEMCACHED_BAD_CHARS.search(key) is None:
            return
        super().validate_key(key)

    # -- timeouts -------------------------------------------------------------------------------

    def get_backend_timeout(self, timeout=DEFAULT_TIMEOUT):
        """Seconds until expiry for the Cache: None for ever, 0 (not stored) for 0 or less."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        return max(0, timeout)

    # -- Django's API ---------------------------------------------------------------------------

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, read=False, tag=None, retry=True):
        """Store value only if key is missing; True if it was missing. With a timeout of 0 or less
        nothing is stored (the answer still says whether key was missing)."""
        key = self.make_and_validate_key(key, version=version)
        expire = self.get_backend_timeout(timeout)
        cache = self._open()
        if expire == 0:
            return key not in cache
        return cache.add(key, value, expire=expire, read=read, tag=tag, retry=retry)

    def get(self, key, default=None, version=None, read=False, expire_time=False, tag=False, retry=False):
        """key's value, or default."""
        key = self.make_and_validate_key(key, version=version)
        return self._open().get(key, default=default, read=read, expire_time=expire_time, tag=tag, retry=retry)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, read=False, tag=None, retry=True):
        """Store value under key; a timeout of 0 or less removes key instead. True if stored."""
        key = self.make_and_validate_key(key, version=version)
        expire = self.get_backend_timeout(timeout)
        cache = self._open()
        if expire == 0:
            cache.delete(key, retry=retry)
            return False
        return cache.set(key, value, expire=expire, read=read, tag=tag, retry=retry)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None, retry=True):
        """Give key a new timeout; True if key was there. A timeout of 0 or less removes it."""
        key = self.make_and_validate_key(key, version=version)
        expire = self.get_backend_timeout(timeout)
        cache = self._open()
        if expire == 0:
            return cache.delete(key, retry=retry)
        return cache.touch(key, expire=expire, retry=retry)

    def delete(self, key, version=None, retry=True):
        """Remove key; True if it was there."""
        key = self.make_and_validate_key(key, version=version)
        return self._open().delete(key, retry=retry)

    def get_many(self, keys, version=None):
        """{key: value} for the keys that are there (as the caller spelled them)."""
        cache = self._open()
        found = {}
        for key in keys:
            value = cache.get(self.make_and_validate_key(key, version=version), default=_MISSING)
            if value is not _MISSING:
                found[key] = value
        return found

    def has_key(self, key, version=None):
        """Whether key is there and not expired."""
        key = self.make_and_validate_key(key, version=version)
        return key in self._open()

    def incr(self, key, delta=1, version=None):
        """Add delta to key's number and return it (atomic); ValueError if key is missing."""
        made = self.make_and_validate_key(key, version=version)
        try:
            return self._open().incr(made, delta, default=None, retry=True)
        except KeyError:
            raise ValueError(f"Key '{key}' not found") from None

    def decr(self, key, delta=1, version=None):
        """Subtract delta from key's number and return it (atomic); ValueError if key is missing."""
        return self.incr(key, -delta, version=version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None, retry=True):
        """set() every pair of data; the keys that could not be stored (always [] here, as a store
        that fails raises)."""
        not_storing = self.get_backend_timeout(timeout) == 0
        failed = []
        for key, value in data.items():
            if not self.set(key, value, timeout, version=version, retry=retry) and not not_storing:
                failed.append(key)
        return failed

    def delete_many(self, keys, version=None, retry=True):
        """delete() every key."""
        for key in keys:
            self.delete(key, version=version, retry=retry)

    def clear(self, retry=True):
        """Remove everything from the cache (every key prefix and version)."""
        return self._open().clear(retry=retry)

    def close(self, **kwargs):
        """Django calls this at the end of each request. Persistent (the default): keep the shards
        open. Otherwise close the shards; the next call reopens them."""
        if self._fanout is None or self._persistent:
            return
        fanout, self._fanout = self._fanout, None
        fanout.close()

    # -- diskcache's DjangoCache extras ---------------------------------------------------------

    def pop(self, key, default=None, version=None, expire_time=False, tag=False, retry=True):
        """Remove key and return its value, or default."""
        key = self.make_and_validate_key(key, version=version)
        return self._open().pop(key, default=default, expire_time=expire_time, tag=tag, retry=retry)

    def read(self, key, version=None):
        """A binary file opened on key's value (KeyError if missing)."""
        key = self.make_and_validate_key(key, version=version)
        return self._open().read(key)

    def expire(self, retry=False):
        """Remove expired items; how many."""
        return self._open().expire(retry=retry)

    def evict(self, tag, retry=False):
        """Remove the items tagged `tag`; how many."""
        return self._open().evict(tag, retry=retry)

    def cull(self, retry=False):
        """Remove items until the cache is under size_limit; how many."""
        return self._open().cull(retry=retry)

    def stats(self, enable=True, reset=False):
        """(hits, misses) of the shards."""
        return self._open().stats(enable=enable, reset=reset)

    def volume(self):
        """The cache's estimated size on disk, in bytes."""
        return self._open().volume()

    def create_tag_index(self):
        self._open().create_tag_index()

    def drop_tag_index(self):
        self._open().drop_tag_index()

    def cache(self, name):
        """The Cache in subdirectory cache/<name>."""
        return self._open().cache(name)

    def deque(self, name, maxlen=None):
        """The Deque in subdirectory deque/<name>."""
        return self._open().deque(name, maxlen=maxlen)

    def index(self, name):
        """The Index in subdirectory index/<name>."""
        return self._open().index(name)

    def memoize(self, name=None, timeout=DEFAULT_TIMEOUT, typed=False, tag=None, ignore=()):
        """FanoutCache.memoize with a Django timeout; the keys are the memoize keys as they are
        (not passed through make_key, as in diskcache's DjangoCache)."""
        return self._open().memoize(name=name, typed=typed, expire=self.get_backend_timeout(timeout), tag=tag,
                                    ignore=ignore)

    def __repr__(self):
        return f"KvdbCache({self._directory!r})"
