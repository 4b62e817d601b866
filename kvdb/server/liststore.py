"""List storage on the server's key space (docs/format/server-keys.md (Lists)).

A list is a collection (keyspace.Coll) whose `extra` holds two positions,
head(8) and tail(8), unsigned big-endian. Its elements are the sub-records

    0x01 db "l" version position(u64 BE)  ->  element bytes

occupying exactly the positions [head, tail): element i (0-based from the head)
is at position head + i, and count == tail - head. A new list starts with
head == tail == 2**63; LPUSH writes at head - 1 and RPUSH at tail, so pushes and
pops at either end are one engine operation per element, LINDEX/LSET one get or
put, and LRANGE one range scan. LINSERT and LREM shift the elements of the
shorter side (or close the gaps they leave) while streaming one range scan; LTRIM
deletes the trimmed ends, or, when it keeps fewer elements than it drops, copies
the kept ones under a fresh version and leaves the old version to the garbage
collector. No command holds the list in memory: only what its reply returns (and
the transaction's own buffered writes).

A scan on a transaction costs O(writes buffered in it) to start (it merges them),
so each command opens as few scans as it can: one per pass, never one per batch.
"""
import contextlib
import struct

import kvdb

from .commands.registry import CommandError
from .keyspace import TYPE_LIST, garbage_key, sub_prefix

__all__ = ["ListRef", "open_read", "open_write", "MIDDLE", "KIND"]

KIND = b"l"                  # the list's sub-record kind (keyspace.COLLECTION_KINDS)
MIDDLE = 1 << 63             # head and tail of a new list: room for 2**63 pushes at each end
MAX_TAIL = (1 << 64) - 1     # tail is exclusive and stored in 8 bytes: last usable position is 2**64 - 2
DIRECT_POPS = 16             # pops of up to this many elements read them with gets, not a scan
REWRITE_MIN = 1024           # LTRIM dropping at least this many (and more than it keeps) rewrites instead

_POS = struct.Struct(">Q")
_ENDS = struct.Struct(">QQ")
FULL = "ERR list has no room left at that end (2**63 pushes without emptying)"


def clamp_range(start, stop, n):
    """Redis's clamping of LRANGE/LTRIM indexes on a list of n elements: (start, stop)
    as 0 <= start <= stop < n, or None when the range is empty."""
    if start < 0:
        start += n
    if stop < 0:
        stop += n
    if start < 0:
        start = 0
    if start > stop or start >= n:
        return None
    return start, min(stop, n - 1)


