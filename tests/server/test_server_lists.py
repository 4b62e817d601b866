"""Lists: every command compared with a reference redis-server (RESP2 and RESP3), a
randomized differential run, the storage invariants of docs/format/server-keys.md (Lists)
checked on the records themselves, blocking commands with real clients, and a large list."""
import random
import socket
import struct
import threading
import time

import pytest

import kvdb
from kvdb.server import liststore
from kvdb.server.keyspace import TYPE_LIST, Keyspace, WrongType
from tests.lanepair import LANE_IDS, LANE_PARAMS, lane_env, lane_pair
from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")


@pytest.fixture(scope="module", params=LANE_PARAMS, ids=LANE_IDS)
def pair(request, tmp_path_factory):
    # RESP2 and RESP3, each with the C fast lane on and off (tests/lanepair.py).
    protocol, lane = request.param
    with lane_pair(tmp_path_factory, protocol, lane) as p:
        yield p


@pytest.fixture
def p(pair):
    pair.flush()
    return pair


# -- compared with redis-server --------------------------------------------------------------

def test_push_and_pop(p):
    p.same("LPUSH", "l", "a", "b", "c")
    p.same("RPUSH", "l", "x", "y")
    p.same("LRANGE", "l", 0, -1)
    p.same("LPUSHX", "l", "p")
    p.same("RPUSHX", "l", "q", "r")
    p.same("LPUSHX", "nx", "p")
    p.same("RPUSHX", "nx", "p")
    p.same("EXISTS", "nx")
    p.same("LLEN", "l")
    p.same("LLEN", "nx")
    p.same("LPOP", "l")
    p.same("RPOP", "l")
    p.same("LPOP", "l", 2)
    p.same("RPOP", "l", 1)
    p.same("LPOP", "l", 0)
    p.same("RPOP", "l", 0)
    p.same("LPOP", "nx")
    p.same("LPOP", "nx", 0)
    p.same("LPOP", "nx", 3)
    p.same("RPOP", "nx", 3)
    p.same("LPOP", "l", 100)
    p.same("EXISTS", "l")
    p.same("RPUSH", "l", "only")
    p.same("RPOP", "l", 9223372036854775807)
    p.same("TYPE", "l")
    p.same("RPUSH", "bin", b"\x00\xff\r\n", b"")
    p.same("LRANGE", "bin", 0, -1)
    p.same("TYPE", "bin")
    for bad in ("-1", "x", "1.5", "", "9223372036854775808", " 1"):
        p.same_error("LPOP", "bin", bad)
        p.same_error("RPOP", "nx", bad)
    p.same_error("LPOP", "bin", 1, 2)
    p.same_error("RPOP", "bin", 1, 2)


def test_range_and_index(p):
    p.same("RPUSH", "l", *[f"e{i}" for i in range(10)])
    for start, stop in [(0, -1), (0, 0), (-1, -1), (-100, 100), (3, 1), (5, 100), (10, 20), (-3, -1), (-20, 2),
                        (2, -8), (2, -9), (-1, 0), (9, 9), (0, -11), (-9223372036854775808, 9223372036854775807)]:
        p.same("LRANGE", "l", start, stop)
    for i in (0, 1, 9, 10, -1, -10, -11, 100, 9223372036854775807, -9223372036854775808):
        p.same("LINDEX", "l", i)
    p.same("LRANGE", "nx", 0, -1)
    p.same("LINDEX", "nx", 0)
    p.same("LINDEX", "nx", "notanumber")
    p.same_error("LINDEX", "l", "x")
    p.same_error("LRANGE", "l", "a", 1)
    p.same_error("LRANGE", "l", 0, "1.0")
    p.same_error("LRANGE", "nx", 0, "z")


def test_lset(p):
    p.same("RPUSH", "l", "a", "b", "c")
    p.same("LSET", "l", 0, "A")
    p.same("LSET", "l", -1, "C")
    p.same("LSET", "l", 1, "")
    p.same("LRANGE", "l", 0, -1)
    p.same_error("LSET", "l", 3, "x")
    p.same_error("LSET", "l", -4, "x")
    p.same_error("LSET", "nx", 0, "x")
    p.same_error("LSET", "nx", "y", "x")
    p.same_error("LSET", "l", "y", "x")
    p.same("LRANGE", "l", 0, -1)


def test_linsert(p):
    p.same("RPUSH", "l", "a", "b", "c", "b")
    p.same("LINSERT", "l", "BEFORE", "b", "x")
    p.same("LINSERT", "l", "after", "b", "y")
    p.same("LINSERT", "l", "before", "a", "first")
    p.same("LINSERT", "l", "AFTER", "b", "z")
    p.same("LINSERT", "l", "after", "c", "mid")
    p.same("LINSERT", "l", "after", "b", "after-last")
    p.same("LRANGE", "l", 0, -1)
    p.same("LINSERT", "l", "before", "missing", "x")
    p.same("LINSERT", "nx", "before", "a", "x")
    p.same("EXISTS", "nx")
    p.same_error("LINSERT", "l", "middle", "a", "x")
    p.same_error("LINSERT", "nx", "middle", "a", "x")
    # Long enough that both sides move in several batches.
    p.same("RPUSH", "big", *[str(i % 7) for i in range(1500)])
    p.same("LINSERT", "big", "before", "3", "near-head")
    p.same("RPUSH", "big", "tail-marker")
    p.same("LINSERT", "big", "before", "tail-marker", "near-tail")
    p.same("LRANGE", "big", 0, -1)
    p.same("LINDEX", "big", 750)


