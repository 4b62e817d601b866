"""The rank index of a sorted set: an order-statistic tree over its score index, so
ZRANK, ZRANGE by rank, ZCOUNT and ZREMRANGEBYRANK cost O(log n) engine operations
instead of a scan from the first element. Layout: docs/format/server-keys-zset.md.

The score index (kind "r", zsetstore.py) holds one record per element, keyed by
sortable-score + member (its *element key*). The rank index cuts that ordered run
into *buckets* of consecutive elements and keeps a counted B+tree over them:

* a bucket is the range [sep_i, sep_i+1) of element keys; its separator sep_i is a
  short byte string (the shortest prefix of its first element key that is greater
  than the last element key before it), so buckets are never stored as records:
  their elements are the score-index records in the range;
* an internal node (kind "n", one *keys* and one *counts* record per node) lists its
  children in order: the separator where each child's range starts, the child node
  id (level >= 2; a level-1 node's children are buckets) and, in the separate counts
  record, the number of elements below each child. Inserts and removals rewrite only
  the small counts records on their path; the keys records change on splits/merges.

rank(x) descends from the root, adding the counts of the children left of x's child
at each level (one keys and one counts record per level, a binary search in the
separators), then counts the elements of x's bucket below x (a scan of at most
`bmax` records). select(k) descends by the counts the same way. A bucket or node
that grows past its maximum is split in the middle; one that shrinks below a quarter
of it is merged with a neighbour (and split again when the merge is too big), so
every non-root node and bucket stays between min and max (invariants Z5-Z8).

A sorted set of at most `bmax` elements has no node records (height 0): its whole
score index is one bucket. The tree's shape (height, root id, next node id) lives in
the sorted set's meta record (`extra`), which every write rewrites anyway. Node
records hold ids, separators and counts only -- no database number or collection
version -- so COPY can copy them verbatim under a new version.
"""
import bisect
import collections
import itertools
import os
import struct
import sys
from array import array

__all__ = ["RankIndex", "Shape", "BMAX", "FMAX", "shortest_separator"]

BMAX = 64            # elements per bucket at most (the in-bucket scan of rank/select)
FMAX = 128           # children per node at most (a counts record is <= 4 * FMAX bytes)

_SHAPE = struct.Struct(">BQQ")
_HEAD = struct.Struct(">BH")
_BIG = sys.byteorder == "big"
_COUNTS_TAG = b"c"
_KEYS_TAG = b"k"
_ITEMSIZE = {"B": 1, "H": 2, "I": 4, "Q": 8}
_TYPECODES = {1: "B", 2: "H", 4: "I", 8: "Q"}        # counts width byte -> array typecode
_WIDTH_BYTE = {t: bytes((n,)) for t, n in _ITEMSIZE.items()}
_WIDER = {"B": "H", "H": "I", "I": "Q"}
CACHE_NODES = 4096   # decoded nodes kept across commands (validated by their record bytes)
_CACHE = collections.OrderedDict()   # node record prefix (np + id) -> Node


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
    """An internal node, decoded. Separators are kept as a blob plus end offsets until
    a split or merge needs them as a list."""
    __slots__ = ("id", "level", "kids", "counts", "_blob", "_offs", "_seps", "keys_dirty", "counts_dirty",
                 "stamp", "raw_counts")

    def __init__(self, id_, level, seps, kids, counts):
        self.id = id_                # node id (u64), names its two records
        self.level = level           # 1: children are buckets; >= 2: children are nodes
        self._seps = seps            # list of separators (bytes), or None while _blob/_offs hold them
        self._blob = None            # the separators concatenated (decoded form)
        self._offs = None            # array of end offsets of each separator in _blob
        self.kids = kids             # array('Q') of child node ids (level >= 2), None at level 1
        self.counts = counts         # array('I' or 'Q') of element counts below each child
        self.keys_dirty = False      # separators or kids changed: rewrite the keys record
        self.counts_dirty = False    # counts changed: rewrite the counts record
        self.stamp = None            # 8 random bytes naming this version of the keys record
        self.raw_counts = None       # the counts record this node was decoded from (or last wrote)

    def __len__(self):
        return len(self.counts)

    @property
    def seps(self):
        """The separators as a list (materialized for changes)."""
        if self._seps is None:
            blob, offs = self._blob, self._offs
            start = 0
            seps = []
            for end in offs:
                seps.append(blob[start:end])
                start = end
            self._seps = seps
            self._blob = self._offs = None
        return self._seps

    def sep(self, i):
        if self._seps is not None:
            return self._seps[i]
        return self._blob[self._offs[i - 1] if i else 0:self._offs[i]]

    def route(self, x):
        """The index of the child whose range holds element key x (the last separator
        <= x; 0 when x is below them all)."""
        if self._seps is not None:
            return max(bisect.bisect_right(self._seps, x) - 1, 0)
        blob, offs = self._blob, self._offs
        lo, hi = 0, len(offs)
        while lo < hi:                       # first separator > x
            mid = (lo + hi) >> 1
            if blob[offs[mid - 1] if mid else 0:offs[mid]] <= x:
                lo = mid + 1
            else:
                hi = mid
        return max(lo - 1, 0)

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
        node = cls(id_, level, None, kids, None)
        node._blob = keys[pos:]
        node._offs = offs
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


