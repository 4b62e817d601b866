"""kvdb bench server: redis-benchmark against `kvdb serve` and against redis-server,
started side by side on this machine, alternating, and a table of requests/s,
p50 and p99 latency and the kvdb/redis ratios (medians over --runs).

    kvdb bench server [--runs 3] [--requests 200000] [--clients 50] [--keyspace 100000]
                      [--size 100] [--pipelines 1,16] [--tests set,get,incr,hset,mset]
                      [--sync normal] [--engine btree] [--topology direct|twemproxy|replica]
                      [--nodes 3] [--out bench/results]

With --topology twemproxy it also starts --nodes more `kvdb serve` nodes behind twemproxy
(nutcracker, configured by deploy/nutcracker.yml with its ports moved) and reports requests/s and
p99 through the proxy against the one node direct, measured in the same runs.

With --topology replica it also starts a second kvdb node with a replica attached
(`--replicaof`) and reports requests/s and p99 on that primary against the one node without a
replica, in the same runs, and the replica's lag: while each run loads the primary, a probe
writes a timestamped key to it every 20 ms and times until the replica has it (p50, p99, max).

redis-server runs with --appendonly yes and the appendfsync closest to kvdb's --sync:
always for full (an fsync before each reply), everysec for normal, no for off. Both bind 127.0.0.1 on free ports
and keep their data in a temporary directory that is removed afterwards.
"""
import argparse
import contextlib
import csv
import datetime
import importlib.util
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_TESTS = "set,get,incr,hset,mset"
TARGET_RATIO = 0.7       # issue target: requests/s >= 0.7x redis-server for SET and GET
TARGET_P99 = 2.0         # issue target: p99 <= 2x redis-server's
REDIS_FSYNC = {"full": "always", "normal": "everysec", "off": "no"}   # kvdb --sync -> redis appendfsync


def build_parser(prog):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per server and pipeline depth (median reported)")
    ap.add_argument("--requests", "-n", type=int, default=200_000, help="requests per test (redis-benchmark -n)")
    ap.add_argument("--clients", "-c", type=int, default=50, help="parallel connections (-c)")
    ap.add_argument("--keyspace", "-r", type=int, default=100_000, help="random keys (-r)")
    ap.add_argument("--size", "-d", type=int, default=100, help="value bytes (-d)")
    ap.add_argument("--pipelines", default="1,16", help="pipeline depths (-P), comma-separated")
    ap.add_argument("--tests", default=DEFAULT_TESTS, help="redis-benchmark tests (-t)")
    ap.add_argument("--sync", default="normal", choices=["full", "normal", "off"], help="kvdb serve --sync")
    ap.add_argument("--engine", default="btree", help="kvdb serve --engine")
    ap.add_argument("--quick", action="store_true", help="one run of 20,000 requests (a smoke test)")
    ap.add_argument("--out", default=None, help="directory for the result table (default: print only)")
    ap.add_argument("--dir", default=None, help="where the servers keep their data (default: a temp dir)")
    ap.add_argument("--topology", default="direct", choices=["direct", "twemproxy", "replica"],
                    help="twemproxy: also benchmark --nodes nodes behind nutcracker (deploy/nutcracker.yml); "
                         "replica: also a primary with one replica attached, and the replica's lag")
    ap.add_argument("--nodes", type=int, default=3, help="nodes behind twemproxy (default 3)")
    return ap


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROXY_CONFIG = os.path.join(REPO, "deploy", "nutcracker.yml")


def nutcracker_path():
    return shutil.which("nutcracker") or next(
        (p for p in ("/usr/sbin/nutcracker", "/usr/bin/nutcracker") if os.access(p, os.X_OK)), None)


def proxy_config(listen_port, node_ports):
    """deploy/nutcracker.yml with its listen port and its server list replaced."""
    lines, out, in_servers = open(PROXY_CONFIG).read().splitlines(), [], False
    for line in lines:
        if line.strip().startswith("listen:"):
            line = f"  listen: 127.0.0.1:{listen_port}"
        if line.strip().startswith("servers:"):
            in_servers = True
            out.append("  servers:")
            out += [f"    - 127.0.0.1:{p}:1 kvdb-{i}" for i, p in enumerate(node_ports)]
            continue
        if in_servers and line.strip().startswith("- "):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start listening")


