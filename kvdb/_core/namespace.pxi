# Namespaces: named, isolated key spaces inside one database (included into database.pyx).
# The layout, written here and documented in docs/format/namespaces.md:
#
#   0x02 L kind name key  -> value         a key of namespace `name` (L = 1 + len(name), kind
#                                          "s" for a str name, "b" for a bytes name)
#   0x02 0x00 kind name   -> count:u64 BE  the namespace's record: how many keys it stores
#
# Every commit that puts a new key into a namespace or deletes one of its keys also rewrites the
# namespace's record, under the writer lock (with_namespace_counts), so len() of a namespace is
# one read (invariant K1). A namespace exists while it has a record; drop_namespace() deletes
# the keys and the record in one commit.

from cpython.bytes cimport PyBytes_AS_STRING

NS_TAG = 0x02                    # first byte of every namespace key (0x00 documents, 0x01 server)
NS_RECORD = b"\x02\x00"          # first bytes of the namespaces' records
NS_NAME_MAX = 254                # bytes of a namespace name (L = 1 + len fits a byte, 0 is the record's)
NS_COUNT_SIZE = 8                # bytes of a record's value


cdef tuple namespace_layout(object name):
    """(prefix, record key) of namespace `name` (str or bytes, 1..NS_NAME_MAX bytes)."""
    if isinstance(name, str):
        raw = (<str>name).encode("utf-8", "surrogatepass")
        kind = b"s"
    elif isinstance(name, (bytes, bytearray, memoryview)):
        raw = bytes(name)
        kind = b"b"
    else:
        raise TypeError(f"a namespace name must be str or bytes, not {type(name).__name__}")
    if not 1 <= len(raw) <= NS_NAME_MAX:
        raise ValueError(f"a namespace name must be 1..{NS_NAME_MAX} bytes, not {len(raw)}")
    return bytes((NS_TAG, 1 + len(raw))) + kind + raw, NS_RECORD + kind + raw


cdef object namespace_name(bytes record_key):
    """The name a record key stores (str or bytes, as it was given)."""
    kind = record_key[2:3]
    raw = record_key[3:]
    if kind == b"s":
        return raw.decode("utf-8", "surrogatepass")
    if kind == b"b":
        return raw
    raise CorruptionError(f"namespace record key {record_key[:40].hex()} has kind {kind!r}, not b's' or b'b'")


cdef uint64_t decode_count(object value, bytes record_key) except? 0xFFFFFFFFFFFFFFFF:
    if value is None:
        return 0
    if PyBytes_GET_SIZE(value) != NS_COUNT_SIZE:
        raise CorruptionError(f"namespace record {record_key[:40]!r} holds {PyBytes_GET_SIZE(value)} bytes, "
                              f"not {NS_COUNT_SIZE}")
    return int.from_bytes(value, "big")


cdef inline bint namespaced(list ops):
    """Whether any op writes a namespace key (a quick test before the lock)."""
    cdef bytes k
    for op in ops:
        k = <bytes>op[0]
        if PyBytes_GET_SIZE(k) >= 2 and PyBytes_AS_STRING(k)[0] == NS_TAG:
            return True
    return False


cdef inline bint namespaced_keys(list keys):
    """namespaced() of a list of keys."""
    cdef bytes k
    for k in keys:
        if PyBytes_GET_SIZE(k) >= 2 and PyBytes_AS_STRING(k)[0] == NS_TAG:
            return True
    return False


cdef list with_namespace_counts(Database db, list ops):
    """Writer lock held, the engine caught up: `ops` plus the rewritten record of every namespace
    whose number of keys they change (K1). Whether a key is present before each op is read
    from the newest version, then followed through the ops; an op on a record itself (a drop)
    leaves that namespace's record to it."""
    cdef bytes k, record
    cdef dict delta = {}         # record key -> change in its count
    cdef dict present = {}       # key -> present after the ops so far
    cdef set explicit = set()    # record keys the ops write themselves
    cdef Py_ssize_t n
    for op in ops:
        k = <bytes>op[0]
        if PyBytes_GET_SIZE(k) < 3 or PyBytes_AS_STRING(k)[0] != NS_TAG:
            continue
        n = <unsigned char>PyBytes_AS_STRING(k)[1]
        if n == 0:
            explicit.add(k)
            continue
        if PyBytes_GET_SIZE(k) < 2 + n:
            continue             # shorter than its own prefix: not a namespace key
        before = present[k] if k in present else db.newest_entry(k) is not None
        after = op[1] is not None
        present[k] = after
        if before != after:
            record = NS_RECORD + k[2:2 + n]
            delta[record] = delta.get(record, 0) + (1 if after else -1)
    for record, d in delta.items():
        if d == 0 or record in explicit:
            continue
        entry = db.newest_entry(record)
        count = <int>decode_count(None if entry is None else entry[0], record) + d
        if count < 0:
            raise CorruptionError(f"namespace {namespace_name(record)!r}: its record counts fewer keys than a "
                                  "commit deletes (run db.verify_namespaces())")
        ops.append((record, count.to_bytes(NS_COUNT_SIZE, "big"), 0))
    return ops


