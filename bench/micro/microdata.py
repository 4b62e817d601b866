"""The data of the micro-benchmarks: db_bench's shape (16-byte keys, 100-byte values), the
batch size of a round, and how a prepared database is loaded. Fixtures are in conftest.py.
"""

ENGINES = ["btree", "lsm"]
NUM_KEYS = 100_000         # keys in a prepared database (a three-level B+Tree; LSM tables on disk)
BATCH = 1000               # operations per benchmark round
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
