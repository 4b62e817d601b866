"""Generic commands on every type (TYPE, SCAN TYPE, OBJECT, RENAME, COPY, MOVE, DEL,
the EXPIRE family, DBSIZE, INFO keyspace), the CONFIG options Redis tools set, and
CLIENT REPLY / CLIENT UNBLOCK / WAIT, compared with a reference redis-server in RESP2
and RESP3. The reference is Debian's redis-server (7.0 at the time of writing): where
Redis 7.2 differs from 7.0 (lists and small sets are listpacks, WAITAOF, the
set-max-listpack options) kvdb is checked against 7.2's documented behaviour directly.
In-process tests check that RENAME keeps a collection's version and COPY copies every
record of every kind under a new version."""
import random
import socket
import time

import pytest

import kvdb
from kvdb.server import keyspace as ksmod
from kvdb.server.keyspace import TYPE_SET, TYPE_ZSET, Keyspace, sub_prefix

redis = pytest.importorskip("redis")

TYPES = ("string", "hash", "list", "set", "zset", "stream")


@pytest.fixture
def p(pair):
    pair.flush()
    pair.both("SELECT", 0)
    return pair


def make(p, type_, key, n=3):
    """Creates key holding a value of type_ (n elements) on both servers."""
    if type_ == "string":
        p.same("SET", key, "value-of-" + key)
    elif type_ == "hash":
        p.same("HSET", key, *[x for i in range(n) for x in (f"f{i:04d}", f"v{i}")])
    elif type_ == "list":
        p.same("RPUSH", key, *[f"e{i}" for i in range(n)])
    elif type_ == "set":
        p.same("SADD", key, *[f"m{i}" for i in range(n)])
    elif type_ == "zset":
        p.same("ZADD", key, *[x for i in range(n) for x in (i, f"z{i}")])
    else:
        for i in range(n):
            p.same("XADD", key, f"{i + 1}-1", "field", f"x{i}")


def contents(p, type_, key):
    """Asserts key's whole value is the same on both servers."""
    if type_ == "string":
        p.same("GET", key)
    elif type_ == "hash":
        p.same("HGETALL", key, unordered=True)
    elif type_ == "list":
        p.same("LRANGE", key, 0, -1)
    elif type_ == "set":
        p.same("SMEMBERS", key, unordered=True)
    elif type_ == "zset":
        p.same("ZRANGE", key, 0, -1, "WITHSCORES")
    else:
        p.same("XRANGE", key, "-", "+")


def change(p, type_, key):
    """Writes to key (to show a copy is independent of its source)."""
    cmd = {"string": ("APPEND", key, "+"), "hash": ("HSET", key, "new", "1"), "list": ("RPUSH", key, "new"),
           "set": ("SADD", key, "new"), "zset": ("ZADD", key, 99, "new"),
           "stream": ("XADD", key, "99-1", "f", "new")}[type_]
    p.same(*cmd)


def same_scan(p, *args):
    """SCAN/KEYS replies compared as sets of keys (the order is the server's own)."""
    got, want = p.both(*args)
    assert got[0] == want[0] == "ok", (args, got, want)
    g, w = got[1], want[1]
    if args[0].upper() == "SCAN":
        assert g[0] == w[0] == b"0", (args, g, w)
        g, w = g[1], w[1]
    assert sorted(g) == sorted(w), (args, g, w)


# -- TYPE, SCAN TYPE, KEYS, DBSIZE, INFO keyspace ----------------------------------------------

def test_type_of_every_type(p):
    for t in TYPES:
        make(p, t, "k-" + t)
        p.same("TYPE", "k-" + t)
    p.same("TYPE", "missing")
    p.same("DBSIZE")
    same_scan(p, "KEYS", "*")
    same_scan(p, "KEYS", "k-s*")


def test_scan_type(p):
    for t in TYPES:
        make(p, t, "a-" + t)
        make(p, t, "b-" + t)
    for t in TYPES + ("none", "nosuchtype", "LIST", "Zset"):
        same_scan(p, "SCAN", 0, "TYPE", t, "COUNT", 1000)
        same_scan(p, "SCAN", 0, "MATCH", "a-*", "TYPE", t, "COUNT", 1000)


def test_scan_type_pages(p):
    """SCAN TYPE with a small COUNT walks every key once (cursors are kvdb's own)."""
    for i in range(30):
        make(p, TYPES[i % len(TYPES)], f"key{i:02d}", 2)
    kv = p.kv
    for t in TYPES:
        seen, cursor = [], 0
        while True:
            cursor, keys = kv.execute_command("SCAN", cursor, "TYPE", t, "COUNT", 4)
            seen += keys
            if int(cursor) == 0:
                break
        expected = [k for k in kv.execute_command("KEYS", "*") if kv.execute_command("TYPE", k) in (t.encode(), t)]
        assert len(expected) == 5 and sorted(seen) == sorted(expected)


def _keyspace_line(client):
    info = client.execute_command("INFO", "keyspace")
    if isinstance(info, bytes):
        info = info.decode()
    if isinstance(info, dict):  # a client that parses INFO
        return {k: v for k, v in info.items()}
    out = {}
    for line in info.splitlines():
        if line.startswith("db"):
            name, _, fields = line.partition(":")
            out[name] = dict(f.split("=") for f in fields.split(","))
    return out


