"""Checks shared by backup, restore and compact: a database directory opens,
verifies, and holds what it should."""
import kvdb

from .dbpath import open_existing
from .errors import CLIError
from .progress import Progress


def verify_db(path, expect_entries=None):
    """Open path (either engine; never creating one), db.verify(), compare the key count;
    returns the count."""
    try:
        with open_existing(path) as db:
            db.verify()
            n = len(db)
    except kvdb.Error as e:
        raise CLIError(f"the copy at {path} does not verify: {e}") from None
    if expect_entries is not None and n != expect_entries:
        raise CLIError(f"the copy at {path} holds {n:,} keys, the source {expect_entries:,}")
    return n


def same_contents(db_a, db_b, label="compare"):
    """Raise CLIError at the first key or value where two open databases differ."""
    total = len(db_a)
    n = 0
    sentinel = object()
    with Progress(label, total=total, unit="keys") as bar:
        it_b = iter(db_b.scan())
        for ka, va in db_a.scan():
            kb, vb = next(it_b, (sentinel, None))
            if kb is sentinel:
                raise CLIError(f"{label}: the copy ends after {n:,} keys, the source has more")
            if ka != kb or va != vb:
                raise CLIError(f"{label}: key {n:,} differs ({ka!r} in the source, {kb!r} in the copy)")
            n += 1
            if not n & 1023:
                bar.set(n)
        if next(it_b, None) is not None:
            raise CLIError(f"{label}: the copy has more keys than the source's {n:,}")
    return n
