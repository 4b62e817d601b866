"""Sets: the same replies as a reference redis-server (RESP2 and RESP3), properties of
the random commands, keyspace notifications, and a large set served without loading it."""
import random
import time

import pytest

from tests.lanepair import LANE_IDS, LANE_PARAMS, lane_pair
from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")


@pytest.fixture(scope="module", params=LANE_PARAMS, ids=LANE_IDS)
def pair(request, tmp_path_factory):
    # RESP2 and RESP3, each with the C fast lane on and off (tests/lanepair.py).
    protocol, lane = request.param
    with lane_pair(tmp_path_factory, protocol, lane) as p:
        yield p


@pytest.fixture(autouse=True)
def clean(request):
    if "pair" in request.fixturenames:
        request.getfixturevalue("pair").flush()


SET_REPLIES = ("SMEMBERS", "SINTER", "SUNION", "SDIFF")


def same_set(pair, *args):
    """A reply whose order Redis leaves open: compared unordered, and under RESP3 also by
    type (both must send a RESP3 set, which redis-py parses as a Python set)."""
    got, want = pair.both(*args)
    assert got[0] == want[0] == "ok", (args, got, want)
    assert type(got[1]) is type(want[1]), (args, got, want)
    assert sorted(got[1]) == sorted(want[1]), (args, got, want)
    return got[1]


def fill(pair, key, *members):
    pair.same("SADD", key, *members)


# -- members ------------------------------------------------------------------------------

def test_add_remove_and_membership(pair):
    pair.same("SADD", "s", "a", "b", "c", "a")
    pair.same("SADD", "s", "c", "d")
    pair.same("SADD", "s", "")
    pair.same("SCARD", "s")
    pair.same("SCARD", "nokey")
    pair.same("SISMEMBER", "s", "a")
    pair.same("SISMEMBER", "s", "zz")
    pair.same("SISMEMBER", "nokey", "a")
    pair.same("SMISMEMBER", "s", "a", "zz", "", "a")
    pair.same("SMISMEMBER", "nokey", "a", "b")
    same_set(pair, "SMEMBERS", "s")
    same_set(pair, "SMEMBERS", "nokey")
    pair.same("TYPE", "s")
    pair.same("SREM", "s", "a", "a", "zz")
    pair.same("SREM", "nokey", "a")
    pair.same("SREM", "s", "b", "c", "d", "")
    pair.same("EXISTS", "s")
    pair.same("SADD", "n", 1, 2, 3, -5, "1.5", 10**20)
    same_set(pair, "SMEMBERS", "n")
    pair.same("SISMEMBER", "n", "01")
    pair.same("SISMEMBER", "n", "-5")


def test_binary_members(pair):
    members = [b"\x00", b"\x00\x00", b"\xff", b"\xff\xff\x00", b"a\r\nb", b"\x01\x02"]
    pair.same("SADD", "b", *members)
    same_set(pair, "SMEMBERS", "b")
    for m in members:
        pair.same("SISMEMBER", "b", m)
    pair.same("SREM", "b", b"\x00")
    pair.same("SISMEMBER", "b", b"\x00")
    pair.same("SISMEMBER", "b", b"\x00\x00")
    same_set(pair, "SMEMBERS", "b")


def test_arity_and_wrong_type(pair):
    for args in (("SADD", "s"), ("SREM", "s"), ("SMEMBERS",), ("SMEMBERS", "a", "b"), ("SISMEMBER", "s"),
                 ("SISMEMBER", "s", "a", "b"), ("SMISMEMBER", "s"), ("SCARD",), ("SCARD", "a", "b"), ("SPOP",),
                 ("SRANDMEMBER",), ("SMOVE", "a", "b"), ("SMOVE", "a", "b", "c", "d"), ("SINTER",), ("SUNION",),
                 ("SDIFF",), ("SINTERSTORE", "d"), ("SUNIONSTORE", "d"), ("SDIFFSTORE", "d"), ("SINTERCARD", 1),
                 ("SSCAN", "s"), ("SPOP", "s", 1, 2), ("SRANDMEMBER", "s", 1, 2)):
        pair.same_error(*args)
    pair.same("SET", "str", "v")
    pair.same("HSET", "h", "f", "v")
    fill(pair, "s", "a")
    for key in ("str", "h"):
        for args in (("SADD", key, "a"), ("SREM", key, "a"), ("SMEMBERS", key), ("SISMEMBER", key, "a"),
                     ("SMISMEMBER", key, "a"), ("SCARD", key), ("SPOP", key), ("SPOP", key, 2), ("SPOP", key, 0),
                     ("SRANDMEMBER", key), ("SRANDMEMBER", key, 2), ("SRANDMEMBER", key, 0), ("SMOVE", key, "s", "a"),
                     ("SMOVE", "s", key, "a"), ("SINTER", "s", key), ("SINTER", "nokey", key), ("SUNION", key, "s"),
                     ("SDIFF", "s", key), ("SDIFF", "nokey", key), ("SINTERSTORE", "d", "s", key),
                     ("SUNIONSTORE", "d", key), ("SDIFFSTORE", "d", "s", key), ("SINTERCARD", 2, "s", key),
                     ("SSCAN", key, 0)):
            pair.same_error(*args)
    pair.same("GET", "str")
    pair.same("SMEMBERS", "s")
    pair.same_error("GET", "s")
    pair.same_error("HGET", "s", "f")
    pair.same_error("LPUSH", "s", "x", prefix_only=True)


