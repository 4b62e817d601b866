#!/usr/bin/env python3
"""db_bench on two builds of kvdb, alternately, and the after / before ratio of each workload.

    python bench/compare_builds.py --before /work/bench-before --after /work/bench-after \
        --rounds 5 --num 1000000 [--engines kvdb-btree,kvdb-lsm] [--workloads a,b] [--out FILE]

Each build is a checkout of its own (a clone at the commit to measure, `pip install -e .` in its
`.venv`). A round runs bench/db_bench.py once (`--runs 1`) in each checkout, with that checkout's
`.venv/bin/python` (or this interpreter when it has none), so each build is measured by its own
harness and imports its own kvdb. The order of the two builds alternates from round to round, so
slow drift on a shared machine falls on both alike.

The table shows, per engine and workload, the median ops/s of each build over the rounds, the
ratio of those medians (after / before: below 1.00 means the after build is slower), and the
median of the per-round ratios (each round's two runs ran minutes apart, so this ratio is the
less exposed one to drift). A workload whose median ratio is below 1 - --limit is flagged `*`.

--clock cpu measures CPU time instead: each round runs one db_bench worker per engine and build
(engines in turn, builds alternating within each engine) with db_bench's timer `timed()` swapped
for one that returns the worker process's CPU seconds (time.process_time: every thread of it, so
background checkpoints, flushes and compactions count) over the same timed loop. On a machine
shared with other work, wall time swings with the others' load; CPU time per operation much less,
so a change of a few percent in the code's cost shows. fillsync and fillsync-threads wait for
the disk, which CPU time does not see, so with --clock cpu they are left out.
The table is printed, headed by the command line, the two commits and the load average, and
saved to --out (default: processes-single-DATE.txt in the current directory).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


# db_bench's default workload set (bench/dbbench/workloads.py ORDER), for --clock cpu workers
DEFAULT_WORKLOADS = ["fillbatch", "fillrandom", "overwrite", "readrandom", "readmissing", "readseq", "seekrandom",
                     "deleterandom", "fillsync", "fillsync-threads"]


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="compare_builds.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="checkout of the build before the change")
    ap.add_argument("--after", required=True, help="checkout of the build after the change")
    ap.add_argument("--rounds", type=int, default=5, help="db_bench runs per build (default 5)")
    ap.add_argument("--num", type=int, default=1_000_000, help="keys (db_bench --num, default 1,000,000)")
    ap.add_argument("--engines", default="kvdb-btree,kvdb-lsm", help="db_bench --engines (default kvdb-btree,kvdb-lsm)")
    ap.add_argument("--workloads", default=None, help="db_bench --workloads (default: db_bench's default set)")
    ap.add_argument("--limit", type=float, default=0.05, help="regression flagged beyond this fraction (default 0.05)")
    ap.add_argument("--dir", default=None, help="db_bench --dir: where the databases go")
    ap.add_argument("--out", default=None, help="the table's file (default processes-single-DATE.txt here)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall: db_bench as it is; cpu: ops per CPU second of the worker (see above)")
    ap.add_argument("--keep-json", default=None, help="directory to keep each run's db_bench JSON in")
    return ap.parse_args(argv)


def git_rev(checkout):
    """The short commit a checkout is at, or '?'."""
    done = subprocess.run(["git", "-C", checkout, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    return done.stdout.strip()[:90] or "?"


def python_of(checkout):
    """The checkout's own virtualenv interpreter, else this one."""
    venv = os.path.join(checkout, ".venv", "bin", "python")
    return venv if os.path.exists(venv) else sys.executable


def run_db_bench(args, checkout, json_path):
    """One db_bench run (--runs 1) of `checkout`'s build; its summary {engine: {workload: ops/s}}."""
    cmd = [python_of(checkout), os.path.join(checkout, "bench", "db_bench.py"), "--num", str(args.num),
           "--runs", "1", "--engines", args.engines, "--kvdb-path", checkout, "--json", json_path,
           "--no-charts", "--quiet"]
    if args.workloads:
        cmd += ["--workloads", args.workloads]
    if args.dir:
        cmd += ["--dir", args.dir]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=checkout)
    with open(json_path) as f:
        doc = json.load(f)
    return {engine: {w: s["median"] for w, s in per.items() if s.get("median")}
            for engine, per in doc["summary"].items()}


# A db_bench worker whose timer returns CPU seconds (--clock cpu); each result also keeps the rate
# by wall time of the same loop as wall_ops_per_sec.
CPU_BOOT = """
import gc, sys, time
bench_dir, kvdb_path = sys.argv[1], sys.argv[2]
sys.path[:0] = [kvdb_path, bench_dir]
from dbbench import workloads
walls = []
def timed(body):
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    out = body()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    walls.append(wall)
    return cpu, out
plain_result = workloads.result
def result(ops, seconds, **extra):
    extra["wall_ops_per_sec"] = ops / walls[-1] if walls and walls[-1] > 0 else None
    return plain_result(ops, seconds, **extra)
workloads.timed, workloads.result = timed, result
from dbbench.spawn import worker_main
sys.exit(worker_main(sys.argv[3:]))
"""
CPU_SKIPPED = ("fillsync", "fillsync-threads")  # they wait for the disk, which CPU time does not see


