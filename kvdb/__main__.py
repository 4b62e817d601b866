"""The kvdb command line: `kvdb demo`, `kvdb check PATH`, `kvdb stats PATH`.

Errors are one line on stderr and a non-zero exit, never a traceback.
"""

import argparse
import json
import sys
import time

import kvdb


def cmd_demo(args):
    """Open ./kvdb-data, write, read back, scan and print stats."""
    with kvdb.open(args.path, sync="normal") as db:
        n = args.n
        t0 = time.perf_counter()
        with db.transaction() as tx:
            for i in range(n):
                tx.put(b"demo:%08d" % i, b"value %d" % i)
        t1 = time.perf_counter()
        for i in range(n):
            assert db.get(b"demo:%08d" % i) == b"value %d" % i
        t2 = time.perf_counter()
        count = sum(1 for _ in db.scan(prefix=b"demo:"))
        t3 = time.perf_counter()
        print(f"kvdb {kvdb.__version__}: database at {args.path}")
        print(f"  wrote {n} keys in one transaction: {n / (t1 - t0):,.0f} puts/s")
        print(f"  read them back:                    {n / (t2 - t1):,.0f} gets/s")
        print(f"  prefix scan found {count} keys:      {count / (t3 - t2):,.0f} keys/s")
        db.verify()
        print("  verify: ok")
        stats = db.stats()
        print("  stats: " + ", ".join(f"{k}={stats[k]}" for k in
                                      ("entries", "commits", "pages", "cache_hits", "cache_misses", "fsyncs")))
    return 0


def cmd_check(args):
    with kvdb.open(args.path) as db:
        db.verify()
        print(f"{args.path}: ok ({len(db)} keys, {db.stats()['pages']} pages)")
    return 0


def cmd_stats(args):
    with kvdb.open(args.path) as db:
        stats = db.stats()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        for k, v in stats.items():
            print(f"{k:24} {v}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kvdb", description="kvdb embedded database tools")
    parser.add_argument("--version", action="version", version=f"kvdb {kvdb.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="write, read and scan a demo database, then print stats")
    p.add_argument("path", nargs="?", default="kvdb-data")
    p.add_argument("-n", type=int, default=100_000)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("check", help="verify every page, checksum and tree invariant")
    p.add_argument("path")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("stats", help="print database statistics")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except kvdb.Error as e:
        print(f"kvdb {args.command}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"kvdb {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
