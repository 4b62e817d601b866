"""Collection: the pymongo-shaped API over kvdb transactions.

Owner is a kvdb.Database or a kvdb.Transaction. On a Database every write operation runs in its
own transaction (documents and index entries commit together) and is retried on ConflictError
up to WRITE_RETRIES times; reads use one snapshot. On a Transaction, operations read and write
inside it; each operation's writes join the transaction only when the operation succeeds, so a
failed operation changes nothing there either.
"""
import contextlib
import random
import time

from kvdb._core.database import MAX_KEY_SIZE, Transaction
from kvdb.errors import ConflictError

from . import update as updates
from .catalog import (STATE_BUILDING, STATE_READY, CollectionInfo, IndexInfo, catalog_key, check_name,
                      create_catalog, list_names, read_catalog, write_catalog)
from .codec import check_document, check_values, pack, pack_with_new_id, unpack
from .cursor import Cursor, run_query
from .errors import DuplicateKeyError, IndexNotFoundError, InvalidDocument, InvalidQuery, InvalidUpdate
from .indexes import (Entries, all_keys, check_unique, default_name, delete_entries, describe_key, index_keys,
                      key_values, parse_spec, put_entries)
from .fastinsert import encode_new
from .keycodec import encode
from .objectid import ObjectId, new_objectid
from .paths import MISSING, leaves, split_path
from .planner import _successor
from .projection import compile_projection
from .query import RE_TYPE, compile_filter, is_operator_doc, normalize_operand
from .results import DeleteResult, InsertManyResult, InsertOneResult, ReturnDocument, UpdateResult
from .sorting import parse_sort

_ID_TYPES = frozenset((str, int, float, ObjectId, bytes, bool))   # _id values find_one looks up directly
WRITE_RETRIES = 16          # attempts of an auto-commit write that keeps conflicting
INSERT_BATCH = 20000        # documents insert_many commits per transaction on a Database
BUILD_BATCH = 5000          # documents an index build reads per transaction
MAX_ID_KEY = 1024           # bytes of an encoded _id


class _Overlay:
    """Buffers one operation's writes over a caller's transaction; flush() hands them over.
    Reads see the buffered writes; scans do not (operations scan before they write)."""

    __slots__ = ("tx", "writes")

    def __init__(self, tx):
        self.tx = tx                 # the caller's kvdb.Transaction
        self.writes = {}             # key -> value, or None for a delete

    def get(self, key, default=None):
        if key in self.writes:
            v = self.writes[key]
            return default if v is None else v
        return self.tx.get(key, default)

    def put(self, key, value):
        self.writes[key] = value

    def delete(self, key):
        self.writes[key] = None

    def scan(self, *args, **kwargs):
        return self.tx.scan(*args, **kwargs)

    def flush(self):
        tx = self.tx
        for k, v in self.writes.items():
            if v is None:
                tx.delete(k)
            else:
                tx.put(k, v)
        self.writes = {}


