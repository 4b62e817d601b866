"""Sorted-set commands, continued: set algebra (ZUNION ZINTER ZDIFF, their STORE
forms, ZINTERCARD), ZRANDMEMBER and ZSCAN. Helpers are in zsets.py.

Set algebra streams its sources in member order (the member records of a sorted set,
and of a plain set, which counts as a sorted set whose scores are all 1): a union is a
k-way merge of ordered scans, an intersection and a difference scan one source and
probe the others, so a STORE form holds no source in memory. The non-STORE forms
sort their reply by score, as Redis does, in memory.
"""
import heapq
import itertools
import random

from ..glob import glob_match
from ..keyspace import TYPE_SET, TYPE_ZSET, WrongType
from ..setstore import contains as set_contains
from ..setstore import members as set_members
from ..zsetstore import format_score
from .keys import decode_cursor, encode_cursor, parse_scan_options
from .registry import SYNTAX, CommandError, command, int_arg, numkeys_keys
from .zsets import check_keys, pairs_reply, read_zset, score_arg, store_result

MAX_LONG = (1 << 63) - 1
SMALL_SCAN = 128          # ZSCAN answers a set this small (short members) in one call, as Redis's listpacks
SMALL_SCAN_MEMBER = 64


def _z(**kw):
    return dict(group="sorted-set", **kw)


# -- set algebra ---------------------------------------------------------------------------------

UNION, INTER, DIFF = "union", "inter", "diff"


class _SetSource:
    """A plain set read as a sorted set whose scores are all 1."""

    def __init__(self, store, prefix, count):
        self.store = store           # the keyspace Store
        self.prefix = prefix         # its member records
        self.count = count           # SCARD

    def members(self):
        for m in set_members(self.store, self.prefix):
            yield m, 1.0

    def score(self, member):
        return 1.0 if set_contains(self.store, self.prefix, member) else None


def _source(c, key):
    ks = c.server.ks
    e = ks.entry(c.db, key)
    if e is None:
        return None
    if e.type == TYPE_ZSET:
        return read_zset(c, key)
    if e.type == TYPE_SET:
        return _SetSource(ks.store, e.body.prefix(c.db, b"s"), e.body.count)
    raise WrongType()


def _sum(t, v):
    t = t + v
    return 0.0 if t != t else t


def _min(t, v):
    return v if v < t else t


def _max(t, v):
    return v if v > t else t


_AGGREGATES = {b"sum": _sum, b"min": _min, b"max": _max}


def _algebra_args(c, args, numkeys_at, op, store, card):
    """Parses the algebra commands' arguments as Redis does (sources are looked up and
    type-checked before the options). Returns (sources, weights, aggregate,
    withscores, limit)."""
    name = args[0].decode("utf-8", "replace").lower()
    numkeys = int_arg(args[numkeys_at])
    if numkeys < 1:
        raise CommandError(f"ERR at least 1 input key is needed for '{name}' command")
    if numkeys > len(args) - numkeys_at - 1:
        raise CommandError(SYNTAX)
    keys = args[numkeys_at + 1:numkeys_at + 1 + numkeys]
    check_keys(c, keys, "R")
    sources = [_source(c, k) for k in keys]
    weights = [1.0] * numkeys
    aggregate = _sum
    withscores = False
    limit = 0
    j = numkeys_at + 1 + numkeys
    while j < len(args):
        left = len(args) - j
        opt = args[j].lower()
        if op != DIFF and not card and left >= numkeys + 1 and opt == b"weights":
            weights = [score_arg(w, "ERR weight value is not a float") for w in args[j + 1:j + 1 + numkeys]]
            j += 1 + numkeys
        elif op != DIFF and not card and left >= 2 and opt == b"aggregate":
            aggregate = _AGGREGATES.get(args[j + 1].lower())
            if aggregate is None:
                raise CommandError(SYNTAX)
            j += 2
        elif not store and not card and opt == b"withscores":
            withscores = True
            j += 1
        elif card and left >= 2 and opt == b"limit":
            limit = int_arg(args[j + 1], "ERR LIMIT can't be negative")
            if limit < 0:
                raise CommandError("ERR LIMIT can't be negative")
            j += 2
        else:
            raise CommandError(SYNTAX)
    return sources, weights, aggregate, withscores, limit


