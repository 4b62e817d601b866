"""Dot paths into documents: the values a path reaches, as MongoDB's matcher and index keys see them.

A path "a.b.c" is looked up field by field. Where a field holds an array and the path goes on,
the rest of the path is looked up in every element that is a document (elements that are not
documents are skipped), or, when the next part is a number, in the element at that position.
Where a field holds a value that is not a document and the path goes on, the path is missing.

Three views of what a path reaches:
    matched(doc, parts)  values a query predicate is tried on: at the end of the path an array
                         gives each element and then the array itself; MISSING marks a miss
    leaves(doc, parts)   the values at the end of the path, arrays not expanded ($size,
                         $elemMatch, $exists)
    keys(doc, parts)     index and sort keys: arrays at the end expanded to their elements (an
                         empty array gives UNDEFINED), a miss gives None (null)
"""
from .errors import InvalidQuery
from .keycodec import UNDEFINED


class _Missing:
    __slots__ = ()

    def __repr__(self):
        return "MISSING"


MISSING = _Missing()

MODE_MATCH, MODE_LEAF, MODE_KEYS = 0, 1, 2


def _at(value, parts, i, out, mode):
    """Append what `value`, found at parts[i], contributes for parts[i:] to out."""
    last = len(parts) - 1
    if i == last:
        if type(value) is list:
            if mode == MODE_MATCH:
                out.extend(value)
                out.append(value)
            elif mode == MODE_KEYS:
                if value:
                    out.extend(value)
                else:
                    out.append(UNDEFINED)
            else:
                out.append(value)
        elif value is MISSING and mode == MODE_KEYS:
            out.append(None)
        else:
            out.append(value)
        return
    nxt = parts[i + 1]
    if type(value) is list:
        before = len(out)
        if nxt.isdigit():
            n = int(nxt)
            if n < len(value):
                _at(value[n], parts, i + 1, out, mode)
        else:
            for element in value:
                if isinstance(element, dict):
                    _at(element.get(nxt, MISSING), parts, i + 1, out, mode)
        if mode == MODE_KEYS and len(out) == before:
            out.append(None)
    elif isinstance(value, dict):
        _at(value.get(nxt, MISSING), parts, i + 1, out, mode)
    else:
        out.append(None if mode == MODE_KEYS else MISSING)


def matched(doc, parts):
    value = doc.get(parts[0], MISSING)
    if len(parts) == 1 and type(value) is not list:
        return (value,)
    out = []
    _at(value, parts, 0, out, MODE_MATCH)
    return out


def leaves(doc, parts):
    value = doc.get(parts[0], MISSING)
    if len(parts) == 1:
        return (value,)
    out = []
    _at(value, parts, 0, out, MODE_LEAF)
    return out


def keys(doc, parts):
    value = doc.get(parts[0], MISSING)
    if len(parts) == 1 and type(value) is not list:
        return (None if value is MISSING else value,)
    out = []
    _at(value, parts, 0, out, MODE_KEYS)
    return out


def split_path(path, what="field path"):
    """The parts of a dot path, checked (no empty parts)."""
    if type(path) is not str or not path:
        raise InvalidQuery(f"a {what} must be a non-empty string, got {path!r}")
    parts = tuple(path.split("."))
    if "" in parts:
        raise InvalidQuery(f"{what} {path!r} has an empty part")
    return parts
