"""Generic key commands: DEL UNLINK EXISTS TYPE KEYS SCAN RANDOMKEY RENAME RENAMENX
COPY MOVE, the EXPIRE family, TTL/PTTL/EXPIRETIME, PERSIST, TOUCH, OBJECT.

Every type goes through the keyspace's generic operations: RENAME moves a string's
or a collection's meta record alone (a collection's sub-records do not name the
key), COPY and MOVE copy a collection's sub-records under a new version, streamed
from one scan per record kind (keyspace.copy_key).

SCAN cursors: keys are ordered, so a cursor names the last key returned and the
next call continues after it. Every key present for the whole iteration is
returned exactly once; a key added or removed meanwhile may or may not be. A
cursor is the decimal integer of b"\\x01" + key for keys up to 1 KiB, and of
b"\\x02" + an id into a bounded server-side table for longer keys (Python's int()
refuses decimal strings past 4300 digits). SCAN walks the keys whose names are too
long for the key range (keyspace.LONG_META, kept by their digest) after all others,
in digest order; its cursor there is b"\\x03" + the last digest returned.
"""
import os

from kvdb.server.protocol.resp import OK, Status

from ..encodings import encoding
from ..glob import glob_match, literal_prefix
from ..keyspace import TYPE_HASH, TYPE_LIST, TYPE_NAMES, TYPE_SET, TYPE_STREAM, TYPE_STRING, TYPE_ZSET, now_ms
from .registry import SYNTAX, CommandError, command, container, int_arg, subcommand

LONG_CURSOR_KEYS = 1024
_long_cursors = {}            # id -> key, for keys longer than LONG_CURSOR_KEYS
_LONG_CURSOR_LIMIT = 10000


def encode_cursor(key):
    if key is None:
        return b"0"
    if len(key) <= LONG_CURSOR_KEYS:
        return str(int.from_bytes(b"\x01" + key, "big")).encode()
    ident = int.from_bytes(os.urandom(8), "big")
    if len(_long_cursors) >= _LONG_CURSOR_LIMIT:
        _long_cursors.pop(next(iter(_long_cursors)))
    _long_cursors[ident] = key
    return str(int.from_bytes(b"\x02" + ident.to_bytes(8, "big"), "big")).encode()


def _cursor_bytes(text):
    """The bytes a cursor's decimal number stands for (b"" for 0)."""
    try:
        if not text.isdigit():
            raise ValueError
        n = int(text)
    except ValueError:
        raise CommandError("ERR invalid cursor") from None
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def decode_cursor(text):
    """The key after which to continue, None for the start."""
    raw = _cursor_bytes(text)
    if not raw:
        return None
    if raw[0] == 1:
        return raw[1:]
    if raw[0] == 2 and len(raw) == 9:
        key = _long_cursors.get(int.from_bytes(raw[1:], "big"))
        if key is not None:
            return key
    raise CommandError("ERR invalid cursor")


def _g(**kw):
    return dict(group="generic", **kw)


@command("del", -2, "write", "@keyspace", (1, -1, 1), **_g(summary="Deletes one or more keys."))
def del_(c, args):
    ks = c.server.ks
    return sum(1 for key in args[1:] if ks.delete(c.db, key))


@command("unlink", -2, "write fast", "@keyspace", (1, -1, 1), **_g(summary="Deletes one or more keys.", since="4.0.0"))
def unlink(c, args):
    return del_(c, args)


@command("exists", -2, "readonly fast", "@keyspace", (1, -1, 1), **_g(summary="Determines whether one or more keys exist."))
def exists(c, args):
    ks = c.server.ks
    return sum(1 for key in args[1:] if ks.entry(c.db, key) is not None)


@command("touch", -2, "readonly fast", "@keyspace", (1, -1, 1),
         **_g(summary="Returns the number of existing keys out of those specified after updating the time they were last accessed.",
              since="3.2.1"))
def touch(c, args):
    return exists(c, args)


@command("type", 2, "readonly fast", "@keyspace", (1, 1, 1), **_g(summary="Determines the type of value stored at a key."))
def type_(c, args):
    e = c.server.ks.entry(c.db, args[1])
    return Status("none" if e is None else TYPE_NAMES[e.type])


def _wanted(key, e, now, pattern, type_filter):
    if e.expire_at and e.expire_at <= now:
        return False
    if type_filter is not None and e.type != type_filter:
        return False
    return pattern == b"*" or glob_match(pattern, key)


