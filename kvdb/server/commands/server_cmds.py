"""Server commands: INFO DBSIZE FLUSHDB FLUSHALL TIME CONFIG SAVE BGSAVE LASTSAVE
SHUTDOWN SLOWLOG DEBUG."""
import logging
import time

from kvdb.server.protocol.resp import OK, Status

from ..blocking import blocking_allowed, timeout_arg
from ..config import OPTIONS, REDIS_ALIASES, ConfigError
from ..glob import glob_match
from ..info import render_info
from .registry import NO_REPLY, SYNTAX, CommandError, command, container, float_arg, int_arg, subcommand

log = logging.getLogger("kvdb.server")


def _s(**kw):
    return dict(group="server", **kw)


@command("info", -1, "loading stale", "@dangerous", **_s(summary="Returns information and statistics about the server."))
def info(c, args):
    sections = [a.lower().decode("utf-8", "replace") for a in args[1:]]
    return render_info(c.server, sections).encode()


@command("dbsize", 1, "readonly fast", "@keyspace", **_s(summary="Returns the number of keys in the database."))
def dbsize(c, args):
    return c.server.ks.keys[c.db]


def _async_flag(args, name):
    if len(args) > 2 or (len(args) == 2 and args[1].lower() not in (b"async", b"sync")):
        raise CommandError(SYNTAX)


@command("flushdb", -1, "write", "@keyspace @dangerous", **_s(summary="Removes all keys from the current database."))
def flushdb(c, args):
    _async_flag(args, "flushdb")
    c.server.ks.flush(c.db)
    c.server.touch_all(c.db)
    return OK


@command("flushall", -1, "write", "@keyspace @dangerous", **_s(summary="Removes all keys from all databases."))
def flushall(c, args):
    _async_flag(args, "flushall")
    for d in range(c.server.ks.databases):
        c.server.ks.flush(d)
    c.server.touch_all()
    return OK


@command("time", 1, "loading stale fast", "", **_s(summary="Returns the server time.", since="2.6.0"))
def time_(c, args):
    t = time.time()
    return [str(int(t)).encode(), str(int((t % 1) * 1e6)).encode()]


@command("lastsave", 1, "loading stale fast", "@admin @dangerous",
         **_s(summary="Returns the Unix timestamp of the last successful save to disk."))
def lastsave(c, args):
    return c.server.last_save


def _checkpoint(server):
    server.db.checkpoint()
    server.last_save = int(time.time())
    server.changes_since_save = 0


@command("save", 1, "admin noscript", "@admin @dangerous", **_s(summary="Synchronously saves the database(s) to disk."))
def save(c, args):
    _checkpoint(c.server)
    return OK


@command("bgsave", -1, "admin noscript", "@admin @dangerous", **_s(summary="Asynchronously saves the database(s) to disk."))
def bgsave(c, args):
    server = c.server

    def done(fut):
        if fut.exception() is not None:
            log.error("background save failed: %s", fut.exception())
        else:
            log.info("background save done")

    server.loop.run_in_executor(None, _checkpoint, server).add_done_callback(done)
    return Status("Background saving started")


@command("shutdown", -1, "admin noscript loading stale", "@admin @dangerous",
         **_s(summary="Synchronously saves the database(s) to disk and shuts down the Redis server."))
def shutdown(c, args):
    opts = {a.lower() for a in args[1:]}
    if not opts <= {b"nosave", b"save", b"now", b"force", b"abort"}:
        raise CommandError(SYNTAX)
    if b"abort" in opts:
        raise CommandError("ERR No shutdown in progress.")
    c.server.request_shutdown(f"SHUTDOWN from {c.addr}")
    c.closing = True
    return NO_REPLY


# -- WAITAOF (WAIT is in replication_cmds.py) ---------------------------------------------------------------

@command("waitaof", 4, "noscript", "@connection", group="generic", since="7.2.0",
         summary="Blocks until all of the preceding write commands sent by the connection are written to the "
                 "append-only file of the master and/or replicas.")
def waitaof(c, args):
    """[local, 0]: local is 1 once the client's writes are durable on this server. With sync
    full they are when acknowledged; otherwise a checkpoint makes them so, after this group
    commits. Asking for replicas waits out the timeout, as in WAIT."""
    numlocal = int_arg(args[1])
    if not 0 <= numlocal <= 1:
        raise CommandError("ERR value is out of range, value must between 0 and 1")
    replicas = int_arg(args[2])
    if replicas < 0:
        raise CommandError("ERR value is out of range, must be positive")
    timeout = timeout_arg(args[3], 0.001)
    server = c.server
    local = 1 if server.db.sync == "full" else 0
    if (local >= numlocal and replicas == 0) or not blocking_allowed(c):
        return [local, 0]
    reply = server.blocking.block(c, c.db, [], timeout, lambda: None, [local, 0])
    if local < numlocal:
        server.loop.call_soon(_sync_then_wake, c, replicas)  # runs after this group's commit
    return reply


def _sync_then_wake(c, replicas):
    server = c.server

    def synced(fut):
        w = server.blocking.by_client.get(c)
        if w is None:
            return  # timed out, unblocked or gone meanwhile
        if fut.exception() is not None:
            log.error("WAITAOF: checkpoint failed: %s", fut.exception())
            return  # local stays 0 until the timeout
        w.timeout_reply = [1, 0]
        if replicas == 0:
            server.blocking.unblock(c)

    server.loop.run_in_executor(None, _checkpoint, server).add_done_callback(
        lambda fut: server.loop.call_soon_threadsafe(synced, fut))


