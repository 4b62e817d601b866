"""Stream consumer groups: XGROUP, XREADGROUP, XACK and XPENDING (XCLAIM and XAUTOCLAIM:
stream_claims.py; storage: kvdb/server/streamstore.py). Pending-entry lists and group cursors are
records written in the command's transaction, so what a reply acknowledged is on
disk with it. Semantics, errors and reply shapes follow Redis 7.2."""
from kvdb.server.protocol.resp import NULL_ARRAY, OK

from ..blocking import blocking_allowed
from ..keyspace import now_ms
from ..streamstore import (INVALID_ENTRIES_READ, MAX_ID, ZERO_ID, Stream, check_group_names, format_id, incr_id,
                           parse_id)
from .registry import CommandError, after_token_keys, command, container, int_arg, subcommand
from .streams import entries_reply, entry_reply, nogroup_for_key, parse_range, parse_read, read_reply, status_lines


PEL_BATCH = 256   # pending entries read per scan by XPENDING


def _text(b):
    return b.decode("utf-8", "replace")


def nogroup(key, group, suffix=""):
    return CommandError(f"NOGROUP No such key '{_text(key)}' or consumer group '{_text(group)}'{suffix}")


# -- XGROUP ----------------------------------------------------------------------------------

container("xgroup", -2, "", "", summary="A container for consumer groups commands.", group="stream",
          since="5.0.0")

XGROUP_HELP = [
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
]


@subcommand("xgroup", "help", 2, "loading stale", "@stream", summary="Returns helpful text about the different "
            "subcommands.", since="5.0.0")
def xgroup_help(c, args):
    return status_lines(XGROUP_HELP)


def _subcommand_error(args):
    return CommandError(f"ERR unknown subcommand or wrong number of arguments for '{_text(args[1][:128])}'. "
                        "Try XGROUP HELP.")


def _entries_read_arg(arg):
    n = int_arg(arg)
    if n < 0 and n != INVALID_ENTRIES_READ:
        raise CommandError("ERR value for ENTRIESREAD must be positive or -1")
    return n


def _xgroup_open(c, args, mkstream=False, need_group=True):
    """(stream or None, group or None) for an XGROUP subcommand, with Redis's errors for
    a missing key (unless mkstream) or group (when need_group)."""
    st = Stream.open(c.server.ks, c.db, args[2], write=True)
    if st is None:
        if mkstream:
            return None, None
        raise CommandError("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want "
                           "to use the MKSTREAM option to create an empty stream automatically.")
    g = st.group(args[3])
    if g is None and need_group:
        raise nogroup_for_key(args[3], args[2])
    return st, g


def _group_start_id(arg, st):
    if arg == b"$":
        return st.meta.last if st is not None else ZERO_ID
    return parse_id(arg)[0]


@subcommand("xgroup", "create", -5, "write denyoom", "@stream", (2, 2, 1),
            summary="Creates a consumer group.", since="5.0.0")
def xgroup_create(c, args):
    mkstream = False
    entries_read = INVALID_ENTRIES_READ
    i = 5
    while i < len(args):
        opt = args[i].lower()
        if opt == b"mkstream":
            mkstream = True
            i += 1
        elif opt == b"entriesread" and i + 1 < len(args):
            entries_read = _entries_read_arg(args[i + 1])
            i += 2
        else:
            raise _subcommand_error(args)
    st, _ = _xgroup_open(c, args, mkstream=mkstream, need_group=False)
    if len(args) > 8:
        raise _subcommand_error(args)
    id_ = _group_start_id(args[4], st)
    check_group_names(args[3])
    if st is None:
        st = Stream.open(c.server.ks, c.db, args[2], write=True, create=True)
    if st.create_group(args[3], id_, entries_read) is None:
        raise CommandError("BUSYGROUP Consumer Group name already exists")
    st.save(force=True)
    c.server.key_changed(c.db, args[2], "xgroup-create")
    return OK


@subcommand("xgroup", "setid", -5, "write", "@stream", (2, 2, 1),
            summary="Sets the last-delivered ID of a consumer group.", since="5.0.0")
