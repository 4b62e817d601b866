"""Document commands: JSON in, JSON out, on kvdb.documents collections.

    DOC.INSERT coll doc-json [doc-json ...]             -> JSON array of the inserted _ids
    DOC.FIND coll filter-json [projection-json] [SORT field 1|-1 ...] [SKIP n] [LIMIT n]
                                                        -> array of JSON documents
    DOC.UPDATE coll filter-json update-json [MULTI] [UPSERT]
                                                        -> JSON {"matched", "modified", "upserted_id"}
    DOC.DELETE coll filter-json [ONE]                   -> number deleted (all matches unless ONE)
    DOC.COUNT coll [filter-json]                        -> number of matches
    DOC.INDEX coll spec-json [UNIQUE]                   -> the index name
    DOC.EXPLAIN coll filter-json [SORT field 1|-1 ...]  -> JSON plan

JSON has no bytes, datetimes or ObjectIds; they travel as MongoDB extended JSON
does: {"$binary": base64}, {"$date": milliseconds since the epoch}, {"$oid": hex}.
A spec for DOC.INDEX is a field name ("age"), or a JSON array of [field, 1|-1]
pairs. Writes go into the command group's transaction, so they commit with the
group (and inside MULTI/EXEC, atomically with the rest of it). Collections are
not scoped by SELECT: every logical database sees the same collections.
"""
import json

import kvdb
from kvdb.documents import collection_of, extjson

from .registry import SYNTAX, CommandError, command, int_arg


def _d(**kw):
    return dict(group="documents", since="kvdb 0.1", **kw)


def parse_json(raw, what):
    try:
        return extjson.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CommandError(f"ERR invalid JSON in {what}: {e}") from None


def dump_json(value):
    return extjson.dumps(value, separators=(",", ":")).encode()


def _collection(c, name, write):
    store = c.server.ks.store
    owner = store.writer() if write else store.reader()
    try:
        return collection_of(owner, name.decode("utf-8"))
    except UnicodeDecodeError:
        raise CommandError("ERR collection names must be UTF-8") from None


def _run(fn):
    """Runs a document-layer call, turning its errors into error replies."""
    try:
        return fn()
    except CommandError:
        raise
    except kvdb.Error as e:
        code = "DUPLICATEKEY" if type(e).__name__ == "DuplicateKeyError" else "ERR"
        raise CommandError(f"{code} {e}") from None
    except (TypeError, ValueError, KeyError) as e:
        raise CommandError(f"ERR {e}") from None


def _sort_spec(args, i):
    """[(field, direction)] from SORT f 1 g -1 ... starting at args[i] (after SORT)."""
    spec = []
    while i + 1 < len(args) and args[i].upper() not in (b"SKIP", b"LIMIT", b"SORT"):
        direction = int_arg(args[i + 1])
        if direction not in (1, -1):
            raise CommandError("ERR sort direction must be 1 or -1")
        spec.append((args[i].decode("utf-8", "replace"), direction))
        i += 2
    if not spec:
        raise CommandError(SYNTAX)
    return spec, i


@command("doc.insert", -3, "write denyoom", "@write", (1, 1, 1), **_d(summary="Inserts JSON documents into a collection."))
def doc_insert(c, args):
    coll = _collection(c, args[1], write=True)
    docs = [parse_json(a, "document") for a in args[2:]]
    if not all(isinstance(d, dict) for d in docs):
        raise CommandError("ERR a document must be a JSON object")
    result = _run(lambda: coll.insert_many(docs))
    return dump_json(list(result.inserted_ids))


def _find_args(args, allow_projection=True):
    flt = parse_json(args[2], "filter") if len(args) > 2 else {}
    projection = None
    i = 3
    if allow_projection and i < len(args) and args[i].upper() not in (b"SORT", b"SKIP", b"LIMIT"):
        projection = parse_json(args[i], "projection")
        i += 1
    sort, skip, limit = None, 0, 0
    while i < len(args):
        opt = args[i].upper()
        if opt == b"SORT":
            sort, i = _sort_spec(args, i + 1)
        elif opt == b"SKIP" and i + 1 < len(args):
            skip = int_arg(args[i + 1])
            i += 2
        elif opt == b"LIMIT" and i + 1 < len(args):
            limit = int_arg(args[i + 1])
            i += 2
        else:
            raise CommandError(SYNTAX)
        if skip < 0 or limit < 0:
            raise CommandError("ERR SKIP and LIMIT must not be negative")
    if not isinstance(flt, dict):
        raise CommandError("ERR a filter must be a JSON object")
    return flt, projection, sort, skip, limit


