"""The C fast lane (kvdb/server/protocol/fastlane.pyx) against the general command path, for
the list and set commands it runs (and the string ones around them).

Random pipelines from several clients go through two servers, one with the fast
lane and one without (KVDB_SERVER_FASTLANE=0's configuration), and everything the
two paths could do differently is compared: every byte written to every client
(replies, pushed keyspace notifications, a blocked client's late reply), every
record in the database after the run (collection versions, which come from the
clock, replaced by their rank), the key and expiry counters, the statistics
(commands processed, per-command calls, keyspace hits and misses), the slow log
and each client's last command.

The servers run in this process, driven group by group without an event loop, so
that the runs are deterministic: the global `random` is seeded before each run
(SPOP's picks come from it) and setsample's caches are cleared. A second test runs
the same kind of pipelines (without SPOP) through two real `kvdb serve` processes
and compares the replies and the `kvdb dump` of both databases.
"""
import base64
import json
import random
import subprocess
import sys

import pytest

from kvdb.server import setsample
from kvdb.server.app import Server
from kvdb.server.client import Client
from kvdb.server.keyspace import GARBAGE_COUNT_KEY
from kvdb.server.config import Config
from tests.serverutil import ServerProcess

try:
    from kvdb.server.protocol.fastlane import FastLane
except ImportError:  # pragma: no cover - built without the extension
    FastLane = None

pytestmark = pytest.mark.skipif(FastLane is None, reason="the fast lane extension is not built")
redis = pytest.importorskip("redis")

FUTURE = 4102444800000        # 2100-01-01 in ms: a deterministic expiry
COLLECTION_TYPES = b"LSZX"


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


# -- in-process servers ---------------------------------------------------------------------

class _Loop:
    """What the server asks of its event loop when driven by hand: nothing runs by itself."""

    def call_soon(self, *a):
        return None

    def call_later(self, *a):
        return _Handle()


class _Handle:
    def cancel(self):
        pass


class _Transport:
    def __init__(self):
        self.out = bytearray()       # everything written to the client

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 5000) if name in ("peername", "sockname") else default

    def write(self, data):
        self.out += data

    def get_write_buffer_size(self):
        return 0

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def close(self):
        pass

    def abort(self):
        pass

    def is_closing(self):
        return False


class Harness:
    """One server in this process, its clients, and a way to run command groups."""

    def __init__(self, path, fastlane, clients=4):
        cfg = Config()
        cfg.set("dir", str(path))
        cfg.set("sync", "normal")
        cfg.set("slowlog-log-slower-than", "0")
        cfg.set("slowlog-max-len", "100000")
        self.srv = Server(cfg)
        self.srv.loop = _Loop()
        self.srv.open_database()
        if not fastlane:
            self.srv.fastlane = None
        assert (self.srv.fastlane is not None) == fastlane
        self.clients = []
        for _ in range(clients):
            c = Client(self.srv)
            c.connection_made(_Transport())
            self.clients.append(c)

    def group(self, work):
        """work: [(client index, [command args, ...])], fed as RESP bytes, then run as
        command groups until no client has anything left to run."""
        for i, cmds in work:
            self.clients[i].data_received(b"".join(resp(*cmd) for cmd in cmds))
        for _ in range(100):
            if not (self.srv.ready or self.srv.blocking.ready):
                break
            self.srv.run_group()

    def close(self):
        self.srv.db.close()

    # -- what is compared ---------------------------------------------------------------

    def outputs(self):
        return [bytes(c.transport.out) for c in self.clients]

    def records(self):
        """Every server record, collection versions replaced by their rank (they come from
        the clock), the version clock left out."""
        rows = []
        with self.srv.db.scan(prefix=b"\x01") as it:
            rows = [(bytes(k), bytes(v)) for k, v in it]
        versions = set()
        for k, v in rows:
            if k[1] == 0xff:
                continue
            kind = k[2:3]
            if kind == b"k" and v[:1] in (b"L", b"S", b"Z", b"X") and len(v) >= 17:
                versions.add(v[9:17])
            elif kind not in (b"k", b"K", b"x", b"y", b"h"):
                versions.add(k[3:11])
        rank = {ver: b"<v%04d>" % i for i, ver in enumerate(sorted(versions))}
        out = []
        for k, v in rows:
            if k == b"\x01\xffvclock":
                continue
            kind = k[2:3]
            if k[1] != 0xff and kind == b"k" and v[:1] in (b"L", b"S", b"Z", b"X") and len(v) >= 17:
                v = v[:9] + rank[v[9:17]] + v[17:]
            elif k[1] != 0xff and kind not in (b"k", b"K", b"x", b"y", b"h"):
                k = k[:3] + rank[k[3:11]] + k[11:]
            out.append((k, v))
        return out

    def counters(self):
        st = self.srv.stats
        return {
            "keys": list(self.srv.ks.keys),
            "expires": list(self.srv.ks.expires),
            "processed": st.commands_processed,
            "hits": st.keyspace_hits,
            "misses": st.keyspace_misses,
            "calls": {name: s.calls for name, s in st.per_command.items()},
            "slowlog": [list(e[3]) for e in self.srv.slowlog.entries],
            "last": [c.last_command for c in self.clients],
        }


