"""Connection commands: PING ECHO HELLO AUTH SELECT QUIT RESET, CLIENT, COMMAND."""
from kvdb.server.protocol.resp import OK, PONG, ErrorReply, Push, Status
from kvdb.version import VERSION as KVDB_VERSION

from ..client import REPLY_OFF, REPLY_SKIP_NEXT
from ..compat import REDIS_VERSION
from .registry import COMMANDS, NO_REPLY, SYNTAX, CommandError, command, container, int_arg, subcommand

NOAUTH_OK = "noauth"


@command("ping", -1, "fast", "@connection", summary="Returns the server's liveliness response.",
         group="connection")
def ping(c, args):
    if len(args) > 2:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    if c.subscriptions and c.proto == 2:
        return [b"pong", args[1] if len(args) > 1 else b""]
    return args[1] if len(args) > 1 else PONG


@command("echo", 2, "fast", "@connection", summary="Returns the given string.", group="connection")
def echo(c, args):
    return args[1]


def _auth(c, username, password, then=lambda: OK):
    """Checks the pair (authguard: off the event loop, slowed down after failures); then() makes the
    reply once it passed. Returns the reply, or None when it is sent later."""
    return c.server.authguard.authenticate(c, username, password, then)


@command("auth", -2, "noauth noscript loading stale fast", "@connection", summary="Authenticates the connection.",
         group="connection")
def auth(c, args):
    if len(args) > 3:
        raise CommandError("ERR syntax error")
    if len(args) == 2:
        if not c.server.auth_required():
            raise CommandError("ERR AUTH <password> called without any password configured for the default user. "
                               "Are you sure your configuration is correct?")
        return _auth(c, "default", args[1])
    return _auth(c, args[1].decode("utf-8", "replace"), args[2])


@command("hello", -1, "noauth noscript loading stale fast", "@connection",
         summary="Handshakes with the server.", group="connection", since="6.0.0")
def hello(c, args):
    proto = c.proto
    i = 1
    if len(args) > 1:
        try:
            proto = int(args[1])
        except ValueError:
            raise CommandError("ERR Protocol version is not an integer or out of range") from None
        if proto not in (2, 3):
            raise CommandError("NOPROTO unsupported protocol version")
        i = 2
    name = None
    credentials = None
    while i < len(args):
        opt = args[i].lower()
        if opt == b"auth" and i + 2 < len(args):
            credentials = (args[i + 1].decode("utf-8", "replace"), args[i + 2])
            i += 3
        elif opt == b"setname" and i + 1 < len(args):
            name = _valid_name(args[i + 1])
            i += 2
        else:
            raise CommandError(f"ERR Syntax error in HELLO option '{args[i].decode('utf-8', 'replace')}'")
    if credentials is not None:
        return _auth(c, *credentials, then=lambda: _hello_reply(c, proto, name))
    return _hello_reply(c, proto, name)


def _hello_reply(c, proto, name):
    if not c.authenticated:
        raise CommandError("NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                           "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
                           "select the RESP protocol version at the same time")
    if name is not None:
        c.name = name
    c.proto = proto
    return {"server": "kvdb", "version": REDIS_VERSION, "kvdb_version": KVDB_VERSION, "proto": proto, "id": c.id,
            "mode": "standalone", "role": "replica" if c.server.replication.is_replica else "master", "modules": []}


@command("select", 2, "loading stale fast", "@connection", summary="Changes the selected database.",
         group="connection")
def select(c, args):
    n = int_arg(args[1])
    if not 0 <= n < c.server.config["databases"]:
        raise CommandError("ERR DB index is out of range")
    c.db = n
    return OK


@command("quit", -1, "noauth loading stale fast allow_busy", "@connection", summary="Closes the connection.",
         group="connection")
def quit_(c, args):
    c.closing = True
    c.pending.clear()
    return OK


@command("reset", 1, "noauth loading stale fast", "@connection", summary="Resets the connection.",
         group="connection", since="6.2.0")
def reset(c, args):
    c.multi = None
    c.multi_error = False
    c.server.unwatch(c)
    c.server.pubsub.drop_client(c)
    c.db = 0
    c.proto = 2
    c.name = b""
    c.user = c.server.default_user()
    c.authenticated = not c.server.auth_required()
    c.server.limits.client_reset(c)  # back to the pre-AUTH parser caps when a password is needed
    return Status("RESET")


def _valid_name(name):
    if any(ch <= 32 or ch >= 127 for ch in name):
        raise CommandError("ERR Client names cannot contain spaces, newlines or special characters.")
    return name


# -- CLIENT --------------------------------------------------------------------

container("client", -2, "", "@connection", summary="A container for client connection commands.",
          group="connection")


@subcommand("client", "id", 2, "noscript loading stale", "@connection", summary="Returns the connection ID.")
def client_id(c, args):
    return c.id


