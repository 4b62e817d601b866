"""Replication commands: REPLICAOF (SLAVEOF), ROLE, REPLCONF, KVSYNC, WAIT, and the
refusal of Redis's own PSYNC and SYNC (kvdb/server/replication)."""
import logging

from kvdb.server.protocol.resp import OK, Status

from ..acl_user import NOT_IN_MULTI
from ..blocking import blocking_allowed, timeout_arg
from ..replication import parse_replicaof
from .registry import NO_REPLY, SYNTAX, CommandError, command, int_arg

log = logging.getLogger("kvdb.server")

NOT_KVDB_REPLICA = ("ERR kvdb serves kvdb replicas only: PSYNC and SYNC (Redis's RDB stream) are not supported; "
                    "run `kvdb serve --replicaof <host> <port>` for a replica")


def _r(**kw):
    return dict(group="server", **kw)


def _replicaof(c, args):
    server = c.server
    words = [a.decode("utf-8", "replace") for a in args[1:]]
    try:
        target = parse_replicaof(" ".join(words))
    except ValueError:
        raise CommandError("ERR Invalid master port" if len(words) == 2 else SYNTAX) from None
    rep = server.replication
    if target is None:
        rep.become_primary()
        server.config.values["replicaof"] = ""
        log.info("REPLICAOF NO ONE by %s", c.addr)
        return OK
    host, port = target
    if port == server.port and host in ("127.0.0.1", "localhost", "::1") + tuple(server.config["bind"].split()):
        raise CommandError("ERR REPLICAOF points at this server itself")
    if not rep.become_replica(host, port):
        return Status("OK Already connected to specified master")
    server.config.values["replicaof"] = f"{host} {port}"
    log.info("REPLICAOF %s %d by %s", host, port, c.addr)
    return OK


@command("replicaof", 3, "admin noscript stale", "@admin @slow @dangerous",
         **_r(summary="Configures a server as replica of another, or promotes it to a master.", since="5.0.0"))
def replicaof(c, args):
    return _replicaof(c, args)


@command("slaveof", 3, "admin noscript stale", "@admin @slow @dangerous",
         **_r(summary="Sets a Redis server as a replica of another, or promotes it to being a master.",
              since="1.0.0"))
def slaveof(c, args):
    return _replicaof(c, args)


@command("role", 1, "noscript loading stale fast", "@admin @fast @dangerous",
         **_r(summary="Returns the replication role.", since="2.8.12"))
def role(c, args):
    return c.server.replication.role()


@command("replconf", -1, "admin noscript loading stale allow_busy", "@admin @slow @dangerous",
         **_r(summary="An internal command for configuring the replication stream.", since="3.0.0"))
def replconf(c, args):
    """listening-port, ip-address, node-id and capa before KVSYNC; ACK <seq> after it (no reply)."""
    if len(args) % 2 == 0:
        raise CommandError(SYNTAX)
    server = c.server
    conf = c.__dict__.setdefault("replconf", {})
    for i in range(1, len(args), 2):
        name = args[i].lower()
        value = args[i + 1]
        if name == b"ack":
            server.replication.primary.ack(c, int_arg(value))
            return NO_REPLY  # Redis sends no reply to an ACK
        if name == b"getack":
            return OK
        if name == b"listening-port":
            conf["listening-port"] = int_arg(value)
        elif name == b"ip-address":
            conf["ip-address"] = value.decode("utf-8", "replace")
        elif name == b"node-id":
            if value.decode("ascii", "replace") == server.replication.node_id:
                raise CommandError("ERR REPLICAOF points at this server itself (the replica's node id is mine)")
        elif name in (b"capa", b"rdb-only", b"rdb-filter-only"):
            pass
        else:
            raise CommandError(f"ERR Unrecognized REPLCONF option: {args[i].decode('utf-8', 'replace')}")
    return OK


@command("kvsync", 3, "admin noscript loading stale", "@admin @slow @dangerous",
         **_r(summary="Starts the replication stream of a kvdb replica (docs/format/replication.md).",
              since="kvdb 0.1"))
def kvsync(c, args):
    """KVSYNC <replid> <seq>: the connection carries the stream from now on."""
    if c.multi is not None or c.in_exec or c.in_script:
        raise CommandError(NOT_IN_MULTI)
    replid = args[1].decode("ascii", "replace")
    seq = int_arg(args[2])
    if seq < 0:
        raise CommandError("ERR seq must be 0 or more")
    return c.server.replication.primary.sync(c, replid, seq)


@command("psync", -3, "admin noscript", "@admin @slow @dangerous",
         **_r(summary="An internal command used in replication.", since="2.8.0"))
def psync(c, args):
    raise CommandError(NOT_KVDB_REPLICA)


@command("sync", 1, "admin noscript", "@admin @slow @dangerous",
         **_r(summary="An internal command used in replication.", since="1.0.0"))
def sync(c, args):
    raise CommandError(NOT_KVDB_REPLICA)


@command("wait", 3, "noscript", "@connection", group="generic", since="3.0.0",
         summary="Blocks until the asynchronous replication of all preceding write commands sent by the "
                 "connection is completed.")
def wait(c, args):
    """The number of replicas that applied every commit made before WAIT (this client's writes
    among them), once `numreplicas` have or the timeout (ms, 0: none) passes. Inside MULTI or a
    script it replies at once."""
    wanted = int_arg(args[1])
    timeout = timeout_arg(args[2], 0.001)
    server = c.server
    if server.replication.is_replica:
        raise CommandError("ERR WAIT cannot be used with replica instances. Please also note that since "
                           "Redis 4.0 if a replica is configured to be writable (which is not the default) "
                           "writes to replicas are just local and are not propagated.")
    return server.replication.primary.wait(c, wanted, timeout, wanted > 0 and blocking_allowed(c))
