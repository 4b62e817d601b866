"""Set commands. Members are ordered sub-records of the key's collection version
(kvdb/server/setstore.py, docs/format/server-keys.md (Sets)): membership is one lookup,
SCARD reads the meta record alone, random members come from seeks, and the set
algebra streams its sources instead of loading them.

Replies follow Redis 7: SMEMBERS, SINTER, SUNION, SDIFF and SPOP with a count are
RESP3 sets (a Python set; RESP2 sends it as an array, here in member order);
SRANDMEMBER with a count is an array."""
import itertools

from ..encodings import encoding
from ..glob import glob_match
from ..keyspace import TYPE_SET, Coll, Entry, check_name
from ..setsample import Sampler, forget, pop_member
from ..setstore import KIND, contains, diff, inter, members, union
from .keys import decode_cursor, encode_cursor, parse_scan_options
from .registry import SYNTAX, CommandError, command, int_arg, numkeys_keys

MAX_LONG = (1 << 63) - 1
RANDMEMBER_RANGE = f"ERR value is out of range, value must between {-MAX_LONG} and {MAX_LONG}"
NOT_POSITIVE = "ERR value is out of range, must be positive"


def _s(**kw):
    return dict(group="set", **kw)


def _as_set_reply(c, items):
    """A RESP3 set under RESP3, else an array (in the order given)."""
    return set(items) if c.proto >= 3 else list(items)


def _read(c, key):
    """(prefix of key's member records, count), or (None, 0) when the key is absent."""
    e, coll = c.server.ks.collection(c.db, key, TYPE_SET)
    if e is None:
        return None, 0
    return coll.prefix(c.db, KIND), coll.count


def _sources(c, keys):
    """[(prefix, count) or None] for each key, checking every key's type first (Redis
    replies WRONGTYPE before computing anything)."""
    return [(p, n) if p is not None else None for p, n in (_read(c, k) for k in keys)]


def _emptied(c, key, e, event):
    """Notifications after members were removed from key: event, and del if it emptied."""
    c.server.key_changed(c.db, key, event)
    if e.body.count == 0:
        c.server.key_changed(c.db, key, "del")


# -- members -----------------------------------------------------------------------------

@command("sadd", -3, "write denyoom fast", "@set", (1, 1, 1),
         **_s(summary="Adds one or more members to a set. Creates the key if it doesn't exist."))
def sadd(c, args):
    ks = c.server.ks
    e = ks.collection_for_write(c.db, args[1], TYPE_SET)
    new = list(dict.fromkeys(args[2:]))
    for m in new:
        check_name(m, "member")
    store = ks.store
    prefix = e.body.prefix(c.db, KIND)
    added = 0
    for m in new:
        if e.is_new or store.get(prefix + m) is None:
            store.put(prefix + m, b"")
            added += 1
    if added:
        e.body.count += added
        ks.save(c.db, args[1], e)
        forget(prefix)
        c.server.key_changed(c.db, args[1], "sadd")
    return added


@command("srem", -3, "write fast", "@set", (1, 1, 1), **_s(summary="Removes one or more members from a set."))
def srem(c, args):
    ks = c.server.ks
    e = ks.collection_for_write(c.db, args[1], TYPE_SET, create=False)
    if e is None:
        return 0
    store = ks.store
    prefix = e.body.prefix(c.db, KIND)
    removed = 0
    for m in dict.fromkeys(args[2:]):
        if contains(store, prefix, m):
            store.delete(prefix + m)
            removed += 1
    if removed:
        e.body.count -= removed
        ks.save(c.db, args[1], e)
        _emptied(c, args[1], e, "srem")
    return removed


@command("smembers", 2, "readonly", "@set", (1, 1, 1), **_s(summary="Returns all members of a set."))
def smembers(c, args):
    prefix, _ = _read(c, args[1])
    if prefix is None:
        return _as_set_reply(c, ())
    return _as_set_reply(c, members(c.server.ks.store, prefix))


@command("sismember", 3, "readonly fast", "@set", (1, 1, 1),
         **_s(summary="Determines whether a member belongs to a set."))
def sismember(c, args):
    prefix, _ = _read(c, args[1])
    return 1 if prefix is not None and contains(c.server.ks.store, prefix, args[2]) else 0


@command("smismember", -3, "readonly fast", "@set", (1, 1, 1),
         **_s(summary="Determines whether multiple members belong to a set.", since="6.2.0"))
def smismember(c, args):
    prefix, _ = _read(c, args[1])
    if prefix is None:
        return [0] * (len(args) - 2)
    store = c.server.ks.store
    return [1 if contains(store, prefix, m) else 0 for m in args[2:]]


