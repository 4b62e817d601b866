"""Update documents: {"$set": {...}, "$inc": {...}, ...} compiled once, applied to copies.

compile_update() checks the whole update before anything is read (unknown operators, bad
operands, two operators on the same or overlapping paths, positional operators) and raises
InvalidUpdate. apply() works on a fresh copy of the document and raises InvalidUpdate when an
operator cannot apply to what it finds ($inc on a string, a field inside a number, $push to a
non-array); the caller then writes nothing. Fields an update creates are added in
lexicographic order of their paths, as MongoDB 5.0+ does.
"""
import datetime

from .codec import check_value, datetime_from_ms, datetime_ms
from .errors import InvalidQuery, InvalidUpdate
from .keycodec import encode, values_equal
from .paths import MISSING
from .query import compile_condition, compile_filter, equality_test, is_operator_doc, normalize_operand
from .sorting import sort_key_function

OPERATORS = ("$set", "$unset", "$inc", "$mul", "$min", "$max", "$rename", "$setOnInsert", "$push", "$addToSet",
             "$pull", "$pullAll", "$pop", "$currentDate")
_NUMBER = (int, float)


def is_update_doc(update):
    return isinstance(update, dict) and bool(update) and all(type(k) is str and k[:1] == "$" for k in update)


def _check_path(path, op):
    if type(path) is not str or not path:
        raise InvalidUpdate(f"{op}: a field path must be a non-empty string, got {path!r}")
    parts = path.split(".")
    for part in parts:
        if not part:
            raise InvalidUpdate(f"{op}: field path {path!r} has an empty part")
        if part[0] == "$":
            raise InvalidUpdate(f"{op}: positional and $-prefixed path parts are not supported ({path!r})")
    return tuple(parts)


def compile_update(update):
    """[(op, parts, operand)] in application order, checked."""
    if not isinstance(update, dict) or not update:
        raise InvalidUpdate(f"an update must be a non-empty dict of $-operators, got {update!r}")
    steps = []
    seen = []
    for op, fields in update.items():
        if type(op) is not str or op[:1] != "$":
            raise InvalidUpdate(f"update operators start with '$' (use replace_one to replace a document), "
                                f"got {op!r}")
        if op not in OPERATORS:
            raise InvalidUpdate(f"unknown update operator {op!r}")
        if not isinstance(fields, dict):
            raise InvalidUpdate(f"{op} needs a dict of field: value, got {fields!r}")
        for path, operand in fields.items():
            parts = _check_path(path, op)
            _check_operand(op, path, operand)
            seen.append((parts, path))
            if op == "$rename":
                target = _check_path(operand, op)
                if target == parts:
                    raise InvalidUpdate(f"$rename: source and target are the same field {path!r}")
                seen.append((target, operand))
                if parts[0] == "_id" or target[0] == "_id":
                    raise InvalidUpdate("$rename cannot move _id")
            steps.append((op, parts, operand))
    by_path = sorted(seen)
    for (a, pa), (b, pb) in zip(by_path, by_path[1:]):
        if a == b[:len(a)]:
            raise InvalidUpdate(f"updating the path {pb!r} would create a conflict at {pa!r}")
    steps.sort(key=lambda s: s[1])
    return steps


def _check_operand(op, path, operand):
    if op in ("$inc", "$mul"):
        if type(operand) not in _NUMBER:
            raise InvalidUpdate(f"{op}: cannot apply with a non-numeric argument {path!r}: {operand!r}")
    elif op == "$rename":
        if type(operand) is not str:
            raise InvalidUpdate(f"$rename: the target of {path!r} must be a string, got {operand!r}")
    elif op == "$pop":
        if operand not in (1, -1) or type(operand) is bool:
            raise InvalidUpdate(f"$pop: {path!r} takes 1 or -1, got {operand!r}")
    elif op == "$pullAll":
        if type(operand) is not list:
            raise InvalidUpdate(f"$pullAll: {path!r} needs a list, got {operand!r}")
    elif op == "$currentDate":
        if not (type(operand) is bool or operand == {"$type": "date"}):
            raise InvalidUpdate(f"$currentDate: {path!r} takes true or {{'$type': 'date'}}, got {operand!r}")
    elif op in ("$push", "$addToSet"):
        if isinstance(operand, dict) and operand and next(iter(operand))[:1] == "$":
            allowed = {"$each", "$slice", "$position", "$sort"} if op == "$push" else {"$each"}
            bad = set(operand) - allowed
            if bad or "$each" not in operand:
                raise InvalidUpdate(f"{op}: {path!r} modifiers must be $each with {sorted(allowed - {'$each'})}, "
                                    f"got {sorted(operand)}")
            if type(operand["$each"]) is not list:
                raise InvalidUpdate(f"{op}: $each of {path!r} needs a list")
            for m in ("$slice", "$position"):
                if m in operand and type(operand[m]) is not int:
                    raise InvalidUpdate(f"$push: {m} of {path!r} needs an integer")
            if "$sort" in operand and operand["$sort"] not in (1, -1) and not isinstance(operand["$sort"], dict):
                raise InvalidUpdate(f"$push: $sort of {path!r} needs 1, -1 or a dict of fields")
            for v in operand["$each"]:
                check_value(v, path)
            return
    if op in ("$set", "$setOnInsert", "$min", "$max", "$push", "$addToSet") or op == "$pullAll":
        check_value(operand, path)


