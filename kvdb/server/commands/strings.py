"""String commands."""
from decimal import Decimal

import kvdb
from kvdb.server.protocol.resp import OK

from ..keyspace import HEADER, LONG_META, TYPE_STRING, now_ms
from .registry import NOT_INTEGER, SYNTAX, CommandError, command, float_arg, int_arg

MAX_STRING = 512 * 1024 * 1024
# The longest string value the engine stores under a key name up to LONG_META: its value limit
# less the meta record's header (a longer name is kept in the record too: string_room).
MAX_STORED_STRING = kvdb.MAX_VALUE_SIZE - HEADER


def _s(**kw):
    return dict(group="string", **kw)


def _hit(c, value):
    c.server.stats.hit(value is not None)
    return value


@command("get", 2, "readonly fast", "@string", (1, 1, 1), **_s(summary="Returns the string value of a key."))
def get(c, args):
    return _hit(c, c.server.ks.get_string(c.db, args[1]))


def parse_expiry(opt, value, now, name):
    """Absolute ms for EX/PX/EXAT/PXAT value; errors as Redis words them."""
    n = int_arg(value)
    if n <= 0:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    if opt == b"ex":
        at = now + n * 1000
    elif opt == b"px":
        at = now + n
    elif opt == b"exat":
        at = n * 1000
    else:
        at = n
    if n > (1 << 62) // 1000 or at <= 0:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    return at



@command("set", -3, "write denyoom", "@string", (1, 1, 1),
         **_s(summary="Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."))
def set_(c, args):
    ks = c.server.ks
    key, value = args[1], args[2]
    if len(args) == 3:  # plain SET: no option parsing, one read of the old record
        ks.set_string(c.db, key, value)
        return OK
    nx = xx = keep = want_get = False
    expire_at = 0
    i = 3
    now = now_ms()
    seen_expiry = False
    while i < len(args):
        opt = args[i].lower()
        if opt == b"nx" and not xx:
            nx = True
        elif opt == b"xx" and not nx:
            xx = True
        elif opt == b"get":
            want_get = True
        elif opt == b"keepttl" and not seen_expiry:
            keep = True
        elif opt in (b"ex", b"px", b"exat", b"pxat") and not keep and not seen_expiry and i + 1 < len(args):
            expire_at = parse_expiry(opt, args[i + 1], now, "set")
            seen_expiry = True
            i += 1
        else:
            raise CommandError(SYNTAX)
        i += 1
    e = ks.entry(c.db, key)
    old = None
    if want_get and e is not None:
        if e.type != TYPE_STRING:
            raise CommandError("WRONGTYPE Operation against a key holding the wrong kind of value")
        old = e.body
    if (nx and e is not None) or (xx and e is None):
        return old if want_get else None
    ks.set_string(c.db, key, value, expire_at, keep_ttl=keep)
    return old if want_get else OK


@command("setnx", 3, "write denyoom fast", "@string", (1, 1, 1),
         **_s(summary="Set the string value of a key only when the key doesn't exist."))
def setnx(c, args):
    ks = c.server.ks
    if ks.entry(c.db, args[1]) is not None:
        return 0
    ks.set_string(c.db, args[1], args[2])
    return 1


def _setex(c, args, unit):
    at = parse_expiry(b"ex" if unit == 1000 else b"px", args[2], now_ms(), args[0].lower().decode())
    c.server.ks.set_string(c.db, args[1], args[3], at)
    return OK


@command("setex", 4, "write denyoom", "@string", (1, 1, 1), **_s(summary="Sets the value and expiration time of a key."))
def setex(c, args):
    return _setex(c, args, 1000)


@command("psetex", 4, "write denyoom", "@string", (1, 1, 1),
         **_s(summary="Sets both string value and expiration time in milliseconds of a key."))
def psetex(c, args):
    return _setex(c, args, 1)


@command("mget", -2, "readonly fast", "@string", (1, -1, 1), **_s(summary="Atomically returns the string values of one or more keys."))
def mget(c, args):
    ks = c.server.ks
    out = []
    for key in args[1:]:
        e = ks.entry(c.db, key)
        out.append(_hit(c, e.body if e is not None and e.type == TYPE_STRING else None))
    return out


