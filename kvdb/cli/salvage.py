"""Salvage of a damaged database, shared by `kvdb salvage` and `kvdb dump --salvage`: which
engine's raw reader to run (salvage_btree, salvage_lsm), and the report of what was lost.

Both readers only read PATH (plain open(..., "rb") and pread; no lock, no log reset), so a
salvage can run on a directory another process holds, and never changes the evidence.
"""
import fnmatch
import os
import time

from kvdb._core.btree.engine import DATA_FILE
from kvdb._core.lsm.engine import CURRENT

from . import byteargs
from .errors import CLIError
from .salvage_btree import salvage_btree
from .salvage_lsm import salvage_lsm

LSM_MARKS = (CURRENT, "*.sst", "MANIFEST-*")   # any of these: an LSM directory, even without CURRENT


def engine_of(path):
    """"btree" or "lsm" from the directory's files; CLIError if it holds neither."""
    if not os.path.isdir(path):
        raise CLIError(f"no database at {path}")
    names = os.listdir(path)
    if DATA_FILE in names:
        return "btree"
    if any(fnmatch.fnmatch(n, pattern) for n in names for pattern in LSM_MARKS):
        return "lsm"
    raise CLIError(f"no database at {path} (neither {DATA_FILE} nor LSM tables)")


def salvage(path):
    """A salvage_log.Salvage of the database at path: every record that can be read and verified."""
    now_ms = time.time_ns() // 1_000_000
    if engine_of(path) == "btree":
        return salvage_btree(path, now_ms)
    return salvage_lsm(path, now_ms)


def show(key, width=40):
    text = byteargs.show(key)
    return repr(text[:width] + "..." if len(text) > width else text)


def report_lines(res, path, target, written=None):
    """The report: a summary line, then one line per lost region and per note. `written` is
    how many of the recovered keys went to target (a dump with --prefix), default all."""
    lost = len(res.lost)
    count = len(res.records) if written is None else written
    lines = [f"salvaged {count:,} keys from {path} ({res.engine}) into {target}"
             f"{f', {res.from_log:,} commits of them replayed from the log' if res.from_log else ''}; "
             + (f"{lost} damaged region{'s' if lost != 1 else ''} skipped:" if lost else "nothing was lost")]
    for item in res.lost:
        lines.append(f"  lost {item.where}: {item.what}; {item.key_range(show)}")
    if res.expired:
        lines.append(f"  {res.expired:,} recovered keys had already expired and were left out")
    for note in res.notes:
        lines.append(f"  note: {note}")
    return lines
