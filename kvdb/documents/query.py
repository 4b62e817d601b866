"""Filters: a MongoDB query document compiled once into a predicate over documents.

compile_filter({"age": {"$gte": 30}, "tags": "math"}) returns match(doc) -> bool. Semantics are
MongoDB's (docs/documents.md): a condition on a path holds if it holds for any value the path
reaches (paths.matched: array elements and the array itself); $ne, $nin and $not are the
negation of the whole condition, so they also match documents without the field; comparisons
only match values of the operand's type bracket; {f: None} matches null and missing.
"""
import datetime
import math
import re

from . import keycodec
from .codec import datetime_ms, datetime_from_ms
from .errors import InvalidQuery
from .keycodec import encode, rank, values_equal
from .objectid import ObjectId
from .paths import MISSING, leaves, matched, split_path

RE_TYPE = type(re.compile(""))
_NoneType = type(None)
_NUMBERS = (int, float)

COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
FIELD_OPERATORS = frozenset(("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not",
                             "$regex", "$options", "$elemMatch", "$size", "$all", "$type", "$mod"))

# $type names and numbers -> predicate on one value
_TYPE_TESTS = {
    "double": lambda v: type(v) is float,
    "string": lambda v: type(v) is str,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: type(v) is list,
    "binData": lambda v: type(v) is bytes,
    "objectId": lambda v: type(v) is ObjectId,
    "bool": lambda v: type(v) is bool,
    "date": lambda v: type(v) is datetime.datetime,
    "null": lambda v: v is None,
    "int": lambda v: type(v) is int and -(1 << 31) <= v < (1 << 31),
    "long": lambda v: type(v) is int and not -(1 << 31) <= v < (1 << 31),
    "number": lambda v: type(v) is int or type(v) is float,
}
_TYPE_NUMBERS = {1: "double", 2: "string", 3: "object", 4: "array", 5: "binData", 7: "objectId", 8: "bool",
                 9: "date", 10: "null", 16: "int", 18: "long"}


def is_operator_doc(cond):
    """True if `cond` is an operator expression ({"$gt": 1}): a dict whose first key starts with $."""
    if type(cond) is not dict or not cond:
        return False
    first = next(iter(cond))
    return type(first) is str and first[:1] == "$"


def normalize_operand(value, where):
    """A query operand as stored documents hold it: datetimes to UTC milliseconds, tuples to
    lists; types documents cannot hold raise InvalidQuery."""
    t = type(value)
    if t in (str, int, float, bool, _NoneType, bytes, ObjectId):
        return value
    if t is datetime.datetime:
        return datetime_from_ms(datetime_ms(value))
    if t is list or t is tuple:
        return [normalize_operand(v, where) for v in value]
    if isinstance(value, dict):
        return {k: normalize_operand(v, where) for k, v in value.items()}
    if t is RE_TYPE:
        return value
    raise InvalidQuery(f"{where}: cannot compare with a value of type {t.__name__}")


def compile_filter(flt):
    """match(doc) -> bool for a filter document (None or {} matches everything)."""
    if flt is None:
        return _always
    if not isinstance(flt, dict):
        raise InvalidQuery(f"a filter must be a dict, got {type(flt).__name__}")
    preds = []
    for key, cond in flt.items():
        if type(key) is not str:
            raise InvalidQuery(f"filter keys must be strings, got {key!r}")
        if key[:1] == "$":
            preds.append(_compile_logical(key, cond))
        else:
            preds.append(compile_condition(split_path(key), cond))
    if not preds:
        return _always
    if len(preds) == 1:
        return preds[0]
    return lambda doc: all(p(doc) for p in preds)


def _always(doc):
    return True


def _compile_logical(key, cond):
    if key == "$comment":
        return _always
    if key not in ("$and", "$or", "$nor"):
        raise InvalidQuery(f"unknown top-level operator {key!r} (supported: $and, $or, $nor, $comment)")
    if not isinstance(cond, (list, tuple)) or not cond:
        raise InvalidQuery(f"{key} needs a non-empty list of filters")
    subs = [compile_filter(c) if isinstance(c, dict) else _bad_clause(key, c) for c in cond]
    if key == "$and":
        return lambda doc: all(p(doc) for p in subs)
    if key == "$or":
        return lambda doc: any(p(doc) for p in subs)
    return lambda doc: not any(p(doc) for p in subs)


def _bad_clause(key, clause):
    raise InvalidQuery(f"each clause of {key} must be a filter dict, got {clause!r}")


def compile_condition(parts, cond):
    """match(doc) for one path's condition: a value (equality), a regex, or an operator dict."""
    where = ".".join(parts)
    if is_operator_doc(cond):
        preds = []
        options = cond.get("$options")
        for op, operand in cond.items():
            if op == "$options":
                if "$regex" not in cond:
                    raise InvalidQuery(f"{where}: $options needs a $regex")
                continue
            preds.append(_compile_operator(parts, op, operand, options, where))
        if len(preds) == 1:
            return preds[0]
        return lambda doc: all(p(doc) for p in preds)
    if type(cond) is RE_TYPE:
        return _any_value(parts, _regex_test(cond))
    return _any_value(parts, equality_test(normalize_operand(cond, where)))