class Collection:
    """Documents named `name` in the database or transaction `owner`."""

    def __init__(self, owner, name):
        self.name = check_name(name)
        self.owner = owner                                      # kvdb.Database or kvdb.Transaction
        self._in_tx = isinstance(owner, Transaction)       # constant

    def __repr__(self):
        return f"Collection({self.name!r})"

    @property
    def full_name(self):
        return self.name

    # -- plumbing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self):
        if self._in_tx or not hasattr(self.owner, "snapshot"):
            yield self.owner
            return
        snap = self.owner.snapshot()
        try:
            yield snap
        finally:
            snap.close()

    def _write(self, fn):
        """Run fn(writer) -> (result, error) atomically; commit, retrying on conflict; raise
        `error` (after committing what came before it) if fn reports one."""
        if self._in_tx:
            overlay = _Overlay(self.owner)
            result, error = fn(overlay)
            overlay.flush()
            if error is not None:
                raise error
            return result
        db = self.owner
        for attempt in range(WRITE_RETRIES):
            tx = db.transaction()
            try:
                result, error = fn(tx)
            except BaseException:
                tx.rollback()
                raise
            try:
                tx.commit()
            except ConflictError:
                if attempt == WRITE_RETRIES - 1:
                    raise
                time.sleep(random.random() * 0.001 * (attempt + 1))
                continue
            if error is not None:
                raise error
            return result

    def _info_for_write(self, w):
        info = read_catalog(w, self.name)
        if info is None:
            info = create_catalog(w, self.name)
        return info

    # -- inserts ----------------------------------------------------------------------------

    def _prepare(self, doc):
        """(_id, stored document, packed bytes, encoded _id, fresh); sets doc["_id"] if absent (as
        pymongo does). `fresh`: the _id was generated here, so no document can have it yet."""
        if not isinstance(doc, dict):
            raise InvalidDocument(f"a document must be a dict, got {type(doc).__name__}")
        oid = doc.get("_id", MISSING)
        if oid is MISSING:
            check_document(doc)
            oid = new_objectid()
            packed = pack_with_new_id(doc, oid.binary)
            doc["_id"] = oid
            return oid, doc, packed, b"\x48" + oid.binary, True
        else:
            if type(oid) is list:
                raise InvalidDocument("_id cannot be an array")
            stored = doc if next(iter(doc)) == "_id" else {"_id": oid, **doc}
            check_values(oid, "_id")
        check_document(stored)
        eid = encode(oid)
        if len(eid) > MAX_ID_KEY:
            raise InvalidDocument(f"_id is {len(eid)} bytes encoded; the limit is {MAX_ID_KEY}")
        return oid, stored, pack(stored), eid, False

    def _insert_prepared(self, w, info, oid, stored, packed, eid, fresh=False):
        """Write one document and its index entries; nothing is written if a check fails. Returns
        the (possibly updated) CollectionInfo. A `fresh` ObjectId (generated by this process: time,
        process random, counter) cannot collide, so its _id is not looked up."""
        key = info.doc_prefix + eid
        if not fresh and w.get(key) is not None:
            raise DuplicateKeyError(f"duplicate key in unique index '_id_': {{_id: {oid!r}}}", index_name="_id_",
                                    key={"_id": oid})
        if info.indexes:
            entries = Entries(info, eid, stored)
            check_unique(w, entries, eid)
            w.put(key, packed)
            put_entries(w, entries, eid)
            if entries.new_multikey:
                info = _with_multikey(w, info, entries.new_multikey)
        else:
            w.put(key, packed)
        return info

    def insert_one(self, document):
        prepared = self._prepare(document)

        def fn(w):
            info = self._info_for_write(w)
            self._insert_prepared(w, info, *prepared)
            return InsertOneResult(prepared[0]), None
        return self._write(fn)

    def insert_many(self, documents, ordered=True):
        """Insert in order. On an error the documents before the failing one stay inserted (with
        ordered=False, every document that can be is inserted), and the error (DuplicateKeyError,
        InvalidDocument) says which document failed: .doc_index, and .inserted_ids for duplicates."""
        documents = list(documents)
        if not documents:
            raise InvalidDocument("insert_many needs a non-empty list of documents")
        ids = []
        first_error = None
        step = len(documents) if self._in_tx else INSERT_BATCH
        for start in range(0, len(documents), step):
            batch = documents[start:start + step]

            def fn(w, batch=batch, start=start):
                info = self._info_for_write(w)
                done = []
                error = None
                # the common case in C (fastinsert): no _id given, only plain single-field indexes
                fast = None if any(ix.single is None or ix.unique for ix in info.indexes) else \
                    [(ix.prefix, ix.single) for ix in info.indexes]
                i, n = 0, len(batch)
                while i < n:
                    if fast is not None:
                        i = encode_new(batch, i, fast, info.doc_prefix, pack, w.put, done, MAX_KEY_SIZE)
                        if i == n:
                            break
                    try:                       # batch[i] needs the general path
                        prepared = self._prepare(batch[i])
                        info = self._insert_prepared(w, info, *prepared)
                    except (DuplicateKeyError, InvalidDocument) as e:
                        e.doc_index = start + i
                        e.args = (f"document {start + i} of insert_many: {e.args[0] if e.args else e}",)
                        error = error or e
                        if ordered:
                            break
                        i += 1
                        continue
                    done.append(prepared[0])
                    i += 1
                return (done, error), None
            done, error = self._write(fn)
            ids.extend(done)
            if error is not None:
                first_error = first_error or error
                if ordered:
                    break
        if first_error is not None:
            if isinstance(first_error, DuplicateKeyError):
                first_error.inserted_ids = list(ids)
            raise first_error
        return InsertManyResult(ids)

    # -- reads ------------------------------------------------------------------------------

    def find(self, filter=None, projection=None, skip=0, limit=0, sort=None):
        return Cursor(self, filter, projection, skip, limit, sort)

    def find_one(self, filter=None, projection=None, sort=None, skip=0):
        if filter is not None and not isinstance(filter, dict):
            filter = {"_id": filter}
        if projection is None and sort is None and not skip and type(filter) is dict and len(filter) == 1:
            value = filter.get("_id", MISSING)
            if type(value) in _ID_TYPES:
                # one key read: no cursor, no planner, no snapshot (a single get is consistent)
                info = read_catalog(self.owner, self.name)
                raw = self.owner.get(info.doc_prefix + encode(value)) if info is not None else None
                return unpack(raw) if raw is not None else None
        # close the cursor here: its generator refers to it, so a cursor left suspended after the
        # first document would keep its snapshot pinned until the cycle collector ran
        cursor = Cursor(self, filter, projection, skip, 1, sort)
        try:
            for doc in cursor:
                return doc
            return None
        finally:
            cursor.close()

    def count_documents(self, filter, skip=0, limit=0):
        match = compile_filter(filter)
        with self._reading() as reader:
            return sum(1 for _ in run_query(reader, self.name, filter, match, None, skip, limit))

    def estimated_document_count(self):
        with self._reading() as reader:
            info = read_catalog(reader, self.name)
            if info is None:
                return 0
            return sum(1 for _ in reader.scan(prefix=info.doc_prefix))

    def distinct(self, key, filter=None):
        """The distinct values of a field among the matching documents (array fields give their
        elements; 1 and 1.0 count once), in first-seen order."""
        parts = split_path(key, "distinct field")
        match = compile_filter(filter)
        seen = {}
        with self._reading() as reader:
            for _, _, doc in run_query(reader, self.name, filter, match):
                for v in leaves(doc, parts):
                    if v is MISSING:
                        continue
                    for item in (v if type(v) is list else (v,)):
                        seen.setdefault(encode(item), item)
        return list(seen.values())

    # -- updates ----------------------------------------------------------------------------

    def update_one(self, filter, update, upsert=False):
        return self._update(filter, update, upsert, multi=False)

    def update_many(self, filter, update, upsert=False):
        return self._update(filter, update, upsert, multi=True)

    def replace_one(self, filter, replacement, upsert=False):
        return self._update(filter, replacement, upsert, multi=False, replace=True)

    def _compile_change(self, update, replace):
        if replace:
            if not isinstance(replacement := update, dict):
                raise InvalidUpdate(f"a replacement must be a dict, got {type(update).__name__}")
            if any(type(k) is str and k[:1] == "$" for k in replacement):
                raise InvalidUpdate("a replacement document cannot hold update operators (use update_one)")
            check_document(replacement)
            return None
        if isinstance(update, list):
            raise InvalidUpdate("aggregation pipeline updates are not supported")
        if isinstance(update, dict) and update and not updates.is_update_doc(update):
            raise InvalidUpdate("an update must hold only $-operators (use replace_one to replace a document)")
        return updates.compile_update(update)

    def _changed(self, doc, raw, update, steps, replace):
        """The new version of a stored document (a fresh dict)."""
        if replace:
            new = {"_id": doc["_id"]}
            for k, v in update.items():
                if k == "_id":
                    if encode(v) != encode(doc["_id"]):
                        raise InvalidUpdate(f"the replacement's _id {v!r} differs from the document's "
                                            f"{doc['_id']!r}; _id cannot change")
                    continue
                new[k] = updates._copy(v)
            return new
        new = updates.apply(unpack(raw), steps)
        if "_id" not in new or encode(new["_id"]) != encode(doc["_id"]):
            raise InvalidUpdate(f"performing an update on the path '_id' would modify the immutable field '_id' "
                                f"(document {doc['_id']!r})")
        return new

    def _rewrite(self, w, info, key, raw, doc, new):
        """Store `new` in place of `doc`; False if nothing changed. Checks everything first."""
        check_document(new)
        packed = pack(new)
        if packed == raw:
            return info, False
        eid = key[len(info.doc_prefix):]
        if info.indexes:
            old_entries = Entries(info, eid, doc)
            new_entries = Entries(info, eid, new)
            old_keys, new_keys = all_keys(old_entries), all_keys(new_entries)
            check_unique(w, new_entries, eid, skip=old_keys)
            delete_entries(w, old_entries, keep=new_keys)
            put_entries(w, new_entries, eid, skip=old_keys)
            if new_entries.new_multikey:
                info = _with_multikey(w, info, new_entries.new_multikey)
        w.put(key, packed)
        return info, True

    def _upsert_doc(self, filter, update, steps, replace):
        if replace:
            doc = {}
            seed = _equality_seed(filter)
            if "_id" in seed:
                doc["_id"] = seed["_id"]
            for k, v in update.items():
                doc[k] = updates._copy(v)
        else:
            doc = _equality_seed(filter)
            updates.apply(doc, steps, inserting=True)
        if "_id" not in doc:
            doc = {"_id": ObjectId(), **doc}
        elif next(iter(doc)) != "_id":
            doc = {"_id": doc["_id"], **doc}
        return doc

    def _update(self, filter, update, upsert, multi, replace=False):
        match = compile_filter(filter)
        steps = self._compile_change(update, replace)

        def fn(w):
            info = read_catalog(w, self.name)
            matched = modified = 0
            if info is not None:
                rows = list(run_query(w, self.name, filter, match, None, 0, 0 if multi else 1))
                for key, raw, doc in rows:
                    matched += 1
                    info, changed = self._rewrite(w, info, key, raw, doc, self._changed(doc, raw, update, steps,
                                                                                        replace))
                    modified += changed
            if matched or not upsert:
                return UpdateResult(matched, modified), None
            info = info or create_catalog(w, self.name)
            doc = self._upsert_doc(filter, update, steps, replace)
            prepared = self._prepare(doc)
            self._insert_prepared(w, info, *prepared)
            oid = prepared[0]
            return UpdateResult(0, 0, oid), None
        return self._write(fn)

    # -- deletes ----------------------------------------------------------------------------

    def delete_one(self, filter):
        return self._delete(filter, multi=False)

    def delete_many(self, filter):
        return self._delete(filter, multi=True)

    def _delete(self, filter, multi):
        match = compile_filter(filter)

        def fn(w):
            info = read_catalog(w, self.name)
            if info is None:
                return DeleteResult(0), None
            rows = list(run_query(w, self.name, filter, match, None, 0, 0 if multi else 1))
            for key, raw, doc in rows:
                _delete_row(w, info, key, doc)
            return DeleteResult(len(rows)), None
        return self._write(fn)

    # -- find and modify --------------------------------------------------------------------

    def find_one_and_delete(self, filter, projection=None, sort=None):
        match = compile_filter(filter)
        project = compile_projection(projection)
        sort = parse_sort(sort)

        def fn(w):
            info = read_catalog(w, self.name)
            if info is None:
                return None, None
            for key, raw, doc in run_query(w, self.name, filter, match, sort, 0, 1):
                _delete_row(w, info, key, doc)
                return (project(doc) if project else doc), None
            return None, None
        return self._write(fn)

    def find_one_and_update(self, filter, update, projection=None, sort=None, upsert=False,
                            return_document=ReturnDocument.BEFORE):
        return self._find_and_modify(filter, update, projection, sort, upsert, return_document, replace=False)

    def find_one_and_replace(self, filter, replacement, projection=None, sort=None, upsert=False,
                             return_document=ReturnDocument.BEFORE):
        return self._find_and_modify(filter, replacement, projection, sort, upsert, return_document, replace=True)

    def _find_and_modify(self, filter, update, projection, sort, upsert, return_document, replace):
        match = compile_filter(filter)
        steps = self._compile_change(update, replace)
        project = compile_projection(projection)
        sort = parse_sort(sort)

        def fn(w):
            info = read_catalog(w, self.name)
            if info is not None:
                for key, raw, doc in run_query(w, self.name, filter, match, sort, 0, 1):
                    new = self._changed(doc, raw, update, steps, replace)
                    self._rewrite(w, info, key, raw, doc, new)
                    out = new if return_document else doc
                    return (project(out) if project else out), None
            if not upsert:
                return None, None
            info = info or create_catalog(w, self.name)
            doc = self._upsert_doc(filter, update, steps, replace)
            prepared = self._prepare(doc)
            self._insert_prepared(w, info, *prepared)
            if not return_document:
                return None, None
            out = unpack(prepared[2])
            return (project(out) if project else out), None
        return self._write(fn)

    # -- indexes ----------------------------------------------------------------------------

    def create_index(self, keys, unique=False, name=None, progress=None, **kwargs):
        """Create (and fill) an index; returns its name. `keys`: "field", [("a", 1), ("b", -1)]
        or {"a": 1}. `progress(done, total)` is called after each batch of the build. On a
        Database the build runs in batches while writers keep the new index up to date; queries
        use it once it is complete. A unique index over duplicate values raises DuplicateKeyError
        and is removed."""
        unknown = set(kwargs) - {"background", "sparse"}
        if unknown or kwargs.get("sparse"):
            raise InvalidQuery(f"unsupported create_index options: {sorted(unknown or {'sparse'})}")
        fields = parse_spec(keys)
        name = default_name(fields) if name is None else name
        check_name(name, "index")
        if fields == [("_id", 1)]:
            if unique is False or unique is True:
                return "_id_"
        if name == "_id_":
            raise InvalidQuery("the index name '_id_' is reserved for the _id index")

        def register(w):
            info = self._info_for_write(w)
            for ix in info.indexes:
                if ix.name == name or ix.fields == fields:
                    if ix.fields != fields or ix.unique != bool(unique):
                        raise InvalidQuery(f"an index {ix.name!r} on {ix.fields} (unique={ix.unique}) already "
                                           f"exists; it conflicts with {name!r} on {fields} (unique={bool(unique)})")
                    return ix.state, None
            new = info.copy()
            new.indexes.append(IndexInfo(new.id, {"id": new.next_index, "name": name, "key": [list(f) for f in fields],
                                                  "unique": bool(unique), "multikey": False,
                                                  "state": STATE_BUILDING}))
            new.next_index += 1
            write_catalog(w, new)
            if self._in_tx:
                self._build_all(w, new, name, progress)
                return STATE_READY, None
            return STATE_BUILDING, None
        state = self._write(register)
        if state == STATE_BUILDING:
            try:
                self._build_batches(name, progress)
            except (DuplicateKeyError, InvalidDocument):
                self._write(lambda w: (self._remove_index(w, name), None))
                raise
        return name

    def _build_all(self, w, info, name, progress):
        """Fill and publish index `name` inside one transaction (Transaction owners)."""
        ix = info.index_named(name)
        multikey = False
        n = 0
        for key, raw in list(w.scan(prefix=info.doc_prefix)):
            multikey |= self._index_doc(w, ix, key[len(info.doc_prefix):], unpack(raw))
            n += 1
        if progress:
            progress(n, n)
        _publish(w, info, name, multikey)

    def _index_doc(self, w, ix, eid, doc):
        ks, multi = index_keys(doc, ix)
        for k in ks:
            full = ix.prefix + k if ix.unique else ix.prefix + k + eid
            if ix.unique:
                other = w.get(full)
                if other is not None and other != eid:
                    raise DuplicateKeyError(f"cannot build unique index {ix.name!r}: duplicate key "
                                            f"{describe_key(ix, full)}", index_name=ix.name,
                                            key=key_values(ix, full))
            w.put(full, eid)
        return multi

    def _build_batches(self, name, progress):
        db = self.owner
        with db.snapshot() as snap:
            info = read_catalog(snap, self.name)
            total = sum(1 for _ in snap.scan(prefix=info.doc_prefix))
        start = info.doc_prefix
        stop = _successor(info.doc_prefix)
        done = 0
        multikey = False
        if progress:
            progress(0, total)
        while True:
            with db.snapshot() as snap:
                keys = [k for k, _ in zip((k for k, _ in snap.scan(start=start, end=stop)), range(BUILD_BATCH))]
            if not keys:
                break
            end = keys[-1] + b"\x00"

            def fill(w, start=start, end=end):
                info = read_catalog(w, self.name)
                ix = info.index_named(name) if info is not None else None
                if ix is None:
                    raise InvalidQuery(f"index {name!r} was dropped while it was being built")
                multi = False
                n = 0
                for key, raw in list(w.scan(start=start, end=end)):
                    multi |= self._index_doc(w, ix, key[len(info.doc_prefix):], unpack(raw))
                    n += 1
                return (n, multi), None
            n, multi = self._write(fill)
            multikey |= multi
            done += n
            start = end
            if progress:
                progress(done, max(total, done))

        def finish(w):
            info = read_catalog(w, self.name)
            if info is None or info.index_named(name) is None:
                raise InvalidQuery(f"index {name!r} was dropped while it was being built")
            _publish(w, info, name, multikey)
            return None, None
        self._write(finish)

    def _remove_index(self, w, name):
        info = read_catalog(w, self.name)
        ix = info.index_named(name) if info is not None else None
        if ix is None:
            return False
        for k, _ in list(w.scan(prefix=ix.prefix)):
            w.delete(k)
        new = info.copy()
        new.indexes = [i for i in new.indexes if i.name != name]
        write_catalog(w, new)
        return True

    def drop_index(self, index_or_name):
        name = index_or_name
        if not isinstance(name, str):
            name = default_name(parse_spec(index_or_name))
        if name == "_id_":
            raise InvalidQuery("cannot drop the _id index")

        def fn(w):
            if not self._remove_index(w, name):
                raise IndexNotFoundError(f"index not found with name {name!r} in collection {self.name!r}")
            return None, None
        self._write(fn)

    def drop_indexes(self):
        for ix in self.list_indexes():
            if ix["name"] != "_id_":
                self.drop_index(ix["name"])

    def list_indexes(self):
        """[{"v": 2, "key": {...}, "name": ..., ["unique": True]}], the _id index first."""
        with self._reading() as reader:
            info = read_catalog(reader, self.name)
        if info is None:
            return []
        out = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
        for ix in info.indexes:
            d = {"v": 2, "key": {p: d for p, d in ix.fields}, "name": ix.name}
            if ix.unique:
                d["unique"] = True
            if ix.multikey:
                d["multikey"] = True
            if not ix.ready:
                d["building"] = True
            out.append(d)
        return out

    def index_information(self):
        return {ix["name"]: {"key": list(ix["key"].items()), **({"unique": True} if ix.get("unique") else {})}
                for ix in self.list_indexes()}

    def drop(self):
        drop_collection(self.owner, self.name)


