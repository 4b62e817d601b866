"""db.scan as an async iterator: the same items as the synchronous scan for every kind of
bounds and batch size, fetched in batches (not one trip to the thread per item), and the
snapshot let go when a loop ends early, is closed, or its task is cancelled."""
import asyncio

import pytest

import kvdb
import kvdb.aio
from tests.aio.aioutil import fill, key, run
from tests.helpers import model_scan


def test_scan_matches_the_model_for_bounds_and_batch_sizes(db_path, engine):
    n = 300
    model = {key(i): b"v%d" % i for i in range(n)}
    model.update({b"a%d" % i: b"a" for i in range(10)})
    cases = [dict(), dict(reverse=True), dict(start=key(17)), dict(end=key(250)),
             dict(start=key(40), end=key(41)), dict(start=key(40), end=key(40)),
             dict(prefix=b"a"), dict(prefix=b"k000001"), dict(prefix=b"zz"), dict(prefix=b"k", reverse=True)]

    async def main():
        async with kvdb.aio.open(db_path, engine=engine, sync="off") as db:
            await db.run(lambda d: [d.put(k, v) for k, v in model.items()])
            for batch_size in (1, 31, 32, 33, 64, 1024):
                for case in cases:
                    got = [kv async for kv in db.scan(**case, batch_size=batch_size)]
                    assert got == model_scan(model, **case), (case, batch_size)
            assert (await db.stats())["snapshots"] == 0
    run(main())


def test_keyword_options_pass_through_to_the_engine_scan(db_path):
    if "limit" not in (kvdb.Database.scan.__doc__ or ""):
        pytest.skip("the core's scan has no limit= yet")

    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            await fill(db, 100)
            assert [kv async for kv in db.scan(limit=3)] == [(key(i), b"v") for i in range(3)]
            assert [k async for k in db.scan(keys_only=True, start=key(98))] == [key(98), key(99)]
    run(main())


def test_items_come_in_growing_batches(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            await fill(db, 5000)
            trips = []
            real_call = db._call

            def counting_call(fn, *args, **kwargs):
                trips.append(args)
                return real_call(fn, *args, **kwargs)
            db._call = counting_call
            assert len([kv async for kv in db.scan()]) == 5000
            # 32 + 64 + ... + 512 (992), then 1024 per trip: 9 trips for 5000 items (not 5000)
            assert [a[0] for a in trips] == [32, 64, 128, 256, 512, 1024, 1024, 1024, 1024]
            trips.clear()
            assert len([kv async for kv in db.scan(batch_size=10)]) == 5000
            assert len(trips) == 501            # the last finds the end
    run(main())


async def snapshots(db):
    return (await db.stats())["snapshots"]


def test_leaving_the_loop_early_lets_the_snapshot_go(db_path, engine):
    async def main():
        async with kvdb.aio.open(db_path, engine=engine, sync="off") as db:
            await fill(db, 1000)
            for stop_at in (1, 32, 33, 500):
                async for k, _ in db.scan():
                    if k == key(stop_at - 1):
                        break
                assert await snapshots(db) == 0, stop_at

            it = db.scan()                      # held by a name: aclose() lets it go
            assert await it.__anext__() == (key(0), b"v")
            assert await snapshots(db) == 1
            await it.aclose()
            assert await snapshots(db) == 0
            with pytest.raises(StopAsyncIteration):
                await it.__anext__()

            async with db.scan(prefix=b"k") as it:     # and so does `async with`
                async for _ in it:
                    break
                assert await snapshots(db) == 1
            assert await snapshots(db) == 0

            with pytest.raises(LookupError):           # an exception in the body
                async for _ in db.scan():
                    raise LookupError
            assert await snapshots(db) == 0
    run(main())


def test_cancelled_scanning_task_lets_the_snapshot_go(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            await fill(db, 20000)
            gate = asyncio.Event()

            async def slow_consumer():
                async for _ in db.scan(batch_size=4):
                    await gate.wait()               # cancelled here, in the loop's body

            async def fast_consumer(seen):
                async for _ in db.scan(batch_size=1024):
                    seen.append(1)                  # cancelled while waiting for a batch

            slow = asyncio.ensure_future(slow_consumer())
            seen = []
            fast = asyncio.ensure_future(fast_consumer(seen))
            while len(seen) < 100:
                await asyncio.sleep(0)
            assert await snapshots(db) == 2
            slow.cancel()
            fast.cancel()
            for task in (slow, fast):
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert await snapshots(db) == 0
            assert await db.count() == 20000        # the thread is not stuck
    run(main())


def test_scan_after_close_and_scan_cut_by_close(db_path):
    async def main():
        db = await kvdb.aio.open(db_path, sync="off")
        await fill(db, 3000)
        it = db.scan()
        assert await it.__anext__() == (key(0), b"v")
        await db.close()
        rest = []
        with pytest.raises(kvdb.ClosedError):
            async for kv in it:                     # what was fetched comes, then ClosedError
                rest.append(kv)
        assert rest == [(key(i), b"v") for i in range(1, 32)]
        await it.aclose()                           # nothing left to close: no error
    run(main())


@pytest.mark.skipif(not hasattr(kvdb.Database, "cursor"), reason="the core has no cursor() yet")
def test_key_cursor_moves_both_ways_over_one_version(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            await fill(db, 10)
            async with db.cursor() as cur:
                assert not cur.valid and cur.key is None
                assert await cur.seek(key(3)) and cur.item() == (key(3), b"v")
                await db.put(key(4), b"changed")            # the cursor reads its own version
                assert await cur.next() and cur.key == key(4) and cur.value == b"v"
                assert await cur.prev() and await cur.prev() and cur.key == key(2)
                assert await cur.seek_last() and cur.key == key(9)
                assert not await cur.next() and not cur.valid
                assert await cur.seek_first() and cur.key == key(0)
                assert not await cur.seek(b"zz")
                assert await snapshots(db) == 1
            assert await snapshots(db) == 0
            with pytest.raises(kvdb.ClosedError):
                await cur.next()
            cur = db.cursor()                               # dropped: closed on the worker
            assert await cur.next()
            del cur
            assert await snapshots(db) == 0
            async with db.transaction() as tx:
                await tx.put(key(100), b"mine")
                tc = tx.cursor()
                assert await tc.seek_last() and tc.item() == (key(100), b"mine")
                await tc.close()
    run(main())
