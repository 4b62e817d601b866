"""kvdb demo [PATH] [-n N] [--engine btree|lsm]: write, read back and scan a demo database,
verify it, print stats. An existing database at PATH keeps its engine (--engine must match it)."""
import time

import kvdb

from .dboptions import add_database_options, database_options
from .dbpath import open_or_create

SHOWN_STATS = {  # engine -> the db.stats() entries the demo prints
    "btree": ("entries", "commits", "pages", "cache_hits", "cache_misses", "fsyncs"),
    "lsm": ("entries_estimate", "commits", "lsm_files_per_level", "lsm_flushes", "lsm_compactions", "fsyncs"),
}


def add_parser(sub):
    p = sub.add_parser("demo", help="write, read and scan a demo database, then print stats",
                       description=__doc__)
    p.add_argument("path", nargs="?", default="kvdb-data", help="database directory (default ./kvdb-data)")
    p.add_argument("-n", type=int, default=100_000, help="keys to write (default 100,000)")
    add_database_options(p, creates=True, defaults={"sync": "normal"})
    p.set_defaults(func=run)


def run(args):
    db, _created = open_or_create(args.path, args.engine, **database_options(args))
    with db:
        n = args.n
        t0 = time.perf_counter()
        with db.transaction() as tx:
            for i in range(n):
                tx.put(b"demo:%08d" % i, b"value %d" % i)
        t1 = time.perf_counter()
        for i in range(n):
            if db.get(b"demo:%08d" % i) != b"value %d" % i:
                raise kvdb.CorruptionError(f"demo key {i} did not read back")
        t2 = time.perf_counter()
        count = sum(1 for _ in db.scan(prefix=b"demo:"))
        t3 = time.perf_counter()
        print(f"kvdb {kvdb.__version__}: {db.engine} database at {args.path}")
        print(f"  wrote {n} keys in one transaction: {n / max(t1 - t0, 1e-9):,.0f} puts/s")
        print(f"  read them back:                    {n / max(t2 - t1, 1e-9):,.0f} gets/s")
        print(f"  prefix scan found {count} keys:      {count / max(t3 - t2, 1e-9):,.0f} keys/s")
        db.verify()
        print("  verify: ok")
        stats = db.stats()
        print("  stats: " + ", ".join(f"{k}={stats[k]}" for k in SHOWN_STATS.get(db.engine, ()) if k in stats))
    return 0
