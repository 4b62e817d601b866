"""kvdb compact PATH: rewrite the database compactly.

It needs the database to itself: it opens PATH exclusively, so it fails at
once with a `locked` error, changing nothing, while any other process (or
`kvdb serve`) has the database open, read-only opens included; and no other
open can start until it is done.

LSM (a directory with CURRENT): db.compact() over the whole key range, in
place: every level-0 table is merged down and every level into the next, so
overwritten and deleted versions no snapshot needs are dropped; then
db.verify(). It prints the tables and bytes before and after. The engine's
own crash safety applies (each step is a manifest edit; a crash leaves the
database as of the last one).

B+Tree (a directory with data.kvdb): into the fewest pages.
db.backup() keeps every page at its page number (free pages become holes), so
it does not shrink a file; compact instead copies every key and value, in key
order, into a fresh database (same page size) in a temporary directory next to
PATH, with one transaction per 10,000 keys, so the new tree is built by
appending and its pages come out full. Then it checks the copy (db.verify()
and a key-by-key comparison with the source), and swaps the directories:

    PATH -> .NAME.compact-old-PID,  .NAME.compact-PID -> PATH,  then removes the old one.

The source stays open (and exclusively locked) until the swap, so no other
process can open it meanwhile. The two renames are not one atomic step: in
between (microseconds) PATH does not exist, and a crash there leaves the
database complete under .NAME.compact-PID (or the old one under
.NAME.compact-old-PID), to be renamed back by hand; compact says so if a
rename fails. PATH must hold only the database's own files (data.kvdb,
data.kvdb-shm, wal-*.log, LOCK): anything else in it is refused rather than
lost.
"""
import argparse
import os
import shutil
import stat
import sys

import kvdb

from .dbpath import dir_size, foreign_files, fsync_dir, require_db, sibling
from .errors import CLIError
from .progress import Progress
from .verifycopy import same_contents

BATCH = 10_000
BATCH_BYTES = 64 << 20


def add_parser(sub):
    p = sub.add_parser("compact", help="rewrite a database compactly (B+Tree: copy, verify, swap; "
                                       "LSM: full compaction)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.set_defaults(func=run)


def run(args):
    if require_db(args.path) == "lsm":
        return _compact_lsm(args.path)
    return _compact_btree(args.path)


def _compact_lsm(path):
    before = dir_size(path)
    with kvdb.open(path, engine="lsm", _exclusive=True) as db:
        tables_before = sum(db.stats()["lsm_files_per_level"])
        with Progress("compact", unit="") as bar:
            bar.set(0, status="merging every level down")
            db.compact()
            bar.set(0, status="verifying")
            db.verify()
        files = db.stats()["lsm_files_per_level"]
    after = dir_size(path)
    levels = ", ".join(f"L{level}: {n:,}" for level, n in enumerate(files) if n) or "none"
    print(f"compacted {path} (lsm): {tables_before:,} -> {sum(files):,} tables ({levels}), "
          f"{before[1] / 2**20:,.2f} MiB -> {after[1] / 2**20:,.2f} MiB of files "
          f"({before[0] / 2**20:,.2f} MiB -> {after[0] / 2**20:,.2f} MiB on disk), verified", file=sys.stderr)
    return 0


def _compact_btree(path):
    before = dir_size(path)[0]
    tmp, old = sibling(path, "compact"), sibling(path, "compact-old")
    with kvdb.open(path, engine="btree", _exclusive=True) as src:
        foreign = foreign_files(path, "btree")
        if foreign:
            raise CLIError(f"{path} holds files that are not the database's ({', '.join(foreign[:5])}); "
                           "move them away first")
        try:
            n = _copy(src, tmp)
            with kvdb.open(tmp) as copy:
                copy.verify()
                same_contents(src, copy, "compact: compare")
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
            _swap(path, tmp, old)
        finally:
            if os.path.isdir(path):  # else the copy may be all there is: keep it
                shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    after = dir_size(path)[0]
    print(f"compacted {path}: {n:,} keys, {before / 2**20:,.2f} MiB -> {after / 2**20:,.2f} MiB on disk",
          file=sys.stderr)
    return 0


def _copy(src, tmp):
    stats = src.stats()
    total = len(src)
    n = 0
    with kvdb.open(tmp, sync="off", page_size=stats["page_size"]) as dst, \
            Progress("compact: copy", total=total, unit="keys") as bar:
        batch, size = [], 0
        for key, value, expires in src._scan_expiry():   # keeps each key's expiry
            batch.append((key, value, expires))
            size += len(key) + len(value)
            if len(batch) >= BATCH or size >= BATCH_BYTES:
                n += _commit(dst, batch)
                batch, size = [], 0
                bar.set(n)
        n += _commit(dst, batch)
        dst.checkpoint()
    return n


def _commit(db, batch):
    if batch:
        with db.transaction() as tx:
            for key, value, expires in batch:
                tx.put(key, value, _expires_ms=expires or None)
    return len(batch)


def _swap(path, tmp, old):
    parent = os.path.dirname(os.path.abspath(path))
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except OSError as e:
        try:
            os.rename(old, path)
        except OSError:
            raise CLIError(f"compact: could not swap in the copy ({e}) nor put back the original: the original "
                           f"is at {old}, the compacted copy at {tmp}; rename one of them to {path}") from None
        raise CLIError(f"compact: could not swap in the copy ({e}); the original is back at {path}") from None
    fsync_dir(parent)
