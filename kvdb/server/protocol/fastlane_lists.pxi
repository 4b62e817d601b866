# The fast lane's list commands (included into fastlane.pyx after the FastLane class):
# LPUSH, RPUSH, LPOP and RPOP without a count, LLEN, LINDEX, LRANGE. The records are
# liststore.py's (docs/format/server-keys.md (Lists)): the meta record
#     "L" expire_at(8) version(8) count(8) head(8) tail(8)
# and one element record 0x01 db "l" version position(8) per element, positions
# [head, tail). Anything else (expiry, another type, a meta record of another shape,
# a pop that empties the list, an end out of room) goes to the general path.

cdef object list_command(FastLane self, int kind, list args, int db, bytes key, bytes meta):
    cdef object raw = self.meta_get(meta)
    cdef const unsigned char *p = NULL
    cdef uint64_t count = 0, head = LIST_MIDDLE, tail = LIST_MIDDLE
    if raw is not None:
        p = rbuf(<bytes>raw)
        if PyBytes_GET_SIZE(raw) != LIST_META_SIZE or p[0] != c'L' or memcmp(p + 1, rbuf(ZERO8), 8) != 0:
            return PASS
        count = be64(p + 17)
        head = be64(p + 25)
        tail = be64(p + 33)
        if tail < head or tail - head != count or count == 0 or count >= (<uint64_t>1 << 62):
            return PASS     # liststore.ListRef refuses it (or an odd state): the general path's error
    if kind == KIND_LPUSH or kind == KIND_RPUSH:
        return list_push(self, kind, args, db, meta, raw, head, tail)
    if kind == KIND_LPOP or kind == KIND_RPOP:
        if raw is None:
            return None
        if count == 1:
            return PASS     # it empties the list: the general path deletes the key
        return list_pop(self, kind, db, meta, <bytes>raw, head, tail)
    if kind == KIND_LLEN:
        return count
    if kind == KIND_LINDEX:
        return list_index(self, args, db, raw, head, count)
    return list_range(self, args, db, raw, head, count)


cdef object list_push(FastLane self, int kind, list args, int db, bytes meta, object raw, uint64_t head, uint64_t tail):
    cdef Py_ssize_t argc = len(args), n = argc - 2, i
    cdef bint left = kind == KIND_LPUSH
    cdef bytes version, elem_prefix, v
    for i in range(2, argc):
        if PyBytes_GET_SIZE(<bytes>args[i]) > C_MAX_VALUE:
            return PASS
    if left:
        if head < <uint64_t>n:
            return PASS     # no room at the head: the general path's error
    elif tail > LIST_MAX_TAIL - <uint64_t>n:
        return PASS
    if raw is None:
        version = self.new_version()      # collection_for_write: a new list's version
    else:
        version = <bytes>raw[9:17]
    elem_prefix = sub_prefix(db, c'l', rbuf(version))
    self.writing()
    try:
        for i in range(2, argc):
            v = <bytes>args[i]
            if left:
                head -= 1
                self.put(position_key(elem_prefix, head), v)
            else:
                self.put(position_key(elem_prefix, tail), v)
                tail += 1
        self.meta_put(meta, list_meta(rbuf(version), head, tail))
    except Exception as e:
        return self.write_failed(kind, e)
    if raw is None:
        self.ks.keys[db] += 1
    return tail - head


cdef object list_pop(FastLane self, int kind, int db, bytes meta, bytes raw, uint64_t head, uint64_t tail):
    cdef const unsigned char *version = rbuf(raw) + 9
    cdef bytes ek = position_key(sub_prefix(db, c'l', version), head if kind == KIND_LPOP else tail - 1)
    cdef object value = self.get(ek)
    if value is None:
        return PASS         # a missing element record: whatever the general path makes of it
    if kind == KIND_LPOP:
        head += 1
    else:
        tail -= 1
    self.writing()
    try:
        self.discard(ek)
        self.meta_put(meta, list_meta(version, head, tail))
    except Exception as e:
        return self.write_failed(kind, e)
    self.out_bytes += PyBytes_GET_SIZE(value)
    return value


cdef object list_index(FastLane self, list args, int db, object raw, uint64_t head, uint64_t count):
    cdef long long index
    if not parse_arg(args[2], &index):
        return PASS
    if raw is None:
        self.misses += 1
        return None
    self.hits += 1
    if index < 0:
        index += <long long>count
    if index < 0 or index >= <long long>count:
        return None
    value = self.get(position_key(sub_prefix(db, c'l', rbuf(<bytes>raw) + 9), head + <uint64_t>index))
    if value is not None:
        self.out_bytes += PyBytes_GET_SIZE(value)
    return value


cdef object list_range(FastLane self, list args, int db, object raw, uint64_t head, uint64_t count):
    cdef long long start, stop, n = <long long>count
    cdef bytes elem_prefix
    cdef list out = []
    if not parse_arg(args[2], &start) or not parse_arg(args[3], &stop):
        return PASS
    if raw is None:
        return out
    # liststore.ListRef.range's clamping (Redis's).
    if start < 0:
        start += n
    if stop < 0:
        stop += n
    if start < 0:
        start = 0
    if start > stop or start >= n:
        return out
    if stop >= n:
        stop = n - 1
    elem_prefix = sub_prefix(db, c'l', rbuf(<bytes>raw) + 9)
    lo = position_key(elem_prefix, head + <uint64_t>start)
    hi = position_key(elem_prefix, head + <uint64_t>stop + 1)
    it = (self.tx if self.tx is not None else self.store.db).scan(start=lo, end=hi)
    try:
        for item in it:
            v = (<tuple>item)[1]
            out.append(v)
            self.out_bytes += PyBytes_GET_SIZE(v)
    finally:
        it.close()
    return out