@command("scard", 2, "readonly fast", "@set", (1, 1, 1), **_s(summary="Returns the number of members in a set."))
def scard(c, args):
    return _read(c, args[1])[1]


@command("smove", 4, "write fast", "@set", (1, 2, 1), **_s(summary="Moves a member from one set to another."))
def smove(c, args):
    ks = c.server.ks
    src, dst, m = args[1], args[2], args[3]
    se = ks.collection_for_write(c.db, src, TYPE_SET, create=False)
    if se is None:
        return 0
    store = ks.store
    sprefix = se.body.prefix(c.db, KIND)
    if src == dst:
        return 1 if contains(store, sprefix, m) else 0
    de = ks.collection_for_write(c.db, dst, TYPE_SET)     # WRONGTYPE before anything changes
    if not contains(store, sprefix, m):
        return 0
    store.delete(sprefix + m)
    se.body.count -= 1
    ks.save(c.db, src, se)
    _emptied(c, src, se, "srem")
    dprefix = de.body.prefix(c.db, KIND)
    if de.is_new or store.get(dprefix + m) is None:
        store.put(dprefix + m, b"")
        forget(dprefix)
        de.body.count += 1
        ks.save(c.db, dst, de)
        c.server.key_changed(c.db, dst, "sadd")
    return 1


# -- random members ----------------------------------------------------------------------

@command("spop", -2, "write fast", "@set", (1, 1, 1),
         **_s(summary="Returns one or more random members from a set after removing them. Deletes the set if "
                      "the last member was popped."))
def spop(c, args):
    if len(args) > 3:
        raise CommandError(SYNTAX)
    ks = c.server.ks
    key = args[1]
    count = None
    if len(args) == 3:
        count = int_arg(args[2], NOT_POSITIVE)
        if count < 0:
            raise CommandError(NOT_POSITIVE)
    e = ks.collection_for_write(c.db, key, TYPE_SET, create=False)
    if e is None:
        return None if count is None else _as_set_reply(c, ())
    if count == 0:
        return _as_set_reply(c, ())
    store = ks.store
    coll = e.body
    prefix = coll.prefix(c.db, KIND)
    if count is not None and count >= coll.count:
        # The whole set: stream it into the reply, then drop the key (its records go
        # to the garbage collector when there are many).
        out = _as_set_reply(c, members(store, prefix))
        ks.remove(c.db, key, e, event=None)
        c.server.key_changed(c.db, key, "spop")
        c.server.key_changed(c.db, key, "del")
        return out
    if count is None:
        chosen = [pop_member(store, prefix, coll.count)]
    else:
        chosen = Sampler(store, prefix, coll.count).distinct(count)
    for m in chosen:       # sampled before any delete: the scans saw no pending writes
        store.delete(prefix + m)
    coll.count -= len(chosen)
    ks.save(c.db, key, e)
    _emptied(c, key, e, "spop")
    return chosen[0] if count is None else _as_set_reply(c, chosen)


@command("srandmember", -2, "readonly", "@set", (1, 1, 1),
         **_s(summary="Get one or multiple random members from a set"))
def srandmember(c, args):
    if len(args) > 3:
        raise CommandError(SYNTAX)
    count = None
    if len(args) == 3:
        count = int_arg(args[2])
        if count < -MAX_LONG:
            raise CommandError(RANDMEMBER_RANGE)
    prefix, size = _read(c, args[1])
    if prefix is None:
        return None if count is None else []
    sampler = Sampler(c.server.ks.store, prefix, size)
    if count is None:
        return sampler.pick()
    if count == 0:
        return []
    if count < 0:
        return sampler.repeated(-count)
    if count >= size:
        return list(members(c.server.ks.store, prefix))
    return sampler.distinct(count)


# -- algebra -----------------------------------------------------------------------------

def _inter_stream(c, keys):
    """The intersection's members (a generator), or () when a source is empty."""
    sources = _sources(c, keys)
    if any(s is None for s in sources):
        return ()
    return inter(c.server.ks.store, sources)


def _union_stream(c, keys):
    sources = _sources(c, keys)
    return union(c.server.ks.store, [s[0] for s in sources if s is not None])


def _diff_stream(c, keys):
    sources = _sources(c, keys)
    if sources[0] is None:
        return ()
    return diff(c.server.ks.store, sources[0][0], [s[0] for s in sources[1:] if s is not None])


