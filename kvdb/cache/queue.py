"""The cache as a queue (push, pull, peek) and peekitem, as diskcache documents them.

A queue is a run of keys: ints from 0 to QUEUE_MAX (prefix None) or the strings
"<prefix>-<15 digits>"; the first push uses QUEUE_START, pushing on the back uses the last key + 1,
on the front the first key - 1. The keys sort in queue order (keys.py), so the ends are one kvdb
range scan in the write's transaction: concurrent pushes and pulls of one queue conflict and
retry, so they are serialised. Pull, peek and peekitem remove the expired entries they pass.
"""
import time

from kvdb.cache.entries import remove, store
from kvdb.cache.keys import entry_key, key_of
from kvdb.cache.layout import ROWID, ROWID_EKEY_AT
from kvdb.cache.records import (F64, HAS_EXPIRE, MODE_MASK, decode_payload, encode_value, expire_time_of, payload_at,
                               tag_value)
from kvdb.cache.writer import run_write

QUEUE_START = 500_000_000_000_000     # "Integer starts at 500 trillion"
QUEUE_MAX = 10 ** 15 - 1              # the largest 15-digit number
_SIDES = ("back", "front")


def _bounds(prefix):
    """The first and last possible encoded keys of the queue `prefix`, and its key maker."""
    if prefix is None:
        return entry_key(0), entry_key(QUEUE_MAX) + b"\x00", (lambda n: n)
    return (entry_key(f"{prefix}-{0:015d}"), entry_key(f"{prefix}-{QUEUE_MAX:015d}") + b"\x00",
            lambda n: f"{prefix}-{n:015d}")


def _number_of(key, prefix):
    return key if prefix is None else int(key[len(prefix) + 1:])


def _check_side(side):
    if side not in _SIDES:
        raise ValueError(f"side must be 'back' or 'front', not {side!r}")


def _live(record, now):
    return not record[0] & HAS_EXPIRE or F64.unpack_from(record, 2)[0] > now


class Queue:
    """Mixed into Cache: push, pull, peek, peekitem."""

    def push(self, value, prefix=None, side="back", expire=None, read=False, tag=None, retry=False):
        """Push `value` on the `side` of queue `prefix`; returns the key it was stored under."""
        _check_side(side)
        if read:
            value = value.read()
        mode, payload = encode_value(value, self.disk_pickle_protocol)
        self._reopen()
        now = time.time()
        expire_time = None if expire is None else now + expire
        key = run_write(self, self._push_op, (prefix, side, mode, payload, now, expire_time, tag))
        self._after_insert(now)
        return key

    def _push_op(self, w, prefix, side, mode, payload, now, expire_time, tag):
        lo, hi, make = _bounds(prefix)
        with w.tx.scan(start=lo, end=hi, reverse=side == "back") as it:
            end = next(it, None)
        if end is None:
            number = QUEUE_START
        else:
            number = _number_of(key_of(end[0], end[1][1]), prefix) + (1 if side == "back" else -1)
        key = make(number)
        store(w, self._order_kind, self._new_rowid, entry_key(key), key, mode, payload, now, expire_time, tag, None)
        return key

    def pull(self, prefix=None, default=(None, None), side="front", expire_time=False, tag=False, retry=False):
        """Remove and return (key, value) from the `side` of queue `prefix`, or `default`."""
        _check_side(side)
        self._reopen()
        found = run_write(self, self._queue_op, (prefix, side, True, time.time()))
        return _queue_result(found, default, expire_time, tag)

    def peek(self, prefix=None, default=(None, None), side="front", expire_time=False, tag=False, retry=False):
        """(key, value) at the `side` of queue `prefix` without removing it, or `default`."""
        _check_side(side)
        self._reopen()
        found = run_write(self, self._queue_op, (prefix, side, False, time.time()))
        return _queue_result(found, default, expire_time, tag)

    def _queue_op(self, w, prefix, side, take, now):
        lo, hi, _ = _bounds(prefix)
        expired = []
        found = None
        with w.tx.scan(start=lo, end=hi, reverse=side == "back") as it:
            for ekey, record in it:
                if _live(record, now):
                    found = (ekey, record)
                    break
                expired.append((ekey, record))
        for ekey, record in expired:
            remove(w, self._order_kind, ekey, record)
        if found is not None and take:
            remove(w, self._order_kind, *found)
        return found

    def peekitem(self, last=True, expire_time=False, tag=False, retry=False):
        """(key, value) of the last (or first) entry in insertion order; KeyError if empty.
        Expired entries it passes are removed."""
        self._reopen()
        found = run_write(self, self._peekitem_op, (last, time.time()))
        if found is None:
            raise KeyError("dictionary is empty")
        return _queue_result(found, None, expire_time, tag)

    def _peekitem_op(self, w, last, now):
        tx = w.tx
        expired = []
        found = None
        with tx.scan(prefix=ROWID, reverse=last) as it:
            for k, _ in it:
                ekey = k[ROWID_EKEY_AT:]
                record = tx.get(ekey)
                if record is None:
                    continue
                if _live(record, now):
                    found = (ekey, record)
                    break
                expired.append((ekey, record))
        for ekey, record in expired:
            remove(w, self._order_kind, ekey, record)
        return found


def _queue_result(found, default, expire_time, tag):
    if found is None:
        item, exp, etag = default, None, None
    else:
        ekey, record = found
        value = decode_payload(record[0] & MODE_MASK, record, payload_at(record))
        item, exp, etag = (key_of(ekey, record[1]), value), expire_time_of(record), tag_value(record)
    if expire_time and tag:
        return item, exp, etag
    if expire_time:
        return item, exp
    if tag:
        return item, etag
    return item
