"""sqlite3 (stdlib): WAL, WITHOUT ROWID table, autocommit per single put."""
import os
import sqlite3

from .base import Adapter

PUT = "INSERT OR REPLACE INTO kv(k, v) VALUES (?, ?)"
GET = "SELECT v FROM kv WHERE k = ?"
DEL = "DELETE FROM kv WHERE k = ?"
SCAN = "SELECT k, v FROM kv ORDER BY k"
SEEK = "SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?"


class SqliteAdapter(Adapter):
    name = "sqlite3"

    def __init__(self, path, sync=False, cache_bytes=256 << 20):
        os.makedirs(path, exist_ok=True)
        # isolation_level=None: autocommit, so each single statement is its own transaction.
        con = sqlite3.connect(os.path.join(path, "kv.sqlite"), isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=" + ("FULL" if sync else "OFF"))
        if cache_bytes:
            con.execute(f"PRAGMA cache_size=-{max(1, cache_bytes >> 10)}")  # negative: KiB
        con.execute("CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
        self.con = con
        execute = con.execute

        def put(k, v):
            execute(PUT, (k, v))

        def get(k):
            row = execute(GET, (k,)).fetchone()
            return None if row is None else row[0]

        def delete(k):
            execute(DEL, (k,))

        self.put, self.get, self.delete = put, get, delete

    def write_batch(self, pairs):
        execute = self.con.execute
        execute("BEGIN")
        try:
            for k, v in pairs:
                execute(PUT, (k, v))
        except BaseException:
            execute("ROLLBACK")
            raise
        execute("COMMIT")

    def scan_all(self):
        n = 0
        for _k, _v in self.con.execute(SCAN):
            n += 1
        return n

    def seek_next(self, key, n):
        return len(self.con.execute(SEEK, (key, n)).fetchall())

    def close(self):
        self.con.close()

    @staticmethod
    def version():
        return f"sqlite {sqlite3.sqlite_version}"


ADAPTER = SqliteAdapter
