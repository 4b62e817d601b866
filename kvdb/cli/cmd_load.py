"""kvdb load PATH [-i FILE] [--format jsonl|msgpack] [--batch N]: put every
record of a dump (see `kvdb dump`) into the database at PATH (either engine),
creating it if it does not exist (a B+Tree, or an LSM database with --engine
lsm). Existing keys are overwritten; other keys are kept.

A record's expiry (an absolute wall-clock time, see docs/format/dump.md) is
restored as it was; a record whose expiry has already passed is not loaded,
and the summary says how many were dropped. Dumps written before dumps kept
expiries load as keys that never expire, as before.

Records are committed one transaction per batch of --batch records (default
10,000) or --batch-bytes bytes (default 64 MiB), whichever comes first, so a
failure part-way leaves the earlier batches loaded (the message says how
many). The format comes from --format, else FILE's extension, else the first
byte of the input.
"""
import argparse
import contextlib
import os
import sys
import time

import kvdb

from . import dumpformat
from .dboptions import add_database_options, database_options
from .dbpath import open_or_create
from .errors import CLIError
from .progress import Progress


def add_parser(sub):
    p = sub.add_parser("load", help="load a dump (jsonl or msgpack) into a database", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.add_argument("-i", "--input", default=None, metavar="FILE", help="input file (default stdin)")
    p.add_argument("--format", choices=dumpformat.FORMATS, default=None)
    p.add_argument("--batch", type=int, default=10_000, help="records per transaction (default 10,000)")
    p.add_argument("--batch-bytes", type=int, default=64 << 20, help="bytes per transaction (default 64 MiB)")
    add_database_options(p, creates=True)
    p.set_defaults(func=run)


@contextlib.contextmanager
def _input(path):
    if path in (None, "-"):
        if sys.stdin is None or sys.stdin.isatty():
            raise CLIError("no input: give -i FILE, or pipe a dump into stdin", status=2)
        yield sys.stdin.buffer, None
        return
    if not os.path.isfile(path):
        raise CLIError(f"no such file: {path}")
    with open(path, "rb") as f:
        yield f, os.path.getsize(path)


def run(args):
    if args.batch < 1 or args.batch_bytes < 1:
        raise CLIError("--batch and --batch-bytes must be at least 1", status=2)
    loaded = batches = expired = 0
    with _input(args.input) as (stream, size):
        fmt = args.format or dumpformat.format_for_path(args.input) or dumpformat.sniff(stream)
        records = dumpformat.reader(fmt, stream)
        db, created = open_or_create(args.path, args.engine, **database_options(args))
        with db, Progress("load", total=size, unit="bytes") as bar:
            try:
                for batch, consumed in _batches(records, args.batch, args.batch_bytes):
                    now_ms, expired_before = time.time_ns() // 1_000_000, expired
                    with db.transaction() as tx:
                        put = tx.put
                        for key, value, expires in batch:
                            if not expires:
                                put(key, value)
                            elif expires > now_ms:
                                put(key, value, _expires_ms=expires)
                            else:
                                expired += 1
                    loaded += len(batch) - (expired - expired_before)
                    batches += 1
                    bar.set(consumed)
            except (CLIError, kvdb.Error, ValueError) as e:
                raise CLIError(f"{e} ({loaded:,} records in {batches:,} transactions were loaded before this)") \
                    from None
    note = f" (created it, engine {args.engine or 'btree'})" if created else ""
    dropped = f"; dropped {expired:,} records whose expiry had already passed" if expired else ""
    print(f"loaded {loaded:,} records in {batches:,} transaction{'s' if batches != 1 else ''} into {args.path}{note}"
          f"{dropped}", file=sys.stderr)
    return 0


def _batches(records, max_records, max_bytes):
    """Yield (list of (key, value, expires_ms or 0), input bytes consumed after it)."""
    batch, size, consumed = [], 0, 0
    for key, value, expires, consumed in records:
        batch.append((key, value, expires))
        size += len(key) + len(value)
        if len(batch) >= max_records or size >= max_bytes:
            yield batch, consumed
            batch, size = [], 0
    if batch:
        yield batch, consumed
