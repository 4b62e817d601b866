"""Sorted-set storage on the engine. Layout: docs/format/server-keys.md (Sorted sets); in short,
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
    zs.by_rank(start, stop, reverse)         # [(member, score)] of a rank range (scores=None: members)
    zs.by_keys(start, end, reverse, offset, limit)  # [(member, score)] of a key range
    zs.score_range(min, minex, max, maxex) -> (start, end)   # key bounds of a score range
    zs.lex_range(min, max) -> (start, end)   # key bounds of a lex range (parsed items)
    zs.members(after=None)                   # (member, score) in member order (ZSCAN, algebra)
    zs.pop(count, reverse=False)             # removes and returns the lowest (highest) count
    zs.finish()                              # before ks.save(): writes the index shape

Element *keys* are the score-index key suffixes sortable(score) + member; a key
range [start, end) with end None meaning "to the end" selects elements in ZRANGE
order. Range methods return lists (their callers reply with them); members() is a
generator holding a scan open: finish reading before changing the set.

`bulk()` switches the rank index off while a command changes many elements; finish()
then rebuilds it with one scan (O(n)), cheaper than maintaining it element by element.

Kept across commands in the Store's caches (Store.caches, emptied when a command
group's writes are lost): decoded rank-index nodes (zranknode.node_cache), each set's
record prefixes and RankIndex (_Handle, reused while its shape matches the meta
record), and within one command group where the pops of each set stopped (pop()).
"""
import itertools
import os
import struct

from .keyspace import MAX_NAME
from .zrank import RankIndex
from .zranknode import BMAX, FMAX, Shape, node_cache
from .zscore import (INF, NINF, after_score, decode_score, encode_score, format_score, parse_range_score,  # noqa: F401
                     parse_score, score_of_key, sortable)

__all__ = ["ZSet", "sortable", "score_of_key", "encode_score", "decode_score", "format_score", "parse_score",
           "parse_range_score", "KIND_MEMBER", "KIND_SCORE", "KIND_NODE", "INF", "NINF"]

KIND_MEMBER = b"z"
KIND_SCORE = b"r"
KIND_NODE = b"n"
_D = struct.Struct(">d")
_UNKNOWN = object()     # add(): the caller did not read the current score


def _below_hint(hints, rp, record):
    """add() writes `record` into the set of score-index prefix rp: a pop hint that it
    falls outside of (below the lowest popped, at or above the highest) is forgotten."""
    lo, hi = hints[rp]
    if (lo is not None and record < lo) or (hi is not None and record >= hi):
        del hints[rp]


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

_NS_DB = [b"\x01" + bytes((d,)) for d in range(256)]     # 0x01 db: the start of every sub-record key
_Q = struct.Struct(">Q")
_POP_HINTS = "zset-pop-hints"      # their entry in Store.caches (ZSet.pop)


_HANDLES = "zset-handles"          # their entry in Store.caches (ZSet.__init__)
HANDLES_MAX = 1024                 # sorted sets whose _Handle is kept


class _Handle:
    """What a sorted set's ZSet objects share from one command to the next: its record
    prefixes and its RankIndex (reused while its shape is the one in the meta record)."""
    __slots__ = ("zp", "rp", "np", "index")

    def __init__(self, db, version):
        base = _NS_DB[db]
        v = _Q.pack(version)
        self.zp = base + KIND_MEMBER + v      # member records (keyspace.sub_prefix)
        self.rp = base + KIND_SCORE + v       # score index records
        self.np = base + KIND_NODE + v        # rank-index node records
        self.index = None                     # the last RankIndex made for this set, or None


