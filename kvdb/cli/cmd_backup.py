"""kvdb backup PATH DEST: a consistent copy of the database at PATH into DEST
(missing or empty), with db.backup(). PATH is opened read-only, so it may be
in use meanwhile: by other processes reading and writing it (a B+Tree), by the
one process writing it (an LSM database), or by `kvdb serve`. The copy holds
one committed version, at least as new as the last commit any process had
completed when the backup started: a B+Tree copies the pages of that version;
an LSM database writes the keys of that version (with their expiries) into a
new LSM database at DEST, compacted into few tables. Then the copy is opened
and verified, and, when no commit landed in PATH while the backup ran, its key
count compared with the source's (--no-verify skips all that).

A `kvdb serve` server can also write the copy itself: see BACKUP in
docs/server.md.
"""
import argparse
import contextlib
import os
import shutil
import sys
import threading

from .dbpath import DATA_FILE, dir_size, open_existing, require_free
from .progress import Progress
from .verifycopy import verify_db


def add_parser(sub):
    p = sub.add_parser("backup", help="consistent online copy of a database into a new directory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.add_argument("dest")
    p.add_argument("--no-verify", action="store_true", help="do not open and verify the copy afterwards")
    p.set_defaults(func=run)


@contextlib.contextmanager
def watch_growth(bar, measure, every=0.1):
    """While the body runs, set the bar to measure() (bytes written so far; None: nothing yet)."""
    stop = threading.Event()

    def poll():
        while not stop.wait(every):
            size = measure()
            if size is not None:
                bar.set(size)

    t = threading.Thread(target=poll, daemon=True) if bar.show else None
    if t:
        t.start()
    try:
        yield
    finally:
        stop.set()
        if t:
            t.join()


def run(args):
    require_free(args.dest, "destination")
    created = not os.path.exists(args.dest)
    ok = False
    try:
        with open_existing(args.path, readonly=True) as db:
            entries, unchanged = _backup(db, args.path, args.dest)
        if not args.no_verify:
            entries = verify_db(args.dest, entries if unchanged else None)
        ok = True
    finally:
        if not ok:
            _remove_partial(args.dest, created)
    checked = "" if args.no_verify else ", verified"
    about = "" if unchanged or not args.no_verify else "about "
    print(f"backed up {about}{entries:,} keys from {args.path} to {args.dest}{checked}", file=sys.stderr)
    return 0


def _backup(db, path, dest):
    """db.backup(dest) with a progress bar; (keys in the source, whether no commit landed in
    it from the count to the end of the copy, so the copy must hold exactly that many)."""
    with db.snapshot() as snap:      # the count of one version; the copy is of this one or newer
        entries, seq = len(snap), snap.seq
    total, measure = _progress_measure(db, path, dest)
    with Progress("backup", total=total, unit="bytes") as bar, watch_growth(bar, measure):
        db.backup(dest)
    return entries, db.catch_up() == seq


def _progress_measure(db, path, dest):
    """(expected bytes, a function giving the bytes written so far) for the progress bar."""
    if db.engine == "lsm":  # a logical copy into fresh tables: about the size of the source's tables
        return dir_size(path)[1], lambda: dir_size(dest)[1]
    stats = db.stats()
    target = os.path.join(dest, DATA_FILE)

    def written():
        sizes = [os.path.getsize(p) for p in (target + ".tmp", target) if os.path.exists(p)]
        return max(sizes) if sizes else None

    return stats["pages"] * stats["page_size"], written


def _remove_partial(dest, created):
    """Undo a failed backup: DEST was missing or empty before, so empty it again."""
    if not os.path.isdir(dest):
        return
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for name in os.listdir(dest):
        p = os.path.join(dest, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(p)
