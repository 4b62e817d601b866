"""MULTI EXEC DISCARD WATCH UNWATCH.

EXEC runs the queued commands back to back inside the current command group,
whose writes commit as one kvdb transaction: all of them or none are durable,
and no other client's command runs in between. WATCH follows Redis: every
change to a watched key (a write, a delete, an expiry, a flush) after WATCH
marks the watcher, and its EXEC then returns the null array without running
anything.
"""
from kvdb.server.protocol.resp import NULL_ARRAY, OK, ErrorReply

from .registry import NO_REPLY, CommandError, command


def _t(**kw):
    return dict(group="transactions", **kw)


@command("multi", 1, "noscript loading stale fast allow_busy", "@transaction",
         **_t(summary="Starts a transaction.", since="1.2.0"))
def multi(c, args):
    if c.multi is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    c.multi = []
    c.multi_error = False
    return OK


@command("discard", 1, "noscript loading stale fast allow_busy", "@transaction",
         **_t(summary="Discards a transaction.", since="2.0.0"))
def discard(c, args):
    if c.multi is None:
        raise CommandError("ERR DISCARD without MULTI")
    c.multi = None
    c.multi_error = False
    c.server.unwatch(c)
    return OK


@command("exec", 1, "noscript loading stale skip_slowlog", "@transaction",
         **_t(summary="Executes all commands in a transaction.", since="1.2.0"))
def exec_(c, args):
    if c.multi is None:
        raise CommandError("ERR EXEC without MULTI")
    queued, c.multi = c.multi, None
    failed, c.multi_error = c.multi_error, False
    dirty = c.watch_dirty
    c.server.unwatch(c)
    if failed:
        raise CommandError("EXECABORT Transaction discarded because of previous errors.")
    if dirty:
        return NULL_ARRAY
    server = c.server
    replies = []
    c.in_exec = True  # blocking commands reply at once inside EXEC (blocking.py)
    try:
        for cmd, cargs in queued:
            denied = server.acl.check(c, cmd, cargs)
            reply = ErrorReply(denied) if denied else server.call(c, cmd, cargs)
            replies.append(None if reply is NO_REPLY else reply)
    finally:
        c.in_exec = False
    return replies


@command("watch", -2, "noscript loading stale fast allow_busy", "@transaction", (1, -1, 1),
         **_t(summary="Monitors changes to keys to determine the execution of a transaction.", since="2.2.0"))
def watch(c, args):
    if c.multi is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")
    for key in args[1:]:
        c.server.watch(c, c.db, key)
    return OK


@command("unwatch", 1, "noscript loading stale fast allow_busy", "@transaction",
         **_t(summary="Forgets about watched keys of a transaction.", since="2.2.0"))
def unwatch(c, args):
    c.server.unwatch(c)
    return OK
