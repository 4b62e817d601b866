"""kvdb bench documents: the document layer against montydb (sqlite storage), TinyDB and
sqlite3 with JSON1, on the same documents and operations (bench/dbbench/doc_engines.py).

    kvdb bench documents                  100,000 documents, 3 runs, every installed engine
    kvdb bench documents --quick          5,000 documents
    kvdb bench documents --num 20000 --runs 1 --engines kvdb,sqlite3-json1

Workloads, in this order, on a fresh database per engine and run:
    insert_many     all documents in one call (two secondary indexes)  docs/s
    find_id         find_one by _id (random)                           ops/s
    find_eq         find on the indexed field grp, ~0.1% each          ops/s
    find_range      find on a range of grp, ~1% each                   ops/s
    find_unindexed  find on city (no index), ~0.5% each                ops/s
    update_many     $inc on a range of grp, ~1% each                   docs/s
    delete_many     delete a range of grp, ~1% each                    docs/s
Read workloads run until --ops operations or --seconds have passed, whichever comes first (slow
engines do fewer). The table shows medians over the runs and each engine's ratio to kvdb.
"""
import argparse
import importlib.util
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

from . import results
from .doc_engines import ENGINES, MODULES
from .paths import RESULTS_DIR

WORKLOADS = ["insert_many", "find_id", "find_eq", "find_range", "find_unindexed", "update_many", "delete_many"]
UNITS = {"insert_many": "docs/s", "update_many": "docs/s", "delete_many": "docs/s"}
GROUPS = 1000          # distinct grp values: an equality matches ~0.1%, 10 adjacent values ~1%
CITIES = 200           # distinct city values: ~0.5% each
RANGE_WIDTH = 10       # grp values per range query, update and delete (~1%)
MUTATIONS = 3          # update_many and delete_many calls per run (each ~1%)


