#!/usr/bin/env python3
"""kvdb.cache.Cache against diskcache.Cache, side by side in one run (issue 16's cache target).

    python bench/cache.py                           # 1 and 4 processes, 3 runs of 1 s per cell
    python bench/cache.py --procs 1 --runs 5 --seconds 2 --ops get_hit,set

Operations (str keys like "key-123", 100-character str values, as a web cache holds):
  get_hit     cache.get(k) of one of --keys stored keys
  get_miss    cache.get(k) of a key never stored
  set         cache.set(k, v) over each process's own --keys keys (overwrites after the first round)
  delete      cache.delete(k) in rounds: each process stores DELETE_ROUND new keys of its own
              (untimed), every process takes the others' stores in with one read (untimed: that is
              their cost, not the deletes'), then all delete their round's keys (timed), until a
              process has spent --seconds deleting. Rounds, rather than one batch of --keys keys,
              keep the timed window as long as the other cells' (10,000 kvdb deletes take 0.2 s)
  incr        cache.incr(k) over 100 counters of the process's own
  memoize_hit a @cache.memoize() function of one int argument, called with arguments already cached

Each cell starts --procs processes (multiprocessing spawn) that open one cache directory with
default settings (least-recently-stored, size_limit 1 GB), wait for each other at a barrier, run
the operation for --seconds, and report their count and time; ops/s is the sum of the processes'
counts over the longest time. kvdb and diskcache alternate (which goes first alternates too) and
the table shows medians over --runs, with kvdb/diskcache. The report goes to stdout and to --out
(default bench/results/cache-YYYYMMDD.txt; --no-save to skip).
"""
import argparse
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OPS = ["get_hit", "get_miss", "set", "delete", "incr", "memoize_hit"]
VALUE = "v" * 100
MEMO_ARGS = 1000
DELETE_ROUND = 2500     # keys each process stores, then deletes, per round of the delete cell


def open_cache(impl, path):
    if impl == "kvdb":
        from kvdb.cache import Cache
    else:
        from diskcache import Cache
    return Cache(path)


def prepare(impl, path, keys):
    """The shared contents the read operations need: --keys keys, and the memoized results."""
    cache = open_cache(impl, path)
    for i in range(keys):
        cache.set(f"key-{i}", VALUE)
    square = memoized(cache)
    for i in range(MEMO_ARGS):
        square(i)
    cache.close()


def memoized(cache):
    @cache.memoize(name="bench.square")
    def square(x):
        return x * x
    return square


def delete_rounds(cache, me, seconds, barrier, stop):
    """The delete cell: (deletes, seconds spent deleting) over rounds that every process runs
    together; the rounds end once one process has spent `seconds` deleting."""
    count, spent, round_ = 0, 0.0, 0
    while True:
        batch = [f"own-{me}-{round_}-{i}" for i in range(DELETE_ROUND)]
        for k in batch:
            cache.set(k, VALUE)
        barrier.wait()                       # every process stored its round's keys
        cache.get(batch[0])                  # kvdb applies the others' stores at its next read
        barrier.wait()
        start = time.perf_counter()
        for k in batch:
            cache.delete(k)
        spent += time.perf_counter() - start
        count += len(batch)
        round_ += 1
        if spent >= seconds:
            stop.value = 1
        barrier.wait()                       # every process read or wrote `stop` for this round
        if stop.value:
            return count, spent


def worker(impl, path, op, keys, seconds, barrier, stop, results):
    cache = open_cache(impl, path)
    me = os.getpid()
    get, set_, incr = cache.get, cache.set, cache.incr
    hit_keys = [f"key-{i}" for i in range(keys)]
    miss_keys = [f"miss-{i}" for i in range(keys)]
    own_keys = [f"own-{me}-{i}" for i in range(keys)]
    counters = [f"counter-{me}-{i}" for i in range(100)]
    square = memoized(cache)
    if op == "delete":
        count, elapsed = delete_rounds(cache, me, seconds, barrier, stop)
        cache.close()
        results.put((count, elapsed))
        return
    barrier.wait()
    count = 0
    start = time.perf_counter()
    stop = start + seconds
    n = len(hit_keys)
    while True:
        if op == "get_hit":
            for k in hit_keys[:256]:
                get(k)
            hit_keys = hit_keys[256:] + hit_keys[:256]
        elif op == "get_miss":
            for k in miss_keys[:256]:
                get(k)
            miss_keys = miss_keys[256:] + miss_keys[:256]
        elif op == "set":
            for k in own_keys[count % n:count % n + 256]:
                set_(k, VALUE)
        elif op == "incr":
            for k in counters * 2 + counters[:56]:
                incr(k)
        elif op == "memoize_hit":
            for i in range(count % MEMO_ARGS, count % MEMO_ARGS + 256):
                square(i % MEMO_ARGS)
        count += 256
        if time.perf_counter() >= stop:
            break
    elapsed = time.perf_counter() - start
    cache.close()
    results.put((count, elapsed))


def run_cell(impl, op, procs, keys, seconds, base):
    path = tempfile.mkdtemp(prefix=f"bench-cache-{impl}-", dir=base)
    try:
        prepare(impl, path, keys)
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(procs)
        stop = ctx.Value("i", 0)
        results = ctx.Queue()
        ps = [ctx.Process(target=worker, args=(impl, path, op, keys, seconds, barrier, stop, results))
              for _ in range(procs)]
        for p in ps:
            p.start()
        got = [results.get(timeout=seconds * 20 + 120) for _ in ps]
        for p in ps:
            p.join(60)
            if p.is_alive():
                p.kill()
        return sum(c for c, _ in got) / max(e for _, e in got)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", default="1,4", help="process counts, comma-separated")
    parser.add_argument("--ops", default=",".join(OPS), help="operations, comma-separated: " + ", ".join(OPS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--keys", type=int, default=10000)
    parser.add_argument("--dir", default=None, help="where the caches go (default: the temp dir)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    ops = args.ops.split(",")
    procs_list = [int(p) for p in args.procs.split(",")]
    import diskcache
    rates = {}
    for run in range(args.runs):
        for procs in procs_list:
            for op in ops:
                order = ["kvdb", "diskcache"] if (run + ops.index(op)) % 2 == 0 else ["diskcache", "kvdb"]
                for impl in order:
                    rate = run_cell(impl, op, procs, args.keys, args.seconds, args.dir)
                    rates.setdefault((impl, op, procs), []).append(rate)
                    print(f"run {run + 1}/{args.runs} procs={procs} {op:12s} {impl:9s} {rate:12,.0f} ops/s",
                          file=sys.stderr, flush=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        commit = "?"
    lines = [
        f"$ python {' '.join(sys.argv)}",
        f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.python_version()}, "
        f"nproc {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"diskcache {diskcache.__version__}",
        f"medians of {args.runs} runs of {args.seconds} s per cell; ops/s summed over the processes",
        "",
        f"{'procs':>5}  {'operation':12s} {'kvdb.Cache':>14} {'diskcache':>14} {'kvdb/diskcache':>15}",
    ]
    for procs in procs_list:
        for op in ops:
            ours = statistics.median(rates[("kvdb", op, procs)])
            theirs = statistics.median(rates[("diskcache", op, procs)])
            lines.append(f"{procs:>5}  {op:12s} {ours:14,.0f} {theirs:14,.0f} {ours / theirs:14.2f}x")
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.no_save:
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                       f"cache-{time.strftime('%Y%m%d', time.gmtime())}.txt")
        with open(out, "a") as f:
            f.write(report + "\n")
        print(f"saved to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
