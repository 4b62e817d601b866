"""The server: listeners, clients, command groups, commit, and the background cron.

Execution model. All commands run on the event loop thread, one at a time, so
commands see each other's effects in a single serial order, as in Redis. Each
turn of the loop gathers the clients with parsed commands and runs them as one
*command group*: reads go straight to the database until the first write, then
every write of the group goes into one kvdb transaction, committed once at the
end of the group. Replies (and pub/sub messages) are written only after that
commit, so a write is acknowledged only once it is committed under the
configured sync mode, and writes from many connections share one commit and one
fsync (group commit). With sync=full the commit is appended to the log and
applied on the loop, and its fsync runs on a worker thread while the loop runs
the next groups (their commits join the next fsync): each client's replies wait
until the log is durable up to the newest commit its group could see
(Client.wait_seq), so nothing a reply shows can be lost in a crash.
"""
import asyncio
import concurrent.futures
import logging
import os
import shutil
import signal
import socket
import time

import kvdb
from kvdb.server.protocol.resp import ErrorReply, Status
from kvdb.version import VERSION as KVDB_VERSION

from . import acl, audit, authguard, limits, setsample, tls
from .blocking import Blocking
from .client import Client
from .commands import registry
from .commands.functions import LIBRARY_PREFIX
from .commands.groups import lookup  # the table with every command group's commands
from .commands.registry import CommandError
from .compat import REDIS_VERSION
from .keyspace import Keyspace, NameTooLong, WrongType, now_ms

from .protocol.fastlane import FastLane
from .pubsub import PubSub
from .replication import READONLY, Replication
from .slowlog import SlowLog
from .stats import Stats

log = logging.getLogger("kvdb.server")
_perf_counter = time.perf_counter
READONLY_REPLY = ErrorReply(READONLY)
NOREPLICAS_REPLY = ErrorReply("NOREPLICAS Not enough good replicas to write.")
_BNAMES = {}     # Command -> its full name as bytes (CLIENT LIST's cmd=), made once per command


# Commands a client in RESP2 subscribe mode may run.
SUBSCRIBE_MODE_OK = frozenset(["subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit", "reset",
                               "ssubscribe", "sunsubscribe"])
# Commands MULTI runs immediately instead of queueing.
MULTI_IMMEDIATE = frozenset(["exec", "discard", "multi", "watch", "quit", "reset"])


class ListenError(OSError):
    """A listening socket could not be bound (the port is in use, the address is not local)."""

    def __init__(self, errno, strerror, where):
        super().__init__(errno, strerror)
        self.where = where      # what failed to bind: "127.0.0.1 port 6379", "TLS port 6380"


