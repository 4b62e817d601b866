"""kvdb dump PATH [-o FILE] [--prefix P] [--format jsonl|msgpack]: write every
key and value (or those under a prefix), in key order, from one consistent
snapshot. Binary-safe; the formats are described in kvdb/cli/dumpformat.py:

  jsonl    one line per key: {"key": BASE64, "value": BASE64} (standard base64
           of the raw bytes)
  msgpack  a stream of [key, value] arrays of two msgpack bin values

The format defaults to the one FILE's extension implies (.jsonl, .msgpack),
else jsonl. Without -o (or with -o -) the dump goes to stdout; a file is
written to FILE.tmp-PID first and renamed when complete.
"""
import argparse
import sys

from . import byteargs, dumpformat
from .dboptions import add_database_options, database_options
from .dbpath import open_existing
from .outfile import output
from .progress import Progress


def add_parser(sub):
    p = sub.add_parser("dump", help="write every key and value to a file (jsonl or msgpack)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="output file (default stdout)")
    p.add_argument("--prefix", default=None, help="only keys starting with this (text, or 0x hex)")
    p.add_argument("--format", choices=dumpformat.FORMATS, default=None)
    add_database_options(p)
    p.set_defaults(func=run)


def run(args):
    fmt = args.format or dumpformat.format_for_path(args.output) or "jsonl"
    prefix = byteargs.parse(args.prefix, "prefix") if args.prefix else None
    count = written = 0
    with open_existing(args.path, readonly=True, **database_options(args)) as db:
        total = None if prefix or db.engine == "lsm" else len(db)  # an LSM len() is a whole scan
        with output(args.output) as out, Progress("dump", total=total, unit="keys") as bar:
            w = dumpformat.writer(fmt, out)
            for key, value in db.scan(prefix=prefix):
                written += w.write(key, value)
                count += 1
                if not count & 1023:
                    bar.set(count)
    if args.output not in (None, "-"):
        print(f"dumped {count:,} keys ({written:,} bytes, {fmt}) to {args.output}", file=sys.stderr)
    return 0
