"""Every public call of kvdb's Python API, as a user writes it: tests/api/test_typecheck.py runs
mypy over this file with the package's stubs (kvdb/__init__.pyi) and inline annotations, so a
stub that rejects correct code (Database.__iter__ was missing once) fails the suite. It is also
run, so each call really exists."""
import asyncio
import tempfile
from collections.abc import MutableMapping
from typing import Any, Dict, List, Optional, Tuple

import kvdb
import kvdb.aio


def sync_api(path: str) -> None:
    db = kvdb.open(path, engine="btree", sync="normal", cache_size=8 << 20)
    mapping: MutableMapping[bytes, bytes] = db
    db.put(b"k", b"v")
    db.put(b"t", b"v", ttl=60)
    db[b"a"] = b"1"
    value: Optional[bytes] = db.get(b"k")
    fallback: bytes = db.get(b"zz", b"dflt")
    assert db[b"a"] == b"1" and b"a" in db and len(db) == 3 and bool(db) and value == b"v" and fallback
    seconds: Optional[float] = db.ttl(b"t")
    assert seconds is not None and db.persist(b"t")
    keys: List[bytes] = [k for k in db]
    keys = list(reversed(db))
    pairs: List[Tuple[bytes, bytes]] = list(db.items())
    values: List[bytes] = list(db.values())
    assert keys and pairs and values and b"a" in db.keys()
    with db.scan(prefix=b"a", limit=10) as it:
        for k, v in it:
            assert k.startswith(b"a") and v
    only_keys: List[bytes] = list(db.scan(keys_only=True, reverse=True))
    only_values: List[bytes] = list(db.scan(start=b"a", end=b"z", values_only=True))
    assert only_keys and only_values
    assert db.put_many([(b"b", b"2"), (b"c", b"3")]) == 2
    db.update({b"d": b"4"})
    assert db.pop(b"d") == b"4" and db.pop(b"d", None) is None
    assert db.setdefault(b"e", b"5") == b"5"
    popped: Tuple[bytes, bytes] = db.popitem()
    assert popped[0] == b"a"
    assert db.delete(b"e")
    db.discard(b"nope")
    del db[b"b"]
    with db.cursor() as c:
        if c.seek(b"c") and c.valid:
            here: Optional[bytes] = c.key
            assert here == b"c" and c.value == b"3" and c.item() == (b"c", b"3")
        c.seek_first(), c.seek_last(), c.prev(), c.next()
    with db.transaction() as tx:
        tx[b"x"] = tx.get(b"c", b"") + b"!"
        tx.namespace("users")[b"ada"] = b"1"
        assert len(tx) >= 1 and tx.seq >= 0
    with db.snapshot() as snap:
        assert snap[b"x"] == b"3!" and snap.seq is not None and len(snap) >= 1
    users = db.namespace("users", keys="str", values="json")
    users["bob"] = {"age": 3}
    age: Any = users["bob"]["age"]
    assert age == 3 and len(users) == 2 and users["ada"] == 1
    with users.transaction() as t:
        t["carol"] = [1, 2]
    names: List[Any] = db.namespaces()
    assert "users" in names and db.drop_namespace("users")
    people = db.collection("people")
    people.insert_one({"name": "ada"})
    assert db.list_collections() == ["people"] and db.drop_collection("people")
    stats: Dict[str, object] = db.stats()
    assert stats["engine"] == "btree"
    db.checkpoint()
    assert db.verify()
    db.compact()
    assert db.catch_up() >= 0
    db.close()
    with kvdb.open(path, readonly=True) as ro:
        assert ro.readonly and ro.path and ro.engine == "btree" and ro.sync
    coded = kvdb.open(path, keys="int", values="msgpack")
    coded[3] = {"n": 3}
    assert coded[3] == {"n": 3}
    coded.close()
    opts = kvdb.Options(engine="btree", cache_size=1 << 20)
    with kvdb.open(path, options=opts.replace(sync="off")) as again:
        assert isinstance(again, kvdb.Database) and isinstance(mapping, MutableMapping)


async def async_api(path: str) -> None:
    async with kvdb.aio.open(path) as db:
        await db.put(b"k", b"v")
        got: Any = await db.get(b"k")
        assert got == b"v" and await db.contains(b"k") and await db.count() >= 1
        async for k, v in db.scan(prefix=b"k"):
            assert k and v
        async with db.transaction() as tx:
            await tx.put(b"n", b"1")
        people = db.collection("people")
        await people.insert_one({"name": "ada"})
        found: List[Dict[str, Any]] = await people.find({}).to_list()
        assert found[0]["name"] == "ada"


def cache_api(path: str) -> None:
    with kvdb.Cache(path + "/cache", size_limit=1 << 20) as cache:
        cache.set("k", {"v": 1}, expire=60, tag="t")
        assert cache.get("k") == {"v": 1} and "k" in cache and cache.incr("n") == 1

        @cache.memoize(expire=10)
        def square(x: int) -> int:
            return x * x

        assert square(3) == 9 and cache.evict("t") >= 1 and cache.volume() > 0


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        sync_api(d + "/sync")
        cache_api(d)
        asyncio.run(async_api(d + "/async"))
    print("ok")


if __name__ == "__main__":
    main()
