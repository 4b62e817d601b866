# The fast lane's hash command (included into fastlane.pyx after the FastLane class): HSET.
# The records are keyspace.py's (docs/format/server-keys.md): the meta record
#     "h" expire_at(8) field-count(8)
# and one record 0x01 db "h" len(key)(4) key field -> value per field. Anything else (expiry,
# another type, a field or value past the engine's limits, a name long enough for the digest
# form, an odd number of arguments) goes to the general path.

cdef Py_ssize_t HASH_META_SIZE = 9 + 8                    # type expire_at | field-count


cdef inline bytes hash_meta(uint64_t count):
    """A hash's meta record without expiry (keyspace.Entry.encode of TYPE_HASH)."""
    cdef bytes out = new_bytes(HASH_META_SIZE)
    cdef unsigned char *p = wbuf(out)
    p[0] = c'h'
    memcpy(p + 1, rbuf(ZERO8), 8)
    put_be64(p + 9, count)
    return out


cdef inline bytes field_prefix(int db, bytes key):
    """keyspace.field_prefix of a short name: 0x01 db "h" len(key) key."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(key)
    cdef bytes out = new_bytes(7 + n)
    cdef unsigned char *p = wbuf(out)
    p[0] = 1
    p[1] = <unsigned char>db
    p[2] = c'h'
    p[3] = (n >> 24) & 0xFF
    p[4] = (n >> 16) & 0xFF
    p[5] = (n >> 8) & 0xFF
    p[6] = n & 0xFF
    memcpy(p + 7, rbuf(key), n)
    return out


cdef object hash_set(FastLane self, list args, int db, bytes key, bytes meta):
    """HSET key field value [field value ...] (hashes.hset: Keyspace.hash_set of the pairs, a
    field given twice taking its last value): the number of fields that were new."""
    cdef Py_ssize_t argc = len(args), i, room
    cdef uint64_t count = 0, added = 0
    cdef dict pairs
    cdef bytes prefix
    if argc % 2 or PyBytes_GET_SIZE(key) > C_LONG_FIELDS:
        return PASS
    room = C_MAX_KEY - 7 - PyBytes_GET_SIZE(key)           # keyspace.field_room of a short name
    if room > C_MAX_NAME:
        room = C_MAX_NAME                                  # check_name's limit
    cdef object raw = self.meta_get(meta)
    if raw is not None:
        if PyBytes_GET_SIZE(raw) != HASH_META_SIZE or rbuf(<bytes>raw)[0] != c'h' or \
                memcmp(rbuf(<bytes>raw) + 1, rbuf(ZERO8), 8) != 0:
            return PASS     # another type (WRONGTYPE), or an expiry to check
        count = be64(rbuf(<bytes>raw) + 9)
        if count == 0 or count >= (<uint64_t>1 << 62):
            return PASS     # an odd state: the general path deals with it
    if argc == 4:
        pairs = {args[2]: args[3]}
    else:
        pairs = {}
        for i in range(2, argc, 2):
            pairs[args[i]] = args[i + 1]
    prefix = field_prefix(db, key)
    for field, value in pairs.items():
        if PyBytes_GET_SIZE(<bytes>field) > room or PyBytes_GET_SIZE(<bytes>value) > C_MAX_VALUE:
            return PASS     # the general path's error
        if raw is None or self.get(prefix + <bytes>field) is None:
            added += 1
    self.writing()
    try:
        for field, value in pairs.items():
            self.put(prefix + <bytes>field, <bytes>value)
        if raw is None:
            self.meta_put(meta, hash_meta(added))
        elif added:
            self.meta_put(meta, hash_meta(count + added))
    except Exception as e:
        return self.write_failed(KIND_HSET, e)
    if raw is None:
        self.ks.keys[db] += 1
    return added
