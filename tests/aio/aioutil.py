"""Helpers for the kvdb.aio tests (not a test module): pytest-asyncio is not installed, so each
test runs its coroutine with asyncio.run, under a timeout that turns a hang into a failure."""
import asyncio
import threading

TIMEOUT = 30.0      # seconds one test's coroutine may take before it counts as hung


def run(coro, timeout=TIMEOUT):
    """asyncio.run(coro), failing with TimeoutError after `timeout` seconds, and failing if the
    loop reported an error nobody handled ("Future exception was never retrieved", ...)."""
    unhandled = []

    async def bounded():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unhandled.append(context))
        return await asyncio.wait_for(coro, timeout)
    result = asyncio.run(bounded())
    assert not unhandled, unhandled
    return result


def worker_threads():
    """The kvdb.aio worker threads alive now."""
    return [t for t in threading.enumerate() if t.name.startswith("kvdb.aio ")]


async def fill(db, n, prefix=b"k", value=b"v"):
    """n keys prefix00000000.. holding `value`, written on the worker in one trip."""
    def write(sync_db):
        for start in range(0, n, 1000):
            with sync_db.transaction() as tx:
                for i in range(start, min(n, start + 1000)):
                    tx.put(prefix + b"%08d" % i, value)
    await db.run(write)


def key(i, prefix=b"k"):
    return prefix + b"%08d" % i
