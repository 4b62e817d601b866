"""Serving other clients while a script runs longer than busy-reply-threshold.

Commands run on the event loop's thread, so while a script runs nothing else
does. Redis answers this by processing events from inside the script once it
has run past busy-reply-threshold: other clients get

    -BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.

(FUNCTION KILL for a function), and the few commands flagged allow-busy run:
SCRIPT KILL, FUNCTION KILL/STATS, SHUTDOWN NOSAVE, AUTH, HELLO, MULTI, DISCARD,
WATCH, UNWATCH, RESET, QUIT. kvdb does the same: the script's Lua hook
(lua.py) calls tick() every HOOK_COUNT instructions, and past the threshold
tick() calls BusyIO.poll() at most every POLL_INTERVAL. poll() does its own
non-blocking I/O, without the event loop (asyncio's or uvloop's: neither can
be re-entered from inside a callback, and their sockets are idle meanwhile):

1. It accepts waiting connections on the plaintext listeners itself. Each gets
   a Client whose transport is a BusyTransport writing to the socket directly;
   when the script ends the socket is handed to the event loop
   (connect_accepted_socket) with the Client's state and unsent output.
2. It reads every plaintext client's socket (os.read) and feeds
   Client.data_received, as the loop would.
3. Every other client's parsed commands are answered: allow-busy ones run as
   usual (AUTH and HELLO AUTH check the password at once, since the thread
   that usually does cannot report back meanwhile), the rest get BUSY (in MULTI
   they also abort the transaction, EXEC says EXECABORT). The script's own
   client is left alone.
4. Replies are written, except to clients that still hold replies of the
   running command group (written only after its commit): their BUSY replies
   queue behind them.

TLS connections are not served while a script is busy: they wait for it to end.

SCRIPT KILL marks the run killed (when it has written nothing: else
UNKILLABLE) and the next tick() stops the script. SHUTDOWN NOSAVE ends the
process at once without committing the running command group, like a kill -9
(nothing of that group was acknowledged). A script that has written cannot be
stopped otherwise; SIGTERM is handled when the script has ended.
"""
import asyncio
import logging
import os
import select
import socket
import time

from kvdb.server.protocol.resp import ErrorReply

from .acl_user import NOPERM_AUTH
from .client import Client
from .commands import registry

log = logging.getLogger("kvdb.server")

__all__ = ["BusyIO", "BUSY_EVAL", "BUSY_FUNCTION", "POLL_INTERVAL"]

POLL_INTERVAL = 0.005     # seconds between two polls while busy
ACCEPT_BUDGET = 64        # connections accepted per poll at most
READ_SIZE = 1 << 16       # bytes read from a socket at once
BUSY_EVAL = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
BUSY_FUNCTION = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
# Redis's allow-busy commands (CMD_ALLOW_BUSY), by ACL name.
ALLOW_BUSY = frozenset(["auth", "hello", "reset", "quit", "multi", "discard", "watch", "unwatch", "script|kill",
                        "function|kill", "function|stats", "shutdown"])


