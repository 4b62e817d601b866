"""Key names and hash fields near and past the engine's key limit (issue 12, section 8).

Key names of any length up to Redis's 512 MB work: names too long for a record key
are kept through their SHA-256 digest with the name in the record's value
(keyspace.LONG_*, docs/format/server-keys.md (Long key names)). A hash field or member
past its limit gets an error naming the limit, and nothing of the command is
written. Never an "internal error" or a traceback. Checked with the fast lane
(GET/SET/INCR in C) on and off."""
import time

import pytest

import kvdb
from kvdb.server import keyspace as ksmod
from kvdb.server.keyspace import MAX_NAME, Keyspace
from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")

# Lengths around each limit: past MAX_NAME (hash fields move to the digest form), past
# LONG_EXPIRY (expiry entries do), past LONG_META (meta records do), 17 KiB and 100 KiB.
SIZES = [ksmod.MAX_NAME + 30, ksmod.LONG_EXPIRY + 5, ksmod.LONG_META, ksmod.LONG_META + 1, 17 * 1024, 100 * 1024]


def name(n, tag=b"k"):
    return tag + b":" + b"x" * (n - len(tag) - 2) + b"!"


@pytest.fixture(scope="module", params=["1", "0"], ids=["fastlane", "no-fastlane"])
def srv(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keysize")
    with ServerProcess(tmp, env={"KVDB_SERVER_FASTLANE": request.param}) as s:
        yield s
        log = s.log()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]


@pytest.fixture
def r(srv):
    c = srv.client()
    c.flushall()
    yield c
    c.close()


def no_internal_error(fn, *args, **kw):
    """Runs a command that must fail with a clean error; returns the error text."""
    with pytest.raises(redis.ResponseError) as e:
        fn(*args, **kw)
    text = str(e.value)
    assert "internal error" not in text and "Traceback" not in text and "ValueError" not in text, text
    return text


@pytest.mark.parametrize("n", SIZES)
def test_strings_of_long_names(r, n):
    k = name(n)
    assert r.set(k, b"v") is True
    assert r.get(k) == b"v"
    assert r.exists(k) == 1 and r.type(k) == b"string" and r.strlen(k) == 1
    assert r.append(k, b"w") == 2 and r.get(k) == b"vw"
    assert r.set(k, b"1") and r.incr(k) == 2 and r.decr(k) == 1
    assert r.getset(k, b"new") == b"1" and r.get(k) == b"new"
    assert r.dbsize() == 1 and r.keys() == [k] and r.randomkey() == k
    assert r.expire(k, 100) and r.ttl(k) == 100
    assert r.persist(k) and r.ttl(k) == -1
    assert r.set(k, b"ex", ex=100) and r.ttl(k) == 100
    assert r.set(k, b"plain") and r.ttl(k) == -1              # SET clears the expiry
    assert r.object("encoding", k) == b"embstr"
    assert r.delete(k) == 1 and r.exists(k) == 0 and r.get(k) is None and r.dbsize() == 0
    assert r.setnx(k, b"a") and not r.setnx(k, b"b") and r.get(k) == b"a"
    assert r.unlink(k) == 1 and r.dbsize() == 0


@pytest.mark.parametrize("n", SIZES)
def test_every_type_under_a_long_name(r, n):
    k = name(n)
    r.hset(k, mapping={b"f1": b"v1", b"f2": b"v2"})
    assert r.hgetall(k) == {b"f1": b"v1", b"f2": b"v2"} and r.hlen(k) == 2 and r.hget(k, b"f2") == b"v2"
    assert r.hscan(k, 0, count=1)[1] and r.hdel(k, b"f1", b"f2") == 2 and r.exists(k) == 0
    r.rpush(k, b"a", b"b")
    assert r.lrange(k, 0, -1) == [b"a", b"b"] and r.type(k) == b"list"
    r.delete(k)
    r.sadd(k, b"m")
    assert r.smembers(k) == {b"m"} and r.type(k) == b"set"
    r.delete(k)
    r.zadd(k, {b"z": 1})
    assert r.zrange(k, 0, -1, withscores=True) == [(b"z", 1.0)] and r.type(k) == b"zset"
    r.delete(k)
    r.xadd(k, {b"f": b"v"}, id=b"1-1")
    assert r.xlen(k) == 1 and r.type(k) == b"stream"
    assert r.dbsize() == 1


