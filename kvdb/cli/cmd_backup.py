"""kvdb backup PATH DEST: a consistent copy of the database at PATH into DEST
(missing or empty), with db.backup(): it copies the pages of one committed
version while the database stays open. Then the copy is opened and verified,
and its key count compared with the source's (--no-verify skips that).

db.backup() is online for the process that has the database open; from the
command line, PATH must not be open in another process (that is a `locked`
error: call db.backup() in that process instead).
"""
import argparse
import contextlib
import os
import shutil
import sys
import threading

from .dbpath import DATA_FILE, open_existing, require_free
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
def watch_growth(bar, paths, every=0.1):
    """While the body runs, set the bar to the largest size among paths."""
    stop = threading.Event()

    def poll():
        while not stop.wait(every):
            sizes = [os.path.getsize(p) for p in paths if os.path.exists(p)]
            if sizes:
                bar.set(max(sizes))

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
        with open_existing(args.path) as db:
            stats = db.stats()
            entries = len(db)
            target = os.path.join(args.dest, DATA_FILE)
            with Progress("backup", total=stats["pages"] * stats["page_size"], unit="bytes") as bar, \
                    watch_growth(bar, [target + ".tmp", target]):
                db.backup(args.dest)
        if not args.no_verify:
            verify_db(args.dest, entries)
        ok = True
    finally:
        if not ok:
            _remove_partial(args.dest, created)
    checked = "" if args.no_verify else ", verified"
    print(f"backed up {entries:,} keys from {args.path} to {args.dest}{checked}", file=sys.stderr)
    return 0


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
