"""kvdb restore BACKUP PATH: make a new database at PATH from the backup (or
any closed database directory) at BACKUP. PATH must not exist or be an empty
directory: restore never overwrites a database.

The backup's files (LOCK aside) are copied into a temporary directory next to
PATH and fsynced; the copy is opened (which recovers its log, if any) and
verified; then it is renamed to PATH. BACKUP itself is only read. A BACKUP
that a process has open (by any role, read-only opens included) is refused:
its files may be changing; copy it with `kvdb backup` instead, which works on
an open database.
"""
import argparse
import os
import shutil
import sys

from .dbpath import dir_size, fsync_dir, open_elsewhere, require_db, require_free, sibling
from .errors import CLIError
from .filecopy import copy_files, db_files
from .progress import Progress
from .verifycopy import verify_db


def add_parser(sub):
    p = sub.add_parser("restore", help="create a database from a backup (never overwrites one)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("backup")
    p.add_argument("path")
    p.set_defaults(func=run)


def run(args):
    require_db(args.backup)
    require_free(args.path, "destination")
    if open_elsewhere(args.backup):
        raise CLIError(f"{args.backup} is open in another process; restore copies a closed database "
                       f"(make a backup of it with `kvdb backup` first: that works on an open one)")
    tmp = sibling(args.path, "restore")
    names = db_files(args.backup)
    try:
        with Progress("restore", total=dir_size(args.backup)[1], unit="bytes") as bar:
            copy_files(args.backup, tmp, names, bar.set)
        n = verify_db(tmp)
        if os.path.isdir(args.path):
            os.rmdir(args.path)  # empty (checked above); rename needs the name free
        os.rename(tmp, args.path)
        fsync_dir(os.path.dirname(os.path.abspath(args.path)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"restored {n:,} keys from {args.backup} into {args.path}", file=sys.stderr)
    return 0