def _any_value(parts, test):
    """match(doc): `test` holds for some value the path reaches."""
    if len(parts) == 1:
        name = parts[0]

        def match_top(doc):
            value = doc.get(name, MISSING)
            if type(value) is list:
                for item in value:
                    if test(item):
                        return True
            return test(value)
        return match_top
    return lambda doc: any(test(v) for v in matched(doc, parts))


def _compile_operator(parts, op, operand, options, where):
    if op == "$eq":
        if type(operand) is RE_TYPE:
            return _any_value(parts, lambda v, o=operand: type(v) is RE_TYPE and v.pattern == o.pattern)
        return _any_value(parts, equality_test(normalize_operand(operand, where)))
    if op == "$ne":
        positive = _compile_operator(parts, "$eq", operand, None, where)
        return lambda doc: not positive(doc)
    if op in COMPARISONS:
        return _any_value(parts, comparison_test(op, normalize_operand(operand, where), where))
    if op == "$in":
        return _any_value(parts, in_test(operand, where))
    if op == "$nin":
        positive = _any_value(parts, in_test(operand, where))
        return lambda doc: not positive(doc)
    if op == "$exists":
        want = bool(operand)
        return lambda doc: any(v is not MISSING for v in leaves(doc, parts)) == want
    if op == "$not":
        if type(operand) is RE_TYPE:
            inner = _any_value(parts, _regex_test(operand))
        elif is_operator_doc(operand):
            inner = compile_condition(parts, operand)
        else:
            raise InvalidQuery(f"{where}: $not needs a regex or an operator dict, got {operand!r}")
        return lambda doc: not inner(doc)
    if op == "$regex":
        return _any_value(parts, _regex_test(_make_regex(operand, options, where)))
    if op == "$elemMatch":
        test = elem_match_test(operand, where)
        return lambda doc: any(type(v) is list and any(test(e) for e in v) for v in leaves(doc, parts))
    if op == "$size":
        if type(operand) is float and operand.is_integer():
            operand = int(operand)
        if type(operand) is not int or operand < 0:
            raise InvalidQuery(f"{where}: $size needs a non-negative integer, got {operand!r}")
        return lambda doc: any(type(v) is list and len(v) == operand for v in leaves(doc, parts))
    if op == "$all":
        return _compile_all(parts, operand, where)
    if op == "$type":
        return _any_value(parts, type_test(operand, where))
    if op == "$mod":
        return _any_value(parts, mod_test(operand, where))
    raise InvalidQuery(f"{where}: unknown operator {op!r}")


def equality_test(value):
    """test(v) -> bool: v equals `value` the MongoDB way (None also matches MISSING)."""
    t = type(value)
    if value is None:
        return lambda v: v is None or v is MISSING
    if t is str or t is bytes or t is ObjectId:
        return lambda v: type(v) is t and v == value
    if t is bool:
        return lambda v: type(v) is bool and v == value
    if t is int or t is float:
        if value != value:
            return lambda v: type(v) is float and v != v
        return lambda v: (type(v) is int or type(v) is float) and v == value
    if t is datetime.datetime:
        return lambda v: type(v) is datetime.datetime and v == value
    if t is RE_TYPE:
        return _regex_test(value)
    key = encode(value)
    r = rank(value)
    return lambda v: rank(v) == r and encode(v) == key


def comparison_test(op, value, where):
    if value is None:
        if op in ("$gte", "$lte"):
            return equality_test(None)
        return lambda v: False
    if type(value) is RE_TYPE:
        raise InvalidQuery(f"{where}: {op} cannot take a regex")
    t = type(value)
    if t is int or t is float:
        if value != value:
            if op in ("$gte", "$lte"):
                return lambda v: type(v) is float and v != v
            return lambda v: False
        if op == "$gt":
            return lambda v: (type(v) is int or type(v) is float) and v > value
        if op == "$gte":
            return lambda v: (type(v) is int or type(v) is float) and v >= value
        if op == "$lt":
            return lambda v: (type(v) is int or type(v) is float) and v < value
        return lambda v: (type(v) is int or type(v) is float) and v <= value
    if t is str:
        if op == "$gt":
            return lambda v: type(v) is str and v > value
        if op == "$gte":
            return lambda v: type(v) is str and v >= value
        if op == "$lt":
            return lambda v: type(v) is str and v < value
        return lambda v: type(v) is str and v <= value
    key = encode(value)
    r = rank(value)
    if op == "$gt":
        return lambda v: rank(v) == r and encode(v) > key
    if op == "$gte":
        return lambda v: rank(v) == r and encode(v) >= key
    if op == "$lt":
        return lambda v: rank(v) == r and encode(v) < key
    return lambda v: rank(v) == r and encode(v) <= key


