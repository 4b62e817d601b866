"""XCLAIM and XAUTOCLAIM: pending entries change owner (storage: kvdb/server/streamstore.py).
An entry deleted from the stream since it was delivered is dropped from the PEL, as in
Redis 7."""
from ..keyspace import now_ms
from ..streamstore import MAX_ID, ZERO_ID, Stream, format_id, incr_id, parse_id
from .registry import CommandError, command, int_arg
from .stream_groups import _text, nogroup
from .streams import entry_reply, parse_range


def _claim(st, g, nack, con, delivery_time, retrycount, justid):
    """Hands nack to con (delivery time and count updated) and returns its reply item."""
    nack.delivery_time = delivery_time
    if retrycount >= 0:
        nack.delivery_count = retrycount
    elif not justid:
        nack.delivery_count += 1
    st.assign_nack(g, nack, con)


@command("xclaim", -6, "write fast", "@stream", (1, 1, 1), group="stream",
         summary="Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered "
                 "a consumer group member.", since="5.0.0")
def xclaim(c, args):
    st = Stream.open(c.server.ks, c.db, args[1], write=True)
    g = st.group(args[2]) if st is not None else None
    if g is None:
        raise nogroup(args[1], args[2])
    min_idle = max(int_arg(args[4], "ERR Invalid min-idle-time argument for XCLAIM"), 0)
    ids = []
    j = 5
    while j < len(args):
        try:
            ids.append(parse_id(args[j])[0])
        except CommandError:
            break
        j += 1
    now = now_ms()
    delivery_time = -1
    retrycount = -1
    force = justid = False
    last_id = ZERO_ID
    while j < len(args):
        more = len(args) - 1 - j
        opt = args[j].lower()
        if opt == b"force":
            force = True
        elif opt == b"justid":
            justid = True
        elif opt == b"idle" and more:
            j += 1
            delivery_time = now - int_arg(args[j], "ERR Invalid IDLE option argument for XCLAIM")
        elif opt == b"time" and more:
            j += 1
            delivery_time = int_arg(args[j], "ERR Invalid TIME option argument for XCLAIM")
        elif opt == b"retrycount" and more:
            j += 1
            retrycount = int_arg(args[j], "ERR Invalid RETRYCOUNT option argument for XCLAIM")
        elif opt == b"lastid" and more:
            j += 1
            last_id = parse_id(args[j])[0]
        else:
            raise CommandError(f"ERR Unrecognized XCLAIM option '{_text(args[j])}'")
        j += 1
    if last_id > g.last_id:
        g.last_id = last_id
        st.touch_group(g)
    if delivery_time == -1 or delivery_time < 0 or delivery_time > now:
        delivery_time = now
    con = None
    out = []
    for id_ in ids:
        nack = st.nack(g, id_)
        fields = st.get_entry(id_)
        if fields is None:
            if nack is not None:          # the entry is gone: drop it from the PEL
                st.remove_nack(g, nack)
            continue
        if nack is None:
            if not force:
                continue
            if con is None:
                con = _claimer(c, st, g, args[3], now)
            nack = st.force_nack(g, con, id_, now)
        elif min_idle and now - nack.delivery_time < min_idle:
            continue
        if con is None:
            con = _claimer(c, st, g, args[3], now)
        _claim(st, g, nack, con, delivery_time, retrycount, justid)
        out.append(format_id(id_) if justid else entry_reply(id_, fields))
        con.active_time = now
        st.touch_consumer(con)
    st.save()
    return out


def _claimer(c, st, g, name, now):
    con, created = st.create_consumer(g, name, now)
    con.seen_time = now
    st.touch_consumer(con)
    if created:
        c.server.key_changed(c.db, st.key, "xgroup-createconsumer")
    return con


@command("xautoclaim", -6, "write fast", "@stream", (1, 1, 1), group="stream",
         summary="Changes, or acquires, ownership of messages in a consumer group, as if the messages were "
                 "delivered to as consumer group member.", since="6.2.0")
def xautoclaim(c, args):
    min_idle = max(int_arg(args[4], "ERR Invalid min-idle-time argument for XAUTOCLAIM"), 0)
    start = parse_range(args[5], b"+")[0]
    count = 100
    justid = False
    j = 6
    while j < len(args):
        more = len(args) - 1 - j
        opt = args[j].lower()
        if opt == b"count" and more:
            count = int_arg(args[j + 1], "ERR COUNT must be > 0")
            if not 1 <= count <= (1 << 63) // 16:
                raise CommandError("ERR COUNT must be > 0")
            j += 1
        elif opt == b"justid":
            justid = True
        else:
            raise CommandError("ERR syntax error")
        j += 1
    st = Stream.open(c.server.ks, c.db, args[1], write=True)
    g = st.group(args[2]) if st is not None else None
    if g is None:
        raise nogroup(args[1], args[2])
    now = now_ms()
    attempts = count * 10
    con = None
    claimed = []
    deleted = []
    cursor = start
    next_id = ZERO_ID
    while cursor is not None:
        batch = st.pel(g, cursor, MAX_ID, min(attempts, 256) + 1)
        if not batch:
            next_id = ZERO_ID
            break
        stop = False
        for i, nack in enumerate(batch):
            if attempts == 0 or count == 0:
                next_id = nack.id
                stop = True
                break
            attempts -= 1
            fields = st.get_entry(nack.id)
            if fields is None:
                st.remove_nack(g, nack)
                deleted.append(format_id(nack.id))
                count -= 1
                continue
            if min_idle and now - nack.delivery_time < min_idle:
                continue
            if con is None:
                con = _claimer(c, st, g, args[3], now)
            _claim(st, g, nack, con, now, -1, justid)
            claimed.append(format_id(nack.id) if justid else entry_reply(nack.id, fields))
            count -= 1
            con.active_time = now
            st.touch_consumer(con)
        if stop:
            break
        cursor = incr_id(batch[-1].id)
        next_id = ZERO_ID
    st.save()
    return [format_id(next_id), claimed, deleted]
