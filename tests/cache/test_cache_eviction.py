"""Eviction per policy against a small model of diskcache's documented rules.

The model: every set/add/incr that stores evicts first up to cull_limit expired entries (not used
here), then, if the volume is at or over size_limit, up to the rest of cull_limit entries in the
policy's order: least-recently-stored by store time (an incr stores too), least-recently-used by
access time (set, incr and get hits), least-frequently-used by access count (set resets it to 0,
get hits and incr add 1); ties by insertion order (a replaced key keeps its place). "none" never
evicts. All entries have one size (3-character keys, int values) so the model's volume is
count * size. The clock (time.time) steps 1 s per call, so times never tie.
"""
import random
import time

import pytest

from kvdb.cache import Cache

POLICIES = ["least-recently-stored", "least-recently-used", "least-frequently-used", "none"]
KEYS = [f"k{i:02d}" for i in range(30)]


class Model:
    def __init__(self, policy, size_limit, cull_limit, entry_size):
        self.policy = policy
        self.size_limit = size_limit
        self.cull_limit = cull_limit
        self.entry_size = entry_size
        self.entries = {}           # key -> dict(rowid, store, access, count)
        self.next_rowid = 0

    def order(self, key):
        e = self.entries[key]
        field = {"least-recently-stored": "store", "least-recently-used": "access",
                 "least-frequently-used": "count"}[self.policy]
        return e[field], e["rowid"]

    def evict(self, limit):
        if self.policy == "none" or len(self.entries) * self.entry_size < self.size_limit:
            return
        for key in sorted(self.entries, key=self.order)[:limit]:
            del self.entries[key]

    def set(self, key, now):
        if key not in self.entries:
            self.entries[key] = {"rowid": self.next_rowid}
            self.next_rowid += 1
        self.entries[key].update(store=now, access=now, count=0)
        if self.cull_limit:
            self.evict(self.cull_limit)

    def get(self, key, now):
        if key in self.entries:
            self.entries[key]["access"] = now
            self.entries[key]["count"] += 1

    def incr(self, key, now):
        if key in self.entries:
            e = self.entries[key]
            e.update(store=now, access=now, count=e["count"] + 1)
        else:
            self.set(key, now)

    def delete(self, key):
        self.entries.pop(key, None)


@pytest.fixture
def clock(monkeypatch):
    now = [2_000_000.0]

    def fake():
        return now[0]
    monkeypatch.setattr(time, "time", fake)
    return now


def entry_size(tmp_path):
    with Cache(str(tmp_path / "size")) as c:
        c["k00"] = 0
        return c.volume()


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", [1, 2])
def test_policy_against_model(tmp_path, clock, policy, seed):
    size = entry_size(tmp_path)
    limit_entries, cull_limit = 12, 3
    cache = Cache(str(tmp_path / policy), eviction_policy=policy, size_limit=size * limit_entries + 1,
                  cull_limit=cull_limit)
    model = Model(policy, size * limit_entries + 1, cull_limit, size)
    rnd = random.Random(seed)
    for step in range(400):
        clock[0] += 1.0
        now = clock[0]
        key = rnd.choice(KEYS[:20] if rnd.random() < 0.8 else KEYS)
        op = rnd.choices(["set", "get", "incr", "delete"], [4, 6, 1, 1])[0]
        if op == "set":
            cache.set(key, step)
            model.set(key, now)
        elif op == "get":
            cache.get(key)
            model.get(key, now)
        elif op == "incr":
            cache.incr(key)
            model.incr(key, now)
        else:
            cache.delete(key)
            model.delete(key)
        assert sorted(cache.iterkeys()) == sorted(model.entries), f"step {step}: {op} {key}"
        assert len(cache) == len(model.entries)
    assert cache.check() == []
    cache.close()