def _live_keys(c, pattern, after=None, limit=None, type_filter=None, long_after=None):
    """(keys, where to continue) of live keys matching pattern, examining up to limit: the
    keys after `after` (key order), then those with long names after the digest `long_after`
    (digest order). Where to continue: None when done, ("k", key) or ("K", digest)."""
    ks = c.server.ks
    now = now_ms()
    out = []
    left = limit
    if long_after is None:
        batch = ks.scan_keys(c.db, after=after, prefix=literal_prefix(pattern), limit=limit)
        out = [key for key, e in batch if _wanted(key, e, now, pattern, type_filter)]
        if limit is not None:
            if len(batch) >= limit:
                return out, ("k", batch[-1][0])
            left = limit - len(batch)
    long_batch = ks.scan_long_keys(c.db, after=long_after, limit=left)
    out += [key for _, key, e in long_batch if _wanted(key, e, now, pattern, type_filter)]
    if left is not None and len(long_batch) >= left:
        return out, ("K", long_batch[-1][0])
    return out, None


def _scan_cursor(where):
    if where is None:
        return b"0"
    if where[0] == "k":
        return encode_cursor(where[1])
    return str(int.from_bytes(b"\x03" + where[1], "big")).encode()


@command("keys", 2, "readonly", "@keyspace @dangerous", **_g(summary="Returns all key names that match a pattern."))
def keys(c, args):
    return _live_keys(c, args[1])[0]


_TYPES = {b"string": TYPE_STRING, b"hash": TYPE_HASH, b"list": TYPE_LIST, b"set": TYPE_SET, b"zset": TYPE_ZSET,
          b"stream": TYPE_STREAM}


def parse_scan_options(args, i, allow_type):
    pattern, count, type_filter, novalues = b"*", 10, None, False
    while i < len(args):
        opt = args[i].lower()
        if opt == b"match" and i + 1 < len(args):
            pattern = args[i + 1]
        elif opt == b"count" and i + 1 < len(args):
            count = int_arg(args[i + 1])
            if count < 1:
                raise CommandError(SYNTAX)
        elif opt == b"type" and allow_type and i + 1 < len(args):
            type_filter = _TYPES.get(args[i + 1].lower(), b"?")
        elif opt == b"novalues" and not allow_type:
            novalues = True
            i -= 1
        else:
            raise CommandError(SYNTAX)
        i += 2
    return pattern, count, type_filter, novalues


@command("scan", -2, "readonly", "@keyspace", **_g(summary="Iterates over the key names in the database.", since="2.8.0"))
def scan(c, args):
    raw = _cursor_bytes(args[1])
    if raw[:1] == b"\x03" and len(raw) == 33:
        after, long_after = None, raw[1:]
    else:
        after, long_after = decode_cursor(args[1]), None
    pattern, count, type_filter, _ = parse_scan_options(args, 2, True)
    found, where = _live_keys(c, pattern, after=after, limit=count, type_filter=type_filter, long_after=long_after)
    return [_scan_cursor(where), found]


@command("randomkey", 1, "readonly", "@keyspace", **_g(summary="Returns a random key name from the database."))
def randomkey(c, args):
    ks = c.server.ks
    now = now_ms()
    for _ in range(8):
        start = os.urandom(4)
        for after in (start, None):
            for key, e in ks.scan_keys(c.db, after=after, limit=16):
                if not (e.expire_at and e.expire_at <= now):
                    return key
        for after in (os.urandom(32), None):   # keys with long names (by digest)
            for _, key, e in ks.scan_long_keys(c.db, after=after, limit=16):
                if not (e.expire_at and e.expire_at <= now):
                    return key
    return None


def _db_arg(c, value):
    """A database number argument (Redis reads a C int, then checks the range)."""
    n = int_arg(value)
    if not -(1 << 31) <= n < (1 << 31):
        raise CommandError("ERR value is out of range, value must between -2147483648 and 2147483647")
    if not 0 <= n < c.server.config["databases"]:
        raise CommandError("ERR DB index is out of range")
    return n


def _rename(c, args, nx):
    ks = c.server.ks
    src, dst = args[1], args[2]
    e = ks.entry(c.db, src)
    if e is None:
        raise CommandError("ERR no such key")
    if src == dst:
        return 0 if nx else OK
    old = ks.prepare_write(c.db, dst)      # an expired destination is removed here
    if old is not None and nx:
        return 0
    ks.check_room(c.db, src, e, dst)       # before anything is written
    if old is not None:
        ks.remove(c.db, dst, old, event=None)  # overwritten: Redis sends no "del" for it
    ks.rename_key(c.db, src, e, dst)
    c.server.key_changed(c.db, src, "rename_from")
    c.server.key_changed(c.db, dst, "rename_to")
    return 1 if nx else OK


