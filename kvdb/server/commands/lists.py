"""List commands, blocking ones included. Storage is kvdb/server/liststore.py (one
sub-record per element at a position between the list's head and tail), so the
ends cost one engine operation per element and LINDEX/LSET one lookup.

Argument checks run in Redis's order (some commands look the key up before
parsing a number, others after), so that the same bad call gets the same error.
"""
from kvdb.server.protocol.resp import NULL_ARRAY, OK

from ..blocking import blocking_allowed, timeout_arg
from ..keyspace import WrongType
from ..liststore import open_read, open_write
from .registry import SYNTAX, CommandError, command, int_arg, numkeys_keys

POSITIVE = "ERR value is out of range, must be positive"


def _l(**kw):
    return dict(group="list", **kw)


def _side(arg):
    """LEFT -> True, RIGHT -> False (case-insensitive), else a syntax error."""
    low = arg.lower()
    if low == b"left":
        return True
    if low == b"right":
        return False
    raise CommandError(SYNTAX)


def _emptied(c, key, event, exists):
    """Notifies event on key, and `del` when the command emptied (so deleted) it."""
    c.server.key_changed(c.db, key, event)
    if not exists:
        c.server.key_changed(c.db, key, "del")


# -- pushes --------------------------------------------------------------------------------

def _push(c, args, left, existing_only):
    key = args[1]
    ref = open_write(c.server.ks, c.db, key, create=not existing_only)
    if ref is None:
        return 0
    ref.push(args[2:], left)
    ref.save()
    c.server.key_changed(c.db, key, "lpush" if left else "rpush")
    return len(ref)


@command("lpush", -3, "write denyoom fast", "@list", (1, 1, 1), **_l(summary="Prepends one or more elements to a list. Creates the key if it doesn't exist."))
def lpush(c, args):
    return _push(c, args, True, False)


@command("rpush", -3, "write denyoom fast", "@list", (1, 1, 1), **_l(summary="Appends one or more elements to a list. Creates the key if it doesn't exist."))
def rpush(c, args):
    return _push(c, args, False, False)


@command("lpushx", -3, "write denyoom fast", "@list", (1, 1, 1), **_l(summary="Prepends one or more elements to a list only when the list exists.", since="2.2.0"))
def lpushx(c, args):
    return _push(c, args, True, True)


@command("rpushx", -3, "write denyoom fast", "@list", (1, 1, 1), **_l(summary="Appends one or more elements to a list only when the list exists.", since="2.2.0"))
def rpushx(c, args):
    return _push(c, args, False, True)


# -- pops ----------------------------------------------------------------------------------

def _pop_from(c, key, left, count):
    """Pops up to count elements of key (None when the key is absent); notifies."""
    ref = open_write(c.server.ks, c.db, key, create=False)
    if ref is None or not len(ref):
        return None
    values = ref.pop(count, left)
    _emptied(c, key, "lpop" if left else "rpop", ref.save())
    return values


def _pop(c, args, left):
    if len(args) > 3:
        raise CommandError(f"ERR wrong number of arguments for '{args[0].decode('utf-8', 'replace').lower()}' command")
    count = None
    if len(args) == 3:
        count = int_arg(args[2], POSITIVE)
        if count < 0:
            raise CommandError(POSITIVE)
    if count == 0:
        ref = open_read(c.server.ks, c.db, args[1])
        return NULL_ARRAY if ref is None else []
    values = _pop_from(c, args[1], left, count or 1)
    if values is None:
        return None if count is None else NULL_ARRAY
    return values if count is not None else values[0]


@command("lpop", -2, "write fast", "@list", (1, 1, 1), **_l(summary="Returns the first elements in a list after removing it. Deletes the list if the last element was popped."))
def lpop(c, args):
    return _pop(c, args, True)


@command("rpop", -2, "write fast", "@list", (1, 1, 1), **_l(summary="Returns and removes the last elements of a list. Deletes the list if the last element was popped."))
def rpop(c, args):
    return _pop(c, args, False)


# -- reads -----------------------------------------------------------------------------------

@command("llen", 2, "readonly fast", "@list", (1, 1, 1), **_l(summary="Returns the length of a list."))
def llen(c, args):
    ref = open_read(c.server.ks, c.db, args[1])
    return 0 if ref is None else len(ref)


@command("lrange", 4, "readonly", "@list", (1, 1, 1), **_l(summary="Returns a range of elements from a list."))
def lrange(c, args):
    start, stop = int_arg(args[2]), int_arg(args[3])
    ref = open_read(c.server.ks, c.db, args[1])
    return [] if ref is None else ref.range(start, stop)


