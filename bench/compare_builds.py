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
The table is printed, headed by the command line, the two commits and the load average, and
saved to --out (default: processes-single-DATE.txt in the current directory).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


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


def table(args, results, elapsed):
    """The report's lines: results[build][round] = {engine: {workload: ops/s}}."""
    lines = []
    engines = args.engines.split(",")
    workloads = []
    for per_round in results["before"]:
        for per in per_round.values():
            workloads += [w for w in per if w not in workloads]
    flagged = []
    lines.append(f"{'engine':<11} {'workload':<17} {'before ops/s':>13} {'after ops/s':>13} "
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
            lines.append(f"{engine:<11} {w:<17} {mb:>13,.0f} {ma:>13,.0f} {ratio:>5.3f}x  "
                         + " ".join(f"{r:.2f}" for r in ratios)
                         + f"  (median {statistics.median(ratios):.3f}){mark}")
    lines.append("")
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
        f"db_bench --num {args.num:,} --runs 1 --engines {args.engines} per build per round, "
        f"builds alternating (before first in odd rounds); nproc {os.cpu_count()}, "
        f"load average at the start {os.getloadavg()[0]:.2f}",
        "",
    ]
    print("\n".join(header), flush=True)
    for rnd in range(args.rounds):
        order = ["before", "after"] if rnd % 2 == 0 else ["after", "before"]
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
