"""kvdb.cache.Cache against diskcache.Cache: the same calls, on the same clock, give the same results.

A Hypothesis state machine drives both caches with set/get/add/incr/decr/delete/pop/touch/expire/
evict/queue calls and clock steps (time.time is patched for both; diskcache reads it the same
way), comparing every return value and, after each step, len(), the insertion order (iter,
reversed), the sort order (iterkeys, for keys that are not pickled) and every key's value, expiry
and tag. check() must find nothing. Plus the single behaviours the machine does not reach.
"""
import pickle
import tempfile
import time

import diskcache
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kvdb.cache import ENOVAL, Cache, Timeout
from kvdb.errors import CorruptionError

# 1 and 1.0 are one key in both; True is pickled (not an int); None and the tuple are pickled.
KEYS = [0, 1, 1.0, -3, 2.5, "a", "b", "1", "", b"a", b"\x00", b"", (1, "a"), None, True, "é"]
VALUES = st.sampled_from([0, 1, -7, 2.5, "s", "", b"b", b"", None, (1, 2), [3], {"k": "v"}, 2 ** 70, True])
TAGS = st.sampled_from([None, "x", "y", 3])
EXPIRES = st.sampled_from([None, None, 1.1, 2.3, 5.7])     # never lands on a clock value (steps of 0.25)
NATIVE = (int, float, str, bytes)


def outcome(call, *args, **kwargs):
    """What a call returns, or the type of the exception it raises."""
    try:
        return "ok", call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- the type is the result compared
        return "raised", type(exc).__name__


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


class AgainstDiskcache(RuleBasedStateMachine):
    POLICY = "least-recently-stored"

    def __init__(self):
        super().__init__()
        self.clock = Clock()
        self.saved_time = time.time
        time.time = self.clock
        self.theirs = diskcache.Cache(tempfile.mkdtemp(prefix="dc-"), statistics=1, eviction_policy=self.POLICY)
        self.ours = Cache(tempfile.mkdtemp(prefix="kc-"), statistics=1, eviction_policy=self.POLICY)

    def teardown(self):
        time.time = self.saved_time
        self.theirs.close()
        self.ours.close()

    def both(self, name, *args, **kwargs):
        theirs = outcome(getattr(self.theirs, name), *args, **kwargs)
        ours = outcome(getattr(self.ours, name), *args, **kwargs)
        assert ours == theirs, f"{name}{args}{kwargs}: kvdb {ours!r}, diskcache {theirs!r}"
        return ours

    @rule(steps=st.sampled_from([1, 4, 12]))
    def advance(self, steps):
        self.clock.now += 0.25 * steps

    @rule(key=st.sampled_from(KEYS), value=VALUES, expire=EXPIRES, tag=TAGS)
    def set(self, key, value, expire, tag):
        self.both("set", key, value, expire=expire, tag=tag)

    @rule(key=st.sampled_from(KEYS), value=VALUES, expire=EXPIRES, tag=TAGS)
    def add(self, key, value, expire, tag):
        self.both("add", key, value, expire=expire, tag=tag)

    @rule(key=st.sampled_from(KEYS), expire_time=st.booleans(), tag=st.booleans())
    def get(self, key, expire_time, tag):
        self.both("get", key, "dflt", expire_time=expire_time, tag=tag)

    @rule(key=st.sampled_from(KEYS))
    def getitem_contains(self, key):
        self.both("__getitem__", key)
        self.both("__contains__", key)

    @rule(key=st.sampled_from(KEYS), delta=st.sampled_from([1, -2, 0.5]), default=st.sampled_from([0, 10, None]))
    def incr(self, key, delta, default):
        self.both("incr", key, delta, default)
        self.both("decr", key, 1)

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key):
        self.both("delete", key)

    @rule(key=st.sampled_from(KEYS), expire_time=st.booleans(), tag=st.booleans())
    def pop(self, key, expire_time, tag):
        self.both("pop", key, "dflt", expire_time=expire_time, tag=tag)

    @rule(key=st.sampled_from(KEYS), expire=EXPIRES)
    def touch(self, key, expire):
        self.both("touch", key, expire)

    @rule()
    def expire(self):
        self.both("expire")

    @rule(tag=TAGS)
    def evict(self, tag):
        self.both("evict", tag)

    @rule(value=VALUES, side=st.sampled_from(["back", "front"]), expire=EXPIRES, tag=TAGS)
    def push(self, value, side, expire, tag):
        self.both("push", value, "q", side=side, expire=expire, tag=tag)

    @rule(side=st.sampled_from(["back", "front"]), take=st.booleans(), expire_time=st.booleans(),
          tag=st.booleans())
    def pull_peek(self, side, take, expire_time, tag):
        self.both("pull" if take else "peek", "q", side=side, expire_time=expire_time, tag=tag)

    @rule(last=st.booleans(), expire_time=st.booleans(), tag=st.booleans())
    def peekitem(self, last, expire_time, tag):
        self.both("peekitem", last=last, expire_time=expire_time, tag=tag)

    @rule()
    def cull(self):
        self.both("cull")

    @invariant()
    def same_contents(self):
        assert len(self.ours) == len(self.theirs)
        assert list(self.ours) == list(self.theirs)
        assert list(reversed(self.ours)) == list(reversed(self.theirs))
        for reverse in (False, True):
            ours = [k for k in self.ours.iterkeys(reverse=reverse) if type(k) in NATIVE]
            theirs = [k for k in self.theirs.iterkeys(reverse=reverse) if type(k) in NATIVE]
            assert ours == theirs
        for key in KEYS:
            assert (self.ours.get(key, "dflt", expire_time=True, tag=True)
                    == self.theirs.get(key, "dflt", expire_time=True, tag=True))
        assert self.ours.stats(enable=True) == self.theirs.stats(enable=True)
        assert self.ours.check() == []