@command("lindex", 3, "readonly", "@list", (1, 1, 1), **_l(summary="Returns an element from a list by its index."))
def lindex(c, args):
    ref = open_read(c.server.ks, c.db, args[1])
    if ref is None:
        c.server.stats.hit(False)
        return None
    c.server.stats.hit(True)
    return ref.get(int_arg(args[2]))


@command("lpos", -3, "readonly", "@list", (1, 1, 1), **_l(summary="Returns the index of matching elements in a list.", since="6.0.6"))
def lpos(c, args):
    rank, count, maxlen = 1, None, 0
    i = 3
    while i < len(args):
        opt = args[i].lower()
        if i + 1 >= len(args):
            raise CommandError(SYNTAX)
        value = args[i + 1]
        if opt == b"rank":
            rank = int_arg(value)
            if rank == -(1 << 63):
                raise CommandError("ERR value is out of range, value must between -9223372036854775807 and "
                                   "9223372036854775807")
            if rank == 0:
                raise CommandError("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second "
                                   "... or use negative to start from the end of the list")
        elif opt == b"count":
            count = int_arg(value, "ERR COUNT can't be negative")
            if count < 0:
                raise CommandError("ERR COUNT can't be negative")
        elif opt == b"maxlen":
            maxlen = int_arg(value, "ERR MAXLEN can't be negative")
            if maxlen < 0:
                raise CommandError("ERR MAXLEN can't be negative")
        else:
            raise CommandError(SYNTAX)
        i += 2
    ref = open_read(c.server.ks, c.db, args[1])
    if ref is None:
        return [] if count is not None else None
    found = ref.positions(args[2], rank, 1 if count is None else count, maxlen)
    if count is not None:
        return found
    return found[0] if found else None


# -- changes in place ----------------------------------------------------------------------

@command("lset", 4, "write denyoom", "@list", (1, 1, 1), **_l(summary="Sets the value of an element in a list by its index."))
def lset(c, args):
    ref = open_write(c.server.ks, c.db, args[1], create=False)
    if ref is None:
        raise CommandError("ERR no such key")
    if not ref.set(int_arg(args[2]), args[3]):
        raise CommandError("ERR index out of range")
    c.server.key_changed(c.db, args[1], "lset")
    return OK


@command("linsert", 5, "write denyoom", "@list", (1, 1, 1), **_l(summary="Inserts an element before or after another element in a list.", since="2.2.0"))
def linsert(c, args):
    where = args[2].lower()
    if where not in (b"before", b"after"):
        raise CommandError(SYNTAX)
    ref = open_write(c.server.ks, c.db, args[1], create=False)
    if ref is None:
        return 0
    index = ref.find(args[3])
    if index < 0:
        return -1
    ref.insert(index if where == b"before" else index + 1, args[4])
    ref.save()
    c.server.key_changed(c.db, args[1], "linsert")
    return len(ref)


@command("lrem", 4, "write", "@list", (1, 1, 1), **_l(summary="Removes elements from a list. Deletes the list if the last element was removed."))
def lrem(c, args):
    count = int_arg(args[2])
    ref = open_write(c.server.ks, c.db, args[1], create=False)
    if ref is None:
        return 0
    removed = ref.remove(args[3], count)
    if removed:
        exists = len(ref) > 0 and ref.save()
        _emptied(c, args[1], "lrem", exists)
    return removed


@command("ltrim", 4, "write", "@list", (1, 1, 1), **_l(summary="Removes elements from both ends a list. Deletes the list if all elements were trimmed."))
def ltrim(c, args):
    start, stop = int_arg(args[2]), int_arg(args[3])
    ref = open_write(c.server.ks, c.db, args[1], create=False)
    if ref is None:
        return OK
    exists = ref.trim(start, stop) and ref.save()
    _emptied(c, args[1], "ltrim", exists)
    return OK


# -- moves -----------------------------------------------------------------------------------

def _move(c, src, dst, from_left, to_left):
    """LMOVE: the element moved, or None when src is absent (or empty)."""
    ks = c.server.ks
    sref = open_write(ks, c.db, src, create=False)
    if sref is None or not len(sref):
        return None
    if src == dst:
        value = sref.pop(1, from_left)[0]
        sref.push([value], to_left)
        sref.save()
        c.server.key_changed(c.db, dst, "lpush" if to_left else "rpush")
        c.server.key_changed(c.db, src, "lpop" if from_left else "rpop")
        return value
    dref = open_write(ks, c.db, dst, create=True)  # WrongType before anything is popped
    value = sref.pop(1, from_left)[0]
    dref.push([value], to_left)
    dref.save()
    exists = sref.save()
    c.server.key_changed(c.db, dst, "lpush" if to_left else "rpush")
    _emptied(c, src, "lpop" if from_left else "rpop", exists)
    return value


@command("lmove", 5, "write denyoom", "@list", (1, 2, 1), **_l(summary="Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.", since="6.2.0"))
def lmove(c, args):
    from_left, to_left = _side(args[3]), _side(args[4])
    return _move(c, args[1], args[2], from_left, to_left)


