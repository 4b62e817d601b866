#!/usr/bin/env python3
"""Sorted sets on a big set against a small one, and ZADD/ZPOPMIN against redis-server.

Scale (--part scale): a sorted set of --big members (default 10,000,000) and one of
--small (1,000) live in a data directory (--dir) that is built once (members
m:%012d, score i, added in a scrambled order by redis-cli --pipe, as
bench/server_types.py builds them) and reused by later runs. Each run measures, with
redis-benchmark -c 50 -P 1, on both sets:

  ZADD        ZADD key <random score> m:<random existing member>   (a score change)
  ZRANK       ZRANK key m:<random existing member>
  ZRANGE-100  ZRANGE key s s+99 at five ranks s spread over the set (1%..99%)

and prints the medians of --runs runs and big/small (issue 12: >= 0.5).

Types (--part types): redis-benchmark -t zadd,zpopmin -c 50 -r 100000 -d 100 at -P 1
and -P 16 against kvdb serve (--sync) and redis-server --appendonly yes --appendfsync
everysec, alternately; medians and kvdb / redis-server.

--server-path DIR runs the kvdb server from a copy of the package in DIR (DIR/kvdb),
to compare code versions side by side on the same data (--compare DIR runs both).

    python bench/zset_scale.py --part scale --dir /tmp/zbench --runs 3
    python bench/zset_scale.py --part types --runs 3
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from dbbench.server import Server, free_port, wait_port  # noqa: E402
from server_types import build_zset, redis_benchmark, scale_ops  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class EnvServer(Server):
    def __init__(self, name, argv, port, cwd, env):
        super().__init__(name, argv, port, cwd)
        self.env = env

    def __enter__(self):
        self.log = open(os.path.join(self.cwd, f"{self.name}.log"), "wb")
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env)
        wait_port(self.port, self.proc, timeout=600)
        return self


def start_kvdb(data, sync, server_path=None, name="kvdb", profile=None):
    port = free_port()
    os.makedirs(data, exist_ok=True)
    cwd = os.path.dirname(os.path.abspath(data))
    pre = [sys.executable]
    if profile:
        pre += ["-m", "cProfile", "-o", profile]
    argv = pre + ["-m", "kvdb", "serve", "--data", data, "--port", str(port), "--bind", "127.0.0.1",
                  "--sync", sync, "--loglevel", "warning"]
    env = dict(os.environ)
    if server_path:
        env["PYTHONPATH"] = server_path
    return EnvServer(name, argv, port, cwd, env)


def cli(port, *args):
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + [str(a) for a in args],
                       capture_output=True, timeout=600)
    return p.stdout.decode().strip()


def ensure_sets(port, big, small):
    for n in (small, big):
        key = f"zs:{n}"
        have = cli(port, "ZCARD", key)
        if have == str(n):
            continue
        log(f"building {key} ({n:,} members) ...")
        cli(port, "DEL", key)
        import time
        t0 = time.monotonic()
        build_zset(port, key.encode(), n, batch=1000)
        log(f"built in {time.monotonic() - t0:.0f} s")


def cpu_seconds(pid):
    """CPU time (user + system) the process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port, parts, n, requests, clients=50, pipeline=1, pid=None):
    """(ops/s, server CPU us per op): the parts run one after another, requests shared
    out; ops/s = all requests / the time they took together. The CPU figure (the
    server's user + system time over the requests) is steadier than ops/s on a box
    that other work shares."""
    total_req, total_time = 0, 0.0
    cpu0 = cpu_seconds(pid) if pid else 0.0
    for argv, share in parts:
        req = max(1, int(requests * share))
        [(_, rps, _, _)] = redis_benchmark(port, ["-n", req, "-c", clients, "-r", n, "-P", pipeline] + argv)
        total_req += req
        total_time += req / rps
    cpu = (cpu_seconds(pid) - cpu0) / total_req * 1e6 if pid else float("nan")
    return total_req / total_time, cpu


SCALE_OPS = ("ZADD", "ZRANK", "ZRANGE-100")


