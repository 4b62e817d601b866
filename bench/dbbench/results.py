"""The JSON results document and where it goes.

File name: RESULTS_DIR/db_bench-YYYYmmdd-HHMMSS-MODE-nNUM.json (local time;
MODE is quick, full or scale), written to a .tmp file and renamed, so a
half-written result never looks like a whole one.
"""
import json
import os
import sys
import time

from .options import counts_of


def stem(args, when=None):
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return f"db_bench-{stamp}-{args.mode}-n{args.num}"


def document(args, machine, fio, versions, skipped, summary, io_summary, series, runs):
    return {
        "machine": machine,
        "config": {**counts_of(args), "mode": args.mode, "runs": args.runs, "engines": args.engines,
                   "workloads": args.workloads, "dir": args.dir, "kvdb_path": args.kvdb_path},
        "engine_versions": versions,
        "skipped": skipped,
        "fio": fio,
        "summary": summary,
        "io_summary": io_summary,
        "series": series,
        "runs": runs,
    }


def save(doc, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    return path


def save_table(out_dir, name, prog, argv, table):
    """A suite's printed table as out_dir/name: the command, the Python version and the load
    average first; written to a .tmp file and renamed. Returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    with open(path + ".tmp", "w") as f:
        f.write(f"command: {prog} {' '.join(sys.argv[1:] if argv is None else argv)}\n")
        f.write(f"python {sys.version.split()[0]}, load average at end {os.getloadavg()}\n\n")
        f.write(table + "\n")
    os.replace(path + ".tmp", path)
    print(f"saved {path}", file=sys.stderr)
    return path
