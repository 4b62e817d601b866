"""kvdb.cache.fanout.FanoutCache against diskcache.FanoutCache: the same calls give the same results,
keys land in a shard chosen by a stable hash, and the whole-cache calls cover every shard."""
import os
import pickle
import random
import subprocess
import sys
import threading
import time
import zlib

import diskcache
import pytest

from kvdb.cache import Cache
from kvdb.cache.fanout import SHARD_NAME, FanoutCache, key_crc, shard_of
from kvdb.cache.keys import entry_key
from tests.helpers import child_env


@pytest.fixture
def fanout(tmp_path):
    cache = FanoutCache(str(tmp_path / "fanout"), shards=4)
    yield cache
    cache.close()


# -- against diskcache ----------------------------------------------------------------------------

KEYS = ["a", "b", "c", 1, 2, 2.5, b"bytes", ("tuple", 1), "long" * 20]
TAGS = [None, "red", "blue"]


def apply(cache, op, key, value, tag):
    """One call on either FanoutCache; exceptions are results too (their type)."""
    try:
        if op == "set":
            return cache.set(key, value, tag=tag)
        if op == "get":
            return cache.get(key, default="<missing>")
        if op == "get_tag":
            return cache.get(key, tag=True)
        if op == "add":
            return cache.add(key, value, tag=tag)
        if op == "incr":
            return cache.incr(key, value)
        if op == "decr":
            return cache.decr(key, 1, default=None)
        if op == "delete":
            return cache.delete(key)
        if op == "pop":
            return cache.pop(key, default="<missing>")
        if op == "contains":
            return key in cache
        if op == "getitem":
            return cache[key]
        if op == "setitem":
            cache[key] = value
            return None
        if op == "delitem":
            del cache[key]
            return None
        if op == "touch":
            return cache.touch(key, None)
        if op == "evict":
            return cache.evict(tag)
        if op == "len":
            return len(cache)
        if op == "clear":
            return cache.clear()
        raise AssertionError(op)
    except Exception as e:
        return type(e).__name__


OPS = ["set"] * 4 + ["get"] * 3 + ["get_tag", "add", "add", "incr", "incr", "decr", "delete", "pop", "contains",
                                   "getitem", "setitem", "delitem", "touch", "evict", "len"] + ["clear"] * 1


@pytest.mark.parametrize("seed", range(6))
def test_random_calls_match_diskcache(tmp_path, seed):
    rng = random.Random(seed)
    ours = FanoutCache(str(tmp_path / "ours"), shards=4)
    theirs = diskcache.FanoutCache(str(tmp_path / "theirs"), shards=4)
    try:
        for step in range(150):
            op = rng.choice(OPS if rng.random() > 0.02 else ["clear"])
            key, tag = rng.choice(KEYS), rng.choice(TAGS)
            value = rng.choice([rng.randrange(-5, 100), f"v{step}", b"\x00" * rng.randrange(3), None, [step]])
            if op == "incr":
                value = rng.randrange(-3, 4)
            got, want = apply(ours, op, key, value, tag), apply(theirs, op, key, value, tag)
            assert got == want, (seed, step, op, key, value, tag)
        assert sorted(map(repr, ours)) == sorted(map(repr, theirs))
        assert {repr(k): ours[k] for k in ours} == {repr(k): theirs[k] for k in theirs}
    finally:
        ours.close()
        theirs.close()


# -- sharding -------------------------------------------------------------------------------------

def test_shard_of_is_stable():
    # the shard of a key must never change: a directory written by one version is read by the next
    keys = ["a", "key", "Iñtërnâtiônàl", 1, 0, -1, 2.5, b"a"]
    assert [key_crc(k) for k in keys] == [639755093, 2211642785, 1899215609, 382871383, 570109849, 2176625261,
                                          2247736320, 2550679812]
    assert [key_crc(k) for k in keys + [("t", 1)]] == [zlib.crc32(entry_key(k)) for k in keys + [("t", 1)]]
    assert [shard_of(k, 8) for k in ["a", "key", 1, 0, -1, 2.5, b"a", ("t", 1)]] == \
        [shard_of(k, 8) for k in ["a", "key", 1.0, 0.0, -1, 2.5, b"a", ("t", 1)]]
    assert all(0 <= shard_of(k, 3) < 3 for k in KEYS)
    counts = [0] * 8
    for i in range(4000):
        counts[shard_of(f"key{i}", 8)] += 1
    assert min(counts) > 400, counts  # spread evenly (expect 500 each)


