"""Lua scripting and functions (EVAL family, SCRIPT, FUNCTION, FCALL): replies and
errors compared with a reference redis-server in RESP2 and RESP3, then what a
reference comparison cannot show: redis-py's Lock, ACL inside scripts, the
sandbox, a busy script stopped by SCRIPT KILL (with uvloop and with asyncio's
loop), SHUTDOWN NOSAVE, atomicity seen by a concurrent reader, and libraries
surviving a restart."""
import os
import socket
import threading
import time

import pytest

from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")
pytest.importorskip("lupa")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=False)
def clean(pair):
    pair.flush()
    for c in (pair.kv, pair.ref):
        c.execute_command("SCRIPT", "FLUSH")
        c.execute_command("FUNCTION", "FLUSH")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("scripting")) as s:
        yield s


# -- conversions and errors, against redis-server -------------------------------------------

def _plain(v):
    """A reply with nested error objects as text (redis-py gives ResponseError instances,
    which compare by identity)."""
    if isinstance(v, Exception):
        return ("error", str(v))
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def same(pair, *args):
    got, want = pair.both(*args)
    assert _plain(got) == _plain(want), f"{args}: kvdb replied {got!r}, redis-server {want!r}"
    return got[1]


CONVERSIONS = [
    "return 1", "return -1", "return 3.99", "return -3.99", "return 0.5", "return 2^53", "return -2^63", "return 2^63",
    "return 1e20", "return math.huge", "return 0/0", "return 'x'", "return 'a\\0b'", "return ''",
    "return true", "return false", "return nil", "return {}", "return {1, 2, 3}", "return {1, 2, nil, 3}",
    "return {nil, 1}", "return {1, {2, {3, 'x'}}}", "return {1, false, true, 'y'}", "return {'a', {}, 'b'}",
    "return {x = 1}", "return {ok = 'fine'}", "return {ok = 'a\\r\\nb'}", "return {err = 'MY error'}",
    "return {err = 'x\\ny'}", "return {err = 3}", "return {ok = 3}", "return {err = 'x', ok = 'y'}",
    "return {ok = 'y', 1, 2}", "return {1, 2, ok = 'x'}", "return {1, 2, {err = 'inner'}}", "return {1, 2, {ok = 'inner'}}",
    "return redis.status_reply('FINE')", "return redis.status_reply('a b')", "return redis.error_reply('FOO bar')",
    "return redis.error_reply('bar')", "return redis.error_reply('')", "return redis.error_reply('-FOO x')",
    "return redis.error_reply('x\\ny')", "return redis.error_reply(1)", "return redis.error_reply()",
    "return redis.status_reply()", "return redis.sha1hex('')", "return redis.sha1hex('abc')", "return redis.sha1hex(1)",
    "return {double = 3.5}", "return {double = '3.5'}", "return {map = {a = 1}}", "return {set = {a = true}}",
    "return {1, {map = {a = 1}}}", "return {big_number = '123456789012345678901234567890'}",
    "return {verbatim_string = {format = 'txt', string = 'hello'}}",
    "return tostring(0.1)", "return tostring(1e15)", "return tostring(1e16)", "return string.format('%d', 3)",
    "return tonumber('0x10')", "return 1, 2", "return #ARGV", "return select('#', unpack(KEYS))",
    "return type(redis.call('ping'))", "return redis.call('ping').ok", "return redis.call('ping')",
    "return redis.call('echo', 'x')", "return type(redis.call('get', 'nokey'))", "return redis.call('get', 'nokey')",
    "return redis.LOG_WARNING", "return redis.log(redis.LOG_WARNING, 'from a test')",
    "return redis.setresp(3)", "return redis.set_repl(redis.REPL_ALL)", "return redis.replicate_commands()",
    "return redis.breakpoint()", "return redis.debug('x')", "return coroutine.wrap(function() return 5 end)()",
    "return loadstring('return 1+1')()", "return {loadstring('return +')}", "return loadstring",
    "return {loadstring(string.dump(function() return 1 end))}", "return {pcall(loadstring, string.dump(function() end))}",
    "return cjson.encode({1, 2, {a = 1}})", "return cjson.encode({})", "return cjson.encode({a = {}})",
    "return cjson.encode(0.1)", "return cjson.encode(1e20)", "return cjson.encode({[1] = 1, [3] = 3})",
    "return cjson.encode('x\"y/\\n')", "return cjson.encode({cjson.null, true, false})",
    "local t = cjson.decode('[1,2,null,{\"a\":[true,false]}]') return {t[1], t[2], type(t[3]), tostring(t[4].a[1])}",
    "return cjson.decode('\"x\"')", "return cmsgpack.pack({1, 2, 'a', {x = 1}})", "return cmsgpack.pack(1.5, -1, 300, 'x')",
    "return cmsgpack.unpack(cmsgpack.pack({1, 2, 'a'}))", "return {cmsgpack.unpack(cmsgpack.pack(1, 'b', {3}))}",
    "return bit.band(0xff, 0x0f)", "return bit.tohex(255)", "return bit.tohex(255, -4)", "return bit.bnot(0)",
    "return bit.lshift(1, 31)", "return bit.rshift(-1, 28)", "return bit.arshift(-256, 4)", "return bit.bxor(5, 3, 1)",
    "return bit.rol(0x12345678, 8)", "return bit.bswap(0x12345678)", "return bit.tobit(2^32 + 5)",
    "return KEYS[1]", "KEYS[1] = 'b' return KEYS[1]", "return {KEYS[1], ARGV[1], ARGV[2]}",
    "local ok, e = pcall(redis.call, 'incr', 'a', 'b'); return {tostring(ok), e}",
    "local ok, e = pcall(redis.call, 'nosuch'); return type(e)",
    "local e = redis.pcall('incr', 'a', 'b'); return e.err", "local e = redis.pcall('nosuch'); return type(e)",
    "local ok, e = pcall(error, {err = 'x', y = 1}) return {tostring(ok), e}", "local ok, e = pcall(error, {y = 1}) return type(e)",
    "local ok, e = pcall(function() error('x') end); return e", "local ok, e = pcall(error, 'x') return e",
    "local ok, e = pcall(function() local y = nil; return y.z end); return e",
    "return getmetatable('') ~= nil", "local t = {} t.x = 1 return t.x", "return _VERSION", "return type(_G)",
    "return {pcall(rawget, KEYS, 1)}", "local n = 0 for k in pairs(string) do n = n + 1 end return n",
    "local n = 0 for k in pairs(redis) do n = n + 1 end return n > 10",
]

