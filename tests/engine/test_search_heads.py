"""The B+Tree's search heads (kvdb/_core/btree/tree_heads.pxi): a clean page's keys as a
compact array that a search reads instead of the scattered cells. Each test is named after the
invariant it checks (A1-A3 in docs/format/README.md)."""
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import kvdb

# Keys that share long prefixes, end inside another key's prefix, hold zero and 0xff bytes and
# differ past the two bytes a head keeps: the cases a head's padding and ties must get right.
_alphabet = st.sampled_from([b"\x00", b"\x01", b"a", b"b", b"\xfe", b"\xff"])
_stems = st.sampled_from([b"", b"user:", b"user:0000", b"\x00\x00\x00", b"k" * 40])
_keys = st.builds(lambda stem, tail: stem + b"".join(tail), _stems, st.lists(_alphabet, max_size=6))


def probes(keys, rng):
    """Keys to search for: each stored key and its neighbours (a byte longer, shorter, one more
    or less at the end), every prefix of a few of them, and some random ones."""
    out = set(keys)
    for k in keys:
        out.add(k + b"\x00")
        out.add(k[:-1])
        if k:
            out.add(k[:-1] + bytes([(k[-1] + 1) % 256]))
            out.add(k[:-1] + bytes([(k[-1] - 1) % 256]))
    for k in rng.sample(sorted(keys), min(5, len(keys))):
        out.update(k[:i] for i in range(len(k) + 1))
    out.update(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) for _ in range(50))
    out.discard(b"")
    return sorted(out)


def clean_copy(path, pairs, page_size):
    """A database holding `pairs`, closed and opened again: every page clean, as heads need."""
    with kvdb.open(path, page_size=page_size, sync="off") as db:
        db.put_many(pairs)
    return kvdb.open(path, page_size=page_size)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.sets(_keys, min_size=1, max_size=600), page_size=st.sampled_from([512, 1024, 4096]),
       seed=st.integers(0, 2**32 - 1))
def test_A1_heads_answer_every_search_as_the_cells_do(tmp_path_factory, keys, page_size, seed):
    rng = random.Random(seed)
    keys.discard(b"")
    if not keys:
        return
    pairs = [(k, b"v" * rng.randrange(0, 30)) for k in sorted(keys)]
    with clean_copy(tmp_path_factory.mktemp("db") / "db", pairs, page_size) as db:
        with_heads, pages = db.storage._check_search(probes(keys, rng))
        assert pages >= 1
        if len(keys) >= 200:
            assert with_heads >= 1          # the check compared heads, not nothing
        model = dict(pairs)
        for k in probes(keys, rng):
            assert db.get(k) == model.get(k)
        for start in rng.sample(probes(keys, rng), 20):
            assert [k for k, _ in db.scan(start=start, limit=3)] == [k for k in sorted(model) if k >= start][:3]


ONE_PAGE_SETS = {
    # the first key is the prefix every key shares: its head is all padding
    "prefix_is_a_key": [b"abc", b"abc\x00", b"abc\x00\x00", b"abc\x00\x01", b"abc\x01", b"abc\xff\xff\xff"],
    # keys that differ only past the two bytes of their heads: every probe ties
    "ties": [b"ab" + b"\x00\x00" + bytes([i]) for i in range(12)],
    # keys one or two bytes past the prefix, zero bytes where the padding goes
    "short_tails": [b"q", b"q\x00", b"q\x00\x00", b"q\x01", b"q\x01\x00", b"q\x01\x00\x00", b"q\x02"],
    # nothing shared
    "no_prefix": [b"\x00", b"\x01\x02", b"a", b"zz", b"\xff", b"\xff\xff\xff"],
}


@pytest.mark.parametrize("name", sorted(ONE_PAGE_SETS))
def test_A1_one_page_edge_cases(tmp_path, name):
    keys = ONE_PAGE_SETS[name]
    with clean_copy(tmp_path / "db", [(k, b"v") for k in keys], 4096) as db:
        probe = set(keys)
        for k in keys:
            probe.update(k[:i] for i in range(1, len(k) + 1))
            probe.update([k + b"\x00", k + b"\x00\x00", k + b"\xff", k + b"\x00\x00\x00"])
            probe.update(k[:-1] + bytes([b]) for b in (0, 1, 0xfe, 0xff))
        probe.discard(b"")
        assert db.storage._check_search(sorted(probe)) == (1, 1)
        for k in sorted(probe):
            assert db.get(k) == (b"v" if k in keys else None)


