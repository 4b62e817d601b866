"""kvdb stats PATH [--json]: the engine's statistics (db.stats()) plus the
directory's size on disk (disk_bytes: allocated; disk_apparent_bytes: file sizes).

Both engines print one `name value` line per statistic (or one JSON object).
An LSM database adds, after its lines, a table of files and bytes per level,
and two figures derived from the counters (also in the JSON):

  lsm_write_amplification        (bytes flushed + bytes compacted) / bytes flushed:
                                 table bytes written per byte that reached level 0
  lsm_bloom_false_positive_rate  bloom false positives / bloom checks

On LSM, entries is None: the engine keeps no exact count of live keys.
entries_estimate counts every version and tombstone in the memtables and
tables, so overwritten and deleted keys count until a compaction drops them;
len(db) or `kvdb check` counts live keys.

Counters (commits, cache hits, bloom checks, flushes, compactions, stall time)
count since the database was opened, that is, in this command's own process,
which does little more than open it; a long-running program sees its own in
db.stats().
"""
import argparse
import json

from .dbpath import dir_size, open_existing

PER_LEVEL = ("lsm_files_per_level", "lsm_bytes_per_level")  # list-valued LSM stats, one item per level


def add_parser(sub):
    p = sub.add_parser("stats", help="print database statistics", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args):
    with open_existing(args.path, readonly=True) as db:
        stats = dict(db.stats())
    if stats.get("engine") == "lsm":
        stats.update(derived_lsm(stats))
    stats["disk_bytes"], stats["disk_apparent_bytes"] = dir_size(args.path)
    if args.json:
        print(json.dumps(stats, indent=2, default=str))
        return 0
    width = max(24, max(len(k) for k in stats) + 1)
    for k, v in stats.items():
        if k not in PER_LEVEL:
            print(f"{k:{width}} {show(v)}")
    if all(k in stats for k in PER_LEVEL):
        print(level_table(*(stats[k] for k in PER_LEVEL)))
    return 0


def derived_lsm(stats):
    """Write amplification and the bloom filters' false-positive rate (None when nothing was
    flushed or checked yet)."""
    flushed = stats.get("lsm_bytes_flushed") or 0
    compacted = stats.get("lsm_bytes_compacted") or 0
    checks = stats.get("lsm_bloom_checks") or 0
    fp = stats.get("lsm_bloom_false_positives") or 0
    return {
        "lsm_write_amplification": round((flushed + compacted) / flushed, 3) if flushed else None,
        "lsm_bloom_false_positive_rate": round(fp / checks, 6) if checks else None,
    }


def show(v):
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.6g}"
    return str(v)


def level_table(files, sizes):
    """Files and bytes per level, with a total line."""
    lines = [f"{'level':8}{'files':>10}{'bytes':>18}"]
    for level, (n, size) in enumerate(zip(files, sizes)):
        lines.append(f"{'L%d' % level:8}{n:>10,}{size:>18,}")
    lines.append(f"{'total':8}{sum(files):>10,}{sum(sizes):>18,}")
    return "\n".join(lines)