ERRORS = [
    "error('boom')", "error({err = 'MY custom'})", "error(nil)", "error()", "error(123)", "error({err = 123})",
    "error({err = 'no space'})", "error({err = '-X y'})", "error('line1\\nline2')", "error({err = 'a\\r\\nb'})",
    "local x = nil + 1", "return x", "x = 1", "return 1 +", "return os", "return io", "return require",
    "return dofile", "return loadfile", "return debug", "return getfenv", "return setfenv", "return print",
    "return newproxy", "return module", "return package", "return python",
    "return redis.call('incr', 'a', 'b')", "redis.call('set', 's', 'x'); return redis.call('incr', 's')",
    "return redis.call('nosuch')", "return redis.call()", "return redis.call(1)", "return redis.call({})",
    "return redis.call('get', {})", "return redis.call('get', nil)", "return redis.call('get', true)",
    "return redis.call('blpop', 'l', 0)", "return redis.call('brpop', 'l', 1)", "return redis.call('eval', 'return 1', 0)",
    "return redis.call('multi')", "return redis.call('subscribe', 'x')", "return redis.call('config', 'get', 'x')",
    "return redis.call('script', 'load', 'return 1')", "return redis.call('hello')", "return redis.call('wait', 0, 0)",
    "return redis.call('client', 'nosuch')", "return redis.call('object')", "return redis.call('set', 'k', 'v', 'ex', '0')",
    "return redis.sha1hex()", "return redis.log()", "return redis.log(99, 'x')", "return redis.setresp(5)",
    "return redis.setresp()", "string.x = 1 return 1", "rawset(_G, 'x', 1) return 1", "rawset(string, 'x', 1) return 1",
    "setmetatable(_G, nil) return 1", "redis.call = nil return 1", "getmetatable('').__index.upper = nil return 1",
    "return loadstring('return os')()", "local function f()\n  local x = nil\n  return x.y\nend\n\nreturn f()",
    "\n\nredis.call('nosuch')", "return cjson.decode('{bad')", "return cjson.encode(function() end)",
    "return cjson.encode({[1] = 1, [100] = 2})", "return cjson.encode(0/0)",
    "return redis.call('hset', 'h', 'f')", "redis.call('set', 'str', 'v') return redis.call('lpush', 'str', 'x')",
    "#!lua flags=bogus\nreturn 1", "#!lua name=x\nreturn 1", "#!luax\nreturn 1", "#!lua", "#!LUA\nreturn 1",
]


def test_conversions(pair, clean):
    for script in CONVERSIONS:
        same(pair, "EVAL", script, 1, "key", "arg1", "arg2")


def test_errors(pair, clean):
    for script in ERRORS:
        pair.same_error("EVAL", script, 0)


def test_script_writes_stay_after_a_later_error(pair, clean):
    # Redis does not roll back a script's earlier writes when it fails later.
    pair.same_error("EVAL", "redis.call('set', KEYS[1], 'v') redis.call('incr', KEYS[1]) return 1", 1, "k")
    pair.same("GET", "k")
    pair.same("EVAL", "redis.call('set', KEYS[1], 'w') return redis.pcall('incr', KEYS[1])", 1, "k")
    pair.same("GET", "k")


