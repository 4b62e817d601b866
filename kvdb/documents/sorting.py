"""Sort specifications and sort keys in MongoDB's order.

A document's sort key for a field is the smallest of its index keys for that field when
ascending and the largest when descending (so an array sorts by its smallest / largest element,
an empty array below null, a missing field as null); the whole key is the fields' encodings
concatenated, descending ones inverted, compared as bytes.
"""
from .errors import InvalidQuery
from .indexes import field_keys
from .paths import split_path


def parse_sort(key_or_list, direction=None):
    """[(path, 1|-1)] from pymongo's forms: sort("a"), sort("a", -1), sort([("a", 1), ("b", -1)])
    or a dict {"a": 1}."""
    if key_or_list is None:
        return None
    if isinstance(key_or_list, str):
        spec = [(key_or_list, 1 if direction is None else direction)]
    elif isinstance(key_or_list, dict):
        spec = list(key_or_list.items())
    elif isinstance(key_or_list, (list, tuple)):
        spec = []
        for item in key_or_list:
            if isinstance(item, str):
                spec.append((item, 1))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                spec.append((item[0], item[1]))
            else:
                raise InvalidQuery(f"a sort key is a field name or a (field, 1|-1) pair, got {item!r}")
    else:
        raise InvalidQuery(f"a sort is a field name, a list of (field, direction) pairs or a dict, "
                           f"got {key_or_list!r}")
    out = []
    for path, d in spec:
        split_path(path, "sort field")
        if type(d) is float and d in (1.0, -1.0):
            d = int(d)
        if d not in (1, -1) or type(d) is bool:
            raise InvalidQuery(f"sort direction of {path!r} must be 1 or -1, got {d!r}")
        out.append((path, d))
    if not out:
        return None
    return out


def sort_key_function(spec):
    """key(doc) -> bytes for [(path, direction)]."""
    fields = [(split_path(p), d) for p, d in spec]
    if len(fields) == 1:
        parts, d = fields[0]
        if d == 1:
            return lambda doc: min(field_keys(doc, parts, 1))
        return lambda doc: min(field_keys(doc, parts, -1))

    def key(doc):
        return b"".join(min(field_keys(doc, parts, d)) for parts, d in fields)
    return key