def test_lrem(p):
    base = ["a", "b", "a", "c", "a", "d", "a"]
    for count in (0, 1, 2, -1, -2, 10, -10):
        p.same("DEL", "l")
        p.same("RPUSH", "l", *base)
        p.same("LREM", "l", count, "a")
        p.same("LRANGE", "l", 0, -1)
    p.same("LREM", "l", 0, "zz")
    p.same("LREM", "nx", 0, "a")
    p.same("RPUSH", "all", "x", "x", "x")
    p.same("LREM", "all", 0, "x")
    p.same("EXISTS", "all")
    p.same_error("LREM", "l", "x", "a")
    p.same_error("LREM", "nx", "1.5", "a")
    # Long lists: matches near the head, near the tail and all over, both directions.
    rng = random.Random(7)
    items = [rng.choice("abcdefgh") for _ in range(2500)]
    for count, elem in ((3, "a"), (-3, "b"), (0, "c"), (700, "d"), (-700, "e"), (1, "h"), (-1, "h")):
        p.same("DEL", "big")
        p.same("RPUSH", "big", *items)
        p.same("LREM", "big", count, elem)
        p.same("LRANGE", "big", 0, -1)
        p.same("LPUSH", "big", "new-head")
        p.same("RPUSH", "big", "new-tail")
        p.same("LRANGE", "big", 0, 5)
        p.same("LRANGE", "big", -5, -1)


def test_ltrim(p):
    cases = [(0, -1), (1, -1), (0, -2), (2, 4), (-3, -1), (5, 2), (20, 30), (-100, 1), (0, 100), (-1, -1),
             (9, 9), (10, 10), (0, 0)]
    for start, stop in cases:
        p.same("DEL", "l")
        p.same("RPUSH", "l", *[f"v{i}" for i in range(10)])
        p.same("LTRIM", "l", start, stop)
        p.same("LRANGE", "l", 0, -1)
        p.same("EXISTS", "l")
    p.same("LTRIM", "nx", 0, 1)
    p.same_error("LTRIM", "l", 0, "x")
    p.same_error("LTRIM", "nx", "x", 0)
    # Big trims: the rewrite under a new version (keeps fewer than it drops) and plain deletes.
    for start, stop in ((1000, 1009), (5, -6), (-3000, -2990), (2000, 4000)):
        p.same("DEL", "big")
        p.same("RPUSH", "big", *[str(i) for i in range(3000)])
        p.same("LTRIM", "big", start, stop)
        p.same("LRANGE", "big", 0, -1)
        p.same("LPUSH", "big", "h")
        p.same("RPUSH", "big", "t")
        p.same("LINDEX", "big", 1)
        p.same("LINSERT", "big", "after", "h", "h2")
        p.same("LRANGE", "big", 0, -1)


def test_lpos(p):
    p.same("RPUSH", "l", "a", "b", "c", "1", "2", "3", "c", "c", "a")
    for opts in ([], ["RANK", 1], ["RANK", 2], ["RANK", -1], ["RANK", -3], ["RANK", 4], ["RANK", -4],
                 ["COUNT", 0], ["COUNT", 1], ["COUNT", 2], ["COUNT", 10], ["RANK", -1, "COUNT", 2],
                 ["RANK", 2, "COUNT", 0], ["MAXLEN", 1], ["MAXLEN", 3], ["MAXLEN", 0], ["COUNT", 0, "MAXLEN", 7],
                 ["RANK", -2, "COUNT", 0, "MAXLEN", 2], ["rank", 1, "count", 1, "maxlen", 100],
                 ["RANK", 9223372036854775807], ["RANK", -9223372036854775807], ["COUNT", 1, "COUNT", 0]):
        p.same("LPOS", "l", "c", *opts)
        p.same("LPOS", "l", "zz", *opts)
        p.same("LPOS", "nx", "c", *opts)
    for opts in (["RANK", 0], ["COUNT", -1], ["MAXLEN", -1], ["RANK"], ["COUNT"], ["FOO", 1], ["RANK", "x"],
                 ["COUNT", "x"], ["MAXLEN", "x"], ["RANK", 1, "COUNT"], ["RANK", "9223372036854775808"]):
        p.same_error("LPOS", "l", "c", *opts)
        p.same_error("LPOS", "nx", "c", *opts)


def test_lpos_rank_min_is_refused(p):
    # Redis 7.2 refuses RANK LLONG_MIN (its negation overflows); 7.0 took it as -1.
    r = p.kv.execute_command
    r("RPUSH", "l", "a")
    with pytest.raises(redis.ResponseError, match="value must between -9223372036854775807 and 9223372036854775807"):
        r("LPOS", "l", "a", "RANK", "-9223372036854775808")


def test_small_negative_timeout_is_refused(p):
    # redis-server 7.0 blocks forever on a timeout in (-1 ms, 0); 7.2 refuses it as negative.
    with pytest.raises(redis.ResponseError, match="timeout is negative"):
        p.kv.execute_command("BLPOP", "nx", "-0.001")


