#!/usr/bin/env python3
"""db_bench for kvdb: LevelDB-style workloads against kvdb and peer engines.

    python bench/db_bench.py [--num N | --quick] [--engines kvdb-btree,sqlite3,...]
                             [--workloads fillbatch,...] [--runs R] [--json OUT]
                             [--dir TMPDIR] [--fio] [--threads 8]

Every (engine, run) pair runs in its own subprocess on a fresh temporary
directory, one at a time; runs are interleaved across engines (run 1 of every
engine, then run 2, ...) so slow drift of a noisy machine hits all engines
alike. The table shows the median ops/s per workload. See bench/README.md.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from bench_adapters import known  # noqa: E402
from bench_workloads import ORDER  # noqa: E402

DEFAULT_ENGINES = "kvdb-btree,sqlite3,lmdb,rocksdict,plyvel,diskcache"
DEFAULT_NUM = 1_000_000
QUICK_NUM = 100_000


def _csv(text):
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="workloads: " + ", ".join(ORDER))
    ap.add_argument("--num", type=int, default=None, help=f"keys in the database (default {DEFAULT_NUM:,})")
    ap.add_argument("--quick", action="store_true", help=f"num={QUICK_NUM:,} unless --num is given")
    ap.add_argument("--reads", type=int, default=None, help="ops for readrandom/readmissing/seekrandom (default num)")
    ap.add_argument("--writes", type=int, default=None, help="ops for overwrite/deleterandom (default num)")
    ap.add_argument("--sync-num", type=int, default=None, help="puts for fillsync(-threads) (default max(num/100, 1000), at most num)")
    ap.add_argument("--engines", default=DEFAULT_ENGINES, help=f"comma list (default {DEFAULT_ENGINES})")
    ap.add_argument("--workloads", default=",".join(ORDER), help="comma list; always run in the canonical order")
    ap.add_argument("--runs", type=int, default=3, help="runs per engine; the median is reported (default 3)")
    ap.add_argument("--threads", type=int, default=8, help="threads for fillsync-threads (default 8)")
    ap.add_argument("--cache-mb", type=int, default=256, help="cache given to every engine that has one (default 256)")
    ap.add_argument("--seed", type=int, default=301)
    ap.add_argument("--dir", default=None, help="where the databases go (default: the system temp dir); use the disk you want to measure")
    ap.add_argument("--json", default=None, metavar="OUT", help="write raw results and machine description here")
    ap.add_argument("--fio", action="store_true", help="measure the disk's 4 KiB write+fdatasync IOPS with fio first")
    ap.add_argument("--fio-size", default="64m")
    ap.add_argument("--timeout", type=float, default=None, help="seconds before a worker is killed (default none)")
    ap.add_argument("--kvdb-path", default=REPO, help="directory put first on sys.path so `import kvdb` finds the in-place build")
    ap.add_argument("--quiet", action="store_true", help="no per-workload progress on stderr")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--label", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.num is None:
        args.num = QUICK_NUM if args.quick else DEFAULT_NUM
    if args.num < 1:
        ap.error("--num must be at least 1")
    args.reads = args.num if args.reads is None else args.reads
    args.writes = args.num if args.writes is None else args.writes
    if args.sync_num is None:
        args.sync_num = min(args.num, max(args.num // 100, 1000))
    args.engines = _csv(args.engines)
    for e in args.engines:
        if not known(e):
            ap.error(f"unknown engine {e!r}")
    wanted = _csv(args.workloads)
    for w in wanted:
        if w not in ORDER:
            ap.error(f"unknown workload {w!r}; known: {', '.join(ORDER)}")
    args.workloads = [w for w in ORDER if w in wanted]
    args.dir = os.path.abspath(args.dir or tempfile.gettempdir())
    return args


def counts_of(args):
    return {"num": args.num, "reads": args.reads, "writes": args.writes, "sync_num": args.sync_num,
            "threads": args.threads, "cache_mb": args.cache_mb, "seed": args.seed}


def worker_main(args):
    sys.path.insert(0, os.path.abspath(args.kvdb_path))
    from bench_worker import emit, run_worker

    emit(run_worker(args.worker, args.workloads, args.workdir, args.num, args.reads, args.writes, args.sync_num,
                    args.threads, args.cache_mb << 20, args.seed, label=args.label, quiet=args.quiet))
    return 0


def worker_cmd(args, engine, workdir, label):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--workdir", workdir, "--label", label,
           "--num", str(args.num), "--reads", str(args.reads), "--writes", str(args.writes),
           "--sync-num", str(args.sync_num), "--threads", str(args.threads), "--cache-mb", str(args.cache_mb),
           "--seed", str(args.seed), "--workloads", ",".join(args.workloads), "--kvdb-path", args.kvdb_path]
    return cmd + (["--quiet"] if args.quiet else [])


def run_one(args, engine, run):
    """Run one worker subprocess; its result dict (with "error" if it died)."""
    from bench_worker import parse_output

    workdir = tempfile.mkdtemp(prefix=f"dbbench-{engine}-", dir=args.dir)
    label = f" run {run + 1}/{args.runs}"
    t0 = time.perf_counter()
    try:
        p = subprocess.run(worker_cmd(args, engine, workdir, label), stdout=subprocess.PIPE, text=True,
                           timeout=args.timeout, cwd=REPO)
        out = parse_output(p.stdout)
        if out is None:
            out = {"engine": engine, "error": f"worker exited {p.returncode} without a result", "results": {}}
    except subprocess.TimeoutExpired:
        out = {"engine": engine, "error": f"worker killed after {args.timeout} s", "results": {}}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out["wall_seconds"] = round(time.perf_counter() - t0, 3)
    return out


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)

    from bench_machine import describe, fs_type
    from bench_report import render, summarize

    os.makedirs(args.dir, exist_ok=True)
    if fs_type(args.dir) == "tmpfs":
        print(f"warning: {args.dir} is on tmpfs; fsync costs nothing there, fillsync numbers mean nothing",
              file=sys.stderr)
    machine = describe(args.dir, args.kvdb_path)
    fio = None
    if args.fio:
        from fio_fsync import fio_fsync

        print(f"fio: measuring 4 KiB write+fdatasync in {args.dir} ...", file=sys.stderr, flush=True)
        fio = fio_fsync(args.dir, args.fio_size)
        if "skipped" in fio:
            print(f"note: {fio['skipped']}", file=sys.stderr)

    runs, skipped, versions = {}, {}, {}
    for run in range(args.runs):
        for engine in args.engines:
            if engine in skipped:
                continue
            out = run_one(args, engine, run)
            if "skipped" in out:
                skipped[engine] = out["skipped"]
                print(f"note: {engine} skipped: {out['skipped']}", file=sys.stderr)
                continue
            if "error" in out:
                print(f"note: {engine} run {run + 1}: {out['error']}", file=sys.stderr)
            versions[engine] = out.get("version")
            runs.setdefault(engine, []).append(out)

    summary = summarize(runs, args.workloads)
    print(render(summary, runs, args.engines, args.workloads, counts_of(args), fio, skipped))
    if args.json:
        doc = {"machine": machine, "config": {**counts_of(args), "runs": args.runs, "engines": args.engines,
                                              "workloads": args.workloads, "dir": args.dir},
               "engine_versions": versions, "skipped": skipped, "fio": fio, "summary": summary, "runs": runs}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"\nraw results: {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
