#!/usr/bin/env python3
"""The data-type benchmark of `kvdb serve`: lists, sets and sorted sets against
redis-server, and sorted-set and stream commands on a big collection against a small one.

Part 1 (--part types): redis-benchmark -t lpush,lpop,rpush,rpop,sadd,spop,zadd,zpopmin,lrange_100
-c 50 -r 100000 -d 100 -n N at each pipeline depth (-P 1 and -P 16), against kvdb serve
with each --sync mode of --syncs (default "normal,full": normal is kvdb serve's default and
the like-for-like of redis-server's appendfsync everysec; full fsyncs before every reply)
and against redis-server --appendonly yes --appendfsync everysec, all started side by side
and run alternately; medians over --runs; ratios kvdb / redis-server. Issue targets:
>= 0.6x at -P 1 and >= 0.5x at -P 16.

Part 2 (--part scale): a sorted set and a stream of --big elements (default 10,000,000)
and of --small elements (default 1,000) are built on kvdb serve (redis-cli --pipe; the
sorted set in a scrambled order), then redis-benchmark measures, on each size:
  ZADD          ZADD key <random score> <random existing member>  (an update)
  ZRANK         ZRANK key <random existing member>
  ZRANGE-100    ZRANGE key s s+99 at five ranks s spread over the set (1%..99%)
  ZRANGEBYSCORE-100  ZRANGE key <random score> +inf BYSCORE LIMIT 0 100
  XADD          XADD key * f <value>   (the entries added are deleted afterwards)
  XRANGE-100    XRANGE key <id> + COUNT 100 at five ids spread over the stream
and prints ops/s for both sizes and big/small (issue target: >= 0.5, within 2x).

    python bench/server_types.py                       # both parts, full size (10M: tens of minutes)
    python bench/server_types.py --part types --runs 3 --requests 100000
    python bench/server_types.py --part scale --big 10000000
    python bench/server_types.py --quick               # 1 run, 20,000 requests, big = 100,000

Needs redis-server, redis-benchmark and redis-cli (Debian: redis-server, redis-tools).
Results are printed and saved to bench/results/server_types-DATE[-quick].txt (--out).
"""
import argparse
import csv
import datetime
import io
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))   # a checkout's kvdb, when run as bench/server_types.py

from dbbench.server import Server, free_port  # noqa: E402

TYPE_TESTS = "lpush,lpop,rpush,rpop,sadd,spop,zadd,zpopmin,lrange_100"
TARGET = {1: 0.6, 16: 0.5}       # issue: kvdb / redis-server requests/s at -P 1 and at -P 16
SCALE_TARGET = 0.5               # issue: big-collection ops/s within 2x of the small one's
POSITIONS = (0.01, 0.25, 0.5, 0.75, 0.99)   # where the fixed-position range commands start


