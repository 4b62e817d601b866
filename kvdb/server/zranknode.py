"""The records of the rank index (zrank.py): its shape in the meta record, its nodes'
keys and counts records, and the cache of decoded nodes. Layout:
docs/format/server-keys.md (Sorted sets)."""
import collections
import itertools
import struct
import sys
from array import array
from bisect import bisect_right

__all__ = ["BMAX", "FMAX", "Shape", "Node", "shortest_separator", "node_cache", "CACHE_NODES", "KEYS_TAG", "COUNTS_TAG"]

BMAX = 64            # elements per bucket at most (the in-bucket scan of rank/select)
FMAX = 128           # children per node at most (a counts record is <= 4 * FMAX bytes)

_SHAPE = struct.Struct(">BQQ")
_HEAD = struct.Struct(">BH")
_BIG = sys.byteorder == "big"
COUNTS_TAG = b"c"
KEYS_TAG = b"k"
_ITEMSIZE = {"B": 1, "H": 2, "I": 4, "Q": 8}
_TYPECODES = {1: "B", 2: "H", 4: "I", 8: "Q"}        # counts width byte -> array typecode
_WIDTH_BYTE = {t: bytes((n,)) for t, n in _ITEMSIZE.items()}
_WIDER = {"B": "H", "H": "I", "I": "Q"}
CACHE_NODES = 4096   # decoded nodes kept across commands, per Store (node_cache)
_CACHE_NAME = "zset-rank-nodes"    # their entry in Store.caches


def node_cache(store):
    """The decoded rank-index nodes of the database behind `store`: an LRU map of node
    record prefix (n-prefix + id, which names the database, the sorted set's version and
    the node) -> Node, at most CACHE_NODES long. Its nodes are trusted without reading
    their records: the server is the database's only writer and runs one command at a
    time, every write of a node record goes through the rank index, which updates or
    evicts the cached copy as it writes (zrank.py), and Store empties its caches when a
    command group's writes are lost (rollback, failed commit). Versions are never
    reissued, so a deleted sorted set's nodes are never looked up again."""
    caches = store.caches
    cache = caches.get(_CACHE_NAME)
    if cache is None:
        cache = caches[_CACHE_NAME] = collections.OrderedDict()
    return cache


def shortest_separator(left, right):
    """The shortest prefix of `right` that is greater than `left` (left < right)."""
    n = min(len(left), len(right))
    j = 0
    while j < n and left[j] == right[j]:
        j += 1
    return right[:j + 1]


def _le(arr):
    """An array's bytes, little-endian."""
    if _BIG:
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def _from_le(typecode, raw):
    arr = array(typecode)
    arr.frombytes(raw)
    if _BIG:
        arr.byteswap()
    return arr


class Shape:
    """The tree's shape, kept in the sorted set's meta record (Coll.extra)."""
    __slots__ = ("height", "root", "next_id")

    def __init__(self, height=0, root=0, next_id=1):
        self.height = height         # levels of nodes above the buckets; 0: no index (one bucket)
        self.root = root             # id of the root node (when height >= 1)
        self.next_id = next_id       # the next node id to hand out (ids are never reused)

    @classmethod
    def decode(cls, extra):
        if not extra:
            return cls()
        return cls(*_SHAPE.unpack_from(extra, 0))

    def encode(self):
        if self.height == 0 and self.next_id == 1:
            return b""
        return _SHAPE.pack(self.height, self.root, self.next_id)


class Node:
    """An internal node, decoded."""
    __slots__ = ("id", "level", "kids", "counts", "seps", "keys_dirty", "counts_dirty", "stamp", "raw_counts", "acc")

    def __init__(self, id_, level, seps, kids, counts):
        self.id = id_                # node id (u64), names its two records
        self.level = level           # 1: children are buckets; >= 2: children are nodes
        self.seps = seps             # list of separators (bytes), one per child, increasing
        self.kids = kids             # array('Q') of child node ids (level >= 2), None at level 1
        self.counts = counts         # array('B', 'H', 'I' or 'Q') of element counts below each child
        self.keys_dirty = False      # separators or kids changed: rewrite the keys record
        self.counts_dirty = False    # counts changed: rewrite the counts record
        self.stamp = None            # 8 random bytes naming this version of the keys record
        self.raw_counts = None       # the counts record as stored (decoded from or last written)
        self.acc = None              # prefix sums of counts for queries (made on demand; dropped by
                                     # the rank index's _flush when the counts change)

    def __len__(self):
        return len(self.counts)

    def sep(self, i):
        return self.seps[i]

    def route(self, x):
        """The index of the child whose range holds element key x (the last separator
        <= x; 0 when x is below them all)."""
        i = bisect_right(self.seps, x) - 1
        return i if i > 0 else 0

    def encode_keys(self):
        seps = self.seps
        offs = array("I", itertools.accumulate(len(s) for s in seps))
        out = [_HEAD.pack(self.level, len(seps)), self.stamp]
        if self.level >= 2:
            out.append(_le(self.kids))
        out.append(_le(offs))
        out.extend(seps)
        return b"".join(out)

    def encode_counts(self):
        return _WIDTH_BYTE[self.counts.typecode] + self.stamp + _le(self.counts)

    def add(self, i, delta):
        """counts[i] += delta, widening the counts when they outgrow their width."""
        while True:
            try:
                self.counts[i] += delta
                return
            except OverflowError:
                self.counts = array(_WIDER[self.counts.typecode], self.counts)

    def splice(self, i, j, values):
        """counts[i:j] = values (widening the same way)."""
        while True:
            try:
                self.counts[i:j] = array(self.counts.typecode, values)
                return
            except OverflowError:
                self.counts = array(_WIDER[self.counts.typecode], self.counts)

    @classmethod
    def decode(cls, id_, keys, counts):
        level, n = _HEAD.unpack_from(keys, 0)
        pos = _HEAD.size + 8
        if keys[_HEAD.size:pos] != counts[1:9]:
            raise ValueError(f"zset rank node {id_}: its keys and counts records are of different versions")
        kids = None
        if level >= 2:
            kids = _from_le("Q", keys[pos:pos + 8 * n])
            pos += 8 * n
        offs = _from_le("I", keys[pos:pos + 4 * n])
        pos += 4 * n
        seps = []
        start = pos
        for end in offs:
            seps.append(keys[start:pos + end])
            start = pos + end
        node = cls(id_, level, seps, kids, None)
        node.stamp = keys[_HEAD.size:_HEAD.size + 8]
        node.set_counts(counts, n)
        return node

    def set_counts(self, raw, n):
        """Decodes a counts record of a node with n children into self.counts."""
        typecode = _TYPECODES.get(raw[0])
        if typecode is None:
            raise ValueError(f"zset rank node {self.id}: counts of width {raw[0]}")
        cnt = _from_le(typecode, raw[9:])
        if len(cnt) != n:
            raise ValueError(f"zset rank node {self.id}: {len(cnt)} counts for {n} children")
        self.counts = cnt
        self.raw_counts = raw