def test_lmove_and_rpoplpush(p):
    p.same("RPUSH", "src", "a", "b", "c", "d")
    for wf, wt in (("LEFT", "LEFT"), ("LEFT", "RIGHT"), ("RIGHT", "LEFT"), ("right", "right")):
        p.same("LMOVE", "src", "dst", wf, wt)
        p.same("LRANGE", "dst", 0, -1)
    p.same("LRANGE", "src", 0, -1)
    p.same("EXISTS", "src")
    p.same("LMOVE", "src", "dst", "LEFT", "LEFT")
    p.same("RPUSH", "rot", "1", "2", "3")
    p.same("LMOVE", "rot", "rot", "LEFT", "RIGHT")
    p.same("RPOPLPUSH", "rot", "rot")
    p.same("LRANGE", "rot", 0, -1)
    p.same("RPUSH", "one", "x")
    p.same("LMOVE", "one", "one", "LEFT", "RIGHT")
    p.same("LRANGE", "one", 0, -1)
    p.same("RPOPLPUSH", "one", "other")
    p.same("EXISTS", "one")
    p.same("LRANGE", "other", 0, -1)
    p.same("RPOPLPUSH", "nx", "other")
    p.same_error("LMOVE", "rot", "dst", "UP", "LEFT")
    p.same_error("LMOVE", "rot", "dst", "LEFT", "DOWN")
    p.same_error("LMOVE", "nx", "dst", "LEFT", "DOWN")
    p.same("SET", "str", "v")
    p.same_error("LMOVE", "rot", "str", "LEFT", "LEFT")
    p.same("LRANGE", "rot", 0, -1)  # nothing popped
    p.same_error("RPOPLPUSH", "rot", "str")
    p.same_error("RPOPLPUSH", "str", "rot")
    p.same("LMOVE", "nx", "str", "LEFT", "LEFT")  # an absent source answers nil first


def test_lmpop(p):
    p.same("RPUSH", "b", "1", "2", "3", "4", "5")
    p.same("LMPOP", 2, "a", "b", "LEFT")
    p.same("LMPOP", 2, "a", "b", "RIGHT", "COUNT", 2)
    p.same("LMPOP", 1, "b", "left", "count", 10)
    p.same("EXISTS", "b")
    p.same("LMPOP", 2, "a", "b", "LEFT")
    p.same("SET", "s", "x")
    p.same("RPUSH", "c", "z")
    p.same_error("LMPOP", 2, "s", "c", "LEFT")
    p.same("LMPOP", 2, "c", "s", "LEFT")  # the first non-empty list answers before the string is seen
    for bad in ([0, "a", "LEFT"], [-1, "a", "LEFT"], ["x", "a", "LEFT"], ["01", "a", "LEFT"], [2, "a", "LEFT"],
                [1, "a", "MIDDLE"], [1, "a", "LEFT", "COUNT"], [1, "a", "LEFT", "COUNT", 0],
                [1, "a", "LEFT", "COUNT", -1], [1, "a", "LEFT", "COUNT", "x"], [1, "a", "LEFT", "COUNT", 1, "COUNT", 1],
                [1, "a", "LEFT", "extra"], [9223372036854775807, "a", "LEFT"], [1, "a"], [1]):
        p.same_error("LMPOP", *bad)


def test_nonblocking_forms_of_blocking_commands(p):
    p.same("RPUSH", "l", "a", "b", "c")
    p.same("BLPOP", "nx", "l", 0)
    p.same("BRPOP", "nx", "l", "0.5")
    p.same("BLMOVE", "l", "d", "LEFT", "RIGHT", 0)
    p.same("RPUSH", "l", "e", "f", "g")
    p.same("BRPOPLPUSH", "l", "d", 0)
    p.same("BLMPOP", 0, 2, "nx", "l", "RIGHT", "COUNT", 5)
    p.same("LRANGE", "d", 0, -1)
    p.same("BLPOP", "nx", "0.01")
    p.same("BRPOP", "nx", "nx2", "0.01")
    p.same("BLMOVE", "nx", "d", "LEFT", "LEFT", "0.01")
    p.same("BRPOPLPUSH", "nx", "d", "0.01")
    p.same("BLMPOP", "0.01", 1, "nx", "LEFT")
    p.same("BLPOP", "nx", "nx", "0.01")
    p.same("BLMPOP", "0.01", 2, "nx", "nx", "LEFT")
    p.same("RPUSH", "dup", "1", "2")
    p.same("BLPOP", "dup", "dup", 0)
    p.same("BLMPOP", 0, 2, "dup", "dup", "LEFT", "COUNT", 5)
    p.same("SET", "s", "v")
    p.same_error("BLPOP", "nx", "s", 0)
    p.same_error("BLMOVE", "s", "d", "LEFT", "LEFT", 0)
    p.same_error("BLMOVE", "d", "s", "LEFT", "LEFT", 0)
    p.same_error("BLMPOP", 0, 2, "nx", "s", "LEFT")
    for bad in ("-1", "x", "", "-inf"):
        p.same_error("BLPOP", "nx", bad)
        p.same_error("BRPOP", "nx", bad)
        p.same_error("BLMOVE", "nx", "d", "LEFT", "LEFT", bad)
        p.same_error("BRPOPLPUSH", "nx", "d", bad)
        p.same_error("BLMPOP", bad, 1, "nx", "LEFT")
    p.same_error("BLMOVE", "nx", "d", "UP", "LEFT", "-1")
    p.same_error("BLMPOP", "x", 0, "nx", "LEFT")
    p.same_error("BLMPOP", "x", 1, "nx", "LEFT", "COUNT", 0)
    p.same_error("BLMPOP", "x", 1, "nx", "LEFT")
    # Inside MULTI the blocking forms answer at once, as the non-blocking forms would.
    p.same("MULTI")
    for cmd in (("BLPOP", "nx", 0), ("BRPOP", "nx", 0), ("BLMOVE", "nx", "d", "LEFT", "LEFT", 0),
                ("BRPOPLPUSH", "nx", "d", 0), ("BLMPOP", 0, 1, "nx", "LEFT"), ("RPUSH", "nx", "v"),
                ("BLPOP", "nx", 0)):
        p.same(*cmd)
    p.same("EXEC")


