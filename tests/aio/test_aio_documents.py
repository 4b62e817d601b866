"""Documents through kvdb.aio, Motor-style: awaited collection calls, find() cursors read with
to_list() or `async for` (one snapshot, let go when the loop ends), documents inside an async
transaction, and concurrent writers."""
import asyncio

import pytest

import kvdb
import kvdb.aio
from kvdb.documents import DuplicateKeyError, InvalidQuery
from tests.aio.aioutil import run

PEOPLE = [{"_id": i, "name": n, "age": 20 + i % 7, "tags": ["t%d" % (i % 3)]}
          for i, n in enumerate(["ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo"])]


async def snapshots(db):
    return (await db.stats())["snapshots"]


def test_collection_calls_and_cursors(db_path, engine):
    async def main():
        async with kvdb.aio.open(db_path, engine=engine, sync="off") as db:
            people = db.collection("people")
            assert people.name == "people"
            assert (await people.insert_one(dict(PEOPLE[0]))).inserted_id == 0
            assert (await people.insert_many([dict(p) for p in PEOPLE[1:]])).inserted_ids == list(range(1, 10))
            assert await people.create_index("age") == "age_1"
            assert [ix["name"] for ix in await people.list_indexes()] == ["_id_", "age_1"]
            assert await people.count_documents({}) == 10
            assert await people.estimated_document_count() == 10
            assert (await people.find_one({"name": "cy"}))["_id"] == 2
            assert (await people.find_one(3))["name"] == "dee"
            assert await people.find_one({"name": "nobody"}) is None

            got = await people.find({"age": {"$gte": 24}}, {"name": 1, "_id": 0}).sort("age", -1).limit(3).to_list()
            assert got == [{"name": "gus"}, {"name": "fay"}, {"name": "eve"}]
            assert [d["_id"] async for d in people.find({"tags": "t0"})] == [0, 3, 6, 9]
            cursor = people.find({}).sort("_id")
            assert [d["_id"] for d in await cursor.to_list(length=4)] == [0, 1, 2, 3]
            assert (await cursor.next())["_id"] == 4
            assert [d["_id"] for d in await cursor.to_list()] == [5, 6, 7, 8, 9]
            assert await cursor.to_list() == []
            assert sorted(await people.distinct("tags")) == ["t0", "t1", "t2"]
            assert (await people.find({"age": 22}).explain())["index"] == "age_1"

            assert (await people.update_one({"_id": 1}, {"$inc": {"age": 100}})).modified_count == 1
            assert (await people.update_many({"tags": "t2"}, {"$set": {"x": 1}})).modified_count == 3
            assert (await people.replace_one({"_id": 2}, {"name": "cyd"})).modified_count == 1
            assert (await people.find_one_and_update({"_id": 3}, {"$set": {"y": 2}}))["name"] == "dee"
            assert (await people.find_one_and_delete({"_id": 4}))["name"] == "eve"
            assert (await people.delete_one({"_id": 5})).deleted_count == 1
            assert (await people.delete_many({"tags": "t0"})).deleted_count == 4
            assert await people.count_documents({}) == 4
            assert await db.list_collections() == ["people"]
            await people.drop_index("age_1")
            await people.drop()
            assert await db.list_collections() == []
            assert await snapshots(db) == 0
    run(main())


def test_errors_and_early_exits(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            people = db.collection("people")
            await people.insert_many([{"_id": i, "n": i} for i in range(100)])    # more than one batch
            with pytest.raises(DuplicateKeyError):
                await people.insert_one({"_id": 0})
            with pytest.raises(InvalidQuery):
                people.find({"$nope": 1})                   # a bad filter fails at once, as in pymongo
            with pytest.raises(InvalidQuery):
                await people.count_documents({"age": {"$bad": 1}})
            with pytest.raises(ValueError):
                await people.find({}).to_list(length=-1)
            cursor = people.find({}).sort("_id")
            assert (await cursor.next())["_id"] == 0
            with pytest.raises(InvalidQuery):
                cursor.limit(2)                             # too late: iteration started
            assert await snapshots(db) > 0                  # the open cursor's snapshot
            await cursor.close()
            assert await snapshots(db) == 0
            async for doc in people.find({}):
                break
            assert await snapshots(db) == 0
            assert await people.count_documents({}) == 100  # the duplicate changed nothing
    run(main())


def test_documents_in_an_async_transaction(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            accounts = db.collection("accounts")
            await accounts.insert_many([{"_id": "a", "balance": 100}, {"_id": "b", "balance": 0}])

            async def transfer(amount):
                while True:
                    try:
                        async with db.transaction() as tx:
                            acc = tx.collection("accounts")
                            a = await acc.find_one({"_id": "a"})
                            await asyncio.sleep(0)
                            await acc.update_one({"_id": "a"}, {"$set": {"balance": a["balance"] - amount}})
                            await acc.update_one({"_id": "b"}, {"$inc": {"balance": amount}})
                            assert [d["balance"] async for d in acc.find({}).sort("_id")] == \
                                [a["balance"] - amount, (await acc.find_one("b"))["balance"]]
                        return
                    except kvdb.ConflictError:
                        await asyncio.sleep(0.0005)
            await asyncio.gather(*(transfer(1) for _ in range(30)))
            docs = await accounts.find({}).sort("_id").to_list()
            assert [d["balance"] for d in docs] == [70, 30]

            try:
                async with db.transaction() as tx:
                    await tx.collection("accounts").delete_many({})
                    raise LookupError
            except LookupError:
                pass
            assert await accounts.count_documents({}) == 2
    run(main())


def test_concurrent_document_writers(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            counters = db.collection("counters")
            await counters.create_index("group")
            await asyncio.gather(*(counters.insert_one({"_id": i, "group": i % 4, "n": 0}) for i in range(40)))
            await asyncio.gather(*(counters.update_many({"group": g}, {"$inc": {"n": 1}})
                                   for g in range(4) for _ in range(10)))
            docs = await counters.find({}).to_list()
            assert len(docs) == 40 and all(d["n"] == 10 for d in docs)
            assert await counters.count_documents({"group": 2}) == 10
    run(main())