@pytest.mark.parametrize("n", SIZES)
def test_rename_copy_move_long_names(r, n):
    k = name(n)
    r.rpush(k, b"a", b"b")
    r.expire(k, 100)
    assert r.rename(k, b"short") and r.exists(k) == 0 and r.lrange(b"short", 0, -1) == [b"a", b"b"]
    assert r.ttl(b"short") == 100
    assert r.rename(b"short", k) and r.lrange(k, 0, -1) == [b"a", b"b"] and r.ttl(k) == 100
    assert r.copy(k, k + b"2") and r.lrange(k + b"2", 0, -1) == [b"a", b"b"]
    assert r.move(k + b"2", 1)
    r.hset(b"h", mapping={b"f": b"v"})
    assert r.rename(b"h", k + b"3") and r.hgetall(k + b"3") == {b"f": b"v"}
    assert r.dbsize() == 2
    r.execute_command("SELECT", 1)
    assert r.lrange(k + b"2", 0, -1) == [b"a", b"b"] and r.keys() == [k + b"2"]
    r.execute_command("SELECT", 0)


def test_N5_scan_walks_long_names_once(r):
    """N5: SCAN walks the short names, then the long ones by digest, each once, whatever COUNT."""
    names = [name(n, b"k%d" % i) for i, n in enumerate(SIZES)] + [b"a", b"b", b"zz"]
    for k in names:
        r.set(k, b"v")
    for count in (1, 2, 100):
        seen, cursor = [], 0
        while True:
            cursor, keys = r.scan(cursor, count=count)
            seen += keys
            if cursor == 0:
                break
        assert sorted(seen) == sorted(names)
    assert sorted(r.keys()) == sorted(names)
    assert sorted(r.keys(b"k1:*")) == [names[1]]
    assert sorted(r.scan(0, match=b"*!", count=1000)[1]) == sorted(names[:len(SIZES)])
    assert r.scan(0, match=name(20000), count=1000)[1] == []       # a literal prefix past the limit
    assert sorted(r.scan(0, _type="string", count=1000)[1]) == sorted(names)
    assert r.dbsize() == len(names)


def test_N2_long_names_expire_and_are_swept(r):
    """N2: a long name's expiry entry (`y`) is swept like a short one's (`x`)."""
    for i, n in enumerate(SIZES):
        k = name(n, b"e%d" % i)
        r.set(k, b"v", px=40)
        r.rpush(k + b"l", b"x")
        r.pexpire(k + b"l", 40)
    time.sleep(0.5)   # the background sweep (hz 10) removes them
    assert r.dbsize() == 0 and r.keys() == []


def test_N4_long_names_survive_a_restart(tmp_path):
    """N4: DBSIZE and INFO keyspace count long names and their expiry entries (counted
    again at start), and FLUSHALL clears them."""
    ks_names = [name(n, b"r%d" % i) for i, n in enumerate(SIZES)]
    with ServerProcess(tmp_path, "--sync", "full") as s:
        c = s.client()
        for k in ks_names:
            c.set(k, k[-10:], ex=1000)
        c.hset(ks_names[-1] + b"h", b"f", b"v")
    with ServerProcess(tmp_path, "--sync", "full") as s:
        c = s.client()
        assert c.dbsize() == len(SIZES) + 1
        assert all(c.get(k) == k[-10:] and 0 < c.ttl(k) <= 1000 for k in ks_names)
        assert c.hget(ks_names[-1] + b"h", b"f") == b"v"
        assert c.info("keyspace")["db0"]["expires"] == len(SIZES)
        assert c.flushall() and c.dbsize() == 0
    with ServerProcess(tmp_path) as s:
        assert s.client().dbsize() == 0


# -- hash fields and members past their limits: a clean error, nothing written ----------------

@pytest.mark.parametrize("n", [17 * 1024, 100 * 1024])
def test_long_fields_and_members_are_refused_whole(r, n):
    big = b"f" * n
    text = no_internal_error(r.hset, b"h", big, b"v")
    assert str(MAX_NAME) in text
    no_internal_error(r.hset, b"h", mapping={b"ok": b"1", big: b"v"})
    assert r.exists(b"h") == 0                                     # nothing partial
    r.hset(b"h", b"keep", b"1")
    no_internal_error(r.hset, b"h", mapping={b"ok": b"1", big: b"v"})
    assert r.hgetall(b"h") == {b"keep": b"1"}
    assert r.hget(b"h", big) is None and not r.hexists(b"h", big) and r.hdel(b"h", big) == 0
    no_internal_error(r.hsetnx, b"h", big, b"v")
    no_internal_error(r.hincrby, b"h", big, 1)
    no_internal_error(r.sadd, b"s", b"ok", big)
    no_internal_error(r.zadd, b"z", {b"ok": 1, big: 2})
    assert r.exists(b"s", b"z") == 0
    assert not r.sismember(b"s", big) and r.zscore(b"z", big) is None
    r.rpush(b"l", big)                                             # elements are values: fine
    assert r.lindex(b"l", 0) == big