def test_set_after_expiry_and_overwrite(pair):
    fill(pair, "s", "a", "b")
    pair.same("PEXPIRE", "s", 30)
    time.sleep(0.06)
    pair.same("SCARD", "s")
    pair.same("SADD", "s", "c")
    same_set(pair, "SMEMBERS", "s")
    pair.same("TTL", "s")
    pair.same("SET", "s", "now a string")
    pair.same("GET", "s")
    pair.same("DEL", "s")
    pair.same("SADD", "s", "fresh")
    same_set(pair, "SMEMBERS", "s")


def test_rename_copy_del(pair):
    fill(pair, "s", *[f"m{i}" for i in range(100)])
    pair.same("RENAME", "s", "r")
    pair.same("SCARD", "r")
    pair.same("EXISTS", "s")
    pair.same("COPY", "r", "c")
    pair.same("SREM", "r", "m1", "m2")
    pair.same("SCARD", "c")
    pair.same("SCARD", "r")
    pair.same("SISMEMBER", "c", "m1")
    same_set(pair, "SMEMBERS", "c")
    pair.same("DEL", "r", "c")
    pair.same("SCARD", "c")
    pair.same("SADD", "c", "x")
    same_set(pair, "SMEMBERS", "c")


# -- SMOVE ----------------------------------------------------------------------------------

def test_smove(pair):
    fill(pair, "a", "x", "y")
    fill(pair, "b", "y", "z")
    pair.same("SMOVE", "a", "b", "x")
    pair.same("SMOVE", "a", "b", "y")      # already in b: removed from a only
    pair.same("EXISTS", "a")               # a emptied: deleted
    same_set(pair, "SMEMBERS", "b")
    pair.same("SMOVE", "b", "b", "z")      # same key: membership only
    pair.same("SMOVE", "b", "b", "nope")
    pair.same("SMOVE", "nokey", "b", "z")
    pair.same("SMOVE", "b", "b2", "nope")
    pair.same("EXISTS", "b2")
    pair.same("SMOVE", "b", "new", "z")
    same_set(pair, "SMEMBERS", "new")
    same_set(pair, "SMEMBERS", "b")
    pair.same("SET", "str", "v")
    pair.same("SMOVE", "nokey", "str", "z")  # a missing source wins over a wrong-type destination
    pair.same_error("SMOVE", "b", "str", "x")
    pair.same_error("SMOVE", "b", "str", "nope")
    pair.same_error("SMOVE", "str", "b", "x")
    same_set(pair, "SMEMBERS", "b")


# -- algebra --------------------------------------------------------------------------------

def test_algebra(pair):
    fill(pair, "a", *"abcdefg")
    fill(pair, "b", *"cdexyz")
    fill(pair, "c", *"aceg")
    fill(pair, "one", "e")
    for keys in (("a",), ("a", "b"), ("b", "a"), ("a", "b", "c"), ("a", "a"), ("a", "nokey"), ("nokey", "a"),
                 ("a", "one"), ("c", "b", "a", "one"), ("nokey",), ("nokey", "nokey2")):
        same_set(pair, "SINTER", *keys)
        same_set(pair, "SUNION", *keys)
        same_set(pair, "SDIFF", *keys)
        pair.same("SINTERCARD", len(keys), *keys)
        pair.same("SINTERCARD", len(keys), *keys, "LIMIT", 1)
        pair.same("SINTERCARD", len(keys), *keys, "LIMIT", 0)
        pair.same("SINTERCARD", len(keys), *keys, "limit", 2, "LIMIT", 100)
        for op in ("SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"):
            pair.same(op, "dst", *keys)
            pair.same("EXISTS", "dst")
            pair.same("TYPE", "dst")
            same_set(pair, "SMEMBERS", "dst")