def test_numbers_as_arguments(pair, clean):
    # (-0 is left out: lupa hands Lua's -0 to Python as the integer 0, so it is written "0")
    pair.same("EVAL", "return redis.call('sadd', KEYS[1], 1.5, 2, 0.1, 1e100, 12345678901234567890, 2^53)", 1, "s")
    pair.same("SMEMBERS", "s", unordered=True)
    pair.same("EVAL", "redis.call('set', KEYS[1], 0.1) return redis.call('get', KEYS[1])", 1, "k")


def test_redis_replies_in_scripts(pair, clean):
    pair.same("HSET", "h", "f", "v")
    pair.same("ZADD", "z", "1.5", "m", "2", "n")
    pair.same("SADD", "s", "a")
    pair.same("RPUSH", "l", "x", "y")
    for script in [
        "return redis.call('hgetall', 'h')", "redis.setresp(3) return redis.call('hgetall', 'h')",
        "redis.setresp(3) return type(redis.call('hgetall', 'h').map)", "return redis.call('zscore', 'z', 'm')",
        "redis.setresp(3) return redis.call('zscore', 'z', 'm')", "redis.setresp(3) return redis.call('zscore', 'z', 'm').double",
        "redis.setresp(3) return redis.call('get', 'nokey')", "redis.setresp(3) return type(redis.call('get', 'nokey'))",
        "redis.setresp(3) return redis.call('smembers', 's')", "redis.setresp(3) return redis.call('exists', 'h')",
        "return redis.call('zrange', 'z', 0, -1, 'withscores')", "redis.setresp(3) return redis.call('zrange', 'z', 0, -1, 'withscores')",
        "return redis.call('lrange', 'l', 0, -1)", "return redis.call('type', 'h')", "return redis.call('type', 'h').ok",
        "redis.setresp(3) return true", "redis.setresp(3) return false", "redis.setresp(3) return {true, false}",
        "return redis.call('lpop', 'nolist')",
        "return {redis.call('lpop', 'nolist')}", "return redis.call('hmget', 'h', 'f', 'nofield')",
        "return redis.call('select', 1)", "redis.call('select', 1) return redis.call('set', 'dbk', '1')",
        "return redis.call('publish', 'ch', 'm')", "return redis.call('pfadd', 'hll', 'a')",
    ]:
        pair.same("EVAL", script, 0)
    pair.same("EXISTS", "dbk")   # SELECT inside a script does not change the caller's database


def test_keys_and_numkeys(pair, clean):
    pair.same("EVAL", "return {KEYS[1], KEYS[2], ARGV[1]}", 2, "a", "b", "c")
    for numkeys in (-1, 3, "x", "1.5", ""):
        pair.same_error("EVAL", "return 1", numkeys, "a")
    pair.same_error("EVAL", "return 1")
    pair.same_error("EVAL", "return +", -1)
    pair.same_error("EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", -1)


def test_evalsha_and_script_commands(pair, clean):
    sha = pair.same("SCRIPT", "LOAD", "return 'loaded'")
    pair.same("EVALSHA", sha, 0)
    pair.same("EVALSHA", sha.upper(), 0)
    pair.same("EVALSHA_RO", sha, 0)
    pair.same("SCRIPT", "EXISTS", sha, sha.upper(), "nope", "ffffffffffffffffffffffffffffffffffffffff")
    pair.same("EVAL", "return 'by eval'", 0)
    pair.same("SCRIPT", "EXISTS", "0ba0c1bcc3c9b7a2f0bd19a1c5c11d3bc4c5e3c7")
    pair.same_error("EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", 0)
    pair.same_error("EVALSHA", "abc", 0)
    pair.same_error("SCRIPT", "LOAD", "return +")
    pair.same_error("SCRIPT", "LOAD", "#!lua flags=bogus\nreturn 1")
    pair.same("SCRIPT", "FLUSH")
    pair.same("SCRIPT", "EXISTS", sha)
    pair.same_error("EVALSHA", sha, 0)
    for args in (["SCRIPT", "FLUSH", "ASYNC"], ["SCRIPT", "FLUSH", "SYNC"], ["SCRIPT", "HELP"]):
        pair.same(*args)
    for args in (["SCRIPT", "FLUSH", "x"], ["SCRIPT", "FLUSH", "SYNC", "ASYNC"], ["SCRIPT", "KILL"], ["SCRIPT", "EXISTS"],
                 ["SCRIPT", "NOPE"], ["SCRIPT"], ["SCRIPT", "LOAD"], ["FUNCTION", "KILL"]):
        pair.same_error(*args)


