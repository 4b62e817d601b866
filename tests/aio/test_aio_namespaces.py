"""Namespaces through kvdb.aio: db.namespace(name) has the database's key calls on the worker,
isolated from other namespaces; tx.namespace(name) writes inside the transaction, so one
transaction changes several namespaces atomically; snap.namespace(name) reads its version."""
import asyncio

import pytest

import kvdb
import kvdb.aio
from tests.aio.aioutil import run

pytestmark = pytest.mark.skipif(not hasattr(kvdb.Database, "namespace"), reason="the core has no namespaces yet")


def test_namespace_calls_and_isolation(db_path, engine):
    async def main():
        async with kvdb.aio.open(db_path, engine=engine, sync="off") as db:
            users, orders = db.namespace("users"), db.namespace("orders")
            assert isinstance(users, kvdb.aio.Namespace) and users.name == "users"
            await users.put(b"a", b"1")
            await users.put(b"b", b"2", ttl=60)
            await orders.put(b"a", b"order")
            assert await users.get(b"a") == b"1" and await orders.get(b"a") == b"order"
            assert await db.get(b"a") is None
            assert await users.count() == 2 and await orders.count() == 1
            assert await users.contains(b"b") and not await orders.contains(b"b")
            assert 59 < await users.ttl(b"b") <= 60 and await users.persist(b"b")
            assert [kv async for kv in users.scan()] == [(b"a", b"1"), (b"b", b"2")]
            await users.put_many([(b"c", b"3"), (b"d", b"4")])
            assert await users.pop(b"c") == b"3" and await users.delete(b"d") and await users.count() == 2
            assert sorted(await db.namespaces()) == ["orders", "users"]
            assert await db.drop_namespace("orders")
            assert await db.namespaces() == ["users"] and await orders.count() == 0
            with pytest.raises(TypeError):
                db.namespace(3.5)                   # a bad name fails at once, as in kvdb
    run(main())


def test_one_transaction_spans_namespaces(db_path):
    async def transfer(db, amount):
        while True:
            try:
                async with db.transaction() as tx:
                    a, b = tx.namespace("a"), tx.namespace("b")
                    have = int(await a.get(b"balance"))
                    await asyncio.sleep(0)
                    await a.put(b"balance", b"%d" % (have - amount))
                    await b.put(b"balance", b"%d" % (int(await b.get(b"balance")) + amount))
                return
            except kvdb.ConflictError:
                await asyncio.sleep(0.0005)

    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            await db.namespace("a").put(b"balance", b"100")
            await db.namespace("b").put(b"balance", b"0")
            async with db.snapshot() as snap:
                await asyncio.gather(*(transfer(db, 1) for _ in range(25)))
                assert await snap.namespace("b").get(b"balance") == b"0"     # its own version
            assert await db.namespace("a").get(b"balance") == b"75"
            assert await db.namespace("b").get(b"balance") == b"25"
            try:
                async with db.transaction() as tx:
                    await tx.namespace("a").put(b"balance", b"0")
                    raise LookupError
            except LookupError:
                pass
            assert await db.namespace("a").get(b"balance") == b"75"
            with pytest.raises(kvdb.ClosedError):
                await tx.namespace("a").get(b"balance")             # the transaction ended
    run(main())