def test_S5_store_destination(pair):
    """S5: a *STORE command reads its sources (the destination among them) before it replaces
    the destination, of any type, expiry included; an empty result deletes it."""
    fill(pair, "a", *"abc")
    fill(pair, "b", *"bcd")
    pair.same("SET", "dst", "string")
    pair.same("EXPIRE", "dst", 100)
    pair.same("SINTERSTORE", "dst", "a", "b")
    pair.same("TTL", "dst")
    same_set(pair, "SMEMBERS", "dst")
    pair.same("SADD", "big", *range(200))
    pair.same("SUNIONSTORE", "big", "big", "a")      # destination among the sources
    pair.same("SCARD", "big")
    pair.same("SDIFFSTORE", "a", "a", "b")
    same_set(pair, "SMEMBERS", "a")
    pair.same("SINTERSTORE", "a", "a", "nokey")      # empty result deletes the destination
    pair.same("EXISTS", "a")
    pair.same("SDIFFSTORE", "b", "b", "b")
    pair.same("EXISTS", "b")
    pair.same("SUNIONSTORE", "x", "nokey")
    pair.same("EXISTS", "x")
    pair.same("HSET", "h", "f", "v")
    pair.same("SUNIONSTORE", "h", "big")             # any type is replaced
    pair.same("TYPE", "h")
    pair.same("SCARD", "h")
    pair.same("SET", "str", "v")
    pair.same_error("SUNIONSTORE", "dst", "big", "str")
    same_set(pair, "SMEMBERS", "dst")                # unchanged by the failed command
    pair.same("SINTERSTORE", "big", "big")
    pair.same("SCARD", "big")


def test_sintercard_errors(pair):
    fill(pair, "a", *"abc")
    fill(pair, "b", *"bcd")
    for args in (("x", "a"), (0, "a"), (-1, "a"), (3, "a", "b"), (1, "a", "LIMIT", -1), (1, "a", "LIMIT", "x"),
                 (1, "a", "LIMIT"), (1, "a", "FOO"), (1, "a", "b"), (2, "a", "b", "LIMIT", 1, "x"),
                 ("9223372036854775808", "a"), (1, "a", "LIMIT", "9223372036854775808")):
        pair.same_error("SINTERCARD", *args)
    pair.same("SINTERCARD", 2, "a", "b", "LIMIT", "9223372036854775807")
    pair.same("SINTERCARD", 1, "LIMIT")                  # a key named LIMIT
    pair.same("SINTERCARD", 1, "a", "LIMIT", 2)


# -- random members -------------------------------------------------------------------------

def test_spop_srandmember_edges(pair):
    fill(pair, "s", *"abcde")
    for args in (("SPOP", "nokey"), ("SPOP", "nokey", 0), ("SPOP", "nokey", 3), ("SPOP", "s", 0),
                 ("SRANDMEMBER", "nokey"), ("SRANDMEMBER", "nokey", 3), ("SRANDMEMBER", "nokey", -3),
                 ("SRANDMEMBER", "s", 0), ("SRANDMEMBER", "nokey", 0)):
        pair.same(*args)
    for args in (("SPOP", "s", -1), ("SPOP", "s", "x"), ("SPOP", "s", "1.5"), ("SPOP", "nokey", -1),
                 ("SPOP", "s", "9223372036854775808"), ("SRANDMEMBER", "s", "x"), ("SRANDMEMBER", "s", "-0"),
                 ("SRANDMEMBER", "s", "-9223372036854775808"), ("SRANDMEMBER", "nokey", "x"),
                 ("SRANDMEMBER", "s", "9223372036854775808"), ("SPOP", "s", 1, 2), ("SRANDMEMBER", "s", 1, "x")):
        pair.same_error(*args)
    pair.same("SCARD", "s")
    same_set(pair, "SRANDMEMBER", "s", 5)             # count >= size: the whole set, an array
    same_set(pair, "SRANDMEMBER", "s", 100)
    pair.same("SRANDMEMBER", "s", 9223372036854775807, unordered=True)
    same_set(pair, "SPOP", "s", 100)                  # the whole set, a RESP3 set; the key goes
    pair.same("EXISTS", "s")
    pair.same("SADD", "one", "x")
    pair.same("SPOP", "one")
    pair.same("EXISTS", "one")
    pair.same("SADD", "one", "x")
    pair.same("SRANDMEMBER", "one")
    pair.same("SRANDMEMBER", "one", -3)
    pair.same("SPOP", "one", 1)
    pair.same("EXISTS", "one")


