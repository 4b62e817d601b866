"""Every exception kvdb raises, under one base class.

Messages are lowercase, specific and actionable. Exceptions that describe a
place in a file carry it as attributes (.path, .pgno, .offset) as well as in
the message.
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
    "DocumentError",
    "InvalidDocument",
    "InvalidDocumentType",
    "InvalidQuery",
    "InvalidUpdate",
    "DuplicateKeyError",
    "IndexNotFoundError",
    "InvalidName",
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
    """A write or fsync failed; the database refuses writes until it is reopened."""


class ForkError(Error):
    """A database object inherited across fork() was used in the child process."""


# -- the document layer (kvdb.documents) ---------------------------------------------------------


class DocumentError(Error):
    """Base class of the document layer's errors (kvdb.documents)."""


class InvalidDocument(DocumentError, ValueError):
    """A document cannot be stored: a field name starting with '$' or containing '.', an array
    _id, an integer outside 64 bits, or an encoded key or document over kvdb's size limits."""


class InvalidDocumentType(InvalidDocument, TypeError):
    """A document holds a value of a type documents cannot store; the message names the field path."""


class InvalidQuery(DocumentError, ValueError):
    """A filter, projection, sort or index specification is malformed (unknown operator, bad operand)."""


class InvalidUpdate(DocumentError, ValueError):
    """An update is malformed, or cannot apply to a matched document ($inc on a string, conflicting
    paths, a change of _id); nothing is written."""


class DuplicateKeyError(DocumentError):
    """A write would give two documents the same key in a unique index (or the same _id);
    nothing of the failing document is written. For insert_many, `.doc_index` is the failing
    document's position and `.inserted_ids` the ids inserted before it (ordered, like pymongo)."""

    code = 11000  # MongoDB's error code, for callers that test it

    def __init__(self, message, index_name=None, key=None, doc_index=None, inserted_ids=None):
        super().__init__(message)
        self.index_name = index_name      # the unique index, "_id_" for the primary key
        self.key = key                    # {field: value} of the duplicated key
        self.doc_index = doc_index        # position in insert_many's list, else None
        self.inserted_ids = inserted_ids if inserted_ids is not None else []  # ids written before it


class IndexNotFoundError(DocumentError, LookupError):
    """drop_index named an index the collection does not have."""


class InvalidName(DocumentError, ValueError):
    """A collection or index name is empty, too long, or holds a character names cannot hold."""