def test_read_only_scripts(pair, clean):
    pair.same("SET", "a", "1")
    pair.same_error("EVAL_RO", "return redis.call('set', 'a', 'b')", 0)
    pair.same("EVAL_RO", "return redis.pcall('set', 'a', 'b')", 0)
    pair.same("EVAL_RO", "return redis.call('get', 'a')", 0)
    pair.same_error("EVAL_RO", "return redis.call('publish', 'c', 'm')", 0)
    pair.same_error("EVAL_RO", "return redis.call('expire', 'a', 10)", 0)
    pair.same_error("EVAL_RO", "#!lua\nreturn 1", 0)
    pair.same_error("EVAL_RO", "#!lua flags=no-writes\nreturn redis.call('set', 'a', 'b')", 0)
    pair.same_error("EVAL", "#!lua flags=no-writes\nreturn redis.call('set', 'a', 'b')", 0)
    pair.same("EVAL", "#!lua flags=no-writes\nreturn redis.call('get', 'a')", 0)
    pair.same("EVAL", "#!lua\nreturn redis.call('set', 'a', 'b')", 0)
    pair.same("EVAL", "#!lua flags=no-writes,allow-oom\nreturn 1", 0)
    pair.same("EVAL", "#!lua  flags=no-writes  \nreturn 1", 0)
    pair.same("EVAL", "#!lua flags=\nreturn 1", 0)
    pair.same_error("EVALSHA_RO", "ffffffffffffffffffffffffffffffffffffffff", 0)


def test_eval_inside_multi(pair, clean):
    pair.same("MULTI")
    pair.same("EVAL", "return redis.call('incr', KEYS[1])", 1, "n")
    pair.same("EVAL", "return redis.call('incr', KEYS[1])", 1, "n")
    pair.same("EXEC")


LIB = ("#!lua name=mylib\n"
       "local function f(keys, args) return {keys, args} end\n"
       "redis.register_function('f', f)\n"
       "redis.register_function{function_name='g', callback=function(k, a) return redis.call('set', k[1], a[1]) end,"
       " flags={'no-writes'}, description='desc'}\n"
       "redis.register_function{function_name='h', callback=function(k, a) return redis.call('get', k[1]) end,"
       " flags={'no-writes'}}\n"
       "redis.register_function('w', function(k, a) return redis.call('set', k[1], a[1]) end)\n"
       "redis.register_function('boom', function() error('rt') end)\n"
       "redis.register_function('bad', function() return redis.call('incr', 'a', 'b') end)\n")


def _sorted_libraries(reply):
    """FUNCTION LIST with libraries and their functions in a fixed order (Redis keeps them in hash order)."""
    out = []
    for lib in reply:
        d = dict(lib) if isinstance(lib, dict) else dict(zip(lib[::2], lib[1::2]))
        fns = []
        for f in d[b"functions"]:
            fd = dict(f) if isinstance(f, dict) else dict(zip(f[::2], f[1::2]))
            fd[b"flags"] = sorted(fd[b"flags"])
            fns.append(sorted(fd.items(), key=repr))
        d[b"functions"] = sorted(fns, key=repr)
        out.append(sorted(d.items(), key=repr))
    return sorted(out, key=repr)


def test_functions(pair, clean):
    pair.same("FUNCTION", "LOAD", LIB)
    pair.same_error("FUNCTION", "LOAD", LIB)
    pair.same("FUNCTION", "LOAD", "REPLACE", LIB)
    pair.same("FUNCTION", "LOAD", "replace", LIB)
    pair.same_error("FUNCTION", "LOAD", "BOGUS", LIB)
    pair.same("FCALL", "f", 2, "a", "b", "c")
    pair.same_error("FCALL", "g", 1, "k", "v")
    pair.same("FCALL", "w", 1, "k", "v")
    pair.same("FCALL_RO", "h", 1, "k")
    pair.same_error("FCALL_RO", "w", 1, "k", "v")
    pair.same_error("FCALL", "boom", 0)
    pair.same_error("FCALL", "bad", 0)
    pair.same_error("FCALL", "nosuch", 0)
    pair.same_error("FCALL", "nosuch", "x")
    for numkeys in ("x", -1, 5):
        pair.same_error("FCALL", "f", numkeys, "a")
    kv, ref = pair.both("FUNCTION", "LIST", "WITHCODE")
    assert _sorted_libraries(kv[1]) == _sorted_libraries(ref[1])
    kv, ref = pair.both("FUNCTION", "LIST", "libraryname", "MY*")
    assert _sorted_libraries(kv[1]) == _sorted_libraries(ref[1])
    pair.same("FUNCTION", "LIST", "LIBRARYNAME", "nomatch*")
    for args in (["FUNCTION", "LIST", "LIBRARYNAME"], ["FUNCTION", "LIST", "BOGUS"], ["FUNCTION", "LIST", "WITHCODE", "WITHCODE"],
                 ["FUNCTION", "LIST", "LIBRARYNAME", "a", "LIBRARYNAME", "b"], ["FUNCTION", "DELETE", "nosuch"],
                 ["FUNCTION", "DELETE", "MYLIB"], ["FUNCTION", "FLUSH", "bogus"], ["FUNCTION"], ["FUNCTION", "NOPE"]):
        pair.same_error(*args)
    pair.same("FUNCTION", "STATS")
    pair.same("FUNCTION", "HELP")
    pair.same("FUNCTION", "DELETE", "mylib")
    pair.same_error("FCALL", "f", 0)
    pair.same("FUNCTION", "LIST")
    pair.same("FUNCTION", "LOAD", LIB)
    pair.same("FUNCTION", "FLUSH", "SYNC")
    pair.same("FUNCTION", "LIST")