def _store(c, dst, stream, event):
    """Writes the members of `stream` as a new set at dst, replacing whatever dst held
    (any type, its expiry dropped); an empty result deletes dst. Returns the count.
    The new set takes a fresh version, so the sources (dst may be one of them) are read
    unchanged while it is written; the old dst goes only after the last read."""
    ks = c.server.ks
    store = ks.store
    version = ks.new_version()
    coll = Coll(version)
    prefix = coll.prefix(c.db, KIND)
    for m in stream:
        store.put(prefix + m, b"")
        coll.count += 1
    old = ks.prepare_write(c.db, dst)
    if old is not None:
        ks.remove(c.db, dst, old, event=None)
    if coll.count == 0:
        if old is not None:
            c.server.key_changed(c.db, dst, "del")
        return 0
    ks.put_entry(c.db, dst, Entry(TYPE_SET, 0, coll))
    c.server.key_changed(c.db, dst, event)
    return coll.count


@command("sinter", -2, "readonly", "@set", (1, -1, 1), **_s(summary="Returns the intersect of multiple sets."))
def sinter(c, args):
    return _as_set_reply(c, _inter_stream(c, args[1:]))


@command("sunion", -2, "readonly", "@set", (1, -1, 1), **_s(summary="Returns the union of multiple sets."))
def sunion(c, args):
    return _as_set_reply(c, _union_stream(c, args[1:]))


@command("sdiff", -2, "readonly", "@set", (1, -1, 1), **_s(summary="Returns the difference of multiple sets."))
def sdiff(c, args):
    return _as_set_reply(c, _diff_stream(c, args[1:]))


@command("sinterstore", -3, "write denyoom", "@set", (1, -1, 1),
         **_s(summary="Stores the intersect of multiple sets in a key."))
def sinterstore(c, args):
    return _store(c, args[1], _inter_stream(c, args[2:]), "sinterstore")


@command("sunionstore", -3, "write denyoom", "@set", (1, -1, 1),
         **_s(summary="Stores the union of multiple sets in a key."))
def sunionstore(c, args):
    return _store(c, args[1], _union_stream(c, args[2:]), "sunionstore")


@command("sdiffstore", -3, "write denyoom", "@set", (1, -1, 1),
         **_s(summary="Stores the difference of multiple sets in a key."))
def sdiffstore(c, args):
    return _store(c, args[1], _diff_stream(c, args[2:]), "sdiffstore")


@command("sintercard", -3, "readonly movablekeys", "@set", (0, 0, 0), key_finder=numkeys_keys(1),
         **_s(summary="Returns the number of members of the intersect of multiple sets.", since="7.0.0"))
def sintercard(c, args):
    numkeys = int_arg(args[1], "ERR numkeys should be greater than 0")
    if numkeys < 1:
        raise CommandError("ERR numkeys should be greater than 0")
    if numkeys > len(args) - 2:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    limit = 0
    i = 2 + numkeys
    while i < len(args):
        if args[i].lower() == b"limit" and i + 1 < len(args):
            limit = int_arg(args[i + 1], "ERR LIMIT can't be negative")
            if limit < 0:
                raise CommandError("ERR LIMIT can't be negative")
            i += 2
        else:
            raise CommandError(SYNTAX)
    n = 0
    for _ in _inter_stream(c, args[2:2 + numkeys]):
        n += 1
        if n == limit:
            break
    return n


# -- iteration ---------------------------------------------------------------------------

def _redis_cursor(raw):
    """Whether Redis would accept raw as a SCAN cursor (C strtoul over all of it, no
    leading space, no overflow)."""
    text = raw.decode("latin-1")
    body = text[1:] if text[:1] in ("+", "-") else text
    return body.isascii() and body.isdigit() and int(body) < 1 << 64


@command("sscan", -3, "readonly", "@set", (1, 1, 1), **_s(summary="Iterates over members of a set.", since="2.8.0"))
def sscan(c, args):
    redis_cursor = _redis_cursor(args[2])
    try:
        after = decode_cursor(args[2])
    except CommandError:
        if not redis_cursor:
            raise
        after = None            # a cursor none of ours: only a small set's answer fits it
        redis_cursor = "foreign"
    e, coll = c.server.ks.collection(c.db, args[1], TYPE_SET)
    if e is None:               # Redis replies before looking at the options
        return [b"0", []]
    pattern, count, _, novalues = parse_scan_options(args, 3, False)
    if novalues:
        raise CommandError(SYNTAX)
    store = c.server.ks.store
    prefix = coll.prefix(c.db, KIND)
    if encoding(c.server, c.db, args[1], e) != "hashtable":
        # Like Redis's intset and listpack sets: every member at once, whatever the cursor.
        batch, last = list(members(store, prefix)), None
    elif redis_cursor == "foreign":
        batch, last = [], None
    else:
        batch = list(itertools.islice(members(store, prefix, after=after), count))
        last = batch[-1] if len(batch) >= count else None
    out = batch if pattern == b"*" else [m for m in batch if glob_match(pattern, m)]
    return [encode_cursor(last), out]
