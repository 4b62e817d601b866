"""Sorted-set commands: writes and lookups, and the helpers shared by the other
sorted-set command files: zsets_range.py (ranges and range removals), zsets_pop.py
(pops, blocking pops) and zsets_ops.py (set algebra, random members, ZSCAN). Storage is
kvdb/server/zsetstore.py (member and score-index records) with the rank index of
kvdb/server/zrank.py, so ranks, rank ranges and counts cost O(log n) engine
operations and a range costs O(log n + its length).

Replies follow Redis 7.2: scores are RESP3 doubles, and in RESP2 bulk strings
formatted as Redis 7.2 prints them (zsetstore.format_score); WITHSCORES replies are
flat member/score arrays in RESP2 and arrays of [member, score] pairs in RESP3.
"""
from kvdb.server.protocol.resp import NULL_ARRAY

from ..keyspace import TYPE_ZSET, Coll, Entry, check_name
from ..zsetstore import ZSet, format_score, parse_range_score, parse_score
from .registry import NOT_FLOAT, SYNTAX, CommandError, command

NAN_SCORE = "ERR resulting score is not a number (NaN)"
NOT_FLOAT_RANGE = "ERR min or max is not a float"
NOT_LEX_RANGE = "ERR min or max not valid string range item"


def _z(**kw):
    return dict(group="sorted-set", **kw)


# -- shared helpers (zsets_ops.py uses them too) ------------------------------------------

def read_zset(c, key):
    """The ZSet at key for reading, or None; WrongType for another type."""
    ks = c.server.ks
    e, _ = ks.collection(c.db, key, TYPE_ZSET)
    return None if e is None else ZSet(ks.store, c.db, e)


def write_zset(c, key, create=True):
    """The ZSet at key for writing (a new empty one when absent and `create`), or None."""
    ks = c.server.ks
    e = ks.collection_for_write(c.db, key, TYPE_ZSET, create=create)
    return None if e is None else ZSet(ks.store, c.db, e)


def save_zset(c, key, zs, event):
    """Writes the meta record back, deleting the key when it became empty, and sends the
    notifications (`event`, then `del` for an emptied key)."""
    was_new = zs.entry.is_new
    zs.finish()
    c.server.ks.save(c.db, key, zs.entry)
    if event:
        c.server.key_changed(c.db, key, event)
    if zs.count == 0 and not was_new:
        c.server.key_changed(c.db, key, "del")


def store_result(c, dst, pairs, event):
    """Writes (member, score) pairs (distinct members) as a new sorted set at dst,
    replacing whatever dst held (any type; its expiry dropped). An empty result deletes
    dst. The new set takes a fresh version, so sources (dst may be one) are read
    unchanged while it is written. Returns its size."""
    ks = c.server.ks
    e = Entry(TYPE_ZSET, 0, Coll(ks.new_version()))
    zs = ZSet(ks.store, c.db, e)
    zs.bulk()
    for member, score in pairs:
        zs.add(member, score, old=None)
    zs.finish()
    old = ks.prepare_write(c.db, dst)
    if old is not None:
        ks.remove(c.db, dst, old, event=None)
    if zs.count == 0:
        if old is not None:
            c.server.key_changed(c.db, dst, "del")
        return 0
    ks.put_entry(c.db, dst, e)
    c.server.key_changed(c.db, dst, event)
    return zs.count


def score_reply(c, score):
    return score if c.proto >= 3 else format_score(score)


def pairs_reply(c, pairs, withscores):
    """Elements as ZRANGE replies them."""
    if not withscores:
        return [m for m, _ in pairs]
    if c.proto >= 3:
        return [[m, s] for m, s in pairs]
    out = []
    for m, s in pairs:
        out.append(m)
        out.append(format_score(s))
    return out


def check_keys(c, keys, need="RW"):
    """ACL key patterns for keys after a numkeys argument (the registry's fixed key
    positions cannot describe them)."""
    user = c.user
    if user.all_keys:
        return
    for key in keys:
        if not user.key_allowed(key, need):
            shown = key.decode("utf-8", "replace")
            raise CommandError(f"NOPERM User {user.name} has no permissions to access the '{shown}' key")