# -- CONFIG --------------------------------------------------------------------

container("config", -2, "", "", summary="A container for server configuration commands.", group="server")


@subcommand("config", "get", -3, "admin noscript loading stale", "@admin @dangerous",
            summary="Returns the effective values of configuration parameters.")
def config_get(c, args):
    out = {}
    cfg = c.server.config
    for pattern in args[2:]:
        pattern = pattern.lower()
        for name in OPTIONS:
            if glob_match(pattern, name.encode()):
                out[name.encode()] = cfg.show(name).encode()
        for alias, name in REDIS_ALIASES.items():  # Redis lists the old names too
            if glob_match(pattern, alias.encode()):
                out[alias.encode()] = cfg.show(name).encode()
    return out


@subcommand("config", "set", -4, "admin noscript loading stale", "@admin @dangerous",
            summary="Sets configuration parameters in-flight.")
def config_set(c, args):
    if len(args) % 2:
        raise CommandError("ERR wrong number of arguments for 'config|set' command")
    cfg = c.server.config
    changes = []   # (name as given, lower case; the option's own name; value text)
    seen = set()
    for i in range(2, len(args), 2):
        raw = args[i].decode("utf-8", "replace")
        given = raw.lower()
        name = REDIS_ALIASES.get(given, given)
        option = OPTIONS.get(name)
        if option is None:
            raise CommandError(f"ERR Unknown option or number of arguments for CONFIG SET - '{raw}'")
        if not option.mutable:
            raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{raw}') - can't set immutable config")
        if given in seen:  # an option and its alias may both be given: the later one wins
            raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{raw}') - duplicate parameter")
        seen.add(given)
        changes.append((given, name, args[i + 1].decode("utf-8", "replace")))
    parsed = []
    for given, name, text in changes:  # every value is checked before any is applied
        try:
            parsed.append((name, OPTIONS[name].parse(text)))
        except ValueError as e:
            raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{given}') - {e}") from None
    for name, value in parsed:
        cfg.values[name] = value
    c.server.config_changed([n for n, _ in parsed], c)
    return OK


@subcommand("config", "resetstat", 2, "admin noscript loading stale", "@admin @dangerous",
            summary="Resets the server's statistics.")
def config_resetstat(c, args):
    c.server.stats.reset()
    c.server.slowlog.reset()
    return OK


@subcommand("config", "rewrite", 2, "admin noscript loading stale", "@admin @dangerous",
            summary="Persists the effective configuration to file.")
def config_rewrite(c, args):
    try:
        c.server.config.rewrite()
    except ConfigError as e:
        raise CommandError(f"ERR {e}") from None
    except OSError as e:
        raise CommandError(f"ERR Rewriting config file: {e.strerror or e}") from None
    log.info("CONFIG REWRITE by %s: %s", c.addr, c.server.config.file)
    return OK


@subcommand("config", "help", 2, "loading stale", "", summary="Returns helpful text about the different subcommands.")
def config_help(c, args):
    return [b"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", b"GET <pattern>",
            b"SET <directive> <value>", b"RESETSTAT"]


# -- SLOWLOG -------------------------------------------------------------------

container("slowlog", -2, "", "", summary="A container for slow log commands.", group="server")


@subcommand("slowlog", "get", -2, "admin loading stale", "@admin @dangerous", summary="Returns the slow log's entries.")
def slowlog_get(c, args):
    count = int_arg(args[2]) if len(args) > 2 else 10
    if count < -1:
        raise CommandError("ERR count should be greater than or equal to -1")
    return c.server.slowlog.get(count)


@subcommand("slowlog", "len", 2, "admin loading stale", "@admin @dangerous", summary="Returns the number of entries in the slow log.")
def slowlog_len(c, args):
    return len(c.server.slowlog.entries)


@subcommand("slowlog", "reset", 2, "admin loading stale", "@admin @dangerous", summary="Clears all entries from the slow log.")
def slowlog_reset(c, args):
    c.server.slowlog.reset()
    return OK


@subcommand("slowlog", "help", 2, "loading stale", "", summary="Show helpful text about the different subcommands")
def slowlog_help(c, args):
    return [b"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", b"GET [<count>]", b"LEN", b"RESET"]


# -- DEBUG ---------------------------------------------------------------------

container("debug", -2, "admin noscript loading stale", "@admin @dangerous", summary="A container for debugging commands.",
          group="server")


@subcommand("debug", "sleep", 3, "admin noscript loading stale", "@admin @dangerous",
            summary="Blocks this connection (not the server) for the given seconds.")
def debug_sleep(c, args):
    seconds = float_arg(args[2])
    if seconds < 0:
        raise CommandError("ERR invalid sleep time")
    c.blocked = True

    def wake():
        c.blocked = False
        c.replies.append(OK)
        c.server.to_flush.add(c)
        if c.transport is not None:
            c.server.schedule(c)  # runs what the client sent meanwhile, then flushes

    c.server.loop.call_later(seconds, wake)
    return NO_REPLY  # the reply is sent by wake()


@subcommand("debug", "help", 2, "loading stale", "", summary="Show helpful text about the different subcommands")
def debug_help(c, args):
    return [b"DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", b"SLEEP <seconds>"]
