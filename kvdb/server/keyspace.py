"""The server's data model on the kvdb key space: typed keys in numbered logical
databases, expiry, and ordered hash fields. The layout is documented in
docs/format/server-keys.md; in short (d is the database number as one byte):

    \\x01 d k <key>                    -> type(1) expire_at_ms(u64 BE, 0 = none) body
        string body: the value bytes;  hash body: field count (u64 BE)
    \\x01 d h <len(key) u32 BE> <key> <field>   -> field value
    \\x01 d x <expire_at_ms u64 BE> <key>      -> b""   (expiry index, swept in time order)
    \\x01 d <kind> <version u64 BE> <rest>   -> a collection's sub-record (lists, sets,
                                           sorted sets, streams; kind per type below)
    \\x01 d g <version u64 BE>           -> type(1)  (a deleted collection's sub-records
                                           still to be removed by the collector)
    \\x01 \\xff version                 -> b"kvdb-server-keys 3"
    \\x01 \\xff vclock                  -> u64 BE, versions up to this one are reserved
    \\x01 \\xff \\x00 counts d           -> keys u64 BE, expires u64 BE: the database's counters
    \\x01 \\xff \\x00 garbage            -> u64 BE: garbage records not yet collected

Key names too long for these records (a name's meta key, expiry entry or hash
field prefix would pass the engine's key limit) are addressed by their SHA-256
digest instead, with the full name kept in the record's value, so any name up to
Redis's 512 MB works (docs/format/server-keys.md (Long key names)):

    \\x01 d K sha256(key)              -> len(key) u32 BE, key, then the meta value
    \\x01 d y <expire_at> sha256(key)  -> key
    \\x01 d h ffffffff sha256(key) <field> -> field value

Every key of the server starts with 0x01; keys starting with 0x00 belong to the
document layer.

Collections (list, set, sorted set, stream) keep a *version* in their meta record
and address their sub-records by (kind, version), not by key name: RENAME moves
the meta record alone, DEL deletes the meta record and leaves a garbage record
that the background collector clears in bounded steps (Kvrocks' lazy deletion),
so no command touches a whole collection unless its reply needs it. Versions are
unique in the file: they grow monotonically, and `vclock` reserves them in
blocks in the same transaction that first uses one, so a restart (or a clock
that went back) never reissues one.

All reads and writes go through a Store: the database itself until the first
write of a command group, then one kvdb transaction for the rest of the group,
so a group (one or many clients' pipelined commands, or a MULTI/EXEC) commits
as one atomic log record.
"""
import bisect
import hashlib
import struct
import time

import kvdb

__all__ = ["Store", "Keyspace", "WrongType", "Coll", "TYPE_STRING", "TYPE_HASH", "TYPE_LIST", "TYPE_SET", "TYPE_ZSET",
           "TYPE_STREAM", "FORMAT_VERSION", "MAX_NAME", "check_name"]

NS = b"\x01"
TYPE_STRING = b"s"
TYPE_HASH = b"h"
TYPE_LIST = b"L"
TYPE_SET = b"S"
TYPE_ZSET = b"Z"
TYPE_STREAM = b"X"
TYPE_NAMES = {TYPE_STRING: "string", TYPE_HASH: "hash", TYPE_LIST: "list", TYPE_SET: "set", TYPE_ZSET: "zset",
              TYPE_STREAM: "stream"}
