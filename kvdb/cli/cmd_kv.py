"""kvdb get / put / delete / scan: quick inspection and edits.

They work on either engine (the directory's files say which); put creates a
B+Tree database where there is none, or an LSM one with --engine lsm.

Keys and values are given as text (UTF-8) or, starting with 0x, as hex.
They are shown binary-safe: printable ASCII as is, other bytes escaped like
Python's bytes repr (\\x00, \\n, \\\\) without the b'' quotes; --hex shows hex.
scan prints one `KEY<TAB>VALUE` line per entry (a tab inside a key or value
is shown as \\t, so the separator is unambiguous).
"""
import argparse
import itertools
import sys

import kvdb

from . import byteargs
from .dboptions import add_database_options, database_options
from .dbpath import open_existing, open_or_create
from .errors import CLIError


def add_parser(sub):
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("get", help="print the value of a key", description=__doc__, formatter_class=fmt)
    p.add_argument("path")
    p.add_argument("key")
    p.add_argument("--hex", action="store_true", help="show the value as hex")
    p.add_argument("--raw", action="store_true", help="write the value's bytes to stdout unchanged")
    add_database_options(p)
    p.set_defaults(func=get)

    p = sub.add_parser("put", help="set a key to a value (creates the database if missing)",
                       description=__doc__, formatter_class=fmt)
    p.add_argument("path")
    p.add_argument("key")
    p.add_argument("value")
    add_database_options(p, creates=True)
    p.set_defaults(func=put)

    p = sub.add_parser("delete", help="delete a key", description=__doc__, formatter_class=fmt)
    p.add_argument("path")
    p.add_argument("key")
    add_database_options(p)
    p.set_defaults(func=delete)

    p = sub.add_parser("scan", help="list keys and values in key order", description=__doc__, formatter_class=fmt)
    p.add_argument("path")
    p.add_argument("--prefix", default=None, help="only keys starting with this")
    p.add_argument("--start", default=None, help="first key (inclusive)")
    p.add_argument("--end", default=None, help="last key (exclusive)")
    p.add_argument("--reverse", action="store_true", help="descending key order")
    p.add_argument("--limit", type=int, default=None, help="at most this many entries")
    p.add_argument("--keys-only", action="store_true", help="print keys only")
    p.add_argument("--hex", action="store_true", help="show keys and values as hex")
    add_database_options(p)
    p.set_defaults(func=scan)


def _check_key(key):
    if not key:
        raise CLIError("the key is empty; keys are 1 to %d bytes" % kvdb.MAX_KEY_SIZE, status=2)
    return key


def get(args):
    key = _check_key(byteargs.parse(args.key))
    with open_existing(args.path, readonly=True, **database_options(args)) as db:
        value = db.get(key)
    if value is None:
        raise CLIError(f"key not found: {byteargs.show(key)}")
    if args.raw:
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
    else:
        print(byteargs.show(value, args.hex))
    return 0


def put(args):
    key = _check_key(byteargs.parse(args.key))
    value = byteargs.parse(args.value, "value")
    db, created = open_or_create(args.path, args.engine, **database_options(args))
    with db:
        db.put(key, value)
    if created:
        print(f"created a new database at {args.path} (engine {db.engine})", file=sys.stderr)
    return 0


def delete(args):
    key = _check_key(byteargs.parse(args.key))
    with open_existing(args.path, **database_options(args)) as db:
        existed = db.delete(key)
    if not existed:
        raise CLIError(f"key not found: {byteargs.show(key)}")
    return 0


def scan(args):
    opts = {name: byteargs.parse(getattr(args, name), name) if getattr(args, name) else None
            for name in ("prefix", "start", "end")}
    if args.limit is not None and args.limit < 0:
        raise CLIError("--limit must not be negative", status=2)
    show = byteargs.show
    out = sys.stdout
    with open_existing(args.path, readonly=True, **database_options(args)) as db:
        entries = itertools.islice(db.scan(reverse=args.reverse, **opts), args.limit)
        for key, value in entries:
            if args.keys_only:
                out.write(show(key, args.hex) + "\n")
            else:
                out.write(show(key, args.hex) + "\t" + show(value, args.hex) + "\n")
    out.flush()
    return 0
