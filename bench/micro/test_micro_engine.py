"""Micro-benchmarks of the storage engines' hot paths, through the public API, on both engines:
get (hits), put (each its own commit), a transaction's commit, and a cursor's steps.

    python -m pytest bench/micro --benchmark-only            (bench/README.md, "Micro-benchmarks")

A round does BATCH operations on a prepared database of NUM_KEYS keys (conftest.py), sync="off".
"""
import collections
import itertools

import pytest

from microdata import BATCH, NUM_KEYS, key, value

COMMIT_SIZES = [1, 100]    # puts per transaction in the commit benchmark: the commit's own cost, and a batch


@pytest.mark.benchmark(group="get")
def test_get_hit(benchmark, loaded_db, random_keys):
    get = loaded_db.get

    def gets():
        for k in random_keys:
            get(k)

    benchmark(gets)
    assert all(get(k) is not None for k in random_keys)


@pytest.mark.benchmark(group="scan")
def test_cursor_step(benchmark, loaded_db):
    """BATCH steps of one cursor (its seek included, once), from the middle of the key range."""
    start = key(NUM_KEYS // 2)

    def steps():
        with loaded_db.scan(start=start) as it:
            collections.deque(itertools.islice(it, BATCH), maxlen=0)

    benchmark(steps)


@pytest.mark.benchmark(group="put")
def test_put(benchmark, loaded_db, random_keys):
    """BATCH puts of existing keys, each its own commit (db.put), values of the same size."""
    put = loaded_db.put
    pairs = [(k, value(NUM_KEYS - int(k))) for k in random_keys]

    def puts():
        for k, v in pairs:
            put(k, v)

    benchmark(puts)


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

    benchmark(commits)
