"""Checking that a collection's index entries are exactly what its documents give."""
from .catalog import read_catalog
from .codec import unpack
from .indexes import Entries
from .catalog import list_names


def verify_collection(reader, name):
    """Problems found in collection `name` as `reader` (a snapshot or transaction) sees it:
    a missing or extra index entry, an entry pointing at the wrong document, an undecodable
    document. An empty list means documents and indexes agree."""
    info = read_catalog(reader, name)
    if info is None:
        return []
    problems = []
    expected = {}
    for key, raw in reader.scan(prefix=info.doc_prefix):
        eid = key[len(info.doc_prefix):]
        try:
            doc = unpack(raw)
        except Exception as e:  # report, do not stop: the check's job is to list every problem
            problems.append(f"document {eid!r} cannot be decoded: {e}")
            continue
        if not isinstance(doc, dict) or "_id" not in doc:
            problems.append(f"document {eid!r} is not a document with an _id")
            continue
        try:
            entries = Entries(info, eid, doc)
        except Exception as e:
            problems.append(f"document {eid!r} cannot be indexed: {e}")
            continue
        for ix, full in entries.by_index:
            for k in full:
                if ix.unique and k in expected and expected[k] != eid:
                    problems.append(f"unique index {ix.name!r} has two documents for key {k!r}")
                expected[k] = eid
    for ix in info.indexes:
        for k, v in reader.scan(prefix=ix.prefix):
            want = expected.pop(k, None)
            if want is None:
                problems.append(f"index {ix.name!r} has an entry no document gives: {k!r}")
            elif want != v:
                problems.append(f"index {ix.name!r} entry {k!r} points at {v!r}, not {want!r}")
    for k in expected:
        problems.append(f"index entry {k!r} is missing")
    return problems


def verify(db_or_tx, name=None):
    """{collection: [problems]} for every collection (or just `name`) of a Database or Transaction."""
    if hasattr(db_or_tx, "snapshot"):
        with db_or_tx.snapshot() as snap:
            names = [name] if name else list_names(snap)
            return {n: verify_collection(snap, n) for n in names}
    names = [name] if name else list_names(db_or_tx)
    return {n: verify_collection(db_or_tx, n) for n in names}
