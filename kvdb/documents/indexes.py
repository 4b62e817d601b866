"""Index keys of a document and the writes that keep index entries equal to the documents.

An index key is the concatenation of its fields' value encodings (keycodec.encode, inverted for
a descending field). A field that reaches an array gives one key per element (multikey); two
array fields in one compound index ("parallel arrays") are refused, as MongoDB does.
Entries are written in the same transaction as their document.
"""
from kvdb._core.database import MAX_KEY_SIZE

from . import paths
from .errors import DuplicateKeyError, InvalidDocument, InvalidQuery
from .keycodec import encode, invert
from .keydecode import decode_fields


def parse_spec(keys, direction=None):
    """[(path, 1|-1), ...] from create_index's argument: "age", [("a", 1), ("b", -1)], or {"a": 1}."""
    if isinstance(keys, str):
        fields = [(keys, 1 if direction is None else direction)]
    elif isinstance(keys, dict):
        fields = list(keys.items())
    elif isinstance(keys, (list, tuple)):
        fields = []
        for item in keys:
            if isinstance(item, str):
                fields.append((item, 1))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                fields.append((item[0], item[1]))
            else:
                raise InvalidQuery(f"an index key is a field name or a (field, 1|-1) pair, got {item!r}")
    else:
        raise InvalidQuery(f"an index spec is a field name, a list of (field, direction) pairs or a dict, "
                           f"got {keys!r}")
    if not fields:
        raise InvalidQuery("an index needs at least one field")
    out = []
    for path, d in fields:
        paths.split_path(path, "index field")
        if type(d) is float and d in (1.0, -1.0):
            d = int(d)
        if d not in (1, -1) or type(d) is bool:
            raise InvalidQuery(f"index direction of {path!r} must be 1 or -1, got {d!r}")
        out.append((path, d))
    if len({p for p, _ in out}) != len(out):
        raise InvalidQuery(f"an index names a field twice: {out!r}")
    return out


def default_name(fields):
    return "_".join(f"{p}_{d}" for p, d in fields)


def field_keys(doc, parts, direction):
    """The encoded keys one index field gives for `doc` (deduplicated, in first-seen order)."""
    values = paths.keys(doc, parts)
    if len(values) == 1:
        k = encode(values[0])
        return [k if direction == 1 else invert(k)]
    seen = {}
    for v in values:
        k = encode(v)
        seen[k if direction == 1 else invert(k)] = None
    return list(seen)


def _reaches_array(doc, parts):
    """True if following `parts` from `doc` meets an array."""
    value = doc
    for part in parts:
        if not isinstance(value, dict):
            return False
        value = value.get(part)
        if type(value) is list:
            return True
    return False


def index_keys(doc, ix):
    """The index keys (without the index prefix) of `doc` in index `ix`, and whether it is multikey."""
    if len(ix.paths) == 1:
        ks = field_keys(doc, ix.paths[0], ix.directions[0])
        return ks, len(ks) > 1
    per_field = [field_keys(doc, p, d) for p, d in zip(ix.paths, ix.directions)]
    multi = [i for i, ks in enumerate(per_field) if len(ks) > 1]
    arrays = [i for i, p in enumerate(ix.paths) if _reaches_array(doc, p)]
    if len(arrays) > 1:
        names = ", ".join(ix.fields[i][0] for i in arrays)
        raise InvalidDocument(f"cannot index parallel arrays [{names}] in index {ix.name!r}")
    if not multi:
        return [b"".join(ks[0] for ks in per_field)], False
    m = multi[0]
    head = b"".join(ks[0] for ks in per_field[:m])
    tail = b"".join(ks[0] for ks in per_field[m + 1:])
    return [head + k + tail for k in per_field[m]], True


class Entries:
    """The index entries of one document version: {index: [full keys]}, computed once."""

    __slots__ = ("by_index", "new_multikey")

    def __init__(self, info, eid, doc):
        self.by_index = []          # [(IndexInfo, [full key bytes])]
        self.new_multikey = []      # indexes this document makes multikey for the first time
        for ix in info.indexes:
            single = ix.single
            if single is not None:
                v = doc.get(single)
                if type(v) is not list:
                    ks, multi = [encode(v)], False
                else:
                    ks, multi = index_keys(doc, ix)
            else:
                ks, multi = index_keys(doc, ix)
            if multi and not ix.multikey:
                self.new_multikey.append(ix)
            if ix.unique:
                full = [ix.prefix + k for k in ks]
            else:
                full = [ix.prefix + k + eid for k in ks]
            for k in full:
                if len(k) > MAX_KEY_SIZE:
                    raise InvalidDocument(f"index key of {ix.name!r} is {len(k)} bytes; the limit is {MAX_KEY_SIZE}")
            self.by_index.append((ix, full))


def check_unique(tx, entries, eid, skip=None):
    """DuplicateKeyError if a unique index already maps one of the keys to another document.
    `skip`: keys of the document's previous version (its own entries)."""
    for ix, full in entries.by_index:
        if not ix.unique:
            continue
        for k in full:
            if skip is not None and k in skip:
                continue
            other = tx.get(k)
            if other is not None and other != eid:
                raise DuplicateKeyError(f"duplicate key in unique index {ix.name!r}: {describe_key(ix, k)}",
                                        index_name=ix.name, key=key_values(ix, k))


def put_entries(tx, entries, eid, skip=None):
    for _, full in entries.by_index:
        for k in full:
            if skip is None or k not in skip:
                tx.put(k, eid)


def delete_entries(tx, entries, keep=None):
    for _, full in entries.by_index:
        for k in full:
            if keep is None or k not in keep:
                tx.delete(k)


def all_keys(entries):
    return {k for _, full in entries.by_index for k in full}


def key_values(ix, full_key):
    """{field: value} of a unique index key (decoded for error messages)."""
    try:
        values = decode_fields(full_key[len(ix.prefix):], ix.directions)
    except Exception:  # a message helper: never hide the duplicate-key error behind a decode bug
        return {p: "?" for p, _ in ix.fields}
    return {p: v for (p, _), v in zip(ix.fields, values)}


def describe_key(ix, full_key):
    return "{" + ", ".join(f"{p}: {v!r}" for p, v in key_values(ix, full_key).items()) + "}"