# 40 runs of 30 steps (about 4 s); under --long (the "long" profile) 200.
AgainstDiskcache.TestCase.settings = settings(max_examples=settings.default.max_examples * 2 // 5,
                                              stateful_step_count=30, deadline=None)
TestAgainstDiskcache = AgainstDiskcache.TestCase


class AgainstDiskcacheLRU(AgainstDiskcache):
    """The same with least-recently-used: gets note accesses, incr flushes them first."""
    POLICY = "least-recently-used"


class AgainstDiskcacheLFU(AgainstDiskcache):
    POLICY = "least-frequently-used"


for machine in (AgainstDiskcacheLRU, AgainstDiskcacheLFU):
    machine.TestCase.settings = settings(max_examples=settings.default.max_examples // 5, stateful_step_count=30,
                                         deadline=None)
TestAgainstDiskcacheLRU = AgainstDiskcacheLRU.TestCase
TestAgainstDiskcacheLFU = AgainstDiskcacheLFU.TestCase


# -- single behaviours ---------------------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path):
    c = Cache(str(tmp_path / "c"))
    yield c
    c.close()


def test_int_queue_matches_diskcache(cache, tmp_path):
    theirs = diskcache.Cache(str(tmp_path / "dc"))
    for side in ["back", "back", "front", "back", "front"]:
        assert cache.push(side, side=side) == theirs.push(side, side=side)
    for side in ["front", "back", "back", "front", "front", "back"]:
        assert cache.pull(side=side) == theirs.pull(side=side)
    theirs.close()


def test_transact_sees_its_own_writes_and_commits_together(cache):
    with cache.transact():
        cache.incr("total", 123.4)
        cache.incr("count", 1)
        assert cache["total"] / cache["count"] == 123.4
        with cache.transact():                  # nested blocks join the outer one
            cache.set("inner", 1)
    assert cache["inner"] == 1
    with pytest.raises(RuntimeError):
        with cache.transact():
            cache.set("rolled-back", 1)
            raise RuntimeError
    assert "rolled-back" not in cache
    cache.set("after", 2)                       # the lock is gone
    assert cache["after"] == 2