def test_wrong_type_and_arity(p):
    p.same("SET", "s", "v")
    p.same("HSET", "h", "f", "v")
    for key in ("s", "h"):
        for cmd in (("LPUSH", key, "a"), ("RPUSH", key, "a"), ("LPUSHX", key, "a"), ("RPUSHX", key, "a"),
                    ("LPOP", key), ("RPOP", key), ("LPOP", key, 0), ("RPOP", key, 2), ("LLEN", key),
                    ("LRANGE", key, 0, -1), ("LINDEX", key, 0), ("LINDEX", key, "x"), ("LSET", key, 0, "a"),
                    ("LSET", key, "x", "a"), ("LINSERT", key, "BEFORE", "a", "b"), ("LREM", key, 0, "a"),
                    ("LTRIM", key, 0, 1), ("LPOS", key, "a"), ("LPOS", key, "a", "COUNT", 0),
                    ("LMOVE", key, "d", "LEFT", "LEFT"), ("RPOPLPUSH", key, "d"), ("LMPOP", 1, key, "LEFT"),
                    ("BLPOP", key, 0), ("BRPOP", key, 0), ("BLMPOP", 0, 1, key, "RIGHT")):
            p.same_error(*cmd)
    for cmd in (("LPUSH", "l"), ("RPUSH",), ("LPUSHX", "l"), ("RPUSHX", "l"), ("LPOP",), ("RPOP",), ("LLEN",),
                ("LLEN", "a", "b"), ("LRANGE", "l", 0), ("LINDEX", "l"), ("LSET", "l", 0), ("LINSERT", "l", "BEFORE", "a"),
                ("LREM", "l", 0), ("LTRIM", "l", 0), ("LPOS", "l"), ("LMOVE", "a", "b", "LEFT"),
                ("RPOPLPUSH", "a"), ("LMPOP", 1, "a"), ("BLPOP", "a"), ("BRPOP",), ("BLMOVE", "a", "b", "LEFT", "LEFT"),
                ("BRPOPLPUSH", "a", "b"), ("BLMPOP", 0, 1, "a"), ("LINDEX", "l", 0, 1)):
        p.same_error(*cmd)


def test_expired_list_is_absent(p):
    p.same("RPUSH", "l", "a", "b")
    p.same("PEXPIRE", "l", 30)
    time.sleep(0.1)
    p.same("LLEN", "l")
    p.same("LRANGE", "l", 0, -1)
    p.same("LPUSHX", "l", "x")
    p.same("RPUSH", "l", "c")
    p.same("LRANGE", "l", 0, -1)
    p.same("TTL", "l")


def test_keyspace_events(p):
    """The events list commands publish (class l, and del when a list empties), in order."""
    subs = []
    for client in (p.kv, p.ref):
        client.config_set("notify-keyspace-events", "KEA")
        ps = client.pubsub()
        ps.psubscribe("__keyevent@0__:*")
        ps.get_message(timeout=2)
        subs.append(ps)
    script = [("RPUSH", "l", "a", "b", "c", "d", "e"), ("LPUSH", "l", "z"), ("LPUSHX", "nx", "a"),
              ("RPUSHX", "l", "f"), ("LPOP", "l"), ("RPOP", "l", 2), ("LPOP", "l", 0), ("LPOP", "nx"),
              ("LINSERT", "l", "BEFORE", "b", "x"), ("LINSERT", "l", "BEFORE", "zz", "x"), ("LSET", "l", 0, "A"),
              ("LREM", "l", 0, "nothing"), ("LREM", "l", 1, "x"), ("LTRIM", "l", 0, -1), ("LTRIM", "l", 0, 1),
              ("LMOVE", "l", "m", "LEFT", "RIGHT"), ("RPOPLPUSH", "m", "m"), ("LMOVE", "m", "l", "RIGHT", "LEFT"),
              ("LMPOP", 2, "m", "l", "LEFT", "COUNT", 1), ("BLPOP", "l", 0), ("RPUSH", "q", "1", "2"),
              ("BLMOVE", "q", "q2", "LEFT", "LEFT", 0), ("BRPOPLPUSH", "q", "q2", 0), ("BLMPOP", 0, 1, "q2", "RIGHT"),
              ("RPUSH", "t", "1", "2"), ("LTRIM", "t", 5, 6), ("RPUSH", "t", "1", "1"), ("LREM", "t", 0, "1"),
              ("RPUSH", "u", "1"), ("RPOP", "u", 5), ("SET", "end", "x")]
    events = []
    try:
        for args in script:
            p.same(*args)
        for ps in subs:
            got = []
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                m = ps.get_message(timeout=0.2)
                if m is not None and m["type"] == "pmessage":
                    got.append((m["channel"], m["data"]))
                    if got[-1] == (b"__keyevent@0__:set", b"end"):
                        break
            events.append(got)
    finally:
        for ps in subs:
            ps.close()
        p.kv.config_set("notify-keyspace-events", "")
        p.ref.config_set("notify-keyspace-events", "")
    assert events[0] == events[1]
    assert len(events[0]) > 30


# -- randomized differential ---------------------------------------------------------------

KEYS = ["k1", "k2", "k3"]
ELEMS = ["a", "b", "c", "d", ""]