class Server:
    def __init__(self, name, argv, port, cwd):
        self.name = name
        self.argv = argv
        self.port = port
        self.cwd = cwd
        self.proc = None

    def __enter__(self):
        self.log = open(os.path.join(self.cwd, f"{self.name}.log"), "wb")
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def resp_call(sock, *words):
    """One command on a raw socket; the reply's first line (enough for SET, GET of short values
    and the status replies the lag probe reads)."""
    out = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in
                                                 (x if isinstance(x, bytes) else str(x).encode() for x in words))
    sock.sendall(out)
    data = b""
    while not data.endswith(b"\r\n") or (data.startswith(b"$") and data[1:2] != b"-" and data.count(b"\r\n") < 2):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    return data


def wait_replica(port, timeout=60):
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port)) as s:
        while time.monotonic() < deadline:
            sock_reply = resp_call(s, "INFO", "replication")
            while sock_reply.count(b"\r\n") < 2 or b"master_repl_offset" not in sock_reply:
                sock_reply += s.recv(65536)
            if b"master_link_status:up" in sock_reply:
                return
            time.sleep(0.1)
    raise RuntimeError("the replica did not connect to its primary")


class LagProbe:
    """While a benchmark loads the primary: every 20 ms a key with a fresh value on the primary,
    then the time until the replica returns that value (the replica's lag), in ms."""

    def __init__(self, primary_port, replica_port):
        import threading
        self.ports = (primary_port, replica_port)
        self.lags = []               # ms per probe
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def run(self):
        n = 0
        with socket.create_connection(("127.0.0.1", self.ports[0])) as p, \
                socket.create_connection(("127.0.0.1", self.ports[1])) as r:
            while not self.stop.is_set():
                n += 1
                value = b"%d" % n
                resp_call(p, "SET", "lag-probe", value)
                start = time.perf_counter()
                want = b"$%d\r\n%s\r\n" % (len(value), value)
                while resp_call(r, "GET", "lag-probe") != want:
                    if self.stop.is_set():
                        return
                    time.sleep(0.0002)
                self.lags.append((time.perf_counter() - start) * 1000)
                self.stop.wait(0.02)


