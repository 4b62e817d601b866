"""Document collections on the core: MongoDB's query and update language, secondary indexes.

A pymongo-shaped API with MongoDB's query and update semantics, secondary indexes
(single-field, compound, unique, multikey) and explain().

    users = db.collection("users")
    users.insert_one({"name": "ada", "age": 36, "tags": ["math"]})
    users.create_index("age")
    for u in users.find({"age": {"$gte": 30}}, {"name": 1, "_id": 0}).sort("age", -1).limit(5): ...
    with db.transaction() as tx:
        tx.collection("users").update_one({"name": "ada"}, {"$inc": {"age": 1}})

The layer above the kvdb API: it imports kvdb.errors and kvdb._core, never the kvdb package
itself (which imports it). Importing it attaches db.collection() and its siblings to the core
(attach.py). See docs/documents.md (semantics, differences from MongoDB) and docs/format/keys.md
(key layout).
"""
from .collection import Collection, collection_of, drop_collection, list_collections
from .cursor import Cursor
from .errors import (DocumentError, DuplicateKeyError, IndexNotFoundError, InvalidDocument, InvalidDocumentType,
                     InvalidName, InvalidQuery, InvalidUpdate)
from .objectid import ObjectId
from .verify import verify
from .results import DeleteResult, InsertManyResult, InsertOneResult, ReturnDocument, UpdateResult
from . import attach

attach.install()

ASCENDING = 1
DESCENDING = -1

__all__ = ["Collection", "Cursor", "ObjectId", "collection_of", "list_collections", "drop_collection",
           "InsertOneResult", "InsertManyResult", "UpdateResult", "DeleteResult", "ReturnDocument",
           "ASCENDING", "DESCENDING", "verify",
           "DocumentError", "DuplicateKeyError", "IndexNotFoundError", "InvalidDocument", "InvalidDocumentType",
           "InvalidName", "InvalidQuery", "InvalidUpdate"]
