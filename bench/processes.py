#!/usr/bin/env python3
"""Several processes on one kvdb database (issue 15's performance targets), from a checkout.

    python bench/processes.py                      # both parts, 3 runs, 1,000,000 keys, 10 s each
    python bench/processes.py --part reads --num 300000 --seconds 5 --runs 5
    python bench/processes.py --part commits --commit-procs 1,4

Part `reads`: N keys (16-byte keys, 100-byte values, as db_bench) are loaded into one B+Tree
database, then random point reads (`db.get` of existing keys) run for --seconds in 1 process and
in 4 processes at once (--read-procs). Each process is started with multiprocessing's spawn and
opens the database itself with default settings, reads for --warmup seconds untimed, waits for
the others, then reads for --seconds. Reported: total reads/s (all processes' reads over the
longest process's time) and its ratio to 1 process; the issue's target is 4 processes >= 1.8x.
Also reported: reads per CPU second of the readers (time.process_time), the cost of one read
apart from how much CPU the machine's other work left them.

Part `commits`: 4 processes (--commit-procs) each commit one-put transactions in a loop for
--seconds, on kvdb (B+Tree, sync="full": `with db.transaction() as tx: tx.put(k, v)`) and on
sqlite3 (WAL, synchronous=FULL, a WITHOUT ROWID table, each `INSERT OR REPLACE` its own
autocommit transaction, busy timeout 60 s), each on a fresh database, keys drawn at random from
[0, N). Reported: commits/s of each and kvdb / sqlite3; the issue's target is >= 1.0x.

Runs alternate the sides (1 and 4 readers; kvdb and sqlite3 first in turn) and the tables show
medians over --runs. The report is printed, headed by the command line, the commit, nproc and the
load average, and saved to --out (default processes-DATE-HHMM.txt in the current directory;
--no-save to skip). Databases go in --dir (default: the system temp dir; never tmpfs for the
commit part, whose numbers are the disk's fsync rate).
"""
import argparse
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path[:0] = [p for p in (REPO, BENCH_DIR) if p not in sys.path]  # spawned children inherit sys.path

from dbbench.data import KEY_SIZE, VALUE_SIZE, make_key, make_values  # noqa: E402  (after sys.path)