def test_transact_blocks_other_threads_writes(tmp_path):
    import threading
    cache = Cache(str(tmp_path / "c"), timeout=0.2)
    entered, release = threading.Event(), threading.Event()

    def block():
        with cache.transact():
            cache.set("k", "block")
            entered.set()
            release.wait(5)

    t = threading.Thread(target=block)
    t.start()
    entered.wait(5)
    assert cache.get("k") is None               # reads go on, before the block's state
    with pytest.raises(Timeout):
        cache.set("k", "other")                 # writes wait for the block, up to the timeout
    release.set()
    t.join()
    assert cache["k"] == "block"
    cache.set("k", "other")
    assert cache["k"] == "other"
    cache.close()


def test_close_waits_past_a_short_timeout_for_its_own_writes(tmp_path):
    """close() writes this open's counters; with a FanoutCache shard's 0.010 s
    timeout, another open's transact() block or a few conflicts would make it raise Timeout.
    It retries for CLOSE_TIMEOUT instead, and the counters it folds are all there after."""
    import threading
    import time
    path = str(tmp_path / "c")
    cache = Cache(path, timeout=0.01)
    other = Cache(path)
    cache.set("mine", 1)                        # counters close() folds into the base shard
    entered, release = threading.Event(), threading.Event()

    def block():
        with other.transact():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=block)
    t.start()
    entered.wait(5)
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    cache.close()                               # waits for the block instead of raising Timeout
    assert time.monotonic() - started >= 0.15
    t.join()
    assert len(other) == 1
    other.close()


def test_values_round_trip(cache):
    values = [0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 64, 1.5, float("inf"), "", "ü\U0001F600", "\ud800",
              b"", b"\x00" * 10, None, True, (1, "a"), {"a": [1, 2]}, b"x" * 200_000]
    for i, value in enumerate(values):
        cache[i] = value
        got = cache[i]
        assert got == value and type(got) is type(value)
    assert cache.read(16).read() == b"x" * 200_000


def test_unpicklable_value_raises_and_stores_nothing(cache):
    cache.set("k", 1)
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        cache.set("k", lambda: None)
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        cache.set("new", lambda: None)
    assert cache["k"] == 1 and "new" not in cache and len(cache) == 1


def test_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="size_limit"):
        Cache(str(tmp_path / "a"), size_limit=0)
    with pytest.raises(ValueError, match="size_limit"):
        Cache(str(tmp_path / "a"), size_limit=-5)
    with pytest.raises(ValueError, match="least-recently-used"):
        Cache(str(tmp_path / "a"), eviction_policy="lru")
    with pytest.raises(ValueError, match="cull_limit"):
        Cache(str(tmp_path / "a"), cull_limit=-1)
    with pytest.raises(ValueError, match="unknown cache setting"):
        Cache(str(tmp_path / "a"), size_limt=10)
    assert not (tmp_path / "a").exists()        # nothing was created
    cache = Cache(str(tmp_path / "b"))
    with pytest.raises(ValueError):
        cache.reset("size_limit", 0)
    assert cache.size_limit == 2 ** 30
    with pytest.raises(ValueError, match="side"):
        cache.push(1, side="middle")
    cache.close()


def test_settings_persist_and_reload(tmp_path):
    path = str(tmp_path / "c")
    Cache(path, size_limit=12345, eviction_policy="least-recently-used").close()
    cache = Cache(path)
    assert cache.size_limit == 12345 and cache.eviction_policy == "least-recently-used"
    assert cache.reset("cull_limit", 3) == 3
    assert Cache(path).cull_limit == 3
    cache.close()