def xgroup_setid(c, args):
    entries_read = INVALID_ENTRIES_READ
    if len(args) == 7:
        if args[5].lower() != b"entriesread":
            raise _subcommand_error(args)
        entries_read = _entries_read_arg(args[6])
    elif len(args) != 5:
        raise _subcommand_error(args)
    st, g = _xgroup_open(c, args)
    g.last_id = _group_start_id(args[4], st)
    g.entries_read = entries_read
    st.touch_group(g)
    st.save()
    c.server.key_changed(c.db, args[2], "xgroup-setid")
    return OK


@subcommand("xgroup", "destroy", 4, "write", "@stream", (2, 2, 1),
            summary="Destroys a consumer group.", since="5.0.0")
def xgroup_destroy(c, args):
    st, g = _xgroup_open(c, args, need_group=False)
    if g is None:
        return 0
    st.destroy_group(g)
    st.save()
    c.server.key_changed(c.db, args[2], "xgroup-destroy")   # also wakes XREADGROUPs on it: -NOGROUP
    return 1


@subcommand("xgroup", "createconsumer", 5, "write denyoom", "@stream", (2, 2, 1),
            summary="Creates a consumer in a consumer group.", since="6.2.0")
def xgroup_createconsumer(c, args):
    st, g = _xgroup_open(c, args)
    _, created = st.create_consumer(g, args[4], now_ms())
    if not created:
        return 0
    st.save()
    c.server.key_changed(c.db, args[2], "xgroup-createconsumer")
    return 1


@subcommand("xgroup", "delconsumer", 5, "write", "@stream", (2, 2, 1),
            summary="Deletes a consumer from a consumer group.", since="5.0.0")
def xgroup_delconsumer(c, args):
    st, g = _xgroup_open(c, args)
    con = st.consumer(g, args[4])
    if con is None:
        return 0
    pending = st.delete_consumer(g, con)
    st.save()
    c.server.key_changed(c.db, args[2], "xgroup-delconsumer")
    return pending


# -- XREADGROUP --------------------------------------------------------------------------------

@command("xreadgroup", -7, "write blocking movablekeys", "@stream @blocking", (0, 0, 0),
         key_finder=after_token_keys(b"streams"),
         group="stream", summary="Returns new or historical messages from a stream for a consumer in a group. "
                                 "Blocks until a message is available otherwise.", since="5.0.0")
def xreadgroup(c, args):
    count, timeout, noack, gname, cname, keys, idargs = parse_read(c, args, True)
    ks = c.server.ks
    after = []                       # per stream: None for '>', else the id to read the PEL after
    for key, arg in zip(keys, idargs):
        st = Stream.open(ks, c.db, key)
        if st is None or st.group(gname) is None:
            raise nogroup(key, gname, " in XREADGROUP with GROUP option")
        if arg == b"$":
            raise CommandError("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the "
                               "history of this consumer by specifying a proper ID, or use the > ID to get new "
                               "messages. The $ ID would just return an empty result set.")
        if arg == b">":
            after.append(None)
        else:
            id_ = parse_id(arg)[0]
            after.append(None if id_ == MAX_ID else id_)   # Redis reads the largest id as '>'
    check_group_names(gname, cname)

    def attempt(first):
        """[(key, entries)] served now; `first`: the command's own run (the consumer is
        created and seen even when nothing is served), else a blocked retry."""
        now = now_ms()
        served = []
        for key, gt in zip(keys, after):
            st = Stream.open(ks, c.db, key, write=True)
            g = st.group(gname) if st is not None else None
            if g is None:
                raise nogroup(key, gname, " in XREADGROUP with GROUP option")
            found = None
            if gt is None:
                start = incr_id(g.last_id)
                found = st.entries(start, MAX_ID, count) if start is not None else []
                if not found and not first:
                    continue
            con, created = st.create_consumer(g, cname, now)
            con.seen_time = now
            st.touch_consumer(con)
            if created:
                c.server.key_changed(c.db, key, "xgroup-createconsumer")
            if gt is not None:
                served.append((key, _history(st, g, con, incr_id(gt), count, now)))
            elif found:
                for id_, _ in found:
                    st.advance_group(g, id_)
                    if not noack:
                        st.add_nack(g, con, id_, now)
                con.active_time = now
                served.append((key, entries_reply(found)))
            st.save()
        return served

    served = attempt(True)
    if served or timeout is None:
        return read_reply(c, served)
    if not blocking_allowed(c):
        return NULL_ARRAY

    def retry():
        got = attempt(False)
        return read_reply(c, got) if got else None

    return c.server.blocking.block(c, c.db, keys, timeout, retry, NULL_ARRAY)