LOAD_BATCH = 1000           # puts per transaction while loading
READ_SAMPLE = 1 << 18       # random keys each reader draws up front and cycles through
READ_CHUNK = 1024           # reads between two looks at the clock
STARTUP_TIMEOUT = 300       # seconds a worker may take to open, warm up and reach the barrier
SQLITE_PUT = "INSERT OR REPLACE INTO kv(k, v) VALUES (?, ?)"


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="processes.py", description=__doc__.split("\n\n")[0],
                                 epilog="See bench/README.md, 'Several processes'.")
    ap.add_argument("--part", choices=["reads", "commits", "all"], default="all", help="what to run (default all)")
    ap.add_argument("--num", type=int, default=1_000_000, help="keys loaded for reads, key range for commits "
                                                                "(default 1,000,000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per measurement (default 10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="untimed reads per reader before the start (default 2)")
    ap.add_argument("--runs", type=int, default=3, help="runs of every measurement; medians shown (default 3)")
    ap.add_argument("--read-procs", default="1,4", help="reader process counts, the first is the base (default 1,4)")
    ap.add_argument("--commit-procs", default="4", help="committer process counts (default 4)")
    ap.add_argument("--dir", default=None, help="where the databases go (default: the system temp dir)")
    ap.add_argument("--seed", type=int, default=301)
    ap.add_argument("--out", default=None, help="report file (default processes-DATE-HHMM.txt here)")
    ap.add_argument("--no-save", action="store_true", help="print the report only")
    args = ap.parse_args(argv)
    args.read_procs = [int(n) for n in args.read_procs.split(",")]
    args.commit_procs = [int(n) for n in args.commit_procs.split(",")]
    return args


# ---- in the worker processes (spawn: each imports this file afresh and opens the database itself)

def reader(path, num, seconds, warmup, seed, barrier, results):
    """Random gets of existing keys: --warmup untimed, then `seconds` timed after the barrier.
    Puts (reads, elapsed seconds, misses, CPU seconds of this process) on `results`."""
    import kvdb

    rng = random.Random(seed)
    keys = [make_key(rng.randrange(num)) for _ in range(READ_SAMPLE)]
    chunks = [keys[i:i + READ_CHUNK] for i in range(0, len(keys), READ_CHUNK)]
    with kvdb.open(path) as db:
        get = db.get
        misses = 0
        end = time.perf_counter() + warmup
        c = 0
        while time.perf_counter() < end:
            for k in chunks[c % len(chunks)]:
                get(k)
            c += 1
        barrier.wait(timeout=STARTUP_TIMEOUT)
        reads = 0
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            for k in chunks[c % len(chunks)]:
                if get(k) is None:
                    misses += 1
            reads += READ_CHUNK
            c += 1
            now = time.perf_counter()
            if now >= end:
                break
    results.put((reads, now - t0, misses, time.process_time() - cpu0))


def kvdb_committer(path, num, seconds, seed, barrier, results):
    """One-put transactions with sync="full" for `seconds` after the barrier. Puts (commits,
    elapsed seconds, log fsyncs of this open, ConflictErrors) on `results`."""
    import kvdb

    rng = random.Random(seed)
    values = make_values(seed)
    with kvdb.open(path, sync="full") as db:
        conflicts = commits = 0
        fsyncs0 = db.stats().get("fsyncs", 0)
        barrier.wait(timeout=STARTUP_TIMEOUT)
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            try:
                with db.transaction() as tx:
                    tx.put(make_key(rng.randrange(num)), values[commits % len(values)])
                commits += 1
            except kvdb.ConflictError:  # blind writes should never conflict; counted to show it
                conflicts += 1
            now = time.perf_counter()
            if now >= end:
                break
        fsyncs = db.stats().get("fsyncs", 0) - fsyncs0
    results.put((commits, now - t0, fsyncs, conflicts))


def sqlite_committer(path, num, seconds, seed, barrier, results):
    """INSERT OR REPLACE, each its own transaction, WAL with synchronous=FULL, for `seconds` after
    the barrier. Puts (commits, elapsed seconds, None, 0) on `results`."""
    rng = random.Random(seed)
    values = make_values(seed)
    con = sqlite3.connect(path, isolation_level=None, timeout=60)  # autocommit; wait for the write lock
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    execute = con.execute
    commits = 0
    barrier.wait(timeout=STARTUP_TIMEOUT)
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        execute(SQLITE_PUT, (make_key(rng.randrange(num)), values[commits % len(values)]))
        commits += 1
        now = time.perf_counter()
        if now >= end:
            break
    con.close()
    results.put((commits, now - t0, None, 0))


# ---- in the parent

def run_processes(target, procs, args_of):
    """Start `procs` spawned processes running target(*args_of(i), barrier, results) and return
    their results; every process is killed if any fails or hangs."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args_of(i), barrier, results)) for i in range(procs)]
    try:
        for w in workers:
            w.start()
        out = []
        deadline = time.monotonic() + STARTUP_TIMEOUT + 600
        while len(out) < procs:
            try:
                out.append(results.get(timeout=5))
            except Exception:  # queue.Empty: look whether a worker died
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"{target.__name__}: a worker failed (exit codes "
                                       f"{[w.exitcode for w in workers]})")
        for w in workers:
            w.join(timeout=60)
        return out
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
                w.join()


def load(path, num, seed):
    """N keys b"%016d" % i with db_bench's 100-byte values, in transactions of LOAD_BATCH puts."""
    import kvdb

    values = make_values(seed)
    t0 = time.perf_counter()
    with kvdb.open(path) as db:
        for start in range(0, num, LOAD_BATCH):
            with db.transaction() as tx:
                for i in range(start, min(num, start + LOAD_BATCH)):
                    tx.put(make_key(i), values[i % len(values)])
    return time.perf_counter() - t0


def reads_part(args, work, lines):
    path = os.path.join(work, "reads")
    secs = load(path, args.num, args.seed)
    lines.append(f"loaded {args.num:,} keys ({KEY_SIZE} B keys, {VALUE_SIZE} B values) in {secs:.1f} s; "
                 f"data directory {dir_mib(path):.0f} MiB")
    rates = {n: [] for n in args.read_procs}
    per_cpu = {n: [] for n in args.read_procs}  # reads per CPU second of the readers: the cost of one read
    for run in range(args.runs):
        order = args.read_procs if run % 2 == 0 else args.read_procs[::-1]
        for n in order:
            out = run_processes(reader, n, lambda i: (path, args.num, args.seconds, args.warmup,
                                                      args.seed * 1000 + run * 10 + i))
            total = sum(r for r, _, _, _ in out)
            misses = sum(m for _, _, m, _ in out)
            rate = total / max(e for _, e, _, _ in out)
            rates[n].append(rate)
            per_cpu[n].append(total / sum(c for _, _, _, c in out))
            progress(f"reads run {run + 1}/{args.runs}: {n} process(es) {rate:,.0f} reads/s, "
                     f"{per_cpu[n][-1]:,.0f} reads/CPU s"
                     + (f" MISSES {misses}" if misses else ""))
            if misses:
                lines.append(f"note: {misses} reads of existing keys found nothing ({n} processes, run {run + 1})")
    base = args.read_procs[0]
    lines.append("")
    lines.append(f"random reads, B+Tree, default settings, {args.seconds:g} s each, medians of {args.runs}")
    lines.append(f"{'processes':>9} {'reads/s (median)':>17} {'vs ' + str(base):>8} {'reads/CPU s':>12}  "
                 f"runs (reads/s)  per-run ratio vs {base}")
    for n in args.read_procs:
        med = statistics.median(rates[n])
        paired = [a / b for a, b in zip(rates[n], rates[base])]
        lines.append(f"{n:>9} {med:>17,.0f} {med / statistics.median(rates[base]):>7.2f}x "
                     f"{statistics.median(per_cpu[n]):>12,.0f}  "
                     + " ".join(f"{r:,.0f}" for r in rates[n]) + "  "
                     + " ".join(f"{p:.2f}" for p in paired))


def commits_part(args, work, lines):
    sides = {"kvdb": kvdb_committer, "sqlite3": sqlite_committer}
    rates = {(name, n): [] for name in sides for n in args.commit_procs}
    fsync_share = {n: [] for n in args.commit_procs}
    for run in range(args.runs):
        names = list(sides) if run % 2 == 0 else list(sides)[::-1]
        for n in args.commit_procs:
            for name in names:
                path = os.path.join(work, f"commits-{name}-{n}-{run}")
                if name == "sqlite3":
                    os.makedirs(path)
                    path = os.path.join(path, "kv.sqlite")
                    con = sqlite3.connect(path)
                    con.execute("PRAGMA journal_mode=WAL")
                    con.execute("CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
                    con.close()
                out = run_processes(sides[name], n, lambda i: (path, args.num, args.seconds,
                                                               args.seed * 1000 + run * 10 + i))
                total = sum(c for c, _, _, _ in out)
                rate = total / max(e for _, e, _, _ in out)
                rates[(name, n)].append(rate)
                extra = ""
                if name == "kvdb":
                    fsyncs = sum(f for _, _, f, _ in out)
                    conflicts = sum(x for _, _, _, x in out)
                    fsync_share[n].append(fsyncs / max(1, total))
                    extra = f", {fsyncs / max(1, total):.2f} fsyncs/commit, {conflicts} conflicts"
                progress(f"commits run {run + 1}/{args.runs}: {name} {n} process(es) {rate:,.0f} commits/s{extra}")
                shutil.rmtree(os.path.dirname(path) if name == "sqlite3" else path, ignore_errors=True)
    lines.append("")
    lines.append(f"one-put transactions, sync full (kvdb B+Tree sync=\"full\"; sqlite3 WAL synchronous=FULL), "
                 f"{args.seconds:g} s each, medians of {args.runs}")
    lines.append(f"{'processes':>9} {'kvdb commits/s':>15} {'sqlite3 commits/s':>18} {'kvdb/sqlite3':>13}  "
                 f"kvdb fsyncs/commit  runs kvdb | sqlite3")
    for n in args.commit_procs:
        k, s = rates[("kvdb", n)], rates[("sqlite3", n)]
        lines.append(f"{n:>9} {statistics.median(k):>15,.0f} {statistics.median(s):>18,.0f} "
                     f"{statistics.median(k) / statistics.median(s):>12.2f}x  "
                     f"{statistics.median(fsync_share[n]):>18.2f}  "
                     + " ".join(f"{r:,.0f}" for r in k) + " | " + " ".join(f"{r:,.0f}" for r in s))


def dir_mib(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.stat(os.path.join(root, f)).st_blocks * 512
    return total / (1 << 20)


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def header(argv):
    rev = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h"], capture_output=True, text=True).stdout.strip()
    import kvdb

    return [f"$ python bench/processes.py {' '.join(argv)}   # git {rev or '?'}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"kvdb from {os.path.dirname(kvdb.__file__)}; sqlite {sqlite3.sqlite_version}; nproc {os.cpu_count()}; "
            f"load average at the start {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]


def main(argv):
    args = parse_args(argv)
    lines = header(argv)
    work = tempfile.mkdtemp(prefix="kvdb-processes-", dir=args.dir)
    lines.append(f"databases in {work}")
    try:
        if args.part in ("reads", "all"):
            reads_part(args, work, lines)
        if args.part in ("commits", "all"):
            commits_part(args, work, lines)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines.append("")
    lines.append(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_save:
        out = args.out or f"processes-{time.strftime('%Y%m%d-%H%M', time.gmtime())}.txt"
        with open(out, "w") as f:
            f.write(text)
        progress(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
