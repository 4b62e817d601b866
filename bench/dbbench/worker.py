"""One engine, one run, in its own process: build the dataset, run the
workloads in order on fresh databases under workdir, and print one line
"DBBENCH_RESULT <json>" on stdout. Before each workload it prints
"DBBENCH_STEP <workload>" (the parent's progress bar); with quiet off, a line
per finished workload goes to stderr.

Around each workload it reads /proc/self/io, so every result carries "io":
the process's OS-level read/write byte deltas (see diskio.py). Before each
workload (untimed) it calls sync(), so pages an earlier workload dirtied are
clean again and count when this one rewrites them. The result also carries
max_rss_bytes, the worker's peak memory, and rss_anon_base_bytes, its anonymous memory once the
key lists are built; each workload's result carries rss_anon_bytes, that memory when it ends
(anonymous: the heap, not the file pages a map of the database touched)."""
import gc
import json
import os
import sys
import time
import traceback

from .adapters import NotSupported, load_adapter
from .data import Dataset
from .diskio import delta, proc_io, rss_anon
from .workloads import WORKLOADS, Context

RESULT_TAG = "DBBENCH_RESULT "
STEP_TAG = "DBBENCH_STEP "


def run_worker(engine, workloads, workdir, num, reads, writes, sync_num, threads, cache_bytes, seed, label="",
               quiet=False, series=0):
    def log(msg):
        if not quiet:
            print(f"  [{engine}{label}] {msg}", file=sys.stderr, flush=True)

    try:
        adapter_cls = load_adapter(engine)
    except ImportError as e:
        return {"engine": engine, "skipped": f"{type(e).__name__}: {e}"}
    out = {"engine": engine, "version": _version(adapter_cls), "results": {}}

    data = Dataset(num, seed)
    gc.collect()
    gc.freeze()  # the big key lists stay out of the collector's way during timing
    ctx = Context(adapter_cls, workdir, data, reads, writes, sync_num, threads, cache_bytes, series=series)
    out["rss_anon_base_bytes"] = rss_anon()
    try:
        for name in workloads:
            step(name)
            t0 = time.perf_counter()
            settle()
            io0 = proc_io()
            try:
                r = WORKLOADS[name](ctx)
                log(f"{name:<17} {r['ops_per_sec']:>12,.0f} ops/s  ({r['ops']:,} ops, {r['seconds']:.3f} s)")
            except NotSupported as e:
                r = {"na": str(e)}
            except Exception as e:
                r = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
                log(f"{name:<17} ERROR {r['error']}")
                _recover(ctx)
            if "na" not in r:
                r["io"] = delta(io0, proc_io())
                r["rss_anon_bytes"] = max(rss_anon() or 0, ctx.take_anon_at_close()) or None
            r["wall_seconds"] = round(time.perf_counter() - t0, 3)
            out["results"][name] = r
    finally:
        ctx.finish()
    out["max_rss_bytes"] = max_rss()
    return out


def settle():
    """Write back every dirty page (see the module docstring)."""
    if hasattr(os, "sync"):
        os.sync()


def max_rss():
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    except (ImportError, OSError):
        return None


def _recover(ctx):
    """After a failed workload, drop the open base so the next one reopens it."""
    try:
        ctx.close_base()
    except Exception:
        ctx.base = None


def _version(adapter_cls):
    try:
        return adapter_cls.version()
    except Exception as e:
        return f"? ({type(e).__name__}: {e})"


def step(name):
    sys.stdout.write(STEP_TAG + name + "\n")
    sys.stdout.flush()


def emit(result):
    sys.stdout.write(RESULT_TAG + json.dumps(result) + "\n")
    sys.stdout.flush()


def parse_output(stdout):
    """The result dict a worker printed, or None."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    return None
