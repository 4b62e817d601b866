"""Conversions between the server's replies and Lua values, as Redis documents
them ("Data type conversion" in the Lua API reference).

Redis to Lua (what redis.call returns), by the script's protocol (redis.setresp):
    integer -> number            bulk string -> string       array -> table
    status  -> {ok=text}         error -> {err=text}         (redis.call raises it)
    RESP2: null bulk / null array -> false; RESP3 maps, sets, doubles, booleans and
    big numbers arrive flattened (map -> array of key, value; double -> string; boolean
    -> 1/0) as a RESP2 client sees them.
    RESP3: null -> nil, map -> {map={k=v}}, set -> {set={m=true}}, double -> {double=n},
    boolean -> true/false, big number -> {big_number=text}.
Lua to Redis (what the script returns):
    number -> integer (truncated toward zero; out of range or NaN -> -2^63, as a C cast
    gives), string -> bulk, table -> array up to the first nil, {ok=s} -> status,
    {err=s} -> error, {double=n}, {map=t}, {set=t}, {big_number=s},
    {verbatim_string={format=f, string=s}}; false -> null (true -> 1) unless the script
    set RESP3, where they are booleans; anything else -> null.
"""
import math

from kvdb.server.protocol.resp import NULL_ARRAY, ErrorReply, Push, Status

__all__ = ["to_lua", "from_lua", "lua_arg", "error_text", "format_double", "MAX_DEPTH", "ConversionTooDeep"]

MAX_DEPTH = 200             # nesting of a reply converted either way (Python's stack bounds it)
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


class ConversionTooDeep(Exception):
    """A reply nested deeper than MAX_DEPTH (a table that contains itself, say)."""


def format_double(d):
    """A double as the server's RESP2 replies write it (resp.pyx's format_double)."""
    if d != d:
        return b"nan"
    if d == math.inf:
        return b"inf"
    if d == -math.inf:
        return b"-inf"
    r = repr(d)
    if r.endswith(".0"):
        r = r[:-2]
    return r.encode()


def lua_arg(v):
    """A redis.call argument as bytes, or None when Lua gives a type Redis refuses.
    Numbers are written as Redis writes them (%.17g)."""
    t = type(v)
    if t is bytes:
        return v
    if t is int or t is float:
        return b"%.17g" % v
    return None


def error_text(s):
    """Redis's luaPushErrorBuff: "-CODE msg" keeps CODE, other text gets ERR; CR/LF at
    the ends trimmed."""
    if s.startswith("-"):
        sp = s.find(" ")
        code, msg = ("ERR", s[1:]) if sp < 0 else (s[1:sp], s[sp + 1:])
    else:
        code, msg = "ERR", s
    return f"{code} {msg.strip(chr(13) + chr(10))}"


# -- server replies -> Lua -------------------------------------------------------------

def to_lua(rt, reply, resp, depth=0):
    """The Lua value of a command's reply for a script speaking RESP `resp` (2 or 3).
    rt is the lua.LuaRuntime (its table constructor)."""
    if depth > MAX_DEPTH:
        raise ConversionTooDeep()
    t = type(reply)
    if t is bytes:
        return reply
    if t is int:
        if _INT64_MIN <= reply <= _INT64_MAX:
            return reply
        return rt.table({b"big_number": str(reply).encode()}) if resp == 3 else str(reply).encode()
    if reply is None or reply is NULL_ARRAY:
        return None if resp == 3 else False
    if t is Status:
        return rt.table({b"ok": str(reply).encode()})
    if t is ErrorReply or isinstance(reply, ErrorReply):
        return rt.table({b"err": error_text("-" + str(reply)).encode()})
    if t is list or t is tuple or t is Push:
        return rt.table([to_lua(rt, x, resp, depth + 1) for x in reply])
    if t is bool:
        return reply if resp == 3 else int(reply)
    if t is float:
        return rt.table({b"double": reply}) if resp == 3 else format_double(reply)
    if t is dict:
        if resp == 3:
            return rt.table({b"map": rt.table({_key(rt, k, depth): to_lua(rt, v, resp, depth + 1)
                                               for k, v in reply.items()})})
        flat = []
        for k, v in reply.items():
            flat.append(to_lua(rt, k, resp, depth + 1))
            flat.append(to_lua(rt, v, resp, depth + 1))
        return rt.table(flat)
    if t is set or t is frozenset:
        if resp == 3:
            return rt.table({b"set": rt.table({_key(rt, m, depth): True for m in reply})})
        return rt.table([to_lua(rt, m, resp, depth + 1) for m in reply])
    if isinstance(reply, str):
        return reply.encode()
    if t is bytearray or t is memoryview:
        return bytes(reply)
    return None


def _key(rt, k, depth):
    v = to_lua(rt, k, 3, depth + 1)
    return False if v is None else v


# -- Lua -> server replies ---------------------------------------------------------------

def _number(x):
    """(long long)x as x86 gives it: truncation toward zero, INT64_MIN when out of range."""
    if type(x) is int:
        return x if _INT64_MIN <= x <= _INT64_MAX else _INT64_MIN
    if math.isnan(x) or math.isinf(x):
        return _INT64_MIN
    n = int(x)
    return n if _INT64_MIN <= n <= _INT64_MAX else _INT64_MIN


def from_lua(rt, v, resp, depth=0):
    """The reply for the Lua value v a script returned (its RESP is `resp`)."""
    if depth > MAX_DEPTH:
        raise ConversionTooDeep()
    t = type(v)
    if t is bytes:
        return v
    if t is int or t is float:
        return _number(v)
    if t is bool:
        if resp == 3:
            return v
        return 1 if v else None
    if v is None:
        return None
    if t.__name__ != "_LuaTable":
        return None   # functions, coroutines, userdata: nil, as in Redis
    err, ok, dbl, big, verb, mp, st = rt.fields(v)
    if type(err) is bytes:
        return ErrorReply(err.decode("utf-8", "replace"))
    if type(ok) is bytes:
        return Status(ok.decode("utf-8", "replace").replace("\r", " ").replace("\n", " "))
    if type(dbl) in (int, float):
        return float(dbl)
    if type(big) is bytes:
        text = big.replace(b"\r", b" ").replace(b"\n", b" ")
        try:
            return int(text)
        except ValueError:
            return text
    if verb is not None and type(verb).__name__ == "_LuaTable":
        fmt, s = rt.verbatim(verb)
        if type(fmt) is bytes and type(s) is bytes:
            return s
    if mp is not None and type(mp).__name__ == "_LuaTable":
        return {_hashable(from_lua(rt, k, resp, depth + 1)): from_lua(rt, x, resp, depth + 1)
                for k, x in mp.items()}
    if st is not None and type(st).__name__ == "_LuaTable":
        return {_hashable(from_lua(rt, k, resp, depth + 1)) for k in st.keys()}
    arr, n = rt.array(v)
    return [from_lua(rt, arr[i], resp, depth + 1) for i in range(1, n + 1)]


def _hashable(r):
    """Map keys and set members must be hashable in Python: nested arrays become tuples."""
    if isinstance(r, list):
        return tuple(_hashable(x) for x in r)
    if isinstance(r, (dict, set)):
        return repr(r).encode()
    return r
