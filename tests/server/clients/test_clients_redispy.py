"""redis-py, used as its users use it, against `kvdb serve`: Lock (Lua scripts through
EVALSHA), pipelines with and without MULTI/EXEC over lists, sets, sorted sets and hashes,
WATCH, redis.asyncio, a sorted-set leaderboard, a stream consumer group whose consumer
dies and whose pending entries another consumer claims, and BLPOP woken by another
client. Every call has a socket timeout and every thread a join timeout."""
import asyncio
import threading
import time

import pytest


redis = pytest.importorskip("redis")
from redis.exceptions import LockError, LockNotOwnedError, WatchError  # noqa: E402

JOIN = 15   # seconds a test waits for a thread it started
pytestmark = pytest.mark.timeout(60)   # pytest-timeout (the test extra): no test here hangs the run


def run_thread(fn, *args):
    """Starts fn(*args) in a daemon thread; returns (thread, box) where box['result'] or
    box['error'] holds what it returned or raised."""
    box = {}

    def body():
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # reported by the test
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, box


def wait_blocked(r, n):
    """Waits until n clients are blocked (INFO clients), so the order they blocked in is known."""
    deadline = time.monotonic() + JOIN
    while r.info("clients")["blocked_clients"] < n:
        assert time.monotonic() < deadline, f"{n} blocked clients expected"
        time.sleep(0.01)


def joined(t, box):
    t.join(JOIN)
    assert not t.is_alive(), "the thread did not finish in time"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def plain(x):
    """redis-py gives tuples in RESP2 where RESP3 gives lists (ZRANGE WITHSCORES, ...): lists."""
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    return x


def stream_entries(reply):
    """[(id, fields)] of the only stream in an XREAD/XREADGROUP reply: a list of
    [name, entries] in RESP2, a map name -> [entries] in RESP3."""
    if isinstance(reply, dict):
        [[entries]] = reply.values()       # redis-py wraps the entries in one more list
    else:
        [[_, entries]] = reply
    return [(e[0], e[1]) for e in entries]


PROTOCOLS = pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])


# -- Lock ------------------------------------------------------------------------------


def test_lock_acquire_extend_reacquire_release(target):
    r = target.client()
    lock = r.lock("resource", timeout=5)
    assert lock.acquire(blocking=False)
    assert lock.locked() and lock.owned()
    assert 0 < r.pttl("resource") <= 5000
    assert lock.extend(10)                      # adds 10 s to the remaining TTL (Lua)
    assert 10_000 < r.pttl("resource") <= 15_000
    assert lock.extend(3, replace_ttl=True)     # sets the TTL to 3 s
    assert 0 < r.pttl("resource") <= 3000
    assert lock.reacquire()                     # back to the lock's timeout, 5 s
    assert 3000 < r.pttl("resource") <= 5000
    lock.release()                              # Lua: delete only if the token is ours
    assert not lock.locked() and r.exists("resource") == 0
    with pytest.raises(LockError):
        lock.release()                          # not acquired any more (client-side check)


def test_lock_as_context_manager_and_script_cache_flush(target):
    r = target.client()
    with r.lock("cm", timeout=5, blocking_timeout=2) as lock:
        assert lock.owned()
    assert r.exists("cm") == 0
    r.script_flush()        # redis-py then gets NOSCRIPT from EVALSHA and falls back to EVAL
    with r.lock("cm", timeout=5, blocking_timeout=2):
        assert r.exists("cm") == 1
    assert r.exists("cm") == 0


def test_lock_release_by_non_owner_and_after_expiry(target):
    a, b = target.client(), target.client()
    la = a.lock("shared", timeout=0.3)
    assert la.acquire(blocking=False)
    lb = b.lock("shared", timeout=5)
    assert not lb.acquire(blocking=False)
    time.sleep(0.5)                             # la's TTL runs out
    assert lb.acquire(blocking=False)
    assert lb.owned() and not la.owned()
    with pytest.raises(LockNotOwnedError):
        la.extend(5)                            # the key holds b's token: not extended
    with pytest.raises(LockNotOwnedError):
        la.reacquire()
    with pytest.raises(LockNotOwnedError):
        la.release()                            # and not deleted
    assert 4000 < a.pttl("shared") <= 5000
    lb.release()
    assert a.exists("shared") == 0