class ZSet:
    """One sorted set's records (see the module docstring)."""

    def __init__(self, store, db, entry, bmax=None, fmax=None):
        coll = entry.body
        handles = store.caches.get(_HANDLES)
        if handles is None:
            handles = store.caches[_HANDLES] = {}
        hkey = coll.version << 8 | db
        h = handles.get(hkey)
        if h is None:
            h = handles[hkey] = _Handle(db, coll.version)
            if len(handles) > HANDLES_MAX:
                del handles[next(iter(handles))]
        self.store = store                                   # the keyspace Store
        self.entry = entry                                   # its keyspace Entry (count, extra)
        self.coll = coll                                     # entry.body: version, count, extra
        self._h = h                                          # its _Handle
        self.zp = h.zp                                       # member records (keyspace.sub_prefix)
        self.rp = h.rp                                       # score index records
        self.np = h.np                                       # rank-index node records
        self.bmax = bmax or _BMAX                            # rank-index bucket size
        self.fmax = fmax or _FMAX                            # rank-index node size
        self.stale = False                                   # bulk(): the index is rebuilt by finish()
        # self.shape, self.index: the rank index's Shape and RankIndex, set on first use
        # (__getattr__): lookups and changes of a set without nodes never need them

    def __getattr__(self, name):
        if name in ("index", "shape"):
            # The handle's index is reused when its shape is the meta record's (a change
            # that failed before the meta record was written leaves another one) and it
            # works with the Store's current node cache.
            coll = self.coll
            index = self._h.index
            if index is None or index.shape.encode() != coll.extra or index.bmax != self.bmax \
                    or index.fmax != self.fmax or index.cache is not node_cache(self.store):
                index = self._h.index = RankIndex(self.store, self.rp, self.np, Shape.decode(coll.extra),
                                                  self.bmax, self.fmax)
            self.index = index
            self.shape = index.shape
            return self.__dict__[name]
        raise AttributeError(name)

    def _indexed(self):
        """Whether a change must go through the rank index: it has nodes, or the set
        just outgrew one bucket (an empty extra is height 0 with no node ever issued)."""
        return not self.stale and (self.coll.extra or self.coll.count > self.bmax or "index" in self.__dict__)

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
        if "index" in self.__dict__:
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
        new_record = self.rp + new_key
        hints = store.caches.get(_POP_HINTS)
        if hints is not None and self.rp in hints:
            _below_hint(hints, self.rp, new_record)
        if old is None:
            store.put(zk, _D.pack(score))
            store.put(new_record, b"")
            self.coll.count += 1
            if self._indexed():
                self.index.inserted(new_key, self.coll.count)
            return None
        if old != score:
            old_key = sortable(old) + member
            store.put(zk, _D.pack(score))
            if old_key != new_key:
                store.delete(self.rp + old_key)
                if self._indexed():
                    self.index.moved(old_key, new_key, self.coll.count, lambda: store.put(new_record, b""))
                else:
                    store.put(new_record, b"")
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
        self._remove_key(sortable(score) + member)

    def _remove_key(self, key):
        """Removes the element of element key `key`, known to be present."""
        store = self.store
        store.delete(self.zp + key[8:])
        store.delete(self.rp + key)
        self.coll.count -= 1
        if self._indexed():
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

    def _pairs(self, keys, scores):
        """Score-index record keys as [(member, score)] (scores False: (member, None);
        None: members alone)."""
        n = len(self.rp)
        n8 = n + 8
        if scores:
            return [(k[n8:], score_of_key(k, n)) for k in keys]
        if scores is None:
            return [k[n8:] for k in keys]
        return [(k[n8:], None) for k in keys]

    def _collect(self, start, end, reverse, limit, scores):
        """[(member, score or None)] over [start, end) of element keys, at most limit
        (< 0: all)."""
        rp = self.rp
        with self.store.scan(start=rp + start, end=None if end is None else rp + end, prefix=rp,
                             reverse=reverse) as it:
            keys = [k for k, _ in (itertools.islice(it, limit) if limit >= 0 else it)]
        return self._pairs(keys, scores)

    def by_rank(self, start, stop, reverse=False, scores=True):
        """[(member, score)] of ranks start..stop inclusive (0 <= start <= stop < count);
        reverse: ranks counted from the highest score, listed from there. scores=False:
        (member, None) pairs, without decoding the scores; None: the members alone.

        One scan: it starts at the bound of the bucket holding the first rank (the
        rank index's descent) and steps over the elements before it in the bucket, when
        they are at most half of it (else the first element is found from the bucket's
        other end, and the range scanned from there)."""
        n = stop - start + 1
        count = self.coll.count
        rp = self.rp
        if self.stale or (not self.coll.extra and "index" not in self.__dict__):
            lo, hi, k, size = b"", None, (count - 1 - start if reverse else start), count    # one bucket
        else:
            lo, hi, k, size = self.index.locate(count - 1 - start if reverse else start, count)
        if not reverse:
            if k * 2 > size:
                return self._collect(self.index._nth(lo, hi, k, size), None, False, n, scores)
            with self.store.scan(start=rp + lo, prefix=rp) as it:
                if scores is None:
                    cut = len(rp) + 8
                    return [key[cut:] for key, _ in itertools.islice(it, k, k + n)]
                keys = [key for key, _ in itertools.islice(it, k, k + n)]
        else:
            k = size - 1 - k              # elements of the bucket above the first one listed
            if k * 2 > size:
                return self._collect(b"", self.index._nth(lo, hi, size - 1 - k, size) + b"\x00", True, n, scores)
            with self.store.scan(end=None if hi is None else rp + hi, prefix=rp, reverse=True) as it:
                if scores is None:
                    cut = len(rp) + 8
                    return [key[cut:] for key, _ in itertools.islice(it, k, k + n)]
                keys = [key for key, _ in itertools.islice(it, k, k + n)]
        return self._pairs(keys, scores)

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
        """Removes and returns the `count` lowest (reverse: highest) elements.

        Pops of one command group remember, per set, where they stopped (the last
        popped record: no element is below it, or for ZPOPMAX at or above it), so the
        next pop in the group starts its scan there instead of stepping over the
        records popped before it (deleted in the group's transaction, which a scan from
        the set's first record still passes). A write of an element beyond that point
        (add) forgets it; the group's transaction object names the group."""
        if count <= 0:
            return []
        store = self.store
        rp = self.rp
        n = len(rp)
        hints = store.caches.get(_POP_HINTS)
        tx = store.tx
        hint = None
        if hints is not None:
            if hints.get(None) is tx:
                hint = hints.get(rp)
            elif hints:
                hints.clear()
        if hint is None:
            it = store.scan(prefix=rp, reverse=reverse)
        elif reverse:
            it = store.scan(end=hint[1], prefix=rp, reverse=True)
        else:
            it = store.scan(start=hint[0], prefix=rp)
        with it:
            keys = [k for k, _ in itertools.islice(it, count)]
        if not keys:
            return []
        items = [(k[n + 8:], score_of_key(k, n)) for k in keys]
        if count > 8 and len(keys) * 2 >= self.coll.count:
            self.bulk()
        remove = self._remove_key
        for k in keys:
            remove(k[n:])
        tx = store.tx
        if hints is None:
            hints = store.caches[_POP_HINTS] = {}
        if hints.get(None) is not tx:
            hints.clear()
            hints[None] = tx
        lo, hi = hint if hint is not None else (None, None)
        if reverse:
            hi = keys[-1]
        else:
            lo = keys[-1]
        hints[rp] = (lo, hi)
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
