"""Sorted-set ranges: ZRANGE (BYSCORE BYLEX REV LIMIT WITHSCORES) and its legacy
forms, ZRANGESTORE, and the range removals ZREMRANGEBYRANK/BYSCORE/BYLEX. A range
costs O(log n) to its start (the rank index) and then one scan of the score index."""
from .registry import SYNTAX, CommandError, command, int_arg
from .zsets import lex_bound, pairs_reply, rank_range, read_zset, save_zset, score_bound, store_result, write_zset

CHUNK = 1024          # elements removed per scan by the range removals


def _z(**kw):
    return dict(group="sorted-set", **kw)


# -- ranges ------------------------------------------------------------------------------------

RANK, SCORE, LEX = "rank", "score", "lex"
REV = "rev"           # REV was given (while parsing ZRANGE's options)


def _zrange(c, args, first, store, rangetype, reverse):
    """Redis's zrangeGenericCommand: args[first] is the source key, then min and max
    and the options; store: the destination key (ZRANGESTORE) or None. rangetype or
    reverse None: chosen by the BYSCORE/BYLEX and REV options (ZRANGE, ZRANGESTORE);
    the legacy commands fix both and refuse those options. Returns the reply, or the
    stored count."""
    key = args[first]
    withscores = False
    offset, limit = 0, -1
    j = first + 3
    while j < len(args):
        opt = args[j].lower()
        left = len(args) - j - 1
        if not store and opt == b"withscores":
            withscores = True
        elif opt == b"limit" and left >= 2:
            offset = int_arg(args[j + 1])
            limit = int_arg(args[j + 2])
            j += 2
        elif reverse is None and opt == b"rev":
            reverse = REV
        elif rangetype is None and opt == b"bylex":
            rangetype = LEX
        elif rangetype is None and opt == b"byscore":
            rangetype = SCORE
        else:
            raise CommandError(SYNTAX)
        j += 1
    reverse = reverse is REV or reverse is True
    rangetype = rangetype or RANK
    if limit != -1 and rangetype == RANK:
        raise CommandError("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
    if withscores and rangetype == LEX:
        raise CommandError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    a, b = args[first + 1], args[first + 2]
    if reverse and rangetype != RANK:
        a, b = b, a
    if rangetype == RANK:
        start, stop = int_arg(a), int_arg(b)
    elif rangetype == SCORE:
        lo, hi = score_bound(a), score_bound(b)
    else:
        lo, hi = lex_bound(a), lex_bound(b)
    zs = read_zset(c, key)
    if zs is None:
        items = []
    elif rangetype == RANK:
        r = rank_range(start, stop, zs.count)
        if r is not None and not withscores and not store:
            return zs.by_rank(r[0], r[1], reverse, scores=None)     # the members: the reply as it is
        items = [] if r is None else zs.by_rank(r[0], r[1], reverse, scores=withscores or bool(store))
    else:
        if rangetype == SCORE:
            s, e = zs.score_range(lo[0], lo[1], hi[0], hi[1])
        else:
            s, e = zs.lex_range(lo, hi)
        items = zs.by_keys(s, e, reverse, offset, limit, scores=withscores or bool(store))
    if store:
        return store_result(c, store, items, "zrangestore")
    return pairs_reply(c, items, withscores)


@command("zrange", -4, "readonly", "@sortedset", (1, 1, 1),
         **_z(summary="Returns members in a sorted set within a range of indexes.", since="1.2.0"))
def zrange(c, args):
    return _zrange(c, args, 1, None, None, None)


@command("zrangestore", -5, "write denyoom", "@sortedset", (1, 2, 1),
         **_z(summary="Stores a range of members from sorted set in a key.", since="6.2.0"))
def zrangestore(c, args):
    return _zrange(c, args, 2, args[1], None, None)


@command("zrevrange", -4, "readonly", "@sortedset", (1, 1, 1),
         **_z(summary="Returns members in a sorted set within a range of indexes in reverse order.", since="1.2.0"))
def zrevrange(c, args):
    return _zrange(c, args, 1, None, RANK, True)


@command("zrangebyscore", -4, "readonly", "@sortedset", (1, 1, 1),
         **_z(summary="Returns members in a sorted set within a range of scores.", since="1.0.5"))
def zrangebyscore(c, args):
    return _zrange(c, args, 1, None, SCORE, False)


@command("zrevrangebyscore", -4, "readonly", "@sortedset", (1, 1, 1),
         **_z(summary="Returns members in a sorted set within a range of scores in reverse order.", since="2.2.0"))
def zrevrangebyscore(c, args):
    return _zrange(c, args, 1, None, SCORE, True)


@command("zrangebylex", -4, "readonly", "@sortedset", (1, 1, 1),
         **_z(summary="Returns members in a sorted set within a lexicographical range.", since="2.8.9"))
def zrangebylex(c, args):
    return _zrange(c, args, 1, None, LEX, False)


@command("zrevrangebylex", -4, "readonly", "@sortedset", (1, 1, 1),
         **_z(summary="Returns members in a sorted set within a lexicographical range in reverse order.", since="2.8.9"))
def zrevrangebylex(c, args):
    return _zrange(c, args, 1, None, LEX, True)


# -- range removals -------------------------------------------------------------------------------

def _remove_keys(c, key, zs, start, n, event):
    """Removes the n elements from element key `start` on (the whole key when that is
    all of it), in chunks; returns n."""
    if n <= 0:
        return 0
    ks = c.server.ks
    if n >= zs.count:
        ks.remove(c.db, key, zs.entry, event=None)
        c.server.key_changed(c.db, key, event)
        c.server.key_changed(c.db, key, "del")
        return n
    if n * 2 >= zs.count and n > 8:
        zs.bulk()
    left = n
    while left:
        chunk = zs.by_keys(start, None, False, 0, min(left, CHUNK))
        if not chunk:
            raise CommandError("ERR sorted set index is inconsistent")
        for m, s in chunk:
            zs.remove_known(m, s)
        left -= len(chunk)
    save_zset(c, key, zs, event)
    return n


@command("zremrangebyrank", 4, "write", "@sortedset", (1, 1, 1),
         **_z(summary="Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", since="2.0.0"))
def zremrangebyrank(c, args):
    start, stop = int_arg(args[2]), int_arg(args[3])
    zs = write_zset(c, args[1], create=False)
    if zs is None:
        return 0
    r = rank_range(start, stop, zs.count)
    if r is None:
        return 0
    return _remove_keys(c, args[1], zs, zs.key_at(r[0]), r[1] - r[0] + 1, "zremrangebyrank")


@command("zremrangebyscore", 4, "write", "@sortedset", (1, 1, 1),
         **_z(summary="Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", since="1.2.0"))
def zremrangebyscore(c, args):
    lo, lo_ex = score_bound(args[2])
    hi, hi_ex = score_bound(args[3])
    zs = write_zset(c, args[1], create=False)
    if zs is None:
        return 0
    s, e = zs.score_range(lo, lo_ex, hi, hi_ex)
    return _remove_keys(c, args[1], zs, s, zs.count_range(s, e), "zremrangebyscore")


@command("zremrangebylex", 4, "write", "@sortedset", (1, 1, 1),
         **_z(summary="Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", since="2.8.9"))
def zremrangebylex(c, args):
    lo, hi = lex_bound(args[2]), lex_bound(args[3])
    zs = write_zset(c, args[1], create=False)
    if zs is None:
        return 0
    s, e = zs.lex_range(lo, hi)
    return _remove_keys(c, args[1], zs, s, zs.count_range(s, e), "zremrangebylex")
