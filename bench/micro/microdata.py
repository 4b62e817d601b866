"""The data of the micro-benchmarks: db_bench's shape (16-byte keys, 100-byte values), the
batch size of a round, and how a prepared database is loaded. Fixtures are in conftest.py.

Rounds are kept short (about 0.1-1 ms): on a shared machine a round of several milliseconds is
often cut by the scheduler, and then even its median moves by tens of percent between runs.
"""

ENGINES = ["btree", "lsm"]
NUM_KEYS = 100_000         # keys in a prepared database (a three-level B+Tree; LSM tables on disk)
BATCH = 100                # operations per benchmark round (a round well under a millisecond: see below)
STEPS = 1000               # cursor steps per round (a step is ~0.1 us: fewer would time the seek)
ROUNDS = 1000              # rounds of a write benchmark (fixed: the same work, log growth and background
                           # flushes on every commit compared), and the least rounds of any other one
KEY_FORMAT = b"%016d"      # 16-byte keys, as db_bench
VALUE_SIZE = 100           # bytes per value, as db_bench
LOAD_TRANSACTION = 10_000  # puts per transaction while loading
SEED = 301                 # the access orders are the same in every run and on every commit


def key(i):
    return KEY_FORMAT % i


def value(i):
    return (b"%08d" % i) * (VALUE_SIZE // 8) + b"v" * (VALUE_SIZE % 8)


def load(db, count=NUM_KEYS):
    """Put keys 0..count-1 in key order, then checkpoint (LSM: flush the memtables to tables), so
    reads go through the engine's on-disk structure, not only the log's memory."""
    for start in range(0, count, LOAD_TRANSACTION):
        with db.transaction() as tx:
            for i in range(start, min(start + LOAD_TRANSACTION, count)):
                tx.put(key(i), value(i))
    db.checkpoint()