LOAD_ERRORS = [
    "return 1", "#!lua\nreturn 1", "#!lua name=x\nreturn 1", "#!lua name=x foo=bar\nredis.register_function('a', function() end)",
    "#!lua name=x\nredis.register_function('a', function() end)\nredis.register_function('a', function() end)",
    "#!lua name=x\nredis.call('set', 'a', 'b')", "#!lua name=x\nlocal t = redis.call", "#!lua name=x\nreturn redis.setresp",
    "#!lua name=x\nredis.register_function{function_name='y', callback=function() end, flags={'bogus'}}",
    "#!lua name=x\nredis.register_function{function_name='y', callback=function() end, bogus=1}",
    "#!lua name=x\nredis.register_function{function_name='y'}", "#!lua name=x\nredis.register_function('y')",
    "#!lua name=x\nredis.register_function('y', 'notfunc')", "#!lua name=x\nredis.register_function()",
    "#!lua name=x\nredis.register_function('y', function() end, 3)", "#!lua name=x\nerror('boom')",
    "#!lua name=x\nlocal x = +", "#!lua name=x\nfoo = 1", "#!lua name=x\nreturn os", "#!lua name=x\nlocal s = string",
    "#!lua name=\nredis.register_function('y', function() end)",
    "#!lua name=bad-name!\nredis.register_function('y', function() end)", "#!python name=x\n", "#!lua name=x",
    "#!lua name=x\nredis.register_function('bad-name', function() end)",
    "#!lua name=x\nwhile true do end",
]


def test_F2_function_load_errors(pair, clean):
    """F2 among the load errors: a library registering a function another library has is
    refused (REPLACE replaces only a library of the same name)."""
    pair.same("FUNCTION", "LOAD", LIB)
    for code in LOAD_ERRORS:
        pair.same_error("FUNCTION", "LOAD", "REPLACE", code)
    pair.same_error("FUNCTION", "LOAD", "#!lua name=other\nredis.register_function('f', function() end)")
    pair.same("FUNCTION", "LOAD", "#!lua name=x\nredis.log(redis.LOG_WARNING, 'loaded')\n"
                                  "redis.register_function('1a', function() return redis.REDIS_VERSION ~= nil end)")
    pair.same("FCALL", "1a", 0)


# -- one kvdb server: clients, ACL, sandbox ---------------------------------------------------

def test_redis_py_lock(srv):
    a, b = srv.client(), srv.client()
    a.delete("resource")
    lock_a = a.lock("resource", timeout=5, blocking_timeout=0.2)
    assert lock_a.acquire()
    assert a.get("resource") == lock_a.local.token
    lock_b = b.lock("resource", timeout=5, blocking_timeout=0.2)
    assert not lock_b.acquire()                          # contention: b gives up after its blocking timeout
    thief = b.lock("resource", timeout=5)
    thief.local.token = b"not-the-owner"
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        thief.release()                                  # the release script refuses another token
    thief.local.token = b"not-the-owner"
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        thief.extend(5)
    assert lock_a.extend(10)                             # EVALSHA of the extend script
    assert 9000 < a.pttl("resource") <= 15000
    assert lock_a.extend(5, replace_ttl=True)
    assert a.pttl("resource") <= 5000
    assert lock_a.reacquire()
    lock_a.release()
    assert a.get("resource") is None
    assert lock_b.acquire()                              # free again
    with pytest.raises(redis.exceptions.LockError):
        lock_a.release()                                 # a released already
    lock_b.release()
    # A lock whose holder dies: the next one gets it after the timeout.
    short = a.lock("resource", timeout=0.3)
    assert short.acquire()
    waiter = b.lock("resource", timeout=5, blocking_timeout=3, sleep=0.05)
    assert waiter.acquire()
    waiter.release()
    # The scripts were loaded once and then run by SHA (SCRIPT FLUSH makes redis-py load them again).
    a.script_flush()
    with a.lock("resource", timeout=5):
        assert a.exists("resource")
    assert not a.exists("resource")


