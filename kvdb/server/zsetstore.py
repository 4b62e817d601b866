"""Sorted-set storage on the engine. Layout: docs/format/server-keys-zset.md; in short,
for a sorted set of collection version v in database d:

    0x01 d "z" v member                  -> score (8 bytes, IEEE double big-endian)
    0x01 d "r" v sortable(score) member  -> b""   (the score index, in ZRANGE order)
    0x01 d "n" v node-id "k" | "c"       -> rank-index node (zrank.py)

`sortable(score)` is 8 bytes whose byte order is the numeric order of scores (the
sign bit flipped for positive numbers, every bit for negative ones; -0.0 is stored
as 0.0), so the score index lists elements by (score, member bytes) exactly as Redis
orders them. The meta record's Coll.count is ZCARD and Coll.extra the rank index's
shape (zranknode.Shape). Score encoding, printing and parsing are in zscore.py.

The API, for the commands and for GEO (which stores geohashes as scores):

    zs = ZSet(ks.store, db, entry)           # entry: a TYPE_ZSET keyspace Entry
    zs.score(member) -> float | None         # one get
    zs.add(member, score) -> old score | None   # insert or update, O(log n)
    zs.remove(member) -> bool                # O(log n)
    zs.rank(member, reverse=False) -> int | None
    zs.count                                 # ZCARD
    zs.count_range(start, end)               # elements with start <= key < end, O(log n)
    zs.at(rank) -> (member, score)           # O(log n)
    zs.by_rank(start, stop, reverse)         # [(member, score)] of a rank range
    zs.by_keys(start, end, reverse, offset, limit)  # [(member, score)] of a key range
    zs.score_range(min, minex, max, maxex) -> (start, end)   # key bounds of a score range
    zs.lex_range(min, max) -> (start, end)   # key bounds of a lex range (parsed items)
    zs.members(after=None)                   # (member, score) in member order (ZSCAN, algebra)
    zs.finish()                              # before ks.save(): writes the index shape

Element *keys* are the score-index key suffixes sortable(score) + member; a key
range [start, end) with end None meaning "to the end" selects elements in ZRANGE
order. Range methods return lists (their callers reply with them); members() is a
generator holding a scan open: finish reading before changing the set.

`bulk()` switches the rank index off while a command changes many elements; finish()
then rebuilds it with one scan (O(n)), cheaper than maintaining it element by element.
"""
import itertools
import os
import struct

from .keyspace import MAX_NAME
from .zrank import RankIndex
from .zranknode import BMAX, FMAX, Shape
from .zscore import (INF, NINF, after_score, decode_score, encode_score, format_score, parse_range_score,  # noqa: F401
                     parse_score, score_of_key, sortable)

__all__ = ["ZSet", "sortable", "score_of_key", "encode_score", "decode_score", "format_score", "parse_score",
           "parse_range_score", "KIND_MEMBER", "KIND_SCORE", "KIND_NODE", "INF", "NINF"]

KIND_MEMBER = b"z"
KIND_SCORE = b"r"
KIND_NODE = b"n"
_D = struct.Struct(">d")
_UNKNOWN = object()     # add(): the caller did not read the current score


def _fanout():
    """Bucket and node sizes; KVDB_ZSET_FANOUT="bmax,fmax" overrides them (tests use
    tiny ones so that small sets exercise splits and merges)."""
    raw = os.environ.get("KVDB_ZSET_FANOUT")
    if raw:
        b, f = (int(x) for x in raw.split(","))
        return b, f
    return BMAX, FMAX


_BMAX, _FMAX = _fanout()


# -- a sorted set ---------------------------------------------------------------------------