def now():
    return datetime_from_ms(datetime_ms(datetime.datetime.now(datetime.timezone.utc)))


def apply(doc, steps, inserting=False):
    """Apply compiled steps to `doc` in place (pass a copy)."""
    for op, parts, operand in steps:
        _APPLY[op](doc, parts, operand, inserting)
    return doc


def _describe(container):
    text = repr(container)
    return text if len(text) <= 60 else text[:57] + "..."


def _parent(doc, parts, create):
    """(container, last part) for a path, creating missing documents on the way if `create`.
    None when the path cannot exist and `create` is False."""
    node = doc
    for i, part in enumerate(parts[:-1]):
        if type(node) is list:
            if not part.isdigit():
                if create:
                    raise InvalidUpdate(f"cannot create field {part!r} in array {'.'.join(parts[:i])!r}")
                return None
            idx = int(part)
            if idx >= len(node):
                if not create:
                    return None
                node.extend([None] * (idx + 1 - len(node)))
            child = node[idx]
            if child is None and create:
                child = node[idx] = {}
        elif isinstance(node, dict):
            child = node.get(part, MISSING)
            if child is MISSING:
                if not create:
                    return None
                child = node[part] = {}
        else:
            return None
        if not isinstance(child, (dict, list)):
            if create:
                raise InvalidUpdate(f"cannot create field {parts[i + 1]!r} in element "
                                    f"{{{part}: {_describe(child)}}}")
            return None
        node = child
    return node, parts[-1]


def _get(container, key):
    if type(container) is list:
        if not key.isdigit():
            return MISSING
        idx = int(key)
        return container[idx] if idx < len(container) else MISSING
    return container.get(key, MISSING)


def _put(container, key, value, parts):
    if type(container) is list:
        if not key.isdigit():
            raise InvalidUpdate(f"cannot create field {key!r} in array {'.'.join(parts[:-1])!r}")
        idx = int(key)
        if idx >= len(container):
            container.extend([None] * (idx + 1 - len(container)))
        container[idx] = value
    else:
        container[key] = value


def _set(doc, parts, value, inserting):
    container, key = _parent(doc, parts, True)
    _put(container, key, _copy(value), parts)


def _set_on_insert(doc, parts, value, inserting):
    if inserting:
        _set(doc, parts, value, inserting)


def _unset(doc, parts, operand, inserting):
    found = _parent(doc, parts, False)
    if found is None:
        return
    container, key = found
    if type(container) is list:
        if key.isdigit() and int(key) < len(container):
            container[int(key)] = None
    elif key in container:
        del container[key]


def _current(doc, parts, op):
    found = _parent(doc, parts, False)
    if found is None:
        # the path may still be creatable: let _set decide (and raise if it is not)
        return MISSING
    return _get(*found)


def _number_op(op):
    def run(doc, parts, operand, inserting):
        cur = _current(doc, parts, op)
        if cur is MISSING:
            _set(doc, parts, operand if op == "$inc" else operand * 0, inserting)
            return
        if type(cur) not in _NUMBER:
            raise InvalidUpdate(f"cannot apply {op} to a value of non-numeric type {type(cur).__name__} at "
                                f"{'.'.join(parts)!r}")
        _set(doc, parts, cur + operand if op == "$inc" else cur * operand, inserting)
    return run


def _minmax(op):
    def run(doc, parts, operand, inserting):
        cur = _current(doc, parts, op)
        if cur is MISSING:
            _set(doc, parts, operand, inserting)
            return
        a, b = encode(operand), encode(cur)
        if (op == "$min" and a < b) or (op == "$max" and a > b):
            _set(doc, parts, operand, inserting)
    return run


