"""Cancelling tasks that wait on kvdb.aio: a call the worker has not started is skipped, one it
started runs to its end; commit, rollback and close always finish; the worker thread is never
left stuck, and no transaction or snapshot is left pinned."""
import asyncio
import random
import threading

import pytest

import kvdb
import kvdb.aio
from tests.aio.aioutil import key, run, worker_threads


class Blocker:
    """Holds the worker thread inside a call until release(), so the calls queued behind it
    have certainly not started."""

    def __init__(self):
        self.started = threading.Event()    # the worker is inside the call
        self.gate = threading.Event()       # set: the call returns

    def __call__(self, sync_db):
        self.started.set()
        assert self.gate.wait(10), "the test never released the worker"

    async def hold(self, db):
        task = asyncio.ensure_future(db.run(self))
        while not self.started.is_set():
            await asyncio.sleep(0.001)
        return task

    def release(self):
        self.gate.set()


async def cancelled(task):
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def snapshots(db):
    return (await db.stats())["snapshots"]


def test_a_call_not_yet_started_is_skipped(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            blocker = Blocker()
            held = await blocker.hold(db)
            put = asyncio.ensure_future(db.put(b"skipped", b"v"))
            await asyncio.sleep(0.01)
            await cancelled(put)
            blocker.release()
            await held
            assert await db.get(b"skipped") is None
    run(main())


def test_a_started_call_runs_to_its_end(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            started, gate = threading.Event(), threading.Event()

            def put_after_gate(sync_db):
                started.set()
                gate.wait(10)
                sync_db.put(b"started", b"v")
                return "done"
            task = asyncio.ensure_future(db.run(put_after_gate))
            while not started.is_set():
                await asyncio.sleep(0.001)
            await cancelled(task)
            gate.set()
            assert await db.get(b"started") == b"v"      # queued after it: it finished first
    run(main())


def test_many_cancelled_puts_leave_a_consistent_database(db_path, engine):
    async def main():
        rng = random.Random(16)
        async with kvdb.aio.open(db_path, engine=engine, sync="off") as db:
            tasks = [asyncio.ensure_future(db.put(key(i), b"v%d" % i)) for i in range(400)]
            await asyncio.sleep(0)
            victims = set(rng.sample(range(400), 200))
            for i in victims:
                tasks[i].cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            present = {k for k, _ in [kv async for kv in db.scan()]}
            for i, r in enumerate(results):
                if i not in victims:
                    assert r is None and key(i) in present
                elif not isinstance(r, asyncio.CancelledError):
                    assert key(i) in present        # it completed before the cancel came
            assert len(present) == await db.count()
            assert await db.verify()
    run(main())


def test_cancelled_inside_a_transaction_rolls_back(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            gate = asyncio.Event()

            async def body():
                async with db.transaction() as tx:
                    await tx.put(b"a", b"1")
                    await gate.wait()                   # cancelled here
                    await tx.put(b"b", b"2")
            task = asyncio.ensure_future(body())
            while await snapshots(db) == 0:
                await asyncio.sleep(0.001)
            await cancelled(task)
            assert await db.get(b"a") is None and await snapshots(db) == 0
    run(main())


def test_cancelled_while_committing_the_commit_completes(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            blocker = Blocker()
            reached_end = asyncio.Event()

            async def body():
                async with db.transaction() as tx:
                    await tx.put(b"a", b"1")
                    held.append(await blocker.hold(db))
                    reached_end.set()
            held = []
            task = asyncio.ensure_future(body())
            await reached_end.wait()
            await asyncio.sleep(0.01)                   # the commit is queued behind the blocker
            await cancelled(task)
            blocker.release()
            await held[0]
            assert await db.get(b"a") == b"1" and await snapshots(db) == 0
    run(main())


def test_cancelled_before_the_transaction_began(db_path):
    async def main():
        async with kvdb.aio.open(db_path, sync="off") as db:
            for delay in (None, 0.0):
                blocker = Blocker()
                held = await blocker.hold(db)

                async def body():
                    async with db.transaction() as tx:
                        await tx.put(b"never", b"x")
                task = asyncio.ensure_future(body())
                await asyncio.sleep(0.01)
                if delay is None:
                    await cancelled(task)               # its begin is queued, not started
                    blocker.release()
                else:
                    blocker.release()                   # its begin may have started
                    await asyncio.sleep(delay)
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                await held
                assert await snapshots(db) == 0
            assert await db.get(b"never") in (None, b"x")
    run(main())


def test_cancelled_close_still_closes(db_path):
    async def main():
        db = await kvdb.aio.open(db_path, sync="off")
        blocker = Blocker()
        held = await blocker.hold(db)
        put = asyncio.ensure_future(db.put(b"k", b"v"))
        closing = asyncio.ensure_future(db.close())
        await asyncio.sleep(0.01)
        await cancelled(closing)
        with pytest.raises(kvdb.ClosedError):
            await db.get(b"k")
        blocker.release()
        await held
        await put                                       # queued before close: it ran
        db._worker.thread.join(10)
        assert not db._worker.thread.is_alive()
        await db.close()                                # idempotent after a cancelled close
    run(main())
    with kvdb.open(db_path, _exclusive=True) as db:     # nothing else holds it open
        assert db.get(b"k") == b"v"


def test_cancelled_open_leaves_nothing_open(db_path):
    async def main():
        for delay in (0, 0.0005, 0.002, 0.01):
            task = asyncio.ensure_future(kvdb.aio.open(db_path, sync="off"))
            await asyncio.sleep(delay)
            task.cancel()
            done = await asyncio.gather(task, return_exceptions=True)
            if isinstance(done[0], kvdb.aio.Database):
                await done[0].close()                   # it finished before the cancel
            for t in worker_threads():                  # the worker ends once it closed what it opened
                t.join(10)
                assert not t.is_alive()
    run(main())
    with kvdb.open(db_path, _exclusive=True):           # nothing else holds it open
        pass


def test_random_cancellations_never_half_commit_a_transfer(db_path, engine):
    accounts = [b"acct%02d" % i for i in range(8)]

    async def transfer(db, rng):
        a, b = rng.sample(accounts, 2)
        while True:
            try:
                async with db.transaction() as tx:
                    x, y = int(await tx.get(a)), int(await tx.get(b))
                    await tx.put(a, b"%d" % (x - 1))
                    await asyncio.sleep(0)
                    await tx.put(b, b"%d" % (y + 1))
                return
            except kvdb.ConflictError:
                await asyncio.sleep(0)

    async def reader(db):
        while True:                                     # every snapshot sums to the total
            assert sum(int(v) async for _, v in db.scan(prefix=b"acct", batch_size=3)) == 800
            await asyncio.sleep(0)

    async def main():
        rng = random.Random(42)
        async with kvdb.aio.open(db_path, engine=engine, sync="off") as db:
            await db.run(lambda d: [d.put(a, b"100") for a in accounts])
            readers = [asyncio.ensure_future(reader(db)) for _ in range(3)]
            tasks = [asyncio.ensure_future(transfer(db, random.Random(i))) for i in range(300)]
            for _ in range(40):                         # cancel tasks at random points of their work
                await asyncio.sleep(rng.random() * 0.002)
                rng.choice(tasks).cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for r in readers:
                r.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)
            assert any(isinstance(r, asyncio.CancelledError) for r in results), "no cancel hit a running task"
            values = [int(await db.get(a)) for a in accounts]
            assert sum(values) == 800
            assert (await db.stats())["snapshots"] == 0
            assert await db.verify()
    run(main())
