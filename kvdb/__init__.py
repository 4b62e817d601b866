"""kvdb, an embedded key-value and document database: the facade (open, Options, the errors).

Two storage engines (a copy-on-write B+Tree, an LSM tree) behind one contract, a write-ahead
log and ACID transactions (kvdb._core); document collections (kvdb.documents), whose errors this
package re-exports; a Redis-protocol server (kvdb.server) and the `kvdb` command (kvdb.cli) on
top. Layers and packages: docs/ARCHITECTURE.md.

    import kvdb
    with kvdb.open("data/") as db:
        db.put(b"k", b"v")
        with db.transaction() as tx:
            tx.put(b"a", tx.get(b"k") + b"!")
"""
import inspect

from kvdb.errors import (ClosedError, ConflictError, CorruptionError, Error, ForkError, IOFailureError,
                         LockedError, ReadOnlyError)
from kvdb._core.database import (KEY_CODECS, MAX_KEY_SIZE, MAX_VALUE_SIZE, VALUE_CODECS, Cursor, Database,
                                 Iterator, Namespace, Snapshot, Transaction)
from kvdb._core.options import FIELD_NAMES, OPTION_FIELDS, Options, check_path

from kvdb.version import VERSION as __version__

# The handles are mappings: registered with the ABCs (they are extension types, which cannot
# inherit from them), and each provides every method the ABC would mix in.
import collections.abc as _abc
for _cls in (Database, Transaction, Namespace):
    _abc.MutableMapping.register(_cls)
_abc.Mapping.register(Snapshot)

# The document layer sits above this package: importing it attaches db.collection() and its
# siblings to the core, and its errors are kvdb's too (kvdb.DuplicateKeyError, ...).
from kvdb import documents
from kvdb.documents.errors import (DocumentError, DuplicateKeyError, IndexNotFoundError, InvalidDocument,
                                   InvalidDocumentType, InvalidName, InvalidQuery, InvalidUpdate)

__all__ = [
    "open", "Options", "Database", "Transaction", "Snapshot", "Iterator", "Cursor", "Namespace", "MAX_KEY_SIZE",
    "MAX_VALUE_SIZE", "KEY_CODECS", "VALUE_CODECS",
    "Error", "CorruptionError", "ConflictError", "LockedError", "ClosedError", "ReadOnlyError",
    "IOFailureError", "ForkError", "__version__",
    "DocumentError", "DuplicateKeyError", "IndexNotFoundError", "InvalidDocument", "InvalidDocumentType",
    "InvalidName", "InvalidQuery", "InvalidUpdate", "Cache", "FanoutCache", "Deque", "Index", "aio",
]

# Loaded on first use, so that `import kvdb` does not load them: the disk cache (docs/cache.md)
# and the asyncio API (docs/aio.md), both built on this facade.
_LAZY = {"Cache": "kvdb.cache", "FanoutCache": "kvdb.cache.fanout", "Deque": "kvdb.cache.persistent",
         "Index": "kvdb.cache.persistent"}


def __getattr__(name):
    if name == "aio":
        import kvdb.aio
        return kvdb.aio
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kvdb' has no attribute {name!r}")


def open(path, *, options=None, readonly=False, keys="bytes", values="bytes", _fs=None, _clock=None,
         _exclusive=False, _sole_writer=False, **keywords):
    """Open (creating if missing) the database in directory `path`.

    `path` is a str or an os.PathLike (pathlib.Path); anything else, bytes included (decode them
    with os.fsdecode()), is a TypeError. Every argument is checked before the disk is touched,
    and an open that fails creates nothing: no directory, no file.

    Several processes may open one database: with the B+Tree engine any number read and write
    it; with the LSM engine one process writes and others open it with readonly=True (README,
    "Several processes").

    readonly=True opens an existing database for reading only: its data and log files are not
    written (commits still in its log are replayed in memory, not checkpointed), writes raise
    kvdb.ReadOnlyError, and it follows commits that other processes make. It never creates a
    database: FileNotFoundError if `path` holds none.

    keys= and values= choose the handle's codecs (README, "Codecs"): keys "bytes" (the default),
    "str" or "int" (numeric order is byte order); values "bytes" (the default), "str", "msgpack",
    "json" or "pickle" (only for databases you trust: unpickling runs code the data names). They
    apply to every read and write of the handle, its transactions and snapshots; the files do not
    record them.

    The options are kvdb.Options's fields, given as keywords (engine="lsm", cache_size=256 << 20),
    as one Options value (options=kvdb.Options(...)), or both (the keywords win). help(kvdb.Options)
    lists each with its default and meaning; a bad value raises ValueError or TypeError naming it.

    _fs, _clock: tests only: the file system (kvdb._core.file.FS) and a callable returning
    wall-clock seconds, used for key expiry (ttl). _exclusive: for tools that rewrite the files
    (kvdb compact): LockedError while any other open of the database exists, and none can start.
    _sole_writer: for kvdb serve, whose counters and expiry index need every write to pass
    through it: other read-write opens get LockedError (read-only ones may join).
    """
    path = check_path(path)
    if options is None:
        options = Options(**_known(keywords))
    elif not isinstance(options, Options):
        raise TypeError(f"options must be a kvdb.Options, not {type(options).__name__}")
    elif keywords:
        options = options.replace(**_known(keywords))
    return Database(path, **options.as_keywords(), readonly=readonly, _fs=_fs, _clock=_clock, _exclusive=_exclusive,
                    _sole_writer=_sole_writer, keys=keys, values=values)


def _known(keywords):
    """`keywords`, or TypeError naming the first that is no option (as a misspelt keyword would)."""
    for name in keywords:
        if name not in FIELD_NAMES:
            raise TypeError(f"open() got an unexpected keyword argument {name!r}; the options are: "
                            f"{', '.join(FIELD_NAMES)}")
    return keywords


# help(kvdb.open) and editors show every option with its default, read from Options.
open.__signature__ = inspect.Signature(
    [inspect.Parameter("path", inspect.Parameter.POSITIONAL_OR_KEYWORD),
     inspect.Parameter("options", inspect.Parameter.KEYWORD_ONLY, default=None),
     inspect.Parameter("readonly", inspect.Parameter.KEYWORD_ONLY, default=False),
     inspect.Parameter("keys", inspect.Parameter.KEYWORD_ONLY, default="bytes"),
     inspect.Parameter("values", inspect.Parameter.KEYWORD_ONLY, default="bytes")]
    + [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default) for f in OPTION_FIELDS])
