"""The benchmark's command line (shared by `kvdb bench` and bench/db_bench.py)."""
import argparse
import os
import tempfile

from .adapters import known
from .paths import REPO, default_results_dir
from .workloads import ORDER

DEFAULT_ENGINES = "kvdb-btree,sqlite3,lmdb,rocksdict,plyvel,diskcache"
DEFAULT_NUM = 1_000_000
QUICK_NUM = 100_000
SCALE_NUM = 10_000_000
SCALE_WORKLOADS = "fillrandom,readrandom"
SCALE_SERIES = 20


def _csv(text):
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser(prog=None):
    ap = argparse.ArgumentParser(
        prog=prog, description="db_bench for kvdb: LevelDB-style workloads against kvdb and peer engines, "
                               "each engine in its own process (see bench/README.md).",
        epilog="workloads: " + ", ".join(ORDER) + ".  Other suites: `kvdb bench documents`, `kvdb bench server`.")
    size = ap.add_argument_group("size")
    size.add_argument("--num", type=int, default=None, help=f"keys in the database (default {DEFAULT_NUM:,})")
    size.add_argument("--quick", action="store_true", help=f"num={QUICK_NUM:,} unless --num is given")
    size.add_argument("--scale", action="store_true",
                      help=f"num={SCALE_NUM:,}, workloads {SCALE_WORKLOADS}, 1 run, throughput vs data size "
                           f"in {SCALE_SERIES} steps (each default can still be overridden)")
    size.add_argument("--reads", type=int, default=None,
                      help="ops for readrandom/readmissing/seekrandom (default num)")
    size.add_argument("--writes", type=int, default=None, help="ops for overwrite/deleterandom (default num)")
    size.add_argument("--sync-num", type=int, default=None,
                      help="puts for fillsync(-threads) (default max(num/100, 1000), at most num)")
    size.add_argument("--series", type=int, default=None,
                      help="fillrandom in this many steps, each followed by a read sample: throughput vs data "
                           f"size (default 0; {SCALE_SERIES} with --scale)")
    what = ap.add_argument_group("what to run")
    what.add_argument("--engines", default=DEFAULT_ENGINES, help=f"comma list (default {DEFAULT_ENGINES})")
    what.add_argument("--workloads", default=None, help="comma list; always run in the canonical order")
    what.add_argument("--runs", type=int, default=None, help="runs per engine; the median is reported "
                                                             "(default 3; 1 with --scale)")
    what.add_argument("--threads", type=int, default=8, help="threads for fillsync-threads (default 8)")
    what.add_argument("--cache-mb", type=int, default=256,
                      help="cache given to every engine that has one (default 256; 0: each engine's "
                           "own default, what a user who sets nothing gets)")
    what.add_argument("--seed", type=int, default=301)
    what.add_argument("--dir", default=None,
                      help="where the databases go (default: the system temp dir); use the disk you want to measure")
    what.add_argument("--fio", action="store_true", help="measure the disk's 4 KiB write+fdatasync IOPS with fio first")
    what.add_argument("--fio-size", default="64m")
    what.add_argument("--timeout", type=float, default=None, help="seconds before a worker is killed (default none)")
    what.add_argument("--kvdb-path", default=REPO,
                      help="directory put first on sys.path in the workers, so `import kvdb` finds that build "
                           f"(default {REPO}, the checkout this benchmark is in)")
    out = ap.add_argument_group("output")
    out.add_argument("--out", "--results-dir", dest="results_dir", default=None, metavar="DIR",
                     help="where the JSON and the charts go (default: the current directory; "
                          "bench/results keeps the runs published with the repository)")
    out.add_argument("--json", default=None, metavar="OUT",
                     help="write the JSON here instead of DIR/db_bench-DATE-MODE-nNUM.json")
    out.add_argument("--no-save", action="store_true", help="print the tables only: no JSON, no charts")
    out.add_argument("--no-charts", action="store_true", help="no PNG charts even when matplotlib is installed")
    out.add_argument("--charts-from", default=None, metavar="JSON",
                     help="run nothing: draw the charts of a saved result next to it")
    out.add_argument("--verbose", action="store_true", help="a line per workload from each worker on stderr")
    out.add_argument("--quiet", action="store_true", help="no progress bar even on a terminal")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--label", default="", help=argparse.SUPPRESS)
    return ap


def parse_args(argv=None, prog=None):
    ap = build_parser(prog)
    args = ap.parse_args(argv)
    if args.num is None:
        args.num = SCALE_NUM if args.scale else QUICK_NUM if args.quick else DEFAULT_NUM
    if args.num < 1:
        ap.error("--num must be at least 1")
    if args.runs is None:
        args.runs = 1 if args.scale else 3
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if args.series is None:
        args.series = SCALE_SERIES if args.scale else 0
    args.reads = args.num if args.reads is None else args.reads
    args.writes = args.num if args.writes is None else args.writes
    if args.sync_num is None:
        args.sync_num = min(args.num, max(args.num // 100, 1000))
    args.engines = _csv(args.engines)
    for e in args.engines:
        if not known(e):
            ap.error(f"unknown engine {e!r}")
    if args.workloads is None:
        args.workloads = SCALE_WORKLOADS if args.scale else ",".join(ORDER)
    wanted = _csv(args.workloads)
    for w in wanted:
        if w not in ORDER:
            ap.error(f"unknown workload {w!r}; known: {', '.join(ORDER)}")
    args.workloads = [w for w in ORDER if w in wanted]
    args.dir = os.path.abspath(args.dir or tempfile.gettempdir())
    args.kvdb_path = os.path.abspath(args.kvdb_path)
    args.results_dir = os.path.abspath(args.results_dir or default_results_dir())
    args.mode = "scale" if args.scale else "quick" if args.quick else "full"
    return args


def counts_of(args):
    return {"num": args.num, "reads": args.reads, "writes": args.writes, "sync_num": args.sync_num,
            "threads": args.threads, "cache_mb": args.cache_mb, "seed": args.seed, "series": args.series}