def part_scale(args):
    servers = [("new", None)]
    if args.compare:
        servers = [("before", args.compare), ("new", None)]
    elif args.server_path:
        servers = [("custom", args.server_path)]
    table = {}
    with start_kvdb(args.dir, "normal", servers[-1][1], "build") as srv:
        ensure_sets(srv.port, args.big, args.small)
    for run in range(args.runs):
        for label, path in servers:
            for sync in args.syncs.split(","):
                with start_kvdb(args.dir, sync, path, f"kvdb-{label}") as srv:
                    for name, parts in scale_ops(f"zs:{args.small}", "unused", args.small, 100):
                        if name not in SCALE_OPS:
                            continue
                        for n in (args.small, args.big):
                            _, parts_n = [x for x in scale_ops(f"zs:{n}", "unused", n, 100) if x[0] == name][0]
                            rps, cpu = measure(srv.port, parts_n, n, args.requests, pid=srv.proc.pid)
                            table.setdefault((label, sync, name, n), []).append(rps)
                            table.setdefault((label, sync, name, n, "cpu"), []).append(cpu)
                            log(f"run {run + 1} {label} sync={sync} {name} n={n:,}: {rps:,.0f}/s, "
                                f"{cpu:.1f} us CPU/op")
    print(f"\nscale: redis-benchmark -c 50 -P 1 -n {args.requests}, medians of {args.runs} runs "
          f"(small {args.small:,}, big {args.big:,})")
    print(f"{'server':8} {'sync':7} {'op':11} {'small/s':>9} {'big/s':>9} {'big/small':>9}   "
          f"{'CPU us/op small':>15} {'big':>6} {'small/big':>9}")
    for label, _ in servers:
        for sync in args.syncs.split(","):
            for name in SCALE_OPS:
                s = statistics.median(table[(label, sync, name, args.small)])
                b = statistics.median(table[(label, sync, name, args.big)])
                cs = statistics.median(table[(label, sync, name, args.small, "cpu")])
                cb = statistics.median(table[(label, sync, name, args.big, "cpu")])
                print(f"{label:8} {sync:7} {name:11} {s:9,.0f} {b:9,.0f} {b / s:9.2f}   {cs:15.1f} {cb:6.1f} {cs / cb:9.2f}")


def part_types(args):
    base = tempfile.mkdtemp(prefix="zbench-types-")
    servers = [("kvdb", None)]
    if args.compare:
        servers = [("before", args.compare), ("kvdb", None)]
    results = {}
    try:
        rport = free_port()
        rdir = os.path.join(base, "redis")
        os.makedirs(rdir)
        redis = Server("redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--appendonly", "yes",
                                 "--appendfsync", "everysec", "--save", "", "--dir", rdir], rport, rdir)
        kv = [(label, start_kvdb(os.path.join(base, label, "data"), args.sync, path, label)) for label, path in servers]
        with redis:
            for _, s in kv:
                s.__enter__()
            try:
                for run in range(args.runs):
                    for pipeline in (1, 16):
                        for label, port in [("redis", rport)] + [(lb, s.port) for lb, s in kv]:
                            for test in ("zadd", "zpopmin"):
                                pid = redis.proc.pid if label == "redis" else dict(kv)[label].proc.pid
                                cpu0 = cpu_seconds(pid)
                                [(_, rps, _, _)] = redis_benchmark(port, ["-t", test, "-n", args.requests, "-c", 50,
                                                                          "-r", 100000, "-d", 100, "-P", pipeline])
                                cpu = (cpu_seconds(pid) - cpu0) / args.requests * 1e6
                                results.setdefault((label, pipeline, test.upper()), []).append(rps)
                                results.setdefault((label, pipeline, test.upper(), "cpu"), []).append(cpu)
                                log(f"run {run + 1} P{pipeline} {label} {test}: {rps:,.0f}/s, {cpu:.1f} us CPU/op")
            finally:
                for _, s in kv:
                    s.__exit__(None, None, None)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\ntypes: redis-benchmark -t zadd,zpopmin -c 50 -r 100000 -d 100 -n {args.requests}, "
          f"kvdb --sync {args.sync}, medians of {args.runs}")
    for pipeline in (1, 16):
        for test in ("ZADD", "ZPOPMIN"):
            r = statistics.median(results[("redis", pipeline, test)])
            rc = statistics.median(results[("redis", pipeline, test, "cpu")])
            line = f"P{pipeline:<2} {test:8} redis {r:9,.0f}/s {rc:5.1f} us CPU/op"
            for label, _ in servers:
                k = statistics.median(results[(label, pipeline, test)])
                kc = statistics.median(results[(label, pipeline, test, "cpu")])
                line += f" | {label} {k:8,.0f}/s ({k / r:.2f}x) {kc:5.1f} us CPU/op"
            print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["scale", "types"], default="scale")
    ap.add_argument("--dir", default="/tmp/zbench/data")
    ap.add_argument("--big", type=int, default=10_000_000)
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", "-n", type=int, default=100_000)
    ap.add_argument("--syncs", default="normal", help="scale: kvdb --sync modes (comma-separated)")
    ap.add_argument("--sync", default="normal", help="types: kvdb --sync")
    ap.add_argument("--server-path", default=None)
    ap.add_argument("--compare", default=None, help="also run the server of this package copy (labelled before)")
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args()
    if args.build_only:
        with start_kvdb(args.dir, "normal", args.server_path, "build") as srv:
            ensure_sets(srv.port, args.big, args.small)
        return
    if args.part == "scale":
        part_scale(args)
    else:
        part_types(args)


if __name__ == "__main__":
    main()