def make_docs(n, seed=42):
    """n documents of ten fields: nested, one array, deterministic."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        docs.append({
            "name": "user%07d" % i,
            "email": "user%d@example.org" % i,
            "age": rng.randrange(18, 90),
            "grp": rng.randrange(GROUPS),
            "city": "city%03d" % rng.randrange(CITIES),
            "score": round(rng.random() * 100, 3),
            "active": rng.random() < 0.7,
            "tags": ["tag%d" % rng.randrange(50) for _ in range(rng.randrange(1, 4))],
            "address": {"street": "%d Main St" % rng.randrange(1000), "zip": "%05d" % rng.randrange(100000),
                        "geo": {"lat": round(rng.uniform(-90, 90), 4), "lon": round(rng.uniform(-180, 180), 4)}},
            "created": 1700000000 + i,
        })
    return docs


def parse_args(argv, prog):
    p = argparse.ArgumentParser(prog=prog, description="Document benchmark: kvdb.documents against montydb "
                                "(sqlite storage), TinyDB and sqlite3 with JSON1.")
    p.add_argument("--num", type=int, default=None, help="documents (default 100,000; --quick 5,000)")
    p.add_argument("--quick", action="store_true", help="5,000 documents")
    p.add_argument("--runs", type=int, default=3, help="runs per engine; the table shows medians (default 3)")
    p.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}")
    p.add_argument("--ops", type=int, default=2000, help="operations per read workload, at most (default 2000)")
    p.add_argument("--seconds", type=float, default=5.0, help="time per read workload, at most (default 5)")
    p.add_argument("--sync", choices=["full", "normal", "off"], default="full",
                   help="kvdb sync mode and sqlite3's synchronous pragma (default full)")
    p.add_argument("--dir", default=None, help="where the databases go (default: a temporary directory)")
    p.add_argument("--results-dir", default=None,
                   help="where the table is saved (default bench/results/)")
    p.add_argument("--no-save", action="store_true", help="print the table only")
    args = p.parse_args(argv)
    if args.num is None:
        args.num = 5000 if args.quick else 100000
    if args.num < RANGE_WIDTH * 2 or args.runs < 1 or args.ops < 1:
        p.error("--num must be at least 20, --runs and --ops at least 1")
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown:
        p.error(f"unknown engine(s) {', '.join(unknown)}; known: {', '.join(ENGINES)}")
    return args


def timed_loop(fn, args_list, seconds):
    """(ops done, elapsed seconds) of fn(*a) over args_list, stopping early after `seconds`."""
    start = time.perf_counter()
    n = 0
    for a in args_list:
        fn(*a)
        n += 1
        if time.perf_counter() - start > seconds:
            break
    return n, time.perf_counter() - start


def run_engine(cls, args, run, workdir):
    """{workload: rate} for one run of one engine."""
    path = os.path.join(workdir, f"{cls.name}-{run}")
    os.makedirs(path)
    rng = random.Random(run)
    docs = make_docs(args.num)
    engine = cls(path, args.sync)
    rates = {}
    try:
        t = time.perf_counter()
        engine.load(docs)
        rates["insert_many"] = args.num / (time.perf_counter() - t)
        del docs
        reads = {
            "find_id": (engine.by_id, [(rng.randrange(args.num),) for _ in range(args.ops)]),
            "find_eq": (engine.eq, [(rng.randrange(GROUPS),) for _ in range(args.ops)]),
            "find_range": (engine.range, [(g, g + RANGE_WIDTH) for g in
                                          (rng.randrange(GROUPS - RANGE_WIDTH) for _ in range(args.ops))]),
            "find_unindexed": (engine.unindexed, [("city%03d" % rng.randrange(CITIES),) for _ in range(args.ops)]),
        }
        for name, (fn, arg_list) in reads.items():
            n, elapsed = timed_loop(fn, arg_list, args.seconds)
            rates[name] = n / elapsed
        starts = rng.sample(range(0, GROUPS - RANGE_WIDTH, RANGE_WIDTH), 2 * MUTATIONS)
        for name, fn, chosen in (("update_many", engine.update, starts[:MUTATIONS]),
                                 ("delete_many", engine.delete, starts[MUTATIONS:])):
            t = time.perf_counter()
            changed = sum(fn(g, g + RANGE_WIDTH) for g in chosen)
            rates[name] = changed / (time.perf_counter() - t)
    finally:
        engine.close()
    shutil.rmtree(path, ignore_errors=True)
    return rates


def _rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def format_table(args, medians, skipped):
    engines = [e for e in args.engines if e in medians]
    lines = [f"kvdb bench documents: {args.num:,} documents, medians of {args.runs} run(s), sync={args.sync}",
             f"ratio = kvdb / engine (above 1: kvdb is faster)", ""]
    head = f"{'workload':<16}{'unit':>8}" + "".join(f"{e:>16}" for e in engines)
    if "kvdb" in medians:
        head += "".join(f"{'vs ' + e:>20}" for e in engines if e != "kvdb")
    lines.append(head)
    lines.append("-" * len(head))
    for w in WORKLOADS:
        row = f"{w:<16}{UNITS.get(w, 'ops/s'):>8}" + "".join(f"{_rate(medians[e][w]):>16}" for e in engines)
        if "kvdb" in medians:
            for e in engines:
                if e != "kvdb":
                    other = medians[e][w]
                    ratio = medians["kvdb"][w] / other if other else float("inf")
                    row += f"{ratio:>19,.2f}x" if ratio < 1000 else f"{ratio:>19,.0f}x"
        lines.append(row)
    for name, why in skipped.items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def main(argv=None, prog="kvdb bench documents"):
    args = parse_args(sys.argv[1:] if argv is None else argv, prog)
    medians, skipped = measure(args, prog)
    table = format_table(args, medians, skipped)
    print(table)
    if not args.no_save:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        mode = "quick" if args.quick else "full"
        results.save_table(args.results_dir or RESULTS_DIR, f"documents-{stamp}-{mode}-n{args.num}.txt", prog, argv,
                           table)
    return 0


def measure(args, prog):
    """({engine: {workload: median rate}}, {engine: why skipped}) of the runs `args` asks for."""
    skipped = {}
    engines = []
    for name in args.engines:
        if importlib.util.find_spec(MODULES[name]) is None:
            skipped[name] = f"not installed (pip install {MODULES[name]})"
        else:
            engines.append(ENGINES[name])
    workdir = tempfile.mkdtemp(prefix="kvdb-docbench-", dir=args.dir)
    results = {}
    try:
        for run in range(args.runs):
            for cls in engines:
                print(f"{prog}: run {run + 1}/{args.runs} {cls.name} ...", file=sys.stderr, flush=True)
                rates = run_engine(cls, args, run, workdir)
                for w, r in rates.items():
                    results.setdefault(cls.name, {}).setdefault(w, []).append(r)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {e: {w: statistics.median(v) for w, v in ws.items()} for e, ws in results.items()}
    return medians, skipped


if __name__ == "__main__":
    sys.exit(main())
