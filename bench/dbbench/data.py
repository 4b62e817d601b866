"""Deterministic keys, values and access orders, identical for every engine.

Keys are 16 bytes (b"%016d" % i). Values are 100 bytes: 50 random bytes then
one random byte repeated 50 times, so a compressor gets them to about half
(like LevelDB db_bench's --compression_ratio=0.5). Every order is drawn from
random.Random seeded with "<seed>:<workload>", so choosing a subset of
workloads does not change the keys another workload sees, and every engine and
every run sees exactly the same sequence.
"""
import random

KEY_SIZE = 16
VALUE_SIZE = 100
# A prime number of distinct values, so neighbouring keys in a batch or a
# block never share a value and compression can only use the in-value repeat.
DISTINCT_VALUES = 10007


def make_key(i):
    return b"%016d" % i


def make_missing_key(i):
    """A 16-byte key that sorts between make_key(10*i+9) and make_key(10*i+10)
    but is never stored (its last byte is not a digit)."""
    return b"%015d" % i + b"x"


def make_values(seed, count=DISTINCT_VALUES):
    rng = random.Random(f"{seed}:values")
    half = VALUE_SIZE // 2
    return [rng.randbytes(half) + bytes([rng.randrange(256)]) * (VALUE_SIZE - half) for _ in range(count)]


class Dataset:
    """The key space [0, num) and the orders each workload walks it in."""

    def __init__(self, num, seed):
        self.num = num
        self.seed = seed
        self.keys = [make_key(i) for i in range(num)]
        self._values = make_values(seed)

    def _rng(self, tag):
        return random.Random(f"{self.seed}:{tag}")

    def values(self, count, offset=0):
        """count values; a different offset gives every key a different value."""
        vals, nv = self._values, len(self._values)
        return [vals[(offset + j) % nv] for j in range(count)]

    def shuffled(self, tag, count=None):
        """Distinct existing keys in random order (all of them by default)."""
        keys = list(self.keys)
        self._rng(tag).shuffle(keys)
        return keys if count is None else keys[:count]

    def sampled(self, tag, count):
        """count existing keys chosen uniformly, with repetition."""
        if not self.keys:
            return []
        return self._rng(tag).choices(self.keys, k=count)

    def missing(self, tag, count):
        """count keys spread over the whole key range that are never stored."""
        rng = self._rng(tag)
        top = max(1, self.num // 10)
        return [make_missing_key(rng.randrange(top)) for _ in range(count)]