def _random_command(rng):
    k = rng.choice(KEYS)
    e = rng.choice(ELEMS)
    side = rng.choice(["LEFT", "RIGHT", "left"])
    idx = lambda: rng.choice([0, 1, 2, -1, -2, -5, 5, 10, -10, rng.randint(-30, 30)])  # noqa: E731
    choice = rng.randrange(26)
    if choice < 4:
        n = rng.choice([1, 1, 2, 3, 8]) if rng.random() < 0.95 else rng.randint(100, 700)
        return (rng.choice(["LPUSH", "RPUSH"]), k, *[rng.choice(ELEMS) for _ in range(n)])
    if choice == 4:
        return (rng.choice(["LPUSHX", "RPUSHX"]), k, e)
    if choice in (5, 6):
        return (rng.choice(["LPOP", "RPOP"]), k) + ((rng.choice([0, 1, 2, 5, 50]),) if rng.random() < 0.5 else ())
    if choice == 7:
        return ("LLEN", k)
    if choice in (8, 9):
        return ("LRANGE", k, idx(), idx())
    if choice == 10:
        return ("LINDEX", k, idx())
    if choice == 11:
        return ("LSET", k, idx(), e + "*")
    if choice == 12:
        return ("LINSERT", k, rng.choice(["BEFORE", "AFTER"]), e, rng.choice(ELEMS) + "+")
    if choice == 13:
        return ("LREM", k, rng.choice([0, 1, 2, -1, -2, 5, -5]), e)
    if choice == 14:
        return ("LTRIM", k, idx(), idx())
    if choice == 15:
        opts = []
        if rng.random() < 0.5:
            opts += ["RANK", rng.choice([1, 2, -1, -2, 3])]
        if rng.random() < 0.5:
            opts += ["COUNT", rng.choice([0, 1, 2])]
        if rng.random() < 0.3:
            opts += ["MAXLEN", rng.choice([0, 1, 3, 10])]
        return ("LPOS", k, e, *opts)
    if choice == 16:
        return ("LMOVE", k, rng.choice(KEYS), side, rng.choice(["LEFT", "RIGHT"]))
    if choice == 17:
        return ("RPOPLPUSH", k, rng.choice(KEYS))
    if choice == 18:
        keys = rng.sample(KEYS, rng.randint(1, 3))
        return ("LMPOP", len(keys), *keys, side) + (("COUNT", rng.choice([1, 2, 10])) if rng.random() < 0.5 else ())
    if choice == 19:
        return ("LRANGE", k, 0, -1)
    if choice == 20:
        return ("BLPOP", *rng.sample(KEYS, 2), "0.01")
    if choice == 21:
        return ("BLMOVE", k, rng.choice(KEYS), side, "LEFT", "0.01")
    if choice == 22:
        keys = rng.sample(KEYS, 2)
        return ("BLMPOP", "0.01", 2, *keys, side, "COUNT", 3)
    if choice == 23:
        return ("LPUSH", "str", e) if rng.random() < 0.5 else ("SET", rng.choice(KEYS + ["str"]), "string")
    if choice == 24:
        return ("DEL", k)
    return ("EXISTS", k)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_differential(p, seed):
    rng = random.Random(seed * 1000 + p.protocol)
    for _ in range(450):
        p.same(*_random_command(rng))
    for k in KEYS:
        p.same("TYPE", k)
        if p.same("TYPE", k) in (b"list", "list"):
            p.same("LRANGE", k, 0, -1)


# -- the records themselves (docs/format/server-keys.md (Lists)) ---------------------------------

def _check_invariants(ks, db, key):
    """L1-L4: the meta record's count is tail - head and exactly the positions [head, tail)
    have element records."""
    e, coll = ks.collection(db, key, TYPE_LIST)
    if e is None:
        return []
    head, tail = struct.unpack(">QQ", coll.extra)
    assert coll.count == tail - head > 0
    prefix = coll.prefix(db, b"l")
    values, positions = [], []
    with ks.store.scan(prefix=prefix) as it:
        for k, v in it:
            assert len(k) == len(prefix) + 8
            positions.append(struct.unpack(">Q", k[len(prefix):])[0])
            values.append(v)
    assert positions == list(range(head, tail))
    return values