# -- random pipelines --------------------------------------------------------------------

LISTS = [b"l0", b"l1", b"l2"]
SETS = [b"s0", b"s1", b"s2"]
OTHERS = [b"str", b"h"]
HASHES = [b"h", b"h1"]
STRINGS = [b"str", b"str1", b"str2"]
KEYS = LISTS + SETS + OTHERS


def _value(rng):
    r = rng.random()
    if r < 0.05:
        return b""
    if r < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))
    if r < 0.12:
        return b"v" * rng.choice((100, 1000, 20000))
    return b"v%d" % rng.randrange(30)


def _member(rng, wide=False):
    if wide and rng.random() < 0.3:
        return b"m%05d" % rng.randrange(5000)
    r = rng.random()
    if r < 0.01:
        return b"x" * 17000             # past the member size limit
    return b"m%d" % rng.randrange(40)


def _index(rng):
    r = rng.random()
    if r < 0.05:
        return rng.choice([b"x", b"", b"1.5", b"-0", b"01", b" 1", b"9223372036854775808",
                           b"-9223372036854775808", b"9223372036854775807"])
    return str(rng.randrange(-12, 12)).encode()


def _key(rng, group):
    return rng.choice(group) if rng.random() < 0.85 else rng.choice(KEYS)


def random_command(rng, spop=True):
    """One command: mostly the fast lane's, in various cases and shapes, with the general
    path's neighbours (counts, expiry, type changes, MULTI, WATCH, ...) mixed in."""
    r = rng.random()
    name_case = (lambda s: s.upper()) if rng.random() < 0.8 else rng.choice(
        [lambda s: s.lower(), lambda s: s.capitalize(), lambda s: s.swapcase() if len(s) > 3 else s])
    lk, sk = _key(rng, LISTS), _key(rng, SETS)
    if r < 0.14:
        return [name_case(rng.choice(["LPUSH", "RPUSH"]))] + [lk] + [_value(rng) for _ in range(rng.choice((1, 1, 1, 2, 5)))]
    if r < 0.24:
        return [name_case(rng.choice(["LPOP", "RPOP"])), lk]
    if r < 0.26:
        return [rng.choice(["LPOP", "RPOP"]), lk, rng.choice([b"0", b"1", b"3", b"x"])]
    if r < 0.29:
        return [name_case("LLEN"), lk]
    if r < 0.33:
        return [name_case("LINDEX"), lk, _index(rng)]
    if r < 0.38:
        return [name_case("LRANGE"), lk, _index(rng), _index(rng)]
    if r < 0.40:
        return [rng.choice(["LSET", "LTRIM", "LREM", "LPUSHX", "RPUSHX", "LINSERT"]), lk] + {
            0: [_index(rng), _value(rng)], 1: [_index(rng), _index(rng)], 2: [_index(rng), _value(rng)],
            3: [_value(rng)], 4: [_value(rng)], 5: [b"BEFORE", _value(rng), _value(rng)]}[rng.randrange(6)][:2]
    if r < 0.52:
        wide = rng.random() < 0.3
        n = rng.choice((1, 1, 1, 2, 4)) if not wide else rng.choice((1, 50, 200))
        return [name_case("SADD"), sk] + [_member(rng, wide) for _ in range(n)]
    if r < 0.57:
        return [name_case("SREM"), sk] + [_member(rng) for _ in range(rng.choice((1, 1, 3)))]
    if r < 0.62:
        return [name_case("SISMEMBER"), sk, _member(rng)]
    if r < 0.65:
        return [name_case("SCARD"), sk]
    if r < 0.71:
        if not spop:
            return [name_case("SCARD"), sk]
        return [name_case("SPOP"), sk] + ([rng.choice([b"0", b"1", b"2", b"x"])] if rng.random() < 0.15 else [])
    if r < 0.73:
        return [rng.choice(["SMOVE", "SMEMBERS", "SMISMEMBER"]), sk] + (
            [rng.choice(SETS), _member(rng)] if rng.random() < 0.5 else [])
    if r < 0.76:
        return [name_case(rng.choice(["GET", "SET", "INCR"])), rng.choice(KEYS)] + (
            [_value(rng)] if rng.random() < 0.5 else [])
    if r < 0.80:
        return [rng.choice(["DEL", "TYPE", "EXISTS", "PERSIST", "PERSIST"]), rng.choice(KEYS)]
    if r < 0.82:
        return ["PEXPIREAT", rng.choice(KEYS), rng.choice([FUTURE, 1])]
    if r < 0.84:
        return ["RENAME", rng.choice(KEYS), rng.choice(KEYS)]
    if r < 0.86:
        return ["HSET", rng.choice(KEYS), b"f", _value(rng)]
    if r < 0.88:
        return [rng.choice(["LPUSH", "SADD", "LLEN", "SCARD", "LPOP", "SPOP", "LRANGE"])]     # wrong arity
    if r < 0.90:
        return ["SELECT", rng.choice([b"0", b"0", b"1"])]
    if r < 0.93:
        hk = rng.choice(HASHES) if rng.random() < 0.8 else rng.choice(KEYS)
        pairs = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            field = b"x" * 17000 if rng.random() < 0.01 else b"f%d" % rng.randrange(6)   # past the limit
            pairs += [field, _value(rng)]
        return [name_case("HSET"), hk] + pairs + ([b"odd"] if rng.random() < 0.03 else [])
    if r < 0.95:
        return [rng.choice(["HGET", "HLEN", "HGETALL", "HDEL"]), rng.choice(HASHES)] + (
            [b"f%d" % rng.randrange(6)] if rng.random() < 0.5 else [])
    if r < 0.97:
        pairs = []
        for _ in range(rng.choice((1, 2, 3))):
            pairs += [rng.choice(STRINGS) if rng.random() < 0.85 else rng.choice(KEYS), _value(rng)]
        return [name_case("MSET")] + pairs + ([b"odd"] if rng.random() < 0.03 else [])
    return [name_case(rng.choice(["RPUSH", "SADD"])), rng.choice(KEYS), _value(rng)]