def _publish(w, info, name, multikey):
    new = info.copy()
    for ix in new.indexes:
        if ix.name == name:
            ix.state = STATE_READY
            ix.multikey = ix.multikey or multikey
    write_catalog(w, new)


def _with_multikey(w, info, indexes):
    names = {ix.name for ix in indexes}
    new = info.copy()
    for ix in new.indexes:
        if ix.name in names:
            ix.multikey = True
    write_catalog(w, new)
    return new


def _delete_row(w, info, key, doc):
    w.delete(key)
    if info.indexes:
        delete_entries(w, Entries(info, key[len(info.doc_prefix):], doc))


def _equality_seed(flt, out=None):
    """The document an upsert starts from: the filter's equality conditions."""
    out = {} if out is None else out
    if not isinstance(flt, dict):
        return out
    for key, cond in flt.items():
        if key == "$and" and isinstance(cond, (list, tuple)):
            for sub in cond:
                _equality_seed(sub, out)
            continue
        if key[:1] == "$":
            continue
        if is_operator_doc(cond):
            if "$eq" in cond:
                value = cond["$eq"]
            else:
                continue
        else:
            value = cond
        if type(value) is RE_TYPE:
            continue
        value = normalize_operand(value, key)
        parts = key.split(".")
        try:
            updates._set(out, tuple(parts), value, True)
        except InvalidUpdate:
            raise InvalidUpdate(f"cannot build the upsert document: the filter's fields {key!r} conflict") from None
    return out


def collection_of(owner, name):
    return Collection(owner, name)


def list_collections(db):
    if hasattr(db, "snapshot"):
        with db.snapshot() as snap:
            return list_names(snap)
    return list_names(db)


def drop_collection(owner, name):
    """Delete a collection: its documents, index entries and catalog record, in one transaction.
    Returns whether it existed."""
    check_name(name)
    coll = Collection(owner, name)

    def fn(w):
        info = read_catalog(w, name)
        if info is None:
            return False, None
        for k, _ in list(w.scan(prefix=info.doc_prefix)):
            w.delete(k)
        for k, _ in list(w.scan(prefix=info.index_prefix)):
            w.delete(k)
        w.delete(catalog_key(name))
        return True, None
    return coll._write(fn)


__all__ = ["Collection", "collection_of", "list_collections", "drop_collection", "CollectionInfo"]