def test_dbsize_and_info_keyspace_count_every_type(p):
    for t in TYPES:
        make(p, t, "k-" + t)
        make(p, t, "e-" + t)
        p.same("EXPIRE", "e-" + t, 1000)
    p.same("DBSIZE")
    kv, ref = _keyspace_line(p.kv), _keyspace_line(p.ref)
    assert str(kv["db0"]["keys"]) == str(ref["db0"]["keys"]) == "12"
    assert str(kv["db0"]["expires"]) == str(ref["db0"]["expires"]) == "6"
    for t in TYPES:
        p.same("DEL", "k-" + t)
    p.same("DBSIZE")


# -- DEL, UNLINK, EXISTS, TOUCH, the EXPIRE family ---------------------------------------------------

def test_del_unlink_exists_touch(p):
    for t in TYPES:
        make(p, t, "k-" + t)
        make(p, t, "u-" + t)
    keys = ["k-" + t for t in TYPES]
    p.same("EXISTS", *keys, "missing", keys[0])
    p.same("TOUCH", *keys, "missing")
    p.same("DEL", *keys[:3], "missing")
    p.same("UNLINK", *keys[3:], *["u-" + t for t in TYPES])
    p.same("EXISTS", *keys)
    p.same("DBSIZE")


@pytest.mark.parametrize("type_", TYPES)
def test_expire_family(p, type_):
    make(p, type_, "k")
    p.same("TTL", "k")
    p.same("PTTL", "k")
    p.same("EXPIRETIME", "k")
    p.same("EXPIRE", "k", 100)
    p.same("TTL", "k")
    p.same("EXPIRE", "k", 200, "LT")
    p.same("EXPIRE", "k", 50, "GT")
    p.same("EXPIRE", "k", 500, "NX")
    p.same("PERSIST", "k")
    p.same("PERSIST", "k")
    p.same("TTL", "k")
    p.same("EXPIREAT", "k", 4102444800)        # 2100-01-01
    p.same("EXPIRETIME", "k")
    p.same("PEXPIREAT", "k", 4102444800123)
    p.same("PEXPIRETIME", "k")
    contents(p, type_, "k")
    p.same("PEXPIRE", "k", -1)                 # in the past: deleted
    p.same("EXISTS", "k")
    p.same("TYPE", "k")
    make(p, type_, "k")
    p.same("PEXPIRE", "k", 30)
    time.sleep(0.08)
    p.same("EXISTS", "k")
    p.same("TYPE", "k")
    time.sleep(0.3)     # kvdb's background sweep removes it (Redis removed it when EXISTS saw it)
    p.same("DBSIZE")


# -- RENAME, RENAMENX, COPY, MOVE --------------------------------------------------------------------

@pytest.mark.parametrize("type_", TYPES)
def test_rename(p, type_):
    make(p, type_, "src", 5)
    p.same("EXPIRE", "src", 100)
    p.same("RENAME", "src", "dst")
    p.same("EXISTS", "src")
    p.same("TTL", "dst")
    contents(p, type_, "dst")
    p.same("TYPE", "dst")
    p.same("RENAME", "dst", "dst")               # the same name: OK, nothing changes
    p.same("RENAMENX", "dst", "dst")
    contents(p, type_, "dst")
    p.same_error("RENAME", "missing", "x")
    p.same_error("RENAMENX", "missing", "x")
    other = "string" if type_ != "string" else "list"
    make(p, other, "busy")
    p.same("RENAMENX", "dst", "busy")            # destination exists: nothing happens
    contents(p, other, "busy")
    p.same("RENAME", "dst", "busy")              # overwritten, whatever its type
    p.same("TYPE", "busy")
    p.same("TTL", "busy")
    contents(p, type_, "busy")
    change(p, type_, "busy")                     # the renamed value is fully usable
    contents(p, type_, "busy")
    p.same("DBSIZE")
    p.same("RENAMENX", "busy", "fresh")
    contents(p, type_, "fresh")
    p.same("TTL", "fresh")


@pytest.mark.parametrize("type_", TYPES)
def test_copy(p, type_):
    make(p, type_, "src", 5)
    p.same("COPY", "src", "dst")
    contents(p, type_, "dst")
    p.same("TTL", "dst")
    change(p, type_, "dst")                      # a copy is independent of its source
    contents(p, type_, "src")
    contents(p, type_, "dst")
    p.same("DEL", "src")
    contents(p, type_, "dst")                    # and outlives it
    p.same("EXPIRE", "dst", 300)
    p.same("COPY", "dst", "src")
    p.same("TTL", "src")
    p.same("COPY", "dst", "src")                 # exists: 0
    make(p, "string" if type_ != "string" else "hash", "other")
    p.same("COPY", "other", "src")
    p.same("COPY", "other", "src", "REPLACE")
    p.same("TYPE", "src")
    p.same("COPY", "dst", "src", "REPLACE")
    contents(p, type_, "src")
    p.same("COPY", "dst", "indb1", "DB", 1)
    p.same("COPY", "dst", "dst", "DB", 1)
    p.same("COPY", "dst", "dst", "DB", 1)
    p.same("COPY", "dst", "dst", "DB", 1, "REPLACE")
    p.same("COPY", "missing", "x")
    p.same_error("COPY", "dst", "dst")
    p.same_error("COPY", "dst", "x", "DB", 16)
    p.same_error("COPY", "dst", "x", "DB", -1)
    p.same_error("COPY", "dst", "x", "DB", "abc")
    p.same_error("COPY", "dst", "x", "DB", 99999999999)
    p.same_error("COPY", "dst", "x", "DB")
    p.same_error("COPY", "dst", "x", "REPLACE", "extra")
    p.same("SELECT", 1)
    contents(p, type_, "indb1")
    contents(p, type_, "dst")
    p.same("TTL", "dst")
    p.same("DBSIZE")
    p.same("SELECT", 0)
    p.same("DBSIZE")