def string_room(key):
    """The longest string value the server can store under `key`: the engine's value limit less
    the meta record's header, and less the name itself where the record keeps it (a name past
    LONG_META, keyspace.put_meta). Redis's limit (proto-max-bulk-len, 512 MB) is higher."""
    return MAX_STORED_STRING - (4 + len(key) if len(key) > LONG_META else 0)


def check_pairs(args, name):
    """MSET/MSETNX's arguments, checked before anything is written, so that the command is all or
    nothing as Redis documents it: CommandError for an odd count or a value too long to store."""
    if len(args) % 2 == 0:
        raise CommandError(f"ERR wrong number of arguments for '{name}' command")
    for i in range(1, len(args), 2):
        room = string_room(args[i])
        if len(args[i + 1]) > room:
            raise CommandError(f"ERR value of key number {(i + 1) // 2} is {len(args[i + 1])} bytes, kvdb's "
                               f"server stores string values up to {room} bytes; nothing was set")


@command("mset", -3, "write denyoom", "@string", (1, -1, 2), **_s(summary="Atomically creates or modifies the string values of one or more keys."))
def mset(c, args):
    check_pairs(args, "mset")
    for i in range(1, len(args), 2):
        c.server.ks.set_string(c.db, args[i], args[i + 1])
    return OK


@command("msetnx", -3, "write denyoom", "@string", (1, -1, 2),
         **_s(summary="Atomically modifies the string values of one or more keys only when all keys don't exist."))
def msetnx(c, args):
    check_pairs(args, "msetnx")
    ks = c.server.ks
    if any(ks.entry(c.db, args[i]) is not None for i in range(1, len(args), 2)):
        return 0
    for i in range(1, len(args), 2):
        ks.set_string(c.db, args[i], args[i + 1])
    return 1


@command("getset", 3, "write denyoom fast", "@string", (1, 1, 1),
         **_s(summary="Returns the previous string value of a key after setting it to a new value."))
def getset(c, args):
    ks = c.server.ks
    old = ks.get_string(c.db, args[1])
    ks.set_string(c.db, args[1], args[2])
    return old


@command("getdel", 2, "write fast", "@string", (1, 1, 1), **_s(summary="Returns the string value of a key after deleting the key.", since="6.2.0"))
def getdel(c, args):
    ks = c.server.ks
    old = ks.get_string(c.db, args[1])
    if old is not None:
        ks.delete(c.db, args[1])
    return old


@command("getex", -2, "write fast", "@string", (1, 1, 1),
         **_s(summary="Returns the string value of a key after setting its expiration time.", since="6.2.0"))
def getex(c, args):
    ks = c.server.ks
    now = now_ms()
    at = None
    if len(args) > 2:
        opt = args[2].lower()
        if opt == b"persist" and len(args) == 3:
            at = 0
        elif opt in (b"ex", b"px", b"exat", b"pxat") and len(args) == 4:
            at = parse_expiry(opt, args[3], now, "getex")
        else:
            raise CommandError(SYNTAX)
    e = ks.entry(c.db, args[1])
    if e is None:
        return None
    if e.type != TYPE_STRING:
        raise CommandError("WRONGTYPE Operation against a key holding the wrong kind of value")
    if at is not None and at != e.expire_at:
        if at and at <= now:
            ks.delete(c.db, args[1])
        else:
            ks.set_expire(c.db, args[1], e, at)
            c.server.key_changed(c.db, args[1], "expire" if at else "persist")
    return e.body


def _incr(c, key, delta, event="incrby"):
    ks = c.server.ks
    e = ks.entry(c.db, key)
    if e is None:
        current = 0
    elif e.type != TYPE_STRING:
        raise CommandError("WRONGTYPE Operation against a key holding the wrong kind of value")
    else:
        current = int_arg(e.body) if len(e.body) <= 20 else int_arg(b"x")
    result = current + delta
    if not -(1 << 63) <= result < (1 << 63):
        raise CommandError("ERR increment or decrement would overflow")
    ks.set_string(c.db, key, str(result).encode(), keep_ttl=True, event=event)
    return result