def test_N3_hash_name_and_field_together(r):
    """N3: a field record holds the hash's name and the field: a long name leaves less room."""
    k, f = b"k" * 10000, b"f" * 10000
    text = no_internal_error(r.hset, k, f, b"v")
    assert str(kvdb.MAX_KEY_SIZE - 7 - len(k)) in text
    assert r.exists(k) == 0
    assert r.hget(k, f) is None and r.hdel(k, f) == 0 and not r.hexists(k, f)
    r.hset(k, b"short", b"1")
    no_internal_error(r.hset, k, mapping={b"a": b"1", f: b"v"})
    assert r.hgetall(k) == {b"short": b"1"}
    # A name past MAX_NAME uses its digest: fields up to MAX_NAME work again.
    long_k = b"k" * (MAX_NAME + 1)
    assert r.hset(long_k, b"g" * MAX_NAME, b"v") == 1 and r.hget(long_k, b"g" * MAX_NAME) == b"v"
    # RENAME to a longer name that cannot hold a field: refused, nothing moved.
    r.hset(b"small", b"g" * 9000, b"v")
    no_internal_error(r.rename, b"small", b"n" * 9000)
    assert r.hget(b"small", b"g" * 9000) == b"v" and r.exists(b"n" * 9000) == 0
    assert r.rename(b"small", b"n" * (MAX_NAME + 5))               # the digest form has room
    assert r.hget(b"n" * (MAX_NAME + 5), b"g" * 9000) == b"v"


def test_scan_cursors_never_crash(r):
    r.set(b"a", b"1")
    for cursor in (b"1" + b"0" * 4000, b"9" * 5000, b"-1", b"abc", str(1 << 300).encode(),
                   str(int.from_bytes(b"\x03" + b"\xff" * 32, "big")).encode(),
                   str(int.from_bytes(b"\x01" + b"\xff" * 1500, "big")).encode(), b"12345"):
        try:
            r.scan(cursor)
        except redis.ResponseError as e:
            assert str(e) == "invalid cursor"


# -- in process: the records of long names -----------------------------------------------------

def _open(path):
    db = kvdb.open(str(path))
    ks = Keyspace(db, 16, lambda *a: None)
    ks.load()
    return db, ks


def test_N1_long_name_records(tmp_path):
    """N1: a long name has one meta record, under its digest, holding the name (and N2, N3:
    its expiry entry holds the name; its hash fields use the digest prefix)."""
    db, ks = _open(tmp_path)
    k = b"q" * (ksmod.LONG_META + 10)
    ks.set_string(0, k, b"value", expire_at=ksmod.now_ms() + 100000)
    ks.hash_set(0, k + b"h", [(b"f", b"v")])
    ks.store.commit()
    d = ksmod.digest(k)
    raw = db.get(b"\x01\x00K" + d)
    assert raw[:4] == len(k).to_bytes(4, "big") and raw[4:4 + len(k)] == k and raw[4 + len(k):4 + len(k) + 1] == b"s"
    with db.scan(prefix=b"\x01\x00y") as it:
        entries = list(it)
    assert len(entries) == 1 and entries[0][0].endswith(d) and entries[0][1] == k
    assert db.get(b"\x01\x00h\xff\xff\xff\xff" + ksmod.digest(k + b"h") + b"f") == b"v"
    assert ks.get_string(0, k) == b"value"
    db.close()
    db, ks = _open(tmp_path)                 # counted at start
    assert ks.keys[0] == 2 and ks.expires[0] == 1
    assert [key for _, key, _ in ks.scan_long_keys(0)] == sorted([k, k + b"h"], key=ksmod.digest)
    db.close()


def test_N1_digest_collision_is_refused(tmp_path):
    """N1: two names with one digest (never expected of SHA-256): the second is not mistaken for
    the first, and cannot overwrite it."""
    db, ks = _open(tmp_path)
    k = b"c" * (ksmod.LONG_META + 1)
    other = b"d" * (ksmod.LONG_META + 1)
    ks.set_string(0, k, b"mine")
    ks.store.commit()
    held = db.get(ksmod.meta_key(0, k))
    db.put(ksmod.meta_key(0, other), held)     # forge: other's digest slot holds k's record
    assert ks.get_string(0, other) is None
    with pytest.raises(kvdb.CorruptionError):
        ks.set_string(0, other, b"theirs")
    ks.store.rollback()
    db.close()
