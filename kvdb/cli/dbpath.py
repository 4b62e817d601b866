"""Finding databases on disk, and which engine each one is. kvdb.open()
creates a database where there is none, so the read-only and maintenance
commands check first.

The engine is read from the directory's files, as kvdb.open(engine=None) does:

    data.kvdb            the B+Tree engine ("btree")
    CURRENT              the LSM engine ("lsm"; it names the MANIFEST-* in use)
    both                 refused: a mix of two databases (corrupt)
    *.sst or MANIFEST-*  without CURRENT: a damaged LSM database (corrupt; never
                         reopened as a new B+Tree next to its tables)
    none of these        no database (an empty directory, or one of other files)
"""
import fcntl
import fnmatch
import os
import struct

import kvdb

from .errors import CLIError

from kvdb._core.database import ENGINE_TYPES, LOCK_FILE, detect_engine
from kvdb._core.btree.engine import DATA_FILE
from kvdb._core.lsm.engine import CURRENT as LSM_CURRENT
from kvdb._core.file import LOCK_BYTE_OPEN

# struct flock as Linux lays it out: l_type, l_whence, l_start, l_len, l_pid (and padding)
FLOCK = "hhqqi4x"

OWN_FILES = {name: (LOCK_FILE,) + engine_type.files  # engine -> patterns of the files its directory holds
             for name, engine_type in ENGINE_TYPES.items()}


def dir_size(path):
    """(bytes allocated on disk, apparent bytes) of every file under path; (None, None) if it is gone.
    (The benchmark, outside the package, keeps its own copy in bench/dbbench/diskio.py.)"""
    if not path or not os.path.isdir(path):
        return None, None
    used = apparent = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            apparent += st.st_size
            used += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return used, apparent


def data_file(path):
    return os.path.join(path, DATA_FILE)


def is_db(path):
    """True if path is a directory holding a database of either engine."""
    try:
        return os.path.isdir(path) and detect_engine(path) is not None
    except kvdb.CorruptionError:
        return True          # a damaged database is still one: nothing may be written over it


def found_engine(path):
    """The engine of the database at path, or None where there is none (missing path, empty
    directory, a directory of other files). CLIError for a path that is not a directory and for
    a directory whose files are a broken database (so nothing creates a second one there)."""
    if not os.path.exists(path):
        return None
    if not os.path.isdir(path):
        raise CLIError(f"no database at {path} (not a directory)")
    try:
        return detect_engine(path)
    except kvdb.CorruptionError as e:
        raise CLIError(f"corrupt database: {e}") from None


def require_db(path):
    """The engine ("btree" or "lsm") of the database at path; CLIError("no database at PATH ...")
    if there is none."""
    engine = found_engine(path)
    if engine is not None:
        return engine
    if not os.path.exists(path):
        raise CLIError(f"no database at {path} (it does not exist)")
    if not os.listdir(path):
        raise CLIError(f"no database at {path} (an empty directory)")
    raise CLIError(f"no database at {path} (neither {DATA_FILE} nor {LSM_CURRENT} in it)")


def open_existing(path, **options):
    """kvdb.open() an existing database with the engine its files show; CLIError if there is none."""
    return kvdb.open(path, engine=require_db(path), **options)


def open_or_create(path, engine=None, **options):
    """(db, created): open the database at path, or create one of `engine` (default btree) there.
    An existing database of another engine than the one asked for is an error."""
    found = found_engine(path)
    if found is not None and engine is not None and found != engine:
        raise CLIError(f"{path} holds a database of engine {found}, not {engine} (leave out --engine to use it)",
                       status=2)
    return kvdb.open(path, engine=found or engine or "btree", **options), found is None


def require_free(path, what="destination"):
    """Raise CLIError unless path is missing or an empty directory."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path):
        raise CLIError(f"{what} {path} exists and is not a directory")
    if is_db(path):
        raise CLIError(f"{what} {path} already holds a database; refusing to overwrite it")
    if os.listdir(path):
        raise CLIError(f"{what} {path} is not empty; refusing to write into it")


def foreign_files(path, engine):
    """Names in the directory at path that are not files of a database of `engine`."""
    return [n for n in sorted(os.listdir(path)) if not any(fnmatch.fnmatch(n, pat) for pat in OWN_FILES[engine])]


def sibling(path, tag):
    """A fresh path next to `path` (same file system, so renames are atomic)."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}")


def open_elsewhere(path):
    """True if a process (this one included) has the database at path open, by any role.
    Every open holds the LOCK file's open byte (kvdb/_core/file.pyx, DbLock); F_OFD_GETLK asks
    the kernel whether any open file description holds it, without taking a lock, so the
    question never gets in an opener's way."""
    lock = os.path.join(path, LOCK_FILE)
    try:
        fd = os.open(lock, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return False
    try:
        probe = struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, LOCK_BYTE_OPEN, 1, 0)
        found = struct.unpack(FLOCK, fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe))
    finally:
        os.close(fd)
    return found[0] != fcntl.F_UNLCK


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
