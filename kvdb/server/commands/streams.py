"""Stream commands without consumer groups: XADD XLEN XRANGE XREVRANGE XREAD XDEL
XTRIM XSETID (storage: kvdb/server/streamstore.py; groups: stream_groups.py and
stream_claims.py; XINFO: stream_info.py). Semantics, errors and reply shapes follow
Redis 7.2."""
from kvdb.server.protocol.resp import NULL_ARRAY, OK, Status

from ..blocking import blocking_allowed, timeout_arg
from ..keyspace import WrongType, now_ms
from ..streamnodes import LISTPACK_MAX
from ..streamstore import (MAX_ID, ZERO_ID, Stream, decr_id, format_id, incr_id, parse_id,
                           parse_interval)
from .registry import SYNTAX, CommandError, after_token_keys, command, int_arg

EQUAL_OR_SMALLER = "ERR The ID specified in XADD is equal or smaller than the target stream top item"


def _x(**kw):
    return dict(group="stream", **kw)


def node_entries(c):
    """stream-node-max-entries: entries per Redis node (0: no limit), the unit of
    approximate (~) trimming with node_bytes."""
    try:
        return max(int(c.server.config["stream-node-max-entries"]), 0)
    except (KeyError, TypeError, ValueError):
        return 100


def node_bytes(c):
    """stream-node-max-bytes: listpack bytes per Redis node (0: Redis's 1 GiB cap)."""
    try:
        n = int(c.server.config["stream-node-max-bytes"])
    except (KeyError, TypeError, ValueError):
        n = 4096
    return n if 0 < n <= LISTPACK_MAX else LISTPACK_MAX


def entry_reply(id_, fields):
    return [format_id(id_), fields]


def entries_reply(found):
    return [[format_id(i), f] for i, f in found]


# -- XADD / XTRIM --------------------------------------------------------------------------

class AddTrimArgs:
    """The options of XADD and XTRIM."""
    __slots__ = ("strategy", "threshold", "approx", "limit", "id", "id_given", "seq_given", "nomkstream", "idpos")

    def __init__(self):
        self.strategy = None       # None, "maxlen" or "minid"
        self.threshold = None      # MAXLEN length or MINID id
        self.approx = False        # '~' given
        self.limit = 0             # LIMIT (0: none)
        self.id = None             # XADD's explicit id
        self.id_given = False      # XADD got an id other than '*'
        self.seq_given = True      # False for 'ms-*'
        self.nomkstream = False    # XADD NOMKSTREAM
        self.idpos = 0             # position of XADD's id argument