def random_pipeline(rng, spop=True):
    cmds = [random_command(rng, spop) for _ in range(rng.choice((1, 2, 5, 16, 40)))]
    r = rng.random()
    if r < 0.08:                      # a transaction in the middle
        at = rng.randrange(len(cmds) + 1)
        cmds[at:at] = [["MULTI"]] + [random_command(rng, spop) for _ in range(3)] + [["EXEC"]]
    elif r < 0.12:
        cmds.insert(0, ["WATCH", rng.choice(KEYS)])
        cmds.append(["UNWATCH"])
    elif r < 0.14:
        cmds.insert(0, ["CLIENT", "REPLY", rng.choice(["OFF", "SKIP"])])
        cmds.append(["CLIENT", "REPLY", "ON"])
    return cmds


def run_script(h, seed, steps, spop=True):
    """Runs a random script on harness h: clients 0 and 1 send pipelines, client 2
    sometimes blocks in BLPOP, client 3 is subscribed to every keyspace event while
    notifications are switched on and off."""
    rng = random.Random(seed)
    random.seed(seed)                 # the server's own randomness (SPOP)
    setsample.forget_all()
    h.group([(3, [["PSUBSCRIBE", "__key*__:*"]])])
    for step in range(steps):
        work = [(i, random_pipeline(rng, spop)) for i in (0, 1) if rng.random() < 0.7]
        if rng.random() < 0.05:
            work.append((2, [["BLPOP", rng.choice(LISTS), rng.choice(LISTS), "0"], ["LLEN", "l0"]]))
        if rng.random() < 0.04:
            work.append((0, [["CONFIG", "SET", "notify-keyspace-events", rng.choice(["KEA", "Kl", "Es", "", "", ""])]]))
        if rng.random() < 0.02:
            # A threshold a command could cross only by timing (say 100 ms on a loaded
            # machine) would make the two runs differ by chance: an hour never is crossed.
            work.append((1, [["CONFIG", "SET", "slowlog-log-slower-than", rng.choice(["0", "-1", "3600000000"])]]))
        rng.shuffle(work)
        h.group(work)
    # Wake a client still blocked, so that its output is complete.
    h.group([(0, [["RPUSH", lk, "wake"] for lk in LISTS])])


