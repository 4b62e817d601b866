"""Clients blocked on keys: BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN/MAX, BZMPOP,
XREAD BLOCK and XREADGROUP BLOCK.

The shape follows Redis's blocked.c. A command that finds nothing to serve calls
`block(client, db, keys, timeout, retry, timeout_reply)`, which parks the client
(no more of its commands run) and returns NO_REPLY. Every change to a key
(Server.key_changed) marks a key with waiters as *ready*. Right after the
top-level command that made the change (after a whole EXEC or script, never in
the middle of one), `serve_ready()` offers each ready key to its waiters in the
order they blocked (first blocked, first served), as Redis does after each
command: each waiter's `retry()` runs the command again, inside the same
command group's transaction, and returns the reply, or None when there is still
nothing for it (another waiter took the element, or the key changed type or
vanished), and then it stays blocked. Replies are written only after the group
commits, so a waiter learns of a push (and its own pop) only once both are
committed under the sync mode; if the commit fails, its reply is that error
like every other reply of the group. Keys made ready outside a client's turn
(the expiry sweep, a timer) are served at the start of the next group.

Timeouts are timers on the event loop (millisecond precision); a timed-out
waiter gets `timeout_reply` (a null array or null bulk, per command). A client
that disconnects is dropped from every key it waits on.
"""
import collections

from kvdb.server.protocol.resp import ErrorReply

from .commands.registry import NO_REPLY, WRONGTYPE, CommandError, float_arg, int_arg
from .keyspace import WrongType

__all__ = ["Blocking", "Waiter"]


class Waiter:
    __slots__ = ("client", "db", "keys", "retry", "timeout_reply", "timer", "done")

    def __init__(self, client, db, keys, retry, timeout_reply):
        self.client = client                 # the blocked Client
        self.db = db                         # the database its keys are in
        self.keys = keys                     # the keys it waits on, in the command's order
        self.retry = retry                   # callable() -> reply, or None to keep waiting
        self.timeout_reply = timeout_reply   # the reply when the timeout passes
        self.timer = None                    # asyncio TimerHandle, None when waiting forever
        self.done = False                    # served, timed out or dropped


class Blocking:
    def __init__(self, server):
        self.server = server                         # the app.Server
        self.waiters = {}                            # (db, key) -> deque of Waiters, oldest first
        self.ready = []                              # (db, key) changed since the last serve_ready
        self.ready_set = set()                       # the same, for membership
        self.by_client = {}                          # Client -> its Waiter (a client blocks on one command)

    @property
    def blocked_clients(self):
        return len(self.by_client)

    def block(self, client, db, keys, timeout, retry, timeout_reply):
        """Parks client until retry() gives a reply or `timeout` seconds pass (0: forever).
        Returns NO_REPLY for the handler to return."""
        w = Waiter(client, db, list(dict.fromkeys(keys)), retry, timeout_reply)
        for key in w.keys:
            self.waiters.setdefault((db, key), collections.deque()).append(w)
        self.by_client[client] = w
        client.blocked = True
        if timeout > 0:
            w.timer = self.server.loop.call_later(timeout, self._timed_out, w)
        return NO_REPLY

    def key_changed(self, db, key):
        """A key with waiters changed: offer it to them at the start of the next group."""
        k = (db, key)
        if k in self.waiters and k not in self.ready_set:
            self.ready_set.add(k)
            self.ready.append(k)
            self.server.schedule_group()

    def serve_ready(self):
        """Runs inside a command group: retries the waiters of every ready key, oldest
        first. A served waiter's write may make other keys ready (BLMOVE pushes): those
        are served in the same loop."""
        while self.ready:
            ready, self.ready = self.ready, []
            self.ready_set.clear()
            for k in ready:
                queue = self.waiters.get(k)
                while queue:
                    w = queue[0]
                    if w.done:
                        queue.popleft()
                        continue
                    reply = self._retry(w)
                    if reply is None:
                        break  # nothing for the oldest waiter: nothing for later ones either
                    self._finish(w, reply)
                if not queue:
                    self.waiters.pop(k, None)

    def _retry(self, w):
        c = w.client
        saved_db = c.db
        c.db = w.db
        try:
            return w.retry()
        except CommandError as e:
            return ErrorReply(str(e))
        except WrongType:
            return ErrorReply(WRONGTYPE)
        finally:
            c.db = saved_db

    def _finish(self, w, reply):
        """Unblocks w's client with reply and lets it run what it sent meanwhile."""
        self._drop(w)
        c = w.client
        c.blocked = False
        c.replies.append(reply)
        server = self.server
        server.to_flush.add(c)
        if c.transport is not None:
            server.schedule(c)

    def _timed_out(self, w):
        if w.done:
            return
        w.timer = None
        self._finish(w, w.timeout_reply)
        self.server.schedule_group()  # flushes the reply even when no client has work

    def _drop(self, w):
        w.done = True
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        self.by_client.pop(w.client, None)
        for key in w.keys:
            queue = self.waiters.get((w.db, key))
            if queue is not None:
                try:
                    queue.remove(w)
                except ValueError:
                    pass
                if not queue:
                    del self.waiters[(w.db, key)]

    def unblock(self, client, reply=None):
        """CLIENT UNBLOCK: ends client's wait with reply (its timeout reply when None).
        Returns whether it was blocked on keys."""
        w = self.by_client.get(client)
        if w is None:
            return False
        self._finish(w, w.timeout_reply if reply is None else reply)
        self.server.schedule_group()
        return True

    def client_gone(self, client):
        w = self.by_client.get(client)
        if w is not None:
            self._drop(w)


def blocking_allowed(c):
    """False inside MULTI/EXEC and scripts, where blocking commands act as their
    non-blocking forms and reply at once (as in Redis)."""
    return not getattr(c, "in_exec", False) and not getattr(c, "in_script", False)


def timeout_arg(value, unit=1.0):
    """A blocking command's timeout in seconds (0 = forever), as Redis parses it:
    a non-negative number (`unit` 1: seconds, possibly fractional; 0.001: integer ms)."""
    if unit == 1.0:
        t = float_arg(value, "ERR timeout is not a float or out of range")
    else:
        t = int_arg(value, "ERR timeout is not an integer or out of range") * unit
    if t < 0:
        raise CommandError("ERR timeout is negative")
    if t > 1e12:
        raise CommandError("ERR timeout is out of range")
    return t


__all__ += ["blocking_allowed", "timeout_arg", "NO_REPLY"]
