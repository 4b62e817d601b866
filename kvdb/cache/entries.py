"""Writing and removing one entry with its index keys, inside a Writer's transaction.

An entry is its E key and record plus: its R key (always), its O key (unless the policy is
"none"), its P key (LRU and LFU), its X key (with an expiry) and its G key (with a tag). These
functions keep that set whole (docs/format/cache.md, C1-C4); index deletions are blind
(tx.discard) so they add nothing to the transaction's read set.

The O key may lag (C4): an entry's true order is its store time (LRS, in the record) or its P
value (LRU: access time, LFU: access count), and its O key sits at the record's indexed order,
which is never above the true order. Calls that only raise the true order (incr, a get's access,
a set replacing an LRS or LRU entry) leave the O key where it is, saving two writes; eviction
(maintenance.py) reads the true order of the entries it scans, evicts by it and moves the lagging
O keys it passed. A call that lowers it (a set resetting an LFU count to 0) moves the O key.
"""
from kvdb.cache.keys import encode_tag, key_kind
from kvdb.cache.layout import (ORDER, ORDER_VALUE, ROWID, U64, U64_PAIR, expiry_key, order_key, rowid_key,
                               sortable_float, tag_prefix)
from kvdb.cache.records import (HAS_EXPIRE, HAS_TAG, HEADER, ROWID_AT, encode_record, expire_time_of,
                                indexed_order_of, rowid_of, store_time_of, tag_fields)

# How the O index orders entries, by eviction policy (settings.EVICTION_POLICY's field).
ORDER_NONE, ORDER_STORE_TIME, ORDER_ACCESS_TIME, ORDER_ACCESS_COUNT = range(4)
ORDER_OF_FIELD = {None: ORDER_NONE, "store_time": ORDER_STORE_TIME, "access_time": ORDER_ACCESS_TIME,
                  "access_count": ORDER_ACCESS_COUNT}


def initial_order(order_kind, store_time):
    """The order of an entry just stored: its store (= access) time, or 0 accesses."""
    return 0 if order_kind == ORDER_ACCESS_COUNT else sortable_float(store_time)


def true_order(tx, order_kind, ekey, record):
    """The order an entry is evicted by (read from its P key for LRU/LFU; None if that is gone)."""
    if order_kind == ORDER_STORE_TIME:
        return sortable_float(store_time_of(record))
    raw = tx.get(ORDER_VALUE + ekey)
    return None if raw is None else U64.unpack(raw)[0]


def drop_indexes(w, order_kind, ekey, record, rowid):
    """Discard the O, P, X and G keys of the entry whose record is `record` (not its R key)."""
    tx = w.tx
    flags, _, expire_time, _, _, indexed = HEADER.unpack_from(record)
    if order_kind != ORDER_NONE:
        tx.discard(ORDER + U64_PAIR.pack(indexed, rowid) + ekey)
        if order_kind != ORDER_STORE_TIME:
            tx.discard(ORDER_VALUE + ekey)
    if flags & HAS_EXPIRE:
        tx.discard(expiry_key(expire_time, rowid, ekey))
    if flags & HAS_TAG:
        tx.discard(tag_prefix(tag_fields(record)[1]) + ekey)


def store(w, order_kind, new_rowid, ekey, key, mode, payload, now, expire_time, tag, old):
    """Store an entry (replacing `old`, its current record or None) as diskcache's set does:
    store time now, access time now and access count 0, a replaced entry keeping its insertion
    position (rowid) and key kind; a new one gets new_rowid(). Returns the record."""
    tx = w.tx
    order = initial_order(order_kind, now)
    if old is not None:
        rowid = rowid_of(old)
        kind = old[1]
        indexed = indexed_order_of(old)
        if order_kind == ORDER_ACCESS_COUNT:
            tx.discard(order_key(indexed, rowid, ekey))
            tx.put(order_key(order, rowid, ekey), b"")
            indexed = order
        elif order_kind == ORDER_ACCESS_TIME:
            tx.put(ORDER_VALUE + ekey, U64.pack(order))
        if indexed > order and order_kind != ORDER_NONE:
            # The entry it replaces was stored with a later clock reading: another process read
            # the clock after this one but committed first. The O key moves down (C4).
            tx.discard(order_key(indexed, rowid, ekey))
            tx.put(order_key(order, rowid, ekey), b"")
            indexed = order
        expire_time_old = expire_time_of(old)
        if expire_time_old is not None and expire_time_old != expire_time:
            tx.discard(expiry_key(expire_time_old, rowid, ekey))
        etag_old = tag_fields(old)[1]
        w.size -= len(old)
    else:
        rowid = new_rowid()
        kind = key_kind(key)
        tx.put(rowid_key(rowid, ekey), bytes((kind,)))
        indexed = order
        if order_kind != ORDER_NONE:
            tx.put(order_key(order, rowid, ekey), b"")
            if order_kind != ORDER_STORE_TIME:
                tx.put(ORDER_VALUE + ekey, U64.pack(order))
        expire_time_old = etag_old = None
        w.count += 1
        w.size += len(ekey)
    if order_kind == ORDER_ACCESS_COUNT and old is not None:
        tx.put(ORDER_VALUE + ekey, U64.pack(order))
    if tag is None:
        etag = None
        record = encode_record(mode, payload, kind, expire_time, now, rowid, indexed)
    else:
        etag = encode_tag(tag)
        record = encode_record(mode, payload, kind, expire_time, now, rowid, indexed, key_kind(tag), etag)
    if etag_old is not None and etag_old != etag:
        tx.discard(tag_prefix(etag_old) + ekey)
    if etag is not None and etag != etag_old:
        tx.put(tag_prefix(etag) + ekey, b"")
    tx.put(ekey, record)
    w.size += len(record)
    if expire_time is not None:
        if expire_time != expire_time_old:
            tx.put(expiry_key(expire_time, rowid, ekey), b"")
        if w.min_expire is None or expire_time < w.min_expire:
            w.min_expire = expire_time
    return record


def remove(w, order_kind, ekey, record):
    """Remove the entry whose current record is `record`, with every index key."""
    rowid = U64.unpack_from(record, ROWID_AT)[0]
    drop_indexes(w, order_kind, ekey, record, rowid)
    tx = w.tx
    tx.discard(ROWID + U64.pack(rowid) + ekey)
    tx.discard(ekey)
    w.count -= 1
    w.size -= len(ekey) + len(record)


def raise_order(w, order_kind, ekey, now, accesses=1):
    """An access of the entry at `now` (incr/decr, or `accesses` gets noted by the access log):
    LRU's P becomes `now` if later, LFU's P grows by `accesses`. LRS's true order is the record's
    store time, which the caller rewrites. The O key lags (C4)."""
    if order_kind != ORDER_ACCESS_TIME and order_kind != ORDER_ACCESS_COUNT:
        return
    tx = w.tx
    raw = tx.get(ORDER_VALUE + ekey)
    old = 0 if raw is None else U64.unpack(raw)[0]
    new = old + accesses if order_kind == ORDER_ACCESS_COUNT else max(old, sortable_float(now))
    if new != old:
        tx.put(ORDER_VALUE + ekey, U64.pack(new))
