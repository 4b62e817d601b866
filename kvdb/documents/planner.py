"""The query planner: which index (if any) a find uses, and the key ranges it scans.

Predicates an index can serve are read from the top level of the filter (and of a top-level
$and): equality with a value, $eq, $in of values, and $gt/$gte/$lt/$lte. Null, arrays, regexes
and negations are left to the filter. An index serves its leading fields that have equalities,
then at most one range field; the best index serves the most fields (equalities count double,
a unique index fully served by equalities wins outright). Without a usable predicate, an index
whose fields (after the equality prefix) are the requested sort gives the order, when it is not
multikey. Otherwise the plan is a collection scan.

Every plan yields a superset of the matching documents: the executor applies the whole filter
to each document it fetches, so a plan is only ever a way to look at fewer documents.
"""
from . import keycodec
from .keycodec import encode, invert, rank
from .codec import pack_value
from .query import RE_TYPE, is_operator_doc, normalize_operand

MAX_POINTS = 1000           # cartesian product of $in values a plan scans, at most
PLAN_COLLSCAN = "COLLSCAN"
PLAN_IDHACK = "IDHACK"      # point reads of documents by _id
PLAN_IXSCAN = "IXSCAN"

_BRACKET_TAGS = {
    keycodec.RANK_NUMBER: keycodec.TAG_NUMBER, keycodec.RANK_STRING: keycodec.TAG_STRING,
    keycodec.RANK_OBJECT: keycodec.TAG_OBJECT, keycodec.RANK_BYTES: keycodec.TAG_BYTES,
    keycodec.RANK_OBJECTID: keycodec.TAG_OBJECTID, keycodec.RANK_BOOL: keycodec.TAG_BOOL,
    keycodec.RANK_DATETIME: keycodec.TAG_DATETIME,
}


class PrimaryIndex:
    """The _id "index": the documents themselves, keyed by their encoded _id."""

    name = "_id_"
    fields = [("_id", 1)]
    paths = [("_id",)]
    directions = [1]
    unique = True
    multikey = False
    ready = True
    primary = True

    def __init__(self, info):
        self.prefix = info.doc_prefix


class Range:
    """Bounds on one field's values: lo/hi are (value, inclusive) or None for the bracket's end."""

    __slots__ = ("tag", "lo", "hi", "complete")

    def __init__(self, tag, lo=None, hi=None):
        self.tag = tag
        self.lo = lo
        self.hi = hi
        self.complete = True    # every range predicate of the field is inside these bounds

    def scan_bounds(self, direction):
        """(start, end) bytes of this range for a field stored in `direction`."""
        tag = self.tag
        if direction == 1:
            if self.lo is None:
                start = bytes([tag])
            else:
                k = encode(self.lo[0])
                start = k if self.lo[1] else k + b"\xff"
            if self.hi is None:
                end = bytes([tag + 1])
            else:
                k = encode(self.hi[0])
                end = k + b"\xff" if self.hi[1] else k
            return start, end
        if self.hi is None:
            start = bytes([0xFF - tag])
        else:
            k = invert(encode(self.hi[0]))
            start = k if self.hi[1] else k + b"\xff"
        if self.lo is None:
            end = bytes([0x100 - tag])
        else:
            k = invert(encode(self.lo[0]))
            end = k + b"\xff" if self.lo[1] else k
        return start, end

    def describe(self):
        lo = "-inf" if self.lo is None else repr(self.lo[0])
        hi = "+inf" if self.hi is None else repr(self.hi[0])
        return f"{'[' if self.lo is None or self.lo[1] else '('}{lo}, {hi}{']' if self.hi is None or self.hi[1] else ')'}"


def _point_value(v):
    """The value if an index can look it up by equality, else None (a flag: usable)."""
    if v is None or type(v) is list or type(v) is RE_TYPE or is_operator_doc(v):
        return False
    return True


def field_predicates(flt):
    """{path: {"points": [values] | None, "range": [Range, ...]}} from the filter's top level."""
    preds = {}
    if not isinstance(flt, dict):
        return preds
    for key, cond in flt.items():
        if key == "$and" and isinstance(cond, (list, tuple)):
            for sub in cond:
                for path, p in field_predicates(sub).items():
                    _merge(preds, path, p)
            continue
        if type(key) is not str or key[:1] == "$":
            continue
        p = {"points": None, "ranges": []}
        try:
            if is_operator_doc(cond):
                for op, operand in cond.items():
                    if op == "$eq" and _point_value(operand):
                        p["points"] = [normalize_operand(operand, key)]
                    elif op == "$in" and isinstance(operand, (list, tuple)) and operand \
                            and all(_point_value(v) for v in operand):
                        p["points"] = [normalize_operand(v, key) for v in operand]
                    elif op in ("$gt", "$gte", "$lt", "$lte") and _point_value(operand):
                        operand = normalize_operand(operand, key)
                        r = rank(operand)
                        if r in _BRACKET_TAGS:
                            bound = (operand, op in ("$gte", "$lte"))
                            if op in ("$gt", "$gte"):
                                p["ranges"].append(Range(_BRACKET_TAGS[r], lo=bound))
                            else:
                                p["ranges"].append(Range(_BRACKET_TAGS[r], hi=bound))
            elif _point_value(cond):
                p["points"] = [normalize_operand(cond, key)]
        except Exception:  # an operand the filter compiler rejects: it raises its own clear error
            continue
        if p["points"] is not None or p["ranges"]:
            _merge(preds, key, p)
    return preds


