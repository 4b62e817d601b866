"""The LSM's block cache (lsm/blockcache.pxd): a C hash table of raw blocks with CLOCK
eviction, bounded by bytes. E1: the bytes held stay within the capacity; E2: a lookup returns
exactly the bytes inserted under its key, or nothing."""
import random

from hypothesis import given, settings, strategies as st

from kvdb._core.lsm.blockcache import BlockCache

OVERHEAD = 96            # BLOCK_CACHE_OVERHEAD (blockcache.pxd)
SHIFT = 40               # BLOCK_KEY_SHIFT


def key(table, offset):
    return (table << SHIFT) | offset


ops = st.lists(st.tuples(st.sampled_from(["insert", "lookup", "drop"]), st.integers(1, 4), st.integers(0, 40),
                         st.integers(0, 900)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(ops, st.sampled_from([0, 500, 3000, 20000]))
def test_E1_E2_the_cache_holds_at_most_its_capacity_and_returns_what_was_inserted(steps, capacity):
    cache = BlockCache(capacity)
    model = {}                           # what the cache may hold: key -> the bytes inserted first
    for op, table, offset, size in steps:
        k = key(table, offset)
        if op == "insert":
            block = bytes([table, offset % 256]) * (size // 2)
            cache.insert(k, block)
            model.setdefault(k, block)   # a key already cached keeps its block
        elif op == "lookup":
            got = cache.lookup(k)
            assert got is None or got == model.get(k)                                     # E2
        else:
            cache.drop_table(table)
            for m in [m for m in model if m >> SHIFT == table]:
                del model[m]
        held = {m: cache.lookup(m) for m in model}
        held = {m: b for m, b in held.items() if b is not None}
        for m, b in held.items():
            assert b == model[m]                                                         # E2
        for m in [m for m in model if m not in held]:
            del model[m]                 # evicted: it may not come back by itself
        assert len(cache) == len(held)
        assert cache.used == sum(len(b) + OVERHEAD for b in held.values())               # E1
        assert cache.used <= capacity                                                    # E1


def test_E1_a_block_larger_than_the_cache_is_not_kept():
    cache = BlockCache(1000)
    cache.insert(key(1, 0), b"x" * 2000)
    assert cache.lookup(key(1, 0)) is None and cache.used == 0 and len(cache) == 0


def test_E2_blocks_read_again_outlive_blocks_read_once():
    """CLOCK: a block hit since the hand last passed survives that pass."""
    cache = BlockCache(100 * (1000 + OVERHEAD))
    hot = key(9, 0)
    cache.insert(hot, b"h" * 1000)
    rng = random.Random(1)
    for i in range(1000):                # ten times the capacity, each block read once
        cache.insert(key(1, i), bytes([rng.randrange(256)]) * 1000)
        assert cache.lookup(hot) == b"h" * 1000
    assert cache.hits >= 1000 and len(cache) == 100
