"""Writing and removing one entry with its index keys, inside a Writer's transaction.

An entry is its E key and record plus: its R key (always), its O key (unless the policy is
"none"), its P key (LRU and LFU), its X key (with an expiry) and its G key (with a tag). These
functions keep that set whole (docs/format/cache.md, C1-C4); index deletions are blind
(tx.discard) so they add nothing to the transaction's read set.
"""
from kvdb.cache.keys import encode_tag, key_kind
from kvdb.cache.layout import (ORDER_VALUE, U64, expiry_key, order_key, rowid_key, sortable_float,
                               tag_prefix)
from kvdb.cache.records import encode_record, expire_time_of, rowid_of, store_time_of, tag_fields

# How the O index orders entries, by eviction policy (settings.EVICTION_POLICY's field).
ORDER_NONE, ORDER_STORE_TIME, ORDER_ACCESS_TIME, ORDER_ACCESS_COUNT = range(4)
ORDER_OF_FIELD = {None: ORDER_NONE, "store_time": ORDER_STORE_TIME, "access_time": ORDER_ACCESS_TIME,
                  "access_count": ORDER_ACCESS_COUNT}


def initial_order(order_kind, store_time):
    """The O position of an entry just stored: its store (= access) time, or 0 accesses."""
    return 0 if order_kind == ORDER_ACCESS_COUNT else sortable_float(store_time)


def current_order(tx, order_kind, ekey, record):
    """The O position of a stored entry (read from its P key for LRU/LFU)."""
    if order_kind == ORDER_STORE_TIME:
        return sortable_float(store_time_of(record))
    raw = tx.get(ORDER_VALUE + ekey)
    return None if raw is None else U64.unpack(raw)[0]


def drop_indexes(w, order_kind, ekey, record, rowid):
    """Discard the O, P, X and G keys of the entry whose record is `record` (not its R key)."""
    tx = w.tx
    if order_kind != ORDER_NONE:
        order = current_order(tx, order_kind, ekey, record)
        if order is not None:
            tx.discard(order_key(order, rowid, ekey))
        if order_kind != ORDER_STORE_TIME:
            tx.discard(ORDER_VALUE + ekey)
    expire_time = expire_time_of(record)
    if expire_time is not None:
        tx.discard(expiry_key(expire_time, rowid, ekey))
    etag = tag_fields(record)[1]
    if etag is not None:
        tx.discard(tag_prefix(etag) + ekey)


def store(w, order_kind, new_rowid, ekey, key, mode, payload, now, expire_time, tag, old):
    """Store an entry (replacing `old`, its current record or None) as diskcache's set does:
    store time now, access time now and access count 0, a replaced entry keeping its insertion
    position (rowid) and key kind; a new one gets new_rowid(). Returns the record."""
    tx = w.tx
    if old is not None:
        rowid = rowid_of(old)
        kind = old[1]
        drop_indexes(w, order_kind, ekey, old, rowid)
        w.size -= len(old)
    else:
        rowid = new_rowid()
        kind = key_kind(key)
        tx.put(rowid_key(rowid, ekey), bytes((kind,)))
        w.count += 1
        w.size += len(ekey)
    if tag is None:
        etag = None
        record = encode_record(mode, payload, kind, expire_time, now, rowid)
    else:
        etag = encode_tag(tag)
        record = encode_record(mode, payload, kind, expire_time, now, rowid, key_kind(tag), etag)
        tx.put(tag_prefix(etag) + ekey, b"")
    tx.put(ekey, record)
    w.size += len(record)
    if order_kind != ORDER_NONE:
        order = initial_order(order_kind, now)
        tx.put(order_key(order, rowid, ekey), b"")
        if order_kind != ORDER_STORE_TIME:
            tx.put(ORDER_VALUE + ekey, U64.pack(order))
    if expire_time is not None:
        tx.put(expiry_key(expire_time, rowid, ekey), b"")
        if w.min_expire is None or expire_time < w.min_expire:
            w.min_expire = expire_time
    return record


def remove(w, order_kind, ekey, record):
    """Remove the entry whose current record is `record`, with every index key."""
    rowid = rowid_of(record)
    drop_indexes(w, order_kind, ekey, record, rowid)
    tx = w.tx
    tx.discard(rowid_key(rowid, ekey))
    tx.discard(ekey)
    w.count -= 1
    w.size -= len(ekey) + len(record)


def touch_order(w, order_kind, ekey, record, now):
    """Move an entry that incr/decr rewrote: LRS to its new store time, LRU to `now`, LFU one
    access up (`record` is the entry's record before the rewrite)."""
    tx = w.tx
    rowid = rowid_of(record)
    old = current_order(tx, order_kind, ekey, record)
    if order_kind == ORDER_ACCESS_COUNT:
        new = (old or 0) + 1
    else:
        new = max(old or 0, sortable_float(now))
    if new == old:
        return
    if old is not None:
        tx.discard(order_key(old, rowid, ekey))
    tx.put(order_key(new, rowid, ekey), b"")
    if order_kind != ORDER_STORE_TIME:
        tx.put(ORDER_VALUE + ekey, U64.pack(new))
