"""One worker subprocess: its command line, and reading what it prints.

The worker imports this package as `dbbench` with bench/ on its sys.path
(BOOT below), behind --kvdb-path: the kvdb adapter, the only module that
imports kvdb, then finds the build --kvdb-path names, and the parent never
has to import kvdb at all (it may not be built).
"""
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from .paths import BENCH_DIR

BOOT = """
import sys
bench_dir, kvdb_path = sys.argv[1], sys.argv[2]
sys.path[:0] = [kvdb_path, bench_dir]
from dbbench.spawn import worker_main
sys.exit(worker_main(sys.argv[3:]))
"""


def worker_main(argv):
    """Inside the subprocess: parse the forwarded options, run, print the result line."""
    from .options import parse_args
    from .worker import emit, run_worker

    args = parse_args(argv)
    emit(run_worker(args.worker, args.workloads, args.workdir, args.num, args.reads, args.writes, args.sync_num,
                    args.threads, args.cache_mb << 20, args.seed, label=args.label, quiet=not args.verbose,
                    series=args.series))
    return 0


def worker_cmd(args, engine, workdir, label):
    cmd = [sys.executable, "-c", BOOT, BENCH_DIR, args.kvdb_path,
           "--worker", engine, "--workdir", workdir, "--label", label,
           "--num", str(args.num), "--reads", str(args.reads), "--writes", str(args.writes),
           "--sync-num", str(args.sync_num), "--threads", str(args.threads), "--cache-mb", str(args.cache_mb),
           "--seed", str(args.seed), "--workloads", ",".join(args.workloads), "--series", str(args.series),
           "--kvdb-path", args.kvdb_path, "--engines", engine]
    return cmd + (["--verbose"] if args.verbose else [])


def run_one(args, engine, run, on_step=None):
    """Run one worker subprocess; its result dict (with "error" if it died).
    on_step(workload) is called as the worker starts each workload."""
    from .worker import RESULT_TAG, STEP_TAG, parse_output

    workdir = tempfile.mkdtemp(prefix=f"dbbench-{engine}-", dir=args.dir)
    label = f" run {run + 1}/{args.runs}"
    t0 = time.perf_counter()
    lines = []
    killed = []
    try:
        p = subprocess.Popen(worker_cmd(args, engine, workdir, label), stdout=subprocess.PIPE, text=True,
                             cwd=workdir)
        timer = None
        if args.timeout:
            timer = threading.Timer(args.timeout, lambda: (killed.append(1), p.kill()))
            timer.start()
        try:
            for line in p.stdout:
                if line.startswith(STEP_TAG):
                    if on_step:
                        on_step(line[len(STEP_TAG):].strip())
                elif line.startswith(RESULT_TAG):
                    lines.append(line)
                else:
                    sys.stderr.write(line)  # whatever an engine printed: pass it on
            rc = p.wait()
        finally:
            if timer:
                timer.cancel()
            if p.poll() is None:
                p.kill()
                p.wait()
        out = parse_output("".join(lines))
        if killed:
            out = {"engine": engine, "error": f"worker killed after {args.timeout} s", "results": {}}
        elif out is None:
            out = {"engine": engine, "error": f"worker exited {rc} without a result", "results": {}}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out["wall_seconds"] = round(time.perf_counter() - t0, 3)
    return out
