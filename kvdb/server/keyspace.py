"""The server's data model on the kvdb key space: typed keys in numbered logical
databases, expiry, and ordered hash fields. The layout is documented in
docs/format/server-keys.md; in short (d is the database number as one byte):

    \\x01 d k <key>                    -> type(1) expire_at_ms(u64 BE, 0 = none) body
        string body: the value bytes;  hash body: field count (u64 BE)
    \\x01 d h <len(key) u32 BE> <key> <field>   -> field value
    \\x01 d x <expire_at_ms u64 BE> <key>      -> b""   (expiry index, swept in time order)
    \\x01 \\xff version                 -> b"kvdb-server-keys 1"

Every key of the server starts with 0x01; keys starting with 0x00 belong to the
document layer.

All reads and writes go through a Store: the database itself until the first
write of a command group, then one kvdb transaction for the rest of the group,
so a group (one or many clients' pipelined commands, or a MULTI/EXEC) commits
as one atomic log record.
"""
import struct
import time

import kvdb

__all__ = ["Store", "Keyspace", "WrongType", "TYPE_STRING", "TYPE_HASH", "FORMAT_VERSION"]

NS = b"\x01"
TYPE_STRING = b"s"
TYPE_HASH = b"h"
TYPE_NAMES = {TYPE_STRING: "string", TYPE_HASH: "hash"}
VERSION_KEY = NS + b"\xffversion"
FORMAT_VERSION = b"kvdb-server-keys 1"

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
HEADER = 9  # type byte + expire_at
NO_EXPIRY = bytes(8)
_TYPE_STRING_BYTE = TYPE_STRING[0]
_DB = [bytes((d,)) for d in range(256)]


class WrongType(Exception):
    """A command met a key holding another type."""


def now_ms():
    return int(time.time() * 1000)


def meta_key(db, key):
    return NS + bytes((db,)) + b"k" + key


def meta_prefix(db):
    return NS + bytes((db,)) + b"k"


def field_prefix(db, key):
    return NS + bytes((db,)) + b"h" + _U32.pack(len(key)) + key


def expiry_key(db, at, key):
    return NS + bytes((db,)) + b"x" + _U64.pack(at) + key


def expiry_prefix(db):
    return NS + bytes((db,)) + b"x"


class Entry:
    """A key's meta record, decoded."""
    __slots__ = ("type", "expire_at", "body")

    def __init__(self, type_, expire_at, body):
        self.type = type_            # TYPE_STRING or TYPE_HASH
        self.expire_at = expire_at   # absolute ms, 0 when the key does not expire
        self.body = body             # string: value; hash: field count (int)

    def encode(self):
        if self.type == TYPE_HASH:
            return TYPE_HASH + _U64.pack(self.expire_at) + _U64.pack(self.body)
        return self.type + _U64.pack(self.expire_at) + self.body


def decode_entry(raw):
    if raw is None:
        return None
    type_ = raw[:1]
    expire_at = _U64.unpack_from(raw, 1)[0]
    if type_ == TYPE_HASH:
        return Entry(type_, expire_at, _U64.unpack_from(raw, HEADER)[0])
    return Entry(type_, expire_at, raw[HEADER:])


class Store:
    """Reads and writes of one command group (see the module docstring)."""

    def __init__(self, db):
        self.db = db                 # the kvdb.Database
        self.tx = None               # the group's transaction, from its first write

    def get(self, key):
        return (self.tx or self.db).get(key)

    def put(self, key, value):
        if self.tx is None:
            self.tx = self.db.transaction()
        self.tx.put(key, value)

    def delete(self, key):
        if self.tx is None:
            self.tx = self.db.transaction()
        self.tx.delete(key)

    def scan(self, start=None, end=None, prefix=None, reverse=False):
        return (self.tx or self.db).scan(start=start, end=end, prefix=prefix, reverse=reverse)

    def writer(self):
        """The transaction, begun if needed (for layers that write through it, like documents)."""
        if self.tx is None:
            self.tx = self.db.transaction()
        return self.tx

    def commit(self):
        tx, self.tx = self.tx, None
        if tx is not None:
            tx.commit()

    def rollback(self):
        tx, self.tx = self.tx, None
        if tx is not None:
            tx.rollback()


