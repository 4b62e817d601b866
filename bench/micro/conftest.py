"""Fixtures of the micro-benchmarks: prepared databases of both engines, and the keys the
benchmarks cycle through (the data itself: microdata.py).

Every database is opened with sync="off": a commit then writes its log record to the OS and
returns, so the timings measure kvdb's code, not the disk's fsync. The data stays in the cache:
these are CPU benchmarks of the hot paths. A benchmark's round does BATCH operations, so a
round's time divided by BATCH is one operation's.
"""
import random

import pytest

import kvdb
from microdata import BATCH, ENGINES, NUM_KEYS, SEED, key, load


@pytest.fixture(scope="module", params=ENGINES)
def loaded_db(request, tmp_path_factory):
    """A database of NUM_KEYS keys, per engine; shared by a module's benchmarks (which only read,
    or overwrite existing keys with values of the same size, so the shape stays the same)."""
    db = kvdb.open(tmp_path_factory.mktemp(f"micro-{request.param}") / "db", engine=request.param, sync="off")
    load(db)
    yield db
    db.close()


@pytest.fixture(scope="module")
def random_keys():
    """BATCH existing keys in a seeded random order."""
    rng = random.Random(SEED)
    return [key(rng.randrange(NUM_KEYS)) for _ in range(BATCH)]
