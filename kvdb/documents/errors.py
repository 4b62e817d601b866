"""The document layer's errors, all under kvdb.documents.DocumentError and so under kvdb.Error.

kvdb re-exports them (kvdb.DuplicateKeyError, ...), as does kvdb.documents. Messages follow
kvdb.errors: lowercase, specific, and naming the field path, operator or index at fault.
"""
from kvdb.errors import Error

__all__ = ["DocumentError", "InvalidDocument", "InvalidDocumentType", "InvalidQuery", "InvalidUpdate",
           "DuplicateKeyError", "IndexNotFoundError", "InvalidName"]


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
