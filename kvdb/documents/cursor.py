"""Running plans, and the Cursor find() returns.

execute() turns a Plan into (document key, stored bytes, document) of the documents that match
the filter, reading through `reader` (a transaction, or a snapshot for a Database owner, so one
query sees one version). Every fetched document is checked against the whole filter.
"""
from .catalog import read_catalog
from .codec import unpack
from .errors import InvalidQuery
from .keycodec import encode
from .objectid import ObjectId
from .planner import PLAN_COLLSCAN, PLAN_IDHACK, plan_query
from .projection import compile_projection
from .query import compile_filter
from .sorting import parse_sort, sort_key_function


_NONE = object()
_ID_TYPES = frozenset((str, int, float, ObjectId, bytes, bool))   # _id values looked up directly


class Stats:
    """What a run examined, for explain()."""

    __slots__ = ("keys_examined", "docs_examined", "returned")

    def __init__(self):
        self.keys_examined = 0      # index entries (or document keys, for _id plans) read
        self.docs_examined = 0      # documents fetched and decoded
        self.returned = 0           # documents the query returned


def execute(reader, info, plan, match, stats):
    """Yield (key, raw, doc) of the matching documents in plan order."""
    if plan.kind == PLAN_COLLSCAN:
        needles = plan.needles
        if len(needles) == 1 and len(needles[0]) == 1:
            needle = needles[0][0]          # the common case: one string equality
            for key, raw in reader.scan(prefix=info.doc_prefix):
                if needle not in raw:
                    continue
                stats.docs_examined += 1
                doc = unpack(raw)
                if match(doc):
                    yield key, raw, doc
            return
        for key, raw in reader.scan(prefix=info.doc_prefix):
            if needles and not all(any(n in raw for n in group) for group in needles):
                continue
            stats.docs_examined += 1
            doc = unpack(raw)
            if match(doc):
                yield key, raw, doc
        return
    prefix = info.doc_prefix
    if plan.kind == PLAN_IDHACK:
        for eid in plan.ids:
            stats.keys_examined += 1
            key = prefix + eid
            raw = reader.get(key)
            if raw is None:
                continue
            stats.docs_examined += 1
            doc = unpack(raw)
            if match(doc):
                yield key, raw, doc
        return
    if getattr(plan.index, "primary", False):
        for start, end in plan.intervals:
            for key, raw in reader.scan(start=start, end=end, reverse=plan.reverse):
                stats.keys_examined += 1
                stats.docs_examined += 1
                doc = unpack(raw)
                if match(doc):
                    yield key, raw, doc
        return
    seen = set() if plan.index.multikey else None      # one key per document otherwise
    exact = plan.exact
    get = reader.get
    for start, end in plan.intervals:
        for _, eid in reader.scan(start=start, end=end, reverse=plan.reverse):
            stats.keys_examined += 1
            if seen is not None:
                if eid in seen:
                    continue
                seen.add(eid)
            key = prefix + eid
            raw = get(key)
            if raw is None:
                continue
            stats.docs_examined += 1
            doc = unpack(raw)
            if exact or match(doc):
                yield key, raw, doc


def run_query(reader, name, flt, match, sort=None, skip=0, limit=0, stats=None):
    """Yield (key, raw, doc) of the documents a find returns (before projection), with the plan
    used stored in stats.plan-like fashion by the caller via plan_for()."""
    info = read_catalog(reader, name)
    if info is None:
        return
    plan = plan_query(info, flt, sort)
    yield from ordered(reader, info, plan, match, sort, skip, limit, stats or Stats())


def ordered(reader, info, plan, match, sort, skip, limit, stats):
    rows = execute(reader, info, plan, match, stats)
    if sort and not plan.sorted_by_index:
        keyf = sort_key_function(sort)
        rows = sorted(rows, key=lambda row: keyf(row[2]))
        if skip:
            rows = rows[skip:]
        if limit:
            rows = rows[:limit]
        for row in rows:
            stats.returned += 1
            yield row
        return
    n = 0
    for row in rows:
        if skip:
            skip -= 1
            continue
        stats.returned += 1
        yield row
        n += 1
        if limit and n >= limit:
            return


