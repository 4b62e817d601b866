"""Every command of the RESP server through redis-py, under RESP2 and RESP3."""
import threading
import time

import pytest

from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")


def raw(r, *args):
    """A command's reply without redis-py's response callbacks."""
    conn = r.connection_pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        r.connection_pool.release(conn)


@pytest.fixture(scope="module", params=[("fastlane", "btree"), ("general", "btree"), ("fastlane", "lsm")],
                ids=["fastlane-btree", "general-btree", "fastlane-lsm"])
def srv(tmp_path_factory, request):
    # GET, SET, INCR and DECR run from C (kvdb/server/protocol/fastlane.pyx) unless
    # KVDB_SERVER_FASTLANE=0; every test runs against both paths, which must agree, and
    # against both storage engines.
    lane, engine = request.param
    env = {"KVDB_SERVER_FASTLANE": "1" if lane == "fastlane" else "0"}
    with ServerProcess(tmp_path_factory.mktemp("server"), "--sync", "normal", "--engine", engine, env=env) as s:
        yield s


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(srv, request):
    client = srv.client(protocol=request.param)
    client.flushall()
    yield client
    client.close()


# -- connection ----------------------------------------------------------------

def test_ping_echo_time(r):
    assert r.ping() is True
    assert r.echo(b"hi") == b"hi"
    conn = r.connection_pool.get_connection()
    conn.send_command("PING", "x")
    assert conn.read_response() == b"x"  # redis-py turns PING's reply into a bool
    r.connection_pool.release(conn)
    secs, micros = r.time()
    assert abs(secs - time.time()) < 5 and 0 <= micros < 1_000_000


def test_hello_switches_protocol(srv):
    c = srv.client()
    info = c.execute_command("HELLO", "3")
    info = {k.decode() if isinstance(k, bytes) else k: v for k, v in info.items()}
    assert info["proto"] == 3 and info["mode"] in (b"standalone", "standalone")
    with pytest.raises(redis.ResponseError, match="NOPROTO"):
        c.execute_command("HELLO", "4")


def test_select_isolates_databases(srv):
    a = srv.client(db=0)
    b = srv.client(db=5)
    a.flushall()
    a.set("k", "zero")
    b.set("k", "five")
    assert a.get("k") == b"zero" and b.get("k") == b"five"
    assert a.dbsize() == 1 and b.dbsize() == 1
    b.flushdb()
    assert a.get("k") == b"zero" and b.get("k") is None
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        a.execute_command("SELECT", "16")


def test_client_commands(srv):
    c = srv.client()
    c.client_setname("tester")
    assert c.client_getname() in ("tester", b"tester")
    cid = c.client_id()
    assert isinstance(cid, int)
    info = c.client_info()
    assert info["name"] == "tester" and int(info["id"]) == cid
    assert any(cl["name"] == "tester" for cl in c.client_list())
    with pytest.raises(redis.ResponseError, match="cannot contain spaces"):
        c.client_setname("has space")
    victim = srv.client()
    victim.client_setname("victim")
    vid = victim.client_id()
    assert c.client_kill_filter(_id=vid) == 1
    assert victim.client_id() != vid  # redis-py reconnected: the old connection is gone
    assert c.execute_command("CLIENT", "SETINFO", "LIB-NAME", "mylib") == b"OK"


def test_command_introspection(r):
    assert raw(r, "COMMAND", "COUNT") == len(raw(r, "COMMAND", "LIST")) > 80
    info = raw(r, "COMMAND", "INFO", "get")
    assert info[0][0] == b"get" and info[0][1] == 2
    docs = raw(r, "COMMAND", "DOCS", "set")
    assert docs
    assert raw(r, "COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2") == [b"a", b"b"]
    assert len(r.command()) > 80