class ZSet:
    """One sorted set's records (see the module docstring)."""

    def __init__(self, store, db, entry, bmax=None, fmax=None):
        coll = entry.body
        self.store = store                                   # the keyspace Store
        self.entry = entry                                   # its keyspace Entry (count, extra)
        self.coll = coll                                     # entry.body: version, count, extra
        self.zp = coll.prefix(db, KIND_MEMBER)               # member records
        self.rp = coll.prefix(db, KIND_SCORE)                # score index records
        self.shape = Shape.decode(coll.extra)                # the rank index's shape
        self.index = RankIndex(store, self.rp, coll.prefix(db, KIND_NODE), self.shape,
                               bmax or _BMAX, fmax or _FMAX)  # the rank index
        self.stale = False                                   # bulk(): the index is rebuilt by finish()

    @property
    def count(self):
        return self.coll.count

    def bulk(self):
        """Stops maintaining the rank index until finish() rebuilds it."""
        self.stale = True

    def finish(self):
        """Rebuilds a bulk-changed index; stores the index shape in the entry."""
        if self.stale:
            self.stale = False
            if self.coll.count:
                self.index.rebuild(self.coll.count)
            else:
                self.index.clear()
        self.coll.extra = self.shape.encode()

    # -- single elements --------------------------------------------------------------

    def score(self, member):
        if len(member) > MAX_NAME:
            return None
        raw = self.store.get(self.zp + member)
        return None if raw is None else _D.unpack(raw)[0]

    def add(self, member, score, old=_UNKNOWN):
        """Sets member's score (adding it when absent); returns the old score or None.
        `old`: the current score (None: absent) when the caller already read it. The
        caller checks the member's length (keyspace.check_name)."""
        score += 0.0                        # -0.0 is stored as 0.0 (Z3)
        store = self.store
        zk = self.zp + member
        if old is _UNKNOWN:
            raw = store.get(zk)
            old = None if raw is None else _D.unpack(raw)[0]
        new_key = sortable(score) + member
        if old is None:
            store.put(zk, _D.pack(score))
            store.put(self.rp + new_key, b"")
            self.coll.count += 1
            if not self.stale:
                self.index.inserted(new_key, self.coll.count)
            return None
        if old != score:
            old_key = sortable(old) + member
            store.put(zk, _D.pack(score))
            if old_key != new_key:
                store.delete(self.rp + old_key)
                new_record = self.rp + new_key
                if self.stale:
                    store.put(new_record, b"")
                else:
                    self.index.moved(old_key, new_key, self.coll.count, lambda: store.put(new_record, b""))
        return old

    def remove(self, member):
        """Removes member; returns whether it was there."""
        score = self.score(member)
        if score is None:
            return False
        self.remove_known(member, score)
        return True

    def remove_known(self, member, score):
        """Removes a member known to be present with this score."""
        key = sortable(score) + member
        self.store.delete(self.zp + member)
        self.store.delete(self.rp + key)
        self.coll.count -= 1
        if not self.stale:
            self.index.deleted(key, self.coll.count)

    def remove_many(self, pairs):
        """Removes the (member, score) pairs, all present; the index is rebuilt instead of
        updated when they are at least half the set."""
        pairs = list(pairs)
        if len(pairs) * 2 >= self.coll.count and len(pairs) > 8:
            self.bulk()
        for member, score in pairs:
            self.remove_known(member, score)
        return len(pairs)

    # -- ranks -------------------------------------------------------------------------

    def rank(self, member, reverse=False):
        """(rank, score) of member, or None."""
        score = self.score(member)
        if score is None:
            return None
        r = self.index.rank_of(sortable(score) + member)
        return (self.coll.count - 1 - r if reverse else r), score

    def rank_of_key(self, key):
        """The number of elements whose key is below `key`."""
        if key is None:
            return self.coll.count
        return self.index.rank_of(key)

    def count_range(self, start, end):
        """Elements with start <= key < end (end None: to the end)."""
        if start is None:
            return 0
        if end is not None and end <= start:
            return 0
        return max(0, self.rank_of_key(end) - self.rank_of_key(start))

    def key_at(self, rank):
        return self.index.select(rank, self.coll.count)

    def at(self, rank):
        key = self.key_at(rank)
        return key[8:], score_of_key(key)

    # -- ranges ---------------------------------------------------------------------------

    def _collect(self, start, end, reverse, limit, scores):
        """[(member, score or None)] over [start, end) of element keys, at most limit
        (< 0: all)."""
        rp = self.rp
        n = len(rp)
        n8 = n + 8
        with self.store.scan(start=rp + start, end=None if end is None else rp + end, prefix=rp,
                             reverse=reverse) as it:
            keys = [k for k, _ in (itertools.islice(it, limit) if limit >= 0 else it)]
        if scores:
            return [(k[n8:], score_of_key(k, n)) for k in keys]
        return [(k[n8:], None) for k in keys]

    def by_rank(self, start, stop, reverse=False, scores=True):
        """[(member, score)] of ranks start..stop inclusive (0 <= start <= stop < count);
        reverse: ranks counted from the highest score, listed from there. scores=False:
        (member, None) pairs, without decoding the scores."""
        n = stop - start + 1
        if not reverse:
            return self._collect(self.key_at(start), None, False, n, scores)
        return self._collect(b"", self.key_at(self.coll.count - 1 - start) + b"\x00", True, n, scores)

    def by_keys(self, start, end, reverse=False, offset=0, limit=-1, scores=True):
        """[(member, score)] with start <= key < end (end None: no bound; start None:
        none), in order or reversed, skipping `offset` (by ranks, O(log n)) and at most
        `limit` (< 0: all)."""
        if start is None or limit == 0 or offset < 0 or (end is not None and end <= start):
            return []
        if offset:
            if not reverse:
                r = self.rank_of_key(start) + offset
                if r >= self.rank_of_key(end):
                    return []
                start = self.key_at(r)
            else:
                r = self.rank_of_key(end) - 1 - offset
                if r < self.rank_of_key(start):
                    return []
                end = self.key_at(r) + b"\x00"
        return self._collect(start, end, reverse, limit, scores)

    @staticmethod
    def score_range(lo, lo_ex, hi, hi_ex):
        """Key bounds [start, end) of the scores between lo and hi (ex: exclusive);
        start None when the range is empty."""
        if lo > hi or (lo == hi and (lo_ex or hi_ex)):
            return None, None
        start = after_score(lo) if lo_ex else sortable(lo)
        end = sortable(hi) if hi_ex else after_score(hi)
        return start, end

    def first_key(self, reverse=False):
        with self.store.scan(prefix=self.rp, reverse=reverse) as it:
            for k, _ in it:
                return k[len(self.rp):]
        return None

    def lex_range(self, lo, hi):
        """Key bounds of a lex range; lo/hi are parsed items: (b"-"|b"+", None) or
        (member, exclusive). Lex ranges assume one score for the whole set (as Redis
        does); the lowest element's score is used."""
        first = self.first_key()
        if first is None:
            return None, None
        s = first[:8]
        lo_v, lo_ex = lo
        hi_v, hi_ex = hi
        # A bound longer than any member compares with every member as its first
        # MAX_NAME + 1 bytes do (and equals none), and that fits in an engine key.
        lo_v, hi_v = lo_v[:MAX_NAME + 1], hi_v[:MAX_NAME + 1]
        if lo_ex is None:
            if lo_v == b"+":
                return None, None
            start = b""
        else:
            start = s + lo_v + (b"\x00" if lo_ex else b"")
        if hi_ex is None:
            if hi_v == b"-":
                return None, None
            end = None
        else:
            end = s + hi_v + (b"" if hi_ex else b"\x00")
        if lo_ex is not None and hi_ex is not None and (lo_v > hi_v or (lo_v == hi_v and (lo_ex or hi_ex))):
            return None, None
        return start, end

    def pop(self, count, reverse=False):
        """Removes and returns the `count` lowest (reverse: highest) elements."""
        items = self._collect(b"", None, reverse, count, True)
        self.remove_many(items)
        return items

    def members(self, after=None):
        """(member, score) in member byte order, after `after` (exclusive)."""
        zp = self.zp
        n = len(zp)
        start = zp + after + b"\x00" if after is not None else None
        with self.store.scan(start=start, prefix=zp) as it:
            for k, v in it:
                yield k[n:], _D.unpack(v)[0]

    def check(self):
        """Verifies the records against each other (tests; O(n))."""
        by_member = dict(self.members())
        assert len(by_member) == self.coll.count, (len(by_member), self.coll.count)
        keys = [sortable(s) + m for m, s in by_member.items()]
        with self.store.scan(prefix=self.rp) as it:
            found = [k[len(self.rp):] for k, _ in it]
        assert found == sorted(keys), "score index differs from the member records"
        self.index.check(self.coll.count)