class Cursor:
    """The documents of a find(), fetched lazily when iteration starts (pymongo-like).

    sort/skip/limit may be set until iteration starts. A Database owner's cursor reads one
    snapshot from its first document to its last; a Transaction owner's reads in the transaction.
    """

    def __init__(self, collection, filter=None, projection=None, skip=0, limit=0, sort=None):
        self._collection = collection
        self._filter = {} if filter is None else filter
        self._match = compile_filter(self._filter)
        self._projection = projection
        self._project = compile_projection(projection)
        self._skip = _count_arg(skip, "skip")
        self._limit = abs(_count_arg(limit, "limit", negative_ok=True))
        self._sort = parse_sort(sort)
        self._it = None             # the running generator, once iteration started

    def _check_unstarted(self):
        if self._it is not None:
            raise InvalidQuery("cannot change a cursor after iteration has started (use rewind() or clone())")

    def sort(self, key_or_list, direction=None):
        self._check_unstarted()
        self._sort = parse_sort(key_or_list, direction)
        return self

    def skip(self, n):
        self._check_unstarted()
        self._skip = _count_arg(n, "skip")
        return self

    def limit(self, n):
        self._check_unstarted()
        self._limit = abs(_count_arg(n, "limit", negative_ok=True))
        return self

    def batch_size(self, n):
        """Accepted for pymongo compatibility; documents are read as they are iterated."""
        _count_arg(n, "batch_size")
        return self

    def _id_lookup(self):
        """The encoded _id when the query is a plain {"_id": value} with nothing else to do."""
        flt = self._filter
        if len(flt) != 1 or self._sort or self._skip:
            return None
        value = flt.get("_id", _NONE)
        if type(value) not in _ID_TYPES:
            return None
        return encode(value)

    def _generate(self):
        coll = self._collection
        eid = self._id_lookup()
        if eid is not None:
            # one key read needs no snapshot: the catalog's collection id never changes meaning
            owner = coll.owner
            info = read_catalog(owner, coll.name)
            raw = owner.get(info.doc_prefix + eid) if info is not None else None
            if raw is not None:
                doc = unpack(raw)
                yield self._project(doc) if self._project is not None else doc
            return
        with coll._reading() as reader:
            project = self._project
            if self._sort:
                for _, _, doc in run_query(reader, coll.name, self._filter, self._match, self._sort, self._skip,
                                           self._limit):
                    yield project(doc) if project is not None else doc
                return
            info = read_catalog(reader, coll.name)
            if info is None:
                return
            plan = plan_query(info, self._filter, None)
            skip, limit, n = self._skip, self._limit, 0
            for _, _, doc in execute(reader, info, plan, self._match, Stats()):
                if skip:
                    skip -= 1
                    continue
                yield project(doc) if project is not None else doc
                n += 1
                if n == limit:
                    return

    def __iter__(self):
        if self._it is None:
            # hand out the generator itself: list(cursor) then runs without a Python __next__
            self._it = self._generate()
            return self._it
        return self

    def __next__(self):
        if self._it is None:
            self._it = self._generate()
        return next(self._it)

    def next(self):
        return self.__next__()

    def to_list(self, length=None):
        out = []
        for doc in self:
            out.append(doc)
            if length is not None and len(out) >= length:
                break
        return out

    def close(self):
        it, self._it = self._it, iter(())
        if it is not None and hasattr(it, "close"):
            it.close()

    def rewind(self):
        self.close()
        self._it = None
        return self

    def clone(self):
        c = Cursor(self._collection, self._filter, self._projection, self._skip, self._limit)
        c._sort = self._sort
        return c

    def distinct(self, key):
        return self._collection.distinct(key, self._filter)

    def explain(self):
        """How the query runs, as plain data: the plan, the index used, keys and documents examined."""
        coll = self._collection
        stats = Stats()
        with coll._reading() as reader:
            info = read_catalog(reader, coll.name)
            if info is None:
                plan = plan_query(None, self._filter, self._sort)
            else:
                plan = plan_query(info, self._filter, self._sort)
                for _ in ordered(reader, info, plan, self._match, self._sort, self._skip, self._limit, stats):
                    pass
        if plan.kind == PLAN_COLLSCAN:
            winning = {"stage": "COLLSCAN"}
        else:
            winning = {"stage": "FETCH", "inputStage": plan.describe()}
        if self._sort and not plan.sorted_by_index:
            winning = {"stage": "SORT", "sortPattern": {p: d for p, d in self._sort}, "inputStage": winning}
        return {
            "plan": plan.kind,
            "index": plan.index.name if plan.index is not None else None,
            "indexBounds": plan.bounds,
            "sort": None if not self._sort else ("index" if plan.sorted_by_index else "in-memory"),
            "keysExamined": stats.keys_examined,
            "docsExamined": stats.docs_examined,
            "nReturned": stats.returned,
            "queryPlanner": {"namespace": coll.name, "winningPlan": winning},
            "executionStats": {"nReturned": stats.returned, "totalKeysExamined": stats.keys_examined,
                               "totalDocsExamined": stats.docs_examined},
        }

    def __del__(self):
        it = self.__dict__.get("_it")
        if it is not None and hasattr(it, "close"):
            try:
                it.close()
            except Exception:
                pass


def _count_arg(n, what, negative_ok=False):
    if type(n) is not int or (n < 0 and not negative_ok):
        raise InvalidQuery(f"{what} must be a non-negative integer, got {n!r}")
    return n