@pytest.mark.parametrize("policy", POLICIES[:3])
def test_cull_limit_zero_evicts_only_on_cull(tmp_path, clock, policy):
    size = entry_size(tmp_path)
    cache = Cache(str(tmp_path / "c"), eviction_policy=policy, size_limit=size * 5 + 1, cull_limit=0)
    for i in range(20):
        clock[0] += 1
        cache[KEYS[i]] = i
    assert len(cache) == 20                     # no set evicted
    clock[0] += 1
    cache.get(KEYS[0])                          # the most recent and the most used, now
    cache.get(KEYS[0])
    assert cache.cull() == 15                   # down to under size_limit: 5 entries
    assert len(cache) == 5 and cache.volume() < cache.size_limit
    expected = {"least-recently-stored": KEYS[15:20], "least-recently-used": [KEYS[0]] + KEYS[16:20],
                "least-frequently-used": [KEYS[0]] + KEYS[16:20]}[policy]
    assert sorted(cache.iterkeys()) == sorted(expected)
    assert cache.check() == []
    cache.close()


def test_expired_entries_go_first(tmp_path, clock):
    size = entry_size(tmp_path)
    cache = Cache(str(tmp_path / "c"), size_limit=size * 10 + 1, cull_limit=2)
    for i in range(8):
        clock[0] += 1
        cache.set(KEYS[i], i, expire=100 if i % 2 else None)
    clock[0] += 200                             # the odd keys expired
    assert len(cache) == 8                      # expired entries count until removed
    cache.set(KEYS[20], 0)                      # removes 2 expired (cull_limit), soonest first
    assert len(cache) == 7 and KEYS[1] not in list(cache) and KEYS[3] not in list(cache)
    assert cache.expire() == 2                  # the other two
    assert sorted(cache) == sorted(KEYS[0:8:2] + [KEYS[20]])
    cache.close()


def test_policy_change_rebuilds_the_order(tmp_path, clock):
    size = entry_size(tmp_path)
    path = str(tmp_path / "c")
    cache = Cache(path, size_limit=size * 100)
    for i in range(10):
        clock[0] += 1
        cache[KEYS[i]] = i
    cache.get(KEYS[0])
    cache.close()
    cache = Cache(path, eviction_policy="least-frequently-used", size_limit=size * 100)
    assert cache.check() == []
    for _ in range(3):
        cache.get(KEYS[1])
    cache.reset("size_limit", size * 5)
    cache.cull()
    assert KEYS[1] in set(cache.iterkeys())    # the only entry used since the change
    cache.reset("eviction_policy", "none")
    assert cache.check() == []
    cache.close()


def test_lru_accesses_are_flushed_on_close(tmp_path, clock):
    size = entry_size(tmp_path)
    path = str(tmp_path / "c")
    cache = Cache(path, eviction_policy="least-recently-used", size_limit=size * 100, cull_limit=0)
    for i in range(6):
        clock[0] += 1
        cache[KEYS[i]] = i
    clock[0] += 1
    cache.get(KEYS[0])                          # noted in memory only
    cache.close()
    other = Cache(path, size_limit=size * 5)    # another open: sees the flushed access
    assert other.cull() == 2
    assert sorted(other.iterkeys()) == [KEYS[0]] + KEYS[3:6]
    other.close()


@pytest.mark.parametrize("policy", ["least-recently-stored", "least-recently-used", "least-frequently-used"])
def test_a_set_that_read_the_clock_before_the_one_it_replaces_keeps_the_index_below_the_order(
        tmp_path, clock, policy):
    """Two processes set one key: the second reads the clock first but commits last, so the
    record it replaces carries a later store time. The O key must follow it down (C4 in
    docs/format/cache.md), or eviction would pass over the entry."""
    with Cache(str(tmp_path / "c"), eviction_policy=policy) as cache:
        clock[0] = 2_000_100.0
        cache.set("k", "later clock reading, committed first")
        clock[0] = 2_000_050.0
        cache.set("k", "earlier clock reading, committed last")
        assert cache.check() == []
        assert cache.get("k") == "earlier clock reading, committed last"