@pytest.mark.parametrize("size", [5, 40, 300])
def test_random_properties(pair, size):
    members = [f"m{i}".encode() for i in range(size)]
    fill(pair, "s", *members)
    universe = set(members)
    for count in (1, 2, size // 3, size // 2, size - 1):
        if count < 1:
            continue
        got, want = pair.both("SRANDMEMBER", "s", count)
        assert type(got[1]) is type(want[1]) is list
        assert len(got[1]) == len(want[1]) == count
        assert len(set(got[1])) == count and set(got[1]) <= universe
        got, want = pair.both("SRANDMEMBER", "s", -count * 3)
        assert type(got[1]) is type(want[1]) is list
        assert len(got[1]) == len(want[1]) == count * 3 and set(got[1]) <= universe
    got, want = pair.both("SRANDMEMBER", "s")
    assert got[1] in universe and want[1] in universe
    # SPOP: distinct members, removed; both servers end with the same cardinality.
    left = set(universe)
    for count in (None, 1, 2, size // 4):
        if count == 0:
            continue
        args = ("SPOP", "s") if count is None else ("SPOP", "s", count)
        got, want = pair.both(*args)
        if count is None:
            assert got[1] in left
            popped = {got[1]}
        else:
            assert type(got[1]) is type(want[1])
            assert len(got[1]) == len(want[1]) == min(count, len(left))
            popped = set(got[1])
            assert len(popped) == len(got[1]) and popped <= left
        left -= popped
        assert pair.kv.execute_command("SISMEMBER", "s", next(iter(popped))) == 0
        pair.same("SCARD", "s")
    assert set(pair.kv.execute_command("SMEMBERS", "s")) == left


def test_random_covers_every_member(pair):
    """Every member of a (sampled, not exactly read) set can come out."""
    members = [f"{i}" for i in range(200)] + ["", "\x00", "zzzzzzzzzzzzzzzzzzzzzzzzzz1", "zzzzzzzzzzzzzzzzzzzzzzzzzz2"]
    pair.kv.execute_command("SADD", "s", *members)
    seen = set()
    for _ in range(60):
        seen.update(pair.kv.execute_command("SRANDMEMBER", "s", -100))
    assert seen == {m.encode() for m in members}


# -- SSCAN ------------------------------------------------------------------------------------

def _sscan_all(client, key, *opts):
    cursor, out, calls = b"0", [], 0
    while True:
        cursor, batch = client.execute_command("SSCAN", key, cursor, *opts)
        out.extend(batch)
        calls += 1
        if cursor in (b"0", 0, "0"):
            return out, calls


def test_sscan(pair):
    members = [f"k{i}" for i in range(57)] + ["other", "", "k\x00"]
    fill(pair, "s", *members)
    for opts in ((), ("COUNT", 5), ("COUNT", 1), ("MATCH", "k1*"), ("MATCH", "k1*", "COUNT", 3), ("COUNT", 1000),
                 ("MATCH", "nothing*")):
        got, calls = _sscan_all(pair.kv, "s", *opts)
        want, _ = _sscan_all(pair.ref, "s", *opts)
        assert len(got) == len(set(got))
        assert sorted(got) == sorted(want), opts
    pair.same("SSCAN", "nokey", 0)
    pair.same("SSCAN", "nokey", 0, "COUNT", 0)       # no key: options are not read
    for args in (("s", "x"), ("s", "0", "COUNT", 0), ("s", "0", "COUNT", "x"), ("s", "0", "MATCH"),
                 ("s", "0", "NOVALUES"), ("s", "0", "FOO", "bar"), ("s", "1.5")):
        pair.same_error("SSCAN", *args)
    fill(pair, "small", 1, 2, 3, 4)
    pair.same("SADD", "ints", *range(300))
    pair.same("SADD", "ints", -5, "9223372036854775807")
    for key, opts in (("small", (0,)), ("small", (0, "COUNT", 1)), ("small", ("-1",)),
                      ("small", ("+7", "MATCH", "[12]")), ("small", ("18446744073709551615",)),
                      ("ints", (0, "COUNT", 2)), ("ints", (0, "MATCH", "1?"))):
        # intset sets: everything in one reply, whatever the cursor (Redis 7.2 does the same
        # for listpack sets of up to 128 short members; the 7.0 reference has no such sets)
        got, want = pair.both("SSCAN", key, *opts)
        assert got[0] == want[0] == "ok", (key, opts, got, want)
        assert got[1][0] == want[1][0] == b"0" and sorted(got[1][1]) == sorted(want[1][1]), (key, opts)
    pair.same_error("SSCAN", "small", " 1")


def test_sscan_continues_after_changes(tmp_path):
    with ServerProcess(tmp_path) as srv:
        r = srv.client()
        r.sadd("s", *[f"m{i:03d}" for i in range(300)])      # over 128 members: paged
        cursor, batch = r.sscan("s", 0, count=30)
        seen = set(batch)
        r.srem("s", *batch[:5])
        r.sadd("s", "zzz")
        while cursor:
            cursor, batch = r.sscan("s", cursor, count=30)
            seen.update(batch)
        assert {f"m{i:03d}".encode() for i in range(300)} <= seen
        assert b"zzz" in seen


# -- transactions and notifications ------------------------------------------------------------

def test_multi_exec(pair):
    for client in (pair.kv, pair.ref):
        p = client.pipeline(transaction=True)
        p.execute_command("SADD", "s", "a", "b", "c")
        p.execute_command("SREM", "s", "a")
        p.execute_command("SMOVE", "s", "t", "b")
        p.execute_command("SINTERSTORE", "u", "s", "t")
        p.execute_command("SUNIONSTORE", "v", "s", "t")
        p.execute_command("SCARD", "v")
        p.execute_command("SPOP", "s", 10)
        p.execute_command("SCARD", "s")
        result = p.execute()
        assert result[:6] == [3, 1, 1, 0, 2, 2] and list(result[6]) == [b"c"] and result[7] == 0
    same_set(pair, "SMEMBERS", "v")


def _events(client):
    out = []
    while True:
        msg = client.get_message(timeout=0.3)
        if msg is None:
            return out
        if msg["type"] == "pmessage":
            out.append((msg["channel"], msg["data"]))


def test_keyspace_notifications(pair):
    subs = []
    for client in (pair.kv, pair.ref):
        client.config_set("notify-keyspace-events", "KEA")
        port = client.connection_pool.connection_kwargs["port"]
        sub = redis.Redis(host="127.0.0.1", port=port).pubsub()
        sub.psubscribe("__key*@0__:*")
        sub.get_message(timeout=1)
        subs.append(sub)
    try:
        script = [("SADD", "s", "a", "b", "c"), ("SADD", "s", "a"), ("SREM", "s", "zz"), ("SREM", "s", "a"),
                  ("SMOVE", "s", "t", "b"), ("SMOVE", "s", "t", "c"), ("SADD", "s", "x", "y"),
                  ("SINTERSTORE", "i", "s", "t"), ("SUNIONSTORE", "u", "s", "t"), ("SDIFFSTORE", "d", "s", "t"),
                  ("SDIFFSTORE", "u", "nokey"), ("SPOP", "s"), ("SPOP", "s", 0), ("SPOP", "s", 5), ("SPOP", "t", 1),
                  ("SADD", "s", "1", "2", "3"), ("SPOP", "s", 2), ("SREM", "s", "1", "2", "3"),
                  ("SINTERSTORE", "nodst", "nokey")]
        for args in script:
            pair.both(*args)
        got, want = _events(subs[0]), _events(subs[1])
        assert got == want
    finally:
        for sub in subs:
            sub.close()
        for client in (pair.kv, pair.ref):
            client.config_set("notify-keyspace-events", "")


# -- randomized differential ----------------------------------------------------------------------

def test_random_commands(pair):
    rnd = random.Random(12)
    keys = ["a", "b", "c", "d"]
    alphabet = [str(i) for i in range(12)] + ["", "x\x00"]

    def ms(lo=1, hi=5):
        return [rnd.choice(alphabet) for _ in range(rnd.randint(lo, hi))]

    pair.same("SET", "d", "string")
    for step in range(600):
        k = rnd.choice(keys)
        r = rnd.random()
        if r < 0.25:
            args = ("SADD", k, *ms())
        elif r < 0.40:
            args = ("SREM", k, *ms())
        elif r < 0.48:
            args = ("SMOVE", k, rnd.choice(keys), rnd.choice(alphabet))
        elif r < 0.60:
            args = (rnd.choice(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), rnd.choice(keys[:3]),
                    *rnd.sample(keys, rnd.randint(1, 3)))
        elif r < 0.72:
            args = (rnd.choice(["SINTER", "SUNION", "SDIFF"]), *rnd.sample(keys, rnd.randint(1, 3)))
        elif r < 0.78:
            n = rnd.randint(1, 3)
            args = ("SINTERCARD", n, *rnd.sample(keys, n), *(("LIMIT", rnd.randint(0, 4)) if rnd.random() < .5 else ()))
        elif r < 0.84:
            args = ("SMISMEMBER", k, *ms())
        elif r < 0.88:
            args = ("SPOP", k, rnd.choice([0, 20]))         # 0 or the whole set: deterministic
        elif r < 0.92:
            args = ("SRANDMEMBER", k, rnd.choice([0, 20]))
        elif r < 0.96:
            args = ("SCARD", k)
        else:
            args = ("SMEMBERS", k)
        got, want = pair.both(*args)
        if got[0] == "ok" and isinstance(want[1], (list, set)):
            assert type(got[1]) is type(want[1]), (step, args, got, want)
            got, want = ("ok", sorted(got[1])), ("ok", sorted(want[1]))
        assert got == want, (step, args, got, want)
        if step % 50 == 0:
            for key in keys:
                pair.same("TYPE", key)
    for key in keys[:3]:
        pair.same("SMEMBERS", key, unordered=True)
    pair.same("DBSIZE")


# -- the records themselves (docs/format/server-keys.md (Sets)), in process -----------------------

def _members(run, key, db=0):
    """(version, [(member record key after the prefix, value)]) of a set, or (None, [])."""
    from kvdb.server.setstore import KIND
    e = run.ks.entry(db, key)
    if e is None:
        return None, []
    prefix = e.body.prefix(db, KIND)
    return e.body.version, [(k[len(prefix):], v) for k, v in run.records(prefix)]


def test_S1_count_is_the_member_records_and_never_zero(tmp_path):
    """S1: the meta record counts exactly the member records, and is never 0: removing the
    last member (SREM, SPOP, SMOVE) deletes the key with its records, and a *STORE whose
    result is empty deletes its destination and writes nothing."""
    from kvdb.server.keyspace import meta_key
    from kvdb.server.setstore import KIND
    from tests.inprocess import InProcess

    def counted(key):
        e = run.ks.entry(0, key)
        assert e.body.count == len(_members(run, key)[1]) > 0, key
    with InProcess(tmp_path) as run:
        run("SADD", "s", *"abcdef")
        run("SADD", "s", "a", "g")
        run("SREM", "s", "b", "zz")
        run("SMOVE", "s", "t", "a")
        run("SPOP", "s", 2)
        run("SADD", "u", "x")
        run("SINTERSTORE", "i", "s", "u")            # empty: nothing written
        run("SUNIONSTORE", "n", "s", "t", "u")
        for key in (b"s", b"t", b"u", b"n"):
            counted(key)
        assert run.ks.entry(0, b"i") is None
        prefixes = [run.ks.entry(0, k).body.prefix(0, KIND) for k in (b"s", b"t", b"u")]
        left = run("SMEMBERS", "s")
        run("SREM", "s", *left)
        run("SPOP", "t", 5)
        run("SMOVE", "u", "s2", "x")
        for key, prefix in zip((b"s", b"t", b"u"), prefixes):
            assert run.db.get(meta_key(0, key)) is None and run.records(prefix) == [], key
        run("SINTERSTORE", "n", "s2", "nokey")       # an empty result deletes the destination
        assert run.ks.entry(0, b"n") is None


def test_S2_a_member_has_one_record_and_is_counted_once(tmp_path):
    """S2: a member has exactly one record; SADD counts a member as added only when it was
    absent, and a member given twice in one command once."""
    from tests.inprocess import InProcess
    with InProcess(tmp_path) as run:
        assert run("SADD", "s", "a", "b", "a", "b", "c") == 3
        assert run("SADD", "s", "c", "d", "d") == 1
        _, recs = _members(run, b"s")
        assert [k for k, _ in recs] == [b"a", b"b", b"c", b"d"]
        assert run.ks.entry(0, b"s").body.count == 4
        assert run("SISMEMBER", "s", "d") == 1 and run("SISMEMBER", "s", "e") == 0


def test_S3_member_records_hold_only_the_member(tmp_path):
    """S3: a member is its record's key suffix and the value is empty, so COPY and MOVE copy
    the records verbatim under a new version (and database), and RENAME moves only the meta
    record."""
    from tests.inprocess import InProcess
    with InProcess(tmp_path) as run:
        run("SADD", "s", "a", "", b"\x00\xff", "long" * 50)
        version, recs = _members(run, b"s")
        assert all(v == b"" for _, v in recs) and len(recs) == 4
        run("COPY", "s", "c")
        copied, crecs = _members(run, b"c")
        assert copied != version and crecs == recs
        run("RENAME", "s", "r")
        assert _members(run, b"r") == (version, recs)
        run("MOVE", "r", 5)
        _, mrecs = _members(run, b"r", db=5)
        assert mrecs == recs


# -- kvdb only: limits and a large set --------------------------------------------------------

def test_S4_member_size_limit(tmp_path):
    """S4: no member is longer than MAX_NAME: SADD and SMOVE refuse the whole command before
    writing; lookups of a longer member answer "absent"."""
    import kvdb
    from kvdb.server.keyspace import MAX_NAME
    with ServerProcess(tmp_path) as srv:
        r = srv.client()
        r.sadd("s", "a")
        big = b"x" * (MAX_NAME + 1)
        with pytest.raises(redis.ResponseError, match=f"member is {MAX_NAME + 1} bytes"):
            r.sadd("s", "b", big)
        assert r.smembers("s") == {b"a"}
        assert r.sismember("s", big) == 0
        assert r.smismember("s", [big, "a"]) == [0, 1]
        assert r.srem("s", big) == 0
        assert r.smove("s", "t", big) == 0
        assert r.sadd("s", b"y" * MAX_NAME) == 1
        assert r.sismember("s", b"y" * MAX_NAME) == 1
        assert kvdb.MAX_KEY_SIZE > MAX_NAME
        long_key = b"k" * (kvdb.MAX_KEY_SIZE + 10)            # names of any length work
        assert r.sadd(long_key, "a", "b") == 2
        assert r.smembers(long_key) == {b"a", b"b"}
        assert r.sunionstore(long_key + b"2", [long_key, "s"]) == 3
        assert r.smove(long_key + b"2", long_key, b"y" * MAX_NAME) == 1
        assert r.scard(long_key) == 3 and r.type(long_key) == b"set"


def test_large_set(tmp_path):
    n = 200_000
    with ServerProcess(tmp_path) as srv:
        r = srv.client()
        start = time.monotonic()
        p = r.pipeline(transaction=False)
        for i in range(0, n, 2000):
            p.sadd("big", *[str(j) for j in range(i, i + 2000)])
        assert sum(p.execute()) == n
        load = time.monotonic() - start
        assert r.scard("big") == n
        r.sadd("small", "5", "77", "123456", "x")
        start = time.monotonic()
        assert r.sismember("big", "199999") and not r.sismember("big", "200000")
        assert r.smismember("big", ["0", "x", "150000"]) == [1, 0, 1]
        assert r.sinter("small", "big") == {b"5", b"77", b"123456"}
        assert r.sintercard(2, ["big", "small"]) == 3
        assert r.execute_command("SINTERCARD", 1, "big", "LIMIT", 10) == 10
        assert r.sdiff("small", "big") == {b"x"}
        cursor, batch = r.sscan("big", 0, count=100)
        assert len(batch) == 100 and cursor
        picks = [r.srandmember("big") for _ in range(300)]
        assert all(0 <= int(m) < n for m in picks)
        assert len(set(picks)) > 200                      # spread over the set, not a few members
        many = r.srandmember("big", 1000)
        assert len(set(many)) == 1000
        rep = r.srandmember("big", -1000)
        assert len(rep) == 1000
        popped = r.spop("big", 500)
        assert len(set(popped)) == 500
        one = r.spop("big")
        assert r.scard("big") == n - 501
        assert not r.sismember("big", one) and not any(r.smismember("big", popped[:50]))
        queries = time.monotonic() - start
        assert r.sinterstore("dst", "big", "small") == len({b"5", b"77", b"123456"} - set(popped) - {one})
        assert r.delete("big") == 1 and r.scard("big") == 0
        assert load + queries < 20, (load, queries)
        assert queries < 5, queries


# -- the sampler, in-process ----------------------------------------------------------------------

def _sampler_db(tmp_path, members):
    import kvdb
    from kvdb.server.keyspace import Store
    db = kvdb.Database(str(tmp_path / "db"))
    prefix = b"\x01\x00s" + random.randbytes(8)
    tx = db.transaction()
    for m in members:
        tx.put(prefix + m, b"")
    tx.commit()
    return db, Store(db), prefix


@pytest.mark.parametrize("shape", ["decimal", "prefixed", "hex", "binary", "outliers"])
def test_sampler_spreads_over_members(tmp_path, shape):
    """Every member comes out, none much more often than its share (seeded: deterministic)."""
    from kvdb.server import setsample
    rnd = random.Random(7)
    n = 1000
    members = {
        "decimal": [str(i).encode() for i in range(n)],
        "prefixed": [b"user:%d" % i for i in range(n - 1)] + [b"admin"],
        "hex": [b"%032x" % rnd.getrandbits(128) for _ in range(n)],
        "binary": [rnd.randbytes(6) for _ in range(n)],
        "outliers": [b"a", b"b", b"c"] + [b"m:%06d" % rnd.randrange(10**6) for _ in range(n)] + [b"y", b"z"],
    }[shape]
    members = sorted(set(members))
    db, store, prefix = _sampler_db(tmp_path, members)
    try:
        random.seed(11)
        picks = 20 * len(members)
        counts = {}
        for _ in range(picks):
            m = setsample.Sampler(store, prefix, len(members)).pick()
            counts[m] = counts.get(m, 0) + 1
        assert set(counts) == set(members)
        assert max(counts.values()) < 20 * 3            # no member at 3 times its share
    finally:
        db.close()


def test_sampler_after_changes(tmp_path):
    """The cached shape of a set stays right: removed edge members are not returned, new
    members at the edges can come out."""
    with ServerProcess(tmp_path) as srv:
        r = srv.client()
        r.sadd("s", *[f"m{i:04d}" for i in range(1000)])
        r.srandmember("s")                              # learn the set
        r.srem("s", *[f"m{i:04d}" for i in range(40)], *[f"m{i:04d}" for i in range(960, 1000)])
        gone = {f"m{i:04d}".encode() for i in list(range(40)) + list(range(960, 1000))}
        for _ in range(300):
            assert r.srandmember("s") not in gone
        assert not gone & set(r.srandmember("s", -3000))
        r.sadd("s", "a0", "a1", "zz")
        seen = set()
        for _ in range(40):
            seen.update(r.srandmember("s", -1000))
        assert {b"a0", b"a1", b"zz"} <= seen
        popped = r.spop("s", 10)
        assert len(set(popped)) == 10 and not gone & set(popped)
        assert r.scard("s") == 923 - 10


def test_spop_pool_is_uniform(tmp_path):
    """SPOP's pool (setsample.pop_member): every member equally likely over many refills
    (a chi-square bound; seeded), and a run of pops never repeats a member of one pool."""
    from kvdb.server import setsample
    n = 400
    members = [b"m:%05d" % i for i in range(n)]
    db, store, prefix = _sampler_db(tmp_path, members)
    try:
        random.seed(5)
        setsample.forget_all()
        rounds = 40
        counts = dict.fromkeys(members, 0)
        per_pool = max(setsample.EXACT_LIMIT, n // setsample.POOL_RATIO)
        for i in range(rounds * n):
            if i % per_pool == 0:
                assert not setsample._pools.get(prefix)          # used up: the next pop refills it
                batch = set()
            m = setsample.pop_member(store, prefix, n)          # nothing is deleted: the set stays whole
            assert m not in batch
            batch.add(m)
            counts[m] += 1
        chi2 = sum((c - rounds) ** 2 / rounds for c in counts.values())
        assert chi2 < (n - 1) + 6 * (2 * (n - 1)) ** 0.5, chi2
        low = sum(counts[m] for m in members[:n // 2])
        assert abs(low - rounds * n / 2) < 0.02 * rounds * n, low     # no lean to either end
    finally:
        setsample.forget_all()
        db.close()


def test_spop_pool_skips_removed_members(tmp_path):
    """Members removed by anything but the pool's own pops (SREM, SMOVE) are not popped;
    a set with members too long for a pool falls back to the Sampler."""
    from kvdb.server import setsample
    members = [b"m:%05d" % i for i in range(300)]
    db, store, prefix = _sampler_db(tmp_path, members)
    try:
        setsample.forget_all()
        first = setsample.pop_member(store, prefix, 300)
        gone = set(members[::3]) - {first}
        tx = db.transaction()
        for m in gone | {first}:
            tx.discard(prefix + m)
        tx.commit()
        left = 300 - len(gone) - 1
        seen = {first}
        for _ in range(left):
            m = setsample.pop_member(store, prefix, left + 1)
            assert m not in gone and m not in seen
            seen.add(m)
            tx = db.transaction()
            tx.discard(prefix + m)
            tx.commit()
        assert seen == set(members) - gone
    finally:
        setsample.forget_all()
        db.close()
    long_members = [b"%06d" % i + b"x" * 16000 for i in range(1200)]
    db, store, prefix = _sampler_db(tmp_path / "long", long_members)
    try:
        assert setsample.pop_member(store, prefix, 1200) in long_members
        assert setsample._pools[prefix] is None                 # 300 x 16 KB is past POOL_BYTES
    finally:
        setsample.forget_all()
        db.close()


def test_spop_pool_selection_same_in_c(tmp_path):
    """fastsample.select and shuffle (C) pick and order exactly as setsample's Python loop
    and random.shuffle do, seeded alike."""
    from kvdb.server import setsample
    fastsample = pytest.importorskip("kvdb.server.fastsample")
    members = sorted({b"e:%09d" % random.Random(1).randrange(10**9) for _ in range(1)} |
                     {b"e:%09d" % i for i in random.Random(2).sample(range(10**9), 3000)})
    db, store, prefix = _sampler_db(tmp_path, members)
    try:
        for need, cap in ((750, 4 << 20), (3000, 4 << 20), (1, 4 << 20), (0, 4 << 20), (2000, 10_000)):
            picks = []
            for select in (setsample._select_py, fastsample.select):
                random.seed(need)
                with store.scan(prefix=prefix) as it:
                    picks.append(select(it, len(prefix), len(members), need, cap, setsample.POOL_OVERHEAD))
            assert picks[0] == picks[1]
            assert picks[0] is None if cap == 10_000 else len(picks[0]) == need
    finally:
        db.close()
    for n in (0, 1, 2, 3, 17, 1000, 4097):
        a, b = list(range(n)), list(range(n))
        random.seed(n)
        random.shuffle(a)
        random.seed(n)
        fastsample.shuffle(b)
        assert a == b
