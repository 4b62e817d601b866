"""plyvel (LevelDB): put(sync=...), write_batch for batches, iterators for scans."""
import functools
import itertools

import plyvel

from .base import Adapter


class PlyvelAdapter(Adapter):
    name = "plyvel"

    def __init__(self, path, sync=False, cache_bytes=256 << 20):
        self.sync = sync
        cache = {"lru_cache_size": cache_bytes} if cache_bytes else {}
        self.db = db = plyvel.DB(path, create_if_missing=True, **cache)
        self.put = functools.partial(db.put, sync=sync)
        self.get = db.get
        self.delete = functools.partial(db.delete, sync=sync)

    def write_batch(self, pairs):
        with self.db.write_batch(sync=self.sync) as wb:
            put = wb.put
            for k, v in pairs:
                put(k, v)

    def scan_all(self):
        n = 0
        with self.db.iterator() as it:
            for _k, _v in it:
                n += 1
        return n

    def seek_next(self, key, n):
        with self.db.iterator() as it:  # a new iterator per seek, like db_bench
            it.seek(key)
            return sum(1 for _ in itertools.islice(it, n))

    def close(self):
        self.db.close()

    @staticmethod
    def version():
        return f"plyvel {plyvel.__version__}, leveldb {plyvel.__leveldb_version__}"


ADAPTER = PlyvelAdapter