@pytest.mark.parametrize("seed", range(6))
def test_fast_lane_matches_general_path(tmp_path, seed):
    runs = {}
    for lane in (True, False):
        h = Harness(tmp_path / ("fast" if lane else "general"), lane)
        try:
            run_script(h, seed, 150)
            runs[lane] = (h.outputs(), h.records(), h.counters())
        finally:
            h.close()
    fast, general = runs[True], runs[False]
    for i, (a, b) in enumerate(zip(fast[0], general[0])):
        assert a == b, f"client {i}: the fast lane wrote other bytes than the general path"
    assert fast[1] == general[1]
    assert fast[2] == general[2]
    # The script did reach the fast lane's cases.
    calls = fast[2]["calls"]
    for name in ("lpush", "rpush", "lpop", "rpop", "llen", "lindex", "lrange", "sadd", "srem", "sismember",
                 "scard", "spop", "hset", "mset"):
        assert calls.get(name, 0) > 5, name


def test_fast_lane_runs_the_commands_it_claims(tmp_path):
    """The fast lane, not the general path, ran the plain cases (a regression in its
    conditions would pass the differential test while making it useless)."""
    h = Harness(tmp_path, True)
    try:
        c = h.clients[0]
        seen = []
        real_execute = h.srv.execute

        def execute(client, args):
            seen.append(args[0])
            return real_execute(client, args)

        h.srv.execute = execute
        h.group([(0, [["RPUSH", "l", "a", "b"], ["LPUSH", "l", "c"], ["LLEN", "l"], ["LINDEX", "l", "1"],
                      ["LRANGE", "l", "0", "-1"], ["LPOP", "l"], ["RPOP", "l"],
                      ["SADD", "s", "x", "y", "z", "w"], ["SISMEMBER", "s", "x"], ["SCARD", "s"], ["SREM", "s", "y"],
                      ["SPOP", "s"], ["LPOP", "nx"], ["SPOP", "nx"], ["SET", "k", "v"], ["GET", "k"],
                      ["HSET", "hh", "f", "v", "g", "w"], ["HSET", "hh", "f", "x", "f", "y"],
                      ["MSET", "k", "v2", "k2", "v3", "k", "v4"]])])
        assert seen == []
        out = bytes(c.transport.out)
        assert out.startswith(b":2\r\n:3\r\n:3\r\n$1\r\na\r\n*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nb\r\n"
                              b":4\r\n:1\r\n:4\r\n:1\r\n")
        assert out.endswith(b"+OK\r\n$1\r\nv\r\n:2\r\n:0\r\n+OK\r\n")
        h.group([(0, [["HGET", "hh", "f"], ["HLEN", "hh"], ["GET", "k"], ["GET", "k2"], ["DBSIZE"]])])
        assert bytes(c.transport.out).endswith(b"$1\r\ny\r\n:2\r\n$2\r\nv4\r\n$2\r\nv3\r\n:5\r\n")
        seen.clear()
        # What it leaves to the general path: emptying pops, counts, expiry, wrong types.
        h.group([(0, [["LPOP", "l"], ["SPOP", "s", "1"], ["PEXPIREAT", "s", str(FUTURE)], ["SCARD", "s"],
                      ["LPUSH", "k", "x"]])])
        assert seen == [b"LPOP", b"SPOP", b"PEXPIREAT", b"SCARD", b"LPUSH"]
    finally:
        h.close()


