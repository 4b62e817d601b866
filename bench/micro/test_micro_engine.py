"""Micro-benchmarks of the storage engines' hot paths, through the public API, on both engines:
get (hits), put (each its own commit), a transaction's commit, and a cursor's steps.

    python -m pytest bench/micro --benchmark-only            (bench/README.md, "Micro-benchmarks")

A round does BATCH operations (STEPS for the cursor) on a prepared database of NUM_KEYS keys
(conftest.py, microdata.py), sync="off". The write benchmarks run a fixed number of rounds, so
every run writes as much log and meets the same background flushes and checkpoints.
"""
import collections
import itertools

import pytest

from microdata import BATCH, NUM_KEYS, ROUNDS, STEPS, key, value

COMMIT_SIZES = [1, 100]    # puts per transaction in the commit benchmark: the commit's own cost, and a batch
WARMUP_ROUNDS = 10         # untimed rounds before a write benchmark's ROUNDS


@pytest.mark.benchmark(group="get", min_rounds=ROUNDS)
def test_get_hit(benchmark, loaded_db, random_keys):
    get = loaded_db.get

    def gets():
        for k in random_keys:
            get(k)

    benchmark(gets)
    assert all(get(k) is not None for k in random_keys)


@pytest.mark.benchmark(group="scan", min_rounds=ROUNDS)
def test_cursor_step(benchmark, loaded_db):
    """STEPS steps of one cursor (its seek included, once), from the middle of the key range."""
    start = key(NUM_KEYS // 2)

    def steps():
        with loaded_db.scan(start=start) as it:
            collections.deque(itertools.islice(it, STEPS), maxlen=0)

    benchmark(steps)


@pytest.mark.benchmark(group="put")
def test_put(benchmark, loaded_db, random_keys):
    """BATCH puts of existing keys, each its own commit (db.put), values of the same size."""
    put = loaded_db.put
    pairs = [(k, value(NUM_KEYS - int(k))) for k in random_keys]

    def puts():
        for k, v in pairs:
            put(k, v)

    benchmark.pedantic(puts, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS)


@pytest.mark.benchmark(group="commit")
@pytest.mark.parametrize("size", COMMIT_SIZES)
def test_transaction_commit(benchmark, loaded_db, random_keys, size):
    """BATCH // size transactions of `size` puts each: begin, puts, commit."""
    pairs = [(k, value(int(k) + 1)) for k in random_keys]
    chunks = [pairs[i:i + size] for i in range(0, BATCH, size)]
    transaction = loaded_db.transaction

    def commits():
        for chunk in chunks:
            with transaction() as tx:
                for k, v in chunk:
                    tx.put(k, v)

    benchmark.pedantic(commits, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS)
