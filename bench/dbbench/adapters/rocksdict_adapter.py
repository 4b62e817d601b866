"""rocksdict (RocksDB): raw bytes mode, WAL on, WriteBatch for batches."""
from importlib import metadata

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

from .base import Adapter


class RocksdictAdapter(Adapter):
    name = "rocksdict"

    def __init__(self, path, sync=False, cache_bytes=256 << 20):
        opts = Options(raw_mode=True)  # bytes in, bytes out (no pickling)
        opts.create_if_missing(True)
        if cache_bytes:
            table = BlockBasedOptions()
            table.set_block_cache(Cache(cache_bytes))
            opts.set_block_based_table_factory(table)
        self.db = db = Rdict(path, opts)
        wo = WriteOptions()
        wo.sync = sync  # the WAL stays on (disable_wal=False); sync only decides fsync per write
        wo.disable_wal = False
        db.set_write_options(wo)
        self.put, self.get, self.delete = db.put, db.get, db.delete

    def write_batch(self, pairs):
        wb = WriteBatch(raw_mode=True)
        put = wb.put
        for k, v in pairs:
            put(k, v)
        self.db.write(wb)

    def scan_all(self):
        n = 0
        for _k, _v in self.db.items():
            n += 1
        return n

    def seek_next(self, key, n):
        it = self.db.iter()
        it.seek(key)
        got = 0
        while got < n and it.valid():
            it.key()
            it.value()
            it.next()
            got += 1
        del it
        return got

    def close(self):
        self.db.close()

    @staticmethod
    def version():
        return f"rocksdict {metadata.version('rocksdict')}"


ADAPTER = RocksdictAdapter
