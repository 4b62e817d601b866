"""Document collections on kvdb: a pymongo-shaped API with MongoDB's query and update semantics,
secondary indexes (single-field, compound, unique, multikey) and explain().

    users = db.collection("users")
    users.insert_one({"name": "ada", "age": 36, "tags": ["math"]})
    users.create_index("age")
    for u in users.find({"age": {"$gte": 30}}, {"name": 1, "_id": 0}).sort("age", -1).limit(5): ...
    with db.transaction() as tx:
        tx.collection("users").update_one({"name": "ada"}, {"$inc": {"age": 1}})

See docs/documents.md (semantics, differences from MongoDB) and docs/format/keys.md (key layout).
"""
from .collection import Collection, collection_of, drop_collection, list_collections
from .cursor import Cursor
from .objectid import ObjectId
from .verify import verify
from .results import DeleteResult, InsertManyResult, InsertOneResult, ReturnDocument, UpdateResult

ASCENDING = 1
DESCENDING = -1

__all__ = ["Collection", "Cursor", "ObjectId", "collection_of", "list_collections", "drop_collection",
           "InsertOneResult", "InsertManyResult", "UpdateResult", "DeleteResult", "ReturnDocument",
           "ASCENDING", "DESCENDING", "verify"]