def _merge(preds, path, p):
    old = preds.get(path)
    if old is None:
        preds[path] = {"points": p["points"], "ranges": list(p["ranges"])}
        return
    if old["points"] is None:
        old["points"] = p["points"]
    old["ranges"].extend(p["ranges"])


def _field_range(ranges, multikey):
    """One Range from a field's range predicates: intersected when the index is not multikey
    (different array elements may satisfy different bounds of a multikey field)."""
    first = ranges[0]
    if multikey or len(ranges) == 1:
        out = Range(first.tag, first.lo, first.hi)
        out.complete = len(ranges) == 1
        return out
    lo, hi = first.lo, first.hi
    for r in ranges[1:]:
        if r.tag != first.tag:
            continue
        if r.lo is not None and (lo is None or _tighter_lo(r.lo, lo)):
            lo = r.lo
        if r.hi is not None and (hi is None or _tighter_hi(r.hi, hi)):
            hi = r.hi
    out = Range(first.tag, lo, hi)
    out.complete = all(r.tag == first.tag for r in ranges)   # a bound of another bracket was left out
    return out


def _tighter_lo(a, b):
    ka, kb = encode(a[0]), encode(b[0])
    return ka > kb or (ka == kb and not a[1])


def _tighter_hi(a, b):
    ka, kb = encode(a[0]), encode(b[0])
    return ka < kb or (ka == kb and not a[1])


class Plan:
    """What the executor runs, and what explain() reports."""

    def __init__(self, kind, index=None, intervals=(), reverse=False, sorted_by_index=False, bounds=None,
                 ids=None):
        self.kind = kind                        # PLAN_*
        self.index = index                      # IndexInfo or PrimaryIndex, None for a collection scan
        self.intervals = list(intervals)        # [(start, end)] full keys, in scan order
        self.reverse = reverse                  # scan each interval backwards
        self.sorted_by_index = sorted_by_index  # documents come out in the requested sort order
        self.bounds = bounds or {}              # {field: description} for explain
        self.ids = ids                          # encoded _ids to read (IDHACK)
        self.needles = []                       # COLLSCAN: raw_needles() of the filter
        self.exact = False                      # the scanned keys match exactly: no filter needed

    def describe(self):
        d = {"stage": self.kind}
        if self.index is not None:
            d["indexName"] = self.index.name
            d["keyPattern"] = {p: dir_ for p, dir_ in self.index.fields}
            d["isMultiKey"] = bool(self.index.multikey)
            d["isUnique"] = bool(self.index.unique)
            d["direction"] = "backward" if self.reverse else "forward"
            d["indexBounds"] = self.bounds
        return d


def _successor(prefix):
    """The smallest key above every key that starts with prefix (None: no bound)."""
    b = bytearray(prefix)
    while b and b[-1] == 0xFF:
        b.pop()
    if not b:
        return None
    b[-1] += 1
    return bytes(b)


def _serve(ix, preds):
    """(score, points per eq field, Range or None) of how much of `ix` the predicates serve."""
    eq_fields = []
    rng = None
    for (path, _), parts in zip(ix.fields, ix.paths):
        p = preds.get(path)
        if p is None:
            break
        if p["points"] is not None:
            eq_fields.append(p["points"])
            continue
        if p["ranges"]:
            rng = _field_range(p["ranges"], ix.multikey)
        break
    score = 2 * len(eq_fields) + (1 if rng is not None else 0)
    if ix.unique and len(eq_fields) == len(ix.fields):
        score += 100
    return score, eq_fields, rng


def _sort_fields(ix):
    fields = list(ix.fields)
    if not getattr(ix, "unique", False):
        fields.append(("_id", 1))   # non-unique keys end with the encoded _id, ascending
    return fields


def _sort_direction(ix, n_eq, sort):
    """1 (forward), -1 (backward) if scanning `ix` after n_eq equality fields yields `sort`'s order."""
    if not sort or ix.multikey:
        return 0
    fields = _sort_fields(ix)[n_eq:]
    if len(sort) > len(fields):
        if not ix.unique:
            return 0
        sort = sort[:len(fields)]   # a unique index's keys never tie: later sort fields are moot
    flip = None
    for (sp, sd), (ip, idir) in zip(sort, fields):
        if sp != ip:
            return 0
        f = sd == idir
        if flip is None:
            flip = f
        elif flip != f:
            return 0
    return 1 if flip else -1


