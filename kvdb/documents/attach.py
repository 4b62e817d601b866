"""How documents attach to the core without the core importing them.

The core's Database and Transaction have collection(), list_collections() and
drop_collection() methods, but the core sits below this package and may not import it.
It keeps a registry instead (kvdb._core.database.register_extension), and each method calls
the function registered under its name with (self, *args). install() fills that registry;
kvdb.documents runs it once, when it is first imported (and `import kvdb` imports it).

    Database.collection(name)        -> collection_of(db, name)
    Database.list_collections()      -> list_collections(db)
    Database.drop_collection(name)   -> drop_collection(db, name)
    Transaction.collection(name)     -> collection_of(tx, name)
"""
from kvdb._core import database

from .collection import collection_of, drop_collection, list_collections

__all__ = ["EXTENSIONS", "install"]

# The core's extension points (the names register_extension accepts) and what fills each one.
EXTENSIONS = {
    "collection": collection_of,
    "list_collections": list_collections,
    "drop_collection": drop_collection,
    "transaction_collection": collection_of,
}


def install():
    """Register the document functions with the core; running it again changes nothing."""
    for name, function in EXTENSIONS.items():
        database.register_extension(name, function)