def test_pushes_wake_blocked_clients_in_both_lanes(tmp_path):
    outs = {}
    for lane in (True, False):
        h = Harness(tmp_path / str(lane), lane)
        try:
            h.group([(2, [["BLPOP", "q", "0"]]), (1, [["BRPOP", "q", "r", "0"]])])
            h.group([(0, [["RPUSH", "q", "a"], ["RPUSH", "q", "b", "c"], ["LLEN", "q"], ["RPUSH", "r", "d"]])])
            outs[lane] = (h.outputs(), h.records())
        finally:
            h.close()
    assert outs[True] == outs[False]
    assert outs[True][0][2] == b"*2\r\n$1\r\nq\r\n$1\r\na\r\n"
    assert outs[True][0][1] == b"*2\r\n$1\r\nq\r\n$1\r\nc\r\n"
    assert outs[True][0][0] == b":1\r\n:2\r\n:1\r\n:1\r\n"


# -- two real servers ------------------------------------------------------------------------

def _dump(data):
    out = subprocess.run([sys.executable, "-m", "kvdb", "dump", data], capture_output=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        rec = json.loads(line)
        rows.append((base64.b64decode(rec["key"]), base64.b64decode(rec["value"])))
    return rows


def _normalized(rows):
    """The records of live keys, collection versions replaced by their rank. Deleted
    collections' records, and the count of them (C6), are left out: the background collector
    clears them on its own schedule, which differs between two servers."""
    live = sorted(v[9:17] for k, v in rows if k[1] != 0xff and k[2:3] == b"k" and v[:1] in (b"L", b"S"))
    rank = {ver: b"<v%04d>" % i for i, ver in enumerate(live)}
    out = []
    for k, v in rows:
        if k in (b"\x01\xffvclock", GARBAGE_COUNT_KEY) or k[2:3] == b"g":
            continue
        if k[1] != 0xff and k[2:3] == b"k" and v[:1] in (b"L", b"S"):
            v = v[:9] + rank[v[9:17]] + v[17:]
        elif k[1] != 0xff and k[2:3] in (b"l", b"s"):
            if k[3:11] not in rank:
                continue
            k = k[:3] + rank[k[3:11]] + k[11:]
        out.append((k, v))
    return out


def test_two_servers_same_replies_and_records(tmp_path):
    """Real `kvdb serve` processes, one per lane, get the same pipelines over sockets
    (SPOP aside: its picks are random); replies and the dumped records must agree."""
    rng = random.Random(7)
    servers = [ServerProcess(tmp_path / lane, "--sync", "normal", env={"KVDB_SERVER_FASTLANE": flag})
               for lane, flag in (("fast", "1"), ("general", "0"))]
    (tmp_path / "fast").mkdir()
    (tmp_path / "general").mkdir()
    try:
        for s in servers:
            s.start()
        clients = [s.client(protocol=2) for s in servers]   # RESP3 sets are sent in hash order
        conns = [r.connection_pool.get_connection() for r in clients]
        for _ in range(120):
            cmds = [c for c in random_pipeline(rng, spop=False) if c[0] not in ("SELECT", "CLIENT")]
            replies = []
            for conn in conns:
                conn.send_packed_command([b"".join(resp(*cmd) for cmd in cmds)])
                got = []
                for _ in cmds:
                    try:
                        got.append(repr(conn.read_response()))
                    except redis.ResponseError as e:
                        got.append(f"error {e}")
                replies.append(got)
            assert replies[0] == replies[1], [(c, a, b) for c, a, b in zip(cmds, *replies) if a != b][:1]
        for r, conn in zip(clients, conns):
            r.connection_pool.release(conn)
            r.close()
    finally:
        for s in servers:
            s.stop()
    fast, general = (_normalized(_dump(s.data)) for s in servers)
    assert fast == general
    assert any(k[2:3] == b"l" for k, _ in fast) and any(k[2:3] == b"s" for k, _ in fast)


def test_sadd_forgets_the_spop_pool(tmp_path):
    """New members must be able to come out of the next SPOP: SADD on either path drops
    the set's pool (setsample.forget)."""
    for lane in (True, False):
        h = Harness(tmp_path / str(lane), lane)
        try:
            setsample.forget_all()
            h.group([(0, [["SADD", "s"] + [f"m{i}" for i in range(300)], ["SPOP", "s"]])])
            assert len(setsample._pools) == 1
            h.group([(0, [["SADD", "s", "new"]])])
            assert not setsample._pools
            h.group([(0, [["SPOP", "s"]])])
            assert len(setsample._pools) == 1
            out = h.clients[0].transport.out
            before = len(out)
            h.group([(0, [["SADD", "s", "m1"]])])
            if out[before:] == b":0\r\n":                    # nothing new: the pool stays
                assert len(setsample._pools) == 1
            else:
                assert not setsample._pools
        finally:
            setsample.forget_all()
            h.close()


def test_fast_reply_encoder_matches_resp():
    """fastreply.encode_replies sends the bytes resp.encode_replies sends, for every kind of
    reply, in RESP2 and RESP3, and raises the same TypeError for what cannot be encoded."""
    from kvdb.server.protocol.resp import NULL_ARRAY, OK, QUEUED, ErrorReply, Push, Status
    from kvdb.server.protocol.resp import encode_replies as general
    fastreply = pytest.importorskip("kvdb.server.protocol.fastreply")
    values = [b"", b"abc", b"\r\n\x00", b"x" * 70000, None, 0, 1, -1, 9, 10, -10, 2**63 - 1, -2**63, 2**63,
              -2**63 - 1, 10**30, True, False, 1.5, float("inf"), OK, QUEUED, Status("x"),
              ErrorReply("ERR bad\r\nthing"), NULL_ARRAY, Push([b"a", 1]), [], [b"a", None, 3, [b"x", [OK]]],
              (b"t", 1), {b"k": b"v"}, {b"s"}, "str", "é", bytearray(b"ba"), memoryview(b"mv")]
    rng = random.Random(3)
    for proto in (2, 3):
        for v in values:
            assert fastreply.encode_replies([v], proto) == general([v], proto), (v, proto)
        for _ in range(500):
            batch = rng.sample(values, rng.randrange(len(values)))
            assert fastreply.encode_replies(batch, proto) == general(batch, proto)
        big = [[b"y" * rng.randrange(300) for _ in range(1000)]]
        assert fastreply.encode_replies(big, proto) == general(big, proto)
    with pytest.raises(TypeError) as fast_error:
        fastreply.encode_replies([b"ok", object()])
    with pytest.raises(TypeError) as general_error:
        general([b"ok", object()])
    assert str(fast_error.value) == str(general_error.value)
