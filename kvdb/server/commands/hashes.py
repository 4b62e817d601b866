"""Hash commands. Fields are ordered sub-keys (see keyspace.py), so HGETALL and
HSCAN are range scans and a hash costs what its fields cost."""
import random

from kvdb.server.protocol.resp import OK

from ..glob import glob_match
from ..keyspace import TYPE_HASH
from .keys import decode_cursor, encode_cursor, parse_scan_options
from .registry import CommandError, command, float_arg, int_arg
from .strings import add_float, format_float


def _h(**kw):
    return dict(group="hash", **kw)


def _pairs(args, start, name):
    if (len(args) - start) % 2 or len(args) == start:
        raise CommandError(f"ERR wrong number of arguments for '{name}' command")
    return [(args[i], args[i + 1]) for i in range(start, len(args), 2)]


def _dedup(pairs):
    """Last value wins for a field given twice, as in Redis."""
    return list(dict(pairs).items())


@command("hset", -4, "write denyoom fast", "@hash", (1, 1, 1), **_h(summary="Creates or modifies the value of a field in a hash."))
def hset(c, args):
    added = c.server.ks.hash_set(c.db, args[1], _dedup(_pairs(args, 2, "hset")))
    c.server.key_changed(c.db, args[1], "hset")
    return added


@command("hmset", -4, "write denyoom fast", "@hash", (1, 1, 1), **_h(summary="Sets the values of multiple fields.", since="2.0.0"))
def hmset(c, args):
    c.server.ks.hash_set(c.db, args[1], _dedup(_pairs(args, 2, "hmset")))
    c.server.key_changed(c.db, args[1], "hset")
    return OK


@command("hsetnx", 4, "write denyoom fast", "@hash", (1, 1, 1), **_h(summary="Sets the value of a field in a hash only when the field doesn't exist."))
def hsetnx(c, args):
    added = c.server.ks.hash_set(c.db, args[1], [(args[2], args[3])], only_new=True)
    if added:
        c.server.key_changed(c.db, args[1], "hset")
    return added


@command("hget", 3, "readonly fast", "@hash", (1, 1, 1), **_h(summary="Returns the value of a field in a hash."))
def hget(c, args):
    value = c.server.ks.hash_get(c.db, args[1], args[2])
    c.server.stats.hit(value is not None)
    return value


@command("hmget", -3, "readonly fast", "@hash", (1, 1, 1), **_h(summary="Returns the values of all fields in a hash."))
def hmget(c, args):
    ks = c.server.ks
    if ks.typed(c.db, args[1], TYPE_HASH) is None:
        return [None] * (len(args) - 2)
    return [ks.hash_get(c.db, args[1], f) for f in args[2:]]


@command("hdel", -3, "write fast", "@hash", (1, 1, 1), **_h(summary="Deletes one or more fields and their values from a hash."))
def hdel(c, args):
    removed = c.server.ks.hash_delete(c.db, args[1], args[2:])
    if removed:
        c.server.key_changed(c.db, args[1], "hdel")
        if c.server.ks.entry(c.db, args[1]) is None:
            c.server.key_changed(c.db, args[1], "del")
    return removed


def _items(c, key):
    ks = c.server.ks
    if ks.typed(c.db, key, TYPE_HASH) is None:
        return []
    return ks.hash_items(c.db, key)


@command("hgetall", 2, "readonly", "@hash", (1, 1, 1), **_h(summary="Returns all fields and values in a hash."))
def hgetall(c, args):
    return dict(_items(c, args[1]))


@command("hkeys", 2, "readonly", "@hash", (1, 1, 1), **_h(summary="Returns all fields in a hash."))
def hkeys(c, args):
    return [f for f, _ in _items(c, args[1])]


@command("hvals", 2, "readonly", "@hash", (1, 1, 1), **_h(summary="Returns all values in a hash."))
def hvals(c, args):
    return [v for _, v in _items(c, args[1])]