def test_list_L2_storage_invariants_random(tmp_path):
    """L2 (and L1): exactly the positions [head, tail) have element records, and the meta
    record counts them. The list operations straight on the Keyspace, against a Python list model, with
    the record invariants checked after every operation (small thresholds so that
    pops take both paths and LTRIM rewrites often)."""
    db = kvdb.open(str(tmp_path / "db"))
    old_direct, old_rewrite = liststore.DIRECT_POPS, liststore.REWRITE_MIN
    liststore.DIRECT_POPS, liststore.REWRITE_MIN = 2, 4
    try:
        ks = Keyspace(db, 16, lambda *a: None)
        rng = random.Random(5)
        model = []
        for step in range(1500):
            op = rng.choice([0, 0, 0, 0, 1, 2, 2, 3, 4, 5, 6])  # pushes outweigh removals: lists grow
            ref = liststore.open_write(ks, 0, b"L")
            if op == 0:
                vals = [rng.choice(b"abc").to_bytes(1, "big") for _ in range(rng.randint(1, 10))]
                left = rng.random() < 0.5
                ref.push(vals, left)
                model = (vals[::-1] + model) if left else (model + vals)
            elif op == 1 and model:
                n = rng.randint(1, 4)
                left = rng.random() < 0.5
                got = ref.pop(n, left)
                want = model[:n] if left else model[::-1][:n]
                model = model[len(want):] if left else model[:len(model) - len(want)]
                assert got == want
            elif op == 2 and model:
                i = rng.randint(0, len(model))
                ref.insert(i, b"I")
                model.insert(i, b"I")
            elif op == 3 and model:
                count = rng.choice([1, 2, -1, -2, 5, -5] * 3 + [0])
                elem = rng.choice([b"a", b"b", b"c", b"I"])
                got = ref.remove(elem, count)
                idx = [i for i, v in enumerate(model) if v == elem]
                if count > 0:
                    idx = idx[:count]
                elif count < 0:
                    idx = idx[count:]
                assert got == len(idx)
                drop = set(idx)
                model = [v for i, v in enumerate(model) if i not in drop]
                if not model:
                    assert ks.entry(0, b"L") is None
                    continue
            elif op == 4 and model:
                a = rng.choice([0, 1, 2, -len(model) - 5, rng.randint(-12, 12)])
                b = rng.choice([-1, -2, -3, len(model) + 3, rng.randint(-12, 12)])
                ref.trim(a, b)
                n = len(model)
                s, t = (a + n if a < 0 else a), (b + n if b < 0 else b)
                s = max(s, 0)
                model = [] if s > t or s >= n else model[s:min(t, n - 1) + 1]
                if not model:
                    assert ks.entry(0, b"L") is None
                    continue
            elif op == 5 and model:
                i = rng.randint(-len(model), len(model) - 1)
                assert ref.get(i) == model[i]
                ref.set(i, b"S")
                model[i] = b"S"
            elif op == 6 and model:
                got = ref.positions(b"a", rng.choice([1, 2, -1, -2]), 0, 0)
                assert all(model[i] == b"a" for i in got)
            if ref.entry.body.count or len(ref):
                ref.save()
            assert _check_invariants(ks, 0, b"L") == model, step
        ks.store.commit()
    finally:
        liststore.DIRECT_POPS, liststore.REWRITE_MIN = old_direct, old_rewrite
        db.close()


def test_wrongtype_from_store(tmp_path):
    db = kvdb.open(str(tmp_path / "db"))
    try:
        ks = Keyspace(db, 16, lambda *a: None)
        ks.set_string(0, b"s", b"v")
        with pytest.raises(WrongType):
            liststore.open_read(ks, 0, b"s")
        ks.store.commit()
    finally:
        db.close()


def test_list_L1_an_emptied_list_is_deleted_and_a_bad_count_is_refused(tmp_path):
    """L1: count == tail - head > 0. Emptying a list deletes its meta record and elements;
    a meta record whose count disagrees with its ends, or whose extra is not 16 bytes, is a
    CorruptionError naming the key, never used."""
    from kvdb.server.keyspace import meta_key
    from tests.inprocess import InProcess
    with InProcess(tmp_path) as run:
        run("RPUSH", "l", "a", "b", "c")
        e = run.ks.entry(0, b"l")
        head, tail = struct.unpack(">QQ", e.body.extra)
        assert e.body.count == tail - head == 3
        prefix = e.body.prefix(0, liststore.KIND)
        assert run("LPOP", "l", 3) == [b"a", b"b", b"c"]
        assert run.db.get(meta_key(0, b"l")) is None and run.records(prefix) == []
        run("RPUSH", "l", "a", "b")
        e = run.ks.entry(0, b"l")
        e.body.count = 5                                 # disagrees with head and tail
        run.db.put(meta_key(0, b"l"), e.encode())
        with pytest.raises(kvdb.CorruptionError, match="list b'l' counts 5"):
            run("LRANGE", "l", 0, -1)
        e.body.count, e.body.extra = 2, e.body.extra[:12]
        run.db.put(meta_key(0, b"l"), e.encode())
        with pytest.raises(kvdb.CorruptionError, match="list b'l' has 12 bytes"):
            run("RPUSH", "l", "c")


def test_list_L3_a_push_past_either_end_is_refused(tmp_path):
    """L3: 0 <= head <= tail <= 2**64 - 1. A list whose head is at position 1, and one whose
    tail is one below the top: a push that would leave the range is refused, whole, and
    writes nothing; one that fits is taken."""
    from kvdb.server.commands.registry import CommandError
    from tests.inprocess import InProcess
    with InProcess(tmp_path) as run:
        ks = run.ks
        for key, pos in ((b"low", 1), (b"high", liststore.MAX_TAIL - 2)):
            e = ks.collection_for_write(0, key, TYPE_LIST)
            ks.store.put(e.body.prefix(0, liststore.KIND) + struct.pack(">Q", pos), b"x")
            e.body.count, e.body.extra = 1, struct.pack(">QQ", pos, pos + 1)
            ks.save(0, key, e)
            ks.store.commit()
        for push, key in (("LPUSH", "low"), ("RPUSH", "high")):
            with pytest.raises(CommandError, match="no room"):
                run(push, key, "a", "b")                 # two do not fit, so neither is written
            assert run("LRANGE", key, 0, -1) == [b"x"]
            assert run(push, key, "a") == 2              # one does
            with pytest.raises(CommandError, match="no room"):
                run(push, key, "b")
            ends = struct.unpack(">QQ", ks.entry(0, key.encode()).body.extra)
            top = liststore.MAX_TAIL
            assert ends == ((0, 2) if push == "LPUSH" else (top - 2, top))