def test_acl_inside_scripts(srv):
    r = srv.client()
    r.execute_command("ACL", "SETUSER", "scripter", "on", ">pw", "~a*", "+@all", "-set", "-debug")
    u = srv.client(username="scripter", password="pw")
    r.set("a1", "v")
    assert u.eval("return redis.call('get', 'a1')", 0) == b"v"
    with pytest.raises(redis.ResponseError) as e:
        u.eval("return redis.call('get', 'b1')", 0)
    assert str(e.value).startswith("ACL failure in script: User scripter has no permissions to access the 'b1' key "
                                   "script: ") and str(e.value).endswith("on @user_script:1.")
    with pytest.raises(redis.ResponseError) as e:
        u.eval("return redis.call('set', 'a1', '1')", 0)
    assert "ACL failure in script: User scripter has no permissions to run the 'set' command" in str(e.value)
    err = u.eval("local e = redis.pcall('set', 'a1', '1') return e.err", 0)
    assert err == b"ERR ACL failure in script: User scripter has no permissions to run the 'set' command"
    with pytest.raises(redis.exceptions.NoPermissionError) as e:
        u.eval("return 1", 1, "b1")                      # a declared key is checked before the script runs
    assert "no permissions to access the 'b1' key" in str(e.value)
    assert u.eval("return {redis.acl_check_cmd('get', 'a1'), redis.acl_check_cmd('get', 'b1'), "
                  "redis.acl_check_cmd('set', 'a1', 'x')}", 0) == [1, None, None]
    assert u.eval("return redis.acl_check_cmd('get', 'b1') == false", 0) == 1
    with pytest.raises(redis.ResponseError, match="Invalid command passed to redis.acl_check_cmd"):
        u.eval("return redis.acl_check_cmd('nosuch')", 0)
    log = r.acl_log(count=5)
    assert any(entry["username"] == "scripter" and entry["object"] == "set" for entry in log)
    r.execute_command("ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+get")
    v = srv.client(username="noeval", password="pw")
    with pytest.raises(redis.exceptions.NoPermissionError, match="eval"):
        v.eval("return 1", 0)
    r.execute_command("ACL", "DELUSER", "scripter", "noeval")


SANDBOX_ESCAPES = [
    "return os.execute('touch /tmp/kvdb-lua-escape')", "return io.open('/etc/passwd'):read('*a')",
    "return require('os')", "return dofile('/etc/passwd')", "return loadfile('/etc/passwd')",
    "return debug.getregistry()", "return getfenv(0).os", "return setfenv(1, {})", "return package.loaded.os",
    "return python.eval('1')", "return module('x')",
    "return loadstring(string.dump(function() return os end))()",
    "return load(function() return nil end)()",
    "return redis.call.__class__", "local ok, e = pcall(redis.call, 'nosuch') return e.__class__",
    "return xpcall(function() redis.call('nosuch') end, function(e) return e.__class__.__name__ end)",
    "return getmetatable('').__index.rep('x', 2)",
]


def test_sandbox_escapes_fail(srv):
    r = srv.client()
    for script in SANDBOX_ESCAPES:
        try:
            result = r.eval(script, 0)
        except redis.ResponseError:
            continue
        assert result in (None, 0, b"xx", [0, b"ERR Unknown Redis command called from script"]), (script, result)
    assert not os.path.exists("/tmp/kvdb-lua-escape")
    # xpcall's handler sees redis.call's error with its err field, as in Redis
    assert r.eval("local ok, e = xpcall(function() redis.call('nosuch') end, function(e) return e.err end) return e",
                  0) == b"ERR Unknown Redis command called from script"


def test_scripts_cannot_change_what_later_scripts_see(srv):
    r = srv.client()
    for script in ["string.rep = nil", "rawset(string, 'rep', nil)", "table.insert(string, 1)", "redis.call = nil",
                   "math.floor = function() return 0 end", "setmetatable(string, {})", "rawset(_G, 'leak', 1)",
                   "_G.leak = 1", "leak = 1", "table.remove(redis)", "table.sort(cjson)",
                   "getmetatable('').__index = {}", "coroutine.create = nil", "KEYS.leak = 1 rawset(KEYS, 'x', 1)",
                   "local mt = getmetatable('') mt.__index.upper = nil"]:
        try:
            r.eval(script, 0)
        except redis.ResponseError:
            pass
    assert r.eval("return string.rep('ab', 2) .. math.floor(2.5) .. ('x'):upper() .. type(redis.call)", 0) == \
        b"abab2Xuserdata"
    with pytest.raises(redis.ResponseError, match="nonexistent global variable 'leak'"):
        r.eval("return leak", 0)
    assert r.eval("return #KEYS", 0) == 0
    assert r.eval("local n = 0 for k in pairs(string) do n = n + 1 end return n", 0) == 15


def test_memory_is_capped(srv):
    r = srv.client()
    with pytest.raises(redis.ResponseError):
        r.eval("local t = {} for i = 1, 100 do t[i] = string.rep('x', 2^24) .. i end return #t", 0)
    assert r.eval("return 1", 0) == 1


# -- busy scripts -----------------------------------------------------------------------------