# The sub-record kinds each collection type owns (docs/format/server-keys.md): what DEL,
# the garbage collector and FLUSHDB clear for a version.
COLLECTION_KINDS = {
    TYPE_LIST: (b"l",),                      # l: element by position
    TYPE_SET: (b"s",),                       # s: member
    TYPE_ZSET: (b"z", b"r", b"n"),           # z: member -> score; r: (score, member); n: rank-index node
    TYPE_STREAM: (b"t", b"c", b"p", b"o"),   # t: entry; c: group; p: pending entry; o: consumer
}
COLLECTION_TYPES = frozenset(COLLECTION_KINDS)
VERSION_KEY = NS + b"\xffversion"
VCLOCK_KEY = NS + b"\xffvclock"
# Server-wide records after 0x01 0xff 0x00 (as FUNCTION libraries'): 0x01 0xff then a record kind
# would be a record of logical database 255.
COUNTS_KEY = NS + b"\xff\x00counts"      # + db: that database's keys and expiring keys (C6)
GARBAGE_COUNT_KEY = NS + b"\xff\x00garbage"   # garbage records not yet collected (C6)
SERVER_WIDE = NS + b"\xff\x00"           # the first bytes of the records above
FORMAT_VERSION = b"kvdb-server-keys 3"
# Read as they are, then upgraded in place: version 2 only added record kinds, version 3 the
# count records, which the first start of this server writes from a count of the records.
OLD_FORMAT_VERSIONS = (b"kvdb-server-keys 1", b"kvdb-server-keys 2")
VCLOCK_BLOCK = 1 << 20   # versions reserved per vclock write
# The longest hash field, collection member or other name kept in a record's key: the
# engine's key limit (kvdb.MAX_KEY_SIZE) less the longest record prefix around it.
MAX_NAME = kvdb.MAX_KEY_SIZE - 64
# Key names may be as long as Redis allows (512 MB, its proto-max-bulk-len): names past
# the limits below are kept through their digest (LONG records, see the docstring).
LONG_META = kvdb.MAX_KEY_SIZE - 3     # longest name whose meta key is 0x01 db "k" name
LONG_EXPIRY = kvdb.MAX_KEY_SIZE - 11  # longest whose expiry entry is 0x01 db "x" at name
LONG_FIELDS = MAX_NAME                # longest whose hash fields are under 0x01 db "h" len name
LONG_HASH_LEN = b"\xff\xff\xff\xff"   # the key-length of a long-named hash's field prefix
_LONG_FIELD_PREFIX = 3 + 4 + 32       # 0x01 db "h" ffffffff sha256(key)

_U64 = struct.Struct(">Q")
_U64X2 = struct.Struct(">QQ")
_U32 = struct.Struct(">I")
HEADER = 9  # type byte + expire_at
NO_EXPIRY = bytes(8)
_TYPE_STRING_BYTE = TYPE_STRING[0]
_DB = [bytes((d,)) for d in range(256)]
EAGER_DELETE = 64        # a collection of up to this many elements is cleared by DEL itself


_META_BYTE = ord("k")     # a meta record's kind, as a byte value


def _op_key(op):
    return op[0]


def _take(it, n):
    out = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out


def successor(k):
    """The least engine key greater than k (a scan's start to continue after k): k + 0x00, or,
    for a key of the engine's greatest length, k with its last byte below 0xff raised by one."""
    if len(k) < kvdb.MAX_KEY_SIZE:
        return k + b"\x00"
    k = k[:kvdb.MAX_KEY_SIZE].rstrip(b"\xff")   # keys past the limit (a forged cursor) sort after k[:limit]
    return k[:-1] + bytes((k[-1] + 1,)) if k else None


class WrongType(Exception):
    """A command met a key holding another type."""


class NameTooLong(Exception):
    """A key, field or member longer than MAX_NAME (the reply names the limit)."""


def check_name(name, what="key"):
    """Raises NameTooLong for a name kept in a record key (a hash field, a member, ...) that
    the engine cannot hold. Key names themselves may be longer (see LONG_META)."""
    if len(name) > MAX_NAME:
        raise NameTooLong(f"ERR {what} is {len(name)} bytes, kvdb's server stores {what}s up to {MAX_NAME} bytes")


def digest(key):
    """What addresses the records of a key name too long to be in them (LONG_*)."""
    return hashlib.sha256(key).digest()


def now_ms():
    return int(time.time() * 1000)


def meta_key(db, key):
    if len(key) > LONG_META:
        return NS + _DB[db] + b"K" + digest(key)
    return NS + _DB[db] + b"k" + key


def long_meta_prefix(db):
    return NS + _DB[db] + b"K"


def meta_prefix(db):
    return NS + bytes((db,)) + b"k"


def field_prefix(db, key):
    if len(key) > LONG_FIELDS:
        return NS + _DB[db] + b"h" + LONG_HASH_LEN + digest(key)
    return NS + _DB[db] + b"h" + _U32.pack(len(key)) + key


def field_room(key):
    """The longest field a hash named key can have (its field records hold the key name, or
    its digest, and the field: together within the engine's key limit)."""
    return kvdb.MAX_KEY_SIZE - (_LONG_FIELD_PREFIX if len(key) > LONG_FIELDS else 7 + len(key))


def expiry_key(db, at, key):
    if len(key) > LONG_EXPIRY:
        return NS + _DB[db] + b"y" + _U64.pack(at) + digest(key)
    return NS + _DB[db] + b"x" + _U64.pack(at) + key