def run_cpu_worker(args, checkout, engine, json_path):
    """One db_bench worker of `engine` on `checkout`'s build, timed in CPU seconds;
    {engine: {workload: ops per CPU second}} (and the wall rates under engine + " wall")."""
    workloads = [w for w in (args.workloads.split(",") if args.workloads else DEFAULT_WORKLOADS)
                 if w not in CPU_SKIPPED]
    workdir = tempfile.mkdtemp(prefix=f"compare-{engine}-", dir=args.dir)
    try:
        cmd = [python_of(checkout), "-c", CPU_BOOT, os.path.join(checkout, "bench"), checkout,
               "--worker", engine, "--engines", engine, "--workdir", workdir, "--num", str(args.num),
               "--workloads", ",".join(workloads), "--kvdb-path", checkout]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with open(json_path, "w") as f:
        f.write(done.stdout)
    line = [x for x in done.stdout.splitlines() if x.startswith("DBBENCH_RESULT ")][-1]
    res = json.loads(line[len("DBBENCH_RESULT "):])["results"]
    errors = {w: r["error"] for w, r in res.items() if "error" in r}
    if errors:
        raise RuntimeError(f"{checkout} {engine}: {errors}")
    return {engine: {w: r["ops_per_sec"] for w, r in res.items()},
            engine + " wall": {w: r["wall_ops_per_sec"] for w, r in res.items()}}


def table(args, results, elapsed):
    """The report's lines: results[build][round] = {engine: {workload: ops/s}}."""
    lines = []
    engines = args.engines.split(",")
    if args.clock == "cpu":
        engines = [e + suffix for e in engines for suffix in ("", " wall")]
    workloads = []
    for per_round in results["before"]:
        for per in per_round.values():
            workloads += [w for w in per if w not in workloads]
    flagged = []
    unit = "ops/CPU s" if args.clock == "cpu" else "ops/s"
    lines.append(f"{'engine':<16} {'workload':<17} {'before ' + unit:>16} {'after ' + unit:>16} "
                 f"{'ratio':>6} {'per-round ratios (after/before)':>s}")
    for engine in engines:
        for w in workloads:
            before = [r.get(engine, {}).get(w) for r in results["before"]]
            after = [r.get(engine, {}).get(w) for r in results["after"]]
            pairs = [(b, a) for b, a in zip(before, after) if b and a]
            if not pairs:
                continue
            mb = statistics.median(b for b, _ in pairs)
            ma = statistics.median(a for _, a in pairs)
            ratios = [a / b for b, a in pairs]
            ratio = ma / mb
            mark = " *" if ratio < 1 - args.limit else ""
            if mark:
                flagged.append(f"{engine} {w} {ratio:.3f}x (paired median {statistics.median(ratios):.3f}x)")
            lines.append(f"{engine:<16} {w:<17} {mb:>16,.0f} {ma:>16,.0f} {ratio:>5.3f}x  "
                         + " ".join(f"{r:.2f}" for r in ratios)
                         + f"  (median {statistics.median(ratios):.3f}){mark}")
    lines.append("")
    if args.clock == "cpu":
        lines.append("rows 'ENGINE': operations per CPU second of the worker process; rows 'ENGINE wall': "
                     "the same loops by wall time")
    lines.append(f"ratio = median after / median before over {args.rounds} rounds; * = below {1 - args.limit:.2f}x")
    lines.append("flagged: " + ("; ".join(flagged) if flagged else "none"))
    lines.append(f"elapsed {elapsed / 60:.1f} min; load average at the end {os.getloadavg()[0]:.2f}")
    return lines


def main(argv):
    args = parse_args(argv)
    builds = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    json_dir = args.keep_json or tempfile.mkdtemp(prefix="compare-builds-")
    os.makedirs(json_dir, exist_ok=True)
    results = {"before": [], "after": []}
    t0 = time.time()
    header = [
        "$ python bench/compare_builds.py " + " ".join(argv) + f"   # {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"before: {builds['before']} at {git_rev(builds['before'])}",
        f"after:  {builds['after']} at {git_rev(builds['after'])}",
        (f"db_bench --num {args.num:,} --runs 1 --engines {args.engines} per build per round, "
         f"builds alternating (before first in odd rounds); " if args.clock == "wall" else
         f"db_bench workers (--num {args.num:,}) timed in CPU seconds, one per engine and build per round, "
         f"engines in turn, builds alternating (before first in odd rounds); ")
        + f"nproc {os.cpu_count()}, "
        f"load average at the start {os.getloadavg()[0]:.2f}",
        "",
    ]
    print("\n".join(header), flush=True)
    for rnd in range(args.rounds):
        order = ["before", "after"] if rnd % 2 == 0 else ["after", "before"]
        if args.clock == "cpu":
            got = {name: {} for name in order}
            for engine in args.engines.split(","):
                for name in order:
                    json_path = os.path.join(json_dir, f"round{rnd + 1}-{name}-{engine}.out")
                    got[name].update(run_cpu_worker(args, builds[name], engine, json_path))
            for name in order:
                results[name].append(got[name])
            print(f"round {rnd + 1}/{args.rounds} done ({(time.time() - t0) / 60:.1f} min, "
                  f"load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
            continue
        for name in order:
            json_path = os.path.join(json_dir, f"round{rnd + 1}-{name}.json")
            results[name].append(run_db_bench(args, builds[name], json_path))
            print(f"round {rnd + 1}/{args.rounds} {name} done ({(time.time() - t0) / 60:.1f} min, "
                  f"load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    lines = header + table(args, results, time.time() - t0)
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or f"processes-single-{time.strftime('%Y%m%d', time.gmtime())}.txt"
    with open(out, "w") as f:
        f.write(text)
    print(f"saved {out}; run JSON in {json_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