class RankIndex:
    """The rank index of one sorted set version.

    store: the keyspace Store; r_prefix: prefix of its score-index records (element
    key = record key without it); n_prefix: prefix of its node records; shape: its
    Shape (changed in place: the caller writes it back into the meta record);
    count: the number of elements (kept by the caller, read for the height-0 case).
    """

    def __init__(self, store, r_prefix, n_prefix, shape, bmax=BMAX, fmax=FMAX):
        if bmax < 4 or fmax < 4:
            raise ValueError("bmax and fmax must be at least 4")
        self.store = store               # reads and writes of the command group
        self.rp = r_prefix               # score index records: rp + element key -> b""
        self.np = n_prefix               # node records: np + id(8) + b"k" | b"c"
        self.shape = shape               # height, root, next id
        self.bmax = bmax                 # elements per bucket at most
        self.bmin = max(1, bmax // 4)    # elements per bucket (not alone in the tree) at least
        self.fmax = fmax                 # children per node at most
        self.fmin = max(2, fmax // 4)    # children per non-root node at least
        self._nodes = {}                 # id -> Node read or changed by the current operation
        self._deleted = set()            # ids of nodes removed by the current operation

    # -- records --------------------------------------------------------------------
    #
    # Decoded nodes are kept in _CACHE across commands, keyed by their record prefix and
    # validated on every use by the counts record: it repeats the random stamp of the
    # keys record it goes with (a new stamp for every rewrite of the keys), so a cached
    # node whose stamp matches has the stored separators and children, and only the
    # counts are decoded again when they changed. A level then costs one get.

    def _base(self, id_):
        return self.np + id_.to_bytes(8, "big")

    def _load(self, id_):
        node = self._nodes.get(id_)
        if node is not None:
            return node
        base = self._base(id_)
        counts = self.store.get(base + _COUNTS_TAG)
        if counts is None:
            raise ValueError(f"zset rank index: node {id_} is missing")
        node = _CACHE.get(base)
        if node is not None and node.stamp == counts[1:9]:
            if node.raw_counts != counts:
                node.set_counts(counts, len(node.counts))
            if node._seps is None:
                node.seps                   # noqa: B018 - materialize: bisect from now on
            _CACHE.move_to_end(base)
        else:
            keys = self.store.get(base + _KEYS_TAG)
            if keys is None:
                raise ValueError(f"zset rank index: node {id_} has no keys record")
            node = Node.decode(id_, keys, counts)
            _CACHE[base] = node
            if len(_CACHE) > CACHE_NODES:
                _CACHE.popitem(last=False)
        self._nodes[id_] = node
        return node

    def _new_node(self, level, seps, kids, counts):
        id_ = self.shape.next_id
        self.shape.next_id += 1
        node = Node(id_, level, seps, kids, None)
        node.counts = array(self._typecode(level))
        node.splice(0, 0, counts)
        node.keys_dirty = node.counts_dirty = True
        self._nodes[id_] = node
        return node

    def _typecode(self, level):
        """The narrowest count width that holds any count of a node at this level."""
        most = self.bmax * self.fmax ** (level - 1)
        for typecode in ("B", "H", "I"):
            if most < 1 << (8 * _ITEMSIZE[typecode]):
                return typecode
        return "Q"

    def _drop(self, node):
        self._nodes.pop(node.id, None)
        self._deleted.add(node.id)

    def _flush(self):
        """Writes the changed nodes and deletes the dropped ones."""
        put, delete = self.store.put, self.store.delete
        for id_ in self._deleted:
            base = self._base(id_)
            delete(base + _KEYS_TAG)
            delete(base + _COUNTS_TAG)
            _CACHE.pop(base, None)
        for node in self._nodes.values():
            if node.keys_dirty or node.counts_dirty:
                base = self._base(node.id)
                if node.keys_dirty:
                    node.stamp = os.urandom(8)
                    put(base + _KEYS_TAG, node.encode_keys())
                    node.counts_dirty = True        # the counts record carries the new stamp
                if node.counts_dirty:
                    raw = node.encode_counts()
                    if raw != node.raw_counts:      # a move out and back in leaves it as it was
                        node.raw_counts = raw
                        put(base + _COUNTS_TAG, raw)
                node.keys_dirty = node.counts_dirty = False
                _CACHE[base] = node
        while len(_CACHE) > CACHE_NODES:
            _CACHE.popitem(last=False)
        self._nodes.clear()
        self._deleted.clear()

    def _forget(self, changed=False):
        """Ends an operation without writing; `changed`: it failed after changing nodes
        in memory, which must then leave the cache."""
        if changed:
            for id_ in list(self._nodes) + list(self._deleted):
                _CACHE.pop(self._base(id_), None)
        self._nodes.clear()
        self._deleted.clear()

    # -- scans of the score index ---------------------------------------------------

    def _bound(self, hi):
        return None if hi is None else self.rp + hi

    def _count_range(self, lo, x):
        """Elements with lo <= key < x."""
        with self.store.scan(start=self.rp + lo, end=self.rp + x) as it:
            return sum(1 for _ in it)

    def _nth(self, lo, hi, k, size):
        """The element key at offset k of the bucket [lo, hi) holding `size` elements,
        scanning from the nearer end."""
        rp, n = self.rp, len(self.rp)
        if k * 2 < size or size <= 0:
            with self.store.scan(start=rp + lo, end=self._bound(hi), prefix=rp) as it:
                for key, _ in it:
                    if k == 0:
                        return key[n:]
                    k -= 1
        else:
            k = size - 1 - k
            with self.store.scan(start=rp + lo, end=self._bound(hi), prefix=rp, reverse=True) as it:
                for key, _ in it:
                    if k == 0:
                        return key[n:]
                    k -= 1
        raise ValueError("zset rank index: a bucket holds fewer elements than its count")

    def _bucket_keys(self, lo, hi):
        rp, n = self.rp, len(self.rp)
        with self.store.scan(start=rp + lo, end=self._bound(hi), prefix=rp) as it:
            return [k[n:] for k, _ in it]

    # -- descent --------------------------------------------------------------------

    def _descend(self, x, ranks=True):
        """[(node, child index)] from the root to the level-1 node whose bucket holds
        x, the elements before that bucket, and the upper bound of that level-1 node's
        range (None: the end)."""
        path = []
        before = 0
        hi = None                            # upper bound of the current node's range
        node = self._load(self.shape.root)
        while True:
            i = node.route(x)
            path.append((node, i))
            if i and ranks:
                before += sum(node.counts[:i])
            if node.level == 1:
                return path, before, hi
            if i + 1 < len(node):
                hi = node.sep(i + 1)
            node = self._load(node.kids[i])

    # -- queries ----------------------------------------------------------------------

    def rank_of(self, x):
        """The number of elements whose key is below x (x need not be an element)."""
        try:
            if self.shape.height == 0:
                with self.store.scan(start=self.rp, end=self.rp + x) as it:
                    return sum(1 for _ in it)
            path, before, _ = self._descend(x)
            node, i = path[-1]
            return before + self._count_range(node.sep(i), x)
        finally:
            self._forget()

    def select(self, k, count):
        """The element key of rank k (0 <= k < count, count = the set's size)."""
        try:
            if self.shape.height == 0:
                return self._nth(b"", None, k, count)
            node = self._load(self.shape.root)
            hi = None
            while True:
                acc = list(itertools.accumulate(node.counts))
                i = bisect.bisect_right(acc, k)
                if i >= len(acc):
                    raise ValueError("zset rank index: rank beyond the counts")
                if i:
                    k -= acc[i - 1]
                if i + 1 < len(node):
                    hi = node.sep(i + 1)
                if node.level == 1:
                    return self._nth(node.sep(i), hi, k, node.counts[i])
                node = self._load(node.kids[i])
        finally:
            self._forget()

    # -- changes ----------------------------------------------------------------------

    def _add_to(self, x):
        """In memory: counts x (already in the score index) in, splitting as needed."""
        path, _, node_hi = self._descend(x, False)
        for node, i in path:
            node.add(i, 1)
            node.counts_dirty = True
        leaf, i = path[-1]
        if leaf.counts[i] > self.bmax:
            self._split_bucket(leaf, i, self._bucket_hi(leaf, i, node_hi))
            self._fix_overflow(path)

    def _remove_from(self, path, node_hi):
        """In memory: counts out the element whose descent is `path` (its record already
        gone from the score index), merging as needed."""
        for node, i in path:
            node.add(i, -1)
            node.counts_dirty = True
        leaf, i = path[-1]
        if leaf.counts[i] < self.bmin and len(leaf) >= 2:
            self._merge_bucket(leaf, i, node_hi)
        self._fix_underflow(path)

    def inserted(self, x, count):
        """Element key x was just written to the score index; count: elements now."""
        if self.shape.height == 0:
            if count > self.bmax:
                self.rebuild(count)
            return
        try:
            self._add_to(x)
            self._flush()
        except BaseException:
            self._forget(changed=True)
            raise

    def deleted(self, x, count):
        """Element key x was just removed from the score index; count: elements now."""
        if self.shape.height == 0:
            return
        try:
            path, _, node_hi = self._descend(x, False)
            self._remove_from(path, node_hi)
            self._flush()
        except BaseException:
            self._forget(changed=True)
            raise

    def moved(self, old, new, count, write_new):
        """An element's key changes from old (its record already deleted) to new, which
        write_new() writes: the index counts old out before the new record exists and
        new in after, in one pass over the nodes. When both keys lie in the same bucket
        no count changes and nothing is written."""
        if self.shape.height == 0:
            write_new()
            return
        try:
            path, _, node_hi = self._descend(old, False)
            leaf, i = path[-1]
            hi = self._bucket_hi(leaf, i, node_hi)
            if leaf.sep(i) <= new and (hi is None or new < hi):
                self._forget()
                write_new()
                return
            self._remove_from(path, node_hi)
            write_new()
            if self.shape.height:
                self._add_to(new)
            self._flush()
        except BaseException:
            self._forget(changed=True)
            raise
        if self.shape.height == 0 and count > self.bmax:
            self.rebuild(count)

    # -- splits and merges ---------------------------------------------------------------

    def _split_bucket(self, leaf, i, hi):
        """Bucket i of leaf holds too many elements: cut it in the middle."""
        lo = leaf.sep(i)
        keys = self._bucket_keys(lo, hi)
        if len(keys) != leaf.counts[i]:
            raise ValueError(f"zset rank index: bucket holds {len(keys)} elements, counted {leaf.counts[i]}")
        mid = len(keys) // 2
        sep = shortest_separator(keys[mid - 1], keys[mid])
        leaf.seps.insert(i + 1, sep)
        leaf.splice(i, i + 1, [mid, len(keys) - mid])
        leaf.keys_dirty = leaf.counts_dirty = True

    @staticmethod
    def _bucket_hi(leaf, i, node_hi):
        """The upper bound of bucket i of leaf, whose own range ends at node_hi."""
        return leaf.sep(i + 1) if i + 1 < len(leaf) else node_hi

    def _merge_bucket(self, leaf, i, node_hi):
        """Bucket i of leaf is under its minimum: join it with a neighbour (and cut the
        result in the middle again when that holds too many)."""
        a = i - 1 if i > 0 else i
        seps = leaf.seps
        leaf.splice(a, a + 2, [leaf.counts[a] + leaf.counts[a + 1]])
        del seps[a + 1]
        leaf.keys_dirty = leaf.counts_dirty = True
        if leaf.counts[a] > self.bmax:
            self._split_bucket(leaf, a, self._bucket_hi(leaf, a, node_hi))

    def _split_node(self, node):
        """node has too many children: move its upper half to a new right sibling."""
        h = len(node) // 2
        seps = node.seps
        right = self._new_node(node.level, seps[h:], None if node.kids is None else node.kids[h:], node.counts[h:])
        del seps[h:]
        if node.kids is not None:
            del node.kids[h:]
        del node.counts[h:]
        node.keys_dirty = node.counts_dirty = True
        return right

    def _fix_overflow(self, path):
        """Splits nodes of path (root last) holding more than fmax children, bottom up."""
        for depth in range(len(path) - 1, -1, -1):
            node = path[depth][0]
            if len(node) <= self.fmax:
                return
            right = self._split_node(node)
            if depth == 0:       # the root split: a new root above both halves
                root = self._new_node(node.level + 1, [node.seps[0], right.seps[0]], array("Q", [node.id, right.id]),
                                      [sum(node.counts), sum(right.counts)])
                self.shape.root = root.id
                self.shape.height += 1
                return
            parent, pi = path[depth - 1]
            moved = sum(right.counts)
            parent.seps.insert(pi + 1, right.seps[0])
            parent.kids.insert(pi + 1, right.id)
            parent.add(pi, -moved)
            parent.splice(pi + 1, pi + 1, [moved])
            parent.keys_dirty = parent.counts_dirty = True

    def _fix_underflow(self, path):
        """Merges nodes of path holding fewer than fmin children with a sibling, bottom
        up, then lowers the root while it has a single child."""
        for depth in range(len(path) - 1, 0, -1):
            node = path[depth][0]
            if len(node) >= self.fmin:
                break
            parent, pi = path[depth - 1]
            a = pi - 1 if pi > 0 else pi
            left = self._load(parent.kids[a])
            right = self._load(parent.kids[a + 1])
            left.seps.extend(right.seps)
            if left.kids is not None:
                left.kids.extend(right.kids)
            left.splice(len(left), len(left), right.counts)
            left.keys_dirty = left.counts_dirty = True
            self._drop(right)
            parent.splice(a, a + 2, [parent.counts[a] + parent.counts[a + 1]])
            del parent.seps[a + 1]
            del parent.kids[a + 1]
            parent.keys_dirty = parent.counts_dirty = True
            if len(left) > self.fmax:
                moved = self._split_node(left)
                n_moved = sum(moved.counts)
                parent.seps.insert(a + 1, moved.seps[0])
                parent.kids.insert(a + 1, moved.id)
                parent.add(a, -n_moved)
                parent.splice(a + 1, a + 1, [n_moved])
        root = self._load(self.shape.root)
        while len(root) == 1 and root.level >= 2:
            child = self._load(root.kids[0])
            self._drop(root)
            self.shape.root = child.id
            self.shape.height -= 1
            root = child
        if len(root) == 1 and root.level == 1:
            self._drop(root)
            self.shape.root = 0
            self.shape.height = 0

    # -- bulk --------------------------------------------------------------------------

    def clear(self):
        """Deletes every node record (height 0 after)."""
        with self.store.scan(prefix=self.np) as it:
            keys = [k for k, _ in it]
        for k in keys:
            self.store.delete(k)
        self.shape.height = 0
        self.shape.root = 0
        self._forget()

    def rebuild(self, count):
        """Builds the index from scratch over the score index, which holds `count`
        elements: one streamed scan, buckets and nodes filled to 3/4 evenly (O(count))."""
        self.clear()
        if count <= self.bmax:
            return
        target = max(self.bmin, (self.bmax * 3) // 4)
        nb = -(-count // target)
        sizes = _even(count, nb)
        # level 1: bucket separators and counts, cut into nodes as they come
        fill = max(self.fmin, (self.fmax * 3) // 4)
        node_sizes = _even(nb, -(-nb // fill))
        level_entries = []             # (first separator, node id, elements) of the level being built
        seps, counts = [], []
        b = 0                          # bucket being filled
        in_bucket = 0
        prev = None
        node_no = 0
        n = len(self.rp)
        with self.store.scan(prefix=self.rp) as it:
            for key, _ in it:
                key = key[n:]
                if in_bucket == 0:
                    seps.append(b"" if prev is None else shortest_separator(prev, key))
                    counts.append(sizes[b])
                in_bucket += 1
                if in_bucket == sizes[b]:
                    b += 1
                    in_bucket = 0
                    if len(counts) == node_sizes[node_no]:
                        node = self._new_node(1, seps, None, counts)
                        level_entries.append((seps[0], node.id, sum(counts)))
                        seps, counts = [], []
                        node_no += 1
                        self._flush()
                prev = key
        if b != nb or seps:
            self._forget(changed=True)
            raise ValueError(f"zset rank index: rebuild counted {count} elements, found a different number")
        level = 1
        while len(level_entries) > 1:
            level += 1
            sizes = _even(len(level_entries), -(-len(level_entries) // fill))
            upper = []
            pos = 0
            for size in sizes:
                part = level_entries[pos:pos + size]
                pos += size
                node = self._new_node(level, [p[0] for p in part], array("Q", [p[1] for p in part]),
                                      [p[2] for p in part])
                upper.append((part[0][0], node.id, sum(p[2] for p in part)))
            level_entries = upper
        self.shape.root = level_entries[0][1]
        self.shape.height = level
        self._flush()

    # -- checking ------------------------------------------------------------------------

    def check(self, count):
        """Verifies invariants Z4-Z10 against the score index (tests; O(n))."""
        if self.shape.height == 0:
            with self.store.scan(prefix=self.rp) as it:
                found = sum(1 for _ in it)
            assert found == count <= self.bmax, (found, count)
            with self.store.scan(prefix=self.np) as it:
                assert next(iter(it), None) is None, "node records at height 0"
            return
        seen = set()
        buckets = []

        def walk(id_, level, lo, hi, is_root):
            # decoded from the records, not taken from the cache; a cached copy whose
            # stamp matches must equal it (Z10)
            base = self._base(id_)
            keys, counts = self.store.get(base + _KEYS_TAG), self.store.get(base + _COUNTS_TAG)
            node = Node.decode(id_, keys, counts)
            assert len(node.stamp) == 8 and len(counts) == 9 + len(node) * node.counts.itemsize
            cached = _CACHE.get(base)
            if cached is not None and cached.stamp == node.stamp:
                assert (cached.level, cached.seps, cached.kids) == (node.level, node.seps, node.kids), id_
                if cached.raw_counts == counts:
                    assert list(cached.counts) == list(node.counts), id_
            seen.add(id_)
            assert node.level == level, (node.level, level)
            assert len(node) >= (2 if is_root else self.fmin), (len(node), is_root)
            assert len(node) <= self.fmax
            seps = node.seps
            assert seps[0] == lo, (seps[0], lo)
            assert all(seps[j] < seps[j + 1] for j in range(len(seps) - 1))
            assert hi is None or seps[-1] < hi
            total = 0
            for j in range(len(node)):
                child_hi = seps[j + 1] if j + 1 < len(node) else hi
                if level == 1:
                    buckets.append((seps[j], child_hi, node.counts[j]))
                    sub = node.counts[j]
                else:
                    sub = walk(node.kids[j], level - 1, seps[j], child_hi, False)
                    assert sub == node.counts[j], (sub, node.counts[j])
                total += sub
            return total

        total = walk(self.shape.root, self.shape.height, b"", None, True)
        assert total == count, (total, count)
        for lo, hi, c in buckets:
            found = len(self._bucket_keys(lo, hi))
            assert found == c, (lo, hi, found, c)
            assert c <= self.bmax and (len(buckets) == 1 or c >= self.bmin), (c, len(buckets))
        with self.store.scan(prefix=self.np) as it:
            ids = {int.from_bytes(k[len(self.np):len(self.np) + 8], "big") for k, _ in it}
        assert ids == seen, (ids - seen, seen - ids)
        assert all(i < self.shape.next_id for i in ids)
        self._forget()


def _even(total, parts):
    """`parts` sizes summing to total, differing by at most one."""
    base, extra = divmod(total, parts)
    return [base + 1 if j < extra else base for j in range(parts)]