def test_list_L4_element_records_hold_only_the_element(tmp_path):
    """L4: an element record's value is the element's bytes alone, so COPY copies the records
    verbatim under a new version, RENAME moves only the meta record, and MOVE re-keys the
    records under the new database byte with the same values."""
    from tests.inprocess import InProcess
    with InProcess(tmp_path) as run:
        run("RPUSH", "l", "a", "", "ccc", b"\x00\xff")
        e = run.ks.entry(0, b"l")
        prefix = e.body.prefix(0, liststore.KIND)
        recs = [(k[len(prefix):], v) for k, v in run.records(prefix)]
        assert [v for _, v in recs] == [b"a", b"", b"ccc", b"\x00\xff"]
        run("COPY", "l", "c")
        c = run.ks.entry(0, b"c")
        assert c.body.version != e.body.version
        cp = c.body.prefix(0, liststore.KIND)
        assert [(k[len(cp):], v) for k, v in run.records(cp)] == recs
        run("RENAME", "l", "r")
        assert run.ks.entry(0, b"r").body.version == e.body.version
        assert [(k[len(prefix):], v) for k, v in run.records(prefix)] == recs
        run("MOVE", "r", 2)
        m = run.ks.entry(2, b"r")
        mp = m.body.prefix(2, liststore.KIND)
        assert [(k[len(mp):], v) for k, v in run.records(mp)] == recs


# -- blocking, against kvdb alone -------------------------------------------------------------

@pytest.fixture(scope="module", params=["fastlane", "general"])
def srv(tmp_path_factory, request):
    with ServerProcess(tmp_path_factory.mktemp("lists"), "--sync", "normal", env=lane_env(request.param)) as s:
        yield s


@pytest.fixture
def r(srv):
    c = srv.client()
    c.flushall()
    yield c
    c.close()