class BusyTransport:
    """The transport of a connection accepted while a script is busy, until the event
    loop takes the socket over: writes go straight to the socket, the rest buffers."""

    def __init__(self, sock):
        self.sock = sock                      # the accepted socket (non-blocking)
        self.out = bytearray()                # output the socket did not take yet
        self.closing = False                  # close() or abort() was called
        self.paused = False                   # pause_reading() was called
        try:
            self.peer = sock.getpeername()    # ("ip", port)
            self.local = sock.getsockname()
        except OSError:
            self.peer = self.local = ("?", 0)

    def get_extra_info(self, name, default=None):
        return {"peername": self.peer, "sockname": self.local, "socket": self.sock}.get(name, default)

    def write(self, data):
        if self.closing:
            return
        self.out += data
        self.send()

    def send(self):
        if not self.out:
            return
        try:
            n = self.sock.send(self.out)
            del self.out[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.out.clear()
            self.closing = True

    def get_write_buffer_size(self):
        return len(self.out)

    def close(self):
        self.closing = True

    def abort(self):
        self.out.clear()
        self.closing = True

    def is_closing(self):
        return self.closing

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False

    def set_write_buffer_limits(self, high=None, low=None):
        pass


class _Handover(asyncio.Protocol):
    """The protocol the event loop gets for a socket accepted while busy: it gives the
    new transport to the Client and forwards everything to it."""

    def __init__(self, client, busy):
        self.client = client       # the Client created when the connection was accepted
        self.busy = busy           # its BusyTransport (unsent output)

    def connection_made(self, transport):
        c = self.client
        c.transport = transport
        if self.busy.out:
            transport.write(bytes(self.busy.out))
        if c.closing:
            transport.close()
        elif c.pending or c.protocol_error:
            c.server.schedule(c)

    def data_received(self, data):
        self.client.data_received(data)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.client.connection_lost(exc)

    def pause_writing(self):
        self.client.pause_writing()

    def resume_writing(self):
        self.client.resume_writing()


class BusyIO:
    def __init__(self, server):
        self.server = server                   # the app.Server
        self.held = set()                      # clients whose replies wait for the group's commit
        self.eof = set()                       # sockets (fds) that reached end of file
        self.accepted = []                     # (Client, BusyTransport) accepted while busy

    def begin(self, run):
        """The run just passed the threshold."""
        self.held = set()
        self.eof = set()
        self.accepted = []
        log.warning("Slow script detected: still in execution after %d milliseconds. You can try killing the "
                    "script using the %s command. Script name is: %s.", int((time.monotonic() - run.start) * 1000),
                    "SCRIPT KILL" if run.is_eval else "FUNCTION KILL", run.name)

    def end(self):
        """The script ended: the event loop takes over the connections accepted meanwhile."""
        accepted, self.accepted = self.accepted, []
        self.held = set()
        self.eof = set()
        loop = self.server.loop
        for c, t in accepted:
            if t.closing or c.closing or c.transport is not t:
                t.send()
                _close(t.sock)
                c.connection_lost(None)
                continue
            loop.create_task(self._handover(loop, c, t))

    async def _handover(self, loop, c, t):
        try:
            await loop.connect_accepted_socket(lambda: _Handover(c, t), t.sock)
        except Exception as e:  # noqa: BLE001 - the connection is lost, the server goes on
            log.warning("could not hand over connection %s: %s", c.addr, e)
            _close(t.sock)
            c.connection_lost(None)

    def poll(self, run):
        server = self.server
        for c in server.clients.values():
            if c.replies:
                self.held.add(c)
        self.held.add(run.client)
        self._accept()
        self._read(run)
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
        for c, t in self.accepted:
            t.send()

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
            if name in ("auth", "hello") and c.multi is None:
                refused = self.check_password(c, args, busy)
                if refused is not None:
                    return refused
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

    def check_password(self, c, args, busy):
        """AUTH / HELLO AUTH while busy: the password is checked here, at once (the
        authguard thread could not report back before the script ends); a right one is
        remembered so the command itself then takes authguard's fast path. None to go
        on, else the reply."""
        creds = _credentials(args)
        if creds is None:
            return None
        username, password = creds
        server = self.server
        user = server.acl.users.get(username)
        if user is None or user.password_ok_fast(password) is not None:
            return None   # known at once: authguard answers without a thread
        if server.authguard.tracked_failures(c.host):
            return ErrorReply(busy)   # no password guessing at full speed while busy
        if server.acl.authenticate(username, password) is not None:
            user.remember(password)
            return None
        server.authguard.failed(c.host)
        server.auth_failed(c, username)
        server.acl.deny(c, "auth", "AUTH", username=username)
        return ErrorReply(NOPERM_AUTH)

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

    def _accept(self):
        server = self.server
        for srv in server.listeners:
            for lsock in getattr(srv, "sockets", None) or ():
                try:
                    fd = lsock.fileno()
                    port = lsock.getsockname()[1]
                except (OSError, AttributeError, IndexError, TypeError):
                    continue
                if fd < 0 or (server.tls_port is not None and port == server.tls_port):
                    continue
                self._accept_on(fd, lsock.family, lsock.type)

    def _accept_on(self, fd, family, type_):
        try:
            listener = socket.socket(family, type_, fileno=os.dup(fd))
        except OSError:
            return
        try:
            listener.setblocking(False)
            for _ in range(ACCEPT_BUDGET):
                try:
                    conn, _addr = listener.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as e:
                    log.warning("accept while a script is busy: %s", e)
                    return
                conn.setblocking(False)
                if conn.family in (socket.AF_INET, socket.AF_INET6):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = BusyTransport(conn)
                c = Client(self.server)
                self.accepted.append((c, t))
                c.connection_made(t)
        finally:
            listener.close()   # the duplicate only: the listener itself stays open

    def _read(self, run):
        poller = select.poll()
        by_fd = {}
        for c in self.server.clients.values():
            t = c.transport
            if c is run.client or c.tls or t is None or c.closing or c.reading_paused or c.blocked:
                continue
            if isinstance(t, BusyTransport) and t.paused:
                continue
            sock = t.get_extra_info("socket")
            if sock is None:
                continue
            try:
                fd = sock.fileno()
            except (OSError, ValueError):
                continue
            if fd < 0 or fd in self.eof:
                continue
            by_fd[fd] = c
            poller.register(fd, select.POLLIN)
        if not by_fd:
            return
        for fd, _ in poller.poll(0):
            c = by_fd[fd]
            try:
                data = os.read(fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                self.eof.add(fd)
                if isinstance(c.transport, BusyTransport):
                    c.transport.close()
                continue
            c.data_received(data)


def _credentials(args):
    """(username, password) of an AUTH or HELLO ... AUTH user pass command, else None."""
    name = args[0].lower()
    if name == b"auth":
        if len(args) == 2:
            return "default", args[1]
        if len(args) == 3:
            return args[1].decode("utf-8", "replace"), args[2]
        return None
    for i in range(1, len(args) - 2):
        if args[i].lower() == b"auth":
            return args[i + 1].decode("utf-8", "replace"), args[i + 2]
    return None


def _close(sock):
    try:
        sock.close()
    except OSError:
        pass