def raw_needles(flt):
    """[[bytes, ...], ...]: for each top-level string equality (or $in of strings) of the filter,
    the msgpack encodings of its strings. A stored document can only match if, for every group,
    one of them occurs in its bytes (a string value is always encoded the same way), so a
    collection scan skips decoding the others."""
    groups = []
    if not isinstance(flt, dict):
        return groups
    for key, cond in flt.items():
        if type(key) is not str or key[:1] == "$":
            continue
        values = None
        if type(cond) is str:
            values = [cond]
        elif type(cond) is dict and len(cond) == 1:
            (op, operand), = cond.items()
            if op == "$eq" and type(operand) is str:
                values = [operand]
            elif op == "$in" and isinstance(operand, (list, tuple)) and operand \
                    and all(type(v) is str for v in operand):
                values = list(operand)
        if values:
            groups.append([pack_value(v) for v in values])
    return groups


def plan_query(info, flt, sort=None):
    """The Plan for `flt` (and `sort`, [(path, 1|-1)]) on collection `info` (None: no collection)."""
    if info is None:
        return Plan(PLAN_COLLSCAN)
    preds = field_predicates(flt)
    primary = PrimaryIndex(info)
    candidates = [primary] + [ix for ix in info.indexes if ix.ready]
    best = None
    for ix in candidates:
        score, eq_fields, rng = _serve(ix, preds)
        if score and (best is None or score > best[0]):
            best = (score, ix, eq_fields, rng)
    if best is not None:
        _, ix, eq_fields, rng = best
        plan = _index_plan(ix, eq_fields, rng, sort)
        plan.exact = _exact(flt, ix, eq_fields, rng, plan)
        return plan
    if sort:
        for ix in candidates:
            direction = _sort_direction(ix, 0, sort)
            if direction:
                return _index_plan(ix, [], None, sort)
    plan = Plan(PLAN_COLLSCAN)
    plan.needles = raw_needles(flt)
    return plan


_EXACT_TYPES = (str, int, float, bool, bytes)


def _exact(flt, ix, eq_fields, rng, plan):
    """True when every key the plan scans belongs to a matching document and no other condition
    exists: a one-field filter of equality/$in with plain values, or a range with a lower bound
    on a non-multikey index (an upper-only numeric range would include NaN)."""
    if len(flt) != 1 or plan.kind != PLAN_IXSCAN or len(plan.bounds) < 1:
        return False
    (path, cond), = flt.items()
    if ix.fields[0][0] != path or "." in path:
        return False
    if eq_fields and rng is None and len(eq_fields) == 1:
        values = eq_fields[0]
        return all(type(v) in _EXACT_TYPES and v == v for v in values)
    if rng is not None and not eq_fields and not ix.multikey and type(cond) is dict \
            and set(cond) <= {"$gt", "$gte", "$lt", "$lte"}:
        if not rng.complete:
            return False
        bounds = [b[0] for b in (rng.lo, rng.hi) if b is not None]
        if any(v != v for v in bounds):
            return False                           # NaN bounds: only NaN matches
        return rng.lo is not None or rng.tag != keycodec.TAG_NUMBER
    return False


def _index_plan(ix, eq_fields, rng, sort):
    combos = [b""]
    bounds = {}
    used = 0
    for (path, direction), points in zip(ix.fields, eq_fields):
        keys = sorted({(encode(v) if direction == 1 else invert(encode(v))) for v in points})
        if len(combos) * len(keys) > MAX_POINTS:
            rng = None      # serve only the fields before this one
            break
        combos = [c + k for c in combos for k in keys]
        bounds[path] = [repr(v) for v in points]
        used += 1
    eq_fields = eq_fields[:used]
    n_eq = len(eq_fields)
    direction = _sort_direction(ix, n_eq, sort) if (sort and len(combos) == 1) else 0
    intervals = []
    if rng is not None:
        field_path, field_dir = ix.fields[n_eq]
        lo, hi = rng.scan_bounds(field_dir)
        bounds[field_path] = [rng.describe()]
        for c in sorted(combos):
            intervals.append((ix.prefix + c + lo, ix.prefix + c + hi))
    else:
        for c in sorted(combos):
            start = ix.prefix + c
            intervals.append((start, _successor(start)))
    for path, _ in ix.fields[len(bounds):]:
        bounds[path] = ["[MinKey, MaxKey]"]
    full_eq = getattr(ix, "primary", False) and n_eq == 1 and rng is None
    if full_eq:
        ids = [c for c in combos]
        return Plan(PLAN_IDHACK, ix, intervals, bounds=bounds, ids=ids, sorted_by_index=False)
    reverse = direction == -1
    if reverse:
        intervals.reverse()
    return Plan(PLAN_IXSCAN, ix, intervals, reverse=reverse, sorted_by_index=bool(direction), bounds=bounds)
