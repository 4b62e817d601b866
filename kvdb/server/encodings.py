"""OBJECT ENCODING: the encoding Redis 7.2 would report for a value of the same
contents, worked out from the key's meta record and, for small collections, a
bounded look at their elements (kvdb stores every type the same way, so the
name only tells clients and tools what Redis would have used).

Redis picks an encoding from the value's size when it writes it and converts a
small encoding to a large one as the value grows past the limits below, but
never back as it shrinks (except a list that shrinks to half its limit). kvdb
keeps no history, so a value that grew past a limit and shrank below it again
is reported as if it had been written at its present size.

    string  int (a canonical 64-bit integer), embstr (<= 44 bytes), raw
    hash    listpack while fields <= hash-max-listpack-entries and every field and
            value <= hash-max-listpack-value bytes, else hashtable
    list    listpack while its listpack would fit list-max-listpack-size (bytes when
            negative: -1 4 KiB .. -5 64 KiB; elements when positive, within 8 KiB),
            else quicklist
    set     intset while every member is an integer and members <= set-max-intset-entries,
            listpack while members <= set-max-listpack-entries and each is
            <= set-max-listpack-value bytes, else hashtable
    zset    listpack while members <= zset-max-listpack-entries and each is
            <= zset-max-listpack-value bytes, else skiplist
    stream  stream

No more than LOOK_LIMIT records are read: a larger value is reported by its count.
"""
from .keyspace import (COLLECTION_KINDS, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_STRING, TYPE_ZSET, field_prefix,
                       sub_prefix)

__all__ = ["encoding"]

LOOK_LIMIT = 1 << 15          # most records read to name one value's encoding
SAFETY_LIMIT = 8192           # bytes of a list node sized by element count (Redis's SIZE_SAFETY_LIMIT)
NODE_BYTES = (4096, 8192, 16384, 32768, 65536)   # list-max-listpack-size -1 .. -5
INTSET_MAX = 1 << 30          # Redis caps set-max-intset-entries here
LISTPACK_OVERHEAD = 7         # a listpack's header (6 bytes) and end byte


def as_int64(v):
    """The value of v if Redis stores it as an integer (string2ll: canonical decimal, 64-bit)."""
    if not v or len(v) > 20:
        return None
    digits = v[1:] if v[:1] == b"-" else v
    if not digits.isdigit() or (digits[:1] == b"0" and (len(digits) > 1 or v[:1] == b"-")):
        return None
    n = int(v)
    return n if -(1 << 63) <= n < (1 << 63) else None


def _entry_bytes(v):
    """The bytes one element takes in a listpack: its encoding and data, then its back-length."""
    n = as_int64(v)
    if n is None:
        size = len(v) + (1 if len(v) < 64 else 2 if len(v) < 4096 else 5)
    elif 0 <= n <= 127:
        size = 1
    elif -4096 <= n <= 4095:
        size = 2
    elif -32768 <= n <= 32767:
        size = 3
    elif -(1 << 23) <= n < (1 << 23):
        size = 4
    elif -(1 << 31) <= n < (1 << 31):
        size = 5
    else:
        size = 9
    back = 1 if size <= 127 else 2 if size < 16383 else 3 if size < 2097151 else 4 if size < 268435455 else 5
    return size + back


def _string(v):
    if as_int64(v) is not None:
        return "int"
    return "embstr" if len(v) <= 44 else "raw"


def _hash(ks, db, key, count, cfg):
    limit = cfg["hash-max-listpack-value"]
    if count > cfg["hash-max-listpack-entries"]:
        return "hashtable"
    if count <= LOOK_LIMIT:
        prefix = field_prefix(db, key)
        with ks.store.scan(prefix=prefix) as it:
            for k, v in it:
                if len(k) - len(prefix) > limit or len(v) > limit:
                    return "hashtable"
    return "listpack"


def _list(ks, db, coll, cfg):
    fill = cfg["list-max-listpack-size"]
    if fill >= 0:
        if coll.count > max(fill, 1):
            return "quicklist"
        room = SAFETY_LIMIT
    else:
        room = NODE_BYTES[min(-fill - 1, len(NODE_BYTES) - 1)]
    if coll.count * 2 + LISTPACK_OVERHEAD > room or coll.count > LOOK_LIMIT:  # an element takes 2 bytes or more
        return "quicklist"
    size = LISTPACK_OVERHEAD
    with ks.store.scan(prefix=coll.prefix(db, COLLECTION_KINDS[TYPE_LIST][0])) as it:
        for _, v in it:
            size += _entry_bytes(v)
            if size > room:
                return "quicklist"
    return "listpack"


def _members(ks, db, type_, coll):
    """The members of a small set or sorted set (the rest of their member records' keys)."""
    prefix = sub_prefix(db, COLLECTION_KINDS[type_][0], coll.version)
    with ks.store.scan(prefix=prefix) as it:
        for k, _ in it:
            yield k[len(prefix):]


def _set(ks, db, coll, cfg):
    n = coll.count
    intset = n <= min(cfg["set-max-intset-entries"], INTSET_MAX)
    listpack = n <= cfg["set-max-listpack-entries"]
    if not (intset or listpack):
        return "hashtable"
    if n > LOOK_LIMIT:
        return "intset" if intset else "listpack"
    limit = cfg["set-max-listpack-value"]
    for m in _members(ks, db, TYPE_SET, coll):
        if intset and as_int64(m) is None:
            intset = False
        if listpack and len(m) > limit:
            listpack = False
        if not (intset or listpack):
            return "hashtable"
    return "intset" if intset else "listpack"


def _zset(ks, db, coll, cfg):
    if coll.count > cfg["zset-max-listpack-entries"]:
        return "skiplist"
    if coll.count <= LOOK_LIMIT:
        limit = cfg["zset-max-listpack-value"]
        for m in _members(ks, db, TYPE_ZSET, coll):
            if len(m) > limit:
                return "skiplist"
    return "listpack"


def encoding(server, db, key, e):
    """The encoding name Redis would report for key's live entry e."""
    cfg = server.config
    ks = server.ks
    if e.type == TYPE_STRING:
        return _string(e.body)
    if e.type == TYPE_HASH:
        return _hash(ks, db, key, e.body, cfg)
    if e.type == TYPE_LIST:
        return _list(ks, db, e.body, cfg)
    if e.type == TYPE_SET:
        return _set(ks, db, e.body, cfg)
    if e.type == TYPE_ZSET:
        return _zset(ks, db, e.body, cfg)
    return "stream"