def _blocked(r, n, timeout=5.0):
    """Waits until the server reports n blocked clients."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.info("clients")["blocked_clients"] == n:
            return
        time.sleep(0.01)
    raise AssertionError(f"never reached {n} blocked clients (now {r.info('clients')['blocked_clients']})")


class Call(threading.Thread):
    """Runs one command on its own connection; .result/.error/.elapsed afterwards."""

    def __init__(self, srv, *args):
        super().__init__(daemon=True)
        self.client = srv.client(socket_timeout=20)
        self.args = args
        self.result = self.error = self.elapsed = None

    def run(self):
        start = time.monotonic()
        try:
            self.result = self.client.execute_command(*self.args)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        self.elapsed = time.monotonic() - start
        self.client.close()

    def value(self, timeout=10):
        self.join(timeout)
        assert not self.is_alive(), f"{self.args} still blocked"
        if self.error is not None:
            raise self.error
        return list(self.result) if isinstance(self.result, tuple) else self.result


def test_blpop_woken_by_another_client(srv, r):
    t = Call(srv, "BLPOP", "q", "other", 10)
    t.start()
    _blocked(r, 1)
    assert r.ping()  # a blocked client does not block others
    r.set("unrelated", "v")
    assert t.is_alive()
    r.rpush("q", "job1", "job2")
    assert t.value() == [b"q", b"job1"]
    assert t.elapsed < 5
    assert r.lrange("q", 0, -1) == [b"job2"]
    _blocked(r, 0)


def test_brpop_and_blmpop_woken(srv, r):
    t = Call(srv, "BRPOP", "q1", "q2", 10)
    t.start()
    _blocked(r, 1)
    r.rpush("q2", "a", "b")
    assert t.value() == [b"q2", b"b"]
    t = Call(srv, "BLMPOP", 10, 2, "m1", "m2", "LEFT", "COUNT", 3)
    t.start()
    _blocked(r, 1)
    r.rpush("m2", "x", "y", "z", "w")
    assert t.value() == [b"m2", [b"x", b"y", b"z"]]
    assert r.lrange("m2", 0, -1) == [b"w"]


def test_fifo_per_key(srv, r):
    first = Call(srv, "BLPOP", "q", 10)
    first.start()
    _blocked(r, 1)
    second = Call(srv, "BLPOP", "q", 10)
    second.start()
    _blocked(r, 2)
    r.rpush("q", "one")
    assert first.value() == [b"q", b"one"]
    time.sleep(0.1)
    assert second.is_alive()
    r.rpush("q", "two")
    assert second.value() == [b"q", b"two"]
    # Two waiters served by one push of two elements, oldest first.
    a = Call(srv, "BRPOP", "q", 10)
    a.start()
    _blocked(r, 1)
    b = Call(srv, "BRPOP", "q", 10)
    b.start()
    _blocked(r, 2)
    r.rpush("q", "x", "y")
    assert a.value() == [b"q", b"y"]
    assert b.value() == [b"q", b"x"]


def test_timeout(srv, r):
    t = Call(srv, "BLPOP", "nx", "0.3")
    t.start()
    assert t.value() is None
    assert 0.25 <= t.elapsed < 2.0
    t = Call(srv, "BLMOVE", "nx", "d", "LEFT", "LEFT", "0.05")
    t.start()
    assert t.value() is None
    assert 0.04 <= t.elapsed < 1.0  # milliseconds, not whole seconds
    t = Call(srv, "BLMPOP", "0.1", 1, "nx", "LEFT")
    t.start()
    assert t.value() is None
    _blocked(r, 0)


def test_blmove_and_brpoplpush_woken(srv, r):
    t = Call(srv, "BLMOVE", "src", "dst", "RIGHT", "LEFT", 10)
    t.start()
    _blocked(r, 1)
    r.rpush("src", "a", "b")
    assert t.value() == b"b"
    assert r.lrange("dst", 0, -1) == [b"b"]
    assert r.lrange("src", 0, -1) == [b"a"]
    # A chain: BRPOPLPUSH into a list another client waits on.
    waiter = Call(srv, "BLPOP", "stage2", 10)
    waiter.start()
    _blocked(r, 1)
    mover = Call(srv, "BRPOPLPUSH", "stage1", "stage2", 10)
    mover.start()
    _blocked(r, 2)
    r.lpush("stage1", "item")
    assert mover.value() == b"item"
    assert waiter.value() == [b"stage2", b"item"]
    assert r.exists("stage1", "stage2") == 0


def test_blocking_inside_multi_answers_at_once(srv, r):
    pipe = r.pipeline(transaction=True)
    pipe.blpop(["nx"], 0)
    pipe.execute_command("BLMOVE", "nx", "d", "LEFT", "LEFT", 0)
    pipe.execute_command("BLMPOP", 0, 1, "nx", "LEFT")
    start = time.monotonic()
    assert pipe.execute() == [None, None, None]
    assert time.monotonic() - start < 2


def test_push_in_multi_wakes_after_exec(srv, r):
    t = Call(srv, "BLPOP", "q", 10)
    t.start()
    _blocked(r, 1)
    other = srv.client(single_connection_client=True)  # MULTI state lives on one connection
    other.execute_command("MULTI")
    other.execute_command("RPUSH", "q", "a")
    other.execute_command("LPOP", "q")
    time.sleep(0.2)
    assert t.is_alive()
    assert other.execute_command("EXEC") == [1, b"a"]
    time.sleep(0.2)
    assert t.is_alive()  # the push and the pop committed together: nothing was left for it
    other.execute_command("MULTI")
    other.execute_command("RPUSH", "q", "b")
    time.sleep(0.2)
    assert t.is_alive()
    other.execute_command("EXEC")
    assert t.value() == [b"q", b"b"]
    other.close()


def test_disconnected_waiter_is_dropped(srv, r):
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
    _blocked(r, 1)
    s.close()
    _blocked(r, 0)
    r.rpush("q", "kept")
    assert r.lrange("q", 0, -1) == [b"kept"]
    # The next waiter in line gets served when the one before it has gone.
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$2\r\nq2\r\n$1\r\n0\r\n")
    _blocked(r, 1)
    t = Call(srv, "BLPOP", "q2", 10)
    t.start()
    _blocked(r, 2)
    s.close()
    _blocked(r, 1)
    r.rpush("q2", "v")
    assert t.value() == [b"q2", b"v"]


def test_waiter_ignores_key_of_another_type(srv, r):
    t = Call(srv, "BLPOP", "q", 10)
    t.start()
    _blocked(r, 1)
    r.set("q", "string")
    time.sleep(0.1)
    assert t.is_alive()
    r.delete("q")
    r.rpush("q", "v")
    assert t.value() == [b"q", b"v"]


def test_lmpop_keys_obey_acl(srv, r):
    r.execute_command("ACL", "SETUSER", "worker", "on", ">pw", "~jobs:*", "+@all")
    try:
        w = srv.client(username="worker", password="pw")
        r.rpush("jobs:a", "1")
        r.rpush("secret", "s")
        with pytest.raises(redis.exceptions.NoPermissionError, match="'secret' key"):
            w.execute_command("LMPOP", 2, "secret", "jobs:a", "LEFT")
        with pytest.raises(redis.exceptions.NoPermissionError, match="'secret' key"):
            w.execute_command("BLMPOP", "0.01", 2, "jobs:a", "secret", "LEFT")
        assert w.execute_command("LMPOP", 1, "jobs:a", "LEFT") == [b"jobs:a", [b"1"]]
        assert r.lrange("secret", 0, -1) == [b"s"]
        assert any(e["object"] == "secret" for e in r.acl_log())
        w.close()
    finally:
        r.execute_command("ACL", "DELUSER", "worker")


# -- a large list ------------------------------------------------------------------------------

def test_large_list(srv, r):
    n, chunk = 200_000, 2000
    pipe = r.pipeline(transaction=False)
    for start in range(0, n, chunk):
        pipe.rpush("big", *[f"e{i}" for i in range(start, start + chunk)])
    assert pipe.execute()[-1] == n
    assert r.llen("big") == n
    assert r.lindex("big", n // 2) == f"e{n // 2}".encode()
    assert r.lindex("big", -1) == f"e{n - 1}".encode()
    assert r.lrange("big", 100_000, 100_004) == [f"e{i}".encode() for i in range(100_000, 100_005)]
    assert r.lrange("big", -3, -1) == [f"e{i}".encode() for i in range(n - 3, n)]
    assert r.lset("big", 150_000, "changed")
    assert r.lindex("big", 150_000) == b"changed"
    assert r.lpos("big", "e199990") == 199_990
    assert r.lpos("big", "e50", maxlen=10) is None
    assert r.lpos("big", "e5", maxlen=10) == 5
    # An insert near the tail moves the short side only; positions stay dense.
    assert r.linsert("big", "BEFORE", "e199995", "ins") == n + 1
    assert r.lindex("big", 199_995) == b"ins"
    assert r.lindex("big", n // 2) == f"e{n // 2}".encode()
    assert r.lpop("big", 3) == [b"e0", b"e1", b"e2"]
    assert r.rpop("big") == f"e{n - 1}".encode()
    # A trim keeping a middle slice (rewritten under a new version) and the list still works.
    assert r.ltrim("big", 1000, 1999)
    assert r.llen("big") == 1000
    assert r.lindex("big", 0) == b"e1003"
    assert r.lrange("big", -1, -1) == [b"e2002"]
    r.lpush("big", "head")
    assert r.lrange("big", 0, 1) == [b"head", b"e1003"]
