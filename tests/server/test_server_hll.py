"""HyperLogLog (PFADD PFCOUNT PFMERGE PFDEBUG): the same replies, and the same sketch
bytes, as a reference redis-server in RESP2 and RESP3; estimates within 2%; the
sketch code itself (kvdb/server/hll.py)."""
import random

import pytest

from kvdb.server import hll


@pytest.fixture(autouse=True)
def clean(pair):
    pair.flush()


def _pfadd_both(pair, key, elements, batch=500):
    for i in range(0, len(elements), batch):
        pair.same("PFADD", key, *elements[i:i + batch])


def test_pfadd_pfcount_basics(pair):
    pair.same("PFADD", "h")                      # creates an empty sketch: 1
    pair.same("PFADD", "h")                      # nothing changes: 0
    pair.same("GET", "h")
    pair.same("PFADD", "h", "a", "b", "c")
    pair.same("PFADD", "h", "a", "b", "c")
    pair.same("PFADD", "h", "a", "d")
    pair.same("GET", "h")
    pair.same("PFCOUNT", "h")
    pair.same("GET", "h")                        # the cached cardinality is in the header now
    pair.same("PFCOUNT", "h")
    pair.same("PFCOUNT", "missing")
    pair.same("PFCOUNT", "h", "missing")
    pair.same("PFADD", "h", "")
    pair.same("PFADD", "h", "x" * 100, b"\x00\xff", "é")
    pair.same("GET", "h")
    pair.same("PFDEBUG", "ENCODING", "h")
    pair.same("PFDEBUG", "DECODE", "h")
    pair.same("STRLEN", "h")
    pair.same("TYPE", "h")


def test_H4_sparse_to_dense_and_cache(pair):
    """H4: after every PFADD the sketch's bytes are redis-server's (its sparse update rules),
    through the conversion to dense at 3000 bytes (H3) and the cached count (H5)."""
    rng = random.Random(7)
    elements = [f"el-{rng.randrange(10 ** 9)}" for _ in range(2500)]
    for step in (1, 7, 50, 300):
        chunk, elements = elements[:step * 3], elements[step * 3:]
        for i in range(0, len(chunk), step):
            pair.same("PFADD", "h", *chunk[i:i + step])
            pair.same("GET", "h")
        pair.same("PFCOUNT", "h")
        pair.same("PFDEBUG", "ENCODING", "h")
    _pfadd_both(pair, "h", elements, 200)
    pair.same("PFDEBUG", "ENCODING", "h")        # dense by now
    pair.same("GET", "h")
    pair.same("PFCOUNT", "h")
    pair.same("GET", "h")
    pair.same("PFDEBUG", "GETREG", "h")
    pair.same_error("PFDEBUG", "DECODE", "h")


def test_H3_value_above_32_promotes(pair):
    """H3: a register above 32 does not fit a sparse VAL opcode: merging a dense sketch that
    has one into a sparse one turns the destination dense."""
    raw = bytearray(hll.REGISTERS)
    raw[5], raw[6000], raw[16383] = 40, 3, 51
    dense = b"HYLL\x00\x00\x00\x00" + bytes(7) + b"\x80" + bytes(hll.raw_to_dense(raw))
    pair.same("SET", "d", dense)
    pair.same("PFCOUNT", "d")
    pair.same("PFDEBUG", "GETREG", "d")
    pair.same("PFADD", "h", "a", "b")
    pair.same("PFDEBUG", "ENCODING", "h")
    pair.same("PFMERGE", "h", "d")
    pair.same("PFDEBUG", "ENCODING", "h")
    pair.same("GET", "h")
    pair.same("PFCOUNT", "h")
    pair.same("PFADD", "s", "a")
    pair.same("PFDEBUG", "TODENSE", "s")
    pair.same("PFDEBUG", "TODENSE", "s")
    pair.same("GET", "s")