@command("rename", 3, "write", "@keyspace", (1, 2, 1), **_g(summary="Renames a key and overwrites the destination."))
def rename(c, args):
    return _rename(c, args, False)


@command("renamenx", 3, "write fast", "@keyspace", (1, 2, 1), **_g(summary="Renames a key only when the target key name doesn't exist."))
def renamenx(c, args):
    return _rename(c, args, True)


@command("copy", -3, "write denyoom", "@keyspace", (1, 2, 1), **_g(summary="Copies the value of a key to a new key.", since="6.2.0"))
def copy(c, args):
    ks = c.server.ks
    dst_db, replace = c.db, False
    i = 3
    while i < len(args):
        opt = args[i].lower()
        if opt == b"replace":
            replace = True
            i += 1
        elif opt == b"db" and i + 1 < len(args):
            dst_db = _db_arg(c, args[i + 1])
            i += 2
        else:
            raise CommandError(SYNTAX)
    src, dst = args[1], args[2]
    if src == dst and dst_db == c.db:
        raise CommandError("ERR source and destination objects are the same")
    e = ks.entry(c.db, src)
    if e is None:
        return 0
    old = ks.prepare_write(dst_db, dst)
    if old is not None and not replace:
        return 0
    ks.check_room(c.db, src, e, dst)
    if old is not None:
        ks.remove(dst_db, dst, old, event=None)
    ks.copy_key(c.db, src, e, dst_db, dst)
    c.server.key_changed(dst_db, dst, "copy_to")
    return 1


@command("move", 3, "write fast", "@keyspace", (1, 1, 1), **_g(summary="Moves a key to another database."))
def move(c, args):
    ks = c.server.ks
    key = args[1]
    dst_db = _db_arg(c, args[2])
    if dst_db == c.db:
        raise CommandError("ERR source and destination objects are the same")
    e = ks.entry(c.db, key)
    if e is None:
        return 0
    if ks.prepare_write(dst_db, key) is not None:
        return 0
    # Collections' sub-records carry the database in their prefix: they are copied under a
    # new version (streamed) and the old version goes to the collector.
    ks.copy_key(c.db, key, e, dst_db, key)
    ks.remove(c.db, key, e, event=None)
    c.server.key_changed(c.db, key, "move_from")
    c.server.key_changed(dst_db, key, "move_to")
    return 1


def _expire(c, args, unit, absolute):
    ks = c.server.ks
    name = args[0].lower().decode()
    n = int_arg(args[2])
    flags = {a.lower() for a in args[3:]}
    if not flags <= {b"nx", b"xx", b"gt", b"lt"} or len(flags) != len(args) - 3:
        raise CommandError(f"ERR Unsupported option {args[3 + 0].decode('utf-8', 'replace')}")
    if b"nx" in flags and flags & {b"xx", b"gt", b"lt"}:
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if b"gt" in flags and b"lt" in flags:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    now = now_ms()
    try:
        at = n * unit if absolute else now + n * unit
        if not -(1 << 63) <= n * unit < (1 << 63) or not -(1 << 63) <= at < (1 << 63):
            raise OverflowError
    except OverflowError:
        raise CommandError(f"ERR invalid expire time in '{name}' command") from None
    e = ks.entry(c.db, args[1])
    if e is None:
        return 0
    current = e.expire_at or None
    if b"nx" in flags and current is not None:
        return 0
    if b"xx" in flags and current is None:
        return 0
    if b"gt" in flags and (current is None or at <= current):
        return 0
    if b"lt" in flags and current is not None and at >= current:
        return 0
    if at <= now:
        ks.delete(c.db, args[1])
        return 1
    ks.set_expire(c.db, args[1], e, at)
    c.server.key_changed(c.db, args[1], "expire")
    return 1


@command("expire", -3, "write fast", "@keyspace", (1, 1, 1), **_g(summary="Sets the expiration time of a key in seconds."))
def expire(c, args):
    return _expire(c, args, 1000, False)


@command("pexpire", -3, "write fast", "@keyspace", (1, 1, 1), **_g(summary="Sets the expiration time of a key in milliseconds.", since="2.6.0"))
def pexpire(c, args):
    return _expire(c, args, 1, False)


@command("expireat", -3, "write fast", "@keyspace", (1, 1, 1), **_g(summary="Sets the expiration time of a key to a Unix timestamp.", since="1.2.0"))
def expireat(c, args):
    return _expire(c, args, 1000, True)


@command("pexpireat", -3, "write fast", "@keyspace", (1, 1, 1),
         **_g(summary="Sets the expiration time of a key to a Unix milliseconds timestamp.", since="2.6.0"))
def pexpireat(c, args):
    return _expire(c, args, 1, True)