def score_arg(raw, message=NOT_FLOAT):
    value = parse_score(raw)
    if value is None:
        raise CommandError(message)
    return value


def score_bound(raw):
    """A score range bound: (value, exclusive)."""
    if raw[:1] == b"(":
        value, ex = parse_range_score(raw[1:]), True
    else:
        value, ex = parse_range_score(raw), False
    if value is None:
        raise CommandError(NOT_FLOAT_RANGE)
    return value, ex


def lex_bound(raw):
    """A lex range item: (b"-" | b"+", None) or (member, exclusive)."""
    if raw in (b"-", b"+"):
        return raw, None
    if raw[:1] == b"(":
        return raw[1:], True
    if raw[:1] == b"[":
        return raw[1:], False
    raise CommandError(NOT_LEX_RANGE)


def rank_range(start, stop, size):
    """Redis's sanitized rank range: (start, stop) inclusive, or None when empty."""
    if start < 0:
        start += size
    if stop < 0:
        stop += size
    if start < 0:
        start = 0
    if start > stop or start >= size:
        return None
    return start, min(stop, size - 1)


# -- writes ---------------------------------------------------------------------------------

_ZADD_FLAGS = {b"nx", b"xx", b"ch", b"incr", b"gt", b"lt"}


def _zadd(c, key, flags, pairs):
    """ZADD's body once parsed: flags a set of lower-case option names, pairs
    [(score, member)] with scores parsed."""
    nx, xx, gt, lt, incr = (f in flags for f in (b"nx", b"xx", b"gt", b"lt", b"incr"))
    for _, m in pairs:
        check_name(m, "member")
    zs = write_zset(c, key, create=not xx)
    if zs is None:
        return None if incr else 0
    if len(pairs) > 64 and len(pairs) >= zs.count:
        zs.bulk()
    added = updated = processed = 0
    result = None
    for score, member in pairs:
        cur = zs.score(member)
        if cur is not None:
            if nx:
                continue
            if incr:
                score = cur + score
                if score != score:
                    raise CommandError(NAN_SCORE)
                score += 0.0
            if (lt and score >= cur) or (gt and score <= cur):
                continue
            processed += 1
            result = score
            if score != cur:
                zs.add(member, score, old=cur)
                updated += 1
        elif not xx:
            zs.add(member, score, old=None)
            added += 1
            processed += 1
            result = score
    if added or updated:
        save_zset(c, key, zs, "zincr" if incr else "zadd")
    if incr:
        return score_reply(c, result) if processed else None
    return added + updated if b"ch" in flags else added


def _zadd_one(c, key, score, member):
    """ZADD key score member, without options: the common form, on a short path."""
    check_name(member, "member")
    zs = write_zset(c, key)
    cur = zs.score(member) if zs.coll.count else None
    if cur is None:
        zs.add(member, score, old=None)
    elif cur != score:
        zs.add(member, score, old=cur)
    else:
        return 0
    save_zset(c, key, zs, "zadd")
    return 1 if cur is None else 0


@command("zadd", -4, "write denyoom fast", "@sortedset", (1, 1, 1),
         **_z(summary="Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", since="1.2.0"))
def zadd(c, args):
    if len(args) == 4 and args[2].lower() not in _ZADD_FLAGS:
        return _zadd_one(c, args[1], score_arg(args[2]), args[3])
    i = 2
    flags = set()
    while i < len(args):
        opt = args[i].lower()
        if opt not in _ZADD_FLAGS:
            break
        flags.add(opt)
        i += 1
    rest = len(args) - i
    if rest % 2 or rest == 0:
        raise CommandError(SYNTAX)
    if b"nx" in flags and b"xx" in flags:
        raise CommandError("ERR XX and NX options at the same time are not compatible")
    if (b"gt" in flags and b"nx" in flags) or (b"lt" in flags and b"nx" in flags) or \
            (b"gt" in flags and b"lt" in flags):
        raise CommandError("ERR GT, LT, and/or NX options at the same time are not compatible")
    if b"incr" in flags and rest > 2:
        raise CommandError("ERR INCR option supports a single increment-element pair")
    pairs = [(score_arg(args[j]), args[j + 1]) for j in range(i, len(args), 2)]
    return _zadd(c, args[1], flags, pairs)


