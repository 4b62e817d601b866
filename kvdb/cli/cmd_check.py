"""kvdb check PATH: a full consistency check, reporting everything it finds.
The engine is the one the directory holds (data.kvdb: btree, CURRENT: lsm).

B+Tree:
1. open the database (runs recovery; a damaged header or meta pages fail here);
2. read every page of data.kvdb straight from the file: checksum, page number
   and type (finds damage in free pages too);
3. db.verify(): every page the tree reaches, re-read from disk, every tree
   invariant (key order within and across pages, depths, overflow chains) and
   the accounting of every page (tree, free or pending);
4. scan every key in order: strictly increasing, and as many as the meta says.

LSM:
1. open the database read-only (reads CURRENT and the manifest, opens every
   table it lists -- footer, index, filter and properties blocks checked --
   and replays the logs in memory; damage fails here);
2. with it open (a read-only open never flushes or compacts), read every
   table file straight from disk: the footer and the checksum of every block,
   going on past damage, so every damaged table and block is named;
3. db.verify(): every data block re-read, the key order inside each table and
   across each level, each table against its manifest entry;
4. scan every key in order: strictly increasing.
Damage is reported with the file and the byte offset of the damaged block.

The database may be open in other processes meanwhile, `kvdb serve`
included: check opens it read-only and reads one committed version (the
count and the key scan from one snapshot). A B+Tree page that fails its
checksum is read again a few times before it is reported (a page another
process was writing when it was read can come out torn in that read only).
While another process has an LSM database open, only the tables of the
version check opened are read raw (the writer may be writing others).

Prints what it found; exit status 1 if anything is wrong, 0 if not.
"""
import argparse
import os

import kvdb

from . import pagescan, sstscan
from .dbpath import data_file, open_elsewhere, require_db
from .errors import located
from .progress import Progress


