"""kvdb salvage PATH DEST [--engine btree|lsm]: copy every record of the database at PATH
that can still be read and verified into a new database at DEST, skipping damaged pages
(B+Tree) or blocks (LSM), and report on stderr what was lost: each skipped page, block or
table, what is wrong with it, and the range of keys it held where that can be known.

PATH is only read, never written (no lock, no log replay into it), so salvage works on a
database that will not open and keeps the damage as it was for a later look. DEST must not
exist; it is built in DEST.tmp-PID and renamed when whole, with each key's expiry, in the
engine of PATH unless --engine says otherwise. `kvdb dump --salvage` writes the same records
to a dump file instead.

B+Tree: data.kvdb is read page by page; the tree is walked from the newest valid meta page;
each damaged page is reported with the key range its parent gives it; keys in those ranges
found only on pages the tree no longer reaches (older copies) are used, and counted, as the
last resort; the log's commits past the meta are applied on top. LSM: the tables the manifest
lists are read block by block, the logs replayed, and the newest version of each key by seq
kept. Exit status 0 when DEST was written (the report says whether anything was lost).
"""
import argparse
import os
import shutil
import sys

import kvdb

from .errors import CLIError
from .progress import Progress
from .salvage import report_lines, salvage

BATCH = 10_000              # records per transaction into DEST
BATCH_BYTES = 64 << 20      # or this many key and value bytes, whichever comes first


def add_parser(sub):
    p = sub.add_parser("salvage", help="copy every readable record of a damaged database into a new one",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.add_argument("dest")
    p.add_argument("--engine", choices=("btree", "lsm"), default=None,
                   help="engine of the new database (default: that of PATH)")
    p.set_defaults(func=run)


def run(args):
    src, dest = os.path.abspath(args.path), os.path.abspath(args.dest)
    if os.path.lexists(dest):
        raise CLIError(f"{args.dest} already exists: salvage writes a new database only", status=2)
    if dest == src or dest.startswith(src.rstrip(os.sep) + os.sep):
        raise CLIError(f"{args.dest} is inside {args.path}: salvage never writes into the damaged directory", status=2)
    res = salvage(args.path)
    tmp = f"{dest}.tmp-{os.getpid()}"
    try:
        _write(res, tmp, args.engine or res.engine)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for line in report_lines(res, args.path, args.dest):
        print(line, file=sys.stderr)
    return 0


def _write(res, tmp, engine):
    n = 0
    with kvdb.open(tmp, engine=engine, sync="off") as db, \
            Progress("salvage: write", total=len(res.records), unit="keys") as bar:
        batch, size = [], 0
        for rec in res.sorted_records():
            batch.append(rec)
            size += len(rec[0]) + len(rec[1])
            if len(batch) >= BATCH or size >= BATCH_BYTES:
                n += _commit(db, batch)
                batch, size = [], 0
                bar.set(n)
        _commit(db, batch)
        db.checkpoint()


def _commit(db, batch):
    if batch:
        with db.transaction() as tx:
            for key, value, expires in batch:
                tx.put(key, value, _expires_ms=expires or None)
    return len(batch)