def _weighted(w, s):
    v = w * s
    return 0.0 if v != v else v


def _union(sources, weights, aggregate):
    """(member, score) in member order. Each member's contributions are aggregated in
    the order of the sources by size (as Redis does)."""
    ordered = sorted((p for p in zip(sources, weights) if p[0] is not None), key=lambda p: p[0].count)

    def tagged(i, src):
        for m, s in src.members():
            yield m, i, s

    merged = heapq.merge(*(tagged(i, src) for i, (src, _) in enumerate(ordered)))
    for m, group in itertools.groupby(merged, key=lambda t: t[0]):
        score = None
        for _, i, s in group:
            v = _weighted(ordered[i][1], s)
            score = v if score is None else aggregate(score, v)
        yield m, score


def _inter(sources, weights, aggregate, limit=0):
    """(member, score) of the members in every source, in the smallest one's order."""
    if any(s is None for s in sources):
        return
    ordered = sorted(zip(sources, weights), key=lambda p: p[0].count)
    (first, w0), rest = ordered[0], ordered[1:]
    found = 0
    for m, s in first.members():
        score = _weighted(w0, s)
        for src, w in rest:
            v = src.score(m)
            if v is None:
                break
            score = aggregate(score, v * w)
        else:
            yield m, score
            found += 1
            if limit and found >= limit:
                return


def _diff(sources):
    first = sources[0]
    if first is None:
        return
    others = [s for s in sources[1:] if s is not None]
    for m, s in first.members():
        if all(o.score(m) is None for o in others):
            yield m, s


def _algebra(c, args, op, store):
    numkeys_at = 2 if store else 1
    sources, weights, aggregate, withscores, _ = _algebra_args(c, args, numkeys_at, op, store, False)
    if op == UNION:
        stream = _union(sources, weights, aggregate)
    elif op == INTER:
        stream = _inter(sources, weights, aggregate)
    else:
        stream = _diff(sources)
    if store:
        return store_result(c, args[1], stream, f"z{op}store")
    items = sorted(stream, key=lambda p: (p[1], p[0]))
    return pairs_reply(c, items, withscores)


@command("zunion", -3, "readonly movablekeys", "@sortedset", (0, 0, 0), key_finder=numkeys_keys(1),
         **_z(summary="Returns the union of multiple sorted sets.", since="6.2.0"))
def zunion(c, args):
    return _algebra(c, args, UNION, False)


@command("zinter", -3, "readonly movablekeys", "@sortedset", (0, 0, 0), key_finder=numkeys_keys(1),
         **_z(summary="Returns the intersect of multiple sorted sets.", since="6.2.0"))
def zinter(c, args):
    return _algebra(c, args, INTER, False)


@command("zdiff", -3, "readonly movablekeys", "@sortedset", (0, 0, 0), key_finder=numkeys_keys(1),
         **_z(summary="Returns the difference between multiple sorted sets.", since="6.2.0"))
def zdiff(c, args):
    return _algebra(c, args, DIFF, False)


@command("zunionstore", -4, "write denyoom movablekeys", "@sortedset", (1, 1, 1),
         key_finder=numkeys_keys(2, fixed=(1,)),
         **_z(summary="Stores the union of multiple sorted sets in a key.", since="2.0.0"))
def zunionstore(c, args):
    return _algebra(c, args, UNION, True)


@command("zinterstore", -4, "write denyoom movablekeys", "@sortedset", (1, 1, 1),
         key_finder=numkeys_keys(2, fixed=(1,)),
         **_z(summary="Stores the intersect of multiple sorted sets in a key.", since="2.0.0"))
def zinterstore(c, args):
    return _algebra(c, args, INTER, True)


@command("zdiffstore", -4, "write denyoom movablekeys", "@sortedset", (1, 1, 1),
         key_finder=numkeys_keys(2, fixed=(1,)),
         **_z(summary="Stores the difference of multiple sorted sets in a key.", since="6.2.0"))