def long_expiry_prefix(db):
    return NS + _DB[db] + b"y"


def expiry_prefix(db):
    return NS + bytes((db,)) + b"x"


def sub_prefix(db, kind, version):
    """The prefix of a collection's sub-records of one kind: 0x01 db kind version."""
    return NS + _DB[db] + kind + _U64.pack(version)


def garbage_key(db, version):
    return NS + _DB[db] + b"g" + _U64.pack(version)


class Coll:
    """The body of a collection's meta record: version(8) count(8) extra."""
    __slots__ = ("version", "count", "extra")

    def __init__(self, version, count=0, extra=b""):
        self.version = version       # names its sub-records (sub_prefix); unique in the file
        self.count = count           # elements (list items, members, stream entries)
        self.extra = extra           # type-specific bytes (list: head and tail positions, ...)

    def encode(self):
        return _U64X2.pack(self.version, self.count) + self.extra

    @classmethod
    def decode(cls, raw, offset):
        version, count = _U64X2.unpack_from(raw, offset)
        return cls(version, count, bytes(raw[offset + 16:]))

    def prefix(self, db, kind):
        return sub_prefix(db, kind, self.version)


class Entry:
    """A key's meta record, decoded."""
    __slots__ = ("type", "expire_at", "body", "is_new")

    def __init__(self, type_, expire_at, body):
        self.is_new = False          # a collection made by collection_for_write, not yet saved
        self.type = type_            # one of TYPE_NAMES
        self.expire_at = expire_at   # absolute ms, 0 when the key does not expire
        self.body = body             # string: value; hash: field count (int); collection: Coll

    def encode(self):
        if self.type == TYPE_HASH:
            return TYPE_HASH + _U64.pack(self.expire_at) + _U64.pack(self.body)
        if self.type in COLLECTION_TYPES:
            return self.type + _U64.pack(self.expire_at) + self.body.encode()
        return self.type + _U64.pack(self.expire_at) + self.body


def _long_value(raw, key):
    """The meta value in a long name's record, None when absent or the record is another name's."""
    if raw is None:
        return None
    n = _U32.unpack_from(raw)[0]
    return raw[4 + n:] if raw[4:4 + n] == key else None


def _field_error(length, key):
    return (f"ERR hash field is {length} bytes, kvdb's server stores hash fields up to "
            f"{min(field_room(key), MAX_NAME)} bytes in a hash whose name is {len(key)} bytes")


def decode_entry(raw):
    if raw is None:
        return None
    type_ = raw[:1]
    expire_at = _U64.unpack_from(raw, 1)[0]
    if type_ == TYPE_HASH:
        return Entry(type_, expire_at, _U64.unpack_from(raw, HEADER)[0])
    if type_ in COLLECTION_TYPES:
        return Entry(type_, expire_at, Coll.decode(raw, HEADER))
    return Entry(type_, expire_at, raw[HEADER:])