def run_benchmark(port, args, pipeline, requests):
    """{test: (rps, p50 ms, p99 ms)} from one redis-benchmark run."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", args.tests, "-n", str(requests),
           "-c", str(args.clients), "-r", str(args.keyspace), "-d", str(args.size), "-P", str(pipeline), "--csv"]
    p = subprocess.run(cmd, capture_output=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {p.stderr.decode(errors='replace').strip()}")
    out = {}
    rows = list(csv.reader(io.StringIO(p.stdout.decode())))
    header = rows[0]
    for row in rows[1:]:
        rec = dict(zip(header, row))
        test = rec["test"].split()[0]
        out[test] = (float(rec["rps"]), float(rec["p50_latency_ms"]), float(rec["p99_latency_ms"]))
    return out


def median_result(results):
    tests = results[0].keys()
    return {t: tuple(statistics.median(r[t][i] for r in results) for i in range(3)) for t in tests}


def main(argv=None, prog="kvdb bench server"):
    args = build_parser(prog).parse_args(argv)
    for tool in ("redis-benchmark", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{prog}: {tool} is not installed (Debian: apt-get install redis-tools redis-server)",
                  file=sys.stderr)
            return 2
    if args.topology == "twemproxy" and (nutcracker_path() is None or args.nodes < 1):
        print(f"{prog}: --topology twemproxy needs nutcracker (Debian: apt-get install nutcracker) "
              f"and --nodes of at least 1", file=sys.stderr)
        return 2
    runs, requests, pipelines, results, lags = measure(args)
    table = render(args, runs, requests, pipelines, results, lags)
    print(table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
        path = os.path.join(args.out, f"server-{stamp}{'-quick' if args.quick else ''}.txt")
        with open(path, "w") as f:
            f.write(table + "\n")
        print(f"saved {path}", file=sys.stderr)
    return 0


def measure(args):
    """(runs, requests, pipelines, results, lags) of the runs `args` asks for: results maps
    (server, pipeline) to one {test: (rps, p50, p99)} per run; lags, pipeline to the replica's
    lag samples (--topology replica). The tools were checked by the caller."""
    runs, requests = (1, 20_000) if args.quick else (args.runs, args.requests)
    pipelines = [int(p) for p in args.pipelines.split(",")]
    base = tempfile.mkdtemp(prefix="kvdb-bench-server-", dir=args.dir)
    results = {}  # (server, pipeline) -> [run results]
    lags = {}     # pipeline -> replica lag samples, ms (--topology replica)
    try:
        kport, rport = free_port(), free_port()
        kdir, rdir = os.path.join(base, "kvdb"), os.path.join(base, "redis")
        os.makedirs(kdir)
        os.makedirs(rdir)
        kvdb_argv = [sys.executable, "-m", "kvdb", "serve", "--data", os.path.join(kdir, "data"), "--port", str(kport),
                     "--bind", "127.0.0.1", "--sync", args.sync, "--engine", args.engine, "--loglevel", "warning"]
        redis_argv = ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--appendonly", "yes",
                      "--appendfsync", REDIS_FSYNC[args.sync], "--save", "", "--dir", rdir, "--protected-mode", "yes"]
        targets = [("kvdb", kport), ("redis", rport)]
        with contextlib.ExitStack() as stack:
            stack.enter_context(Server("kvdb", kvdb_argv, kport, kdir))
            stack.enter_context(Server("redis", redis_argv, rport, rdir))
            if args.topology == "twemproxy":
                node_ports = []
                for i in range(args.nodes):
                    port, ndir = free_port(), os.path.join(base, f"node{i}")
                    os.makedirs(ndir)
                    argv = kvdb_argv[:]
                    argv[argv.index("--data") + 1] = os.path.join(ndir, "data")
                    argv[argv.index("--port") + 1] = str(port)
                    stack.enter_context(Server(f"node{i}", argv, port, ndir))
                    node_ports.append(port)
                pport, pdir = free_port(), os.path.join(base, "proxy")
                os.makedirs(pdir)
                with open(os.path.join(pdir, "nutcracker.yml"), "w") as f:
                    f.write(proxy_config(pport, node_ports))
                stack.enter_context(Server("proxy", [nutcracker_path(), "-c", "nutcracker.yml", "-o", "nutcracker.log",
                                                     "-s", str(free_port()), "-a", "127.0.0.1", "-p", "nutcracker.pid"],
                                           pport, pdir))
                targets.append(("proxy", pport))
            replica_port = None
            if args.topology == "replica":
                ports = []
                for role in ("primary", "replica"):
                    port, ndir = free_port(), os.path.join(base, role)
                    os.makedirs(ndir)
                    argv = kvdb_argv[:]
                    argv[argv.index("--data") + 1] = os.path.join(ndir, "data")
                    argv[argv.index("--port") + 1] = str(port)
                    if role == "replica":
                        argv += ["--replicaof", f"127.0.0.1 {ports[0]}"]
                    stack.enter_context(Server(role, argv, port, ndir))
                    ports.append(port)
                wait_replica(ports[1])
                replica_port = ports[1]
                targets.append(("primary", ports[0]))
            for run in range(runs):
                for pipeline in pipelines:
                    for name, port in targets:
                        print(f"run {run + 1}/{runs}, -P {pipeline}, {name} ...", file=sys.stderr, flush=True)
                        if name == "primary":
                            with LagProbe(port, replica_port) as probe:
                                result = run_benchmark(port, args, pipeline, requests)
                            lags.setdefault(pipeline, []).extend(probe.lags)
                        else:
                            result = run_benchmark(port, args, pipeline, requests)
                        results.setdefault((name, pipeline), []).append(result)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return runs, requests, pipelines, results, lags


def against_one_node(results, pipelines, name, column, title):
    """Table lines: target `name`'s requests/s and p99 as ratios of the plain kvdb node's."""
    header = f"{'test':<6} {'-P':>3} | {column:>10} {'p50':>6} {'p99':>6} | {'rps ratio':>9} {'p99 ratio':>9}"
    lines = ["", title, "", header, "-" * len(header)]
    for pipeline in pipelines:
        k = median_result(results[("kvdb", pipeline)])
        x = median_result(results[(name, pipeline)])
        for test in k:
            xr, xp50, xp99 = x.get(test, (0, 0, 0))
            lines.append(f"{test:<6} {pipeline:>3} | {xr:>10,.0f} {xp50:>6.3f} {xp99:>6.3f} | "
                         f"{xr / k[test][0] if k[test][0] else float('nan'):>8.2f}x "
                         f"{xp99 / k[test][2] if k[test][2] else float('nan'):>8.2f}x")
    return lines


def render(args, runs, requests, pipelines, results, lags=None):
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio (no uvloop installed: the `server` extra)"
    lines = [f"kvdb serve (--sync {args.sync}, --engine {args.engine}, event loop {loop}) vs redis-server "
             f"(appendonly yes, appendfsync {REDIS_FSYNC[args.sync]})",
             f"redis-benchmark -t {args.tests} -n {requests} -c {args.clients} -r {args.keyspace} -d {args.size}; "
             f"median of {runs} run(s); {os.cpu_count()} CPUs shared by servers and client",
             ""]
    header = f"{'test':<6} {'-P':>3} | {'kvdb rps':>10} {'p50':>6} {'p99':>6} | {'redis rps':>10} {'p50':>6} {'p99':>6} " \
             f"| {'rps ratio':>9} {'p99 ratio':>9}"
    lines += [header, "-" * len(header)]
    for pipeline in pipelines:
        k = median_result(results[("kvdb", pipeline)])
        r = median_result(results[("redis", pipeline)])
        for test in k:
            kr, kp50, kp99 = k[test]
            rr, rp50, rp99 = r.get(test, (0, 0, 0))
            ratio = kr / rr if rr else float("nan")
            p99r = kp99 / rp99 if rp99 else float("nan")
            flag = ""
            if test in ("SET", "GET"):
                flag = "" if ratio >= TARGET_RATIO and p99r <= TARGET_P99 else "  (target missed)"
            lines.append(f"{test:<6} {pipeline:>3} | {kr:>10,.0f} {kp50:>6.3f} {kp99:>6.3f} | {rr:>10,.0f} {rp50:>6.3f} "
                         f"{rp99:>6.3f} | {ratio:>8.2f}x {p99r:>8.2f}x{flag}")
    lines += ["", f"targets: SET and GET >= {TARGET_RATIO}x redis-server's requests/s at every pipeline depth, "
                  f"p99 <= {TARGET_P99}x redis-server's. Latencies in ms."]
    if any(name == "proxy" for name, _ in results):
        lines += against_one_node(results, pipelines, "proxy", "proxy rps",
                                  f"through twemproxy over {args.nodes} kvdb nodes (deploy/nutcracker.yml) against "
                                  "one kvdb node direct, same runs:")
    if any(name == "primary" for name, _ in results):
        lines += against_one_node(results, pipelines, "primary", "w/ replica",
                                  "a kvdb primary with one replica attached (--replicaof) against one kvdb node "
                                  "without a replica, same runs:")
        lines += ["", "replica lag under that load (a key written to the primary every 20 ms, until the replica "
                      "returns it), ms:"]
        for pipeline in pipelines:
            xs = sorted((lags or {}).get(pipeline, []))
            if xs:
                q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))]  # noqa: E731
                lines.append(f"  -P {pipeline:>2}: {len(xs)} probes, p50 {q(0.5):.2f}, p99 {q(0.99):.2f}, "
                             f"max {xs[-1]:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
