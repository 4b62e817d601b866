"""kvdb.aio's calls do what the synchronous ones do, on both engines: opening (awaited and as
`async with`), keys, TTL, maintenance, snapshots, errors that reach the task unchanged, and
ClosedError after close."""
import asyncio
import os

import pytest

import kvdb
import kvdb.aio
from tests.aio.aioutil import fill, key, run, worker_threads


def test_open_awaited_and_every_key_call(db_path, engine):
    async def main():
        db = await kvdb.aio.open(db_path, engine=engine, sync="off")
        assert isinstance(db, kvdb.aio.Database) and db.engine == engine and db.path == os.path.abspath(db_path)
        assert await db.get(b"a") is None and await db.get(b"a", b"d") == b"d"
        await db.put(b"a", b"1")
        await db.put(b"b", b"2", ttl=100)
        assert await db.get(b"a") == b"1"
        assert await db.contains(b"a") and not await db.contains(b"zz")
        assert await db.count() == 2
        assert await db.ttl(b"a") is None
        assert 99 < await db.ttl(b"b") <= 100
        assert await db.persist(b"b") and await db.ttl(b"b") is None
        assert await db.delete(b"a") is True and await db.delete(b"a") is False
        await db.discard(b"b")
        await db.discard(b"b")
        assert await db.count() == 0
        await db.close()
        assert not db._worker.thread.is_alive()
    run(main())


def test_async_with_open_closes_and_data_persists(db_path, engine):
    async def main():
        async with kvdb.aio.open(db_path, engine=engine) as db:
            await db.put(b"k", b"v")
            worker = db._worker.thread
            assert worker.is_alive()
        assert not worker.is_alive()
        with pytest.raises(kvdb.ClosedError):
            await db.get(b"k")
        async with await kvdb.aio.open(db_path) as db:      # the Database is an async context manager too
            assert await db.get(b"k") == b"v"
    run(main())
    with kvdb.open(db_path) as db:
        assert db.get(b"k") == b"v"


def test_maintenance_calls(db_path, engine, tmp_path):
    async def main():
        async with kvdb.aio.open(db_path, engine=engine, sync="off") as db:
            await fill(db, 500)
            stats = await db.stats()
            assert stats["engine"] == engine and stats["snapshots"] == 0
            await db.checkpoint()
            assert await db.verify()
            await db.compact()
            await db.backup(str(tmp_path / "copy"))
            assert sorted(await db.list_collections()) == []
            assert await db.run(lambda sync_db, n: len(sync_db) + n, 1) == 501
        async with kvdb.aio.open(str(tmp_path / "copy")) as copy:
            assert await copy.count() == 500 and await copy.get(key(499)) == b"v"
    run(main())


