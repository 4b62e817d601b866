"""Document collections from the command line (kvdb.documents; JSON is MongoDB's extended JSON:
{"$oid": hex}, {"$date": ms}, {"$binary": base64}).

    kvdb collections PATH [--verify]                       names, document counts, indexes
    kvdb find PATH COLLECTION [FILTER] [--projection P] [--sort S] [--skip N] [--limit N]
                                       [--count | --explain]
    kvdb index PATH COLLECTION SPEC [--unique] [--name N]  build an index, with a progress bar
    kvdb index PATH COLLECTION --drop NAME                 kvdb index PATH COLLECTION (list)

SPEC and --sort: "age", "city,-age" (a leading - is descending) or JSON [["city", 1], ["age", -1]].

collections, find and index's listing open the database read-only, so they work while other
processes (kvdb serve included) have it open; creating or dropping an index writes.
"""
import json
import sys

from kvdb import documents
from kvdb.documents import extjson

from .dboptions import add_database_options, database_options
from .dbpath import open_existing
from .errors import CLIError
from .progress import Progress


def add_parser(sub):
    p = sub.add_parser("collections", help="list document collections (--verify: indexes against documents)",
                       description=__doc__)
    p.add_argument("path")
    p.add_argument("--verify", action="store_true", help="check that every index matches its documents; "
                                                          "exit 1 on any problem")
    add_database_options(p)
    p.set_defaults(func=run_collections)

    p = sub.add_parser("find", help="query a document collection, one JSON document per line",
                       description=__doc__)
    p.add_argument("path")
    p.add_argument("collection")
    p.add_argument("filter", nargs="?", default="{}", help="JSON filter (default {})")
    p.add_argument("--projection", help="JSON projection, e.g. '{\"name\": 1}'")
    p.add_argument("--sort", help='"age", "city,-age" or JSON pairs')
    p.add_argument("--skip", type=int, default=0)
    p.add_argument("--limit", type=int, default=0)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--count", action="store_true", help="print the number of matches only")
    what.add_argument("--explain", action="store_true", help="print the query plan (JSON) instead")
    add_database_options(p)
    p.set_defaults(func=run_find)

    p = sub.add_parser("index", help="create (with progress), list or drop a collection's indexes",
                       description=__doc__)
    p.add_argument("path")
    p.add_argument("collection")
    p.add_argument("spec", nargs="?", help='"age", "city,-age" or JSON pairs; omit to list the indexes')
    p.add_argument("--unique", action="store_true")
    p.add_argument("--name", help="index name (default like MongoDB's: city_1_age_-1)")
    p.add_argument("--drop", metavar="NAME", help="drop the index NAME")
    add_database_options(p)
    p.set_defaults(func=run_index)


def parse_fields(text, what):
    """[(field, 1|-1)] from "a,-b" or JSON [["a", 1], ["b", -1]]."""
    text = text.strip()
    if text.startswith("["):
        try:
            pairs = json.loads(text)
            return [(str(f), int(d)) for f, d in pairs]
        except (ValueError, TypeError):
            raise CLIError(f"bad {what} {text!r}: expected JSON [[field, 1 or -1], ...]") from None
    fields = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise CLIError(f"bad {what} {text!r}: an empty field")
        fields.append((part[1:], -1) if part.startswith("-") else (part, 1))
    return fields


def _json_arg(text, what):
    try:
        return extjson.loads(text)
    except ValueError as e:
        raise CLIError(f"bad JSON in {what}: {e}") from None


def run_collections(args):
    problems = 0
    with open_existing(args.path, readonly=True, **database_options(args)) as db:
        for name in db.list_collections():
            coll = db.collection(name)
            indexes = ", ".join(ix["name"] + (" (unique)" if ix.get("unique") else "")
                                for ix in coll.list_indexes())
            line = f"{name}\t{coll.estimated_document_count()} documents\tindexes: {indexes}"
            if args.verify:
                found = documents.verify(db, name)[name]
                problems += len(found)
                line += "\tok" if not found else f"\t{len(found)} problem(s)"
                for p in found[:20]:
                    print(f"  {p}", file=sys.stderr)
            print(line)
    return 1 if problems else 0


def run_find(args):
    flt = _json_arg(args.filter, "FILTER")
    if not isinstance(flt, dict):
        raise CLIError("FILTER must be a JSON object")
    projection = _json_arg(args.projection, "--projection") if args.projection else None
    sort = parse_fields(args.sort, "--sort") if args.sort else None
    with open_existing(args.path, readonly=True, **database_options(args)) as db:
        coll = db.collection(args.collection)
        if args.count:
            print(coll.count_documents(flt, skip=args.skip, limit=args.limit))
            return 0
        cur = coll.find(flt, projection, skip=args.skip, limit=args.limit, sort=sort)
        if args.explain:
            print(extjson.dumps(cur.explain(), indent=2))
            return 0
        out = sys.stdout
        for doc in cur:
            out.write(extjson.dumps(doc) + "\n")
    return 0


def run_index(args):
    listing = not args.spec and not args.drop   # only reads: opens read-only, as collections and find do
    with open_existing(args.path, readonly=listing, **database_options(args)) as db:
        coll = db.collection(args.collection)
        if args.drop:
            coll.drop_index(args.drop)
            print(f"dropped {args.drop}")
            return 0
        if not args.spec:
            for ix in coll.list_indexes():
                print(json.dumps(ix))
            return 0
        fields = parse_fields(args.spec, "SPEC")
        with Progress(f"index {args.collection}", unit="docs") as bar:
            name = coll.create_index(fields, unique=args.unique, name=args.name,
                                     progress=lambda done, total: bar.set(done, total))
        print(name)
    return 0