def test_pfmerge(pair):
    rng = random.Random(3)
    a = [f"a{rng.randrange(10 ** 6)}" for _ in range(300)]
    b = [f"b{rng.randrange(10 ** 6)}" for _ in range(300)] + a[:100]
    big = [f"c{i}" for i in range(4000)]
    _pfadd_both(pair, "a", a)
    _pfadd_both(pair, "b", b)
    _pfadd_both(pair, "big", big)
    pair.same("PFMERGE", "ab", "a", "b")         # sparse + sparse: stays sparse
    pair.same("GET", "ab")
    pair.same("PFCOUNT", "ab")
    pair.same("PFCOUNT", "a", "b")
    pair.same("PFMERGE", "a", "b")               # into an existing source
    pair.same("GET", "a")
    pair.same("PFMERGE", "mixed", "a", "big")    # a dense source: the result is dense
    pair.same("PFDEBUG", "ENCODING", "mixed")
    pair.same("GET", "mixed")
    pair.same("PFCOUNT", "a", "big", "b", "missing")
    pair.same("PFMERGE", "empty")                # no sources: an empty sketch
    pair.same("GET", "empty")
    pair.same("PFMERGE", "empty2", "missing1", "missing2")
    pair.same("GET", "empty2")
    pair.same("SET", "ttl", pair.kv.get("a"))
    pair.ref.set("ttl", pair.ref.get("a"))
    pair.same("EXPIRE", "ttl", 100)
    pair.same("PFMERGE", "ttl", "big")
    pair.same("TTL", "ttl")
    pair.same("PFADD", "ttl", "zz")
    pair.same("TTL", "ttl")
    pair.same("GET", "ttl")


def test_H1_errors(pair):
    """H1 among the errors: a dense value one byte short or long is not a sketch (the error
    redis-server gives), one of exactly 12304 bytes is."""
    pair.same("SET", "s", "not a sketch")
    pair.same("HSET", "hash", "f", "v")
    pair.same("PFADD", "h", "a")
    for cmd in [("PFADD", "s", "a"), ("PFCOUNT", "s"), ("PFCOUNT", "h", "s"), ("PFMERGE", "s", "h"),
                ("PFMERGE", "h", "s"), ("PFADD", "hash", "a"), ("PFCOUNT", "hash"), ("PFCOUNT", "h", "hash"),
                ("PFMERGE", "hash", "h"), ("PFMERGE", "h", "hash"), ("PFADD",), ("PFCOUNT",), ("PFMERGE",),
                ("PFDEBUG", "ENCODING", "missing"), ("PFDEBUG", "NOPE", "h"), ("PFDEBUG", "ENCODING", "s"),
                ("PFDEBUG", "ENCODING")]:
        pair.same_error(*cmd)
    pair.same("GET", "h")
    # Headers that are almost right.
    sparse_empty = pair.kv.get("h")[:16] + b"\x7f\xff"
    dense = b"HYLL\x00\x00\x00\x00" + bytes(8) + bytes(12288)
    for value in [b"HYLL", b"HYLX" + sparse_empty[4:], b"HYLL\x02" + sparse_empty[5:], dense[:-1], dense + b"\x00",
                  b"HYLL\x01\x00\x00\x00" + bytes(8)]:
        pair.same("SET", "bad", value)
        for cmd in [("PFADD", "bad", "a"), ("PFCOUNT", "bad"), ("PFMERGE", "x", "bad")]:
            got, want = pair.both(*cmd)
            assert got[0] == want[0], (value[:8], cmd, got, want)
            if got[0] == "error":
                assert got[1] == want[1]
    pair.same("SET", "dense", dense)
    pair.same("PFCOUNT", "dense")
    pair.same("PFADD", "dense", "a", "b")
    pair.same("GET", "dense")


def test_H2_corrupt_sparse(pair):
    """H2: a sparse body covering fewer or more than 16384 registers is corrupt for every read;
    PFADD fails only when an element's register is not covered."""
    header = b"HYLL\x01\x00\x00\x00" + bytes(7) + b"\x80"
    cases = [
        header + b"\x7f\xfe",                    # XZERO 16383: one register short
        header + b"\x7f\xff\x80",                # one register too many
        header + b"\x40\x0a" + b"\x7f\xff",      # far too many
        header + b"\x7f\xf0" + b"\x8c" * 5,      # VAL runs one short
        header + b"\x7f\xff"[:1],                # a cut XZERO
    ]
    for i, value in enumerate(cases):
        key = f"c{i}"
        pair.same("SET", key, value)
        pair.same_error("PFCOUNT", key)
        pair.same_error("PFCOUNT", key, "missing")
        pair.same_error("PFMERGE", "dest", key)
        pair.same_error("PFDEBUG", "GETREG", key)
        for element in ("a", "b", "c", "d", "e", "f"):
            got, want = pair.both("PFADD", key, element)   # PFADD fails only if the register is not covered
            assert got == want, (value, element, got, want)
        pair.same("GET", key)