def add_parser(sub):
    p = sub.add_parser("check", help="verify every checksum, the structure and the key order",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.set_defaults(func=run)


def run(args):
    engine = require_db(args.path)
    problems = []
    if engine == "lsm":
        _check_lsm(args.path, problems)
    else:
        _check_btree(args.path, problems)
    for p in problems:
        print(f"problem: {p}")
    if problems:
        print(f"{args.path}: {len(problems)} problem(s) found")
        return 1
    print(f"{args.path}: ok")
    return 0


def _check_btree(path, problems):
    db = None
    try:
        db = kvdb.open(path, engine="btree", readonly=True)
    except kvdb.CorruptionError as e:
        problems.append(f"open failed: {e}")
    else:
        _report_recovery(db)
    try:
        with Progress("check: pages", unit="pages") as bar:
            scan = pagescan.scan(data_file(path), lambda done, total: bar.set(done, total))
            pagescan.recheck(data_file(path), scan)
        _report_pages(path, scan)
        tree_ok = db is not None and _verify(db, problems)
        for pgno, offset, what in scan.bad:
            note = (" (a page the tree does not reach: free space, the data is intact; `kvdb compact` "
                    "rewrites the file without it)") if tree_ok else ""
            problems.append(f"page {pgno} (byte offset {offset:,}): {what}{note}")
        if scan.header_problem:
            problems.append(f"{data_file(path)}: {scan.header_problem}")
        if db is not None:
            _order(db, problems, counted=True)
    finally:
        if db is not None:
            db.close()


def _check_lsm(path, problems):
    live = open_elsewhere(path)     # another process has it open: its writer may be writing tables
    db = open_error = None
    try:
        db = kvdb.open(path, engine="lsm", readonly=True)
    except kvdb.CorruptionError as e:
        open_error = e
    try:
        _check_lsm_open(path, problems, db, open_error, live)
    finally:
        if db is not None:
            db.close()


def _check_lsm_open(path, problems, db, open_error, live):
    listed = None  # the table files of the version db opened (None: it does not open)
    if db is not None:
        _report_recovery(db)
        listed = {"%06d.sst" % number for _, number, _ in db.storage.tree.live_files()}
    with Progress("check: tables", unit="bytes") as bar:
        scans = sstscan.scan_dir(path, lambda done, total: bar.set(done, total),
                                 names=listed if live else None)
    if listed is not None:
        for t in [t for t in scans if t.name not in listed]:
            print(f"  note: {os.path.join(path, t.name)} is not in the manifest: a leftover of a flush or "
                  "compaction a crash cut short, not part of the database (the next writable open removes it)")
        scans = [t for t in scans if t.name in listed]
    damaged = set()  # (file path, offset) of every damaged block, so verify's report is not repeated
    for t in scans:
        for offset, what in t.bad:
            damaged.add((os.path.join(path, t.name), offset))
            problems.append(f"{os.path.join(path, t.name)}: {what} at offset {offset}")
    if open_error is not None:
        if (open_error.path, open_error.offset) not in damaged:
            problems.insert(0, f"open failed: {located(open_error)}")
        print(f"{path}: lsm, does not open: {located(open_error)}")
        print(f"  checksums: {len(scans):,} table files, {sum(t.blocks for t in scans):,} blocks read, "
              f"{sum(len(t.bad) for t in scans):,} bad; verify and the key scan need it to open")
        return
    stats = db.stats()
    files, sizes = stats["lsm_files_per_level"], stats["lsm_bytes_per_level"]
    used = [level for level, n in enumerate(files) if n]
    print(f"{path}: lsm, {sum(files):,} tables in {len(used)} of {_levels(len(files))} "
          f"({sum(sizes) / 2**20:,.1f} MiB)")
    for level in used:
        print(f"  level {level}: {files[level]:,} tables, {sizes[level]:,} bytes")
    if sstscan.crc32c_of is None:
        print("  checksums: not checked here (this build has no kvdb._core.coding.crc32c_of); verify checks them")
    else:
        print(f"  checksums: {len(scans):,} table files, {sum(t.blocks for t in scans):,} blocks read, "
              f"{sum(len(t.bad) for t in scans):,} bad")
    try:
        db.verify()
    except kvdb.CorruptionError as e:
        if (e.path, e.offset) not in damaged:
            problems.append(f"verify: {located(e)}")
    else:
        print(f"  tables: ok ({sum(files):,} tables in {_levels(len(used))}: every block's checksum, "
              "key order in each table and across each level, contents against the manifest)")
    _order(db, problems, counted=False)


def _report_recovery(db):
    """Say what recovery at open dropped (W2 in docs/format/wal.md): a torn last log record is
    what a crash leaves of a commit not yet durable, but it may also be damage to one that was."""
    note = db.stats().get("recovery")
    if note:
        print(f"warning: recovery dropped a torn tail of {note['log']} at offset {note['offset']:,}: commit "
              f"{note['first_lost_seq']:,} and any after it were incomplete or damaged (expected after a crash "
              "for commits not yet durable; the log no longer holds it)")


def _levels(n):
    return f"{n} level" + ("" if n == 1 else "s")


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


def _order(db, problems, counted):
    """Scan every key of one snapshot: strictly increasing, and (counted: the B+Tree keeps a
    count; an LSM len() is itself a scan) as many as that snapshot's count. One snapshot, so
    commits other processes make meanwhile change neither."""
    count = 0
    prev = None
    with db.snapshot() as snap:
        expected = len(snap) if counted else None
        try:
            with Progress("check: keys", total=expected, unit="keys") as bar:
                for key, _value in snap.scan():
                    if prev is not None and key <= prev:
                        problems.append(f"scan: key {key!r} follows {prev!r} (out of order)")
                        return
                    prev = key
                    count += 1
                    if not count & 1023:
                        bar.set(count)
        except kvdb.CorruptionError as e:
            if not any(str(e) in p for p in problems):  # not the damage verify already named
                problems.append(f"scan: {located(e)}")
            of = f" of {expected:,}" if expected is not None else ""
            print(f"  keys: the scan stopped after {count:,}{of} keys")
            return
    if expected is not None and count != expected:
        problems.append(f"scan: found {count:,} keys, the database says {expected:,}")
    else:
        print(f"  keys: {count:,}, in strictly increasing order")
