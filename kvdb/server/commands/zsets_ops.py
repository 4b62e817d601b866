"""Sorted-set commands, continued: pops (ZPOPMIN ZPOPMAX ZMPOP and the blocking
BZPOPMIN BZPOPMAX BZMPOP), set algebra (ZUNION ZINTER ZDIFF, their STORE forms,
ZINTERCARD), ZRANDMEMBER and ZSCAN. Helpers are shared with zsets.py.

Set algebra streams its sources in member order (the member records of a sorted set,
and of a plain set, which counts as a sorted set whose scores are all 1): a union is a
k-way merge of ordered scans, an intersection and a difference scan one source and
probe the others, so a STORE form holds no source in memory. The non-STORE forms
sort their reply by score, as Redis does, in memory.
"""
import heapq
import itertools
import random

from kvdb._core.resp import NULL_ARRAY

from ..blocking import blocking_allowed, timeout_arg
from ..glob import glob_match
from ..keyspace import TYPE_SET, TYPE_ZSET, WrongType
from ..setstore import contains as set_contains
from ..setstore import members as set_members
from ..zsetstore import format_score
from .keys import decode_cursor, encode_cursor, parse_scan_options
from .registry import SYNTAX, CommandError, command, int_arg
from .zsets import check_keys, pairs_reply, read_zset, save_zset, score_arg, score_reply, store_result, write_zset

MAX_LONG = (1 << 63) - 1
SMALL_SCAN = 128          # ZSCAN answers a set this small (short members) in one call, as Redis's listpacks
SMALL_SCAN_MEMBER = 64


def _z(**kw):
    return dict(group="sorted-set", **kw)


# -- pops --------------------------------------------------------------------------------------

def _pop(c, key, zs, count, reverse):
    """Pops up to count elements of the non-empty zs at key; [(member, score)]."""
    event = "zpopmax" if reverse else "zpopmin"
    if count >= zs.count:
        items = zs.by_keys(b"", None, reverse)
        c.server.ks.remove(c.db, key, zs.entry, event=None)
        c.server.key_changed(c.db, key, event)
        c.server.key_changed(c.db, key, "del")
        return items
    items = zs.pop(count, reverse)
    save_zset(c, key, zs, event)
    return items


def _pop_first(c, keys, count, reverse, skip_wrongtype=False):
    """(key, popped elements) from the first of keys holding a sorted set (an earlier
    key of another type is an error, as in Redis), or None when none exists."""
    for key in keys:
        try:
            zs = write_zset(c, key, create=False)
        except WrongType:
            if skip_wrongtype:
                continue      # a waiter ignores a key that now holds another type
            raise
        if zs is not None:
            return key, _pop(c, key, zs, count, reverse)
    return None


def _positive_count(raw):
    n = int_arg(raw, "ERR value is out of range, must be positive")
    if n < 0:
        raise CommandError("ERR value is out of range, must be positive")
    return n


def _zpop(c, args, reverse):
    if len(args) > 3:
        raise CommandError(SYNTAX)
    count = _positive_count(args[2]) if len(args) == 3 else None
    zs = write_zset(c, args[1], create=False)
    if zs is None or count == 0:
        return []
    items = _pop(c, args[1], zs, 1 if count is None else count, reverse)
    if count is not None:
        return pairs_reply(c, items, True)       # RESP3: [member, score] pairs
    m, s = items[0]
    return [m, score_reply(c, s)]                # a flat pair in both protocols


@command("zpopmin", -2, "write fast", "@sortedset", (1, 1, 1),
         **_z(summary="Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", since="5.0.0"))
def zpopmin(c, args):
    return _zpop(c, args, False)


@command("zpopmax", -2, "write fast", "@sortedset", (1, 1, 1),
         **_z(summary="Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", since="5.0.0"))
def zpopmax(c, args):
    return _zpop(c, args, True)


def _mpop_args(args, numkeys_at):
    """ZMPOP/BZMPOP arguments: (keys, reverse, count)."""
    numkeys = int_arg(args[numkeys_at], "ERR numkeys should be greater than 0")
    if numkeys < 1:
        raise CommandError("ERR numkeys should be greater than 0")
    where_at = numkeys_at + numkeys + 1
    if where_at >= len(args):
        raise CommandError(SYNTAX)
    where = args[where_at].lower()
    if where not in (b"min", b"max"):
        raise CommandError(SYNTAX)
    count = None
    j = where_at + 1
    while j < len(args):
        if count is None and args[j].lower() == b"count" and j + 1 < len(args):
            count = int_arg(args[j + 1], "ERR count should be greater than 0")
            if count < 1:
                raise CommandError("ERR count should be greater than 0")
            j += 2
        else:
            raise CommandError(SYNTAX)
    return args[numkeys_at + 1:where_at], where == b"max", count or 1


