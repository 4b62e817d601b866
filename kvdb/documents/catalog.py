"""The document layer's key space and collection catalog (docs/format/keys.md).

Every key starts with 0x00:
    00 'c' <name UTF-8>                        catalog record of collection <name> (msgpack map)
    00 'n'                                     next collection id (u32 big-endian)
    00 'd' <cid u32> <encoded _id>             a document (msgpack map)
    00 'i' <cid u32> <ixid u32> <index key>    unique index entry; value: encoded _id
    00 'i' <cid u32> <ixid u32> <index key> <encoded _id>
                                               non-unique index entry; value: encoded _id
Collection ids and index ids are never reused, so a dropped collection's or index's keys can
never be mistaken for a live one's.
"""
import struct

from kvdb.errors import CorruptionError

from .codec import pack_value, unpack
from .errors import InvalidName
from .paths import split_path

SPACE = b"\x00"                       # the first byte of every key the document layer owns
CATALOG_PREFIX = SPACE + b"c"
NEXT_ID_KEY = SPACE + b"n"
DOCS_TAG = SPACE + b"d"
INDEX_TAG = SPACE + b"i"
CATALOG_MAGIC = "kvdb.collection"     # "magic" field of every catalog record
CATALOG_VERSION = 1                   # "version" field; readers refuse others
MAX_NAME_BYTES = 255                  # collection and index names, UTF-8
STATE_READY = "ready"                 # an index queries may use
STATE_BUILDING = "building"           # an index writers maintain while create_index fills it

_U32 = struct.Struct(">I")


def catalog_key(name):
    return CATALOG_PREFIX + name.encode("utf-8")


def check_name(name, what="collection"):
    if type(name) is not str or not name:
        raise InvalidName(f"a {what} name must be a non-empty string, got {name!r}")
    if "\x00" in name or (what == "collection" and name[:1] == "$"):
        raise InvalidName(f"{what} name {name!r} must not contain NUL or start with '$'")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidName(f"{what} name {name!r} is not valid Unicode") from None
    if size > MAX_NAME_BYTES:
        raise InvalidName(f"{what} name is {size} bytes; the limit is {MAX_NAME_BYTES}")
    return name


class IndexInfo:
    """One secondary index as the catalog describes it (immutable once parsed)."""

    __slots__ = ("id", "name", "fields", "paths", "directions", "unique", "multikey", "state", "prefix", "single")

    def __init__(self, cid, record):
        self.id = record["id"]                                  # index id, unique in the collection
        self.name = record["name"]                              # e.g. "age_1"
        self.fields = [tuple(f) for f in record["key"]]         # [(path, 1|-1), ...]
        self.paths = [split_path(p) for p, _ in self.fields]    # parts of each path
        self.directions = [d for _, d in self.fields]
        self.unique = bool(record.get("unique", False))
        self.multikey = bool(record.get("multikey", False))     # some document gave several keys
        self.state = record.get("state", STATE_READY)
        self.prefix = INDEX_TAG + _U32.pack(cid) + _U32.pack(self.id)
        # the field name of an ascending index on one top-level field (the fast path), else None
        self.single = self.paths[0][0] if len(self.paths) == 1 and len(self.paths[0]) == 1 \
            and self.directions[0] == 1 else None

    @property
    def ready(self):
        return self.state == STATE_READY

    def record(self):
        return {"id": self.id, "name": self.name, "key": [list(f) for f in self.fields], "unique": self.unique,
                "multikey": self.multikey, "state": self.state}


class CollectionInfo:
    """A parsed catalog record: the collection's id, key prefixes and indexes."""

    __slots__ = ("name", "id", "next_index", "indexes", "doc_prefix", "index_prefix", "raw")

    def __init__(self, name, record, raw=None):
        if record.get("magic") != CATALOG_MAGIC:
            raise CorruptionError(f"catalog record of collection {name!r} has bad magic {record.get('magic')!r}")
        if record.get("version") != CATALOG_VERSION:
            raise CorruptionError(f"catalog record of collection {name!r} is version {record.get('version')!r}; "
                                  f"this kvdb reads version {CATALOG_VERSION}")
        self.name = name
        self.id = record["id"]
        self.next_index = record["next_index"]
        self.indexes = [IndexInfo(self.id, r) for r in record["indexes"]]
        self.doc_prefix = DOCS_TAG + _U32.pack(self.id)
        self.index_prefix = INDEX_TAG + _U32.pack(self.id)
        self.raw = raw

    @classmethod
    def new(cls, name, cid):
        return cls(name, {"magic": CATALOG_MAGIC, "version": CATALOG_VERSION, "id": cid, "next_index": 1,
                          "indexes": []})

    def record(self):
        return {"magic": CATALOG_MAGIC, "version": CATALOG_VERSION, "id": self.id, "next_index": self.next_index,
                "indexes": [ix.record() for ix in self.indexes]}

    def encode(self):
        return pack_value(self.record())

    def copy(self):
        return CollectionInfo(self.name, self.record())

    def index_named(self, name):
        for ix in self.indexes:
            if ix.name == name:
                return ix
        return None


_cache = {}  # raw catalog bytes -> CollectionInfo (parsed records are shared, never mutated)
_CACHE_LIMIT = 256


def read_catalog(reader, name):
    """The CollectionInfo of `name` as `reader` (db, snapshot or transaction) sees it, or None."""
    raw = reader.get(catalog_key(name))
    if raw is None:
        return None
    info = _cache.get((name, raw))
    if info is None:
        info = CollectionInfo(name, unpack(raw), raw)
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[(name, raw)] = info
    return info


def write_catalog(tx, info):
    tx.put(catalog_key(info.name), info.encode())


def create_catalog(tx, name):
    """A new collection's catalog, written in `tx` (which allocates its id)."""
    raw = tx.get(NEXT_ID_KEY)
    cid = _U32.unpack(raw)[0] if raw is not None else 1
    tx.put(NEXT_ID_KEY, _U32.pack(cid + 1))
    info = CollectionInfo.new(name, cid)
    write_catalog(tx, info)
    return info


def list_names(reader):
    return [k[len(CATALOG_PREFIX):].decode("utf-8") for k, _ in reader.scan(prefix=CATALOG_PREFIX)]
