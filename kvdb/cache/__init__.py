"""The disk cache on kvdb, call for call compatible with diskcache: Cache, and FanoutCache, Deque, Index on it.

    from kvdb.cache import Cache          # was: from diskcache import Cache

docs/cache.md: usage, what differs from diskcache, durability, several processes. The key layout
in the database: docs/format/cache.md.
"""
from kvdb.cache.constants import ENOVAL, UNKNOWN, Timeout
from kvdb.cache.core import Cache
from kvdb.cache.layout import CACHE_FORMAT_VERSION
from kvdb.cache.settings import DEFAULT_SETTINGS, EVICTION_POLICY
from kvdb.cache.values import Disk

__all__ = ["Cache", "Disk", "ENOVAL", "UNKNOWN", "Timeout", "DEFAULT_SETTINGS", "EVICTION_POLICY",
           "CACHE_FORMAT_VERSION"]
