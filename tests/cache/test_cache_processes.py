"""Several processes share one cache directory: incr from 2-4 real processes (spawn) counts every
call, and a transact() block in one process excludes the writes of the others."""
import multiprocessing

import pytest

from kvdb.cache import Cache

INCRS = 300


def incr_worker(path, n):
    cache = Cache(path)
    for _ in range(n):
        cache.incr("counter")
    cache.close()


def transact_worker(path, n):
    cache = Cache(path)
    for _ in range(n):
        with cache.transact():
            a = cache.get("a", 0)
            b = cache.get("b", 0)
            assert a == b, (a, b)               # the pair is never seen half-updated
            cache.set("a", a + 1)
            cache.set("b", b + 1)
    cache.close()


def evicting_worker(path, n):
    cache = Cache(path)
    for i in range(n):
        cache.set(f"{i % 150}", "v" * 100, expire=None if i % 3 else 0.05)
        if i % 7 == 0:
            cache.get(f"{(i * 13) % 150}")
    cache.close()


def run_all(target, args, processes):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for _ in range(processes)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * processes
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()


@pytest.mark.parametrize("processes", [2, 4])
def test_incr_from_several_processes_is_exact(tmp_path, processes):
    path = str(tmp_path / "shared")
    Cache(path).close()
    run_all(incr_worker, (path, INCRS), processes)
    with Cache(path) as cache:
        assert cache["counter"] == INCRS * processes
        assert len(cache) == 1
        assert cache.check() == []


def test_transact_excludes_other_processes(tmp_path):
    path = str(tmp_path / "shared")
    Cache(path).close()
    run_all(transact_worker, (path, 100), 3)
    with Cache(path) as cache:
        assert cache["a"] == cache["b"] == 300
        assert cache.check() == []


@pytest.mark.parametrize("policy", ["least-recently-stored", "least-frequently-used"])
def test_eviction_with_several_writers_keeps_the_invariants(tmp_path, policy):
    path = str(tmp_path / "shared")
    Cache(path, size_limit=40 * 150, cull_limit=5, eviction_policy=policy).close()   # about 40 entries
    run_all(evicting_worker, (path, 400), 3)
    with Cache(path) as cache:
        assert cache.check() == []
        assert cache.volume() < cache.size_limit + 3 * 5 * 200     # over by at most a few sets
        assert len(cache) == len(list(cache)) == len(list(cache.iterkeys())) < 60   # of 150 keys


def test_incr_from_several_threads_of_one_cache_is_exact(tmp_path):
    import threading
    cache = Cache(str(tmp_path / "c"))
    threads = [threading.Thread(target=lambda: [cache.incr("n") for _ in range(INCRS)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache["n"] == 4 * INCRS and len(cache) == 1 and cache.check() == []
    cache.close()
