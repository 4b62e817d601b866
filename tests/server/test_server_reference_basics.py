"""Strings, hashes and generic commands: the same replies as a reference redis-server."""
import pytest



@pytest.fixture(autouse=True)
def clean(pair):
    pair.flush()


def test_strings(pair):
    pair.same("SET", "a", "1")
    pair.same("GET", "a")
    pair.same("INCRBY", "a", 5)
    pair.same("APPEND", "a", "x")
    pair.same_error("INCR", "a")
    pair.same("GET", "missing")
    pair.same_error("GET")


def test_hashes(pair):
    pair.same("HSET", "h", "f1", "v1", "f2", "v2")
    pair.same("HGET", "h", "f1")
    pair.same("HLEN", "h")
    pair.same("HDEL", "h", "f1", "nope")
    pair.same_error("HSET", "h", "f")
    pair.same_error("GET", "h")
    pair.same("TYPE", "h")


def test_generic(pair):
    pair.same("SET", "k", "v")
    pair.same("EXISTS", "k", "nope")
    pair.same("RENAME", "k", "k2")
    pair.same_error("RENAME", "nope", "x")
    pair.same("DEL", "k2", "nope")
    pair.same("TYPE", "k2")


def test_movable_keys(pair):
    """Keys that follow a count or a STREAMS word: COMMAND GETKEYS, as Redis reads them."""
    for args in (("LMPOP", 2, "a", "b", "LEFT"), ("BLMPOP", 0, 2, "a", "b", "RIGHT"),
                 ("SINTERCARD", 2, "a", "b", "LIMIT", 3), ("ZUNIONSTORE", "d", 2, "a", "b", "WEIGHTS", 1, 2),
                 ("ZINTER", 2, "a", "b"), ("ZMPOP", 1, "z", "MIN"), ("XREAD", "COUNT", 2, "STREAMS", "s1", "s2", 0, 0),
                 ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s1", ">"), ("EVAL", "return 1", 2, "k1", "k2", "arg"),
                 ("FCALL", "f", 1, "k1", "arg")):
        pair.same("COMMAND", "GETKEYS", *args)


def test_acl_checks_movable_keys(pair):
    """A user limited to keys a* may not pop from b through LMPOP's movable keys."""
    for r in (pair.kv, pair.ref):
        r.execute_command("ACL", "SETUSER", "mover", "on", ">pw", "~a*", "+@all")
        r.execute_command("RPUSH", "b1", "x")
    import redis
    for r in (pair.kv, pair.ref):
        kw = r.connection_pool.connection_kwargs
        u = redis.Redis(host=kw["host"], port=kw["port"], username="mover", password="pw", protocol=pair.protocol)
        try:
            with pytest.raises(redis.ResponseError, match="no permissions to access"):
                u.execute_command("LMPOP", 2, "a1", "b1", "LEFT")
            assert u.execute_command("LMPOP", 1, "a1", "LEFT") is None
        finally:
            u.close()
    for r in (pair.kv, pair.ref):
        r.execute_command("ACL", "DELUSER", "mover")