class ListRef:
    """One list key opened for a command: its meta entry and decoded ends."""
    __slots__ = ("ks", "db", "key", "entry", "prefix", "head", "tail")

    def __init__(self, ks, db, key, entry):
        self.ks = ks                                 # the Keyspace
        self.db = db                                 # database number
        self.key = key                               # the Redis key (bytes)
        self.entry = entry                           # keyspace.Entry; entry.body is the Coll
        self.prefix = entry.body.prefix(db, KIND)    # 0x01 db "l" version
        extra = entry.body.extra
        if extra:
            if len(extra) != _ENDS.size:
                raise kvdb.CorruptionError(f"server key layout: list {key!r} has {len(extra)} bytes of "
                                           f"head/tail, expected {_ENDS.size}")
            self.head, self.tail = _ENDS.unpack(extra)   # positions [head, tail) hold the elements
            if self.tail - self.head != entry.body.count:
                raise kvdb.CorruptionError(f"server key layout: list {key!r} counts {entry.body.count} "
                                           f"elements between positions {self.head} and {self.tail}")
        else:
            self.head = self.tail = MIDDLE

    def __len__(self):
        return self.tail - self.head

    def _k(self, pos):
        return self.prefix + _POS.pack(pos)

    def save(self):
        """Writes the meta record back; an emptied list is deleted (keyspace.save).
        Returns whether the key still exists."""
        body = self.entry.body
        body.extra = _ENDS.pack(self.head, self.tail)
        body.count = self.tail - self.head
        self.ks.save(self.db, self.key, self.entry)
        return body.count > 0

    def delete_key(self):
        """Removes the whole list (its elements go to the garbage collector when many)."""
        self.ks.remove(self.db, self.key, self.entry, event=None)
        self.head = self.tail = MIDDLE

    # -- positions -----------------------------------------------------------------

    def index_pos(self, index):
        """The position of element `index` (negative counts from the tail), or None."""
        n = self.tail - self.head
        if index < 0:
            index += n
        if not 0 <= index < n:
            return None
        return self.head + index

    def get(self, index):
        pos = self.index_pos(index)
        return None if pos is None else self.ks.store.get(self._k(pos))

    def set(self, index, value):
        """LSET: False when index is out of range."""
        pos = self.index_pos(index)
        if pos is None:
            return False
        self.ks.store.put(self._k(pos), value)
        return True

    # -- scanning ------------------------------------------------------------------

    def scan(self, lo, hi, reverse=False, limit=None):
        """[(position, value)] of positions [lo, hi), ascending (or descending), up to limit."""
        out = []
        if lo >= hi:
            return out
        n = len(self.prefix)
        unpack = _POS.unpack_from
        with self.ks.store.scan(start=self._k(lo), end=self._k(hi), reverse=reverse) as it:
            for k, v in it:
                out.append((unpack(k, n)[0], v))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def iterate(self, lo=None, hi=None, reverse=False):
        """(position, value) over positions [lo, hi) (default: the whole list), ascending
        or descending, streamed by one range scan. The scan reads the state from when it
        began (the transaction's own writes included), so callers may write while they
        iterate; they write only positions the scan has passed anyway. Close it (or
        exhaust it) before the command returns."""
        lo = self.head if lo is None else lo
        hi = self.tail if hi is None else hi
        if lo >= hi:
            return
        n = len(self.prefix)
        unpack = _POS.unpack_from
        with self.ks.store.scan(start=self._k(lo), end=self._k(hi), reverse=reverse) as it:
            for k, v in it:
                yield unpack(k, n)[0], v

    def range(self, start, stop):
        """LRANGE's elements (Redis's clamping of start and stop)."""
        span = clamp_range(start, stop, self.tail - self.head)
        if span is None:
            return []
        start, stop = span
        return [v for _, v in self.scan(self.head + start, self.head + stop + 1)]

    # -- ends ----------------------------------------------------------------------

    def push(self, values, left):
        store = self.ks.store
        if left:
            if self.head < len(values):
                raise CommandError(FULL)
            for v in values:
                self.head -= 1
                store.put(self._k(self.head), v)
        else:
            if self.tail + len(values) > MAX_TAIL:
                raise CommandError(FULL)
            for v in values:
                store.put(self._k(self.tail), v)
                self.tail += 1

    def pop(self, count, left):
        """Removes and returns up to count elements from one end, in pop order."""
        store = self.ks.store
        n = min(count, self.tail - self.head)
        if n <= 0:
            return []
        if n <= DIRECT_POPS:
            # Known positions: gets, which (unlike a scan) cost nothing extra inside a
            # transaction that already buffers many writes.
            positions = range(self.head, self.head + n) if left else range(self.tail - 1, self.tail - 1 - n, -1)
            items = [(pos, store.get(self._k(pos))) for pos in positions]
        elif left:
            items = self.scan(self.head, self.head + n)
        else:
            items = self.scan(self.tail - n, self.tail, reverse=True)
        for pos, _ in items:
            store.delete(self._k(pos))
        if left:
            self.head += n
        else:
            self.tail -= n
        return [v for _, v in items]

    # -- the middle ----------------------------------------------------------------

    def _shift_left(self, lo, hi):
        """Moves the elements at [lo, hi) to [lo - 1, hi - 1); position hi - 1 is left stale."""
        put = self.ks.store.put
        with contextlib.closing(self.iterate(lo, hi)) as items:
            for pos, v in items:
                put(self._k(pos - 1), v)

    def _shift_right(self, lo, hi):
        """Moves the elements at [lo, hi) to [lo + 1, hi + 1); position lo is left stale."""
        put = self.ks.store.put
        with contextlib.closing(self.iterate(lo, hi, reverse=True)) as items:
            for pos, v in items:
                put(self._k(pos + 1), v)

    def find(self, pivot):
        """The index of the first element equal to pivot, or -1."""
        with contextlib.closing(self.iterate()) as items:
            for pos, v in items:
                if v == pivot:
                    return pos - self.head
        return -1

    def insert(self, index, value):
        """Inserts value so that it becomes element `index` (0 <= index <= len), moving
        the elements on the shorter side by one position."""
        n = self.tail - self.head
        left_side = index < n - index
        if left_side and self.head == 0:
            left_side = False
        if not left_side and self.tail >= MAX_TAIL:
            if self.head == 0:
                raise CommandError(FULL)
            left_side = True
        if left_side:
            self._shift_left(self.head, self.head + index)
            self.head -= 1
            self.ks.store.put(self._k(self.head + index), value)
        else:
            self._shift_right(self.head + index, self.tail)
            self.tail += 1
            self.ks.store.put(self._k(self.head + index), value)

    def remove(self, element, count):
        """LREM: removes the first count (count < 0: last -count; 0: all) elements equal
        to element; returns how many. Pass 1 finds the lowest and highest removed
        positions; pass 2 closes the gaps from whichever side moves fewer elements."""
        limit = abs(count) if count else None
        first = last = None
        found = 0
        with contextlib.closing(self.iterate(reverse=count < 0)) as items:
            for pos, v in items:
                if v == element:
                    found += 1
                    if count < 0:
                        first = pos
                        if last is None:
                            last = pos
                    else:
                        last = pos
                        if first is None:
                            first = pos
                    if limit is not None and found >= limit:
                        break
        if not found:
            return 0
        if found == self.tail - self.head:
            self.delete_key()
            return found
        store = self.ks.store
        k = found
        move_tail_side = (self.tail - first - k) <= (last + 1 - self.head - k)
        removed = 0
        if move_tail_side:
            # Kept elements after `first` slide towards the head; the last k positions go.
            w = first
            with contextlib.closing(self.iterate(first, self.tail)) as items:
                for pos, v in items:
                    if removed < k and v == element:
                        removed += 1
                        continue
                    if pos != w:
                        store.put(self._k(w), v)
                    w += 1
            for pos in range(w, self.tail):
                store.delete(self._k(pos))
            self.tail = w
        else:
            # Kept elements before `last` slide towards the tail; the first k positions go.
            w = last
            with contextlib.closing(self.iterate(self.head, last + 1, reverse=True)) as items:
                for pos, v in items:
                    if removed < k and v == element:
                        removed += 1
                        continue
                    if pos != w:
                        store.put(self._k(w), v)
                    w -= 1
            for pos in range(self.head, w + 1):
                store.delete(self._k(pos))
            self.head = w + 1
        return found

    def trim(self, start, stop):
        """LTRIM with Redis's clamping. Returns whether the list still has elements."""
        n = self.tail - self.head
        span = clamp_range(start, stop, n)
        if span is None:
            self.delete_key()
            return False
        start, stop = span
        ltrim, rtrim = start, n - stop - 1
        kept = n - ltrim - rtrim
        if ltrim + rtrim >= REWRITE_MIN and ltrim + rtrim > kept:
            self._rewrite(self.head + ltrim, self.tail - rtrim)
            return True
        store = self.ks.store
        for pos in range(self.head, self.head + ltrim):
            store.delete(self._k(pos))
        for pos in range(self.tail - rtrim, self.tail):
            store.delete(self._k(pos))
        self.head += ltrim
        self.tail -= rtrim
        return True

    def _rewrite(self, lo, hi):
        """Copies the elements at [lo, hi) under a new version (positions from MIDDLE) and
        hands the old version's records to the garbage collector."""
        ks, db = self.ks, self.db
        old = self.entry.body.version
        new = ks.new_version()
        new_prefix = sub_prefix(db, KIND, new)
        put = ks.store.put
        w = MIDDLE
        with contextlib.closing(self.iterate(lo, hi)) as items:
            for _, v in items:
                put(new_prefix + _POS.pack(w), v)
                w += 1
        ks.store.put(garbage_key(db, old), TYPE_LIST)
        ks.garbage += 1
        self.entry.body.version = new
        self.prefix = new_prefix
        self.head, self.tail = MIDDLE, w

    def positions(self, element, rank, count, maxlen):
        """LPOS: indexes of matches, skipping the first |rank|-1, up to count (0: all),
        comparing at most maxlen elements (0: no limit); from the tail when rank < 0."""
        out = []
        skip = abs(rank) - 1
        seen = 0
        head = self.head
        with contextlib.closing(self.iterate(reverse=rank < 0)) as items:
            for pos, v in items:
                if maxlen and seen >= maxlen:
                    break
                seen += 1
                if v == element:
                    if skip:
                        skip -= 1
                        continue
                    out.append(pos - head)
                    if count and len(out) >= count:
                        break
        return out


def open_read(ks, db, key):
    """The list at key for reading, or None (WrongType for another type)."""
    e, _ = ks.collection(db, key, TYPE_LIST)
    return None if e is None else ListRef(ks, db, key, e)


def open_write(ks, db, key, create=True):
    """The list at key for writing (a new empty one when absent and create), or None."""
    e = ks.collection_for_write(db, key, TYPE_LIST, create=create)
    return None if e is None else ListRef(ks, db, key, e)
