"""Replication: a node's role, the stream to replicas, and a replica following its primary.

This module holds the role (primary, or replica of another kvdb server) and what INFO
replication and ROLE say of it. The stream's format is in stream.py and
docs/format/replication.md; the primary's side in primary.py, the replica's in replica.py.

Every node keeps a Primary (a replica may itself serve replicas: it forwards what it
applies, as its own commits). A replica also runs a Follower, and refuses writes from
clients (READONLY) while replica-read-only is yes.
"""
import logging
import os
import ssl
import time

from ..config import parse_replicaof
from .primary import Primary, new_replid
from .replica import Follower
from .stream import POSITION_KEY

log = logging.getLogger("kvdb.server")

__all__ = ["Replication", "READONLY", "parse_replicaof"]

READONLY = "READONLY You can't write against a read only replica."


class Replication:
    def __init__(self, server):
        self.server = server             # app.Server
        self.node_id = os.urandom(20).hex()  # INFO's run_id; a replica sends it so a node never follows itself
        self.primary = Primary(server)   # the backlog and the links of this node's replicas
        self.follower = None             # Follower while this node is a replica
        self.local_writes = False        # a client wrote to this node while it was a replica
                                         # (replica-read-only no): its data is no longer its position's

    # -- role --------------------------------------------------------------------

    @property
    def is_replica(self):
        return self.follower is not None

    @property
    def refuses_writes(self):
        return self.follower is not None and self.server.config["replica-read-only"]

    def start(self):
        """After the database opened: follow the configured primary, if any."""
        target = parse_replicaof(self.server.config["replicaof"])
        if target is not None:
            self.become_replica(*target)

    def become_replica(self, host, port):
        if self.follower is not None:
            if (self.follower.host, self.follower.port) == (host, port):
                return False
            self.follower.stop()
        self.primary.close_all("this node became a replica of another primary")
        self.primary.stop_backlog()
        self.primary.replid = new_replid()
        self.follower = Follower(self.server, host, port)
        self.follower.start()
        self.server.writes_refused_changed()
        log.info("replica of %s:%d from now on", host, port)
        return True

    def become_primary(self):
        if self.follower is None:
            return False
        f, self.follower = self.follower, None
        f.stop()
        db = self.server.db
        self.primary.close_all("this node was promoted to primary")
        self.primary.stop_backlog()
        self.primary.replid = new_replid()
        self.primary.forget_previous()
        if f.replid != "?" and not self.local_writes:
            # This node holds exactly its old primary's version f.seq, as its own version db.seq:
            # a fellow replica at that same point continues from here (the backlog starts now).
            self.primary.start_backlog()
            self.primary.remember_previous(f.replid, f.seq, db.seq)
        if db.get(POSITION_KEY) is not None:
            # writes accepted from now on would make the position lie about what this node holds
            db._commit_log_ops([(POSITION_KEY, None, 0)])
        self.local_writes = False
        self.server.ks.reload()
        self.server.writes_refused_changed()
        log.info("replication: this node is a primary now (was a replica of %s:%d)", f.host, f.port)
        return True

    def database_replaced(self):
        """A full sync swapped the database: replicas of this node must sync in full too."""
        self.local_writes = False
        self.primary.forget_previous()
        self.primary.close_all("this node's database was replaced by a full sync")
        self.primary.stop_backlog()
        self.primary.replid = new_replid()

    def stop(self):
        if self.follower is not None:
            self.follower.stop()
        self.primary.close_all("the server is shutting down")
        self.primary.stop_backlog()

    def good_replicas(self, max_lag):
        """Online replicas that acknowledged within max_lag seconds (min-replicas-to-write)."""
        now = time.monotonic()
        return sum(1 for link in self.primary.links.values()
                   if link.state == "online" and now - link.ack_time <= max_lag)

    def cron(self):
        self.primary.cron()

    def after_commit(self):
        if self.follower is not None and not self.follower.applying:
            self.local_writes = True
        p = self.primary
        if p.pending:
            p.pump()

    def client_gone(self, c):
        self.primary.client_gone(c)

    def client_ssl_context(self):
        """The TLS context a replica connects with (tls-replication yes), else None."""
        cfg = self.server.config
        if not cfg["tls-replication"]:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=cfg["tls-ca-cert-file"] or None, capath=cfg["tls-ca-cert-dir"] or None)
        ctx.check_hostname = False       # primaries are named by address, as in Redis
        if cfg["tls-client-cert-file"]:
            ctx.load_cert_chain(cfg["tls-client-cert-file"], cfg["tls-client-key-file"] or None,
                                password=cfg["tls-client-key-file-pass"] or None)
        elif cfg["tls-cert-file"]:
            ctx.load_cert_chain(cfg["tls-cert-file"], cfg["tls-key-file"] or None,
                                password=cfg["tls-key-file-pass"] or None)
        return ctx

    # -- INFO and ROLE ------------------------------------------------------------

    def info(self):
        s = self.server
        p = self.primary
        f = self.follower
        fields = [("role", "slave" if f else "master")]
        if f is not None:
            up = f.state == "connected"
            fields += [("master_host", f.host), ("master_port", f.port),
                       ("master_link_status", "up" if up else "down"),
                       ("master_last_io_seconds_ago", int(time.monotonic() - f.last_io) if up else -1),
                       ("master_sync_in_progress", 1 if f.state == "sync" else 0),
                       ("slave_read_repl_offset", f.seq), ("slave_repl_offset", f.seq),
                       ("slave_priority", s.config["replica-priority"]),
                       ("slave_read_only", 1 if s.config["replica-read-only"] else 0),
                       ("replica_announced", 1)]
            if not up:
                fields.append(("master_link_down_since_seconds", int(time.monotonic() - f.link_down_since)))
            if f.error:
                fields.append(("master_link_error", f.error.replace("\r", " ").replace("\n", " ")))
            fields += [("master_full_syncs", f.full_syncs), ("master_partial_syncs", f.partial_syncs)]
        fields.append(("connected_slaves", len(p.links)))
        if s.config["min-replicas-to-write"] and f is None:
            fields.append(("min_slaves_good_slaves", self.good_replicas(s.config["min-replicas-max-lag"])))
        fields += p.info_links()
        backlog = p.backlog
        offset = f.seq if f is not None else s.db.seq
        fields += [("master_failover_state", "no-failover"), ("master_replid", p.replid),
                   ("master_replid2", p.previous[0] if p.previous else "0" * 40), ("master_repl_offset", offset),
                   ("second_repl_offset", p.previous[1] + 1 if p.previous else -1),
                   ("repl_backlog_active", 1 if backlog is not None else 0),
                   ("repl_backlog_size", s.config["repl-backlog-size"]),
                   ("repl_backlog_first_byte_offset", backlog.first_seq if backlog is not None else 0),
                   ("repl_backlog_histlen", backlog.size if backlog is not None else 0)]
        return fields

    def role(self):
        f = self.follower
        if f is not None:
            return [b"slave", f.host.encode(), f.port, f.state.encode(), f.seq]
        return [b"master", self.server.db.seq, self.primary.role_links()]
