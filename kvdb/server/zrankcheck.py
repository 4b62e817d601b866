"""Verification of a sorted set's rank index against its score index (invariants
Z4-Z10 of docs/format/server-keys.md (Sorted sets)), for tests: O(n)."""
import itertools

from .zranknode import COUNTS_TAG, KEYS_TAG, Node, node_cache

__all__ = ["check_index"]


def check_index(index, count):
    """Asserts that the RankIndex `index` of a set of `count` elements is consistent:
    every node decoded from its records (and equal to any cached copy), counts equal to
    the score records below them, fill limits, separators ordered, no stray records."""
    if index.shape.height == 0:
        with index.store.scan(prefix=index.rp) as it:
            found = sum(1 for _ in it)
        assert found == count <= index.bmax, (found, count)
        with index.store.scan(prefix=index.np) as it:
            assert next(iter(it), None) is None, "node records at height 0"
        return
    seen = set()
    buckets = []

    def walk(id_, level, lo, hi, is_root):
        # decoded from the records, not taken from the cache; a cached copy is trusted
        # by the index, so it must be exactly what the records say (Z10)
        base = index._base(id_)
        keys, counts = index.store.get(base + KEYS_TAG), index.store.get(base + COUNTS_TAG)
        node = Node.decode(id_, keys, counts)
        assert len(node.stamp) == 8 and len(counts) == 9 + len(node) * node.counts.itemsize
        cached = node_cache(index.store).get(base)
        if cached is not None:
            assert (cached.level, cached.seps, cached.kids, cached.stamp) == \
                (node.level, node.seps, node.kids, node.stamp), f"cached node {id_} differs from its keys record"
            assert cached.raw_counts == counts and list(cached.counts) == list(node.counts), \
                f"cached node {id_} differs from its counts record"
            assert not cached.keys_dirty and not cached.counts_dirty, id_
            assert cached.acc is None or cached.acc == list(itertools.accumulate(node.counts)), \
                f"cached node {id_}: stale prefix sums"
        seen.add(id_)
        assert node.level == level, (node.level, level)
        assert len(node) >= (2 if is_root else index.fmin), (len(node), is_root)
        assert len(node) <= index.fmax
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

    total = walk(index.shape.root, index.shape.height, b"", None, True)
    assert total == count, (total, count)
    for lo, hi, c in buckets:
        found = len(index._bucket_keys(lo, hi))
        assert found == c, (lo, hi, found, c)
        assert c <= index.bmax and (len(buckets) == 1 or c >= index.bmin), (c, len(buckets))
    with index.store.scan(prefix=index.np) as it:
        ids = {int.from_bytes(k[len(index.np):len(index.np) + 8], "big") for k, _ in it}
    assert ids == seen, (ids - seen, seen - ids)
    assert all(i < index.shape.next_id for i in ids)
    index._forget()
