"""One client connection: the protocol object asyncio drives, its parser, its
queue of parsed commands and its replies, and the per-connection state commands
read and change (selected database, protocol version, MULTI queue, watched
keys, subscriptions, name, user).

Reading, executing and writing are decoupled: data_received() only parses and
hands the client to the server's next command group; the server runs each
ready client's commands (app.Server.run_group) and then flushes every client's
replies with one write each. A client whose unsent output passes the transport's
high-water mark stops being read until it drains, so a client that does not read
its replies cannot make the server buffer without bound.
"""
import asyncio
import collections
import logging
import time

from kvdb.server.protocol.resp import ErrorReply, Push, RequestParser

from .commands.registry import NO_REPLY

from .protocol.fastreply import encode_replies   # the same bytes as resp.encode_replies, faster


log = logging.getLogger("kvdb.server")
_monotonic = time.monotonic

# Commands one client may run per command group before others get a turn.
COMMANDS_PER_TURN = 512
# Bulk reply bytes one client may produce per turn; with the transport's high-water
# mark this bounds what a client that does not read its replies costs in memory.
OUTPUT_PER_TURN = 1 << 20

# CLIENT REPLY modes (Client.reply_mode; None is ON, the usual case).
REPLY_OFF = "off"              # no replies (pushes still go out) until CLIENT REPLY ON
REPLY_SKIP_NEXT = "skip-next"  # set by CLIENT REPLY SKIP: the command after it gets no reply
REPLY_SKIP = "skip"            # the command running now gets no reply, then replies resume