def _history(st, g, con, start, count, now):
    """The consumer's pending entries from start: each delivered again (count + 1, time now);
    an entry deleted from the stream since shows as [id, null]."""
    out = []
    if start is None:
        return out
    for id_ in st.consumer_pel(g, con.name, start, MAX_ID, count):
        fields = st.get_entry(id_)
        if fields is None:
            out.append([format_id(id_), NULL_ARRAY])
            continue
        nack = st.nack(g, id_)
        if nack is not None:
            nack.delivery_time = now
            nack.delivery_count += 1
            st.put_nack(g, nack)
        out.append(entry_reply(id_, fields))
    return out


# -- XACK / XPENDING -----------------------------------------------------------------------------

@command("xack", -4, "write fast", "@stream", (1, 1, 1), group="stream",
         summary="Returns the number of messages that were successfully acknowledged by the consumer group member "
                 "of a stream.", since="5.0.0")
def xack(c, args):
    st = Stream.open(c.server.ks, c.db, args[1], write=True)
    g = st.group(args[2]) if st is not None else None
    if g is None:
        return 0
    ids = [parse_id(a)[0] for a in args[3:]]
    acked = 0
    for id_ in ids:
        nack = st.nack(g, id_)
        if nack is not None:
            st.remove_nack(g, nack)
            acked += 1
    if acked:
        st.save()
    return acked


@command("xpending", -3, "readonly", "@stream", (1, 1, 1), group="stream",
         summary="Returns the information and entries from a stream consumer group's pending entries list.",
         since="5.0.0")
def xpending(c, args):
    n = len(args)
    if n != 3 and not 6 <= n <= 9:
        raise CommandError("ERR syntax error")
    min_idle = 0
    consumer = None
    if n >= 6:
        i = 3
        if args[3].lower() == b"idle":
            min_idle = int_arg(args[4])
            if n < 8:
                raise CommandError("ERR syntax error")
            i = 5
        count = max(int_arg(args[i + 2]), 0)
        start, end = parse_range(args[i], args[i + 1])
        if i + 3 < n:
            consumer = args[i + 3]
    st = Stream.open(c.server.ks, c.db, args[1])
    g = st.group(args[2]) if st is not None else None
    if g is None:
        raise nogroup(args[1], args[2])
    if n == 3:
        if g.pending == 0:
            return [0, None, None, NULL_ARRAY]
        first, last = st.pel_edges(g)
        owners = [[con.name, b"%d" % con.pending] for con in st.consumers(g) if con.pending]
        return [g.pending, format_id(first), format_id(last), owners]
    if consumer is not None and st.consumer(g, consumer) is None:
        return []
    now = now_ms()
    out = []
    if count == 0:
        return out
    if consumer is not None:
        nacks = _consumer_nacks(st, g, consumer, start, end, count, min_idle, now)
    else:
        nacks = _group_nacks(st, g, start, end, count, min_idle, now)
    for nack in nacks:
        out.append([format_id(nack.id), nack.consumer, max(now - nack.delivery_time, 0), nack.delivery_count])
    return out


def _idle_enough(nack, min_idle, now):
    return not min_idle or now - nack.delivery_time >= min_idle


def _group_nacks(st, g, start, end, count, min_idle, now):
    """Up to count pending entries of g in [start, end] idle at least min_idle, read in
    batches so that a filter skipping many never holds more than one batch."""
    out = []
    while start is not None:
        batch = st.pel(g, start, end, PEL_BATCH)
        for nack in batch:
            if _idle_enough(nack, min_idle, now):
                out.append(nack)
                if len(out) >= count:
                    return out
        if len(batch) < PEL_BATCH:
            return out
        start = incr_id(batch[-1].id)
    return out


def _consumer_nacks(st, g, name, start, end, count, min_idle, now):
    out = []
    while start is not None:
        ids = st.consumer_pel(g, name, start, end, PEL_BATCH)
        for id_ in ids:
            nack = st.nack(g, id_)
            if nack is not None and _idle_enough(nack, min_idle, now):
                out.append(nack)
                if len(out) >= count:
                    return out
        if len(ids) < PEL_BATCH:
            return out
        start = incr_id(ids[-1])
    return out
