"""Many tasks on one database at once: puts and gets from hundreds of tasks, scans interleaved
with writes, transactions that conflict and retry to exact counters, and proof that the event
loop keeps running while the worker thread does long work (a big scan, a backup)."""
import asyncio
import itertools
import random
import time

import pytest

import kvdb
import kvdb.aio
from tests.aio.aioutil import fill, key, run


def test_hundreds_of_tasks_put_and_get(db_path, engine):
    tasks, per_task = 50, 20

    async def writer(db, t):
        for i in range(per_task):
            await db.put(b"t%03d-%03d" % (t, i), b"%d" % (t * i))
            if i % 3 == 0:
                await asyncio.sleep(0)

    async def reader(db, t):
        seen = 0
        for i in range(per_task):
            v = await db.get(b"t%03d-%03d" % (t, i))
            assert v is None or v == b"%d" % (t * i)
            seen += v is not None
        return seen

    async def main():
        async with kvdb.aio.open(db_path, engine=engine, sync="normal") as db:
            results = await asyncio.gather(*(writer(db, t) for t in range(tasks)),
                                           *(reader(db, t) for t in range(tasks)))
            assert all(r is None for r in results[:tasks])
            assert await db.count() == tasks * per_task
            gets = await asyncio.gather(*(db.get(b"t%03d-%03d" % (t, i)) for t in range(tasks)
                                          for i in range(per_task)))
            assert gets == [b"%d" % (t * i) for t in range(tasks) for i in range(per_task)]
    run(main())


def test_scans_interleaved_with_writes_each_see_one_version(db_path):
    async def scanner(db, results):
        # each scan sees one snapshot: every key of a round has the same value
        for _ in range(5):
            rows = [kv async for kv in db.scan(prefix=b"r", batch_size=7)]
            assert len(rows) == 200
            assert len({v for _, v in rows}) == 1, "a scan mixed two versions"
            results.append(rows[0][1])

    async def rewriter(db):
        for round_ in range(1, 11):
            async with db.transaction() as tx:
                for i in range(200):
                    await tx.put(key(i, b"r"), b"%d" % round_)
            await asyncio.sleep(0)

    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            await fill(db, 200, prefix=b"r", value=b"0")
            results = []
            await asyncio.gather(rewriter(db), *(scanner(db, results) for _ in range(4)))
            assert len(results) == 20
            assert (await db.stats())["snapshots"] == 0
    run(main())


async def increment(db, counters, name, retries):
    """Add 1 to counter `name` and to the total, in one transaction, retried on conflict after a
    random pause that grows with each attempt (every task writes the total: without backing
    off, each commit makes all the others conflict again)."""
    for attempt in itertools.count():
        try:
            async with db.transaction() as tx:
                for k in (name, b"total"):
                    n = int(await tx.get(k, b"0"))
                    await asyncio.sleep(0)          # let other tasks' transactions interleave
                    await tx.put(k, b"%d" % (n + 1))
            counters[name] = counters.get(name, 0) + 1
            return
        except kvdb.ConflictError:
            retries.append(name)
            await asyncio.sleep(random.random() * 0.0002 * 2 ** min(attempt, 6))


def test_conflicting_transactions_retry_to_exact_counters(db_path, engine):
    async def main():
        async with kvdb.aio.open(db_path, engine=engine, sync="off") as db:
            counters, retries = {}, []
            names = [b"c%d" % (i % 5) for i in range(200)]
            await asyncio.gather(*(increment(db, counters, n, retries) for n in names))
            assert retries, "no transaction conflicted: the test did not interleave them"
            assert int(await db.get(b"total")) == 200
            for n in set(names):
                assert int(await db.get(n)) == counters[n] == names.count(n)
            stats = await db.stats()
            assert stats["conflicts"] == len(retries) and stats["snapshots"] == 0
    run(main())


def test_transaction_scan_and_rollback(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            await fill(db, 50)
            async with db.transaction() as tx:
                await tx.put(key(100), b"new")
                assert await tx.delete(key(0)) is True
                await tx.discard(key(1))
                assert await tx.contains(key(100)) and not await tx.contains(key(0))
                rows = [kv async for kv in tx.scan(batch_size=5)]
                assert [k for k, _ in rows] == [key(i) for i in range(2, 50)] + [key(100)]
                assert [k async for k, _ in tx.scan(reverse=True, start=key(45))] == \
                    [key(100)] + [key(i) for i in range(49, 44, -1)]
            assert await db.get(key(100)) == b"new" and await db.count() == 49
            try:
                async with db.transaction() as tx:
                    await tx.put(b"gone", b"x")
                    raise LookupError("abandon")
            except LookupError:
                pass
            assert await db.get(b"gone") is None
            async with db.transaction() as tx:                # explicit commit inside the block
                await tx.put(b"early", b"x")
                await tx.commit()
                with_closed = tx.get(b"early")
                try:
                    await with_closed
                except kvdb.ClosedError:
                    pass
                else:
                    raise AssertionError("a committed transaction still answered")
            assert await db.get(b"early") == b"x"
            with pytest.raises(kvdb.ClosedError):
                await tx.put(b"after", b"x")            # the block ended it
            with pytest.raises(kvdb.ClosedError):
                tx.scan()
            tx = db.transaction()                       # begun by hand and dropped: rolled back
            await tx.__aenter__()
            await tx.put(b"dropped", b"x")
            assert (await db.stats())["snapshots"] == 1
            del tx
            assert (await db.stats())["snapshots"] == 0
            assert await db.get(b"dropped") is None
    run(main())


async def ticking(stop, ticks):
    """Append the loop time every millisecond until `stop` is set."""
    while not stop.is_set():
        ticks.append(time.perf_counter())
        await asyncio.sleep(0.001)


def max_gap(ticks):
    return max((b - a for a, b in zip(ticks, ticks[1:])), default=float("inf"))


def test_the_loop_runs_while_the_worker_scans_and_backs_up(db_path, tmp_path):
    n = 100_000

    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            await fill(db, n, value=b"x" * 100)
            stop, ticks = asyncio.Event(), []
            ticker = asyncio.ensure_future(ticking(stop, ticks))
            await asyncio.sleep(0.01)

            started = time.perf_counter()
            await db.backup(str(tmp_path / "copy"))     # one long call on the worker
            backup_time = time.perf_counter() - started
            during_backup = [t for t in ticks if t >= started]

            started = time.perf_counter()
            count = 0
            async for _ in db.scan():
                count += 1
            scan_time = time.perf_counter() - started
            during_scan = [t for t in ticks if t >= started]

            stop.set()
            await ticker
            assert count == n
            # a blocked loop would tick once per call; a free one about every millisecond
            # (a loose bound: other processes share the machine's cores)
            assert len(during_backup) >= min(5, backup_time / 0.004), (len(during_backup), backup_time)
            assert len(during_scan) >= 5, (len(during_scan), scan_time)
            assert max_gap(during_backup) < max(0.25, backup_time / 4)
            return backup_time, scan_time
    run(main())