def build_parser():
    ap = argparse.ArgumentParser(prog="bench/server_types.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["types", "scale", "both"], default="both")
    ap.add_argument("--runs", type=int, default=3, help="runs per configuration (median reported)")
    ap.add_argument("--requests", "-n", type=int, default=100_000, help="part 1: requests per test (-n)")
    ap.add_argument("--clients", "-c", type=int, default=50, help="parallel connections (-c)")
    ap.add_argument("--keyspace", "-r", type=int, default=100_000, help="part 1: random members/keys (-r)")
    ap.add_argument("--size", "-d", type=int, default=100, help="value bytes (-d; part 2: stream values)")
    ap.add_argument("--pipelines", default="1,16", help="part 1: pipeline depths (-P), comma-separated")
    ap.add_argument("--tests", default=TYPE_TESTS, help="part 1: redis-benchmark tests (-t)")
    ap.add_argument("--syncs", default="normal,full", help="kvdb serve --sync modes to run (part 1)")
    ap.add_argument("--sync", default="normal", help="kvdb serve --sync for part 2")
    ap.add_argument("--engine", default="btree", help="kvdb serve --engine")
    ap.add_argument("--cache-size", default=None, help="kvdb serve --cache-size (default: the server's, 64mb)")
    ap.add_argument("--big", type=int, default=10_000_000, help="part 2: elements of the big collections")
    ap.add_argument("--small", type=int, default=1_000, help="part 2: elements of the small collections")
    ap.add_argument("--scale-requests", type=int, default=100_000, help="part 2: requests per command and size")
    ap.add_argument("--scale-pipeline", type=int, default=1, help="part 2: pipeline depth (-P)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 1 run, 20,000 requests, big = 100,000, 10,000 scale requests")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for the result table")
    ap.add_argument("--no-save", action="store_true", help="print only")
    ap.add_argument("--dir", default=None, help="where the servers keep their data (default: a temp dir)")
    return ap


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- redis-benchmark ---------------------------------------------------------------------


def redis_benchmark(port, extra, timeout=7200):
    """Rows of redis-benchmark --csv: [(test name, rps, p50 ms, p99 ms)]."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "--csv"] + [str(a) for a in extra]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:12])}...: redis-benchmark failed: "
                           f"{(p.stderr or p.stdout).decode(errors='replace').strip()[-500:]}")
    rows = list(csv.reader(io.StringIO(p.stdout.decode())))
    out = []
    for row in rows[1:]:
        rec = dict(zip(rows[0], row))
        out.append((rec["test"], float(rec["rps"]), float(rec["p50_latency_ms"]), float(rec["p99_latency_ms"])))
    if not out:
        raise RuntimeError(f"redis-benchmark printed no result: {p.stdout.decode(errors='replace')[-500:]}")
    return out


def type_run(port, args, pipeline, requests):
    """{TEST: (rps, p50, p99)} for the -t tests; the LPUSH that fills the list for
    LRANGE_100 ("LPUSH (needed to benchmark LRANGE)") is left out."""
    rows = redis_benchmark(port, ["-t", args.tests, "-n", requests, "-c", args.clients, "-r", args.keyspace,
                                  "-d", args.size, "-P", pipeline])
    return {name.split()[0]: (rps, p50, p99) for name, rps, p50, p99 in rows if "needed to" not in name}


def medians(results):
    tests = results[0].keys()
    return {t: tuple(statistics.median(r[t][i] for r in results if t in r) for i in range(3)) for t in tests}


# -- servers -----------------------------------------------------------------------------


def kvdb_server(base, name, sync, engine, cache_size=None):
    port = free_port()
    wd = os.path.join(base, name)
    os.makedirs(wd)
    argv = [sys.executable, "-m", "kvdb", "serve", "--data", os.path.join(wd, "data"), "--port", str(port),
            "--bind", "127.0.0.1", "--sync", sync, "--engine", engine, "--loglevel", "warning"]
    if cache_size:
        argv += ["--cache-size", cache_size]
    return Server(name, argv, port, wd)


def redis_server(base):
    port = free_port()
    wd = os.path.join(base, "redis")
    os.makedirs(wd)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes",
            "--appendfsync", "everysec", "--save", "", "--dir", wd, "--protected-mode", "yes"]
    return Server("redis", argv, port, wd)


# -- part 1: the type tests against redis-server -----------------------------------------


def part_types(args, base, runs, requests):
    pipelines = [int(p) for p in args.pipelines.split(",")]
    syncs = [s for s in args.syncs.split(",") if s]
    servers = [kvdb_server(base, f"kvdb-{s}", s, args.engine, args.cache_size) for s in syncs] + [redis_server(base)]
    results = {}   # (server name, pipeline) -> [run results]
    started = []
    try:
        for s in servers:
            started.append(s.__enter__())
        for run in range(runs):
            for pipeline in pipelines:
                for s in servers:
                    log(f"types: run {run + 1}/{runs}, -P {pipeline}, {s.name} ...")
                    results.setdefault((s.name, pipeline), []).append(type_run(s.port, args, pipeline, requests))
    finally:
        for s in reversed(started):
            s.__exit__(None, None, None)
    return render_types(args, runs, requests, pipelines, syncs, results)


def cache_note(args):
    return f", --cache-size {args.cache_size}" if args.cache_size else ""


def render_types(args, runs, requests, pipelines, syncs, results):
    kv = [f"kvdb-{s}" for s in syncs]
    lines = [f"Part 1: kvdb serve (--engine {args.engine}{cache_note(args)}; --sync {', '.join(syncs)}; "
             f"kvdb serve's default is normal) vs redis-server --appendonly yes --appendfsync everysec",
             f"redis-benchmark -t {args.tests} -n {requests} -c {args.clients} -r {args.keyspace} -d {args.size}; "
             f"median of {runs} run(s); {os.cpu_count()} CPUs shared by the servers and the client",
             "requests/s (p99 ms); ratio = kvdb / redis-server requests/s; target >= "
             + ", ".join(f"{t}x at -P {p}" for p, t in TARGET.items()), ""]
    header = f"{'test':<11} {'-P':>3} | " + " | ".join(f"{n:>19}" for n in kv + ["redis"]) + " | " + \
             " ".join(f"{'ratio ' + s:>13}" for s in syncs)
    lines += [header, "-" * len(header)]
    missed = []
    for pipeline in pipelines:
        med = {n: medians(results[(n, pipeline)]) for n in kv + ["redis"]}
        for test in med["redis"]:
            cells, ratios = [], []
            for n in kv + ["redis"]:
                rps, _, p99 = med[n].get(test, (0.0, 0.0, 0.0))
                cells.append(f"{rps:>10,.0f} ({p99:>6.2f})")
            for s, n in zip(syncs, kv):
                rr = med["redis"][test][0]
                ratio = med[n].get(test, (0.0,))[0] / rr if rr else float("nan")
                flag = "*" if pipeline in TARGET and ratio < TARGET[pipeline] else " "
                if flag == "*":
                    missed.append(f"{test} -P {pipeline} sync {s}: {ratio:.2f}x")
                ratios.append(f"{ratio:>11.2f}x{flag}")
            lines.append(f"{test:<11} {pipeline:>3} | " + " | ".join(cells) + " | " + " ".join(ratios))
    lines += ["", f"* below the target ({len(missed)} of {len(pipelines) * len(syncs) * len(med['redis'])})"]
    return "\n".join(lines)


# -- part 2: big collections against small ones ------------------------------------------


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def pipe_in(port, chunks, expect):
    """Sends the RESP commands from `chunks` (an iterator of bytes) through redis-cli --pipe;
    checks that `expect` replies came back without errors."""
    p = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--pipe", "--pipe-timeout", "600"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for chunk in chunks:
            p.stdin.write(chunk)
        p.stdin.close()
        out = p.stdout.read().decode(errors="replace")
        p.wait(600)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode != 0 or "errors: 0," not in out or f"replies: {expect}" not in out:
        raise RuntimeError(f"redis-cli --pipe: {out.strip()[-800:]}")


def member(i):
    return b"m:%012d" % i      # what redis-benchmark's __rand_int__ gives inside "m:__rand_int__"


def stride_for(n):
    """A step coprime to n, so i = j * stride % n visits every i once in a scrambled order."""
    s = 1_000_003
    while math.gcd(s, n) != 1:
        s += 2
    return s


def build_zset(port, key, n, batch=1000):
    """ZADD of members m:i with score i, i in 0..n-1 visited in a scrambled order."""
    stride = stride_for(n)

    def chunks():
        buf = []
        for start in range(0, n, batch):
            args = [b"ZADD", key]
            for j in range(start, min(n, start + batch)):
                i = j * stride % n
                args += [b"%d" % i, member(i)]
            buf.append(resp(*args))
            if len(buf) >= 16:
                yield b"".join(buf)
                buf = []
        yield b"".join(buf)

    pipe_in(port, chunks(), (n + batch - 1) // batch)


def build_stream(port, key, n, size):
    """XADD key <i+1>-1 f <value> for i in 0..n-1: entry i has id i+1-1."""
    value = b"v" * size

    def chunks():
        buf = []
        for i in range(n):
            buf.append(resp(b"XADD", key, b"%d-1" % (i + 1), b"f", value))
            if len(buf) >= 2000:
                yield b"".join(buf)
                buf = []
        yield b"".join(buf)

    pipe_in(port, chunks(), n)


def scale_ops(key_z, key_s, n, size):
    """[(name, [(command args, share of the requests)])]."""
    fixed_ranks = [int(n * f) for f in POSITIONS]
    return [
        ("ZADD", [(["ZADD", key_z, "__rand_int__", "m:__rand_int__"], 1.0)]),
        ("ZRANK", [(["ZRANK", key_z, "m:__rand_int__"], 1.0)]),
        ("ZRANGE-100", [(["ZRANGE", key_z, r, min(r + 99, n - 1)], 1 / len(POSITIONS)) for r in fixed_ranks]),
        ("ZRANGEBYSCORE-100", [(["ZRANGE", key_z, "__rand_int__", "+inf", "BYSCORE", "LIMIT", 0, 100], 1.0)]),
        ("XADD", [(["XADD", key_s, "*", "f", "v" * size], 1.0)]),
        ("XRANGE-100", [(["XRANGE", key_s, f"{r + 1}-1", "+", "COUNT", 100], 1 / len(POSITIONS))
                        for r in fixed_ranks]),
    ]


def measure(port, parts, n, args, requests):
    """ops/s of one scale op: its commands run one after another, requests shared out;
    ops/s = all requests / the time they took together."""
    total_req, total_time = 0, 0.0
    for argv, share in parts:
        req = max(1, int(requests * share))
        [(_, rps, _, _)] = redis_benchmark(port, ["-n", req, "-c", args.clients, "-r", n, "-P", args.scale_pipeline]
                                           + argv)
        total_req += req
        total_time += req / rps
    return total_req / total_time


def delete_added_entries(port, key, n):
    """Removes the entries XADD appended after the built ones (ids above n-1)."""
    import redis   # the test extra's client; only needed here
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=600)
    start = f"({n}-1"
    while True:
        ids = [eid for eid, _ in r.xrange(key, start, "+", count=10_000)]
        if not ids:
            break
        r.xdel(key, *ids)
    assert r.xlen(key) == n, (key, r.xlen(key), n)
    r.close()


def part_scale(args, base, runs, big, small, requests):
    sizes = [small, big]
    srv = kvdb_server(base, "kvdb-scale", args.sync, args.engine, args.cache_size)
    table = {}     # (op, size) -> [ops/s per run]
    builds = {}    # (kind, size) -> elements/s
    with srv:
        for n in sizes:
            for kind, fn in (("zset", lambda k: build_zset(srv.port, k, n)),
                             ("stream", lambda k: build_stream(srv.port, k, n, args.size))):
                log(f"scale: building a {kind} of {n:,} elements ...")
                t0 = time.monotonic()
                fn(f"big:{kind}:{n}".encode())
                builds[(kind, n)] = n / (time.monotonic() - t0)
                log(f"scale: built in {time.monotonic() - t0:.1f} s ({builds[(kind, n)]:,.0f} elements/s)")
        for run in range(runs):
            for n in sizes:
                for name, parts in scale_ops(f"big:zset:{n}", f"big:stream:{n}", n, args.size):
                    log(f"scale: run {run + 1}/{runs}, {name} on {n:,} ...")
                    table.setdefault((name, n), []).append(measure(srv.port, parts, n, args, requests))
                    if name == "XADD":
                        delete_added_entries(srv.port, f"big:stream:{n}", n)
        du = dir_size(os.path.join(srv.cwd, "data"))
    return render_scale(args, runs, small, big, requests, table, builds, du)


def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def render_scale(args, runs, small, big, requests, table, builds, du):
    lines = [f"Part 2: kvdb serve (--sync {args.sync}, --engine {args.engine}{cache_note(args)}): "
             f"a sorted set and a stream of {big:,} elements against {small:,}",
             f"redis-benchmark -c {args.clients} -P {args.scale_pipeline}, {requests:,} requests per command and "
             f"size; median of {runs} run(s); stream values {args.size} bytes; data directory {du / 2**20:,.0f} MiB",
             f"ratio = ops/s on {big:,} / ops/s on {small:,}; target >= {SCALE_TARGET} (within 2x)", ""]
    header = f"{'command':<18} | {f'{small:,} ops/s':>16} | {f'{big:,} ops/s':>18} | {'ratio':>7}"
    lines += [header, "-" * len(header)]
    missed = []
    for name, _ in scale_ops("z", "s", big, args.size):
        a = statistics.median(table[(name, small)])
        b = statistics.median(table[(name, big)])
        ratio = b / a if a else float("nan")
        flag = "*" if ratio < SCALE_TARGET else " "
        if flag == "*":
            missed.append(f"{name} {ratio:.2f}")
        lines.append(f"{name:<18} | {a:>16,.0f} | {b:>18,.0f} | {ratio:>6.2f}{flag}")
    lines += ["", f"* below the target ({len(missed)} of {len(table) // 2})",
              "build (redis-cli --pipe; ZADD 1,000 members per command, XADD one entry per command): " +
              ", ".join(f"{kind} {n:,}: {rate:,.0f}/s" for (kind, n), rate in builds.items()),
              "ZRANGE-100 and XRANGE-100 start at ranks/ids at " +
              ", ".join(f"{int(f * 100)}%" for f in POSITIONS) + " of the collection, requests shared equally; "
              "XADD's entries are deleted after each measurement"]
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    for tool in ("redis-benchmark", "redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            log(f"bench/server_types.py: {tool} is not installed (Debian: apt-get install redis-tools redis-server)")
            return 2
    if args.quick:
        runs, requests, big, scale_requests = 1, 20_000, 100_000, 10_000
    else:
        runs, requests, big, scale_requests = args.runs, args.requests, args.big, args.scale_requests
    if big <= args.small:
        log("bench/server_types.py: --big must be larger than --small")
        return 2
    base = tempfile.mkdtemp(prefix="kvdb-bench-types-", dir=args.dir)
    out = []
    try:
        if args.part in ("types", "both"):
            out.append(part_types(args, base, runs, requests))
            print(out[-1] + "\n", flush=True)
        if args.part in ("scale", "both"):
            out.append(part_scale(args, base, runs, big, args.small, scale_requests))
            print(out[-1] + "\n", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if not args.no_save:
        os.makedirs(args.out, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
        path = os.path.join(args.out, f"server_types-{stamp}{'-quick' if args.quick else ''}.txt")
        with open(path, "w") as f:
            f.write(" ".join(["python bench/server_types.py"] + (argv if argv is not None else sys.argv[1:])) + "\n\n")
            f.write("\n\n".join(out) + "\n")
        log(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