class Client(asyncio.Protocol):
    # Slots for the attributes the per-command path reads (from C too: protocol/fastlane.pyx), which
    # makes each access a fixed-offset read; __dict__ keeps room for any other attribute.
    __slots__ = ("server", "tls", "id", "transport", "addr", "laddr", "host", "parser", "pending", "replies",
                 "queued", "blocked", "in_exec", "in_script", "closing", "protocol_error", "reading_paused",
                 "db", "proto", "name", "lib_name", "lib_ver", "user", "authenticated", "multi", "multi_error",
                 "watched", "watch_dirty", "channels", "patterns", "created", "last_active", "last_command",
                 "first_command_seen", "reply_mode", "drop_at", "__dict__", "__weakref__")

    def __init__(self, server, tls=False):
        self.server = server                   # the app.Server
        self.tls = tls                         # connected through the TLS listener
        self.id = server.next_client_id()      # CLIENT ID
        self.transport = None                  # asyncio transport, None once closed
        self.addr = "?:0"                      # peer "ip:port"
        self.laddr = "?:0"                     # local "ip:port"
        self.host = ""                         # peer ip
        self.parser = RequestParser(server.config["proto-max-bulk-len"])
        self.pending = collections.deque()     # parsed commands not yet run
        self.replies = []                      # replies and pushes not yet written
        self.queued = False                    # in the server's ready list
        self.blocked = False                   # waiting (DEBUG SLEEP, BLPOP, ...); not run until unblocked
        self.in_exec = False                   # running EXEC's queue: blocking commands do not block
        self.in_script = False                 # running a script's redis.call: the same
        self.closing = False                   # close after the pending replies are written
        self.protocol_error = None             # -ERR text to send before closing
        self.reading_paused = False            # transport reading paused for backpressure
        # Command state.
        self.db = 0                            # SELECTed database
        self.proto = 2                         # RESP version (HELLO)
        self.name = b""                        # CLIENT SETNAME
        self.lib_name = b""                    # CLIENT SETINFO LIB-NAME
        self.lib_ver = b""                     # CLIENT SETINFO LIB-VER
        self.user = server.default_user()      # authenticated user (acl.User)
        self.authenticated = not server.auth_required()
        self.multi = None                      # queued commands between MULTI and EXEC, or None
        self.multi_error = False               # a command failed to queue: EXEC aborts
        self.watched = set()                   # {(db, key)} WATCHed
        self.watch_dirty = False               # a watched key changed: EXEC returns nil
        self.channels = set()                  # SUBSCRIBEd channels
        self.patterns = set()                  # PSUBSCRIBEd patterns
        self.created = time.time()             # connection time
        self.last_active = time.monotonic()    # last command (idle timeout)
        self.last_command = b"NULL"            # for CLIENT LIST
        self.first_command_seen = False        # completed its first command (slow-connect deadline)
        self.reply_mode = None                 # CLIENT REPLY: None (on), REPLY_OFF, REPLY_SKIP_NEXT, REPLY_SKIP
        self.drop_at = None                    # a command blocked with its reply off: the reply it gets
                                               # when unblocked is the first non-push from this index
        self.wait_seq = 0                      # sync=full: its replies go out once the log is durable
                                               # up to this seq (Server.flush_when_durable)
        if server.fastlane is not None:
            server.fastlane.attach(self)       # data_received's steps from C

    # -- asyncio protocol ----------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.host = str(peer[0])
        self.addr = f"{peer[0]}:{peer[1]}"
        self.laddr = f"{sock[0]}:{sock[1]}"
        self.server.client_connected(self)

    def data_received(self, data):
        if self.closing:
            return
        self.server.stats.net_input_bytes += len(data)
        commands = self.parser.feed(data)
        if commands:
            self.pending.extend(commands)
            self.first_command_seen = True
        if self.parser.error is not None:
            self.protocol_error = self.parser.error
            if self.transport is not None:
                self.transport.pause_reading()
        elif self.parser.in_frame and self.parser.pending > self.server.query_buffer_limit(self):
            log.warning("closing client %s: query buffer of %d bytes passes client-query-buffer-limit",
                        self.addr, self.parser.pending)
            self.protocol_error = "ERR Protocol error: query buffer limit exceeded"
        if self.pending or self.protocol_error:
            server = self.server
            if not self.queued and not self.blocked:      # Server.schedule, inlined
                self.queued = True
                server.ready.append(self)
            if not server.run_scheduled:
                server.run_scheduled = True
                server.loop.call_soon(server.run_group)

    def connection_lost(self, exc):
        self.transport = None
        self.closing = True
        self.server.client_disconnected(self)

    def pause_writing(self):
        # The transport's buffer passed its high-water mark: stop reading commands.
        if self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_writing(self):
        if self.transport is not None and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
            if self.pending:
                self.server.schedule(self)

    # -- execution -------------------------------------------------------------

    def run(self):
        """Runs up to COMMANDS_PER_TURN pending commands; returns whether more remain."""
        fast = self.server.fastlane
        if fast is not None and self.reply_mode is None and self.drop_at is None and not self.reading_paused:
            # The common case first, in one call: the fast lane runs every pending command
            # (it runs none for a blocked or closing client).
            done, out = fast.run_batch(self, COMMANDS_PER_TURN, OUTPUT_PER_TURN)
            if not self.pending and self.protocol_error is None:
                self.last_active = _monotonic()
                return False
            return self._run(done, OUTPUT_PER_TURN - out)
        return self._run(0, OUTPUT_PER_TURN)

    def _run(self, n, budget):
        """run()'s loop, after n commands producing OUTPUT_PER_TURN - budget bulk bytes."""
        if self.drop_at is not None and not self.blocked:
            self._drop_deferred()
        execute = self.server.execute
        blocking = self.server.blocking
        fast = self.server.fastlane
        while self.pending and not self.blocked and not self.closing:
            if self.reading_paused:
                return False  # its replies are not being read: resume_writing() reschedules it
            if n >= COMMANDS_PER_TURN or budget <= 0:
                return True
            if fast is not None and self.reply_mode is None:  # the fast lane always replies
                done, out = fast.run_batch(self, COMMANDS_PER_TURN - n, budget)
                if done:
                    n += done
                    budget -= out
                    continue
            args = self.pending.popleft()
            reply = execute(self, args)
            if self.reply_mode is not None:
                reply = self.suppress_reply(reply)
            if reply is not NO_REPLY:
                self.replies.append(reply)
                if type(reply) is bytes:
                    budget -= len(reply)
            n += 1
            if blocking.ready:
                # As Redis does after each command: clients blocked on a key this
                # command changed are served now, before any later command can take
                # the element. Their replies, like this one, are written only after
                # the group commits.
                blocking.serve_ready()
        if not self.pending and self.protocol_error is not None and not self.closing:
            self.replies.append(ErrorReply(self.protocol_error))
            self.closing = True
        self.last_active = _monotonic()
        return False

    def suppress_reply(self, reply):
        """CLIENT REPLY OFF or SKIP is in force for the command just run: its reply is dropped,
        and, when it blocked, so is the reply it gets when unblocked (BLPOP's, WAIT's, DEBUG
        SLEEP's, a deferred AUTH's, CLIENT UNBLOCK's error). Returns NO_REPLY; moves SKIP on
        (SKIP_NEXT -> SKIP -> on) as Redis does."""
        mode = self.reply_mode
        if mode == REPLY_SKIP_NEXT:        # CLIENT REPLY SKIP itself: the next command is skipped
            self.reply_mode = REPLY_SKIP
            return NO_REPLY
        if mode == REPLY_SKIP:
            self.reply_mode = None
        if reply is NO_REPLY and self.blocked:
            self.drop_at = len(self.replies)
        return NO_REPLY

    def _drop_deferred(self):
        """The client was unblocked: drops the reply that ended its wait (nothing but pushes
        can have been queued between the block and it)."""
        replies = self.replies
        for i in range(self.drop_at, len(replies)):
            if type(replies[i]) is not Push:
                del replies[i]
                break
        self.drop_at = None

    def push(self, message):
        """Queues an out-of-band message (pub/sub); written at the end of the group."""
        self.replies.append(message)
        self.server.to_flush.add(self)

    def flush(self):
        if self.transport is None:
            self.replies.clear()
            return
        if self.drop_at is not None and not self.blocked:
            self._drop_deferred()
        if self.replies:
            try:
                data = encode_replies(self.replies, self.proto)
            except TypeError as e:  # a handler returned something that is not a reply: a bug
                log.error("cannot encode a reply for %s: %s", self.addr, e)
                data = encode_replies([ErrorReply(f"ERR internal error: {e}")] * len(self.replies), self.proto)
            self.replies.clear()
            if self.drop_at is not None:
                self.drop_at = 0             # still blocked: what it was waiting for comes first
            server = self.server
            server.stats.net_output_bytes += len(data)
            t = self.transport
            t.write(data)
            # Server.check_output_limit, inlined: most writes leave nothing buffered.
            if t.get_write_buffer_size() or self.id in server.limits.soft_since:
                server.limits.check_output(self)
        if self.closing and self.transport is not None:
            self.transport.close()

    def close(self, reason=None):
        """Closes now, dropping unsent replies (CLIENT KILL, limits)."""
        if reason:
            log.info("closing client %s: %s", self.addr, reason)
        self.closing = True
        self.pending.clear()
        if self.transport is not None:
            self.transport.abort()

    # -- state -----------------------------------------------------------------

    @property
    def subscriptions(self):
        return len(self.channels) + len(self.patterns)

    def flags(self):
        f = "S" if getattr(self, "replica_link", None) is not None else ""
        if self.multi is not None:
            f += "x"
        if self.subscriptions:
            f += "P"
        if self.blocked:
            f += "b"
        return f or "N"

    def info_line(self):
        now = time.time()
        qbuf = self.parser.pending
        out = sum(len(r) if isinstance(r, bytes) else 0 for r in self.replies)
        if self.transport is not None:
            out += self.transport.get_write_buffer_size()
        return (f"id={self.id} addr={self.addr} laddr={self.laddr} fd=-1 name={self.name.decode('utf-8', 'replace')} "
                f"age={int(now - self.created)} idle={int(time.monotonic() - self.last_active)} "
                f"flags={self.flags()} db={self.db} sub={len(self.channels)} psub={len(self.patterns)} ssub=0 "
                f"multi={len(self.multi) if self.multi is not None else -1} watch={len(self.watched)} "
                f"qbuf={qbuf} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={out} tot-mem={qbuf + out} "
                f"events=r cmd={self.last_command.decode('utf-8', 'replace')} user={self.user.name} redir=-1 "
                f"resp={self.proto} lib-name={self.lib_name.decode('utf-8', 'replace')} "
                f"lib-ver={self.lib_ver.decode('utf-8', 'replace')}")
