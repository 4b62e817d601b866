"""kvdb check PATH: a full consistency check, reporting everything it finds.

1. open the database (runs recovery; a damaged header or meta pages fail here);
2. read every page of data.kvdb straight from the file: checksum, page number
   and type (finds damage in free pages too);
3. db.verify(): every page the tree reaches, re-read from disk, every tree
   invariant (key order within and across pages, depths, overflow chains) and
   the accounting of every page (tree, free or pending);
4. scan every key in order: strictly increasing, and as many as the meta says.

Prints what it found; exit status 1 if anything is wrong, 0 if not.
"""
import argparse

import kvdb

from . import pagescan
from .dbpath import data_file, open_existing
from .progress import Progress


def add_parser(sub):
    p = sub.add_parser("check", help="verify every page, checksum and the key order", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.set_defaults(func=run)


def run(args):
    problems = []
    db = None
    try:
        db = open_existing(args.path)
    except kvdb.CorruptionError as e:
        problems.append(f"open failed: {e}")
    try:
        with Progress("check: pages", unit="pages") as bar:
            scan = pagescan.scan(data_file(args.path), lambda done, total: bar.set(done, total))
        _report_pages(args.path, scan)
        tree_ok = db is not None and _verify(db, problems)
        for pgno, offset, what in scan.bad:
            note = (" (a page the tree does not reach: free space, the data is intact; `kvdb compact` "
                    "rewrites the file without it)") if tree_ok else ""
            problems.append(f"page {pgno} (byte offset {offset:,}): {what}{note}")
        if scan.header_problem:
            problems.append(f"{data_file(args.path)}: {scan.header_problem}")
        if db is not None:
            _order(db, problems)
    finally:
        if db is not None:
            db.close()
    for p in problems:
        print(f"problem: {p}")
    if problems:
        print(f"{args.path}: {len(problems)} problem(s) found")
        return 1
    print(f"{args.path}: ok")
    return 0


def _report_pages(path, scan):
    if scan.header_problem:
        return
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(scan.types.items()))
    print(f"{data_file(path)}: {scan.pages:,} pages of {scan.page_size:,} bytes "
          f"({scan.pages * scan.page_size / 2**20:,.1f} MiB)")
    print(f"  pages: 1 header, {kinds}" + (f", {scan.zero:,} never written" if scan.zero else ""))
    if pagescan.crc32c_of is None:
        print("  checksums: not checked here (this build has no kvdb._core.coding.crc32c_of); verify checks them")
    else:
        print(f"  checksums: {scan.pages - 1:,} pages read, {len(scan.bad):,} bad")
    if scan.tail_bytes:
        print(f"  note: {scan.tail_bytes} bytes after the last whole page (ignored)")


def _verify(db, problems):
    """db.verify(); True if it passed."""
    try:
        db.verify()
    except kvdb.CorruptionError as e:
        problems.append(f"verify: {e}")
        return False
    print("  tree: ok (every reachable page re-read and checked, key order, depths, page accounting)")
    return True


def _order(db, problems):
    expected = len(db)
    count = 0
    prev = None
    try:
        with Progress("check: keys", total=expected, unit="keys") as bar:
            for key, _value in db.scan():
                if prev is not None and key <= prev:
                    problems.append(f"scan: key {key!r} follows {prev!r} (out of order)")
                    return
                prev = key
                count += 1
                if not count & 1023:
                    bar.set(count)
    except kvdb.CorruptionError as e:
        if not any(str(e) in p for p in problems):  # not the damage verify already named
            problems.append(f"scan: {e}")
        print(f"  keys: the scan stopped after {count:,} of {expected:,} keys")
        return
    if count != expected:
        problems.append(f"scan: found {count:,} keys, the database says {expected:,}")
    else:
        print(f"  keys: {count:,}, in strictly increasing order")