def zdiffstore(c, args):
    return _algebra(c, args, DIFF, True)


@command("zintercard", -3, "readonly movablekeys", "@sortedset", (0, 0, 0), key_finder=numkeys_keys(1),
         **_z(summary="Returns the number of members of the intersect of multiple sorted sets.", since="7.0.0"))
def zintercard(c, args):
    sources, _, _, _, limit = _algebra_args(c, args, 1, INTER, False, True)
    return sum(1 for _ in _inter(sources, [1.0] * len(sources), _sum, limit))


# -- random members and scans ------------------------------------------------------------------------

def _sample(zs, k):
    """k distinct random elements (k < size), in random order."""
    size = zs.count
    if k * 3 > size:
        items = random.sample(zs.by_keys(b"", None), k)
    else:
        items = [zs.at(r) for r in random.sample(range(size), k)]
    random.shuffle(items)
    return items


def _repeats(zs, k):
    """k random elements, repetitions allowed."""
    size = zs.count
    if size <= 1024 or size <= k:
        everything = zs.by_keys(b"", None)
        return [random.choice(everything) for _ in range(k)]
    return [zs.at(random.randrange(size)) for _ in range(k)]


@command("zrandmember", -2, "readonly", "@sortedset", (1, 1, 1),
         **_z(summary="Returns one or more random members from a sorted set.", since="6.2.0"))
def zrandmember(c, args):
    if len(args) < 3:
        zs = read_zset(c, args[1])
        if zs is None:
            return None
        return zs.at(random.randrange(zs.count))[0]
    count = int_arg(args[2])
    if count < -MAX_LONG:
        raise CommandError(f"ERR value is out of range, value must between {-MAX_LONG} and {MAX_LONG}")
    if len(args) > 4 or (len(args) == 4 and args[3].lower() != b"withscores"):
        raise CommandError(SYNTAX)
    withscores = len(args) == 4
    if withscores and not -(MAX_LONG // 2) <= count <= MAX_LONG // 2:
        raise CommandError("ERR value is out of range")
    zs = read_zset(c, args[1])
    if zs is None or count == 0:
        return []
    if count < 0:
        items = _repeats(zs, -count)
    elif count >= zs.count:
        items = zs.by_keys(b"", None, reverse=True)     # the whole set, highest first, as Redis
    else:
        items = _sample(zs, count)
    return pairs_reply(c, items, withscores)


def _strtoul_ok(raw):
    """Whether Redis would accept raw as a SCAN cursor (C strtoul over all of it)."""
    text = raw.decode("latin-1")
    body = text[1:] if text[:1] in ("+", "-") else text
    return body.isdigit() and body.isascii() and int(body) < 1 << 64


@command("zscan", -3, "readonly", "@sortedset", (1, 1, 1),
         **_z(summary="Iterates over members and scores of a sorted set.", since="2.8.0"))
def zscan(c, args):
    small_ok = _strtoul_ok(args[2])
    try:
        after = decode_cursor(args[2])
    except CommandError:
        if not small_ok:
            raise
        after = False           # a cursor only a small set answers (it ignores cursors)
    zs = read_zset(c, args[1])
    if zs is None:
        return [b"0", []]
    pattern, count, _, novalues = parse_scan_options(args, 3, False)
    if novalues:
        raise CommandError(SYNTAX)
    batch = None
    last = None
    if zs.count <= SMALL_SCAN and small_ok:
        # like a listpack-encoded set in Redis: everything at once, in score order,
        # whatever the cursor
        batch = zs.by_keys(b"", None)
        if any(len(m) > SMALL_SCAN_MEMBER for m, _ in batch):
            batch = None
    if batch is None:
        if after is False:
            raise CommandError("ERR invalid cursor")
        batch = list(itertools.islice(zs.members(after), count))
        if len(batch) >= count:
            last = batch[-1][0]
    out = []
    for m, s in batch:
        if pattern == b"*" or glob_match(pattern, m):
            out.append(m)
            out.append(format_score(s))
    return [encode_cursor(last), out]