def _rename(doc, parts, target, inserting):
    found = _parent(doc, parts, False)
    if found is None:
        return
    container, key = found
    if type(container) is list:
        raise InvalidUpdate(f"$rename: the source field {'.'.join(parts)!r} cannot be inside an array")
    if key not in container:
        return
    value = container.pop(key)
    target_parts = tuple(target.split("."))
    tcontainer, tkey = _parent(doc, target_parts, True)
    if type(tcontainer) is list:
        raise InvalidUpdate(f"$rename: the target field {target!r} cannot be inside an array")
    tcontainer[tkey] = value


def _array_at(doc, parts, op):
    cur = _current(doc, parts, op)
    if cur is MISSING:
        return None
    if type(cur) is not list:
        raise InvalidUpdate(f"{op}: the field {'.'.join(parts)!r} must be an array but is of type "
                            f"{type(cur).__name__}")
    return cur


def _push(doc, parts, operand, inserting):
    if isinstance(operand, dict) and "$each" in operand and next(iter(operand))[:1] == "$":
        items = [_copy(v) for v in operand["$each"]]
        position = operand.get("$position")
        slice_ = operand.get("$slice")
        sort = operand.get("$sort")
    else:
        items, position, slice_, sort = [_copy(operand)], None, None, None
    arr = _array_at(doc, parts, "$push")
    if arr is None:
        arr = []
        _set(doc, parts, arr, inserting)
        arr = _current(doc, parts, "$push")
    if position is None:
        arr.extend(items)
    else:
        if position < 0:
            position = max(0, len(arr) + position)
        arr[position:position] = items
    if sort is not None:
        if isinstance(sort, dict):
            keyf = sort_key_function(list(sort.items()))
            arr.sort(key=lambda v: keyf(v if isinstance(v, dict) else {}))
        else:
            arr.sort(key=encode, reverse=sort == -1)
    if slice_ is not None:
        if slice_ >= 0:
            del arr[slice_:]
        else:
            del arr[:max(0, len(arr) + slice_)]


def _add_to_set(doc, parts, operand, inserting):
    if isinstance(operand, dict) and "$each" in operand and next(iter(operand))[:1] == "$":
        items = operand["$each"]
    else:
        items = [operand]
    arr = _array_at(doc, parts, "$addToSet")
    if arr is None:
        _set(doc, parts, [], inserting)
        arr = _current(doc, parts, "$addToSet")
    for item in items:
        if not any(values_equal(item, e) for e in arr):
            arr.append(_copy(item))


def _pull(doc, parts, operand, inserting):
    arr = _array_at(doc, parts, "$pull")
    if arr is None:
        return
    try:
        if is_operator_doc(operand):
            cond = compile_condition(("v",), operand)
            test = lambda e: cond({"v": e})  # noqa: E731
        elif isinstance(operand, dict):
            flt = compile_filter(operand)
            test = lambda e: isinstance(e, dict) and flt(e)  # noqa: E731
        else:
            test = equality_test(normalize_operand(operand, ".".join(parts)))
    except InvalidQuery as e:
        raise InvalidUpdate(f"$pull: {e}") from None
    arr[:] = [e for e in arr if not test(e)]


def _pull_all(doc, parts, operand, inserting):
    arr = _array_at(doc, parts, "$pullAll")
    if arr is None:
        return
    arr[:] = [e for e in arr if not any(values_equal(e, v) for v in operand)]


def _pop(doc, parts, operand, inserting):
    arr = _array_at(doc, parts, "$pop")
    if arr:
        if operand == 1:
            arr.pop()
        else:
            arr.pop(0)


def _current_date(doc, parts, operand, inserting):
    _set(doc, parts, now(), inserting)


def _copy(value):
    t = type(value)
    if t is dict or isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if t is list:
        return [_copy(v) for v in value]
    if t is datetime.datetime:
        return datetime_from_ms(datetime_ms(value))
    return value


_APPLY = {
    "$set": _set, "$unset": _unset, "$inc": _number_op("$inc"), "$mul": _number_op("$mul"),
    "$min": _minmax("$min"), "$max": _minmax("$max"), "$rename": _rename, "$setOnInsert": _set_on_insert,
    "$push": _push, "$addToSet": _add_to_set, "$pull": _pull, "$pullAll": _pull_all, "$pop": _pop,
    "$currentDate": _current_date,
}