def test_lock_contention_blocking_acquire(target):
    a, b = target.client(), target.client()
    held = a.lock("contended", timeout=10)
    assert held.acquire(blocking=False)
    # thread_local=False: the token taken in the thread below is seen from this one
    waiter = b.lock("contended", timeout=10, sleep=0.02, thread_local=False)
    t0 = time.monotonic()
    assert not waiter.acquire(blocking=True, blocking_timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < 3

    t, box = run_thread(lambda: waiter.acquire(blocking=True, blocking_timeout=5))
    time.sleep(0.2)
    assert t.is_alive(), "the waiter got a lock that is held"
    held.release()
    assert joined(t, box) is True
    assert waiter.owned() and not held.owned()
    waiter.release()


def test_lock_mutual_exclusion_between_threads(target):
    """Threads increment a counter with GET then SET (not atomic) under the lock: no
    increment is lost only if the lock excludes."""
    r0 = target.client()
    r0.set("counter", 0)
    per_thread, threads = 15, 4

    def worker():
        r = target.client()
        for _ in range(per_thread):
            with r.lock("mutex", timeout=5, sleep=0.005, blocking_timeout=10):
                v = int(r.get("counter"))
                r.set("counter", v + 1)

    started = [run_thread(worker) for _ in range(threads)]
    for t, box in started:
        joined(t, box)
    assert int(r0.get("counter")) == per_thread * threads
    assert r0.exists("mutex") == 0


# -- pipelines -------------------------------------------------------------------------


def fill_pipeline(p):
    p.delete("q", "tags", "board", "user:1")
    p.rpush("q", "a", "b", "c")
    p.lpush("q", "z")
    p.sadd("tags", "red", "green", "blue", "red")
    p.zadd("board", {"ann": 10, "bob": 7.5, "cy": 12})
    p.hset("user:1", mapping={"name": "ann", "score": "10"})
    p.lrange("q", 0, -1)
    p.lpop("q")
    p.rpop("q", 2)
    p.llen("q")
    p.smembers("tags")
    p.sismember("tags", "green")
    p.srem("tags", "blue", "nope")
    p.scard("tags")
    p.zincrby("board", 5, "bob")
    p.zrange("board", 0, -1, withscores=True)
    p.zrevrank("board", "cy")
    p.hgetall("user:1")
    p.hincrby("user:1", "score", 2)
    p.type("q")
    p.type("tags")
    p.type("board")
    p.type("user:1")


EXPECTED = [0, 3, 4, 3, 3, 2,
            [b"z", b"a", b"b", b"c"], b"z", [b"c", b"b"], 1,
            {b"red", b"green", b"blue"}, True, 1, 2,
            12.5, [(b"ann", 10.0), (b"cy", 12.0), (b"bob", 12.5)], 1,
            {b"name": b"ann", b"score": b"10"}, 12,
            b"list", b"set", b"zset", b"hash"]


def normalize(results):
    # SISMEMBER is 1 or True depending on the redis-py version
    return [bool(x) if i == 11 else x for i, x in enumerate(results)]


@PROTOCOLS
@pytest.mark.parametrize("transaction", [True, False], ids=["multi", "plain"])
def test_pipeline_mixing_types(target, transaction, protocol):
    r = target.client(protocol=protocol)
    with r.pipeline(transaction=transaction) as p:
        fill_pipeline(p)
        got = p.execute()
    assert plain(normalize(got)) == plain(EXPECTED)
    assert r.lrange("q", 0, -1) == [b"a"]


def test_pipeline_errors_do_not_stop_the_rest(target):
    r = target.client()
    r.set("s", "x")
    with r.pipeline(transaction=False) as p:
        p.lpush("s", "v")         # WRONGTYPE
        p.sadd("set", "m")
        p.zadd("z", {"m": 1})
        p.zincrby("z", 1, "m")
        got = p.execute(raise_on_error=False)
    assert isinstance(got[0], redis.ResponseError) and str(got[0]).startswith("WRONGTYPE")
    assert got[1:] == [1, 1, 2.0]


def test_transaction_with_watch_on_a_list(target):
    r, other = target.client(), target.client()
    r.rpush("jobs", "j1", "j2")

    def move_one(pipe):                 # redis-py's transaction() helper: WATCH, read, MULTI, EXEC
        item = pipe.lindex("jobs", 0)
        pipe.multi()
        pipe.lpop("jobs")
        pipe.sadd("taken", item)

    assert r.transaction(move_one, "jobs") == [b"j1", 1]

    with r.pipeline() as p:
        p.watch("jobs")
        assert p.llen("jobs") == 1
        other.rpush("jobs", "j3")      # a change after WATCH aborts the EXEC
        p.multi()
        p.lpop("jobs")
        with pytest.raises(WatchError):
            p.execute()
    assert r.lrange("jobs", 0, -1) == [b"j2", b"j3"]
    assert r.smembers("taken") == {b"j1"}


# -- redis.asyncio ---------------------------------------------------------------------


def test_asyncio_pipelines_and_blocking(target):
    async def main():
        r = target.async_client()
        try:
            for transaction in (True, False):
                await r.delete("q", "tags", "board", "user:1")
                async with r.pipeline(transaction=transaction) as p:
                    fill_pipeline(p)
                    got = await p.execute()
                assert plain(normalize(got)) == plain(EXPECTED)

            # producers and a consumer on the same event loop: BLPOP must not block the loop
            consumer = target.async_client()
            producer = target.async_client()
            try:
                async def consume(n):
                    out = []
                    for _ in range(n):
                        key, value = await consumer.blpop(["aq"], timeout=5)
                        out.append(value)
                    return out

                async def produce(n):
                    for i in range(n):
                        await producer.rpush("aq", f"m{i}")
                        await asyncio.sleep(0.005)

                got, _ = await asyncio.wait_for(asyncio.gather(consume(20), produce(20)), 20)
                assert got == [f"m{i}".encode() for i in range(20)]
            finally:
                await consumer.aclose()
                await producer.aclose()

            # asyncio clients in parallel: ZINCRBY from 10 tasks adds up
            await r.delete("az")
            await asyncio.wait_for(asyncio.gather(*(r.zincrby("az", 1, f"m{i % 3}") for i in range(30))), 20)
            assert await r.zrange("az", 0, -1, withscores=True) == [(b"m0", 10.0), (b"m1", 10.0), (b"m2", 10.0)]

            # the asyncio Lock
            lock = r.lock("alock", timeout=5, blocking_timeout=2)
            assert await lock.acquire()
            assert await lock.extend(5)
            other = target.async_client().lock("alock", timeout=5)
            assert not await other.acquire(blocking=False)
            await lock.release()
            assert await other.acquire(blocking=False)
            await other.release()
        finally:
            await r.aclose()

    asyncio.run(asyncio.wait_for(main(), 60))


# -- a sorted-set leaderboard ----------------------------------------------------------


@PROTOCOLS
def test_leaderboard(target, protocol):
    r = target.client(protocol=protocol)
    board = "game:leaderboard"
    model = {}
    players = [f"player{i}" for i in range(40)]
    for i, p in enumerate(players):
        model[p] = float((i * 37) % 23)
    r.zadd(board, model)
    with r.pipeline(transaction=False) as pipe:   # a round of results
        for i, p in enumerate(players):
            pts = (i * 13) % 7 - 2
            pipe.zincrby(board, pts, p)
            model[p] += pts
        new_scores = pipe.execute()
    assert new_scores == [model[p] for p in players]
    r.zadd(board, {"newcomer": 3.5})
    model["newcomer"] = 3.5
    r.zadd(board, {"player0": 1000}, xx=True, gt=True)     # only if it is an improvement
    model["player0"] = max(model["player0"], 1000)
    r.zadd(board, {"player1": -1000}, xx=True, gt=True)    # not an improvement: ignored

    # Redis orders equal scores by member, so ZREVRANGE is by (score, member) descending
    ranking = sorted(model.items(), key=lambda kv: (kv[1], kv[0].encode()), reverse=True)
    top10 = r.zrevrange(board, 0, 9, withscores=True)
    assert plain(top10) == [[m.encode(), s] for m, s in ranking[:10]]
    assert r.zrevrange(board, 0, -1) == [m.encode() for m, _ in ranking]
    for rank, (member, score) in enumerate(ranking):
        assert r.zrevrank(board, member) == rank
        assert r.zscore(board, member) == score
    assert r.zrevrank(board, "nobody") is None
    assert r.zcard(board) == len(model)
    # the neighbourhood of one player, as a leaderboard page shows it
    me = r.zrevrank(board, "player7")
    page = r.zrevrange(board, max(0, me - 2), me + 2, withscores=True)
    assert plain(page) == [[m.encode(), s] for m, s in ranking[max(0, me - 2):me + 3]]
    assert r.zcount(board, 5, "+inf") == sum(1 for s in model.values() if s >= 5)


# -- a stream consumer group where a consumer dies -------------------------------------


@PROTOCOLS
def test_stream_consumer_dies_and_another_claims(target, protocol):
    admin = target.client(protocol=protocol)
    stream, group = "events", "workers"
    admin.xgroup_create(stream, group, id="0", mkstream=True)
    ids = [admin.xadd(stream, {"n": str(i)}) for i in range(10)]

    # consumer c1 reads 6 entries, handles and acks 2, then dies without acking the rest
    c1 = target.client(protocol=protocol)
    entries = stream_entries(c1.xreadgroup(group, "c1", {stream: ">"}, count=6))
    assert [e[0] for e in entries] == ids[:6]
    assert c1.xack(stream, group, ids[0], ids[1]) == 2
    c1.close()                                   # dies: ids[2:6] stay pending for c1

    summary = admin.xpending(stream, group)
    assert summary["pending"] == 4 and summary["min"] == ids[2] and summary["max"] == ids[5]
    assert summary["consumers"] == [{"name": b"c1", "pending": 4}]

    # consumer c2 takes the new entries, then claims c1's that are idle long enough
    time.sleep(1.0)
    c2 = target.client(protocol=protocol)
    fresh = stream_entries(c2.xreadgroup(group, "c2", {stream: ">"}, count=10))
    assert [e[0] for e in fresh] == ids[6:]
    assert plain(c2.xautoclaim(stream, group, "c2", min_idle_time=60_000, start_id="0-0")) == [b"0-0", [], []]
    next_id, claimed, deleted = c2.xautoclaim(stream, group, "c2", min_idle_time=800, start_id="0-0", count=3)
    assert [e[0] for e in claimed] == ids[2:5] and deleted == []
    assert [e[1] for e in claimed] == [{b"n": str(i).encode()} for i in (2, 3, 4)]
    assert next_id == ids[5]
    next_id, claimed, _ = c2.xautoclaim(stream, group, "c2", min_idle_time=800, start_id=next_id, count=3)
    # ids[6:] belong to c2 and were just delivered (idle < 800 ms): only ids[5] is claimed
    assert [e[0] for e in claimed] == [ids[5]] and next_id == b"0-0"

    detail = c2.xpending_range(stream, group, min="-", max="+", count=20)
    owners = {d["message_id"]: d["consumer"] for d in detail}
    assert owners == {i: b"c2" for i in ids[2:]}
    assert {d["message_id"]: d["times_delivered"] for d in detail if d["message_id"] in ids[2:6]} == \
        {i: 2 for i in ids[2:6]}
    assert c2.xack(stream, group, *ids[2:]) == 8
    assert c2.xack(stream, group, ids[2]) == 0          # already acked
    assert admin.xpending(stream, group)["pending"] == 0
    groups = admin.xinfo_groups(stream)
    assert groups[0]["name"] == group.encode() and groups[0]["pending"] == 0
    assert groups[0]["last-delivered-id"] == ids[-1]
    consumers = {c["name"]: c["pending"] for c in admin.xinfo_consumers(stream, group)}
    assert consumers == {b"c1": 0, b"c2": 0}
    assert admin.xlen(stream) == 10


def test_stream_blocking_xreadgroup_woken_by_xadd(target):
    admin = target.client()
    admin.xgroup_create("s2", "g", id="$", mkstream=True)
    reader = target.client()
    t, box = run_thread(lambda: reader.xreadgroup("g", "c", {"s2": ">"}, count=1, block=5000))
    wait_blocked(admin, 1)
    assert t.is_alive(), "XREADGROUP BLOCK returned before anything was added"
    new_id = admin.xadd("s2", {"k": "v"})
    assert stream_entries(joined(t, box)) == [(new_id, {b"k": b"v"})]
    assert admin.xpending("s2", "g")["pending"] == 1


# -- BLPOP woken by another client -----------------------------------------------------


def test_blpop_woken_by_another_client(target):
    waiter, pusher = target.client(), target.client()
    t0 = time.monotonic()
    t, box = run_thread(lambda: waiter.blpop(["empty", "work"], timeout=5))
    wait_blocked(pusher, 1)
    assert t.is_alive(), "BLPOP returned on empty lists"
    pusher.rpush("work", "job-1", "job-2")
    assert joined(t, box) == (b"work", b"job-1")
    assert time.monotonic() - t0 < 3
    assert pusher.lrange("work", 0, -1) == [b"job-2"]


def test_blpop_timeout_and_fifo_waiters(target):
    r = target.client()
    t0 = time.monotonic()
    assert r.blpop(["nothing"], timeout=0.3) is None
    assert 0.25 <= time.monotonic() - t0 < 3

    # two waiters on one key: served in the order they blocked
    w1, w2, pusher = target.client(), target.client(), target.client()
    t1, b1 = run_thread(lambda: w1.brpop(["fifo"], timeout=5))
    wait_blocked(pusher, 1)
    t2, b2 = run_thread(lambda: w2.brpop(["fifo"], timeout=5))
    wait_blocked(pusher, 2)
    pusher.lpush("fifo", "first")
    assert joined(t1, b1) == (b"fifo", b"first")
    assert t2.is_alive()
    pusher.lpush("fifo", "second")
    assert joined(t2, b2) == (b"fifo", b"second")


def test_bzpopmin_and_blmove_woken(target):
    waiter, pusher = target.client(), target.client()
    t, box = run_thread(lambda: waiter.bzpopmin(["zq"], timeout=5))
    wait_blocked(pusher, 1)
    pusher.zadd("zq", {"b": 2, "a": 1})
    assert joined(t, box) == (b"zq", b"a", 1.0)

    t, box = run_thread(lambda: waiter.blmove("src", "dst", 5, "LEFT", "RIGHT"))
    wait_blocked(pusher, 1)
    pusher.rpush("src", "x")
    assert joined(t, box) == b"x"
    assert pusher.lrange("dst", 0, -1) == [b"x"] and pusher.exists("src") == 0