@command("rpoplpush", 3, "write denyoom", "@list", (1, 2, 1), **_l(summary="Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.", since="1.2.0"))
def rpoplpush(c, args):
    return _move(c, args[1], args[2], False, True)


# -- LMPOP -------------------------------------------------------------------------------------

def _mpop_args(args, at):
    """(keys, left, count) of LMPOP's arguments from numkeys at args[at]."""
    numkeys = int_arg(args[at], "ERR numkeys should be greater than 0")
    if numkeys <= 0:
        raise CommandError("ERR numkeys should be greater than 0")
    where = at + 1 + numkeys
    if where >= len(args):
        raise CommandError(SYNTAX)
    keys = args[at + 1:where]
    left = _side(args[where])
    count = None
    i = where + 1
    while i < len(args):
        if count is None and args[i].lower() == b"count" and i + 1 < len(args):
            count = int_arg(args[i + 1], "ERR count should be greater than 0")
            if count <= 0:
                raise CommandError("ERR count should be greater than 0")
            i += 2
        else:
            raise CommandError(SYNTAX)
    return keys, left, count or 1


def _mpop_try(c, keys, left, count, skip_wrongtype=False):
    """[key, [elements]] from the first non-empty list of keys, or None."""
    for key in keys:
        try:
            values = _pop_from(c, key, left, count)
        except WrongType:
            if skip_wrongtype:
                continue  # a waiter ignores a key that now holds another type, as in Redis
            raise
        if values is not None:
            return [key, values]
    return None


@command("lmpop", -4, "write movablekeys", "@list", (0, 0, 0), key_finder=numkeys_keys(1), **_l(summary="Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.", since="7.0.0"))
def lmpop(c, args):
    keys, left, count = _mpop_args(args, 1)
    reply = _mpop_try(c, keys, left, count)
    return NULL_ARRAY if reply is None else reply


# -- blocking ----------------------------------------------------------------------------------

def _block(c, keys, timeout, retry):
    return c.server.blocking.block(c, c.db, keys, timeout, retry, NULL_ARRAY)


def _bpop(c, args, left):
    keys = args[1:-1]
    timeout = timeout_arg(args[-1])

    def attempt(skip_wrongtype):
        reply = _mpop_try(c, keys, left, 1, skip_wrongtype)
        return None if reply is None else [reply[0], reply[1][0]]

    reply = attempt(False)
    if reply is not None:
        return reply
    if not blocking_allowed(c):
        return NULL_ARRAY
    return _block(c, keys, timeout, lambda: attempt(True))


@command("blpop", -3, "write noscript blocking", "@list @blocking", (1, -2, 1), **_l(summary="Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", since="2.0.0"))
def blpop(c, args):
    return _bpop(c, args, True)


@command("brpop", -3, "write noscript blocking", "@list @blocking", (1, -2, 1), **_l(summary="Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", since="2.0.0"))
def brpop(c, args):
    return _bpop(c, args, False)


def _bmove(c, src, dst, from_left, to_left, timeout):
    ref = open_read(c.server.ks, c.db, src)
    if ref is not None and len(ref):
        return _move(c, src, dst, from_left, to_left)
    if not blocking_allowed(c):
        return None

    def retry():
        try:
            if open_read(c.server.ks, c.db, src) is None:
                return None
        except WrongType:
            return None  # src holds another type now: keep waiting, as Redis does
        return _move(c, src, dst, from_left, to_left)

    return _block(c, [src], timeout, retry)


@command("blmove", 6, "write denyoom noscript blocking", "@list @blocking", (1, 2, 1), **_l(summary="Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", since="6.2.0"))
def blmove(c, args):
    from_left, to_left = _side(args[3]), _side(args[4])
    timeout = timeout_arg(args[5])
    return _bmove(c, args[1], args[2], from_left, to_left, timeout)


@command("brpoplpush", 4, "write denyoom noscript blocking", "@list @blocking", (1, 2, 1), **_l(summary="Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", since="2.2.0"))
def brpoplpush(c, args):
    timeout = timeout_arg(args[3])
    return _bmove(c, args[1], args[2], False, True, timeout)


@command("blmpop", -5, "write blocking movablekeys", "@list @blocking", (0, 0, 0), key_finder=numkeys_keys(2), **_l(summary="Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", since="7.0.0"))
def blmpop(c, args):
    keys, left, count = _mpop_args(args, 2)
    timeout = timeout_arg(args[1])
    reply = _mpop_try(c, keys, left, count)
    if reply is not None:
        return reply
    if not blocking_allowed(c):
        return NULL_ARRAY
    return _block(c, keys, timeout, lambda: _mpop_try(c, keys, left, count, True))