class Server:
    def __init__(self, config):
        self.config = config                   # config.Config
        self.loop = None                       # the asyncio loop, set by start()
        self.db = None                         # kvdb.Database
        self.ks = None                         # keyspace.Keyspace
        self.listeners = []                    # asyncio servers
        self.clients = {}                      # id -> Client
        self._next_id = 0                      # last CLIENT ID given
        self.ready = []                        # clients with commands to run in the next group
        self.to_flush = set()                  # clients with output to write after the group's commit
        self.run_scheduled = False             # a run_group call is scheduled
        self.executor = None                   # one worker thread for sync=full fsyncs
        self.unsynced = None                   # sync=full: the newest commit's token until an fsync covers it
        self.syncing = False                   # sync=full: an fsync is running on the worker
        self.durable_wait = set()              # sync=full: clients whose replies wait for an fsync
        self.watchers = {}                     # (db, key) -> set of Clients watching it
        self.pubsub = PubSub(self)             # channels, patterns, notifications
        self.blocking = Blocking(self)         # clients blocked on keys (BLPOP, XREAD BLOCK, ...)
        self.slowlog = SlowLog()               # SLOWLOG entries
        self.stats = Stats()                   # INFO stats counters
        self.acl = acl.Acl(self)               # users and their permissions
        self.started = time.time()             # for uptime
        self.last_save = int(time.time())      # LASTSAVE
        self.changes_since_save = 0            # writes since the last checkpoint
        self.shutdown_event = None             # set to stop serve()
        self.cron_task = None                  # the background task
        self.port = None                       # the bound plaintext port (for ephemeral binds)
        self.sweep_due = False                 # the next group starts with an expiry sweep
        self.fastlane = None                   # fastlane.FastLane once the database is open
        self.stats_auth_failures = 0           # failed AUTH / HELLO AUTH attempts
        self.slowlog_threshold = config["slowlog-log-slower-than"]  # µs; copied from config on change
        # Security (docs/security.md).
        self.audit = audit.AuditLog(config)    # JSON-lines audit log
        self.limits = limits.Limits(self)      # protected mode, pre-auth caps, output buffer limits
        self.authguard = authguard.AuthGuard(self)  # AUTH off the loop, brute-force slowdown
        self.tls_context = tls.server_context(config)  # ssl.SSLContext for tls-port, or None
        self.tls_port = None                   # the bound TLS port
        self.replication = Replication(self)   # role, this node's replicas, its primary (replication/)
        self.gate_writes = False               # write commands go through write_refusal() (a read-only
                                               # replica, or min-replicas-to-write set)

    # -- lifecycle -------------------------------------------------------------

    def open_database(self):
        data = self.config["dir"]
        recover_swap(os.path.abspath(data))
        # the server is the database's only writer (its counters, expiry index and blind deletes
        # rely on it); read-only opens (kvdb check, stats, backup) may join it
        self.db = kvdb.open(data, **self.config.database_options(), _sole_writer=True)   # creates `data` if missing
        self.ks = Keyspace(self.db, self.config["databases"], self.key_changed)
        self.ks.load()
        use_fastlane = os.environ.get("KVDB_SERVER_FASTLANE", "1") != "0"
        self.fastlane = FastLane(self) if use_fastlane else None
        self.writes_refused_changed()

    def writes_refused_changed(self):
        """After a change of role, of replica-read-only or of min-replicas-to-write: whether
        write commands must pass write_refusal() (the fast lane then leaves them to the general
        path, which checks)."""
        self.gate_writes = self.replication.refuses_writes or self.config["min-replicas-to-write"] > 0
        if self.fastlane is not None:
            self.fastlane.writes_refused = self.gate_writes

    def write_refusal(self):
        """The error a write command gets now, or None: READONLY on a read-only replica;
        NOREPLICAS on a primary with fewer than min-replicas-to-write replicas that acknowledged
        within min-replicas-max-lag seconds (as Redis)."""
        if self.replication.refuses_writes:
            return READONLY_REPLY
        wanted = self.config["min-replicas-to-write"]
        if wanted > 0 and not self.replication.is_replica and \
                self.replication.good_replicas(self.config["min-replicas-max-lag"]) < wanted:
            return NOREPLICAS_REPLY
        return None

    def replace_database(self, new_dir):
        """A replica's full sync: the database at `new_dir` (closed, checkpointed) replaces the
        one in the data directory. Runs on the loop between command groups; a crash part-way
        leaves the old data beside the directory (`<dir>.old-PID`) and the next start syncs again."""
        data = os.path.abspath(self.config["dir"])
        old = f"{data}.old-{os.getpid()}"
        self.replication.database_replaced()
        setsample.forget_all()
        self.db.close()
        self.db = None
        try:
            os.rename(data, old)
            try:
                os.rename(new_dir, data)
            except OSError:
                os.rename(old, data)         # the old data goes back in place
                raise
            fd = os.open(os.path.dirname(data) or ".", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            try:
                self.open_database()         # the new data, or the old after a failed rename
            except BaseException:
                log.critical("the database in %s does not open after a full sync; stopping", data,
                             exc_info=True)
                self.request_shutdown("the database does not open after a full sync")
                raise
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(new_dir, ignore_errors=True)
        if getattr(self, "scripting", None) is not None:
            self.scripting.functions = None
        self.touch_all()

    def apply_replicated(self, ops):
        """A replica commits one batch of its primary's log (ops sorted by key, the position
        record among them), keeping the keyspace's counters (from the primary's count records,
        C6), caches and watchers in step."""
        # On the loop, fsync included under sync=full: nothing can run between the commit and
        # the bookkeeping after it (a REPLICAOF NO ONE reading the position, a swap).
        self.db._commit_log_ops(ops)
        self.ks.follow_ops(ops, bool(self.watchers or self.blocking.waiters))
        self.ks.store.caches.clear()
        setsample.forget_all()
        if getattr(self, "scripting", None) is not None and any(op[0].startswith(LIBRARY_PREFIX) for op in ops):
            self.scripting.functions = None      # FUNCTION libraries are read again at next use
        self.replication.after_commit()

    async def start(self):
        """Binds every listening socket, then opens the database, then accepts clients: a port
        in use (ListenError) fails the start before a database is created or opened."""
        self.loop = asyncio.get_running_loop()
        self.shutdown_event = asyncio.Event()
        try:
            await self.bind_listeners()
        except BaseException:
            self.close_listeners()
            raise
        try:
            self.open_database()
        except BaseException:
            self.close_listeners()
            raise
        for srv in self.listeners:
            if not srv.is_serving():
                await srv.start_serving()
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kvdb-commit")
        self.replication.start()
        self.limits.startup_warnings()
        self.cron_task = self.loop.create_task(self.cron())
        ports = [f"port {self.port}" if self.port is not None else "no plaintext port"]
        if self.tls_port is not None:
            ports.append(f"TLS port {self.tls_port}")
        log.info("kvdb %s server ready (Redis %s protocol), pid %d, listening on %s %s, data %s, "
                 "engine %s, sync %s", KVDB_VERSION, REDIS_VERSION, os.getpid(), self.config["bind"],
                 " and ".join(ports), os.path.abspath(self.config["dir"]), self.config["engine"],
                 self.config["sync"])

    async def bind_listeners(self):
        """Listens on `port` (not yet accepting: start() starts them once the database is open)
        and on `tls-port` on every bind address."""
        port = self.config["port"]
        if port:
            for host in self.config["bind"].split():
                try:
                    srv = await self.loop.create_server(lambda: Client(self), host=host, port=port,
                                                        backlog=self.config["tcp-backlog"], reuse_address=True,
                                                        start_serving=False)
                except OSError as e:
                    raise ListenError(e.errno, e.strerror or str(e), f"{host} port {port}") from e
                self.listeners.append(srv)
                if self.port is None:
                    self.port = srv.sockets[0].getsockname()[1]
        if self.tls_context is not None:
            try:
                await tls.start_listeners(self, lambda: Client(self, tls=True))
            except OSError as e:
                raise ListenError(e.errno, e.strerror or str(e),
                                  f"{self.config['bind']} TLS port {self.config['tls-port']}") from e

    def close_listeners(self):
        for srv in self.listeners:
            srv.close()
        self.listeners = []

    async def serve(self):
        """Runs until SHUTDOWN, SIGTERM or SIGINT, then shuts down gracefully."""
        await self.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.loop.add_signal_handler(sig, self.request_shutdown, sig.name)
            except (NotImplementedError, RuntimeError):
                pass
        await self.shutdown_event.wait()
        await self.stop()

    def request_shutdown(self, why="SHUTDOWN"):
        log.info("shutting down (%s)", why)
        if self.shutdown_event is not None:
            self.shutdown_event.set()

    async def stop(self):
        """Stops accepting, lets running groups finish, closes clients, checkpoints, closes."""
        self.close_listeners()
        if self.cron_task is not None:
            self.cron_task.cancel()
        self.replication.stop()
        for _ in range(500):
            if not self.syncing and not self.durable_wait and not self.ready:
                break
            await asyncio.sleep(0.01)
        for c in list(self.clients.values()):
            c.flush()
            if c.transport is not None:
                c.transport.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        if self.db is not None:
            try:
                self.db.checkpoint()
            except kvdb.Error as e:
                log.warning("checkpoint at shutdown failed: %s", e)
            self.db.close()
            self.db = None
        self.authguard.close()
        self.audit.close()
        log.info("kvdb server stopped")

    # -- clients -----------------------------------------------------------------

    def next_client_id(self):
        self._next_id += 1
        return self._next_id

    def default_user(self):
        return self.acl.default

    def auth_required(self):
        return self.acl.auth_required()

    def client_connected(self, c):
        self.stats.connections_received += 1
        if len(self.clients) >= self.config["maxclients"]:
            self.stats.rejected_connections += 1
            self.audit.event("connection_refused", c, reason="maxclients")
            c.transport.write(b"-ERR max number of clients reached\r\n")
            c.closing = True
            c.transport.close()
            return
        if not self.limits.admit(c):
            return
        self.clients[c.id] = c

    def client_disconnected(self, c):
        if self.clients.pop(c.id, None) is None:
            return
        self.limits.client_gone(c)
        self.unwatch(c)
        self.blocking.client_gone(c)
        self.replication.client_gone(c)
        self.pubsub.drop_client(c)
        self.to_flush.discard(c)

    def auth_failed(self, c, username):
        self.stats_auth_failures += 1
        log.warning("failed AUTH from %s as %r", c.addr, username)

    def auth_succeeded(self, c, username):
        log.debug("client %s authenticated as %r", c.addr, username)

    def config_changed(self, names, c):
        """After CONFIG SET: apply what must be applied, and log it."""
        if "requirepass" in names:
            self.acl.sync_requirepass()
        if "replica-read-only" in names or "min-replicas-to-write" in names:
            self.writes_refused_changed()
        if "repl-backlog-size" in names and self.replication.primary.backlog is not None:
            self.replication.primary.backlog.limit = self.config["repl-backlog-size"]
        self.slowlog_threshold = self.config["slowlog-log-slower-than"]
        if "loglevel" in names:
            set_log_level(self.config["loglevel"])
        self.limits.config_changed(names)
        self.audit.config_set(c, names, self.config)
        log.info("CONFIG SET %s by %s", ", ".join(names), c.addr)

    def extra_stats(self):
        return [("auth_failures", self.stats_auth_failures)] + self.authguard.stats() + self.limits.stats() + \
            self.acl.info_stats()

    def query_buffer_limit(self, c):
        return self.limits.query_buffer_limit(c)

    def check_output_limit(self, c):
        """Enforces client-output-buffer-limit (limits.py). Most writes leave nothing
        buffered, and then there is nothing to check unless a soft-limit timer runs."""
        t = c.transport
        if t is not None and (t.get_write_buffer_size() or c.id in self.limits.soft_since):
            self.limits.check_output(c)

    # -- command groups ------------------------------------------------------------

    def schedule(self, c):
        if not c.queued and not c.blocked:
            c.queued = True
            self.ready.append(c)
        if not self.run_scheduled:
            self.run_scheduled = True
            self.loop.call_soon(self.run_group)

    def schedule_group(self):
        """Runs a command group soon even if no client has commands (blocked clients to
        serve, timed-out waiters' replies to flush)."""
        if not self.run_scheduled and self.loop is not None:
            self.run_scheduled = True
            self.loop.call_soon(self.run_group)

    def run_group(self):
        self.run_scheduled = False
        if self.db is None:
            return
        store = self.ks.store  # between groups its transaction is None
        if self.sweep_due:
            self.sweep_due = False
            self.sweep_expired()
        if self.blocking.ready:
            # Keys changed by groups that have committed: blocked clients go first, in
            # the order they blocked (blocking.py); served ones join this group's flush.
            self.blocking.serve_ready()
        ready, self.ready = self.ready, []
        if self.durable_wait:
            # a client whose replies wait for an fsync runs nothing more until they are out
            # (synced() schedules it again), so that its replies cannot wait for ever
            held = [c for c in ready if c in self.durable_wait]
            if held:
                for c in held:
                    c.queued = False
                ready = [c for c in ready if c not in self.durable_wait]
        if self.fastlane is not None:
            again = self.fastlane.run_clients(ready, self.to_flush)   # the loop below, from C
        else:
            again = []
            for c in ready:
                c.queued = False
                if c.run():
                    again.append(c)
                self.to_flush.add(c)
        for c in again:
            self.schedule(c)
        if store.tx is None:
            self.flush_when_durable()
            return
        self.changes_since_save += 1
        full = self.db.sync == "full"
        try:
            token = store.commit(defer_sync=full)
        except Exception as e:  # noqa: BLE001 - every failure becomes an error reply
            self.group_failed(e)
            return
        self.replication.after_commit()
        if token is not None:
            self.unsynced = token
        self.flush_when_durable()

    def group_failed(self, error):
        log.error("commit failed: %s", error)
        setsample.forget_all()   # its SPOPs were not applied: the pools no longer match their sets
        text = ErrorReply(f"ERR commit failed, nothing of this write was applied: {error}")
        for c in self.to_flush:
            c.replies = [text] * len(c.replies)
        self.replication.after_commit()
        self.flush_when_durable()

    # -- replies after the fsync (sync=full) ---------------------------------------

    def flush_when_durable(self):
        """Writes the group's replies now, or, while a commit is not yet durable (sync=full),
        once an fsync covers it: a reply may show that commit, even a read's."""
        if self.unsynced is None:
            self.flush_all()
            return
        seq = self.unsynced[1]
        clients, self.to_flush = self.to_flush, set()
        for c in clients:
            if c.wait_seq < seq:
                c.wait_seq = seq
        self.durable_wait |= clients
        self.start_sync()

    def start_sync(self):
        if self.syncing or self.unsynced is None:
            return
        token = self.unsynced
        self.syncing = True
        fut = self.loop.run_in_executor(self.executor, self.wait_durable, token)
        fut.add_done_callback(lambda f: self.synced(token, f.exception()))

    def wait_durable(self, token):
        """On the worker: the fsync that makes token's commit, and every one before it, durable."""
        self.db._wait_durable(token)

    def synced(self, token, error):
        """The fsync of token's commit (and of every commit before it) returned."""
        self.syncing = False
        if self.unsynced is token:
            self.unsynced = None
        if error is None:
            seq = token[1]
            ready = {c for c in self.durable_wait if c.wait_seq <= seq}
        else:
            log.error("fsync of the log failed: %s", error)
            text = ErrorReply(f"ERR commit failed, it may not survive a crash: {error}")
            ready = set(self.durable_wait)
            for c in ready:
                c.replies = [text] * len(c.replies)
            self.unsynced = None
        self.durable_wait -= ready
        if ready:
            if self.fastlane is not None:
                self.fastlane.flush_clients(ready)
            else:
                for c in ready:
                    c.flush()
            for c in ready:
                c.wait_seq = 0
                if (c.pending or c.protocol_error) and c.transport is not None:
                    self.schedule(c)
        self.start_sync()

    async def settle_durable(self):
        """Until no fsync runs or is due and every held reply is out (before the database is
        swapped for another: the held replies and the fsync belong to this one)."""
        while self.syncing or self.unsynced is not None or self.durable_wait:
            self.start_sync()
            await asyncio.sleep(0.001)

    def flush_all(self):
        clients, self.to_flush = self.to_flush, set()
        if self.fastlane is not None:
            self.fastlane.flush_clients(clients)     # Client.flush of each, from C
        else:
            for c in clients:
                c.flush()

    # -- executing one command -------------------------------------------------------

    def execute(self, c, args):
        """Runs one command for client c and returns its reply (None: no reply)."""
        cmd, error = lookup(args)
        if cmd is not None and c.multi is None and c.authenticated and not c.channels and not c.patterns:
            if c.user.unrestricted and not cmd.audited:  # the common case, checked first
                return self.call(c, cmd, args)
            denied = self.acl.check(c, cmd, args)
            return self.call(c, cmd, args) if denied is None else ErrorReply(denied)
        name = cmd.fullname if cmd is not None else None
        if c.multi is not None and (cmd is None or cmd.name not in MULTI_IMMEDIATE):
            if cmd is None:
                c.multi_error = True
                return ErrorReply(error)
            denied = self.acl.check(c, cmd, args)
            if denied:
                c.multi_error = True
                return ErrorReply(denied)
            if self.gate_writes and "write" in cmd.flags:
                refused = self.write_refusal()
                if refused is not None:
                    c.multi_error = True
                    return refused
            c.multi.append((cmd, args))
            return Status("QUEUED")
        if cmd is None:
            return ErrorReply(error)
        if not c.authenticated and "noauth" not in cmd.flags:
            return ErrorReply("NOAUTH Authentication required.")
        if c.proto == 2 and c.subscriptions and cmd.name not in SUBSCRIBE_MODE_OK:
            return ErrorReply(f"ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                              "PING / QUIT / RESET are allowed in this context")
        denied = self.acl.check(c, cmd, args)
        if denied:
            return ErrorReply(denied)
        return self.call(c, cmd, args)

    def call(self, c, cmd, args):
        name = _BNAMES.get(cmd)
        if name is None:
            name = _BNAMES[cmd] = cmd.fullname.encode()
        c.last_command = name
        if self.gate_writes and "write" in cmd.flags:
            refused = self.write_refusal()
            if refused is not None:
                return refused
        start = _perf_counter()
        try:
            # Key names of any length work (long ones through their digest: keyspace.LONG_*);
            # fields and members past their limits raise NameTooLong where they are written.
            reply = cmd.handler(c, args)
        except CommandError as e:
            reply = ErrorReply(str(e))
        except WrongType:
            reply = ErrorReply(registry.WRONGTYPE)
        except NameTooLong as e:
            reply = ErrorReply(str(e))
        except kvdb.Error as e:
            log.error("%s failed: %s", cmd.fullname, e)
            reply = ErrorReply(f"ERR {e}")
        except Exception as e:  # noqa: BLE001 - a bug in one command must not abort the whole group
            log.error("internal error in command %s", cmd.fullname, exc_info=True)
            reply = ErrorReply(f"ERR internal error in '{cmd.fullname}': {type(e).__name__}")
        micros = int((_perf_counter() - start) * 1e6)
        stats = self.stats
        stats.commands_processed += 1
        s = stats.per_command.get(cmd.fullname)
        if s is None:
            stats.count(cmd.fullname, micros)
        else:       # Stats.count, inlined
            s.calls += 1
            s.usec += micros
        if micros >= self.slowlog_threshold >= 0:
            self.slowlog.add(micros, args, c, self.config["slowlog-max-len"])
        return reply

    # -- WATCH -----------------------------------------------------------------------

    def watch(self, c, db, key):
        k = (db, key)
        if k in c.watched:
            return
        c.watched.add(k)
        self.watchers.setdefault(k, set()).add(c)

    def unwatch(self, c):
        for k in c.watched:
            s = self.watchers.get(k)
            if s is not None:
                s.discard(c)
                if not s:
                    del self.watchers[k]
        c.watched = set()
        c.watch_dirty = False

    def key_changed(self, db, key, event):
        """Called by the keyspace for every change: invalidates WATCHes, sends notifications."""
        if self.blocking.waiters:
            self.blocking.key_changed(db, key)
        if self.watchers:
            watching = self.watchers.get((db, key))
            if watching:
                for c in watching:
                    c.watch_dirty = True
        if event and self.pubsub.notifying:
            self.pubsub.notify_key(db, key, event)

    def touch_all(self, db=None):
        """FLUSHDB / FLUSHALL: every watched key of db (all when None) changed, and every
        key a client blocks on (a blocked XREADGROUP then gets NOGROUP, as in Redis)."""
        for (d, _), clients in self.watchers.items():
            if db is None or d == db:
                for c in clients:
                    c.watch_dirty = True
        for d, key in list(self.blocking.waiters):
            if db is None or d == db:
                self.blocking.key_changed(d, key)

    # -- background ------------------------------------------------------------------------

    async def cron(self):
        """Every 1/hz s: schedule an expiry sweep, close idle clients, sample ops/s."""
        try:
            while True:
                await asyncio.sleep(1.0 / self.config["hz"])
                self.stats.sample()
                self.replication.cron()
                if self.replication.is_replica:
                    pass     # a replica deletes what its primary's log deletes, and nothing else
                elif any(self.ks.expires) or self.ks.garbage:
                    self.sweep_due = True
                    if not self.run_scheduled:
                        self.run_scheduled = True
                        self.loop.call_soon(self.run_group)
                self.close_idle_clients()
                self.limits.cron()
        except asyncio.CancelledError:
            pass

    def close_idle_clients(self):
        timeout = self.config["timeout"]
        if not timeout:
            return
        limit = time.monotonic() - timeout
        for c in list(self.clients.values()):
            if c.last_active < limit and not c.subscriptions and not c.blocked and \
                    getattr(c, "replica_link", None) is None:
                c.close("idle timeout")

    def sweep_expired(self, budget=200):
        """Deletes up to `budget` keys whose expiry has passed, and clears deleted
        collections' sub-records in bounded steps (runs inside a group)."""
        if self.ks.garbage:
            self.ks.collect_garbage(budget * 5)
        now = now_ms()
        for d in range(self.ks.databases):
            if not self.ks.expires[d]:
                continue
            for at, key in self.ks.due_expiries(d, now, budget):
                e = self.ks.raw(d, key)
                if e is not None and e.expire_at == at:
                    self.ks.remove(d, key, e, event="expired")
                    self.ks.expired_total += 1
                else:  # an index entry its key no longer points to; never expected
                    log.warning("dropping a stale expiry index entry for %r", key)
                    self.ks.drop_expiry_entry(d, at, key)
                budget -= 1
            if budget <= 0:
                return


LOG_LEVELS = {"debug": logging.DEBUG, "verbose": logging.INFO, "notice": logging.INFO, "warning": logging.WARNING}


def set_log_level(name):
    logging.getLogger("kvdb").setLevel(LOG_LEVELS[name])


def recover_swap(data):
    """A full sync swaps `<data>.sync-PID` in for `data` through `<data>.old-PID`
    (Server.replace_database). After a crash between the two renames, `data` is missing: put
    the old data back (the replica syncs again). Leftover copies of either kind are removed."""
    parent, name = os.path.split(data)
    try:
        entries = os.listdir(parent or ".")
    except OSError:
        return
    old = sorted(e for e in entries if e.startswith(name + ".old-"))
    if old and not os.path.exists(data):
        log.warning("%s is missing after an interrupted full sync: restoring %s", data, old[-1])
        os.rename(os.path.join(parent, old.pop()), data)
    for e in old + [e for e in entries if e.startswith(name + ".sync-")]:
        shutil.rmtree(os.path.join(parent, e), ignore_errors=True)


def pick_free_port(host="127.0.0.1"):
    """A port that was free a moment ago (tests start servers on ephemeral ports)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
