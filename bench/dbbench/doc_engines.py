"""The engines of `kvdb bench documents`: one adapter per engine, all with the same operations.

Each adapter stores the same documents and answers the same operations:
    load(docs)                  insert every document (one insert_many / executemany / ...)
    by_id(i)                    the document with id number i
    eq(g)                       documents with grp == g                 (indexed field, ~0.1%)
    range(lo, hi)               documents with lo <= grp < hi           (indexed field, ~1%)
    unindexed(city)             documents with city == city             (no index: a scan, ~0.5%)
    update(lo, hi)              $inc score on lo <= grp < hi            (~1% of the documents)
    delete(lo, hi)              delete lo <= grp < hi                   (~1%)
Every read returns the decoded documents (a list), so each engine does the same work a caller
would. Indexes (two secondary ones, which every insert also writes): kvdb on grp and age; sqlite3
expression indexes on json_extract(doc, '$.grp') and '$.age'; montydb and TinyDB have no
secondary indexes.
"""
import json
import os
import sqlite3


class KvdbEngine:
    name = "kvdb"

    def __init__(self, path, sync):
        import kvdb
        self.db = kvdb.open(os.path.join(path, "kvdb"), sync=sync)
        self.coll = self.db.collection("bench")
        self.coll.create_index("grp")
        self.coll.create_index("age")
        self.ids = []

    def load(self, docs):
        self.ids = self.coll.insert_many(docs).inserted_ids

    def by_id(self, i):
        return self.coll.find_one({"_id": self.ids[i]})

    def eq(self, g):
        return list(self.coll.find({"grp": g}))

    def range(self, lo, hi):
        return list(self.coll.find({"grp": {"$gte": lo, "$lt": hi}}))

    def unindexed(self, city):
        return list(self.coll.find({"city": city}))

    def update(self, lo, hi):
        return self.coll.update_many({"grp": {"$gte": lo, "$lt": hi}}, {"$inc": {"score": 1}}).modified_count

    def delete(self, lo, hi):
        return self.coll.delete_many({"grp": {"$gte": lo, "$lt": hi}}).deleted_count

    def close(self):
        self.db.close()


class SqliteJsonEngine:
    """sqlite3 with JSON1: one table (id INTEGER PRIMARY KEY, doc TEXT), json_extract queries and an
    expression index on the queried field and one on age; WAL journal, synchronous=FULL like kvdb's sync="full"."""
    name = "sqlite3-json1"

    def __init__(self, path, sync):
        self.con = sqlite3.connect(os.path.join(path, "docs.sqlite"), isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=%s" % {"full": "FULL", "normal": "NORMAL", "off": "OFF"}[sync])
        self.con.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
        self.con.execute("CREATE INDEX docs_grp ON docs (json_extract(doc, '$.grp'))")
        self.con.execute("CREATE INDEX docs_age ON docs (json_extract(doc, '$.age'))")

    def load(self, docs):
        dumps = json.dumps
        with self.con:
            self.con.execute("BEGIN")
            self.con.executemany("INSERT INTO docs (id, doc) VALUES (?, ?)",
                                 [(i + 1, dumps(d)) for i, d in enumerate(docs)])

    def _rows(self, sql, args):
        loads = json.loads
        return [loads(r[0]) for r in self.con.execute(sql, args)]

    def by_id(self, i):
        row = self.con.execute("SELECT doc FROM docs WHERE id = ?", (i + 1,)).fetchone()
        return json.loads(row[0]) if row else None

    def eq(self, g):
        return self._rows("SELECT doc FROM docs WHERE json_extract(doc, '$.grp') = ?", (g,))

    def range(self, lo, hi):
        return self._rows("SELECT doc FROM docs WHERE json_extract(doc, '$.grp') >= ? AND "
                          "json_extract(doc, '$.grp') < ?", (lo, hi))

    def unindexed(self, city):
        return self._rows("SELECT doc FROM docs WHERE json_extract(doc, '$.city') = ?", (city,))

    def update(self, lo, hi):
        with self.con:
            self.con.execute("BEGIN")
            cur = self.con.execute("UPDATE docs SET doc = json_set(doc, '$.score', json_extract(doc, '$.score') + 1) "
                                   "WHERE json_extract(doc, '$.grp') >= ? AND json_extract(doc, '$.grp') < ?",
                                   (lo, hi))
        return cur.rowcount

    def delete(self, lo, hi):
        with self.con:
            self.con.execute("BEGIN")
            cur = self.con.execute("DELETE FROM docs WHERE json_extract(doc, '$.grp') >= ? AND "
                                   "json_extract(doc, '$.grp') < ?", (lo, hi))
        return cur.rowcount

    def close(self):
        self.con.close()


class MontyEngine:
    """montydb on its sqlite storage (no secondary indexes: montydb does not implement them)."""
    name = "montydb"

    def __init__(self, path, sync):
        from montydb import MontyClient, set_storage
        repo = os.path.join(path, "monty")
        set_storage(repository=repo, storage="sqlite")
        self.client = MontyClient(repo)
        self.coll = self.client.db.bench
        self.ids = []

    def load(self, docs):
        self.ids = self.coll.insert_many(docs).inserted_ids

    def by_id(self, i):
        return self.coll.find_one({"_id": self.ids[i]})

    def eq(self, g):
        return list(self.coll.find({"grp": g}))

    def range(self, lo, hi):
        return list(self.coll.find({"grp": {"$gte": lo, "$lt": hi}}))

    def unindexed(self, city):
        return list(self.coll.find({"city": city}))

    def update(self, lo, hi):
        return self.coll.update_many({"grp": {"$gte": lo, "$lt": hi}}, {"$inc": {"score": 1}}).modified_count

    def delete(self, lo, hi):
        return self.coll.delete_many({"grp": {"$gte": lo, "$lt": hi}}).deleted_count

    def close(self):
        self.client.close()


class TinyEngine:
    """TinyDB as it comes (its default JSONStorage: each operation reads the JSON file, each
    write rewrites it)."""
    name = "tinydb"

    def __init__(self, path, sync):
        from tinydb import Query, TinyDB
        self.db = TinyDB(os.path.join(path, "tiny.json"))
        self.table = self.db.table("bench")
        self.q = Query()

    def load(self, docs):
        self.table.insert_multiple(docs)

    def by_id(self, i):
        return self.table.get(doc_id=i + 1)

    def eq(self, g):
        return self.table.search(self.q.grp == g)

    def range(self, lo, hi):
        return self.table.search((self.q.grp >= lo) & (self.q.grp < hi))

    def unindexed(self, city):
        return self.table.search(self.q.city == city)

    def update(self, lo, hi):
        def inc(doc):
            doc["score"] += 1
        return len(self.table.update(inc, (self.q.grp >= lo) & (self.q.grp < hi)))

    def delete(self, lo, hi):
        return len(self.table.remove((self.q.grp >= lo) & (self.q.grp < hi)))

    def close(self):
        self.db.close()


ENGINES = {e.name: e for e in (KvdbEngine, SqliteJsonEngine, MontyEngine, TinyEngine)}
MODULES = {"kvdb": "kvdb", "sqlite3-json1": "sqlite3", "montydb": "montydb", "tinydb": "tinydb"}