def test_A1_server_shaped_keys_get_heads_and_read_back(tmp_path):
    """Keys shaped as the server's string records (a prefix, then `key:` and twelve digits)."""
    pairs = [(b"\x00\x00key:%012d" % i, b"s" + bytes(8) + b"x" * 100) for i in range(0, 60000, 3)]
    with clean_copy(tmp_path / "db", pairs, 4096) as db:
        for _ in range(2):                   # a page gets heads at its second search
            for k, v in pairs[::7]:
                assert db.get(k) == v
        assert db.stats()["search_heads_built"] > 0
        rng = random.Random(3)
        with_heads, pages = db.storage._check_search(probes([k for k, _ in rng.sample(pairs, 300)], rng))
        assert with_heads == pages           # every page of this tree can have heads (A3's limits)
        for i in range(-5, 60005):
            k = b"\x00\x00key:%012d" % i
            assert db.get(k) == (pairs[i // 3][1] if i % 3 == 0 and 0 <= i < 60000 else None)


def test_A2_pages_changed_after_their_heads_were_built_read_right(tmp_path):
    """Heads are built on clean pages; writes then copy those pages (copy-on-write), change the
    copies in place while they are dirty, and checkpoints make them clean again: every read
    along the way answers as the model does, and the pages that end up clean get heads anew."""
    rng = random.Random(11)
    model = {b"k%07d" % i: b"v%d" % i for i in range(0, 20000, 2)}
    path = tmp_path / "db"
    with kvdb.open(path, page_size=1024, sync="off") as db:
        db.put_many(sorted(model.items()))
    with kvdb.open(path, page_size=1024, sync="off", checkpoint_size=256 << 10) as db:
        for round_ in range(6):
            for k in rng.sample(sorted(model), 300):       # searched twice: heads built
                assert db.get(k) == model[k]
                assert db.get(k) == model[k]
            built = db.stats()["search_heads_built"]
            assert built > 0
            for _ in range(800):
                k = b"k%07d" % rng.randrange(20000)
                if rng.random() < 0.3:
                    db.discard(k)
                    model.pop(k, None)
                else:
                    model[k] = b"w%d" % rng.randrange(10**6)
                    db.put(k, model[k])
                if rng.random() < 0.2:
                    probe = b"k%07d" % rng.randrange(20000)
                    assert db.get(probe) == model.get(probe)
            assert list(db.scan()) == sorted(model.items())
            db.storage._check_search(rng.sample(sorted(model), 50))
        db.verify()
    with kvdb.open(path) as db:
        assert list(db.scan()) == sorted(model.items())


def test_A3_long_keys_and_crowded_pages_get_no_heads(tmp_path):
    # keys of 128 bytes and more carry a two-byte length; with 4096-byte pages, three-byte keys
    # and empty values put more cells on a leaf than page_size / 16
    long_pairs = [(b"L" * 130 + b"%06d" % i, b"v") for i in range(3000)]
    with clean_copy(tmp_path / "long", long_pairs, 4096) as db:
        for _ in range(2):
            for k, v in long_pairs[::5]:
                assert db.get(k) == v
        assert db.stats()["search_heads_built"] == 0
        with_heads, pages = db.storage._check_search([long_pairs[0][0]])
        assert with_heads == 0 and pages > 1
    crowded = [(b"%03d" % i, b"") for i in range(1000)]
    with clean_copy(tmp_path / "crowded", crowded, 4096) as db:
        for _ in range(2):
            for k, v in crowded:
                assert db.get(k) == v
        with_heads, pages = db.storage._check_search([k for k, _ in crowded])
        assert pages > 1 and with_heads < pages      # the full leaves have none


def test_A3_heads_count_against_cache_size(tmp_path):
    """A page's heads are counted with it against cache_size, whichever read path loaded it; the
    count stays exact as pages are evicted, loaded again and given heads again."""
    pairs = [(b"\x00\x00key:%012d" % i, b"x" * 40) for i in range(40000)]
    for read_path in ("mmap", "pread"):
        path = tmp_path / read_path
        with kvdb.open(path, sync="off") as db:
            db.put_many(pairs)
        with kvdb.open(path, cache_size=64 << 10, read_path=read_path) as db:
            rng = random.Random(1)
            for _ in range(3):
                for k, v in rng.sample(pairs, 8000):
                    assert db.get(k) == v
                    assert db.get(k) == v
                counted, actual = db.storage._check_cache_cost()
                assert counted == actual, read_path
                stats = db.stats()
                assert stats["search_heads_built"] > 0 and stats["cache_evictions"] > 0
                assert stats["cache_bytes"] == counted <= (64 << 10) + 4096