@command("hlen", 2, "readonly fast", "@hash", (1, 1, 1), **_h(summary="Returns the number of fields in a hash."))
def hlen(c, args):
    e = c.server.ks.typed(c.db, args[1], TYPE_HASH)
    return 0 if e is None else e.body


@command("hexists", 3, "readonly fast", "@hash", (1, 1, 1), **_h(summary="Determines whether a field exists in a hash."))
def hexists(c, args):
    return 1 if c.server.ks.hash_get(c.db, args[1], args[2]) is not None else 0


@command("hstrlen", 3, "readonly fast", "@hash", (1, 1, 1), **_h(summary="Returns the length of the value of a field.", since="3.2.0"))
def hstrlen(c, args):
    return len(c.server.ks.hash_get(c.db, args[1], args[2]) or b"")


@command("hincrby", 4, "write denyoom fast", "@hash", (1, 1, 1), **_h(summary="Increments the integer value of a field in a hash by a number."))
def hincrby(c, args):
    ks = c.server.ks
    delta = int_arg(args[3])
    current = ks.hash_get(c.db, args[1], args[2])
    value = int_arg(current, "ERR hash value is not an integer") if current is not None else 0
    result = value + delta
    if not -(1 << 63) <= result < (1 << 63):
        raise CommandError("ERR increment or decrement would overflow")
    ks.hash_set(c.db, args[1], [(args[2], str(result).encode())])
    c.server.key_changed(c.db, args[1], "hincrby")
    return result


@command("hincrbyfloat", 4, "write denyoom fast", "@hash", (1, 1, 1),
         **_h(summary="Increments the floating point value of a field by a number.", since="2.6.0"))
def hincrbyfloat(c, args):
    ks = c.server.ks
    delta = float_arg(args[3])
    current = ks.hash_get(c.db, args[1], args[2])
    value = float_arg(current, "ERR hash value is not a float") if current is not None else 0.0
    result = format_float(add_float(value, delta))
    ks.hash_set(c.db, args[1], [(args[2], result)])
    c.server.key_changed(c.db, args[1], "hincrbyfloat")
    return result


@command("hscan", -3, "readonly", "@hash", (1, 1, 1), **_h(summary="Iterates over fields and values of a hash.", since="2.8.0"))
def hscan(c, args):
    ks = c.server.ks
    after = decode_cursor(args[2])
    pattern, count, _, novalues = parse_scan_options(args, 3, False)
    if ks.typed(c.db, args[1], TYPE_HASH) is None:
        return [b"0", []]
    batch = ks.hash_items(c.db, args[1], after=after, count=count)
    out = []
    for f, v in batch:
        if pattern == b"*" or glob_match(pattern, f):
            out.append(f)
            if not novalues:
                out.append(v)
    last = batch[-1][0] if len(batch) >= count else None
    return [encode_cursor(last), out]


@command("hrandfield", -2, "readonly", "@hash", (1, 1, 1),
         **_h(summary="Returns one or more random fields from a hash.", since="6.2.0"))
def hrandfield(c, args):
    ks = c.server.ks
    with_values = False
    count = None
    if len(args) >= 3:
        count = int_arg(args[2])
        if len(args) == 4:
            if args[3].lower() != b"withvalues":
                raise CommandError("ERR syntax error")
            with_values = True
        elif len(args) > 4:
            raise CommandError("ERR syntax error")
    e = ks.typed(c.db, args[1], TYPE_HASH)
    if e is None:
        return None if count is None else []
    items = ks.hash_items(c.db, args[1])
    if count is None:
        return random.choice(items)[0]
    if count >= 0:
        chosen = random.sample(items, min(count, len(items)))
    else:
        chosen = [random.choice(items) for _ in range(-count)]
    if with_values:
        if c.proto >= 3:
            return [[f, v] for f, v in chosen]
        return [x for pair in chosen for x in pair]
    return [f for f, _ in chosen]