class Store:
    """Reads and writes of one command group (see the module docstring)."""

    def __init__(self, db):
        self.db = db                 # the kvdb.Database
        self.tx = None               # the group's transaction, from its first write
        self.caches = {}             # layers' copies of records they wrote or read (zset rank nodes),
                                     # trusted while the server is the only writer: emptied when a
                                     # group's writes are lost (rollback, failed commit)
        self.counter = None          # the Keyspace whose count records each commit carries (C6)

    def reader(self):
        """What reads go through: the group's transaction once it began, else the database.
        (Not `tx or db`: a transaction is a mapping, so its truth is whether it is empty, which
        costs a scan.)"""
        return self.tx if self.tx is not None else self.db

    def get(self, key):
        return self.reader().get(key)

    def put(self, key, value):
        if self.tx is None:
            self.tx = self.db.transaction()
        self.tx.put(key, value)

    def delete(self, key):
        # A blind delete: the server is the database's only writer and runs its command
        # groups one at a time, so a read that only feeds the conflict check is wasted.
        if self.tx is None:
            self.tx = self.db.transaction()
        self.tx.discard(key)

    def scan(self, start=None, end=None, prefix=None, reverse=False):
        return self.reader().scan(start=start, end=end, prefix=prefix, reverse=reverse)

    def writer(self):
        """The transaction, begun if needed (for layers that write through it, like documents)."""
        if self.tx is None:
            self.tx = self.db.transaction()
        return self.tx

    def commit(self, defer_sync=False):
        """Commits the group's transaction. With `defer_sync` (sync="full"), returns before the
        fsync with the token that Database._wait_durable waits on (None if nothing to wait for)."""
        tx, self.tx = self.tx, None
        token = None
        if tx is not None:
            counter = self.counter
            counts = counter.write_counts(tx) if counter is not None else None
            try:
                if defer_sync:
                    token = tx._commit_deferring_sync()
                else:
                    tx.commit()
            except BaseException:
                self.caches.clear()
                if counter is not None:
                    counter.counts_lost()
                raise
            if counts is not None:
                counter.counts_saved(counts)
        return token

    def rollback(self):
        tx, self.tx = self.tx, None
        self.caches.clear()
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
        self.store = Store(db)               # every read and write of the command groups
        self.store.counter = self
        self.keys = [0] * databases          # live + not-yet-swept keys per database
        self.expires = [0] * databases       # of those, keys with an expiry
        self.expired_total = 0               # keys removed because they expired
        self.last_version = 0                # the last collection version issued
        self.vclock = 0                      # versions up to this are reserved in VCLOCK_KEY
        self.garbage = 0                     # garbage records not yet collected (INFO, the cron)
        self.saved = ([0] * databases, [0] * databases, 0)   # (keys, expires, garbage) as the count
                                                             # records of the last commit hold them

    # -- opening -----------------------------------------------------------

    def load(self):
        """Checks the layout version and reads the counters from their records (C6); a database
        of an older layout is counted once (O(keys)) and upgraded in one transaction."""
        version = self.db.get(VERSION_KEY)
        if version is not None and version != FORMAT_VERSION and version not in OLD_FORMAT_VERSIONS:
            raise kvdb.CorruptionError(f"server key layout is {version!r}, this server reads {FORMAT_VERSION!r}")
        raw = self.db.get(VCLOCK_KEY)
        if raw is not None:
            if len(raw) != 8:
                raise kvdb.CorruptionError(f"server key layout: vclock record is {len(raw)} bytes, expected 8")
            self.vclock = self.last_version = _U64.unpack(raw)[0]
        if version == FORMAT_VERSION:
            self.read_counts()
            return
        self.count_records()
        with self.db.transaction() as tx:
            tx.put(VERSION_KEY, FORMAT_VERSION)
            counts = self.write_counts(tx, everything=True)
        self.counts_saved(counts)

    def count_records(self):
        """The counters from a scan of the records (an older layout, `kvdb check`)."""
        self.keys = [0] * self.databases
        self.expires = [0] * self.databases
        self.garbage = 0
        for d in range(256):
            with self.db.scan(prefix=NS + _DB[d] + b"g") as it:
                self.garbage += sum(1 for _ in it)
        for d in range(self.databases):
            for prefix in (meta_prefix(d), long_meta_prefix(d)):
                with self.db.scan(prefix=prefix) as it:
                    self.keys[d] += sum(1 for _ in it)
            for prefix in (expiry_prefix(d), long_expiry_prefix(d)):
                with self.db.scan(prefix=prefix) as it:
                    self.expires[d] += sum(1 for _ in it)

    def read_counts(self):
        self.keys = [0] * self.databases
        self.expires = [0] * self.databases
        self.garbage = 0
        with self.db.scan(prefix=COUNTS_KEY) as it:
            for key, value in it:
                self.follow_count(key, value)
        raw = self.db.get(GARBAGE_COUNT_KEY)
        if raw is not None:
            self.follow_count(GARBAGE_COUNT_KEY, raw)
        self.saved = (list(self.keys), list(self.expires), self.garbage)

    def follow_count(self, key, value):
        """Takes one count record's value into the counters (a load, or a replica applying it)."""
        if key == GARBAGE_COUNT_KEY:
            if value is None or len(value) != 8:
                raise kvdb.CorruptionError(f"server key layout: garbage count record is not 8 bytes: {value!r}")
            self.garbage = _U64.unpack(value)[0]
        elif len(key) == len(COUNTS_KEY) + 1 and key.startswith(COUNTS_KEY):
            d = key[-1]
            if value is None:
                keys = expires = 0
            elif len(value) != 16:
                raise kvdb.CorruptionError(f"server key layout: count record of database {d} is {len(value)} "
                                           "bytes, expected 16")
            else:
                keys, expires = _U64X2.unpack(value)
            if d < self.databases:
                self.keys[d], self.expires[d] = keys, expires

    def write_counts(self, tx, everything=False):
        """Before a commit: the count records of the counters that changed since the last commit
        (all non-zero ones with `everything`) into tx, so they commit with the records they
        count (C6). Returns the counters to remember once the commit is done, or None."""
        keys, expires, garbage = self.saved
        if not everything and self.keys == keys and self.expires == expires and self.garbage == garbage:
            return None
        for d in range(self.databases):
            k, e = self.keys[d], self.expires[d]
            if (k, e) != ((0, 0) if everything else (keys[d], expires[d])):
                if k < 0 or e < 0:
                    raise kvdb.CorruptionError(f"server key counters of database {d} went negative ({k}, {e})")
                tx.put(COUNTS_KEY + _DB[d], _U64X2.pack(k, e))
        if self.garbage != (0 if everything else garbage):
            tx.put(GARBAGE_COUNT_KEY, _U64.pack(max(self.garbage, 0)))
        return list(self.keys), list(self.expires), self.garbage

    def counts_saved(self, counts):
        self.saved = counts

    def counts_lost(self):
        """A commit failed: the counters go back to what the database holds."""
        keys, expires, garbage = self.saved
        self.keys, self.expires, self.garbage = list(keys), list(expires), garbage

    def reload(self):
        """Reads the counters again (a replica promoted to primary)."""
        self.load()

    # -- a replica applying its primary's log ---------------------------------------------

    def follow_ops(self, ops, notify):
        """After a replica committed ops from its primary's log (sorted by key): the counters
        and the version clock take the values of the server-wide records among them, and, with
        `notify`, watchers hear of every meta record written."""
        if notify:
            for key, _, _ in ops:
                if len(key) > 3 and key[0] == 1 and key[2] == _META_BYTE and key[1] < self.databases:
                    self.on_change(key[1], key[3:], None)
        i = bisect.bisect_left(ops, VCLOCK_KEY, key=_op_key)
        if i < len(ops) and ops[i][0] == VCLOCK_KEY and ops[i][1] is not None and len(ops[i][1]) == 8:
            self.vclock = self.last_version = _U64.unpack(ops[i][1])[0]
        i = bisect.bisect_left(ops, SERVER_WIDE, key=_op_key)
        while i < len(ops) and ops[i][0].startswith(SERVER_WIDE):
            key, value, _ = ops[i]
            if key == GARBAGE_COUNT_KEY or key.startswith(COUNTS_KEY):
                self.follow_count(key, value)
            i += 1
        self.saved = (list(self.keys), list(self.expires), self.garbage)

    # -- meta records and expiry entries, of short and long names -------------------------

    def get_meta(self, db, key):
        """key's meta value (type, expire_at, body), even if expired; None when absent."""
        if len(key) <= LONG_META:
            return self.store.get(NS + _DB[db] + b"k" + key)
        return _long_value(self.store.get(meta_key(db, key)), key)

    def put_meta(self, db, key, value):
        """Writes key's meta value (a long name's record keeps the name before it)."""
        if len(key) <= LONG_META:
            self.store.put(NS + _DB[db] + b"k" + key, value)
            return
        mk = meta_key(db, key)
        held = self.store.get(mk)
        if held is not None and _long_value(held, key) is None:
            raise kvdb.CorruptionError(f"server key layout: two key names share the digest {mk[3:].hex()}")
        self.store.put(mk, _U32.pack(len(key)) + key + value)

    def delete_meta(self, db, key):
        self.store.delete(meta_key(db, key))

    def put_expiry(self, db, at, key):
        """Adds key's expiry-index entry (a long name's entry holds the name)."""
        self.store.put(expiry_key(db, at, key), b"" if len(key) <= LONG_EXPIRY else key)

    def delete_expiry(self, db, at, key):
        self.store.delete(expiry_key(db, at, key))

    # -- entries -----------------------------------------------------------

    def entry(self, db, key, now=None):
        """The live entry of key, or None (absent or expired)."""
        e = decode_entry(self.get_meta(db, key))
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
        self.put_meta(db, key, e.encode())
        if old is not None and old.expire_at != e.expire_at and old.expire_at:
            self.delete_expiry(db, old.expire_at, key)
            self.expires[db] -= 1
        if e.expire_at and (old is None or old.expire_at != e.expire_at):
            self.put_expiry(db, e.expire_at, key)
            self.expires[db] += 1
        if old is None:
            self.keys[db] += 1

    def raw(self, db, key):
        """The meta record even if expired (writers replace expired keys through it)."""
        if len(key) <= LONG_META:   # get_meta, inlined: every writer comes through here
            return decode_entry(self.store.get(NS + _DB[db] + b"k" + key))
        return decode_entry(self.get_meta(db, key))

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

    # -- collections ---------------------------------------------------------

    def new_version(self):
        """A version no collection in the file has had: above every one issued before,
        reserved durably (in the current transaction) before it is used."""
        v = max(self.last_version + 1, time.time_ns() // 1000)
        if v > self.vclock:
            self.vclock = v + VCLOCK_BLOCK
            self.store.put(VCLOCK_KEY, _U64.pack(self.vclock))
        self.last_version = v
        return v

    def collection(self, db, key, type_):
        """(live entry of key's collection or None, its Coll or None); WrongType for
        another type. For readers."""
        e = self.typed(db, key, type_)
        return (None, None) if e is None else (e, e.body)

    def collection_for_write(self, db, key, type_, create=True, extra=b""):
        """For writers: the live entry of key (a collection of type_), or a new empty one
        (count 0, not yet written) when absent and `create`; None when absent and not
        `create`. An expired key is removed first. Write the entry back with save()."""
        old = self.prepare_write(db, key, type_)
        if old is not None:
            return old
        if not create:
            return None
        e = Entry(type_, 0, Coll(self.new_version(), 0, extra))
        e.is_new = True
        return e

    def save(self, db, key, e, keep_empty=False):
        """Writes a collection's meta record after a change of count or extra. A
        collection left empty is deleted (as Redis deletes empty lists, sets and sorted
        sets) unless keep_empty (streams); a new, still empty one is not written."""
        new = e.is_new
        if e.body.count == 0 and not keep_empty:
            if not new:
                self.remove(db, key, e, event=None)
            return
        if new:
            e.is_new = False
            self.keys[db] += 1
        self.put_meta(db, key, e.encode())

    def clear_subrecords(self, db, type_, version, budget):
        """Deletes up to `budget` sub-records of a collection version; returns how many
        it deleted (fewer than budget: none are left)."""
        done = 0
        for kind in COLLECTION_KINDS[type_]:
            prefix = sub_prefix(db, kind, version)
            with self.store.scan(prefix=prefix) as it:
                keys = []
                for k, _ in it:
                    keys.append(k)
                    if done + len(keys) >= budget:
                        break
            for k in keys:
                self.store.delete(k)
            done += len(keys)
            if done >= budget:
                return done
        return done

    def collect_garbage(self, budget=1000):
        """Clears deleted collections' sub-records, up to `budget` records (runs in a
        command group, from the cron). Returns how many records it deleted."""
        done = 0
        for d in range(self.databases):
            with self.store.scan(prefix=NS + _DB[d] + b"g") as it:
                batch = [(k, v) for k, v in _take(it, 16)]
            for gk, type_ in batch:
                version = _U64.unpack_from(gk, 3)[0]
                if type_ not in COLLECTION_KINDS:
                    raise kvdb.CorruptionError(f"server key layout: garbage record {gk!r} names type {type_!r}")
                allowed = budget - done
                n = self.clear_subrecords(d, type_, version, allowed)
                done += n
                if n < allowed:  # nothing of that version is left
                    self.store.delete(gk)
                    self.garbage -= 1
                if done >= budget:
                    return done
        return done

    def remove(self, db, key, e=None, event="del"):
        """Deletes key and everything it owns; returns whether it existed (live or not).
        A collection's sub-records go to the garbage collector unless it has few."""
        if e is None:
            e = self.raw(db, key)
            if e is None:
                return False
        if e.type in COLLECTION_TYPES:
            coll = e.body
            if coll.count <= EAGER_DELETE and self.clear_subrecords(db, e.type, coll.version, EAGER_DELETE * 4) \
                    < EAGER_DELETE * 4:
                pass  # all cleared now
            else:
                self.store.put(garbage_key(db, coll.version), e.type)
                self.garbage += 1
        elif e.type == TYPE_HASH:
            with self.store.scan(prefix=field_prefix(db, key)) as it:
                fields = [k for k, _ in it]
            for k in fields:
                self.store.delete(k)
        if e.expire_at:
            self.delete_expiry(db, e.expire_at, key)
            self.expires[db] -= 1
        self.delete_meta(db, key)
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

    # -- moves and copies of whole keys (RENAME, COPY, MOVE) ---------------------------------

    def copy_subrecords(self, src_db, type_, src_version, dst_db, dst_version):
        """Copies every sub-record of a collection version, byte for byte, under another
        database and version (C5: nothing in them names the key, db or version), streaming
        one scan per kind (a scan reads the state of when it was opened, so the writes behind
        it do not disturb it; and opening a scan on a transaction costs its buffered writes,
        so it is opened once, not per batch). Returns how many it copied."""
        done = 0
        for kind in COLLECTION_KINDS[type_]:
            src = sub_prefix(src_db, kind, src_version)
            dst = sub_prefix(dst_db, kind, dst_version)
            cut = len(src)
            put = self.store.put
            with self.store.scan(prefix=src) as it:
                for k, v in it:
                    put(dst + k[cut:], v)
                    done += 1
        return done

    def copy_key(self, src_db, src, e, dst_db, dst, expire_at=None):
        """Writes a copy of key src (its live entry e) as dst, which must not exist (the caller
        removes it first). The copy keeps e's expiry unless expire_at is given. Strings copy
        their meta record, hashes their fields, collections take a new version and copy their
        sub-records (streamed). Returns the new entry."""
        at = e.expire_at if expire_at is None else expire_at
        if e.type in COLLECTION_TYPES:
            coll = e.body
            new = Entry(e.type, at, Coll(self.new_version(), coll.count, coll.extra))
            self.copy_subrecords(src_db, e.type, coll.version, dst_db, new.body.version)
        elif e.type == TYPE_HASH:
            new = Entry(TYPE_HASH, at, e.body)
            self._copy_fields(src_db, src, dst_db, dst, move=False)
        else:
            new = Entry(e.type, at, e.body)
        self.put_entry(dst_db, dst, new)
        return new

    def check_room(self, db, src, e, dst):
        """For RENAME/COPY/MOVE of key src (live entry e) to the name dst: raises NameTooLong,
        before anything is written, when a hash has a field too long to go with the new name
        (field records hold the key name, or its digest, and the field: see field_room)."""
        room = field_room(dst)
        if e.type != TYPE_HASH or room >= field_room(src) or room >= MAX_NAME:
            return
        longest = self._longest_field(field_prefix(db, src))
        if longest is not None and longest > room:
            raise NameTooLong(_field_error(longest, dst))

    def _copy_fields(self, src_db, src, dst_db, dst, move):
        """Copies (move: moves) a hash's field records to another key, streaming one scan."""
        sp, dp = field_prefix(src_db, src), field_prefix(dst_db, dst)
        cut = len(sp)
        with self.store.scan(prefix=sp) as it:
            for k, v in it:
                self.store.put(dp + k[cut:], v)
                if move:
                    self.store.delete(k)

    def _longest_field(self, prefix):
        """The length of a hash's longest field, or None when it has none (a scan: only for a
        long key name that grows, RENAME/COPY to a longer name)."""
        longest = None
        with self.store.scan(prefix=prefix) as it:
            for k, _ in it:
                n = len(k) - len(prefix)
                longest = n if longest is None or n > longest else longest
        return longest

    def rename_key(self, db, src, e, dst):
        """RENAME of key src (its live entry e) to dst, which must not exist (the caller removes
        it first), keeping the expiry. Strings and collections move their meta record alone
        (O(1): a collection's sub-records do not name the key); a hash moves its fields."""
        if e.type == TYPE_HASH:
            self._copy_fields(db, src, db, dst, move=True)
        if e.expire_at:
            self.delete_expiry(db, e.expire_at, src)
            self.put_expiry(db, e.expire_at, dst)
        self.delete_meta(db, src)
        self.put_meta(db, dst, e.encode())

    # -- strings -----------------------------------------------------------

    def get_string(self, db, key):
        if len(key) <= LONG_META:
            raw = self.store.get(NS + _DB[db] + b"k" + key)  # get_meta, inlined: GET is the hottest path
        else:
            raw = self.get_meta(db, key)
        if raw is None:
            return None
        if raw[1:HEADER] != NO_EXPIRY and _U64.unpack_from(raw, 1)[0] <= now_ms():
            return None
        if raw[0] != _TYPE_STRING_BYTE:
            raise WrongType()
        return raw[HEADER:]

    def set_string(self, db, key, value, expire_at=0, keep_ttl=False, event="set"):
        mk = NS + _DB[db] + b"k" + key
        raw = self.store.get(mk) if len(key) <= LONG_EXPIRY else False  # long names: the general path
        if raw is None or (raw and raw[0] == _TYPE_STRING_BYTE and raw[1:HEADER] == NO_EXPIRY):
            # The common case, a new key or a string without expiry: no index entry to
            # move, no fields to delete (the general path below handles the rest).
            if expire_at:
                self.put_expiry(db, expire_at, key)
                self.expires[db] += 1
            self.store.put(mk, TYPE_STRING + _U64.pack(expire_at) + value)
            if raw is None:
                self.keys[db] += 1
            if event:
                self.on_change(db, key, event)
            return
        old = self.prepare_write(db, key)
        if old is not None and old.type != TYPE_STRING:
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
        if e is None or len(field) > field_room(key):  # too long to have been stored
            return None
        return self.store.get(field_prefix(db, key) + field)

    def hash_set(self, db, key, pairs, only_new=False):
        """Sets fields; returns how many were new. only_new: HSETNX (skip existing)."""
        for field, _ in pairs:
            check_name(field, "hash field")
            if len(field) > field_room(key):
                raise NameTooLong(_field_error(len(field), key))
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
            self.put_meta(db, key, Entry(TYPE_HASH, old.expire_at, old.body + added).encode())
        return added

    def hash_delete(self, db, key, fields):
        e = self.typed(db, key, TYPE_HASH)
        if e is None:
            return 0
        prefix = field_prefix(db, key)
        removed = 0
        for field in set(fields):
            if len(field) > field_room(key):  # too long to have been stored
                continue
            k = prefix + field
            if self.store.get(k) is not None:
                self.store.delete(k)
                removed += 1
        if removed:
            if removed >= e.body:
                self.remove(db, key, e, event=None)
            else:
                self.put_meta(db, key, Entry(TYPE_HASH, e.expire_at, e.body - removed).encode())
        return removed

    def hash_items(self, db, key, after=None, count=None):
        """(field, value) in field order, starting after `after`; up to count."""
        prefix = field_prefix(db, key)
        start = successor(prefix + after) if after is not None else None
        out = []
        if after is not None and start is None:
            return out
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
        start = successor(base + after) if after is not None else None
        out = []
        if (after is not None and start is None) or len(base) + len(prefix) > kvdb.MAX_KEY_SIZE:
            return out   # nothing after the greatest key; no key is that long
        with self.store.scan(start=start, prefix=base + prefix) as it:
            for k, raw in it:
                out.append((k[len(base):], decode_entry(raw)))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def scan_long_keys(self, db, after=None, limit=None):
        """[(digest, key, entry)] of the keys whose names are past LONG_META, in digest order
        after the digest `after` (entries may be expired); up to limit."""
        base = long_meta_prefix(db)
        start = base + after + b"\x00" if after is not None else None
        out = []
        with self.store.scan(start=start, prefix=base) as it:
            for k, raw in it:
                n = _U32.unpack_from(raw)[0]
                out.append((k[len(base):], bytes(raw[4:4 + n]), decode_entry(raw[4 + n:])))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def due_expiries(self, db, now, limit):
        """[(expire_at, key)] of db whose expiry is at or before now, oldest first, up to limit."""
        out = []
        for prefix, long_names in ((expiry_prefix(db), False), (long_expiry_prefix(db), True)):
            n = len(out)
            with self.store.scan(start=prefix, end=prefix + _U64.pack(now + 1)) as it:
                for k, v in it:
                    out.append((_U64.unpack_from(k, len(prefix))[0], bytes(v) if long_names else k[len(prefix) + 8:]))
                    if len(out) - n >= limit:
                        break
        out.sort(key=lambda item: item[0])
        del out[limit:]
        return out

    def drop_expiry_entry(self, db, at, key):
        self.delete_expiry(db, at, key)
        self.expires[db] -= 1

    def flush(self, db):
        """Deletes every key of db (FLUSHDB); range deletes in one transaction."""
        kinds = [b"k", b"K", b"h", b"x", b"y", b"g"] + [k for ks in COLLECTION_KINDS.values() for k in ks]
        for kind in kinds:
            with self.store.scan(prefix=NS + bytes((db,)) + kind) as it:
                keys = [k for k, _ in it]
            for k in keys:
                self.store.delete(k)
        self.keys[db] = 0
        self.expires[db] = 0
        self.garbage = 0
        for d in range(256):
            with self.store.scan(prefix=NS + _DB[d] + b"g") as it:
                self.garbage += sum(1 for _ in it)