def test_keys_the_cache_treats_as_one_share_a_shard(fanout):
    fanout[1] = "one"
    assert fanout[1.0] == "one" and 1.0 in fanout
    fanout[2.0] = "two"
    assert fanout.get(2) == "two"
    assert len(fanout) == 2


def test_each_key_is_in_its_shards_directory(fanout):
    for i in range(40):
        fanout[f"k{i}"] = i
    for i in range(40):
        number = shard_of(f"k{i}", 4)
        with Cache(os.path.join(fanout.directory, SHARD_NAME.format(number))) as shard:
            assert shard[f"k{i}"] == i
    assert sorted(os.listdir(fanout.directory)) == ["000", "001", "002", "003"]


CHILD = """
import sys
from kvdb.cache.fanout import FanoutCache
with FanoutCache(sys.argv[1], shards=4) as cache:
    assert all(cache[f"k{i}"] == i for i in range(50)), "a key is missing"
    cache["from child"] = 1
print("ok")
"""


def test_another_process_with_another_hash_seed_finds_every_key(fanout):
    for i in range(50):
        fanout[f"k{i}"] = i
    fanout.close()
    env = dict(child_env(), PYTHONHASHSEED="12345")
    done = subprocess.run([sys.executable, "-c", CHILD, fanout.directory], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
    assert fanout["from child"] == 1


INCREMENTER = """
import sys
from kvdb.cache.fanout import FanoutCache
with FanoutCache(sys.argv[1], shards=4) as cache:
    for i in range(int(sys.argv[2])):
        cache.incr("count", retry=True)
        with cache.transact():
            cache.incr("pairs-a", 1)
            cache.incr("pairs-b", 2)
print("ok")
"""


def test_processes_share_one_directory(fanout):
    # several processes on one FanoutCache directory, as diskcache allows: no increment is lost
    fanout["count"] = 0
    children = [subprocess.Popen([sys.executable, "-c", INCREMENTER, fanout.directory, "150"], env=child_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for _ in range(150):
            fanout.incr("count", retry=True)
            with fanout.transact():
                a, b = fanout.get("pairs-a", 0), fanout.get("pairs-b", 0)
            assert b == 2 * a
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert all(out.strip() == "ok" for out, _ in outputs), outputs
    assert fanout["count"] == 450
    assert (fanout["pairs-a"], fanout["pairs-b"]) == (300, 600)


def test_size_limit_is_split_over_the_shards(tmp_path):
    with FanoutCache(str(tmp_path / "f"), shards=4, size_limit=2 ** 20) as cache:
        assert cache.size_limit == 2 ** 18
        assert all(shard.size_limit == 2 ** 18 for shard in cache._shards)
    with diskcache.FanoutCache(str(tmp_path / "d"), shards=4, size_limit=2 ** 20) as theirs:
        assert theirs.size_limit == 2 ** 18


# -- every shard ----------------------------------------------------------------------------------

def test_whole_cache_calls_sum_over_the_shards(fanout):
    for i in range(20):
        fanout.set(i, "x" * 100, tag="even" if i % 2 == 0 else None)
    assert len(fanout) == 20
    assert sorted(fanout) == list(range(20))
    assert sorted(reversed(fanout)) == list(range(20))
    assert list(reversed(list(fanout))) == list(reversed(fanout))
    assert fanout.volume() > 0
    assert fanout.check() == []
    assert fanout.evict("even") == 10
    assert len(fanout) == 10
    assert fanout.clear() == 10
    assert len(fanout) == 0


def test_expire_and_cull(tmp_path):
    with FanoutCache(str(tmp_path / "f"), shards=2, size_limit=100_000, cull_limit=0) as cache:
        for i in range(10):
            cache.set(f"short{i}", i, expire=0.05)
        time.sleep(0.1)
        assert cache.expire() == 10
        for i in range(60):
            cache.set(f"big{i}", b"x" * 5000)
        assert cache.cull() > 0
        assert cache.volume() <= 100_000 + 2 * 5000 * 2


def test_stats(fanout):
    fanout.stats(enable=True, reset=True)
    fanout["k"] = 1
    fanout.get("k"), fanout.get("k"), fanout.get("nope")
    assert fanout.stats() == (2, 1)
    assert fanout.stats(reset=True) == (2, 1)
    assert fanout.stats() == (0, 0)


def test_transact_holds_every_shard(tmp_path):
    cache = FanoutCache(str(tmp_path / "f"), shards=4)
    try:
        def work():
            for _ in range(20):
                with cache.transact():
                    cache.incr("total", 3)
                    cache.incr("count", 1)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        seen = []
        while any(t.is_alive() for t in threads):
            with cache.transact():
                seen.append((cache.get("total", 0), cache.get("count", 0)))
        for t in threads:
            t.join()
        assert (cache["total"], cache["count"]) == (180, 60)
        assert all(total == 3 * count for total, count in seen)
    finally:
        cache.close()


def test_a_write_waiting_on_another_threads_transact_times_out_without_retry(tmp_path):
    # diskcache's rule: without retry a write that times out returns False (get: the default)
    with FanoutCache(str(tmp_path / "f"), shards=2, timeout=0.05) as cache:
        entered, release = threading.Event(), threading.Event()

        def hold():
            with cache.transact():
                entered.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert entered.wait(10)
            assert cache.set("k", 1) is False
            assert cache.add("k", 1) is False
            assert cache.incr("n") is None
        finally:
            release.set()
            holder.join()
        assert cache.set("k", 1) is True


# -- memoize, settings, sub-collections, life -----------------------------------------------------

def test_memoize(fanout):
    calls = []

    @fanout.memoize(typed=True, tag="fib")
    def fib(n):
        calls.append(n)
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(30) == 832040
    assert len(calls) == 31
    assert fanout[fib.__cache_key__(30)] == 832040
    assert fib.__cache_key__(3) != fib.__cache_key__(3.0)
    assert fanout.evict("fib") == 31

    @fanout.memoize(expire=0)
    def never_stored(x):
        calls.append(x)
        return x

    never_stored(1), never_stored(1)
    assert calls[-2:] == [1, 1]
    with pytest.raises(TypeError, match="name cannot be callable"):
        @fanout.memoize
        def forgot_the_call():
            pass


def test_settings_read_from_the_first_shard_and_reset_on_all(fanout):
    assert fanout.eviction_policy == "least-recently-stored"
    assert fanout.reset("cull_limit", 3) == 3
    assert all(shard.cull_limit == 3 for shard in fanout._shards)
    with pytest.raises(AttributeError):
        fanout.push  # diskcache's FanoutCache has no queue calls either
    with pytest.raises(AttributeError):
        fanout.not_a_setting


def test_sub_collections(fanout):
    sub = fanout.cache("sessions")
    assert fanout.cache("sessions") is sub
    assert sub.directory == os.path.join(fanout.directory, "cache", "sessions")
    sub["k"] = 1
    assert "k" not in fanout
    deque = fanout.deque("jobs", maxlen=3)
    deque.extend(range(5))
    assert list(fanout.deque("jobs")) == [2, 3, 4]
    assert deque.directory == os.path.join(fanout.directory, "deque", "jobs")
    index = fanout.index("users")
    index["ada"] = 36
    assert fanout.index("users")["ada"] == 36
    assert index.directory == os.path.join(fanout.directory, "index", "users")
    with pytest.raises(ValueError):
        fanout.cache("../escape")


def test_reopen_and_pickle(tmp_path):
    path = str(tmp_path / "f")
    with FanoutCache(path, shards=3, size_limit=3 * 2 ** 20) as cache:
        for i in range(30):
            cache[i] = i
        clone = pickle.loads(pickle.dumps(cache))
        try:
            assert clone.directory == path and clone.size_limit == 2 ** 20
            assert sorted(clone) == sorted(cache)
        finally:
            clone.close()
    with FanoutCache(path, shards=3) as again:
        assert sorted(again) == list(range(30))


def test_close_then_use_reopens(fanout):
    fanout["k"] = 1
    index = fanout.index("i")
    index["x"] = 2
    fanout.close()
    assert fanout["k"] == 1
    assert fanout.index("i") is index and index["x"] == 2


def test_sub_collections_from_threads_are_one_object(fanout):
    got = []
    threads = [threading.Thread(target=lambda: got.append(fanout.deque("shared"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(d is got[0] for d in got)


def test_bad_arguments_are_refused(tmp_path):
    for shards in [0, -1, 1.5, "8", True]:
        with pytest.raises(ValueError, match="shards"):
            FanoutCache(str(tmp_path / "x"), shards=shards)
    for limit in [0, -5, "big"]:
        with pytest.raises(ValueError, match="size_limit"):
            FanoutCache(str(tmp_path / "y"), size_limit=limit)
    with pytest.raises(TypeError, match="directory"):
        FanoutCache(42)
    assert not os.path.exists(tmp_path / "x") or os.listdir(tmp_path / "x") == []


def test_temporary_directory(tmp_path):
    with FanoutCache(shards=2) as cache:
        cache["k"] = 1
        assert os.path.isdir(os.path.join(cache.directory, "001"))
