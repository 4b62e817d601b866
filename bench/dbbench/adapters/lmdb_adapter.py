"""py-lmdb: one write transaction per put, one read transaction per get."""
import itertools
import os

import lmdb

from .base import Adapter

MAP_SIZE = 1 << 36  # 64 GiB of address space; the file only grows as needed


class LmdbAdapter(Adapter):
    name = "lmdb"

    def __init__(self, path, sync=False, cache_bytes=256 << 20):
        # LMDB has no cache of its own (it reads through the OS page cache),
        # so cache_bytes is unused. writemap stays at its default (False).
        os.makedirs(path, exist_ok=True)
        self.env = env = lmdb.open(path, map_size=MAP_SIZE, sync=sync, metasync=sync)
        begin = env.begin

        def put(k, v):
            with begin(write=True) as txn:
                txn.put(k, v)

        def get(k):
            with begin() as txn:
                return txn.get(k)

        def delete(k):
            with begin(write=True) as txn:
                txn.delete(k)

        self.put, self.get, self.delete = put, get, delete

    def write_batch(self, pairs):
        with self.env.begin(write=True) as txn:
            put = txn.put
            for k, v in pairs:
                put(k, v)

    def scan_all(self):
        n = 0
        with self.env.begin() as txn:
            for _k, _v in txn.cursor():
                n += 1
        return n

    def seek_next(self, key, n):
        with self.env.begin() as txn:
            cur = txn.cursor()
            if not cur.set_range(key):
                return 0
            return sum(1 for _ in itertools.islice(cur.iternext(), n))

    def close(self):
        self.env.close()

    @staticmethod
    def version():
        return f"py-lmdb {lmdb.__version__}, liblmdb {'.'.join(map(str, lmdb.version()))}"


ADAPTER = LmdbAdapter