def _ttl(c, key, unit, absolute):
    e = c.server.ks.entry(c.db, key)
    if e is None:
        return -2
    if not e.expire_at:
        return -1
    if absolute:
        return e.expire_at // unit
    left = max(e.expire_at - now_ms(), 0)
    return (left + 500) // 1000 if unit == 1000 else left


@command("ttl", 2, "readonly fast", "@keyspace", (1, 1, 1), **_g(summary="Returns the expiration time in seconds of a key."))
def ttl(c, args):
    return _ttl(c, args[1], 1000, False)


@command("pttl", 2, "readonly fast", "@keyspace", (1, 1, 1), **_g(summary="Returns the expiration time in milliseconds of a key.", since="2.6.0"))
def pttl(c, args):
    return _ttl(c, args[1], 1, False)


@command("expiretime", 2, "readonly fast", "@keyspace", (1, 1, 1),
         **_g(summary="Returns the expiration time of a key as a Unix timestamp.", since="7.0.0"))
def expiretime(c, args):
    return _ttl(c, args[1], 1000, True)


@command("pexpiretime", 2, "readonly fast", "@keyspace", (1, 1, 1),
         **_g(summary="Returns the expiration time of a key as a Unix milliseconds timestamp.", since="7.0.0"))
def pexpiretime(c, args):
    return _ttl(c, args[1], 1, True)


@command("persist", 2, "write fast", "@keyspace", (1, 1, 1), **_g(summary="Removes the expiration time of a key.", since="2.2.0"))
def persist(c, args):
    ks = c.server.ks
    e = ks.entry(c.db, args[1])
    if e is None or not e.expire_at:
        return 0
    ks.set_expire(c.db, args[1], e, 0)
    c.server.key_changed(c.db, args[1], "persist")
    return 1


container("object", -2, "", "@keyspace", summary="A container for object introspection commands.", group="generic")


@subcommand("object", "encoding", 3, "readonly", "@keyspace", (2, 2, 1), summary="Returns the internal encoding of a Redis object.",
            since="2.2.3")
def object_encoding(c, args):
    e = c.server.ks.entry(c.db, args[2])
    return None if e is None else encoding(c.server, c.db, args[2], e).encode()


LFU_INIT = 5   # Redis's access-frequency counter of a new key (kvdb does not count accesses)
_SWITCHING = "Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."


@subcommand("object", "freq", 3, "readonly", "@keyspace", (2, 2, 1), summary="Returns the logarithmic access frequency counter of a Redis object.",
            since="4.0.0")
def object_freq(c, args):
    if c.server.ks.entry(c.db, args[2]) is None:
        return None
    if not c.server.config["maxmemory-policy"].endswith("-lfu"):
        raise CommandError("ERR An LFU maxmemory policy is not selected, access frequency not tracked. " + _SWITCHING)
    return LFU_INIT


@subcommand("object", "refcount", 3, "readonly", "@keyspace", (2, 2, 1), summary="Returns the reference count of a value of a key.")
def object_refcount(c, args):
    e = c.server.ks.entry(c.db, args[2])
    if e is None:
        return None
    if e.type == TYPE_STRING and _shared_integer(e.body):
        return SHARED_REFCOUNT
    return 1


SHARED_REFCOUNT = (1 << 31) - 1   # what Redis reports for its shared objects (the integers 0..9999)


def _shared_integer(v):
    return 0 < len(v) <= 4 and v.isdigit() and (v == b"0" or v[:1] != b"0")


@subcommand("object", "idletime", 3, "readonly", "@keyspace", (2, 2, 1), summary="Returns the time since the last access to a Redis object.")
def object_idletime(c, args):
    if c.server.ks.entry(c.db, args[2]) is None:
        return None
    if c.server.config["maxmemory-policy"].endswith("-lfu"):
        raise CommandError("ERR An LFU maxmemory policy is selected, idle time not tracked. " + _SWITCHING)
    return 0


@subcommand("object", "help", 2, "loading stale", "@keyspace", summary="Returns helpful text about the different subcommands.")
def object_help(c, args):
    return [b"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"ENCODING <key>",
            b"    Return the kind of internal representation used in order to store the value",
            b"    associated with a <key>.",
            b"FREQ <key>",
            b"    Return the access frequency index of the <key>. The returned integer is",
            b"    proportional to the logarithm of the recent access frequency of the key.",
            b"IDLETIME <key>",
            b"    Return the idle time of the <key>, that is the approximated number of",
            b"    seconds elapsed since the last access to the key.",
            b"REFCOUNT <key>",
            b"    Return the number of references of the value associated with the specified",
            b"    <key>.",
            b"HELP",
            b"    Prints this help."]
