"""kvdb: kvdb.open(path, engine=..., sync="off"|"full", cache_size=...); fsyncs from db.stats().

The engine name "kvdb-btree" opens engine="btree", "kvdb-lsm" engine="lsm" (with its default
key_count="exact": each overwrite or delete looks the key up to keep len() O(1)), and
"kvdb-lsm-scan" engine="lsm" with key_count="scan" (blind writes, as RocksDB's).
db.put/get/discard are called directly (each put is its own commit); batches
are db.put_many(pairs), one commit straight from the pairs; scans use db.scan(start=...). The delete is
db.discard, which like LevelDB's and RocksDB's Delete does not report whether the
key existed (db.delete does, at the price of a read on the LSM engine).
"""
import itertools
import os
import subprocess

import kvdb

from .base import Adapter


class KvdbAdapter(Adapter):
    name = "kvdb"
    engine = "btree"
    options = {}                     # further kvdb.open keywords of this variant
    threads = True

    def __init__(self, path, sync=False, cache_bytes=256 << 20):
        cache = {"cache_size": cache_bytes} if cache_bytes else {}
        self.db = db = kvdb.open(path, engine=self.engine, sync="full" if sync else "off", **cache, **self.options)
        self.put, self.get, self.delete = db.put, db.get, db.discard

    def write_batch(self, pairs):
        self.db.put_many(pairs)

    def scan_all(self):
        n = 0
        for _k, _v in self.db.scan():
            n += 1
        return n

    def seek_next(self, key, n):
        it = self.db.scan(start=key)
        try:
            return sum(1 for _ in itertools.islice(it, n))
        finally:
            close = getattr(it, "close", None)  # release the iterator now, not at gc
            if close is not None:
                close()

    def fsyncs(self):
        """db.stats()["fsyncs"]: fsyncs of the log (the ones commits wait for)."""
        stats = getattr(self.db, "stats", None)
        return stats().get("fsyncs") if stats else None

    def close(self):
        self.db.close()

    @staticmethod
    def version():
        ver = getattr(kvdb, "__version__", "dev")
        src = os.path.dirname(os.path.dirname(os.path.abspath(kvdb.__file__)))
        try:
            rev = subprocess.run(
                ["git", "-C", src, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            rev = ""
        return f"kvdb {ver}" + (f" (git {rev}, {src})" if rev else f" ({src})")


VARIANTS = {"lsm-scan": ("lsm", {"key_count": "scan"})}    # name -> (engine, kvdb.open keywords)


def make(engine):
    """The adapter class for kvdb engine `engine` ("btree", "lsm", or a VARIANTS name)."""
    if not callable(getattr(kvdb, "open", None)):
        where = getattr(kvdb, "__file__", None) or ", ".join(getattr(kvdb, "__path__", [])) or "?"
        raise ImportError(f"kvdb (from {where}) has no kvdb.open() yet; build it with "
                          f"`python setup.py build_ext --inplace` in the repository")
    base, options = VARIANTS.get(engine, (engine, {}))
    return type(f"KvdbAdapter_{engine.replace('-', '_')}", (KvdbAdapter,),
                {"engine": base, "options": options, "name": f"kvdb-{engine}"})