def parse_add_trim(c, args, xadd):
    a = AddTrimArgs()
    limit_given = False
    n = len(args)
    i = 2
    while i < n:
        more = n - 1 - i
        opt = args[i]
        low = opt.lower()
        if xadd and opt == b"*":
            break
        if low in (b"maxlen", b"minid") and more:
            if a.strategy is not None:
                raise CommandError("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")
            a.approx = False
            nxt = args[i + 1]
            if more >= 2 and nxt == b"~":
                a.approx = True
                i += 1
            elif more >= 2 and nxt == b"=":
                i += 1
            if low == b"maxlen":
                a.threshold = int_arg(args[i + 1])
                if a.threshold < 0:
                    raise CommandError("ERR The MAXLEN argument must be >= 0.")
                a.strategy = "maxlen"
            else:
                a.threshold = parse_id(args[i + 1])[0]
                a.strategy = "minid"
            i += 1
        elif low == b"limit" and more:
            a.limit = int_arg(args[i + 1])
            if a.limit < 0:
                raise CommandError("ERR The LIMIT argument must be >= 0.")
            limit_given = True
            i += 1
        elif xadd and low == b"nomkstream":
            a.nomkstream = True
        elif xadd:
            a.id, a.seq_given = parse_id(opt, seq_star=True)
            a.id_given = True
            break
        else:
            raise CommandError(SYNTAX)
        i += 1
    if a.limit and a.strategy is None:
        raise CommandError("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
    if not xadd and a.strategy is None:
        raise CommandError("ERR syntax error, XTRIM must be called with a trimming strategy")
    if limit_given:
        if not a.approx:
            raise CommandError("ERR syntax error, LIMIT cannot be used without the special ~ option")
    elif a.approx:
        a.limit = 100 * node_entries(c)
        if a.limit <= 0 or a.limit > 10000:
            a.limit = 10000
    else:
        a.limit = 0
    a.idpos = i
    return a


def _trim(st, a):
    return st.trim(a.strategy, a.threshold, a.approx, a.limit)


def _next_id(st, a):
    last = st.meta.last
    if not a.id_given:
        ms = now_ms()
        return (ms, 0) if ms > last[0] else incr_id(last)
    if a.seq_given:
        return a.id
    if last[0] == a.id[0]:
        if last[1] == MAX_ID[1]:
            raise CommandError(EQUAL_OR_SMALLER)
        return (last[0], last[1] + 1)
    return a.id


@command("xadd", -5, "write denyoom fast", "@stream", (1, 1, 1),
         **_x(summary="Appends a new message to a stream. Creates the key if it doesn't exist.", since="5.0.0"))
def xadd(c, args):
    a = parse_add_trim(c, args, True)
    nfields = len(args) - a.idpos - 1
    if nfields < 2 or nfields % 2:
        raise CommandError("ERR wrong number of arguments for 'xadd' command")
    if a.id_given and a.seq_given and a.id == ZERO_ID:
        raise CommandError("ERR The ID specified in XADD must be greater than 0-0")
    st = Stream.open(c.server.ks, c.db, args[1], write=True, create=not a.nomkstream)
    if st is None:
        return None
    if st.meta.last == MAX_ID:
        raise CommandError("ERR The stream has exhausted the last possible ID, unable to add more items")
    id_ = _next_id(st, a)
    if id_ <= st.meta.last:
        raise CommandError(EQUAL_OR_SMALLER)
    st.append(id_, args[a.idpos + 1:], node_entries(c), node_bytes(c))
    trimmed = _trim(st, a) if a.strategy else 0
    st.save()
    c.server.key_changed(c.db, args[1], "xadd")
    if trimmed:
        c.server.key_changed(c.db, args[1], "xtrim")
    return format_id(id_)


@command("xtrim", -4, "write", "@stream", (1, 1, 1),
         **_x(summary="Deletes messages from the beginning of a stream.", since="5.0.0"))
def xtrim(c, args):
    a = parse_add_trim(c, args, False)
    st = Stream.open(c.server.ks, c.db, args[1], write=True)
    if st is None:
        return 0
    deleted = _trim(st, a)
    if deleted:
        st.save()
        c.server.key_changed(c.db, args[1], "xtrim")
    return deleted


# -- reading -------------------------------------------------------------------------------

@command("xlen", 2, "readonly fast", "@stream", (1, 1, 1),
         **_x(summary="Return the number of messages in a stream.", since="5.0.0"))
def xlen(c, args):
    st = Stream.open(c.server.ks, c.db, args[1])
    return 0 if st is None else st.length


def parse_range(start_arg, end_arg):
    """Inclusive (start, end) of XRANGE-style bounds, or raise Redis's errors."""
    start, ex = parse_interval(start_arg, 0)
    if ex:
        start = incr_id(start)
        if start is None:
            raise CommandError("ERR invalid start ID for the interval")
    end, ex = parse_interval(end_arg, MAX_ID[1])
    if ex:
        end = decr_id(end)
        if end is None:
            raise CommandError("ERR invalid end ID for the interval")
    return start, end


def _xrange(c, args, rev):
    start, end = parse_range(args[3], args[2]) if rev else parse_range(args[2], args[3])
    count = -1
    j = 4
    while j < len(args):
        if args[j].lower() == b"count" and j + 1 < len(args):
            count = max(int_arg(args[j + 1]), 0)
            j += 2
        else:
            raise CommandError(SYNTAX)
    st = Stream.open(c.server.ks, c.db, args[1])
    if st is None:
        return []
    if count == 0:
        return NULL_ARRAY
    return st.entry_replies(start, end, max(count, 0), rev=rev)


@command("xrange", -4, "readonly", "@stream", (1, 1, 1),
         **_x(summary="Returns the messages from a stream within a range of IDs.", since="5.0.0"))
def xrange(c, args):
    return _xrange(c, args, False)


@command("xrevrange", -4, "readonly", "@stream", (1, 1, 1),
         **_x(summary="Returns the messages from a stream within a range of IDs in reverse order.", since="5.0.0"))
def xrevrange(c, args):
    return _xrange(c, args, True)


def parse_read(c, args, group):
    """XREAD/XREADGROUP options: (count, timeout ms or None, noack, group, consumer, keys, id args)."""
    name = "xreadgroup" if group else "xread"
    count, timeout, noack = 0, None, False
    gname = cname = None
    streams = 0
    n = len(args)
    i = 1
    while i < n:
        more = n - i - 1
        o = args[i].lower()
        if o == b"block" and more:
            if getattr(c, "in_script", False):
                raise CommandError(f"ERR {args[0].decode('utf-8', 'replace')} command is not allowed with BLOCK "
                                   "option from scripts")
            i += 1
            timeout = timeout_arg(args[i], 0.001)
        elif o == b"count" and more:
            i += 1
            count = max(int_arg(args[i]), 0)
        elif o == b"streams" and more:
            streams = i + 1
            if (n - streams) % 2:
                symbol = ">" if group else "$"
                raise CommandError(f"ERR Unbalanced '{name}' list of streams: for each stream key an ID or "
                                   f"'{symbol}' must be specified.")
            break
        elif o == b"group" and more >= 2:
            if not group:
                raise CommandError("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.")
            gname, cname = args[i + 1], args[i + 2]
            i += 2
        elif o == b"noack":
            if not group:
                raise CommandError("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.")
            noack = True
        else:
            raise CommandError(SYNTAX)
        i += 1
    if not streams:
        raise CommandError(SYNTAX)
    if group and gname is None:
        raise CommandError("ERR Missing GROUP option for XREADGROUP")
    half = (n - streams) // 2
    return count, timeout, noack, gname, cname, args[streams:streams + half], args[streams + half:]


def read_reply(c, served):
    """XREAD's reply: [[key, entries], ...] (RESP2) or {key: entries} (RESP3); null array if none."""
    if not served:
        return NULL_ARRAY
    if c.proto >= 3:
        return dict(served)
    return [[k, v] for k, v in served]


@command("xread", -4, "readonly blocking movablekeys", "@stream @blocking", (0, 0, 0),
         key_finder=after_token_keys(b"streams"),
         **_x(summary="Returns messages from multiple streams with IDs greater than the ones requested. "
                      "Blocks until a message is available otherwise.", since="5.0.0"))
def xread(c, args):
    count, timeout, _, _, _, keys, idargs = parse_read(c, args, False)
    ks = c.server.ks
    after = []
    for key, arg in zip(keys, idargs):
        st = Stream.open(ks, c.db, key)
        if arg == b"$":
            after.append(st.meta.last if st is not None else ZERO_ID)
        elif arg == b">":
            raise CommandError("ERR The > ID can be specified only when calling XREADGROUP using the GROUP "
                               "<group> <consumer> option.")
        else:
            after.append(parse_id(arg)[0])

    def attempt():
        served = []
        for key, gt in zip(keys, after):
            try:
                st = Stream.open(ks, c.db, key)
            except WrongType:
                continue                   # (a blocked XREAD) the key became another type: keep waiting
            if st is None or st.length == 0:
                continue
            start = incr_id(gt)
            if start is None:
                continue
            found = st.entry_replies(start, MAX_ID, count)
            if found:
                served.append((key, found))
        return served

    served = attempt()
    if served or timeout is None:
        return read_reply(c, served)
    if not blocking_allowed(c):
        return NULL_ARRAY

    def retry():
        got = attempt()
        return read_reply(c, got) if got else None

    return c.server.blocking.block(c, c.db, keys, timeout, retry, NULL_ARRAY)


# -- deleting and setting ids ----------------------------------------------------------------

@command("xdel", -3, "write fast", "@stream", (1, 1, 1),
         **_x(summary="Returns the number of messages after removing them from a stream.", since="5.0.0"))
def xdel(c, args):
    st = Stream.open(c.server.ks, c.db, args[1], write=True)
    if st is None:
        return 0
    ids = [parse_id(a)[0] for a in args[2:]]
    deleted = st.delete_entries(ids)
    if deleted:
        st.save()
        c.server.key_changed(c.db, args[1], "xdel")
    return deleted


@command("xsetid", -3, "write denyoom fast", "@stream", (1, 1, 1),
         **_x(summary="An internal command for replicating stream values.", since="5.0.0"))
def xsetid(c, args):
    id_ = parse_id(args[2])[0]
    entries_added = -1
    max_deleted = ZERO_ID
    i = 3
    while i < len(args):
        more = len(args) - 1 - i
        opt = args[i].lower()
        if opt == b"entriesadded" and more:
            entries_added = int_arg(args[i + 1])
            if entries_added < 0:
                raise CommandError("ERR entries_added must be positive")
            i += 2
        elif opt == b"maxdeletedid" and more:
            max_deleted = parse_id(args[i + 1])[0]
            if id_ < max_deleted:
                raise CommandError("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id")
            i += 2
        else:
            raise CommandError(SYNTAX)
    st = Stream.open(c.server.ks, c.db, args[1], write=True)
    if st is None:
        raise CommandError("ERR no such key")
    m = st.meta
    if st.length:
        top = st.last_valid_id()
        if top is not None and id_ < top:
            raise CommandError("ERR The ID specified in XSETID is smaller than the target stream top item")
        if entries_added != -1 and st.length > entries_added:
            raise CommandError("ERR The entries_added specified in XSETID is smaller than the target stream length")
    m.last = id_
    if entries_added != -1:
        m.entries_added = entries_added
    if max_deleted != ZERO_ID:
        m.max_deleted = max_deleted
    st.save(force=True)
    c.server.key_changed(c.db, args[1], "xsetid")
    return OK


# -- helpers shared by the stream command modules --------------------------------------------

def status_lines(lines):
    return [Status(line) for line in lines]


def nogroup_for_key(group, key):
    return CommandError(f"NOGROUP No such consumer group '{group.decode('utf-8', 'replace')}' for key name "
                        f"'{key.decode('utf-8', 'replace')}'")