def _mpop_reply(c, found):
    key, items = found
    return [key, [[m, score_reply(c, s)] for m, s in items]]


@command("zmpop", -4, "write movablekeys", "@sortedset", (0, 0, 0),
         **_z(summary="Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", since="7.0.0"))
def zmpop(c, args):
    keys, reverse, count = _mpop_args(args, 1)
    check_keys(c, keys)
    found = _pop_first(c, keys, count, reverse)
    return NULL_ARRAY if found is None else _mpop_reply(c, found)


def _bzpop(c, args, reverse):
    keys = args[1:-1]
    timeout = timeout_arg(args[-1])

    def attempt(skip_wrongtype):
        found = _pop_first(c, keys, 1, reverse, skip_wrongtype)
        if found is None:
            return None
        key, items = found
        m, s = items[0]
        return [key, m, score_reply(c, s)]

    reply = attempt(False)
    if reply is not None:
        return reply
    if not blocking_allowed(c):
        return NULL_ARRAY
    return c.server.blocking.block(c, c.db, keys, timeout, lambda: attempt(True), NULL_ARRAY)


@command("bzpopmin", -3, "write fast blocking", "@sortedset", (1, -2, 1),
         **_z(summary="Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", since="5.0.0"))
def bzpopmin(c, args):
    return _bzpop(c, args, False)


@command("bzpopmax", -3, "write fast blocking", "@sortedset", (1, -2, 1),
         **_z(summary="Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.", since="5.0.0"))
def bzpopmax(c, args):
    return _bzpop(c, args, True)


@command("bzmpop", -5, "write blocking movablekeys", "@sortedset", (0, 0, 0),
         **_z(summary="Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", since="7.0.0"))
def bzmpop(c, args):
    timeout = timeout_arg(args[1])
    keys, reverse, count = _mpop_args(args, 2)
    check_keys(c, keys)

    def attempt(skip_wrongtype):
        found = _pop_first(c, keys, count, reverse, skip_wrongtype)
        return None if found is None else _mpop_reply(c, found)

    reply = attempt(False)
    if reply is not None:
        return reply
    if not blocking_allowed(c):
        return NULL_ARRAY
    return c.server.blocking.block(c, c.db, keys, timeout, lambda: attempt(True), NULL_ARRAY)


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


@command("zunion", -3, "readonly movablekeys", "@sortedset", (0, 0, 0),
         **_z(summary="Returns the union of multiple sorted sets.", since="6.2.0"))
def zunion(c, args):
    return _algebra(c, args, UNION, False)


@command("zinter", -3, "readonly movablekeys", "@sortedset", (0, 0, 0),
         **_z(summary="Returns the intersect of multiple sorted sets.", since="6.2.0"))
def zinter(c, args):
    return _algebra(c, args, INTER, False)


@command("zdiff", -3, "readonly movablekeys", "@sortedset", (0, 0, 0),
         **_z(summary="Returns the difference between multiple sorted sets.", since="6.2.0"))
def zdiff(c, args):
    return _algebra(c, args, DIFF, False)


@command("zunionstore", -4, "write denyoom movablekeys", "@sortedset", (1, 1, 1),
         **_z(summary="Stores the union of multiple sorted sets in a key.", since="2.0.0"))
def zunionstore(c, args):
    return _algebra(c, args, UNION, True)


@command("zinterstore", -4, "write denyoom movablekeys", "@sortedset", (1, 1, 1),
         **_z(summary="Stores the intersect of multiple sorted sets in a key.", since="2.0.0"))
def zinterstore(c, args):
    return _algebra(c, args, INTER, True)


@command("zdiffstore", -4, "write denyoom movablekeys", "@sortedset", (1, 1, 1),
         **_z(summary="Stores the difference of multiple sorted sets in a key.", since="6.2.0"))
def zdiffstore(c, args):
    return _algebra(c, args, DIFF, True)


@command("zintercard", -3, "readonly movablekeys", "@sortedset", (0, 0, 0),
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