cdef class Namespace(Handle):
    """db.namespace(name): the whole key-value API over a key space of its own (get, put,
    delete, scan, cursor, len, ttl, put_many, update, pop, ...), with its own codecs. Made from a
    transaction (tx.namespace(name)) it reads and writes inside that transaction, so one
    transaction changes several namespaces atomically; from a snapshot, it reads that version."""
    cdef Handle owner            # the Database, Transaction or Snapshot it reads and writes; constant
    cdef readonly object name    # the name it was made with (str or bytes); constant
    cdef bytes prefix            # 0x02 L kind name: the first bytes of its keys; constant
    cdef bytes record            # its record's key (count of keys); constant
    cdef bytes end               # the first key after its keys; constant

    def __init__(self, Handle owner, name, keys=None, values=None):
        self.kc = key_codec(keys)
        self.vc = value_codec(values)
        self.prefix, self.record = namespace_layout(name)
        self.end = prefix_successor(self.prefix)
        self.owner = owner
        self.name = name if not isinstance(name, (bytearray, memoryview)) else bytes(name)

    def __repr__(self):
        return f"<kvdb.Namespace {self.name!r} keys={self.key_codec} values={self.value_codec} of {self.owner!r}>"

    cdef int ready(self) except -1:
        return self.owner.ready()

    cdef object raw_get(self, bytes k):
        return self.owner.raw_get(self.prefix + k)

    cdef int raw_put(self, bytes k, bytes v, object ttl) except -1:
        return self.owner.raw_put(as_key(self.prefix + k), v, ttl)

    cdef bint raw_delete(self, bytes k) except -1:
        return self.owner.raw_delete(self.prefix + k)

    cdef int raw_discard(self, bytes k) except -1:
        return self.owner.raw_discard(self.prefix + k)

    cdef object raw_scan(self, object lo, object hi, bint reverse):
        cdef Iterator it = self.owner.raw_scan(self.prefix if lo is None else self.prefix + lo,
                                               self.end if hi is None else self.prefix + hi, reverse)
        it.strip = PyBytes_GET_SIZE(self.prefix)
        it.plain = False             # keys come out without the prefix
        return it

    cdef int raw_put_many(self, list ops) except -1:
        cdef bytes p = self.prefix
        return self.owner.raw_put_many([(as_key(p + op[0]), op[1], op[2]) for op in ops])

    cdef int raw_delete_many(self, list keys) except -1:
        cdef bytes p = self.prefix
        return self.owner.raw_delete_many([p + k for k in keys])

    cdef object raw_len(self):
        return self.owner.ns_len(self.prefix, self.record)

    cdef object raw_ttl(self, bytes k):
        return self.owner.raw_ttl(self.prefix + k)

    cdef object read_and_delete(self, bytes k):
        return self.owner.read_and_delete(self.prefix + k)

    cdef object read_or_put(self, bytes k, bytes v):
        return self.owner.read_or_put(as_key(self.prefix + k), v)

    cdef object raw_cursor_source(self):
        src, owned = self.owner.raw_cursor_source()
        cdef Namespace view = Namespace.__new__(Namespace)
        view.owner, view.name, view.prefix, view.record, view.end = src, self.name, self.prefix, self.record, self.end
        view.kc, view.vc = self.kc, self.vc
        return view, owned

    def persist(self, key):
        """Remove the expiry of `key` (a namespace of the database itself)."""
        if not isinstance(self.owner, Database):
            raise TypeError("persist() is offered by a namespace of the database, not of a transaction or snapshot")
        self.ready()
        return (<Database>self.owner).raw_persist(as_key(self.prefix + enc_key(self.kc, key)))

    def transaction(self):
        """A transaction over this namespace (of the database): `with ns.transaction() as t:`
        commits at the end of the block. Its .namespace(other) reaches other namespaces in the
        same transaction."""
        if not isinstance(self.owner, Database):
            raise TypeError("transaction() is offered by a namespace of the database")
        return Namespace((<Database>self.owner).transaction(), self.name, self.key_codec, self.value_codec)

    def snapshot(self):
        """This namespace in a snapshot of the database."""
        if not isinstance(self.owner, Database):
            raise TypeError("snapshot() is offered by a namespace of the database")
        return Namespace((<Database>self.owner).snapshot(), self.name, self.key_codec, self.value_codec)

    def namespace(self, name, keys=None, values=None):
        """Another namespace of the same database, transaction or snapshot."""
        return Namespace(self.owner, name, keys, values)

    # a namespace made by transaction() or snapshot() finishes its owner
    def commit(self):
        if not isinstance(self.owner, Transaction):
            raise TypeError("commit() is offered by a namespace of a transaction")
        self.owner.commit()

    def rollback(self):
        if not isinstance(self.owner, Transaction):
            raise TypeError("rollback() is offered by a namespace of a transaction")
        self.owner.rollback()

    def close(self):
        """Close the snapshot this namespace reads (a namespace of a snapshot); else nothing."""
        if isinstance(self.owner, Snapshot):
            self.owner.close()

    def __enter__(self):
        self.ready()
        return self

    def __exit__(self, exc_type, exc, tb):
        if isinstance(self.owner, (Transaction, Snapshot)):
            return self.owner.__exit__(exc_type, exc, tb)
        return False