def in_test(operand, where):
    if not isinstance(operand, (list, tuple)):
        raise InvalidQuery(f"{where}: $in/$nin need a list, got {operand!r}")
    keys = set()
    regexes = []
    has_null = False
    for item in operand:
        if type(item) is RE_TYPE:
            regexes.append(_regex_test(item))
            continue
        if is_operator_doc(item):
            raise InvalidQuery(f"{where}: $in/$nin cannot hold operator expressions ({item!r})")
        item = normalize_operand(item, where)
        if item is None:
            has_null = True
        keys.add(encode(item))

    def test(v):
        if v is MISSING:
            return has_null
        try:
            if encode(v) in keys:
                return True
        except TypeError:
            return False
        return any(r(v) for r in regexes)
    return test


def _make_regex(pattern, options, where):
    flags = 0
    if options is not None:
        if type(options) is not str:
            raise InvalidQuery(f"{where}: $options must be a string")
        for ch in options:
            if ch == "i":
                flags |= re.IGNORECASE
            elif ch == "m":
                flags |= re.MULTILINE
            elif ch == "s":
                flags |= re.DOTALL
            elif ch == "x":
                flags |= re.VERBOSE
            elif ch != "u":
                raise InvalidQuery(f"{where}: invalid regex option {ch!r} (supported: i m s x)")
    if type(pattern) is RE_TYPE:
        return re.compile(pattern.pattern, pattern.flags | flags) if flags else pattern
    if type(pattern) is not str:
        raise InvalidQuery(f"{where}: $regex needs a string or a compiled pattern, got {pattern!r}")
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise InvalidQuery(f"{where}: invalid regex {pattern!r}: {e}") from None


def _regex_test(regex):
    search = regex.search
    return lambda v: type(v) is str and search(v) is not None


def elem_match_test(operand, where):
    """test(element) for $elemMatch: operators on the element itself, or a filter on a document."""
    if not isinstance(operand, dict):
        raise InvalidQuery(f"{where}: $elemMatch needs a dict, got {operand!r}")
    if is_operator_doc(operand) and all(k not in ("$and", "$or", "$nor") for k in operand):
        inner = compile_condition(("v",), operand)
        return lambda e: inner({"v": e})
    inner = compile_filter(operand)
    return lambda e: isinstance(e, dict) and inner(e)


def _compile_all(parts, operand, where):
    if not isinstance(operand, (list, tuple)):
        raise InvalidQuery(f"{where}: $all needs a list, got {operand!r}")
    if not operand:
        return lambda doc: False
    preds = []
    for item in operand:
        if is_operator_doc(item):
            if set(item) != {"$elemMatch"}:
                raise InvalidQuery(f"{where}: $all may only hold values or {{$elemMatch: ...}}")
            test = elem_match_test(item["$elemMatch"], where)
            preds.append(lambda doc, t=test: any(type(v) is list and any(t(e) for e in v)
                                                   for v in leaves(doc, parts)))
        elif type(item) is RE_TYPE:
            preds.append(_any_value(parts, _regex_test(item)))
        else:
            preds.append(_any_value(parts, equality_test(normalize_operand(item, where))))
    return lambda doc: all(p(doc) for p in preds)


def type_test(operand, where):
    names = operand if isinstance(operand, (list, tuple)) else [operand]
    tests = []
    for name in names:
        if type(name) is float and name.is_integer():
            name = int(name)
        if type(name) is int:
            if name not in _TYPE_NUMBERS:
                raise InvalidQuery(f"{where}: unsupported $type {name}")
            name = _TYPE_NUMBERS[name]
        if name not in _TYPE_TESTS:
            raise InvalidQuery(f"{where}: unknown $type {name!r} (known: {', '.join(sorted(_TYPE_TESTS))})")
        tests.append(_TYPE_TESTS[name])
    return lambda v: v is not MISSING and any(t(v) for t in tests)


def mod_test(operand, where):
    if not isinstance(operand, (list, tuple)) or len(operand) != 2:
        raise InvalidQuery(f"{where}: $mod needs [divisor, remainder]")
    divisor, remainder = operand
    if type(divisor) not in _NUMBERS or type(remainder) not in _NUMBERS:
        raise InvalidQuery(f"{where}: $mod needs numbers, got {operand!r}")
    if not (math.isfinite(divisor) and math.isfinite(remainder)):
        raise InvalidQuery(f"{where}: $mod needs finite numbers")
    divisor, remainder = int(divisor), int(remainder)
    if divisor == 0:
        raise InvalidQuery(f"{where}: $mod divisor cannot be 0")

    def test(v):
        if type(v) is float:
            if not math.isfinite(v):
                return False
            v = int(v)
        elif type(v) is not int:
            return False
        r = abs(v) % abs(divisor)          # C's remainder: the sign follows the dividend
        return (r if v >= 0 else -r) == remainder
    return test


__all__ = ["compile_filter", "compile_condition", "is_operator_doc", "normalize_operand", "equality_test",
           "comparison_test", "in_test", "values_equal", "keycodec"]
