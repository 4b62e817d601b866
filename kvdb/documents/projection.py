"""Projections: which fields find() returns ({"name": 1, "_id": 0}, {"secret": 0}, ["a", "b.c"]).

Inclusion and exclusion cannot be mixed, except that _id may be excluded from an inclusion (it
is included unless excluded). Dot paths reach into embedded documents and into the documents
inside arrays; included fields keep the document's order. Projection operators ($slice,
$elemMatch, positional $) are not supported and raise InvalidQuery.
"""
from .errors import InvalidQuery
from .paths import split_path


def compile_projection(projection):
    """project(doc) -> new doc, or None when everything is returned."""
    if projection is None:
        return None
    if isinstance(projection, (list, tuple)):
        projection = {p: 1 for p in projection}
    if not isinstance(projection, dict):
        raise InvalidQuery(f"a projection must be a dict or a list of field names, got {projection!r}")
    include_id = True
    tree = {}
    mode = None
    for path, flag in projection.items():
        if isinstance(flag, dict) or (type(path) is str and "$" in path):
            raise InvalidQuery(f"projection operators are not supported ({path!r}: {flag!r})")
        if type(flag) not in (int, float, bool):
            raise InvalidQuery(f"projection values must be 0/1 or True/False, got {path!r}: {flag!r}")
        parts = split_path(path, "projection field")
        if path == "_id":
            include_id = bool(flag)
            if flag and mode is None:
                mode = "include-id"          # {"_id": 1} alone: only the _id
            continue
        this = "include" if flag else "exclude"
        if mode is None or mode == "include-id":
            mode = this
        elif mode != this:
            raise InvalidQuery("a projection cannot mix inclusion and exclusion (except for _id)")
        node = tree
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                if part in node:
                    raise InvalidQuery(f"projection path collision at {path!r}")
                node[part] = True
            else:
                child = node.setdefault(part, {})
                if child is True:
                    raise InvalidQuery(f"projection path collision at {path!r}")
                node = child
    if mode in ("include", "include-id"):
        def project(doc):
            out = {}
            if include_id and "_id" in doc:
                out["_id"] = doc["_id"]
            out.update(_include(doc, tree))
            return out
        return project
    if mode is None and include_id:
        return None
    if not include_id:
        tree["_id"] = True

    def project_out(doc):
        return _exclude(doc, tree)
    return project_out


def _include(doc, tree):
    out = {}
    for name, value in doc.items():
        sub = tree.get(name)
        if sub is None:
            continue
        if sub is True:
            out[name] = value
        elif isinstance(value, dict):
            out[name] = _include(value, sub)
        elif type(value) is list:
            out[name] = _include_list(value, sub)
    return out


def _include_list(items, sub):
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(_include(item, sub))
        elif type(item) is list:
            out.append(_include_list(item, sub))
    return out


def _exclude(doc, tree):
    out = {}
    for name, value in doc.items():
        sub = tree.get(name)
        if sub is True:
            continue
        if sub is None:
            out[name] = value
        elif isinstance(value, dict):
            out[name] = _exclude(value, sub)
        elif type(value) is list:
            out[name] = [_exclude(v, sub) if isinstance(v, dict) else v for v in value]
        else:
            out[name] = value
    return out
