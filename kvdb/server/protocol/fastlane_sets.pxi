# The fast lane's set commands (included into fastlane.pyx after the FastLane class): SADD,
# SREM, SISMEMBER, SCARD, and SPOP without a count. The records are setstore.py's
# (docs/format/server-keys.md (Sets)): the meta record
#     "S" expire_at(8) version(8) count(8) extra
# and one empty record 0x01 db "s" version member per member. Anything else (expiry,
# another type, a removal that empties the set, a member past the name limit) goes to
# the general path.

cdef object set_command(FastLane self, int kind, list args, int db, bytes key, bytes meta):
    cdef object raw = self.meta_get(meta)
    cdef const unsigned char *p = NULL
    cdef uint64_t count = 0
    if raw is not None:
        p = rbuf(<bytes>raw)
        if PyBytes_GET_SIZE(raw) < SET_META_SIZE or p[0] != c'S' or memcmp(p + 1, rbuf(ZERO8), 8) != 0:
            return PASS
        count = be64(p + 17)
        if count == 0 or count >= (<uint64_t>1 << 62):
            return PASS     # an odd state: the general path deals with it
    if kind == KIND_SADD:
        return set_add(self, args, db, meta, raw, count)
    if kind == KIND_SCARD:
        return count
    if kind == KIND_SISMEMBER:
        member = <bytes>args[2]
        if raw is None or PyBytes_GET_SIZE(member) > C_MAX_NAME:
            return 0
        return 0 if self.get(sub_prefix(db, c's', p + 9) + member) is None else 1
    if raw is None:
        return 0 if kind == KIND_SREM else None
    if kind == KIND_SREM:
        return set_remove(self, args, db, meta, <bytes>raw, count)
    return set_pop(self, db, meta, <bytes>raw, count)


cdef inline list distinct_members(list args):
    """The members of args[2:], each once, in their first order (dict.fromkeys)."""
    if len(args) == 3:
        return [args[2]]
    return list(dict.fromkeys(args[2:]))


cdef object set_add(FastLane self, list args, int db, bytes meta, object raw, uint64_t count):
    cdef list members = distinct_members(args), new
    cdef bytes version, member_prefix
    for m in members:
        if PyBytes_GET_SIZE(<bytes>m) > C_MAX_NAME:
            return PASS     # check_name's error
    if raw is None:
        version = self.new_version()      # collection_for_write: a new set's version
        member_prefix = sub_prefix(db, c's', rbuf(version))
        new = members
    else:
        member_prefix = sub_prefix(db, c's', rbuf(<bytes>raw) + 9)
        new = [m for m in members if self.get(member_prefix + <bytes>m) is None]
        if not new:
            return 0
    count += len(new)
    self.writing()
    try:
        for m in new:
            self.put(member_prefix + <bytes>m, b"")
        if raw is None:
            self.meta_put(meta, set_meta(rbuf(version), count, b""))
        else:
            self.meta_put(meta, set_meta(rbuf(<bytes>raw) + 9, count, (<bytes>raw)[SET_META_SIZE:]))
    except Exception as e:
        return self.write_failed(KIND_SADD, e)
    if raw is None:
        self.ks.keys[db] += 1
    if self.shapes or self.pools:
        self.forget(member_prefix)              # setsample.forget: new members may be edges
    return len(new)


cdef object set_remove(FastLane self, list args, int db, bytes meta, bytes raw, uint64_t count):
    cdef bytes member_prefix = sub_prefix(db, c's', rbuf(raw) + 9)
    cdef list gone = []
    for m in distinct_members(args):
        if PyBytes_GET_SIZE(<bytes>m) <= C_MAX_NAME and self.get(member_prefix + <bytes>m) is not None:
            gone.append(member_prefix + <bytes>m)
    if not gone:
        return 0
    if <uint64_t>len(gone) >= count:
        return PASS         # it empties the set: the general path deletes the key
    self.writing()
    try:
        for k in gone:
            self.discard(k)
        self.meta_put(meta, set_meta(rbuf(raw) + 9, count - len(gone), raw[SET_META_SIZE:]))
    except Exception as e:
        return self.write_failed(KIND_SREM, e)
    return len(gone)


cdef object set_pop(FastLane self, int db, bytes meta, bytes raw, uint64_t count):
    if count == 1:
        return PASS         # it empties the set: the general path deletes the key
    cdef bytes member_prefix = sub_prefix(db, c's', rbuf(raw) + 9)
    cdef object member = None
    # setsample.pop_member, its common case inlined: the next pooled member that still exists.
    pool = self.pools.get(member_prefix) if count <= POOL_SET_MAX else None
    while pool:
        m = pool.pop()
        if self.get(member_prefix + <bytes>m) is not None:
            member = m
            break
    if member is None:
        member = self.pop_member(self.store, member_prefix, count)   # refills the pool, or a Sampler
        if member is None:
            return PASS
    self.writing()
    try:
        self.discard(member_prefix + <bytes>member)
        self.meta_put(meta, set_meta(rbuf(raw) + 9, count - 1, raw[SET_META_SIZE:]))
    except Exception as e:
        return self.write_failed(KIND_SPOP, e)
    self.out_bytes += PyBytes_GET_SIZE(member)
    return member