@pytest.mark.parametrize("type_", TYPES)
def test_move(p, type_):
    make(p, type_, "k", 5)
    p.same("EXPIRE", "k", 100)
    p.same("MOVE", "k", 1)
    p.same("EXISTS", "k")
    p.same("MOVE", "k", 1)                       # gone from db 0: 0
    make(p, type_, "k", 2)
    p.same("MOVE", "k", 1)                       # exists in db 1: 0
    contents(p, type_, "k")
    p.same_error("MOVE", "k", 0)
    p.same_error("MOVE", "k", 16)
    p.same_error("MOVE", "k", -1)
    p.same_error("MOVE", "k", "x")
    p.same_error("MOVE", "k", 99999999999)
    p.same_error("MOVE", "k")
    p.same("SELECT", 1)
    contents(p, type_, "k")
    p.same("TTL", "k")
    change(p, type_, "k")
    contents(p, type_, "k")
    p.same("MOVE", "k", 0)
    p.same("DBSIZE")
    p.same("SELECT", 0)
    contents(p, type_, "k")


def test_big_collections_copy_rename_move(p):
    """Collections of a few thousand elements."""
    for t in ("list", "set", "zset", "hash"):
        key = "big-" + t
        for start in range(0, 1500, 500):
            if t == "list":
                p.same("RPUSH", key, *[f"e{i}" for i in range(start, start + 500)])
            elif t == "set":
                p.same("SADD", key, *[f"m{i}" for i in range(start, start + 500)])
            elif t == "zset":
                p.same("ZADD", key, *[x for i in range(start, start + 500) for x in (i, f"z{i}")])
            else:
                p.same("HSET", key, *[x for i in range(start, start + 500) for x in (f"f{i}", "v")])
        p.same("COPY", key, key + "-copy")
        p.same("RENAME", key + "-copy", key + "-renamed")
        p.same("MOVE", key + "-renamed", 2)
        p.same("SELECT", 2)
        card = {"list": "LLEN", "set": "SCARD", "zset": "ZCARD", "hash": "HLEN"}[t]
        p.same(card, key + "-renamed")
        if t == "list":
            p.same("LRANGE", key + "-renamed", 1000, 1100)
        elif t == "zset":
            p.same("ZRANGE", key + "-renamed", 1200, 1210, "WITHSCORES")
            p.same("ZRANK", key + "-renamed", "z1399")
        elif t == "set":
            p.same("SISMEMBER", key + "-renamed", "m1499")
        else:
            p.same("HGET", key + "-renamed", "f1277")
        p.same("SELECT", 0)
        p.same(card, key)


# -- OBJECT ----------------------------------------------------------------------------------------

def test_object_encoding_compared(p):
    """Where Redis 7.0 and 7.2 agree: strings, hashes, integer sets, large sets, sorted sets, streams."""
    p.same("SET", "int", "12345")
    p.same("SET", "short", "hello")
    p.same("SET", "long", "x" * 45)
    p.same("HSET", "h-small", "a", "1")
    p.same("HSET", "h-bigvalue", "a", "x" * 65)
    p.same("HSET", "h-many", *[x for i in range(513) for x in (f"f{i}", "v")])
    p.same("SADD", "s-int", *range(100))
    p.same("SADD", "s-manyint", *range(513))
    p.same("SADD", "s-many", *[f"m{i}" for i in range(200)])
    p.same("SADD", "s-long", "x" * 70, "y")
    p.same("ZADD", "z-small", 1, "a", 2, "b")
    p.same("ZADD", "z-many", *[x for i in range(129) for x in (i, f"z{i}")])
    p.same("ZADD", "z-long", 1, "x" * 65)
    p.same("XADD", "x", "1-1", "f", "v")
    for key in ("int", "short", "long", "h-small", "h-bigvalue", "h-many", "s-int", "s-manyint", "s-many",
                "z-small", "z-many", "z-long", "x", "missing"):
        p.same("OBJECT", "ENCODING", key)
    p.same_error("OBJECT", "ENCODING")
    p.same_error("OBJECT", "NOSUCH", "x")
    # The limits apply to values written after they change (Redis converts as a value grows).
    p.same("CONFIG", "SET", "zset-max-listpack-entries", 1, "zset-max-listpack-value", 3)
    p.same("ZADD", "z-two", 1, "a", 2, "b")
    p.same("ZADD", "z-wide", 1, "abcd")
    p.same("ZADD", "z-one", 1, "abc")
    p.same("CONFIG", "SET", "set-max-intset-entries", 50, "hash-max-listpack-entries", 2)
    p.same("SADD", "s-50", *range(50))
    p.same("HSET", "h-3", "a", 1, "b", 2, "c", 3)
    for key in ("z-two", "z-wide", "z-one", "s-50", "h-3"):
        p.same("OBJECT", "ENCODING", key)
    p.same("CONFIG", "SET", "zset-max-listpack-entries", 128, "zset-max-listpack-value", 64)
    p.same("CONFIG", "SET", "set-max-intset-entries", 512, "hash-max-listpack-entries", 512)


