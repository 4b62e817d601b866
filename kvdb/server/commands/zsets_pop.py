"""Sorted-set pops: ZPOPMIN ZPOPMAX ZMPOP and the blocking BZPOPMIN BZPOPMAX BZMPOP
(kvdb/server/blocking.py: a waiter retries when a key it waits on changes; inside
MULTI/EXEC and scripts they reply at once, as the non-blocking forms)."""
from kvdb.server.protocol.resp import NULL_ARRAY

from ..blocking import blocking_allowed, timeout_arg
from ..keyspace import WrongType
from .registry import SYNTAX, CommandError, command, int_arg, numkeys_keys
from .zsets import check_keys, pairs_reply, save_zset, score_reply, write_zset


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


@command("zmpop", -4, "write movablekeys", "@sortedset", (0, 0, 0), key_finder=numkeys_keys(1),
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


@command("bzmpop", -5, "write blocking movablekeys", "@sortedset", (0, 0, 0), key_finder=numkeys_keys(2),
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