@command("zincrby", 4, "write denyoom fast", "@sortedset", (1, 1, 1),
         **_z(summary="Increments the score of a member in a sorted set.", since="1.2.0"))
def zincrby(c, args):
    return _zadd(c, args[1], {b"incr"}, [(score_arg(args[2]), args[3])])


@command("zrem", -3, "write fast", "@sortedset", (1, 1, 1),
         **_z(summary="Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", since="1.2.0"))
def zrem(c, args):
    zs = write_zset(c, args[1], create=False)
    if zs is None:
        return 0
    removed = 0
    for m in args[2:]:
        if zs.remove(m):
            removed += 1
    if removed:
        save_zset(c, args[1], zs, "zrem")
    return removed


# -- lookups ----------------------------------------------------------------------------------

@command("zcard", 2, "readonly fast", "@sortedset", (1, 1, 1),
         **_z(summary="Returns the number of members in a sorted set.", since="1.2.0"))
def zcard(c, args):
    zs = read_zset(c, args[1])
    return 0 if zs is None else zs.count


@command("zscore", 3, "readonly fast", "@sortedset", (1, 1, 1),
         **_z(summary="Returns the score of a member in a sorted set.", since="1.2.0"))
def zscore(c, args):
    zs = read_zset(c, args[1])
    score = None if zs is None else zs.score(args[2])
    return None if score is None else score_reply(c, score)


@command("zmscore", -3, "readonly fast", "@sortedset", (1, 1, 1),
         **_z(summary="Returns the score of one or more members in a sorted set.", since="6.2.0"))
def zmscore(c, args):
    zs = read_zset(c, args[1])
    out = []
    for m in args[2:]:
        score = None if zs is None else zs.score(m)
        out.append(None if score is None else score_reply(c, score))
    return out


def _zrank(c, args, reverse):
    name = "zrevrank" if reverse else "zrank"
    if len(args) > 4:
        raise CommandError(f"ERR wrong number of arguments for '{name}' command")
    withscore = False
    if len(args) == 4:
        if args[3].lower() != b"withscore":
            raise CommandError(SYNTAX)
        withscore = True
    null = NULL_ARRAY if withscore else None
    zs = read_zset(c, args[1])
    if zs is None:
        return null
    found = zs.rank(args[2], reverse)
    if found is None:
        return null
    rank, score = found
    return [rank, score_reply(c, score)] if withscore else rank


@command("zrank", -3, "readonly fast", "@sortedset", (1, 1, 1),
         **_z(summary="Returns the index of a member in a sorted set ordered by ascending scores.", since="2.0.0"))
def zrank(c, args):
    return _zrank(c, args, False)


@command("zrevrank", -3, "readonly fast", "@sortedset", (1, 1, 1),
         **_z(summary="Returns the index of a member in a sorted set ordered by descending scores.", since="2.0.0"))
def zrevrank(c, args):
    return _zrank(c, args, True)


@command("zcount", 4, "readonly fast", "@sortedset", (1, 1, 1),
         **_z(summary="Returns the count of members in a sorted set that have scores within a range.", since="2.0.0"))
def zcount(c, args):
    lo, lo_ex = score_bound(args[2])
    hi, hi_ex = score_bound(args[3])
    zs = read_zset(c, args[1])
    if zs is None:
        return 0
    return zs.count_range(*zs.score_range(lo, lo_ex, hi, hi_ex))


@command("zlexcount", 4, "readonly fast", "@sortedset", (1, 1, 1),
         **_z(summary="Returns the number of members in a sorted set within a lexicographical range.", since="2.8.9"))
def zlexcount(c, args):
    lo, hi = lex_bound(args[2]), lex_bound(args[3])
    zs = read_zset(c, args[1])
    if zs is None:
        return 0
    return zs.count_range(*zs.lex_range(lo, hi))