def test_object_encoding_redis72(p):
    """Redis 7.2's list and set encodings (the 7.0 reference reports quicklist/hashtable)."""
    kv = p.kv
    kv.execute_command("RPUSH", "l-small", "a", "b", 1, 2)
    kv.execute_command("RPUSH", "l-bytes", *["x" * 100] * 90)        # about 9 KB: past 8 KB
    kv.execute_command("RPUSH", "l-fits", *["x" * 100] * 70)         # about 7 KB
    kv.execute_command("RPUSH", "l-many", *range(5000))
    kv.execute_command("SADD", "s-small", "a", "b")
    kv.execute_command("SADD", "s-mixed", 1, 2, "a")
    kv.execute_command("SADD", "s-long", "x" * 65)
    kv.execute_command("SADD", "s-129", *[f"m{i}" for i in range(129)])
    enc = lambda k: kv.execute_command("OBJECT", "ENCODING", k)  # noqa: E731
    assert enc("l-small") == b"listpack"
    assert enc("l-fits") == b"listpack"
    assert enc("l-bytes") == b"quicklist"
    assert enc("l-many") == b"quicklist"
    assert enc("s-small") == b"listpack"
    assert enc("s-mixed") == b"listpack"
    assert enc("s-long") == b"hashtable"
    assert enc("s-129") == b"hashtable"
    kv.execute_command("CONFIG", "SET", "list-max-listpack-size", 3)
    assert enc("l-small") == b"quicklist"
    kv.execute_command("CONFIG", "SET", "list-max-listpack-size", 4)
    assert enc("l-small") == b"listpack"
    kv.execute_command("CONFIG", "SET", "list-max-listpack-size", -3)  # 16 KB nodes
    assert enc("l-bytes") == b"listpack"
    kv.execute_command("CONFIG", "SET", "list-max-listpack-size", -2)
    kv.execute_command("CONFIG", "SET", "set-max-listpack-entries", 1)
    assert enc("s-small") == b"hashtable"
    kv.execute_command("CONFIG", "SET", "set-max-listpack-entries", 128, "set-max-intset-entries", 50)
    kv.execute_command("SADD", "s-51", *range(51))      # integers past the intset limit: a listpack
    assert enc("s-51") == b"listpack"
    kv.execute_command("CONFIG", "SET", "set-max-intset-entries", 512)


def test_object_other_subcommands(p):
    p.same("SET", "n", "5")
    p.same("SET", "big", "123456")
    p.same("RPUSH", "l", "a")
    for key in ("n", "big", "l", "missing"):
        p.same("OBJECT", "REFCOUNT", key)
    p.same("OBJECT", "FREQ", "missing")
    p.same_error("OBJECT", "FREQ", "n")
    p.same("OBJECT", "HELP")
    p.same("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu")
    try:
        p.same_error("OBJECT", "IDLETIME", "n")
        p.same("OBJECT", "IDLETIME", "missing")
        got = p.kv.execute_command("OBJECT", "FREQ", "n")
        assert isinstance(got, int) and 0 <= got <= 255
    finally:
        p.same("CONFIG", "SET", "maxmemory-policy", "noeviction")


# -- CONFIG ---------------------------------------------------------------------------------------

# (option, valid values, invalid values): both servers must agree on each.
CONFIG_CASES = [
    ("list-max-listpack-size", ["-2", "5", "-5", "128"], ["abc", "+5", "05", "99999999999", ""]),
    ("list-max-ziplist-size", ["-1", "-2"], ["x"]),
    ("list-compress-depth", ["0", "3"], ["-1", "x"]),
    ("set-max-intset-entries", ["512", "0", "1000"], ["-1", "1k", "x"]),
    ("zset-max-listpack-entries", ["128", "10"], ["-1", "x"]),
    ("zset-max-listpack-value", ["64", "1k", "100"], ["-1", "x", "1x"]),
    ("zset-max-ziplist-entries", ["128"], ["x"]),
    ("zset-max-ziplist-value", ["64"], ["x"]),
    ("hash-max-listpack-entries", ["512", "100"], ["-1", "x"]),
    ("hash-max-listpack-value", ["64", "1kb"], ["-1", "x"]),
    ("hash-max-ziplist-entries", ["512"], ["x"]),
    ("hash-max-ziplist-value", ["64"], ["x"]),
    ("stream-node-max-bytes", ["4096", "1k", "1gb", "0"], ["-1", "1x", "x"]),
    ("stream-node-max-entries", ["100", "0"], ["-1", "99999999999999999999", "x"]),
    ("hll-sparse-max-bytes", ["3000"], ["x"]),
    ("maxmemory-policy", ["allkeys-lru", "ALLKEYS-LFU", "noeviction"], ["foo", ""]),
    ("maxmemory-samples", ["5", "64"], ["0", "x"]),
    ("maxmemory-eviction-tenacity", ["10", "100"], ["101", "-1"]),
    ("maxmemory-clients", ["0", "10%", "1gb", "0"], ["x", "-5%", "200%"]),
    ("lfu-log-factor", ["10"], ["-1"]),
    ("lfu-decay-time", ["1"], ["-1"]),
    ("active-expire-effort", ["1", "10"], ["0", "11"]),
    ("lazyfree-lazy-eviction", ["yes", "no"], ["maybe", "1"]),
    ("lazyfree-lazy-expire", ["YES", "no"], ["x"]),
    ("lazyfree-lazy-server-del", ["yes", "no"], ["x"]),
    ("lazyfree-lazy-user-del", ["yes", "no"], ["x"]),
    ("lazyfree-lazy-user-flush", ["yes", "no"], ["x"]),
    ("replica-lazy-flush", ["yes", "no"], ["x"]),
    ("activedefrag", ["no"], ["maybe"]),
    ("active-defrag-ignore-bytes", ["100mb", "104857600"], ["0", "x"]),
    ("active-defrag-threshold-lower", ["10"], ["1001"]),
    ("active-defrag-threshold-upper", ["100"], ["-1"]),
    ("active-defrag-cycle-min", ["1", "99"], ["0", "100"]),
    ("active-defrag-cycle-max", ["25"], ["200"]),
    ("active-defrag-max-scan-fields", ["1000"], ["0"]),
    ("activerehashing", ["yes"], ["x"]),
    ("busy-reply-threshold", ["5000", "100"], ["-1", "x"]),
    ("lua-time-limit", ["5000"], ["x", "-1"]),
    ("latency-monitor-threshold", ["0", "100"], ["-1"]),
    ("latency-tracking", ["yes"], ["x"]),
    ("latency-tracking-info-percentiles", ["50 99 99.9", "50.5 99", ""], ["50 101"]),
    ("tracking-table-max-keys", ["1000000"], ["-1"]),
    ("tcp-keepalive", ["300", "10"], ["-1"]),
    ("oom-score-adj", ["no", "relative"], ["maybe"]),
    ("stop-writes-on-bgsave-error", ["yes"], ["x"]),
    ("rdbcompression", ["yes"], ["x"]),
    ("aof-use-rdb-preamble", ["yes"], ["x"]),
    ("auto-aof-rewrite-percentage", ["100"], ["-1"]),
    ("auto-aof-rewrite-min-size", ["64mb"], ["x"]),
    ("replica-read-only", ["yes", "no", "yes"], ["x"]),
    ("slave-read-only", ["yes"], ["x"]),
    ("min-replicas-to-write", ["0"], ["-1"]),
    ("min-slaves-to-write", ["0"], ["x"]),
    ("repl-backlog-size", ["1mb"], ["0"]),
    ("maxmemory", ["0", "1gb", "0"], []),
]


