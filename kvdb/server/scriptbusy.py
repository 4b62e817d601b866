"""Serving other clients while a script runs longer than busy-reply-threshold.

Commands run on the event loop's thread, so while a script runs nothing else
does. Redis answers this by processing events from inside the script once it
has run past busy-reply-threshold: other clients get

    -BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.

(FUNCTION KILL for a function), and the few commands flagged allow-busy run:
SCRIPT KILL, FUNCTION KILL/STATS, SHUTDOWN NOSAVE, AUTH, HELLO, MULTI, DISCARD,
WATCH, UNWATCH, RESET, QUIT. kvdb does the same: the script's Lua hook
(lua.py) calls tick() every HOOK_COUNT instructions, and past the threshold
tick() calls BusyIO.poll() at most every POLL_INTERVAL:

1. I/O without the event loop's callbacks: with asyncio's selector loop, one
   non-blocking select() of the loop's own selector, whose ready reader/writer
   handles (socket reads and writes, accepting connections, TLS) run here, with
   `loop._ready` swapped for a private queue. Handles that must wait for the
   script to end are put back in the loop's queue untouched: the next command
   group (Server.run_group) and every task other than a connection being
   accepted. With another loop (uvloop), poll() reads the plaintext clients'
   sockets directly (os.read on the socket, fed to Client.data_received) and new
   connections wait for the script to end.
2. Every other client's parsed commands are answered: allow-busy ones run as
   usual, the rest get BUSY (in MULTI they also abort the transaction, EXEC
   says EXECABORT). The script's own client is left alone.
3. Replies are written, except to clients that still hold replies of the
   running command group (which are written only after its commit): their BUSY
   replies queue behind them.

SCRIPT KILL marks the run killed (when it has written nothing: else UNKILLABLE)
and the next tick() stops the script. SHUTDOWN NOSAVE ends the process at once
without committing the running group, like a kill -9 (nothing of it was
acknowledged). A SIGTERM during a busy script stops the script when it has
written nothing (then the server shuts down as usual); a script that has
written cannot be stopped except by SHUTDOWN NOSAVE or SIGKILL.
"""
import collections
import logging
import os
import select
import time

from kvdb._core.resp import ErrorReply

from .commands import registry

log = logging.getLogger("kvdb.server")

__all__ = ["BusyIO", "BUSY_EVAL", "BUSY_FUNCTION", "POLL_INTERVAL"]

POLL_INTERVAL = 0.005     # seconds between two polls while busy
HANDLE_BUDGET = 10000     # loop callbacks run per poll at most
BUSY_EVAL = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
BUSY_FUNCTION = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
# Redis's allow-busy commands (CMD_ALLOW_BUSY), by ACL name.
ALLOW_BUSY = frozenset(["auth", "hello", "reset", "quit", "multi", "discard", "watch", "unwatch", "script|kill",
                        "function|kill", "function|stats", "shutdown"])