def _cursor(coll, flt, projection, sort, skip, limit):
    cur = coll.find(flt, projection) if projection is not None else coll.find(flt)
    if sort:
        cur = cur.sort(sort)
    if skip:
        cur = cur.skip(skip)
    if limit:
        cur = cur.limit(limit)
    return cur


@command("doc.find", -3, "readonly", "@read", (1, 1, 1), **_d(summary="Finds documents matching a JSON filter."))
def doc_find(c, args):
    coll = _collection(c, args[1], write=False)
    flt, projection, sort, skip, limit = _find_args(args)
    return _run(lambda: [dump_json(d) for d in _cursor(coll, flt, projection, sort, skip, limit)])


@command("doc.explain", -3, "readonly", "@read", (1, 1, 1), **_d(summary="Explains how a query would run."))
def doc_explain(c, args):
    coll = _collection(c, args[1], write=False)
    flt, projection, sort, skip, limit = _find_args(args, allow_projection=False)
    return _run(lambda: dump_json(_cursor(coll, flt, projection, sort, skip, limit).explain()))


@command("doc.count", -2, "readonly", "@read", (1, 1, 1), **_d(summary="Counts documents matching a JSON filter."))
def doc_count(c, args):
    if len(args) > 3:
        raise CommandError(SYNTAX)
    coll = _collection(c, args[1], write=False)
    flt = parse_json(args[2], "filter") if len(args) > 2 else {}
    return _run(lambda: coll.count_documents(flt))


@command("doc.update", -4, "write denyoom", "@write", (1, 1, 1), **_d(summary="Updates documents matching a JSON filter."))
def doc_update(c, args):
    coll = _collection(c, args[1], write=True)
    flt = parse_json(args[2], "filter")
    update = parse_json(args[3], "update")
    opts = {a.upper() for a in args[4:]}
    if not opts <= {b"MULTI", b"UPSERT"} or len(opts) != len(args) - 4:
        raise CommandError(SYNTAX)
    fn = coll.update_many if b"MULTI" in opts else coll.update_one
    result = _run(lambda: fn(flt, update, upsert=b"UPSERT" in opts))
    return dump_json({"matched": result.matched_count, "modified": result.modified_count,
                      "upserted_id": result.upserted_id})


@command("doc.delete", -3, "write", "@write", (1, 1, 1), **_d(summary="Deletes documents matching a JSON filter."))
def doc_delete(c, args):
    coll = _collection(c, args[1], write=True)
    flt = parse_json(args[2], "filter")
    opts = {a.upper() for a in args[3:]}
    if not opts <= {b"ONE"} or len(opts) != len(args) - 3:
        raise CommandError(SYNTAX)
    fn = coll.delete_one if opts else coll.delete_many
    return _run(lambda: fn(flt).deleted_count)


@command("doc.index", -3, "write", "@write", (1, 1, 1), **_d(summary="Creates an index on a collection."))
def doc_index(c, args):
    coll = _collection(c, args[1], write=True)
    opts = {a.upper() for a in args[3:]}
    if not opts <= {b"UNIQUE"} or len(opts) != len(args) - 3:
        raise CommandError(SYNTAX)
    raw = args[2]
    try:
        spec = json.loads(raw)
    except ValueError:
        spec = raw.decode("utf-8", "replace")
    if isinstance(spec, list):
        spec = [(str(f), int(d)) for f, d in spec]
    elif not isinstance(spec, str):
        raise CommandError("ERR an index spec is a field name or a JSON array of [field, 1|-1] pairs")
    name = _run(lambda: coll.create_index(spec, unique=b"UNIQUE" in opts))
    return name.encode() if isinstance(name, str) else name