def test_snapshot_reads_one_version(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            await db.put(b"a", b"1", ttl=50)
            async with db.snapshot() as snap:
                await db.put(b"a", b"2")
                await db.put(b"b", b"2")
                assert await snap.get(b"a") == b"1" and not await snap.contains(b"b")
                assert await snap.count() == 1 and 49 < await snap.ttl(b"a") <= 50
                assert [kv async for kv in snap.scan()] == [(b"a", b"1")]
                assert (await db.stats())["snapshots"] == 1
            assert (await db.stats())["snapshots"] == 0
            with pytest.raises(kvdb.ClosedError):
                await snap.get(b"a")
    run(main())


def test_errors_reach_the_task_unchanged(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            with pytest.raises(TypeError, match="bytes"):
                await db.put("not bytes", b"v")
            with pytest.raises(KeyError):
                await db.ttl(b"absent")
            with pytest.raises(ValueError):
                await db.put(b"k", b"v", ttl=-1)
            with pytest.raises(TypeError):
                [kv async for kv in db.scan(start=5)]
            with pytest.raises(ValueError, match="batch_size"):
                db.scan(batch_size=0)
            with pytest.raises(ZeroDivisionError):
                await db.run(lambda sync_db: 1 / 0)
            assert await db.count() == 0        # nothing changed, and the thread goes on
            await db.put(b"k", b"v")
            assert await db.get(b"k") == b"v"
    run(main())


def test_open_errors_propagate_and_leave_no_thread(tmp_path):
    before = len(worker_threads())

    async def main():
        with pytest.raises(FileNotFoundError):
            await kvdb.aio.open(str(tmp_path / "missing"), readonly=True)
        with pytest.raises(TypeError, match="unexpected keyword"):
            await kvdb.aio.open(str(tmp_path / "db"), no_such_option=1)
        with pytest.raises(ValueError):
            async with kvdb.aio.open(str(tmp_path / "db"), sync="sometimes"):
                pass
    run(main())
    for t in worker_threads():
        t.join(timeout=5)
    assert len(worker_threads()) == before
    assert not os.path.exists(tmp_path / "db")


def test_readonly_open_refuses_writes(db_path):
    async def main():
        async with kvdb.aio.open(db_path) as db:
            await db.put(b"k", b"v")
        async with kvdb.aio.open(db_path, readonly=True) as ro:
            assert ro.readonly and await ro.get(b"k") == b"v"
            with pytest.raises(kvdb.ReadOnlyError):
                await ro.put(b"k", b"w")
            with pytest.raises(kvdb.ReadOnlyError):
                async with ro.transaction():
                    pass
    run(main())


def test_every_call_after_close_raises_closed_error(db_path):
    async def main():
        db = await kvdb.aio.open(db_path, sync="off")
        coll = db.collection("c")
        await db.close()
        await db.close()                    # idempotent
        calls = [db.get(b"k"), db.put(b"k", b"v"), db.delete(b"k"), db.discard(b"k"), db.ttl(b"k"),
                 db.persist(b"k"), db.stats(), db.checkpoint(), db.verify(), db.backup(db_path + "-b"),
                 db.count(), db.contains(b"k"), db.compact(), db.list_collections(), db.run(len),
                 coll.insert_one({"a": 1}), coll.find_one({}), coll.find({}).to_list()]
        for call in calls:
            with pytest.raises(kvdb.ClosedError):
                await call
        with pytest.raises(kvdb.ClosedError):
            [kv async for kv in db.scan()]
        with pytest.raises(kvdb.ClosedError):
            async with db.transaction():
                pass
        with pytest.raises(kvdb.ClosedError):
            db.collection("c")
    run(main())


def test_close_waits_for_queued_calls(db_path):
    async def main():
        db = await kvdb.aio.open(db_path, sync="off")
        puts = [asyncio.ensure_future(db.put(key(i), b"v")) for i in range(300)]
        await asyncio.sleep(0)              # every put is queued on the thread
        await db.close()
        await asyncio.gather(*puts)         # none failed: close ran after all of them
    run(main())
    with kvdb.open(db_path) as db:
        assert len(db) == 300


def test_dropped_without_close_closes_on_the_worker(db_path):
    async def main():
        db = await kvdb.aio.open(db_path, sync="off")
        await db.put(b"k", b"v")
        thread = db._worker.thread
        del db
        thread.join(timeout=10)
        assert not thread.is_alive()
    run(main())
    with kvdb.open(db_path) as db:          # the lock was let go
        assert db.get(b"k") == b"v"


@pytest.mark.skipif(not all(hasattr(kvdb.Database, n) for n in ("put_many", "update", "pop", "setdefault", "clear")),
                    reason="the core has no put_many/update/pop/setdefault/clear yet")
def test_batch_and_mapping_calls(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            await db.put_many((key(i), b"%d" % i) for i in range(1000))   # iterated on the worker
            assert await db.count() == 1000
            await db.update({b"a": b"1"})
            await db.update([(b"b", b"2")])
            assert await db.pop(b"a") == b"1" and await db.pop(b"a", b"gone") == b"gone"
            with pytest.raises(KeyError):
                await db.pop(b"a")
            assert await db.setdefault(b"b", b"x") == b"2" and await db.setdefault(b"c", b"3") == b"3"
            await db.clear()
            assert await db.count() == 0
    run(main())