class BusyIO:
    def __init__(self, server):
        self.server = server                   # the app.Server
        self.held = set()                      # clients whose replies wait for the group's commit
        self.eof = set()                       # (raw mode) sockets that reached end of file

    def begin(self, run):
        """The run just passed the threshold."""
        self.held = set()
        self.eof = set()
        log.warning("Slow script detected: still in execution after %d milliseconds. You can try killing the "
                    "script using the %s command. Script name is: %s.", int((time.monotonic() - run.start) * 1000),
                    "SCRIPT KILL" if run.is_eval else "FUNCTION KILL", run.name)

    def end(self):
        self.held = set()
        self.eof = set()

    def poll(self, run):
        server = self.server
        for c in server.clients.values():
            if c.replies:
                self.held.add(c)
        self.held.add(run.client)
        loop = server.loop
        if loop is not None:
            if _is_selector_loop(loop):
                self._step_selector(loop)
            else:
                self._step_raw(run)
        for c in list(server.clients.values()):
            if c is run.client or c.blocked or c.closing or not c.pending:
                continue
            while c.pending and not c.blocked and not c.closing:
                reply = self.reply(c, c.pending.popleft(), run)
                if reply is not registry.NO_REPLY:
                    c.replies.append(reply)
        for c in list(server.clients.values()):
            if c.replies and c not in self.held:
                c.flush()

    # -- one command of another client -------------------------------------------------

    def reply(self, c, args, run):
        server = self.server
        busy = BUSY_EVAL if run.is_eval else BUSY_FUNCTION
        cmd, error = registry.lookup(args)
        if cmd is None:
            if c.multi is not None:
                c.multi_error = True
            return ErrorReply(error)
        name = cmd.fullname
        if name == "shutdown":
            return self.shutdown(c, cmd, args, run, busy)
        if name in ALLOW_BUSY or "allow_busy" in cmd.flags:
            return server.execute(c, args)
        if not c.authenticated and "noauth" not in cmd.flags:
            return ErrorReply("NOAUTH Authentication required.")
        if name == "exec" and c.multi is not None:
            c.multi = None
            c.multi_error = False
            server.unwatch(c)
            return ErrorReply("EXECABORT Transaction discarded because of: " + busy)
        if c.multi is not None:
            c.multi_error = True
        return ErrorReply(busy)

    def shutdown(self, c, cmd, args, run, busy):
        server = self.server
        if not c.authenticated:
            return ErrorReply("NOAUTH Authentication required.")
        denied = server.acl.check(c, cmd, args)
        if denied:
            return ErrorReply(denied)
        opts = {a.lower() for a in args[1:]}
        if not opts <= {b"nosave", b"save", b"now", b"force", b"abort"}:
            return ErrorReply(registry.SYNTAX)
        if b"nosave" not in opts or b"save" in opts or b"abort" in opts:
            return ErrorReply(busy)
        log.warning("SHUTDOWN NOSAVE from %s while script %s was running: exiting now; the running command group "
                    "(not acknowledged) is not committed", c.addr, run.name)
        try:
            server.audit.close()
        finally:
            logging.shutdown()
            os._exit(0)

    # -- I/O ------------------------------------------------------------------------------

    def _step_selector(self, loop):
        """One non-blocking turn of the loop's selector, running only what is safe now."""
        saved = loop._ready
        mine = collections.deque()
        deferred = []
        loop._ready = mine
        try:
            loop._process_events(loop._selector.select(0))
            budget = HANDLE_BUDGET
            while mine and budget > 0:
                budget -= 1
                h = mine.popleft()
                if h._cancelled:
                    continue
                if self._must_wait(h):
                    deferred.append(h)
                    continue
                h._run()
        finally:
            loop._ready = saved
            saved.extend(deferred)
            saved.extend(mine)

    def _must_wait(self, handle):
        cb = handle._callback
        owner = getattr(cb, "__self__", None)
        if owner is self.server:
            return getattr(cb, "__name__", "") != "request_shutdown"   # run_group and the like wait
        if owner is not None and hasattr(owner, "get_coro") and hasattr(owner, "cancel"):  # an asyncio Task
            coro = owner.get_coro()
            return getattr(coro, "__name__", "") != "_accept_connection2"
        return False

    def _step_raw(self, run):
        """Without a selector loop: read plaintext clients' sockets ourselves."""
        poller = select.poll()
        by_fd = {}
        for c in self.server.clients.values():
            if c is run.client or c.tls or c.transport is None or c.closing or c.reading_paused or c.blocked:
                continue
            sock = c.transport.get_extra_info("socket")
            if sock is None:
                continue
            fd = sock.fileno()
            if fd < 0 or fd in self.eof:
                continue
            by_fd[fd] = c
            poller.register(fd, select.POLLIN)
        if not by_fd:
            return
        for fd, _ in poller.poll(0):
            c = by_fd[fd]
            try:
                data = os.read(fd, 1 << 16)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                self.eof.add(fd)
                continue
            if not data:
                self.eof.add(fd)
                continue
            c.data_received(data)


def _is_selector_loop(loop):
    return hasattr(loop, "_selector") and hasattr(loop, "_process_events") and \
        isinstance(getattr(loop, "_ready", None), collections.deque)
