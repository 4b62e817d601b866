"""XINFO STREAM (and FULL), XINFO GROUPS, XINFO CONSUMERS and XINFO HELP, with Redis 7.2's
fields (storage: kvdb/server/streamstore.py)."""
from ..keyspace import now_ms
from ..streamstore import INVALID_ENTRIES_READ, MAX_ID, ZERO_ID, Stream, format_id
from .registry import CommandError, container, int_arg, subcommand
from .streams import entries_reply, entry_reply, nogroup_for_key, status_lines


container("xinfo", -2, "", "", summary="A container for stream introspection commands.", group="stream",
          since="5.0.0")

XINFO_HELP = [
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
]


@subcommand("xinfo", "help", 2, "loading stale", "@stream", summary="Returns helpful text about the different "
            "subcommands.", since="5.0.0")
def xinfo_help(c, args):
    return status_lines(XINFO_HELP)


def _open_info(c, key):
    st = Stream.open(c.server.ks, c.db, key)
    if st is None:
        raise CommandError("ERR no such key")
    return st


@subcommand("xinfo", "consumers", 4, "readonly", "@stream", (2, 2, 1),
            summary="Returns a list of the consumers in a consumer group.", since="5.0.0")
def xinfo_consumers(c, args):
    st = _open_info(c, args[2])
    g = st.group(args[3])
    if g is None:
        raise nogroup_for_key(args[3], args[2])
    now = now_ms()
    out = []
    for con in st.consumers(g):
        out.append({b"name": con.name, b"pending": con.pending, b"idle": max(now - con.seen_time, 0),
                    b"inactive": -1 if con.active_time < 0 else max(now - con.active_time, 0)})
    return out


@subcommand("xinfo", "groups", 3, "readonly", "@stream", (2, 2, 1),
            summary="Returns a list of the consumer groups of a stream.", since="5.0.0")
def xinfo_groups(c, args):
    st = _open_info(c, args[2])
    out = []
    for g in st.groups():
        out.append({b"name": g.name, b"consumers": g.consumers, b"pending": g.pending,
                    b"last-delivered-id": format_id(g.last_id),
                    b"entries-read": None if g.entries_read == INVALID_ENTRIES_READ else g.entries_read,
                    b"lag": st.group_lag(g)})
    return out


def tree_estimate(st):
    """(radix-tree-keys, radix-tree-nodes): kvdb keeps no radix tree; the keys are the nodes
    Redis would pack the entries in (see StreamMeta), the tree nodes an estimate."""
    keys = st.node_estimate()
    return keys, keys + 1


@subcommand("xinfo", "stream", -3, "readonly", "@stream", (2, 2, 1),
            summary="Returns information about a stream.", since="5.0.0")
def xinfo_stream(c, args):
    st = _open_info(c, args[2])
    full = False
    count = 10
    if len(args) > 3:
        bad = CommandError(f"ERR unknown subcommand or wrong number of arguments for "
                           f"'{args[1][:128].decode('utf-8', 'replace')}'. Try XINFO HELP.")
        if args[3].lower() != b"full":
            raise bad
        full = True
        if len(args) == 6:
            if args[4].lower() != b"count":
                raise bad
            count = int_arg(args[5])
            if count < 0:
                count = 10
        elif len(args) != 4:
            raise bad
    m = st.meta
    keys, nodes = tree_estimate(st)
    info = {b"length": st.length, b"radix-tree-keys": keys, b"radix-tree-nodes": nodes,
            b"last-generated-id": format_id(m.last), b"max-deleted-entry-id": format_id(m.max_deleted),
            b"entries-added": m.entries_added, b"recorded-first-entry-id": format_id(m.first)}
    if not full:
        info[b"groups"] = m.groups
        first = st.entries(ZERO_ID, MAX_ID, 1)
        last = st.entries(ZERO_ID, MAX_ID, 1, rev=True)
        info[b"first-entry"] = entry_reply(*first[0]) if first else None
        info[b"last-entry"] = entry_reply(*last[0]) if last else None
        return info
    info[b"entries"] = entries_reply(st.entries(ZERO_ID, MAX_ID, count))
    groups = []
    for g in st.groups():
        pel = [[format_id(n.id), n.consumer, n.delivery_time, n.delivery_count] for n in st.pel(g, count=count)]
        consumers = []
        for con in st.consumers(g):
            cpel = []
            for id_ in st.consumer_pel(g, con.name, count=count):
                n = st.nack(g, id_)
                cpel.append([format_id(id_), n.delivery_time if n else 0, n.delivery_count if n else 0])
            consumers.append({b"name": con.name, b"seen-time": con.seen_time, b"active-time": con.active_time,
                              b"pel-count": con.pending, b"pending": cpel})
        groups.append({b"name": g.name, b"last-delivered-id": format_id(g.last_id),
                       b"entries-read": None if g.entries_read == INVALID_ENTRIES_READ else g.entries_read,
                       b"lag": st.group_lag(g), b"pel-count": g.pending, b"pending": pel,
                       b"consumers": consumers})
    info[b"groups"] = groups
    return info
