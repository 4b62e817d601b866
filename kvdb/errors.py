"""Every exception kvdb raises, under one base class.

Messages are lowercase, specific and actionable. Exceptions that describe a
place in a file carry it as attributes (.path, .pgno, .offset) as well as in
the message.

The document layer's errors (DuplicateKeyError, InvalidQuery, ...) live with it, in
kvdb.documents.errors, under the same base class.
"""

__all__ = [
    "Error",
    "CorruptionError",
    "ConflictError",
    "LockedError",
    "ClosedError",
    "ReadOnlyError",
    "IOFailureError",
    "ForkError",
]


class Error(Exception):
    """Base class of every kvdb error."""


class CorruptionError(Error):
    """A file's bytes are not what kvdb wrote: bad magic, checksum, or tree invariant."""

    def __init__(self, message, path=None, pgno=None, offset=None):
        super().__init__(message)
        self.path = path  # file that holds the damage, when known
        self.pgno = pgno  # page number of the damaged page, when known
        self.offset = offset  # byte offset in the file, when known


class ConflictError(Error):
    """A transaction read or scanned something another transaction changed after it began."""


class LockedError(Error):
    """Another open of the database (in this process or another) holds its lock."""

    def __init__(self, message, path=None, pid=None):
        super().__init__(message)
        self.path = path  # the lock file
        self.pid = pid  # the holder's process id, when it could be read


class ClosedError(Error):
    """The database, transaction, snapshot or iterator was used after it was closed."""


class ReadOnlyError(Error):
    """A write was attempted through a read-only view (a snapshot)."""


class IOFailureError(Error):
    """An I/O call failed: a write or fsync (the database then refuses writes until it is
    reopened), or a read of a file (that call fails; .__cause__ holds the OSError)."""


class ForkError(Error):
    """A database object inherited across fork() was used in the child process."""