class Keyspace:
    """Typed operations over a Store. `on_change(db, key, event)` is called for every
    change to a key (WATCH invalidation, keyspace notifications); counters of keys
    and expiring keys per database are kept for DBSIZE and INFO."""

    def __init__(self, db, databases, on_change):
        self.db = db                         # kvdb.Database
        self.databases = databases           # number of logical databases
        self.on_change = on_change           # callable(db, key, event)
        self.store = Store(db)               # replaced per command group by the server
        self.keys = [0] * databases          # live + not-yet-swept keys per database
        self.expires = [0] * databases       # of those, keys with an expiry
        self.expired_total = 0               # keys removed because they expired

    # -- opening -----------------------------------------------------------

    def load(self):
        """Checks the layout version and counts keys (O(keys), once at start)."""
        version = self.db.get(VERSION_KEY)
        if version is None:
            self.db.put(VERSION_KEY, FORMAT_VERSION)
        elif version != FORMAT_VERSION:
            raise kvdb.CorruptionError(f"server key layout is {version!r}, this server reads {FORMAT_VERSION!r}")
        for d in range(self.databases):
            with self.db.scan(prefix=meta_prefix(d)) as it:
                self.keys[d] = sum(1 for _ in it)
            with self.db.scan(prefix=expiry_prefix(d)) as it:
                self.expires[d] = sum(1 for _ in it)

    # -- entries -----------------------------------------------------------

    def entry(self, db, key, now=None):
        """The live entry of key, or None (absent or expired)."""
        e = decode_entry(self.store.get(meta_key(db, key)))
        if e is not None and e.expire_at and e.expire_at <= (now or now_ms()):
            return None
        return e

    def typed(self, db, key, type_):
        e = self.entry(db, key)
        if e is not None and e.type != type_:
            raise WrongType()
        return e

    def put_entry(self, db, key, e, old=None):
        """Writes e as key's meta record; `old` is the record it replaces (raw lookup)."""
        if old is not None and old.expire_at != e.expire_at and old.expire_at:
            self.store.delete(expiry_key(db, old.expire_at, key))
            self.expires[db] -= 1
        if e.expire_at and (old is None or old.expire_at != e.expire_at):
            self.store.put(expiry_key(db, e.expire_at, key), b"")
            self.expires[db] += 1
        if old is None:
            self.keys[db] += 1
        self.store.put(meta_key(db, key), e.encode())

    def raw(self, db, key):
        """The meta record even if expired (writers replace expired keys through it)."""
        return decode_entry(self.store.get(meta_key(db, key)))

    def prepare_write(self, db, key, type_=None):
        """For a writer: (live entry or None, raw record to replace or None). An expired
        key is deleted first; a live key of another type raises WrongType."""
        old = self.raw(db, key)
        if old is not None and old.expire_at and old.expire_at <= now_ms():
            self.remove(db, key, old, event="expired")
            self.expired_total += 1
            old = None
        if old is not None and type_ is not None and old.type != type_:
            raise WrongType()
        return old

    def remove(self, db, key, e=None, event="del"):
        """Deletes key and everything it owns; returns whether it existed (live or not)."""
        if e is None:
            e = self.raw(db, key)
            if e is None:
                return False
        if e.type == TYPE_HASH:
            with self.store.scan(prefix=field_prefix(db, key)) as it:
                fields = [k for k, _ in it]
            for k in fields:
                self.store.delete(k)
        if e.expire_at:
            self.store.delete(expiry_key(db, e.expire_at, key))
            self.expires[db] -= 1
        self.store.delete(meta_key(db, key))
        self.keys[db] -= 1
        self.on_change(db, key, event)
        return True

    def delete(self, db, key):
        """DEL semantics: True if a live key was deleted."""
        e = self.raw(db, key)
        if e is None:
            return False
        live = not (e.expire_at and e.expire_at <= now_ms())
        self.remove(db, key, e, event="del" if live else "expired")
        return live

    def set_expire(self, db, key, e, at):
        """Sets (at > 0) or clears (at == 0) the expiry of the live entry e."""
        new = Entry(e.type, at, e.body)
        self.put_entry(db, key, new, old=e)
        return new

    # -- strings -----------------------------------------------------------

    def get_string(self, db, key):
        raw = self.store.get(NS + _DB[db] + b"k" + key)  # meta_key, inlined: GET is the hottest path
        if raw is None:
            return None
        if raw[1:HEADER] != NO_EXPIRY and _U64.unpack_from(raw, 1)[0] <= now_ms():
            return None
        if raw[0] != _TYPE_STRING_BYTE:
            raise WrongType()
        return raw[HEADER:]

    def set_string(self, db, key, value, expire_at=0, keep_ttl=False, event="set"):
        mk = NS + _DB[db] + b"k" + key
        raw = self.store.get(mk)
        if raw is None or (raw[0] == _TYPE_STRING_BYTE and raw[1:HEADER] == NO_EXPIRY):
            # The common case, a new key or a string without expiry: no index entry to
            # move, no fields to delete (the general path below handles the rest).
            if expire_at:
                self.store.put(expiry_key(db, expire_at, key), b"")
                self.expires[db] += 1
            self.store.put(mk, TYPE_STRING + _U64.pack(expire_at) + value)
            if raw is None:
                self.keys[db] += 1
            if event:
                self.on_change(db, key, event)
            return
        old = self.prepare_write(db, key)
        if old is not None and old.type == TYPE_HASH:
            self.remove(db, key, old, event=None)
            old = None
        if keep_ttl and old is not None:
            expire_at = old.expire_at
        self.put_entry(db, key, Entry(TYPE_STRING, expire_at, value), old=old)
        if event:
            self.on_change(db, key, event)

    # -- hashes ------------------------------------------------------------

    def hash_get(self, db, key, field):
        e = self.typed(db, key, TYPE_HASH)
        if e is None:
            return None
        return self.store.get(field_prefix(db, key) + field)

    def hash_set(self, db, key, pairs, only_new=False):
        """Sets fields; returns how many were new. only_new: HSETNX (skip existing)."""
        old = self.prepare_write(db, key, TYPE_HASH)
        prefix = field_prefix(db, key)
        added = 0
        for field, value in pairs:
            k = prefix + field
            exists = old is not None and self.store.get(k) is not None
            if exists and only_new:
                continue
            if not exists:
                added += 1
            self.store.put(k, value)
        if old is None:
            if added == 0:
                return 0
            self.put_entry(db, key, Entry(TYPE_HASH, 0, added))
        elif added:
            self.store.put(meta_key(db, key), Entry(TYPE_HASH, old.expire_at, old.body + added).encode())
        return added

    def hash_delete(self, db, key, fields):
        e = self.typed(db, key, TYPE_HASH)
        if e is None:
            return 0
        prefix = field_prefix(db, key)
        removed = 0
        for field in set(fields):
            k = prefix + field
            if self.store.get(k) is not None:
                self.store.delete(k)
                removed += 1
        if removed:
            if removed >= e.body:
                self.remove(db, key, e, event=None)
            else:
                self.store.put(meta_key(db, key), Entry(TYPE_HASH, e.expire_at, e.body - removed).encode())
        return removed

    def hash_items(self, db, key, after=None, count=None):
        """(field, value) in field order, starting after `after`; up to count."""
        prefix = field_prefix(db, key)
        start = prefix + after + b"\x00" if after is not None else None
        out = []
        with self.store.scan(start=start, prefix=prefix) as it:
            for k, v in it:
                out.append((k[len(prefix):], v))
                if count is not None and len(out) >= count:
                    break
        return out

    # -- iteration -----------------------------------------------------------

    def scan_keys(self, db, after=None, prefix=b"", limit=None):
        """[(key, entry)] of keys in key order after `after` (entries may be expired); up
        to limit."""
        base = meta_prefix(db)
        start = base + after + b"\x00" if after is not None else None
        out = []
        with self.store.scan(start=start, prefix=base + prefix) as it:
            for k, raw in it:
                out.append((k[len(base):], decode_entry(raw)))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def due_expiries(self, db, now, limit):
        """[(expire_at, key)] of db whose expiry is at or before now, oldest first, up to limit."""
        prefix = expiry_prefix(db)
        out = []
        with self.store.scan(start=prefix, end=prefix + _U64.pack(now + 1)) as it:
            for k, _ in it:
                out.append((_U64.unpack_from(k, len(prefix))[0], k[len(prefix) + 8:]))
                if len(out) >= limit:
                    break
        return out

    def drop_expiry_entry(self, db, at, key):
        self.store.delete(expiry_key(db, at, key))
        self.expires[db] -= 1

    def flush(self, db):
        """Deletes every key of db (FLUSHDB); range deletes in one transaction."""
        for kind in (b"k", b"h", b"x"):
            with self.store.scan(prefix=NS + bytes((db,)) + kind) as it:
                keys = [k for k, _ in it]
            for k in keys:
                self.store.delete(k)
        self.keys[db] = 0
        self.expires[db] = 0