@subcommand("client", "setname", 3, "noscript loading stale", "@connection", summary="Sets the connection name.")
def client_setname(c, args):
    c.name = _valid_name(args[2])
    return OK


@subcommand("client", "getname", 2, "noscript loading stale", "@connection", summary="Returns the connection name.")
def client_getname(c, args):
    return c.name or None


@subcommand("client", "setinfo", 4, "noscript loading stale", "@connection",
            summary="Sets information specific to the client or connection.", since="7.2.0")
def client_setinfo(c, args):
    attr = args[2].lower()
    value = args[3]
    if any(ch < 33 or ch > 126 for ch in value):
        raise CommandError(f"ERR {attr.decode().upper()} cannot contain spaces, newlines or special characters.")
    if attr == b"lib-name":
        c.lib_name = value
    elif attr == b"lib-ver":
        c.lib_ver = value
    else:
        raise CommandError(f"ERR Unrecognized option '{args[2].decode('utf-8', 'replace')}'")
    return OK


@subcommand("client", "info", 2, "noscript loading stale", "@connection",
            summary="Returns information about the connection.", since="6.2.0")
def client_info(c, args):
    return (c.info_line() + "\n").encode()


def _client_type(cl):
    if getattr(cl, "replica_link", None) is not None:
        return "slave"
    return "pubsub" if cl.subscriptions else "normal"


@subcommand("client", "list", -2, "admin noscript loading stale", "@connection",
            summary="Lists open connections.")
def client_list(c, args):
    clients = list(c.server.clients.values())
    i = 2
    while i < len(args):
        opt = args[i].lower()
        if opt == b"type" and i + 1 < len(args):
            t = args[i + 1].lower().decode("utf-8", "replace")
            if t not in ("normal", "pubsub", "master", "replica", "slave"):
                raise CommandError(f"ERR Unknown client type '{t}'")
            t = "slave" if t == "replica" else t
            clients = [cl for cl in clients if _client_type(cl) == t]
            i += 2
        elif opt == b"id" and i + 1 < len(args):
            ids = {int_arg(a) for a in args[i + 1:]}
            clients = [cl for cl in clients if cl.id in ids]
            i = len(args)
        else:
            raise CommandError("ERR syntax error")
    return "".join(cl.info_line() + "\n" for cl in sorted(clients, key=lambda x: x.id)).encode()


@subcommand("client", "kill", -3, "admin noscript loading stale", "@connection @dangerous",
            summary="Terminates open connections.")
def client_kill(c, args):
    server = c.server
    if len(args) == 3:  # old form: CLIENT KILL ip:port
        addr = args[2].decode("utf-8", "replace")
        for cl in list(server.clients.values()):
            if cl.addr == addr:
                _kill(c, cl)
                return OK
        raise CommandError("ERR No such client")
    if len(args) % 2:
        raise CommandError("ERR syntax error")
    match = []
    skipme = True
    for i in range(2, len(args), 2):
        opt, val = args[i].lower(), args[i + 1]
        if opt == b"id":
            n = int_arg(val, "ERR client-id should be greater than 0")
            match.append(lambda cl, n=n: cl.id == n)
        elif opt == b"addr":
            match.append(lambda cl, v=val.decode(): cl.addr == v)
        elif opt == b"laddr":
            match.append(lambda cl, v=val.decode(): cl.laddr == v)
        elif opt == b"user":
            match.append(lambda cl, v=val.decode(): cl.user.name == v)
        elif opt == b"type":
            match.append(lambda cl, v=val.lower().decode(): _client_type(cl) == ("slave" if v == "replica" else v))
        elif opt == b"skipme":
            if val.lower() not in (b"yes", b"no"):
                raise CommandError("ERR syntax error")
            skipme = val.lower() == b"yes"
        else:
            raise CommandError("ERR syntax error")
    killed = 0
    for cl in list(server.clients.values()):
        if skipme and cl is c:
            continue
        if all(m(cl) for m in match):
            _kill(c, cl)
            killed += 1
    return killed


def _kill(c, victim):
    if victim is c:
        c.closing = True  # after this reply
    else:
        victim.close(f"killed by client {c.addr}")


@subcommand("client", "no-evict", 3, "admin noscript loading stale", "@connection", since="7.0.0",
            summary="Sets the client eviction mode of the connection.")
def client_no_evict(c, args):
    if args[2].lower() not in (b"on", b"off"):
        raise CommandError("ERR syntax error")
    return OK


@subcommand("client", "no-touch", 3, "noscript loading stale", "@connection", since="7.2.0",
            summary="Controls whether commands sent by the client affect the LRU/LFU of accessed keys.")
def client_no_touch(c, args):
    if args[2].lower() not in (b"on", b"off"):
        raise CommandError("ERR syntax error")
    return OK


@subcommand("client", "reply", 3, "noscript loading stale", "@connection", since="3.2.0",
            summary="Instructs the server whether to reply to commands.")
