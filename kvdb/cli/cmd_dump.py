"""kvdb dump PATH [-o FILE] [--prefix P] [--format jsonl|msgpack]: write every
key and value (or those under a prefix), in key order, from one consistent
snapshot, with the absolute expiry of each key that has one. Binary-safe; the
formats are described in docs/format/dump.md:

  jsonl    one line per key: {"key": BASE64, "value": BASE64} (standard base64
           of the raw bytes), plus "expires_ms": MS (wall-clock milliseconds
           since the Unix epoch) for a key that expires
  msgpack  a stream of [key, value] arrays of two msgpack bin values, or
           [key, value, expires_ms] for a key that expires

The format defaults to the one FILE's extension implies (.jsonl, .msgpack),
else jsonl. Without -o (or with -o -) the dump goes to stdout; a file is
written to FILE.tmp-PID first and renamed when complete. If reading the
database fails part-way (a damaged page), the records before the damage are
left in FILE.partial, never in FILE, and the error says so.

With --salvage the database is not opened: its files are read raw, as by `kvdb salvage`
(damaged pages or blocks skipped, the log replayed; see `kvdb salvage --help`), every record
that can be read and verified is dumped, and what was lost is reported on stderr.
"""
import argparse
import os
import sys

import kvdb
from kvdb._core.database import prefix_successor

from . import byteargs, dumpformat
from .dboptions import add_database_options, database_options
from .dbpath import open_existing
from .errors import CLIError, describe
from .outfile import output, partial_path
from .progress import Progress
from .salvage import report_lines, salvage


def add_parser(sub):
    p = sub.add_parser("dump", help="write every key and value to a file (jsonl or msgpack)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="output file (default stdout)")
    p.add_argument("--prefix", default=None, help="only keys starting with this (text, or 0x hex)")
    p.add_argument("--format", choices=dumpformat.FORMATS, default=None)
    p.add_argument("--salvage", action="store_true",
                   help="read the files raw, skip damaged pages or blocks, and report what was lost")
    add_database_options(p)
    p.set_defaults(func=run)


class _Count:
    """Records and bytes written so far (what a failed dump's message reports)."""

    def __init__(self):
        self.records = 0   # records written
        self.bytes = 0     # bytes written


def run(args):
    fmt = args.format or dumpformat.format_for_path(args.output) or "jsonl"
    prefix = byteargs.parse(args.prefix, "prefix") if args.prefix else None
    done = _Count()
    if args.salvage:
        return _salvage(args, fmt, prefix, done)
    try:
        with open_existing(args.path, readonly=True, **database_options(args)) as db:
            total = None if prefix or db.engine == "lsm" else _count(db)  # an LSM len() is a whole scan
            with output(args.output, keep_partial=_read_failure) as out, \
                    Progress("dump", total=total, unit="keys") as bar:
                _write(dumpformat.writer(fmt, out), _records(db, prefix), done, bar)
    except kvdb.Error as e:
        if not done.records and args.output in (None, "-"):
            raise
        raise CLIError(f"{describe(e)}; {_left_behind(args.output, done)}") from e
    if args.output not in (None, "-"):
        print(f"dumped {done.records:,} keys ({done.bytes:,} bytes, {fmt}) to {args.output}", file=sys.stderr)
    return 0


def _salvage(args, fmt, prefix, done):
    res = salvage(args.path)
    records = (r for r in res.sorted_records() if prefix is None or r[0].startswith(prefix))
    with output(args.output) as out, Progress("dump", total=len(res.records), unit="keys") as bar:
        _write(dumpformat.writer(fmt, out), records, done, bar)
    for line in report_lines(res, args.path, "stdout" if args.output in (None, "-") else args.output, done.records):
        print(line, file=sys.stderr)
    return 0


def _count(db):
    """len(db) for the progress bar, or None: with expiring keys it is a scan, and a damaged page
    must stop the dump itself (which keeps the records before it), not this count."""
    try:
        return len(db)
    except kvdb.Error:
        return None


def _records(db, prefix):
    """(key, value, expires_ms or 0) in key order, from one snapshot."""
    if prefix is None:
        return db._scan_expiry()
    return db._scan_expiry(prefix, prefix_successor(prefix))


def _write(w, records, done, bar):
    for key, value, expires in records:
        done.bytes += w.write(key, value, expires)
        done.records += 1
        if not done.records & 1023:
            bar.set(done.records)


def _read_failure(exc):
    """Keep a partial dump when reading the database failed (not when writing the file did)."""
    return isinstance(exc, kvdb.Error)


def _left_behind(path, done):
    if path in (None, "-"):
        return f"stdout got the {done.records:,} keys before it, an incomplete dump"
    if not os.path.exists(partial_path(path)):
        return f"nothing was written to {path}"
    return (f"the {done.records:,} keys dumped before it are in {partial_path(path)}, an incomplete dump "
            f"(not {path}); `kvdb salvage` or `kvdb dump --salvage` skip damaged pages")