def test_errors_worded_as_redis(r):
    with pytest.raises(redis.ResponseError, match=r"^unknown command 'FOO', with args beginning with: 'a' 'b' $"):
        r.execute_command("FOO", "a", "b")
    with pytest.raises(redis.ResponseError, match=r"wrong number of arguments for 'get' command"):
        r.execute_command("GET")
    r.hset("h", "f", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE Operation against a key holding the wrong kind of value"):
        r.get("h")
    with pytest.raises(redis.ResponseError, match="unknown subcommand 'NOPE'. Try CLIENT HELP."):
        r.execute_command("CLIENT", "NOPE")


# -- server ---------------------------------------------------------------------

def test_info_sections(r):
    r.set("a", "1")
    info = r.info()
    assert info["redis_version"] and info["arch_bits"] == 64 and info["cluster_enabled"] == 0
    assert info["db0"]["keys"] == 1
    for section in ("server", "clients", "memory", "persistence", "stats", "keyspace"):
        assert r.info(section)
    assert "connected_clients" in r.info("clients")


def test_config_get_set(r):
    assert r.config_get("maxclients") == {"maxclients": "10000"} or r.config_get("maxclients")
    r.config_set("slowlog-log-slower-than", "0")
    assert r.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"] == "0"
    r.set("slow", "x")
    assert r.slowlog_len() >= 1 and r.slowlog_get(1)
    r.slowlog_reset()
    r.config_set("slowlog-log-slower-than", "10000")
    with pytest.raises(redis.ResponseError):
        r.config_set("maxclients", "notanumber")
    with pytest.raises(redis.ResponseError, match="immutable"):
        r.config_set("port", "1")
    assert r.config_resetstat()


def test_save_lastsave_dbsize_flush(r):
    r.mset({"a": "1", "b": "2"})
    before = r.lastsave()
    assert r.save()
    assert r.lastsave() >= before
    assert r.bgsave()
    assert r.dbsize() == 2
    assert r.flushdb(asynchronous=True)
    assert r.dbsize() == 0


def test_debug_sleep_blocks_only_its_client(srv):
    sleeper = srv.client()
    other = srv.client()
    done = []
    t = threading.Thread(target=lambda: done.append(sleeper.execute_command("DEBUG", "SLEEP", "0.5")))
    start = time.monotonic()
    t.start()
    time.sleep(0.1)
    assert other.ping() and time.monotonic() - start < 0.45
    t.join()
    assert done == [b"OK"] and time.monotonic() - start >= 0.5


# -- keys -----------------------------------------------------------------------

def test_del_exists_type_keys(r):
    r.mset({"user:1": "a", "user:2": "b", "other": "c"})
    r.hset("hash", "f", "v")
    assert r.exists("user:1", "user:2", "missing") == 2
    assert r.type("user:1") == (b"string" if r.get_connection_kwargs().get("protocol") != 3 else b"string")
    assert r.type("hash") == b"hash" and r.type("nope") == b"none"
    assert sorted(r.keys("user:*")) == [b"user:1", b"user:2"]
    assert sorted(r.keys("*")) == [b"hash", b"other", b"user:1", b"user:2"]
    assert r.delete("user:1", "hash", "missing") == 2
    assert r.unlink("user:2") == 1 and r.touch("other", "x") == 1
    assert r.dbsize() == 1


def test_scan_returns_every_stable_key(r):
    stable = {f"s:{i:04d}".encode() for i in range(500)}
    r.mset({k: b"v" for k in stable})
    r.hset("h:1", "f", "v")
    seen = []
    cursor = 0
    churn = 0
    while True:
        cursor, batch = r.scan(cursor, count=37)
        seen += batch
        # keys added and removed during the iteration must not disturb the stable ones
        r.set(f"tmp:{churn}", "x")
        r.delete(f"tmp:{churn - 3}")
        churn += 1
        if cursor == 0:
            break
    assert stable <= set(seen)
    assert len([k for k in seen if k in stable]) == len(stable)  # each once
    assert set(r.scan_iter(match="s:00*")) == {k for k in stable if k.startswith(b"s:00")}
    assert set(r.scan_iter(_type="hash")) == {b"h:1"}


def test_randomkey_rename_copy(r):
    assert r.randomkey() is None
    r.set("a", "1")
    r.hset("h", mapping={"f1": "v1", "f2": "v2"})
    assert r.randomkey() in (b"a", b"h")
    assert r.rename("a", "b")
    assert r.get("a") is None and r.get("b") == b"1"
    assert r.renamenx("b", "h") is False
    with pytest.raises(redis.ResponseError, match="no such key"):
        r.rename("nope", "x")
    assert r.copy("h", "h2") is True
    assert r.hgetall("h2") == {b"f1": b"v1", b"f2": b"v2"}
    assert r.copy("h", "h2") is False
    assert r.copy("b", "h2", replace=True) is True and r.get("h2") == b"1"
    assert r.copy("b", "elsewhere", destination_db=3) is True
    r.rename("h", "h3")
    assert r.hgetall("h3") == {b"f1": b"v1", b"f2": b"v2"} and r.exists("h") == 0


def test_expiry_commands(r):
    r.set("k", "v")
    assert r.ttl("k") == -1 and r.ttl("missing") == -2
    assert r.expire("k", 100)
    assert 99 <= r.ttl("k") <= 100 and 99_000 < r.pttl("k") <= 100_000
    assert abs(r.expiretime("k") - (time.time() + 100)) < 3
    assert r.expire("k", 50, gt=True) is False and r.expire("k", 50, lt=True) is True
    assert r.persist("k") and r.ttl("k") == -1
    assert r.pexpire("k", 100)
    time.sleep(0.25)
    assert r.get("k") is None and r.exists("k") == 0
    r.set("k2", "v")
    assert r.expireat("k2", int(time.time()) - 1)
    assert r.get("k2") is None
    r.set("k3", "v")
    r.pexpireat("k3", int(time.time() * 1000) + 60_000)
    assert r.pttl("k3") > 50_000


def test_expired_keys_are_swept(r):
    for i in range(50):
        r.set(f"e{i}", "v", px=50)
    r.set("stay", "v")
    deadline = time.time() + 5
    while time.time() < deadline and r.dbsize() > 1:
        time.sleep(0.05)
    assert r.dbsize() == 1
    assert r.info("stats")["expired_keys"] >= 50


def test_object_encoding(r):
    r.set("i", "123")
    r.set("s", "short")
    r.set("l", "x" * 100)
    r.hset("h", "f", "v")
    assert r.object("encoding", "i") in (b"int", "int")
    assert r.object("encoding", "s") in (b"embstr", "embstr")
    assert r.object("encoding", "l") in (b"raw", "raw")
    assert r.object("encoding", "h") in (b"listpack", "listpack")
    assert r.object("encoding", "missing") is None


# -- strings --------------------------------------------------------------------

def test_set_options(r):
    assert r.set("k", "v1")
    assert r.set("k", "v2", nx=True) is None
    assert r.set("k", "v3", xx=True) and r.get("k") == b"v3"
    assert r.set("new", "v", xx=True) is None and r.get("new") is None
    assert r.set("k", "v4", get=True) == b"v3"
    r.set("k", "v5", ex=100)
    assert 99 <= r.ttl("k") <= 100
    r.set("k", "v6", keepttl=True)
    assert r.ttl("k") > 0
    r.set("k", "v7")
    assert r.ttl("k") == -1
    r.set("k", "v", px=100_000)
    assert r.pttl("k") > 90_000
    r.set("k", "v", exat=int(time.time()) + 100)
    assert 98 <= r.ttl("k") <= 100
    r.set("k", "v", pxat=int(time.time() * 1000) + 100_000)
    assert 98 <= r.ttl("k") <= 100
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("SET", "k", "v", "NX", "XX")
    with pytest.raises(redis.ResponseError, match="invalid expire time in 'set' command"):
        r.execute_command("SET", "k", "v", "EX", "0")


def test_string_commands(r):
    assert r.setnx("a", "1") is True and r.setnx("a", "2") is False
    assert r.setex("b", 100, "x") and 99 <= r.ttl("b") <= 100
    assert r.psetex("c", 100_000, "y") and r.pttl("c") > 90_000
    assert r.mget("a", "b", "missing") == [b"1", b"x", None]
    assert r.mset({"m1": "1", "m2": "2"})
    assert r.msetnx({"m2": "x", "m3": "3"}) is False and r.get("m3") is None
    assert r.msetnx({"m3": "3", "m4": "4"}) is True
    assert r.getset("a", "10") == b"1"
    assert r.getdel("m4") == b"4" and r.get("m4") is None
    assert r.getex("a", ex=100) == b"10" and r.ttl("a") > 0
    assert r.getex("a", persist=True) == b"10" and r.ttl("a") == -1
    assert r.incr("a") == 11 and r.decr("a") == 10
    assert r.incrby("a", 5) == 15 and r.decrby("a", 20) == -5
    assert r.incrbyfloat("f", 10.5) == 10.5
    assert r.incrbyfloat("f", 0.1) == pytest.approx(10.6)
    assert r.get("f") == b"10.6"
    r.set("f2", "5.0e3")
    assert r.incrbyfloat("f2", 200) == 5200 and r.get("f2") == b"5200"
    assert r.append("s", "Hello") == 5 and r.append("s", " World") == 11
    assert r.strlen("s") == 11 and r.strlen("missing") == 0
    assert r.getrange("s", 0, 4) == b"Hello" and r.getrange("s", -5, -1) == b"World"
    assert r.getrange("s", 5, 2) == b"" and r.getrange("s", 0, 100) == b"Hello World"
    assert r.setrange("s", 6, "Redis") == 11 and r.get("s") == b"Hello Redis"
    assert r.setrange("pad", 3, "x") == 4 and r.get("pad") == b"\x00\x00\x00x"


def test_incr_errors(r):
    r.set("s", "abc")
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        r.incr("s")
    r.set("big", str(2 ** 63 - 1))
    with pytest.raises(redis.ResponseError, match="increment or decrement would overflow"):
        r.incr("big")
    with pytest.raises(redis.ResponseError, match="not a valid float"):
        r.incrbyfloat("s", 1)
    r.set("n", "1")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incrby("n", "1.5")
    for bad in ("007", "-0", "+1", " 1", "1 ", "", "99999999999999999999"):
        r.set("n", bad)
        with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
            r.incr("n")
    r.set("n", str(-2 ** 63))
    with pytest.raises(redis.ResponseError, match="would overflow"):
        r.decr("n")
    r.set("n", "-5")
    assert r.incr("n") == -4 and r.decr("n") == -5 and r.decr("fresh") == -1
    r.set("n", "9", ex=100)
    assert r.incr("n") == 10 and r.ttl("n") > 90  # INCR keeps the expiry


def test_binary_safe_values(r):
    key = bytes(range(256))
    value = bytes(range(255, -1, -1)) * 100
    r.set(key, value)
    assert r.get(key) == value
    r.set(b"", b"")
    assert r.get(b"") == b""


# -- hashes ---------------------------------------------------------------------

def test_hash_commands(r):
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", "a", "10") == 0
    assert r.hget("h", "a") == b"10" and r.hget("h", "zz") is None and r.hget("nohash", "a") is None
    assert r.hmget("h", "a", "b", "c") == [b"10", b"2", None]
    assert r.hmset("h", {"c": "3"})
    assert r.hgetall("h") == {b"a": b"10", b"b": b"2", b"c": b"3"}
    assert r.hkeys("h") == [b"a", b"b", b"c"] and r.hvals("h") == [b"10", b"2", b"3"]
    assert r.hlen("h") == 3 and r.hexists("h", "a") and not r.hexists("h", "z")
    assert r.hstrlen("h", "a") == 2
    assert not r.hsetnx("h", "a", "x") and r.hsetnx("h", "d", "4")
    assert r.hincrby("h", "a", 5) == 15 and r.hincrby("h", "new", -2) == -2
    assert r.hincrbyfloat("h", "f", 1.5) == 1.5
    with pytest.raises(redis.ResponseError, match="hash value is not an integer"):
        r.hset("h", "s", "abc")
        r.hincrby("h", "s", 1)
    assert r.hdel("h", "a", "b", "zzz") == 2
    assert r.hrandfield("h") in r.hkeys("h")
    assert len(r.hrandfield("h", 2)) == 2 and len(r.hrandfield("h", -10)) == 10
    assert len(r.hrandfield("h", 2, withvalues=True)) in (2, 4)
    fields = r.hkeys("h")
    assert r.hdel("h", *fields) == len(fields)
    assert r.exists("h") == 0 and r.hlen("h") == 0 and r.hgetall("h") == {}


def test_hscan_large_hash(r):
    mapping = {f"f{i:05d}": str(i) for i in range(2000)}
    r.hset("big", mapping=mapping)
    assert r.hlen("big") == 2000
    got = dict(r.hscan_iter("big", count=100))
    assert got == {k.encode(): v.encode() for k, v in mapping.items()}
    assert {k for k, _ in r.hscan_iter("big", match="f0001*")} == {f"f0001{i}".encode() for i in range(10)}


def test_hash_expiry_removes_fields(r):
    r.hset("h", mapping={"a": "1", "b": "2"})
    r.pexpire("h", 50)
    time.sleep(0.15)
    assert r.hgetall("h") == {} and r.hlen("h") == 0
    r.hset("h", "c", "3")
    assert r.hgetall("h") == {b"c": b"3"}


# -- transactions ----------------------------------------------------------------

def test_multi_exec(r):
    p = r.pipeline(transaction=True)
    p.set("a", "1").incr("a").get("a")
    assert p.execute() == [True, 2, b"2"]
    with pytest.raises(redis.ResponseError, match="EXEC without MULTI"):
        r.execute_command("EXEC")


def test_exec_runtime_error_does_not_abort_others(r):
    r.hset("h", "f", "v")
    p = r.pipeline(transaction=True)
    p.set("a", "1").get("h").set("b", "2")
    res = p.execute(raise_on_error=False)
    assert res[0] is True and isinstance(res[1], redis.ResponseError) and res[2] is True
    assert r.get("b") == b"2"


def test_execabort_on_queue_error(srv):
    c = srv.client()
    c.flushall()
    conn = c.connection_pool.get_connection()
    conn.send_command("MULTI")
    assert conn.read_response() == b"OK"
    conn.send_command("SET", "x", "1")
    assert conn.read_response() == b"QUEUED"
    conn.send_command("NOSUCH")
    with pytest.raises(redis.ResponseError):
        conn.read_response()
    conn.send_command("EXEC")
    with pytest.raises(redis.exceptions.ExecAbortError, match="previous errors"):
        conn.read_response()
    c.connection_pool.release(conn)
    assert c.get("x") is None


def test_watch_conflict_returns_nil(srv):
    a = srv.client()
    b = srv.client()
    a.flushall()
    a.set("balance", "100")
    with a.pipeline() as p:
        p.watch("balance")
        value = int(p.get("balance"))
        b.set("balance", "50")          # a concurrent change
        p.multi()
        p.set("balance", value - 10)
        with pytest.raises(redis.WatchError):
            p.execute()
    assert a.get("balance") == b"50"
    with a.pipeline() as p:          # without interference it commits
        p.watch("balance")
        value = int(p.get("balance"))
        p.multi()
        p.set("balance", value - 10)
        assert p.execute() == [True]
    assert a.get("balance") == b"40"


def test_watch_sees_expiry_and_flush(srv):
    a = srv.client()
    a.flushall()
    a.set("k", "v", px=50)
    with a.pipeline() as p:
        p.watch("k")
        time.sleep(0.2)  # the key expires (and is swept) after WATCH
        p.multi()
        p.set("k", "new")
        with pytest.raises(redis.WatchError):
            p.execute()
    b = srv.client()
    with a.pipeline() as p:
        p.watch("z")
        b.flushdb()
        p.multi()
        p.set("z", "1")
        with pytest.raises(redis.WatchError):
            p.execute()


def test_watch_counter_under_concurrency(srv):
    srv.client().set("ctr", 0)

    def worker():
        c = srv.client()
        def incr(p):
            value = int(p.get("ctr"))
            p.multi()
            p.set("ctr", value + 1)

        for _ in range(25):
            c.transaction(incr, "ctr")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert srv.client().get("ctr") == b"100"


def test_discard_and_nested_multi(r):
    p = r.pipeline(transaction=False)
    p.execute_command("MULTI")
    p.execute_command("INCR", "d")
    p.execute_command("DISCARD")
    assert p.execute() == [b"OK", b"QUEUED", b"OK"]
    assert r.get("d") is None
    conn = r.connection_pool.get_connection()
    conn.send_command("MULTI")
    assert conn.read_response() in (b"OK", "OK")
    conn.send_command("WATCH", "x")
    with pytest.raises(redis.ResponseError, match="WATCH inside MULTI is not allowed"):
        conn.read_response()
    conn.send_command("MULTI")
    with pytest.raises(redis.ResponseError, match="MULTI calls can not be nested"):
        conn.read_response()
    conn.send_command("DISCARD")
    assert conn.read_response() in (b"OK", "OK")
    r.connection_pool.release(conn)


# -- pipelining ------------------------------------------------------------------

def test_pipeline_replies_in_order(r):
    p = r.pipeline(transaction=False)
    for i in range(1000):
        p.set(f"k{i}", i)
        p.get(f"k{i}")
    res = p.execute()
    assert res[1::2] == [str(i).encode() for i in range(1000)]


# -- pub/sub ---------------------------------------------------------------------

def _next_message(ps, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = ps.get_message(timeout=0.1)
        if m is not None and m["type"] in ("message", "pmessage"):
            return m
    raise AssertionError("no message arrived")


@pytest.mark.parametrize("protocol", [2, 3])
def test_pubsub(srv, protocol):
    sub = srv.client(protocol=protocol)
    pub = srv.client()
    ps = sub.pubsub()
    ps.subscribe("news")
    ps.psubscribe("sport.*")
    time.sleep(0.1)
    assert pub.publish("news", "hello") == 1
    m = _next_message(ps)
    assert m["channel"] == b"news" and m["data"] == b"hello"
    assert pub.publish("sport.tennis", "ace") == 1
    m = _next_message(ps)
    assert m["pattern"] == b"sport.*" and m["channel"] == b"sport.tennis" and m["data"] == b"ace"
    assert pub.pubsub_channels() == [b"news"]
    assert pub.pubsub_numsub("news") == [(b"news", 1)]
    assert pub.pubsub_numpat() == 1
    ps.unsubscribe("news")
    ps.punsubscribe()
    time.sleep(0.1)
    assert pub.publish("news", "gone") == 0
    ps.close()


def test_subscribe_mode_restricts_commands_in_resp2(srv):
    import socket
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"SUBSCRIBE ch\r\nGET x\r\nPING\r\n")
        data = b""
        deadline = time.time() + 5
        while b"pong" not in data and time.time() < deadline:
            data += s.recv(4096)
        assert b"subscribe" in data and b"only (P|S)SUBSCRIBE" in data and b"pong" in data


def test_keyspace_notifications(srv):
    c = srv.client()
    c.flushall()
    c.config_set("notify-keyspace-events", "KEA")
    try:
        ps = c.pubsub()
        ps.psubscribe("__key*@0__:*")
        time.sleep(0.1)
        c.set("nk", "v")
        c.hset("nh", "f", "v")
        c.delete("nk")
        c.set("ek", "v", px=30)
        events = []
        deadline = time.time() + 5
        while time.time() < deadline and b"expired" not in [e[1] for e in events]:
            m = ps.get_message(timeout=0.1)
            if m and m["type"] == "pmessage":
                events.append((m["channel"], m["data"]))
        assert (b"__keyspace@0__:nk", b"set") in events
        assert (b"__keyevent@0__:set", b"nk") in events
        assert (b"__keyspace@0__:nh", b"hset") in events
        assert (b"__keyspace@0__:nk", b"del") in events
        assert (b"__keyspace@0__:ek", b"expired") in events
        ps.close()
    finally:
        c.config_set("notify-keyspace-events", "")


def test_resp3_types(srv):
    c = srv.client(protocol=3)
    c.flushall()
    c.hset("h", mapping={"a": "1"})
    assert c.hgetall("h") == {b"a": b"1"}
    assert c.get("missing") is None
    conn = c.connection_pool.get_connection()
    conn.send_command("HGETALL", "h")
    assert conn.read_response() == {b"a": b"1"}
    c.connection_pool.release(conn)


def test_reset_and_quit(srv):
    c = srv.client()
    c.execute_command("SELECT", "3")
    assert c.execute_command("RESET") in ("RESET", b"RESET")
    assert c.execute_command("QUIT") in (b"OK", True)