@command("incr", 2, "write denyoom fast", "@string", (1, 1, 1), **_s(summary="Increments the integer value of a key by one."))
def incr(c, args):
    return _incr(c, args[1], 1)


@command("decr", 2, "write denyoom fast", "@string", (1, 1, 1), **_s(summary="Decrements the integer value of a key by one."))
def decr(c, args):
    return _incr(c, args[1], -1)


@command("incrby", 3, "write denyoom fast", "@string", (1, 1, 1), **_s(summary="Increments the integer value of a key by a number."))
def incrby(c, args):
    return _incr(c, args[1], int_arg(args[2]))


@command("decrby", 3, "write denyoom fast", "@string", (1, 1, 1), **_s(summary="Decrements a number from the integer value of a key."))
def decrby(c, args):
    n = int_arg(args[2])
    if n == -(1 << 63):
        raise CommandError("ERR decrement would overflow")
    return _incr(c, args[1], -n)


def format_float(x):
    """A float as Redis prints INCRBYFLOAT results: plain decimal, no exponent, no trailing zeros."""
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.encode()


def add_float(current, delta):
    result = current + delta
    if result != result or result in (float("inf"), float("-inf")):
        raise CommandError("ERR increment would produce NaN or Infinity")
    return result


@command("incrbyfloat", 3, "write denyoom fast", "@string", (1, 1, 1),
         **_s(summary="Increment the floating point value of a key by a number."))
def incrbyfloat(c, args):
    ks = c.server.ks
    delta = float_arg(args[2])
    e = ks.entry(c.db, args[1])
    if e is None:
        current = 0.0
    elif e.type != TYPE_STRING:
        raise CommandError("WRONGTYPE Operation against a key holding the wrong kind of value")
    else:
        current = float_arg(e.body)
    value = format_float(add_float(current, delta))
    ks.set_string(c.db, args[1], value, keep_ttl=True, event="incrbyfloat")
    return value


@command("append", 3, "write denyoom fast", "@string", (1, 1, 1), **_s(summary="Appends a string to the value of a key."))
def append(c, args):
    ks = c.server.ks
    current = ks.get_string(c.db, args[1]) or b""
    value = current + args[2]
    if len(value) > MAX_STRING:
        raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    ks.set_string(c.db, args[1], value, keep_ttl=True, event="append")
    return len(value)


@command("strlen", 2, "readonly fast", "@string", (1, 1, 1), **_s(summary="Returns the length of a string value."))
def strlen(c, args):
    return len(c.server.ks.get_string(c.db, args[1]) or b"")


@command("getrange", 4, "readonly", "@string", (1, 1, 1), **_s(summary="Returns a substring of the string stored at a key."))
def getrange(c, args):
    start, end = int_arg(args[2]), int_arg(args[3])
    value = c.server.ks.get_string(c.db, args[1]) or b""
    n = len(value)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start = max(n + start, 0)
    if end < 0:
        end = max(n + end, 0)
    end = min(end, n - 1)
    if start > end or n == 0:
        return b""
    return value[start:end + 1]


@command("substr", 4, "readonly", "@string", (1, 1, 1), **_s(summary="Returns a substring from a string value."))
def substr(c, args):
    return getrange(c, args)


@command("setrange", 4, "write denyoom", "@string", (1, 1, 1),
         **_s(summary="Overwrites a part of a string value with another by an offset."))
def setrange(c, args):
    offset = int_arg(args[2])
    if offset < 0:
        raise CommandError("ERR offset is out of range")
    ks = c.server.ks
    current = ks.get_string(c.db, args[1])
    patch = args[3]
    if current is None and not patch:
        return 0
    current = current or b""
    if not patch:
        return len(current)
    if offset + len(patch) > MAX_STRING:
        raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    if len(current) < offset:
        current += b"\x00" * (offset - len(current))
    value = current[:offset] + patch + current[offset + len(patch):]
    ks.set_string(c.db, args[1], value, keep_ttl=True, event="setrange")
    return len(value)


__all__ = ["NOT_INTEGER", "format_float", "add_float"]