def test_H6_accuracy_1k_and_100k(pair):
    """H6: the estimate of n distinct elements within 2% (Redis's own sketch: also equal to
    redis-server's reply, as the registers and the estimator are the same)."""
    kv = pair.kv
    for n in (1000, 100_000):
        key = f"acc{n}"
        pipe = kv.pipeline(transaction=False)
        for i in range(0, n, 2000):
            pipe.pfadd(key, *[f"user:{j}" for j in range(i, min(n, i + 2000))])
        pipe.execute()
        estimate = kv.pfcount(key)
        assert abs(estimate - n) / n < 0.02, (n, estimate)
        # The same adds on redis-server give the same estimate and the same bytes.
        pipe = pair.ref.pipeline(transaction=False)
        for i in range(0, n, 2000):
            pipe.pfadd(key, *[f"user:{j}" for j in range(i, min(n, i + 2000))])
        pipe.execute()
        pair.same("PFCOUNT", key)
        pair.same("GET", key)
    pair.same("PFCOUNT", "acc1000", "acc100000")


def test_randomized(pair):
    rng = random.Random(11)
    keys = ["h1", "h2", "h3"]
    pool = [f"e{i}" for i in range(3000)]
    for _ in range(300):
        r = rng.random()
        if r < 0.5:
            n = rng.choice([0, 1, 2, 5, 20, 100])
            cmd = ("PFADD", rng.choice(keys), *rng.sample(pool, n))
        elif r < 0.7:
            cmd = ("PFCOUNT", *rng.sample(keys, rng.randint(1, 3)))
        elif r < 0.8:
            cmd = ("PFMERGE", rng.choice(keys), *rng.sample(keys, rng.randint(0, 3)))
        elif r < 0.95:
            cmd = ("GET", rng.choice(keys))
        else:
            cmd = ("DEL", rng.choice(keys))
        got, want = pair.both(*cmd)
        assert got == want, f"{cmd[:3]}...: kvdb {got!r}, redis-server {want!r}"


def test_H5_the_cached_count_is_the_estimate_unless_stale(pair):
    """H5: the header's cached cardinality, unless marked stale (top bit of its last byte),
    equals the estimate of the registers: PFCOUNT stores it, a PFADD that changes a register
    marks it stale, one that changes none leaves it; sparse and dense alike."""
    kv = pair.kv

    def cached(key):
        card = kv.get(key)[8:16]
        return None if card[7] & 0x80 else int.from_bytes(card, "little")

    def estimate(key):
        return hll.estimate(hll.raw_histogram(bytes(kv.execute_command("PFDEBUG", "GETREG", key))))
    for key, n in (("sparse", 300), ("dense", 20000)):
        for i in range(0, n, 1000):
            kv.pfadd(key, *[f"{key}{j}" for j in range(i, min(n, i + 1000))])
        assert cached(key) is None
        count = kv.pfcount(key)
        assert cached(key) == count == estimate(key)
        assert kv.pfadd(key, f"{key}0") == 0 and cached(key) == count
        assert kv.pfadd(key, *[f"more{j}" for j in range(50)]) == 1 and cached(key) is None
        assert kv.pfcount(key) == cached(key) == estimate(key)
    assert kv.execute_command("PFDEBUG", "ENCODING", "dense") == b"dense"


# -- the sketch code alone ---------------------------------------------------------------

def test_murmur_and_pattern():
    # Known values of Redis's MurmurHash64A (seed 0xadc83b19), checked against
    # redis-server through PFDEBUG GETREG in test_pfdebug_getreg_single_element.
    assert hll.murmur64a(b"") == hll.murmur64a(b"", hll.SEED)
    for element in (b"", b"a", b"abcdefgh", b"abcdefghi", bytes(range(40))):
        index, value = hll.pattern(element)
        assert 0 <= index < hll.REGISTERS and 1 <= value <= hll.Q + 1


def test_pfdebug_getreg_single_element(pair):
    for element in ("", "a", "abcdefgh", "abcdefghi", "x" * 33):
        pair.flush()
        pair.same("PFADD", "h", element)
        regs = pair.same("PFDEBUG", "GETREG", "h")
        index, value = hll.pattern(element.encode())
        assert regs[index] == value and sum(1 for r in regs if r) == 1


def test_dense_packing_round_trip():
    rng = random.Random(2)
    raw = bytes(rng.randrange(64) for _ in range(hll.REGISTERS))
    dense = hll.raw_to_dense(raw)
    assert len(dense) == hll.DENSE_BYTES
    assert bytes(hll.dense_to_raw(bytes(dense))) == raw
    for i in (0, 1, 2, 3, 4, 1000, hll.REGISTERS - 1):
        assert hll.dense_get(dense, i) == raw[i]
    hll.self_test()


def test_estimator_edges():
    assert hll.estimate([hll.REGISTERS] + [0] * 63) == 0
    sketch = hll.Sketch.new()
    assert sketch.count() == 0
    assert sketch.add(b"one") and not sketch.add(b"one")
    assert sketch.count() == 1
