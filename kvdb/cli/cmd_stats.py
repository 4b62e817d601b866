"""kvdb stats PATH [--json]: the engine's statistics (db.stats()) plus the
directory's size on disk (disk_bytes: allocated; disk_apparent_bytes: file sizes)."""
import json

from .dbpath import dir_size, open_existing


def add_parser(sub):
    p = sub.add_parser("stats", help="print database statistics", description=__doc__)
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args):
    with open_existing(args.path) as db:
        stats = dict(db.stats())
    stats["disk_bytes"], stats["disk_apparent_bytes"] = dir_size(args.path)
    if args.json:
        print(json.dumps(stats, indent=2, default=str))
    else:
        for k, v in stats.items():
            print(f"{k:24} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k:24} {v}")
    return 0