def _raw(port, *commands, timeout=5.0):
    """Sends commands on a new connection and returns the raw bytes read until `timeout`
    passes without more data (to show what a brand-new client gets)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        for args in commands:
            s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in
                                                         (x.encode() if isinstance(x, str) else x for x in args)))
        data = b""
        while data.count(b"\r\n") < len(commands):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def _start(client, *args):
    box = {}

    def run():
        try:
            box["reply"] = client.execute_command(*args)
        except Exception as e:  # noqa: BLE001
            box["reply"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, box


def _busy_run(s):
    r, other = s.client(), s.client()
    r.config_set("busy-reply-threshold", 100)
    other.set("before", "1")
    t, box = _start(r, "EVAL", "local i = 0 while true do i = i + 1 end", 0)
    time.sleep(0.35)
    busy = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    for args in (("PING",), ("GET", "before"), ("FUNCTION", "KILL"), ("FUNCTION", "STATS"), ("SHUTDOWN",)):
        with pytest.raises(redis.ResponseError) as e:
            other.execute_command(*args)
        assert str(e.value) == busy.split(" ", 1)[1] or str(e.value) == busy, (args, str(e.value))
    assert _raw(s.port, ["PING"]) == b"-" + busy.encode() + b"\r\n"      # a new connection is served too
    late = socket.create_connection(("127.0.0.1", s.port), timeout=5)   # and stays usable after the script
    late.sendall(b"PING\r\n")
    assert late.recv(1000) == b"-" + busy.encode() + b"\r\n"
    assert _raw(s.port, ["HELLO", "3"], ["SCRIPT", "KILL"]).endswith(b"+OK\r\n")
    t.join(10)
    late.sendall(b"SET late 1\r\nGET late\r\n")
    data = b""
    while data.count(b"\r\n") < 3:
        data += late.recv(1000)
    assert data == b"+OK\r\n$1\r\n1\r\n"
    late.close()
    assert isinstance(box["reply"], redis.ResponseError)
    assert str(box["reply"]).startswith("Script killed by user with SCRIPT KILL... script: ")
    assert r.ping() and other.get("before") == b"1"        # normal again, on every connection
    with pytest.raises(redis.ResponseError, match="NOTBUSY"):
        other.script_kill()


def test_infinite_loop_is_killed_while_others_get_busy(srv):
    _busy_run(srv)


def test_busy_script_with_asyncio_loop(tmp_path):
    """The same without uvloop: a module named uvloop that fails to import makes the
    server fall back to asyncio's loop."""
    shadow = tmp_path / "shadow"
    (shadow / "uvloop").mkdir(parents=True)
    (shadow / "uvloop" / "__init__.py").write_text("raise ImportError('uvloop hidden by the test')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}
    with ServerProcess(tmp_path, env=env) as s:
        _busy_run(s)


def test_busy_function_kill_and_multi(srv):
    r, other = srv.client(), srv.client()
    r.config_set("busy-reply-threshold", 100)
    r.function_load("#!lua name=spin\nredis.register_function('spin', function() while true do end end)", replace=True)
    other.execute_command("MULTI")
    t, box = _start(r, "FCALL", "spin", 0)
    time.sleep(0.35)
    with pytest.raises(redis.ResponseError, match="You can only call FUNCTION KILL"):
        other.execute_command("GET", "x")                  # refused inside MULTI: the transaction is doomed
    with pytest.raises(redis.exceptions.ExecAbortError, match="because of: BUSY"):
        other.execute_command("EXEC")
    with pytest.raises(redis.ResponseError, match="You can only call FUNCTION KILL"):
        other.execute_command("SCRIPT", "KILL")
    stats = other.execute_command("FUNCTION", "STATS")
    assert stats[b"running_script"][b"name"] == b"spin"
    assert other.execute_command("FUNCTION", "KILL") == b"OK"
    t.join(10)
    assert "Script killed by user with SCRIPT KILL... script: spin, on @user_function:2." in str(box["reply"])
    # A kill caught with pcall: the script goes on to its next line and is stopped there.
    t, box = _start(r, "EVAL", "local ok = pcall(function() while true do end end)\nreturn 'went on'", 0)
    time.sleep(0.35)
    other.script_kill()
    t.join(10)
    assert "on @user_script:2." in str(box["reply"])
    # Coroutines carry the hook too.
    t, box = _start(r, "EVAL", "local co = coroutine.wrap(function() while true do end end) co() return 1", 0)
    time.sleep(0.35)
    other.script_kill()
    t.join(10)
    assert "Script killed" in str(box["reply"])


def test_script_that_wrote_is_unkillable_and_shutdown_nosave_drops_it(tmp_path):
    data = tmp_path / "data"
    with ServerProcess(tmp_path, "--sync", "full", data=data) as s:
        r, other = s.client(), s.client()
        r.config_set("busy-reply-threshold", 100)
        r.set("committed", "yes")
        t, box = _start(r, "EVAL", "redis.call('set', 'half', '1') while true do end", 0)
        time.sleep(0.35)
        with pytest.raises(redis.ResponseError, match="^UNKILLABLE|Sorry the script already executed write"):
            other.script_kill()
        with pytest.raises(redis.ResponseError, match="SHUTDOWN NOSAVE"):
            other.execute_command("SHUTDOWN")
        with pytest.raises(redis.ConnectionError):
            other.execute_command("SHUTDOWN", "NOSAVE")
        t.join(10)
        assert isinstance(box["reply"], redis.ConnectionError)
        s.proc.wait(10)
        assert s.proc.returncode == 0
        assert "SHUTDOWN NOSAVE" in s.log()
    with ServerProcess(tmp_path, "--sync", "full", data=data) as s:
        r = s.client()
        assert r.get("committed") == b"yes"
        assert r.get("half") is None                      # the unfinished script's write never committed


# -- atomicity -------------------------------------------------------------------------------

def test_script_writes_commit_together(srv):
    writer, reader = srv.client(), srv.client()
    keys = [f"atom{i}" for i in range(40)]
    writer.mset({k: "0" for k in keys})
    stop = threading.Event()
    seen = []

    def read():
        while not stop.is_set():
            values = reader.mget(keys)
            seen.append(len(set(values)))
    t = threading.Thread(target=read)
    t.start()
    script = writer.register_script("for i, k in ipairs(KEYS) do redis.call('set', k, ARGV[1]) end return #KEYS")
    for n in range(1, 60):
        assert script(keys=keys, args=[str(n)]) == len(keys)
    stop.set()
    t.join()
    assert seen and max(seen) == 1                       # never a mix of two generations
    assert set(reader.mget(keys)) == {b"59"}


def test_F3_functions_survive_a_restart(tmp_path):
    """F3: a library is on disk once FUNCTION LOAD has replied, and gone once FUNCTION DELETE
    has; FUNCTION RESTORE writes them the same way."""
    data = tmp_path / "data"
    with ServerProcess(tmp_path, data=data) as s:
        r = s.client()
        assert r.function_load("#!lua name=keep\nredis.register_function('inc', function(k) "
                               "return redis.call('incr', k[1]) end)") == b"keep"
        assert r.fcall("inc", 1, "n") == 1
        r.function_load("#!lua name=gone\nredis.register_function('g', function() return 1 end)")
        r.function_delete("gone")
        sha = r.script_load("return 7")
        payload = r.function_dump()
    with ServerProcess(tmp_path, data=data) as s:
        r = s.client()
        assert r.fcall("inc", 1, "n") == 2
        with pytest.raises(redis.ResponseError, match="Function not found"):
            r.fcall("g", 0)
        assert r.script_exists(sha) == [False]            # the script cache is not durable (as in Redis)
        r.function_flush()
        assert r.function_list() == []
        assert r.function_restore(payload)
        assert r.fcall("inc", 1, "n") == 3
        with pytest.raises(redis.ResponseError, match="already exists"):
            r.function_restore(payload)
        assert r.function_restore(payload, "REPLACE")
        with pytest.raises(redis.ResponseError, match="payload version or checksum are wrong"):
            r.function_restore(payload[:-1] + b"x")
        r.flushall()
        assert r.fcall("inc", 1, "n") == 1                  # FLUSHALL keeps the libraries


def _library_records(data):
    """{name in the key: code} of the library records of a stopped server's database."""
    import kvdb
    from kvdb.server.commands.functions import LIBRARY_PREFIX
    with kvdb.open(str(data)) as db:
        with db.scan(prefix=LIBRARY_PREFIX) as it:
            return {k[len(LIBRARY_PREFIX):]: v for k, v in it}


def test_F1_a_library_record_is_named_by_its_code(tmp_path):
    """F1: each library record's key holds the name= of its code's first line, through LOAD,
    LOAD REPLACE, DELETE and RESTORE."""
    data = tmp_path / "data"
    code = "#!lua name={}\nredis.register_function('{}', function() return {} end)"
    with ServerProcess(tmp_path, data=data) as s:
        r = s.client()
        r.function_load(code.format("one", "f1", 1))
        r.function_load(code.format("two", "f2", 2))
        r.function_load(code.format("one", "f1", 11), replace=True)
        payload = r.function_dump()
        r.function_delete("two")
        r.function_load(code.format("three", "f3", 3))
        r.function_restore(payload, "REPLACE")
    records = _library_records(data)
    assert sorted(records) == [b"one", b"three", b"two"]
    for name, text in records.items():
        assert text.split(b"\n", 1)[0] == b"#!lua name=" + name
    assert b"return 11" in records[b"one"]


def test_F4_a_stored_library_that_no_longer_loads_is_skipped(tmp_path):
    """F4: the library records are read at the first scripting command after the start; one
    whose code does not load is logged and skipped, never fatal, and the others load."""
    import kvdb
    from kvdb.server.commands.functions import LIBRARY_PREFIX
    data = tmp_path / "data"
    with ServerProcess(tmp_path, data=data) as s:
        s.client().function_load("#!lua name=good\nredis.register_function('ok', function() return 7 end)")
    with kvdb.open(str(data)) as db:
        db.put(LIBRARY_PREFIX + b"broken", b"#!lua name=broken\nlocal x = +")
    with ServerProcess(tmp_path, data=data) as s:
        r = s.client()
        assert r.fcall("ok", 0) == 7
        assert [lib[b"library_name"] if isinstance(lib, dict) else lib[1] for lib in r.function_list()] == [b"good"]
        assert r.ping()
        log = s.log()
    assert "does not load" in log and "broken" in log