def test_format_version_is_checked(tmp_path):
    import kvdb
    from kvdb.cache.layout import CACHE_FORMAT_VERSION, VERSION_KEY
    path = str(tmp_path / "c")
    Cache(path).close()
    with kvdb.open(path) as db:
        assert db.get(VERSION_KEY) == str(CACHE_FORMAT_VERSION).encode()
        db.put(VERSION_KEY, str(CACHE_FORMAT_VERSION + 1).encode())
    with pytest.raises(ValueError, match="version"):
        Cache(path)
    with kvdb.open(path) as db:
        db.put(VERSION_KEY, b"garbage")
    with pytest.raises(CorruptionError):
        Cache(path)
    other = str(tmp_path / "plain")
    with kvdb.open(other) as db:
        db.put(b"k", b"v")
    with pytest.raises(ValueError, match="not a cache"):
        Cache(other)


def test_close_reopens_on_use_and_pickles(cache):
    cache["k"] = "v"
    cache.close()
    assert cache["k"] == "v"                    # reopened, as diskcache does
    clone = pickle.loads(pickle.dumps(cache))
    assert clone["k"] == "v" and clone.directory == cache.directory
    clone.close()
    with Cache(cache.directory) as again:
        assert again["k"] == "v" and len(again) == 1


def test_counters_survive_reopen_and_check_fixes(cache):
    for i in range(50):
        cache[i] = "v" * i
    volume = cache.volume()
    cache.close()
    assert len(cache) == 50 and cache.volume() == volume
    import kvdb
    cache.close()
    from kvdb.cache.layout import ROWID
    with kvdb.open(cache.directory) as db:      # damage an index
        with db.scan(prefix=ROWID) as it:
            first = next(it)[0]
        db.delete(first)
    assert [str(w.message)[:3] for w in cache.check()] == ["C2:"]
    cache.check(fix=True)
    assert cache.check() == [] and len(cache) == 50 and cache.volume() == volume


def test_enoval_pickles_to_itself():
    assert pickle.loads(pickle.dumps(ENOVAL)) is ENOVAL
    assert repr(ENOVAL) == "ENOVAL"


def test_long_keys(cache):
    with pytest.raises(ValueError, match="too long"):
        cache["x" * 20_000] = 1
    assert cache.get("x" * 15_000) is None
    cache["x" * 15_000] = 1
    assert cache["x" * 15_000] == 1


def test_forked_child_reopens_as_its_own_opener(cache):
    import os
    cache["k"] = 1
    pid = os.fork()
    if pid == 0:                                # the child: must not return into pytest
        code = 1
        try:
            cache.incr("k")
            cache["child"] = "yes"
            code = 0 if cache["k"] == 2 else 2
            cache.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    cache["parent"] = "yes"
    assert cache["k"] == 2 and cache["child"] == "yes" and len(cache) == 3
    assert cache.check() == []


def test_len_and_iteration_inside_transact_see_the_blocks_writes(cache):
    cache["a"] = 1
    with cache.transact():
        cache["b"] = 2
        cache.delete("a")
        assert len(cache) == 1 and list(cache) == ["b"] and list(cache.iterkeys()) == ["b"]
        assert "b" in cache and "a" not in cache
    assert len(cache) == 1 and list(cache) == ["b"] and cache.check() == []


def test_check_reports_and_fix_drops_an_unreadable_entry(cache):
    import kvdb
    from kvdb.cache.keys import entry_key
    cache["good"] = "v"
    cache["bad"] = "v"
    cache.close()
    with kvdb.open(cache.directory) as db:
        db.put(entry_key("bad"), b"\x01short")     # a record cut short
    problems = [str(w.message) for w in cache.check()]
    assert any(p.startswith("C1:") for p in problems)
    cache.check(fix=True)
    assert cache.check() == [] and list(cache) == ["good"] and len(cache) == 1


def test_bulk_removals_inside_transact_see_the_blocks_writes(cache, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    cache["old"] = 0
    with cache.transact():
        cache.set("new", 1, tag="t")
        cache.set("short", 2, expire=1)
        assert cache.evict("t") == 1
        now[0] += 2
        assert cache.expire() == 1
        cache["again"] = 3
        assert cache.clear() == 2                   # "old" and "again"
        cache["last"] = 4
        assert list(cache) == ["last"]
    assert list(cache) == ["last"] and len(cache) == 1 and cache.check() == []
