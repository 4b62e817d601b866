"""kvdb: an embedded key-value database with a copy-on-write B+Tree, a write-ahead
log and ACID transactions.

    import kvdb
    with kvdb.open("data/") as db:
        db.put(b"k", b"v")
        with db.transaction() as tx:
            tx.put(b"a", tx.get(b"k") + b"!")
"""

from kvdb.errors import (ClosedError, ConflictError, CorruptionError, Error, ForkError, IOFailureError,
                         LockedError, ReadOnlyError)
from kvdb.errors import (DocumentError, DuplicateKeyError, IndexNotFoundError, InvalidDocument,  # documents
                         InvalidDocumentType, InvalidName, InvalidQuery, InvalidUpdate)
from kvdb._core.database import (MAX_KEY_SIZE, MAX_VALUE_SIZE, Database, Iterator, Snapshot,
                                 Transaction)

from kvdb.version import VERSION as __version__

__all__ = [
    "open", "Database", "Transaction", "Snapshot", "Iterator", "MAX_KEY_SIZE", "MAX_VALUE_SIZE",
    "Error", "CorruptionError", "ConflictError", "LockedError", "ClosedError", "ReadOnlyError",
    "IOFailureError", "ForkError", "__version__",
    "DocumentError", "DuplicateKeyError", "IndexNotFoundError", "InvalidDocument", "InvalidDocumentType",
    "InvalidName", "InvalidQuery", "InvalidUpdate",
]


def open(path, engine=None, sync="full", cache_size=64 << 20, page_size=4096,
         checkpoint_size=64 << 20, memtable_size=16 << 20, sstable_size=4 << 20, level1_size=64 << 20,
         max_open_tables=None,
         _fs=None, _clock=None):
    """Open (creating if missing) the database in directory `path`.

    engine: "btree" (the copy-on-write B+Tree) or "lsm" (memtable + SSTables, leveled compaction),
            fixed when the database is created; None opens whatever engine the directory holds
            (a new database gets "btree").
    sync: "full" - a commit returns after its log record is fsynced (survives power loss);
          "normal" - written to the OS at commit, fsynced in the background at least once a
          second (survives a process crash; power loss may lose the last second);
          "off" - written to the OS at commit, fsynced only at checkpoints (survives a
          process crash; power loss may lose everything since the last checkpoint).
    cache_size: bytes of clean pages kept in memory.
    page_size: bytes per page (power of two, 512..32768), fixed when the database is created.
    checkpoint_size: log bytes after which a background checkpoint runs (btree).
    memtable_size: lsm: memtable bytes after which it is flushed to a level-0 table (up to three
                   memtables are in memory at once: one taking writes, two awaiting their flush).
    sstable_size: lsm: bytes per table written by compactions.
    level1_size: lsm: bytes level 1 may hold before it is compacted into level 2 (x10 per level).
    max_open_tables: lsm: table files kept open at most (None: 1000, or half the process's
                     open-file limit if that is lower); evicted tables are reopened on demand.
    _clock: tests only: a callable returning wall-clock seconds, used for key expiry (ttl).
    """
    return Database(str(path), engine=engine, sync=sync, cache_size=cache_size, page_size=page_size,
                    checkpoint_size=checkpoint_size, _fs=_fs, _clock=_clock, memtable_size=memtable_size,
                    sstable_size=sstable_size, level1_size=level1_size,
                    max_open_tables=max_open_tables)
