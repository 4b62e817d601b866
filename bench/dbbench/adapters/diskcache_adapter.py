"""diskcache (SQLite underneath): set/get/delete, transact() for batches.

diskcache has no ordered key-value scan (iteration yields keys only, and
fetching each value is a separate lookup), so readseq and seekrandom are n/a.
"""
import diskcache

from .base import Adapter


class DiskcacheAdapter(Adapter):
    name = "diskcache"
    scans = False

    def __init__(self, path, sync=False, cache_bytes=256 << 20):
        self.cache = cache = diskcache.Cache(
            path,
            eviction_policy="none",  # never cull: it is a store here, not a cache
            statistics=0,
            sqlite_synchronous=2 if sync else 0,  # FULL / OFF (its default is NORMAL)
            **({"sqlite_cache_size": max(1, cache_bytes // 4096)} if cache_bytes else {}),  # in pages
        )
        self.put, self.get = cache.set, cache.get

        def delete(k):
            cache.delete(k)

        self.delete = delete

    def write_batch(self, pairs):
        cache = self.cache
        with cache.transact():
            put = cache.set
            for k, v in pairs:
                put(k, v)

    def close(self):
        self.cache.close()

    @staticmethod
    def version():
        return f"diskcache {diskcache.__version__}"


ADAPTER = DiskcacheAdapter
