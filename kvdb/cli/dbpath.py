"""Finding databases on disk. kvdb.open() creates a database where there is
none, so the read-only and maintenance commands check first."""
import os

import kvdb

from .bench.diskio import dir_size  # noqa: F401  (one implementation, re-exported for the commands)
from .errors import CLIError

try:
    from kvdb._core.database import DATA_FILE, LOCK_FILE
except ImportError:  # an engine build without the constants
    DATA_FILE, LOCK_FILE = "data.kvdb", "LOCK"


def data_file(path):
    return os.path.join(path, DATA_FILE)


def is_db(path):
    return os.path.isfile(data_file(path))


def require_db(path):
    """Raise CLIError("no database at PATH ...") unless path holds a database."""
    if not os.path.exists(path):
        raise CLIError(f"no database at {path} (it does not exist)")
    if not os.path.isdir(path):
        raise CLIError(f"no database at {path} (not a directory)")
    if not is_db(path):
        raise CLIError(f"no database at {path} (no {DATA_FILE} in it)")


def open_existing(path, **options):
    """kvdb.open() an existing database; CLIError if there is none."""
    require_db(path)
    return kvdb.open(path, **options)


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




def sibling(path, tag):
    """A fresh path next to `path` (same file system, so renames are atomic)."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}")


def holder(path):
    """The pid (or "unknown") of a process holding the database at path open, else None."""
    import fcntl

    lock = os.path.join(path, LOCK_FILE)
    try:
        fd = os.open(lock, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return text if text.isdigit() else "unknown"
    finally:
        os.close(fd)
    return None


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