def client_reply(c, args):
    """ON: replies again (this one is OK); OFF: no replies from this one on; SKIP: no reply to
    this one nor the next command (ignored while OFF). Client.suppress_reply applies them."""
    mode = args[2].lower()
    if mode == b"on":
        c.reply_mode = None
        return OK
    if mode == b"off":
        c.reply_mode = REPLY_OFF
        return NO_REPLY
    if mode == b"skip":
        if c.reply_mode != REPLY_OFF:
            c.reply_mode = REPLY_SKIP_NEXT
        return NO_REPLY
    raise CommandError(SYNTAX)


UNBLOCKED = "UNBLOCKED client unblocked via CLIENT UNBLOCK"


@subcommand("client", "unblock", -3, "admin noscript loading stale", "@connection @dangerous", since="5.0.0",
            summary="Unblocks a client blocked by a blocking command from a different connection.")
def client_unblock(c, args):
    """Ends the wait of a client blocked on keys or in WAIT as its timeout would (TIMEOUT, the
    default) or with an UNBLOCKED error (ERROR). 1 if it was blocked so, else 0."""
    if len(args) > 4:
        raise CommandError(f"ERR unknown subcommand or wrong number of arguments for "
                           f"'{args[1].decode('utf-8', 'replace')}'. Try CLIENT HELP.")
    error = False
    if len(args) == 4:
        reason = args[3].lower()
        if reason not in (b"timeout", b"error"):
            raise CommandError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
        error = reason == b"error"
    ident = int_arg(args[2])
    target = c.server.clients.get(ident)
    if target is None:
        return 0
    reply = ErrorReply(UNBLOCKED) if error else None  # None: the waiter's timeout reply
    return 1 if c.server.blocking.unblock(target, reply) else 0


@subcommand("client", "help", 2, "loading stale", "@connection", summary="Returns helpful text about CLIENT.")
def client_help(c, args):
    return [b"CLIENT <subcommand> [<arg> ...]. Subcommands are:"] + [
        f"{name.upper()}".encode() for name in sorted(COMMANDS["client"].subcommands)]


# -- COMMAND -------------------------------------------------------------------

def command_info(cmd):
    sub = [command_info(s) for s in cmd.subcommands.values()]
    return [cmd.fullname.encode(), cmd.arity, [Status(f) for f in sorted(cmd.flags)], cmd.first_key, cmd.last_key,
            cmd.step, [Status("@" + k) for k in sorted(cmd.categories)], [], [], sub]


def command_docs(cmd):
    doc = {"summary": cmd.summary or cmd.fullname, "since": cmd.since, "group": cmd.group}
    if cmd.subcommands:
        doc["subcommands"] = {s.fullname: command_docs(s) for s in cmd.subcommands.values()}
    return doc


def _find(name):
    name = name.lower().decode("utf-8", "replace")
    if "|" in name:
        parent, _, sub = name.partition("|")
        p = COMMANDS.get(parent)
        return p.subcommands.get(sub) if p else None
    return COMMANDS.get(name)


@command("command", -1, "loading stale", "@connection", summary="Returns detailed information about all commands.",
         group="server", since="2.8.13")
def command_(c, args):
    if len(args) == 1:
        return [command_info(cmd) for cmd in COMMANDS.values()]
    sub = args[1].lower()
    if sub == b"count" and len(args) == 2:
        return len(COMMANDS)
    if sub == b"info":
        if len(args) == 2:
            return [command_info(cmd) for cmd in COMMANDS.values()]
        return [command_info(cmd) if cmd is not None else None for cmd in map(_find, args[2:])]
    if sub == b"docs":
        names = args[2:] or [n.encode() for n in COMMANDS]
        out = {}
        for n in names:
            cmd = _find(n)
            if cmd is not None:
                out[cmd.fullname.encode()] = command_docs(cmd)
        return out
    if sub == b"list" and len(args) == 2:
        return [n.encode() for n in COMMANDS]
    if sub == b"getkeys" and len(args) > 2:
        cmd = _find(args[2])
        if cmd is None:
            raise CommandError("ERR Invalid command specified")
        if not cmd.arity_ok(len(args) - 2):
            raise CommandError("ERR Invalid number of arguments specified for command")
        keys = [args[2 + i] for i in cmd.keys_of(args[2:])]
        if not keys:
            raise CommandError("ERR The command has no key arguments")
        return keys
    if sub == b"help":
        return [b"COMMAND [<subcommand> [<arg> [value] [opt] ...]]. Subcommands are:", b"COUNT", b"INFO",
                b"DOCS", b"LIST", b"GETKEYS"]
    raise CommandError(f"ERR unknown subcommand or wrong number of arguments for "
                       f"'{args[1].decode('utf-8', 'replace')}'. Try COMMAND HELP.")


__all__ = ["Push"]
