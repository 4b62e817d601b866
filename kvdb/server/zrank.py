"""The rank index of a sorted set: an order-statistic tree over its score index, so
ZRANK, ZRANGE by rank, ZCOUNT and ZREMRANGEBYRANK cost O(log n) engine operations
instead of a scan from the first element. Layout: docs/format/server-keys.md (Sorted sets).

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
at each level (a binary search in the separators of a node, decoded once and then
kept in the Store's trusted node cache, so a cached level costs no engine operation),
then counts the elements of x's bucket on x's nearer side (a scan of at most `bmax`
records). select(k) and locate(k) descend by the counts the same way. A bucket or node
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
import itertools
import os
import sys
from array import array

from .zrankcheck import check_index
from .zranknode import (_WIDTH_BYTE as _WIDTH, BMAX, CACHE_NODES, COUNTS_TAG, FMAX, KEYS_TAG, Node, Shape, _le,
                        node_cache, shortest_separator)

__all__ = ["RankIndex", "Shape", "BMAX", "FMAX", "shortest_separator"]

_bisect_right = bisect.bisect_right
_LITTLE = sys.byteorder == "little"
_accumulate = itertools.accumulate


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
        self.cache = node_cache(store)   # decoded nodes of the database, trusted (zranknode.node_cache)
        self._nodes = {}                 # id -> Node read or changed by the current change
        self._deleted = set()            # ids of nodes removed by the current change

    # -- records --------------------------------------------------------------------
    #
    # Decoded nodes are kept across commands in the Store's node cache and used without
    # reading their records (zranknode.node_cache says why that is safe): every change
    # writes the nodes it changed and puts them in the cache (_flush), or, when it fails
    # half-way, evicts every node it touched (_forget), so the cache never holds a node
    # that differs from its records. A descent through cached nodes costs no engine
    # operation; a node not cached costs two gets, once.

    def _base(self, id_):
        return self.np + id_.to_bytes(8, "big")

    def _get(self, id_):
        """The node `id_`, cached or decoded from its records (then cached); queries use
        it without registering it in the current change."""
        base = self.np + id_.to_bytes(8, "big")
        cache = self.cache
        node = cache.get(base)
        if node is not None:
            cache.move_to_end(base)
            return node
        counts = self.store.get(base + COUNTS_TAG)
        if counts is None:
            raise ValueError(f"zset rank index: node {id_} is missing")
        keys = self.store.get(base + KEYS_TAG)
        if keys is None:
            raise ValueError(f"zset rank index: node {id_} has no keys record")
        node = Node.decode(id_, keys, counts)
        cache[base] = node
        if len(cache) > CACHE_NODES:
            cache.popitem(last=False)
        return node

    def _load(self, id_):
        """The node `id_`, registered in the current change (written by _flush if it
        becomes dirty, evicted by _forget if the change fails)."""
        node = self._nodes.get(id_)
        if node is None:
            base = self.np + id_.to_bytes(8, "big")
            node = self.cache.get(base)
            if node is None:
                node = self._get(id_)
            else:
                self.cache.move_to_end(base)
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
            if most < 1 << (8 * array(typecode).itemsize):
                return typecode
        return "Q"

    def _drop(self, node):
        self._nodes.pop(node.id, None)
        self._deleted.add(node.id)

    def _flush(self):
        """Writes the changed nodes, deletes the dropped ones, and leaves the cache
        holding exactly what the records now say."""
        put = self.store.put
        cache = self.cache
        np = self.np
        if self._deleted:
            delete = self.store.delete
            for id_ in self._deleted:
                base = np + id_.to_bytes(8, "big")
                delete(base + KEYS_TAG)
                delete(base + COUNTS_TAG)
                cache.pop(base, None)
            self._deleted.clear()
        for node in self._nodes.values():
            if node.counts_dirty or node.keys_dirty:
                base = np + node.id.to_bytes(8, "big")
                if node.keys_dirty:
                    node.stamp = os.urandom(8)
                    put(base + KEYS_TAG, node.encode_keys())
                    node.keys_dirty = False
                counts = node.counts
                raw = _WIDTH[counts.typecode] + node.stamp + (counts.tobytes() if _LITTLE else _le(counts))
                if raw != node.raw_counts:      # a move out and back in leaves it as it was
                    node.raw_counts = raw
                    put(base + COUNTS_TAG, raw)
                node.counts_dirty = False
                node.acc = None
                cache[base] = node
        if len(cache) > CACHE_NODES:
            while len(cache) > CACHE_NODES:
                cache.popitem(last=False)
        self._nodes.clear()

    def _forget(self, changed=False):
        """Ends a change without writing; `changed`: it failed after changing nodes in
        memory (or writing some of them), which must then leave the cache."""
        if changed:
            np = self.np
            for id_ in list(self._nodes) + list(self._deleted):
                self.cache.pop(np + id_.to_bytes(8, "big"), None)
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

    def _descend(self, x):
        """For a change: [(node, child index)] from the root to the level-1 node whose
        bucket holds x (nodes registered in the change), and the upper bound of that
        level-1 node's range (None: the end)."""
        path = []
        hi = None                            # upper bound of the current node's range
        node = self._load(self.shape.root)
        while True:
            seps = node.seps
            i = _bisect_right(seps, x) - 1
            if i < 0:
                i = 0
            path.append((node, i))
            if node.level == 1:
                return path, hi
            if i + 1 < len(seps):
                hi = seps[i + 1]
            node = self._load(node.kids[i])

    # -- queries ----------------------------------------------------------------------

    def rank_of(self, x):
        """The number of elements whose key is below x (x need not be an element): the
        counts left of x's path, and a count of x's bucket from its nearer end (guessed
        by where x falls between the bucket's bounds)."""
        rp = self.rp
        if self.shape.height == 0:
            with self.store.scan(start=rp, end=rp + x) as it:
                return sum(1 for _ in it)
        before = 0
        hi = None                            # upper bound of the current node's range
        get = self._get
        node = get(self.shape.root)
        while True:
            seps = node.seps
            i = _bisect_right(seps, x) - 1
            if i > 0:
                acc = node.acc
                if acc is None:
                    acc = node.acc = list(_accumulate(node.counts))
                before += acc[i - 1]
            elif i < 0:
                i = 0
            if i + 1 < len(seps):
                hi = seps[i + 1]
            if node.level == 1:
                break
            node = get(node.kids[i])
        lo = seps[i]
        if hi is not None and _upper_half(lo, hi, x):
            with self.store.scan(start=rp + x, end=rp + hi) as it:
                return before + node.counts[i] - sum(1 for _ in it)
        with self.store.scan(start=rp + lo, end=rp + x) as it:
            return before + sum(1 for _ in it)

    def locate(self, k, count):
        """The bucket of rank k (0 <= k < count): (lo, hi, offset of k in it, its size);
        hi None: the bucket runs to the end."""
        if self.shape.height == 0:
            return b"", None, k, count
        get = self._get
        node = get(self.shape.root)
        hi = None
        while True:
            acc = node.acc
            if acc is None:
                acc = node.acc = list(_accumulate(node.counts))
            i = _bisect_right(acc, k)
            if i >= len(acc):
                raise ValueError("zset rank index: rank beyond the counts")
            if i:
                k -= acc[i - 1]
            if i + 1 < len(acc):
                hi = node.seps[i + 1]
            if node.level == 1:
                return node.seps[i], hi, k, node.counts[i]
            node = get(node.kids[i])

    def select(self, k, count):
        """The element key of rank k (0 <= k < count, count = the set's size)."""
        lo, hi, k, size = self.locate(k, count)
        return self._nth(lo, hi, k, size)

    # -- changes ----------------------------------------------------------------------

    def _add_to(self, x):
        """In memory: counts x (already in the score index) in, splitting as needed."""
        path, node_hi = self._descend(x)
        for node, i in path:
            try:
                node.counts[i] += 1
            except OverflowError:
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
            node.counts[i] -= 1
            node.counts_dirty = True
        leaf, i = path[-1]
        if leaf.counts[i] < self.bmin and len(leaf) >= 2:
            self._merge_bucket(leaf, i, node_hi)
            self._fix_underflow(path)       # only a merge changes a node's number of children

    def inserted(self, x, count):
        """Element key x was just written to the score index; count: elements now."""
        if self.shape.height == 0:
            if count > self.bmax:
                self.rebuild(count)
            return
        try:
            path, node_hi = self._descend(x)
            for node, i in path:
                try:
                    node.counts[i] += 1
                except OverflowError:
                    node.add(i, 1)
                node.counts_dirty = True
            if node.counts[i] > self.bmax:
                self._split_bucket(node, i, self._bucket_hi(node, i, node_hi))
                self._fix_overflow(path)
            self._flush()
        except BaseException:
            self._forget(changed=True)
            raise

    def deleted(self, x, count):
        """Element key x was just removed from the score index; count: elements now."""
        if self.shape.height == 0:
            return
        try:
            path, node_hi = self._descend(x)
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
            path, node_hi = self._descend(old)
            leaf, i = path[-1]
            hi = self._bucket_hi(leaf, i, node_hi)
            if leaf.seps[i] <= new and (hi is None or new < hi):
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
        lo = leaf.seps[i]
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
        return leaf.seps[i + 1] if i + 1 < len(leaf) else node_hi

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
        cache = self.cache
        for k in keys:
            self.store.delete(k)
            cache.pop(k[:-1], None)
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
        check_index(self, count)


def _upper_half(lo, hi, x):
    """Whether x (lo <= x < hi) is likely nearer hi: compares 8 bytes of each from the
    first byte where lo and hi differ, as numbers."""
    n = min(len(lo), len(hi))
    j = 0
    while j < n and lo[j] == hi[j]:
        j += 1
    a = int.from_bytes(lo[j:j + 8].ljust(8, b"\0"), "big")
    b = int.from_bytes(hi[j:j + 8].ljust(8, b"\0"), "big")
    v = int.from_bytes(x[j:j + 8].ljust(8, b"\0"), "big")
    return 2 * v > a + b


def _even(total, parts):
    """`parts` sizes summing to total, differing by at most one."""
    base, extra = divmod(total, parts)
    return [base + 1 if j < extra else base for j in range(parts)]