# Options whose default kvdb chooses differently from Redis, on purpose: the rest of the case
# (parsing, errors) is still compared.
KVDB_DEFAULTS = {
    # 16 MiB of log records: a replica that restarts under load continues instead of syncing in full
    "repl-backlog-size": b"16777216",
}


def _config_value(pair, client, name):
    reply = pair._send(client, ("CONFIG", "GET", name))[1]
    return reply[name.encode()] if isinstance(reply, dict) else reply[1]


@pytest.mark.parametrize("name, valid, invalid", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_option(p, name, valid, invalid):
    own = KVDB_DEFAULTS.get(name)
    if own is not None:
        assert _config_value(p, p.kv, name) == own
        p._send(p.kv, ("CONFIG", "SET", name, _config_value(p, p.ref, name)))
    default = p.same("CONFIG", "GET", name)
    for value in valid:
        p.same("CONFIG", "SET", name, value)
        p.same("CONFIG", "GET", name)
    for value in invalid:
        p.same_error("CONFIG", "SET", name, value)
        p.same("CONFIG", "GET", name)
    p.same("CONFIG", "SET", name, list(default.values())[0] if isinstance(default, dict) else default[1])
    if own is not None:
        p._send(p.kv, ("CONFIG", "SET", name, own))


def same_config(p, *args):
    """CONFIG GET replies compared as maps (Redis lists options in its hash table's order)."""
    got, want = p.both("CONFIG", "GET", *args)
    as_map = lambda r: r[1] if isinstance(r[1], dict) else dict(zip(r[1][::2], r[1][1::2]))  # noqa: E731
    assert got[0] == want[0] == "ok" and as_map(got) == as_map(want), (args, got, want)


def test_config_errors_and_patterns(p):
    p.same_error("CONFIG", "SET", "hz", 5, "hz", 6)
    p.same("CONFIG", "SET", "list-max-ziplist-size", 1, "list-max-listpack-size", 2)  # the later one wins
    p.same("CONFIG", "GET", "list-max-listpack-size")
    p.same_error("CONFIG", "SET", "hz", 5, "HZ", 6)
    p.same_error("CONFIG", "SET", "io-threads", 2)
    p.same_error("CONFIG", "SET", "rdbchecksum", "no")
    p.same_error("CONFIG", "SET", "daemonize", "yes")
    p.same_error("CONFIG", "SET", "nosuchoption", 1)
    p.same_error("CONFIG", "SET", "LIST-MAX-LISTPACK-SIZE", "abc")
    p.same("CONFIG", "SET", "LIST-MAX-LISTPACK-SIZE", 7, "zset-max-listpack-entries", 100)
    same_config(p, "list-max-*")
    same_config(p, "zset*")
    same_config(p, "*ziplist*")
    same_config(p, "lazyfree*")
    same_config(p, "active-defrag-*")
    p.same("CONFIG", "SET", "list-max-listpack-size", -2, "zset-max-listpack-entries", 128)
    p.same_error("CONFIG", "SET", "maxmemory-samples", 5, "lfu-log-factor", -1)
    p.same("CONFIG", "GET", "maxmemory-samples")
    p.same("CONFIG", "GET", "maxmemory-policy")
    p.same("CONFIG", "GET", "maxmemory")


def test_config_redis72_options():
    """set-max-listpack-* are Redis 7.2's (the 7.0 reference lacks them)."""
    from kvdb.server.config import OPTIONS
    for name, good, bad in (("set-max-listpack-entries", "64", "-1"), ("set-max-listpack-value", "32", "x")):
        option = OPTIONS[name]
        assert option.parse(good) == int(good)
        with pytest.raises(ValueError):
            option.parse(bad)


# -- CLIENT REPLY, CLIENT UNBLOCK, WAIT ------------------------------------------------------------------------

def _port(client):
    return client.connection_pool.connection_kwargs["port"]


def _enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Raw:
    """A plain socket speaking the pair's protocol: sends commands, reads the bytes that come."""

    def __init__(self, port, protocol=2):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if protocol == 3:
            self.send(("HELLO", 3))
            self.read()   # the server's description differs: not compared

    def send(self, *commands):
        self.s.sendall(b"".join(_enc(*c) for c in commands))

    def read(self, first=1.0, quiet=0.05):
        """The bytes that arrive: waits up to `first` seconds for the first of them, then
        until `quiet` seconds pass without more."""
        data = b""
        self.s.settimeout(first)
        while True:
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                return data
            if not chunk:
                return data
            data += chunk
            self.s.settimeout(quiet)

    def close(self):
        self.s.close()


def both_raw(p, commands, quiet=0.05):
    """The bytes each server sends back for the pipelined commands on a fresh connection."""
    out = []
    for port in (_port(p.kv), _port(p.ref)):
        r = Raw(port, p.protocol)
        r.send(*commands)
        out.append(r.read(quiet=quiet))
        r.close()
    return out


CLIENT_REPLY_CASES = [
    [("PING",), ("CLIENT", "REPLY", "OFF"), ("SET", "a", "1"), ("GET", "a"), ("INCR", "a"),
     ("CLIENT", "REPLY", "ON"), ("GET", "a")],
    [("CLIENT", "REPLY", "SKIP"), ("GET", "a"), ("GET", "a"), ("CLIENT", "REPLY", "SKIP"),
     ("CLIENT", "REPLY", "SKIP"), ("PING",), ("PING", "x")],
    [("CLIENT", "REPLY", "OFF"), ("CLIENT", "REPLY", "SKIP"), ("PING",), ("CLIENT", "REPLY", "ON"), ("PING", "y")],
    [("CLIENT", "REPLY", "FOO"), ("CLIENT", "REPLY"), ("CLIENT", "REPLY", "SKIP"), ("CLIENT", "REPLY", "ON"),
     ("PING",)],
    [("CLIENT", "REPLY", "SKIP"), ("BLPOP", "nolist", "0.1"), ("PING",)],
    [("CLIENT", "REPLY", "OFF"), ("BLPOP", "nolist", "0.1"), ("CLIENT", "REPLY", "ON"), ("PING",)],
    [("CLIENT", "REPLY", "SKIP"), ("MULTI",), ("SET", "a", "2"), ("EXEC",), ("GET", "a")],
    [("CLIENT", "REPLY", "OFF"), ("SET", "b", "1"), ("NOSUCHCOMMAND",), ("GET",), ("CLIENT", "REPLY", "ON"),
     ("GET", "b")],
    [("CLIENT", "REPLY", "SKIP"), ("SET", "c", "1"), ("GET", "c"), ("CLIENT", "REPLY", "SKIP"), ("INCR", "c"),
     ("GET", "c")],
    [("RPUSH", "q", "x"), ("CLIENT", "REPLY", "OFF"), ("LPOP", "q"), ("CLIENT", "REPLY", "ON"), ("LLEN", "q")],
    [("CLIENT", "REPLY", "OFF"), ("SET", "b", "1"), ("DEBUG", "SLEEP", "0.1"), ("CLIENT", "REPLY", "ON"), ("GET", "b")],
    [("CLIENT", "REPLY", "SKIP"), ("WAIT", 1, 50), ("WAIT", 1, 50), ("CLIENT", "REPLY", "OFF"), ("WAIT", 1, 50),
     ("BLPOP", "nolist", 0.05), ("CLIENT", "REPLY", "ON"), ("PING",)],
]


@pytest.mark.parametrize("case", range(len(CLIENT_REPLY_CASES)))
def test_client_reply(p, case):
    got, want = both_raw(p, CLIENT_REPLY_CASES[case])
    assert got == want


def test_client_reply_fast_lane_commands_pipelined(p):
    """GET/SET/INCR (the fast lane's commands) in long pipelines while replies are off."""
    cmds = [("CLIENT", "REPLY", "OFF")] + [("SET", f"k{i}", i) for i in range(200)] + \
        [("INCR", "k1")] * 50 + [("GET", "k1")] * 50 + [("CLIENT", "REPLY", "ON"), ("GET", "k1"), ("GET", "k199")]
    got, want = both_raw(p, cmds, quiet=0.3)
    assert got == want == b"+OK\r\n$2\r\n51\r\n$3\r\n199\r\n"


def test_client_reply_off_blocked_then_pushed(p):
    """A BLPOP sent while replies are off pops when another client pushes, and says nothing."""
    for port in (_port(p.kv), _port(p.ref)):
        a, b = Raw(port, p.protocol), Raw(port, p.protocol)
        a.send(("CLIENT", "REPLY", "OFF"), ("BLPOP", "wq", 0))
        time.sleep(0.1)
        b.send(("RPUSH", "wq", "v"))
        assert b.read() == b":1\r\n"
        a.send(("CLIENT", "REPLY", "ON"), ("LLEN", "wq"))
        assert a.read(quiet=0.2) == b"+OK\r\n:0\r\n"
        ident = _client_id(a)
        a.send(("CLIENT", "REPLY", "OFF"), ("BLPOP", "wq", 0))   # ended by CLIENT UNBLOCK ERROR: no reply either
        time.sleep(0.1)
        b.send(("CLIENT", "UNBLOCK", ident, "ERROR"))
        assert b.read() == b":1\r\n"
        a.send(("CLIENT", "REPLY", "ON"))
        assert a.read(quiet=0.2) == b"+OK\r\n"
        a.close()
        b.close()


def _client_id(raw):
    raw.send(("CLIENT", "ID"))
    return int(raw.read()[1:].strip())


@pytest.mark.parametrize("how", [None, "TIMEOUT", "error"])
def test_client_unblock(p, how):
    results = []
    for port in (_port(p.kv), _port(p.ref)):
        a, b = Raw(port, p.protocol), Raw(port, p.protocol)
        ident = _client_id(a)
        a.send(("BLPOP", "nolist", 0))
        time.sleep(0.05)
        b.send(("CLIENT", "UNBLOCK", ident, *([how] if how else [])))
        results.append((b.read(), a.read()))
        b.send(("CLIENT", "UNBLOCK", ident))           # no longer blocked: 0
        results.append(b.read())
        a.send(("WAIT", 1, 0))                          # WAIT is unblockable too
        time.sleep(0.05)
        b.send(("CLIENT", "UNBLOCK", ident, *([how] if how else [])))
        results.append((b.read(), a.read()))
        a.close()
        b.close()
    assert results[:3] == results[3:]


def test_client_unblock_errors(p):
    p.same("CLIENT", "UNBLOCK", 999999)
    p.same("CLIENT", "UNBLOCK", 999999, "TIMEOUT")
    p.same_error("CLIENT", "UNBLOCK", "x")
    p.same_error("CLIENT", "UNBLOCK", 5, "foo")
    p.same_error("CLIENT", "UNBLOCK", "x", "foo")
    p.same_error("CLIENT", "UNBLOCK", 5, "timeout", "extra")
    p.same_error("CLIENT", "UNBLOCK")
    p.same_error("CLIENT", "REPLY", "ON", "extra")


def test_wait(p):
    p.same("WAIT", 0, 0)
    p.same("WAIT", -1, 0)
    p.same("WAIT", 0, 100)
    for client in (p.kv, p.ref):
        start = time.monotonic()
        assert client.execute_command("WAIT", 1, 150) == 0
        assert 0.12 <= time.monotonic() - start < 2
    p.same_error("WAIT", "x", 0)
    p.same_error("WAIT", 1, -1)
    p.same_error("WAIT", 1, "x")
    p.same_error("WAIT", 1, "1.5")
    p.same_error("WAIT", 1)
    got, want = both_raw(p, [("MULTI",), ("WAIT", 5, 0), ("EXEC",)])
    assert got == want


def test_wait_does_not_block_others(p):
    port = _port(p.kv)
    a, b = Raw(port), Raw(port)
    a.send(("WAIT", 1, 400))
    time.sleep(0.05)
    b.send(("PING",))
    assert b.read() == b"+PONG\r\n"
    a.send(("PING",))                                   # runs after WAIT's timeout
    assert a.read() == b":0\r\n+PONG\r\n"
    a.close()
    b.close()


def test_waitaof_redis72(p):
    """WAITAOF (7.2): local is acknowledged once the writes are durable (kvdb's log and a
    checkpoint under sync normal); no replicas."""
    kv = p.kv
    kv.execute_command("SET", "w", "1")
    assert kv.execute_command("WAITAOF", 0, 0, 0) == [0, 0]
    assert kv.execute_command("WAITAOF", 1, 0, 0) == [1, 0]
    start = time.monotonic()
    assert kv.execute_command("WAITAOF", 0, 1, 150) == [0, 0]
    assert time.monotonic() - start >= 0.12
    for bad, text in (((2, 0, 0), "between 0 and 1"), ((0, -1, 0), "must be positive"),
                      ((1, 0, -1), "timeout is negative"), (("x", 0, 0), "not an integer")):
        with pytest.raises(redis.ResponseError, match=text):
            kv.execute_command("WAITAOF", *bad)
    assert kv.execute_command("GET", "w") == b"1"


@pytest.mark.parametrize("how", ["RENAME", "COPY", "MOVE"])
def test_rename_copy_move_wake_blocked_clients(p, how):
    """A client blocked on the destination is served when a list arrives there."""
    results = []
    for port in (_port(p.kv), _port(p.ref)):
        waiter, writer = Raw(port, p.protocol), Raw(port, p.protocol)
        if how == "MOVE":
            waiter.send(("SELECT", 1), ("BLPOP", "src", 5))
        else:
            waiter.send(("BLPOP", "dst", 5))
        time.sleep(0.05)
        cmd = {"RENAME": ("RENAME", "src", "dst"), "COPY": ("COPY", "src", "dst"), "MOVE": ("MOVE", "src", 1)}[how]
        writer.send(("RPUSH", "src", "a", "b"), cmd)
        results.append((writer.read(), waiter.read(quiet=0.2)))
        writer.send(("FLUSHALL",))
        writer.read()
        waiter.close()
        writer.close()
    assert results[0] == results[1]


def test_info_clients_counts_blocked(p):
    port = _port(p.kv)
    a, b = Raw(port), Raw(port)
    a.send(("BLPOP", "nolist", 0))
    b.send(("DEBUG", "SLEEP", 0.5))
    time.sleep(0.15)
    info = p.kv.info("clients")
    assert info["blocked_clients"] == 2
    assert info["total_blocking_keys"] == 1
    a.close()
    b.close()


# -- randomized: generic commands over every type, compared ------------------------------------------

def _random_step(p, rng, keys):
    op = rng.random()
    k1, k2 = rng.choice(keys), rng.choice(keys)
    if op < 0.25:
        t = rng.choice(TYPES)
        p.same("DEL", k1)
        make(p, t, k1, rng.randint(1, 6))
    elif op < 0.35:
        p.same("RENAME", k1, k2)        # replies compared whether OK or an error
    elif op < 0.42:
        p.same("RENAMENX", k1, k2)
    elif op < 0.55:
        p.same("COPY", k1, k2, *(["REPLACE"] if rng.random() < 0.5 else []))
    elif op < 0.62:
        db = rng.choice([1, 2])
        p.same("MOVE", k1, db)
        p.same("SELECT", db)
        p.same("MOVE", k1, 0) if rng.random() < 0.5 else p.same("EXISTS", k1)
        p.same("SELECT", 0)
    elif op < 0.7:
        p.same("COPY", k1, k2, "DB", rng.choice([0, 1]), *(["REPLACE"] if rng.random() < 0.5 else []))
    elif op < 0.76:
        p.same("EXPIRE", k1, rng.randint(50, 500))
    elif op < 0.8:
        p.same("PERSIST", k1)
    elif op < 0.85:
        p.same("DEL", k1, k2)
    else:
        t = p.same("TYPE", k1)
        t = t.decode() if isinstance(t, bytes) else str(t)
        if t in TYPES:
            change(p, t, k1)


def _check_all(p, keys):
    for db in (0, 1, 2):
        p.same("SELECT", db)
        p.same("DBSIZE")
        for k in keys:
            t = p.same("TYPE", k)
            t = t.decode() if isinstance(t, bytes) else str(t)
            if t in TYPES:
                contents(p, t, k)
                p.same("TTL", k)
    p.same("SELECT", 0)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_generic_differential(p, seed):
    rng = random.Random(seed)
    keys = ["a", "b", "c", "d"]
    for step in range(150):
        _random_step(p, rng, keys)
        if step % 25 == 24:
            _check_all(p, keys)
    _check_all(p, keys)


# -- in process: versions and copied records ----------------------------------------------------------

def _open(path):
    db = kvdb.open(str(path))
    ks = Keyspace(db, 16, lambda *a: None)
    ks.load()
    return db, ks


def _make_coll(ks, db, key, type_, n):
    e = ks.collection_for_write(db, key, type_)
    kind = ksmod.COLLECTION_KINDS[type_][0]
    for i in range(n):
        ks.store.put(e.body.prefix(db, kind) + b"m%06d" % i, b"v%d" % i)
    e.body.count += n
    e.body.extra = b"EXTRA"
    ks.save(db, key, e)
    return e


def _records(database, prefix):
    with database.scan(prefix=prefix) as it:
        return list(it)


def test_C5_rename_keeps_the_version_and_expiry(tmp_path):
    """C5: RENAME moves the meta record alone; the sub-records stay as they are."""
    db, ks = _open(tmp_path)
    e = _make_coll(ks, 0, b"src", TYPE_SET, 10)
    e = ks.set_expire(0, b"src", ks.entry(0, b"src"), ksmod.now_ms() + 100000)
    ks.store.commit()
    before = _records(db, sub_prefix(0, b"s", e.body.version))
    ks.rename_key(0, b"src", ks.entry(0, b"src"), b"dst")
    ks.store.commit()
    moved = ks.entry(0, b"dst")
    assert ks.entry(0, b"src") is None
    assert moved.body.version == e.body.version and moved.expire_at == e.expire_at
    assert moved.body.count == 10 and moved.body.extra == b"EXTRA"
    assert _records(db, sub_prefix(0, b"s", e.body.version)) == before      # untouched
    assert [k for _, k in ks.due_expiries(0, moved.expire_at, 10)] == [b"dst"]
    assert ks.keys[0] == 1 and ks.expires[0] == 1
    db.close()


def test_C5_copy_collection_records(tmp_path):
    """C5: COPY copies every kind of sub-record byte for byte under a new version."""
    db, ks = _open(tmp_path)
    n = 3000
    e = _make_coll(ks, 0, b"z", TYPE_ZSET, n)
    for kind in (b"r", b"n"):   # every kind of the type is copied
        ks.store.put(sub_prefix(0, kind, e.body.version) + b"rec", b"x")
    ks.store.commit()
    src = ks.entry(0, b"z")
    new = ks.copy_key(0, b"z", src, 3, b"z2")
    ks.store.commit()
    assert new.body.version != src.body.version and new.body.count == n and new.body.extra == b"EXTRA"
    for kind in (b"z", b"r", b"n"):
        a = _records(db, sub_prefix(0, kind, src.body.version))
        b = _records(db, sub_prefix(3, kind, new.body.version))
        assert [(k[11:], v) for k, v in a] == [(k[11:], v) for k, v in b] and a
    assert ks.keys[3] == 1
    db.close()
