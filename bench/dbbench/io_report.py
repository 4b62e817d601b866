"""The disk I/O table: per workload and engine, the medians over runs of

  read MiB / written MiB   OS-level bytes from /proc/self/io of the worker
                           (read_bytes / write_bytes, see diskio.py)
  write amp                bytes written to disk / bytes of user data written
                           (key + value bytes put; key bytes deleted)
  space amp                size of the database directory on disk (allocated
                           blocks) / bytes of live keys and values
  fsyncs/commit            the engine's own fsync count per commit (kvdb:
                           db.stats()["fsyncs"], the log fsyncs commits wait
                           for); n/a for engines that expose no count
"""
import statistics

from .report import _table

MIB = 1 << 20


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _metrics(cell):
    io = cell.get("io") or {}
    user, live = cell.get("user_bytes"), cell.get("live_bytes")
    written = io.get("write_bytes")
    return {
        "read_bytes": io.get("read_bytes"),
        "write_bytes": written,
        "write_amp": written / user if written is not None and user else None,
        "space_amp": cell["disk_bytes"] / live if cell.get("disk_bytes") is not None and live else None,
        "fsyncs_per_commit": cell.get("fsyncs_per_commit"),
    }


def summarize_io(runs, workloads):
    """{engine: {workload: {metric: median or None}}} over the runs without errors."""
    out = {}
    for engine, results in runs.items():
        out[engine] = {}
        for w in workloads:
            cells = [r["results"][w] for r in results
                     if w in r.get("results", {}) and "ops_per_sec" in r["results"][w]]
            if not cells:
                continue
            per_run = [_metrics(c) for c in cells]
            out[engine][w] = {m: _median([p[m] for p in per_run]) for m in per_run[0]}
    return out


def _mib(x):
    return "n/a" if x is None else f"{x / MIB:,.1f}"


def _ratio(x):
    return "n/a" if x is None else f"{x:,.2f}x"


def _per_commit(x):
    return "n/a" if x is None else f"{x:.3f}"


def io_table(io_summary, engines, workloads):
    rows = []
    for w in workloads:
        first = True
        for e in engines:
            m = io_summary.get(e, {}).get(w)
            if m is None:
                continue
            rows.append([w if first else "", e, _mib(m["read_bytes"]), _mib(m["write_bytes"]),
                         _ratio(m["write_amp"]), _ratio(m["space_amp"]), _per_commit(m["fsyncs_per_commit"])])
            first = False
    if not rows:
        return ""
    head = ("disk I/O per workload (medians; bytes at the OS level, from /proc/self/io of each worker)\n"
            "write amp = bytes written to disk / bytes of user data written; "
            "space amp = database directory size on disk / bytes of live keys and values")
    return head + "\n" + _table(["workload", "engine", "read MiB", "written MiB", "write amp", "space amp",
                                 "fsyncs/commit"], rows, first_cols=2)
