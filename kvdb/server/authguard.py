"""AUTH without stalling the server, and slower and slower for a guesser.

Checking a password costs one scrypt hash (~50 ms of CPU, 16 MiB), far too
much to run on the event loop, where every client waits for it. So AUTH (and
HELLO ... AUTH) blocks only its own connection, runs the hash on a small thread
pool, and answers when it is done; other clients keep being served. A password
that verified once is remembered (as an in-memory HMAC, acl_user.User.remembered),
so reconnecting clients skip the hash.

Per client address (the IP, not the port), hashed attempts go through one
queue with two rules:

1. At most FREE_FAILURES hashes from one address run at once, and only one once
   the address has FREE_FAILURES failures; so many connections from one address
   cannot fill the pool and delay everybody else's AUTH.
2. After FREE_FAILURES failures, each attempt starts one spacing after the
   previous one started: FIRST_DELAY, doubling with every further failure, up
   to MAX_DELAY.

An attempt whose client left before its turn is skipped without waiting. The
table of addresses is bounded (MAX_TRACKED, least recently used dropped first).
A success does not clear a record (an attacker holding one valid account could
otherwise reset it between guesses at another); a record is forgotten
FORGET_AFTER seconds after its last failure, once nothing of it is in flight.
"""
import collections
import concurrent.futures
import logging
import time

from kvdb.server.protocol.resp import ErrorReply

from .acl_user import NOPERM_AUTH
from .commands.registry import NO_REPLY, CommandError

log = logging.getLogger("kvdb.server")

FREE_FAILURES = 3          # failures from one address answered without delay
FIRST_DELAY = 0.25         # seconds between attempts after FREE_FAILURES failures
MAX_DELAY = 5.0            # longest spacing between attempts from one address
FORGET_AFTER = 600.0       # seconds without a failure after which an address starts afresh
MAX_TRACKED = 10000        # addresses remembered at most
HASH_THREADS = 2           # threads running scrypt (each holds 16 MiB while hashing)


class HostRecord:
    __slots__ = ("failures", "last_failure", "next_slot", "inflight", "waiting", "timer")

    def __init__(self, now):
        self.failures = 0                     # failures since the record was created
        self.last_failure = now               # monotonic time of the last failure (creation before any)
        self.next_slot = 0.0                  # monotonic time before which the next attempt may not start
        self.inflight = 0                     # hashes of this address queued on or running in the pool
        self.waiting = collections.deque()    # start callbacks of attempts not started yet, oldest first
        self.timer = None                     # the loop TimerHandle that starts the next waiting attempt

    def concurrency(self):
        return 1 if self.failures >= FREE_FAILURES else FREE_FAILURES

    def idle(self):
        return not self.inflight and not self.waiting and self.timer is None


class AuthGuard:
    """Used on the event loop thread only (the hash runs on the pool, results come back to the loop)."""

    def __init__(self, server):
        self.server = server                                # acl, loop, limits, audit, stats hooks
        self.hosts = collections.OrderedDict()              # ip -> HostRecord, least recently used first
        self.pool = concurrent.futures.ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="kvdb-auth")
        self.delayed = 0                                    # attempts that had to wait their turn
        self.hashing = 0                                    # hashes queued on or running in the pool

    # -- the per-address queue (unit-tested directly) --

    def record(self, host, now, create=False):
        rec = self.hosts.get(host)
        if rec is not None and now - rec.last_failure > FORGET_AFTER and rec.idle():
            del self.hosts[host]
            rec = None
        if rec is None and create:
            rec = self.hosts[host] = HostRecord(now)
            while len(self.hosts) > MAX_TRACKED:
                self.hosts.popitem(last=False)
        if rec is not None:
            self.hosts.move_to_end(host)
        return rec

    @staticmethod
    def spacing(failures):
        if failures < FREE_FAILURES:
            return 0.0
        return min(FIRST_DELAY * 2 ** (failures - FREE_FAILURES), MAX_DELAY)

    def _may_start(self, rec, now):
        return rec.inflight < rec.concurrency() and now >= rec.next_slot

    def submit(self, rec, start, now=None):
        """Runs start() now or when its turn in rec (an address's record) comes. start() returns
        False when its client is gone (nothing started), else True; a started attempt ends
        with finished(rec)."""
        now = time.monotonic() if now is None else now
        if not rec.waiting and self._may_start(rec, now):
            self._start(rec, start, now)
            return
        self.delayed += 1
        rec.waiting.append(start)
        self._schedule(rec, now)

    def finished(self, rec, now=None):
        now = time.monotonic() if now is None else now
        rec.inflight -= 1
        self._schedule(rec, now)

    def _start(self, rec, start, now):
        rec.inflight += 1
        if start():
            rec.next_slot = now + self.spacing(rec.failures)
        else:
            rec.inflight -= 1

    def _schedule(self, rec, now):
        if rec.waiting and rec.timer is None and rec.inflight < rec.concurrency():
            rec.timer = self.server.loop.call_later(max(0.0, rec.next_slot - now), self._drain, rec)

    def _drain(self, rec, now=None):
        now = time.monotonic() if now is None else now
        rec.timer = None
        while rec.waiting and self._may_start(rec, now):
            self._start(rec, rec.waiting.popleft(), now)
        self._schedule(rec, now)

    def failed(self, host, now=None):
        now = time.monotonic() if now is None else now
        rec = self.record(host, now, create=True)
        rec.failures += 1
        rec.last_failure = now
        if rec.failures == FREE_FAILURES:
            log.warning("%d failed AUTH attempts from %s: further attempts are slowed down", rec.failures, host)
        return rec.failures

    def tracked_failures(self, host):
        rec = self.record(host, time.monotonic())
        return rec.failures if rec is not None else 0

    # -- AUTH --

    def authenticate(self, c, username, password, then):
        """Runs for AUTH / HELLO AUTH. Returns then()'s reply now when the answer needs no hash,
        else blocks c and returns NO_REPLY; the reply is queued when the hash is done."""
        server = self.server
        acl = server.acl
        user = acl.users.get(username)
        fast = user.password_ok_fast(password) if user is not None else None
        if fast is True:
            return self._succeeded(c, user, username, then)
        if fast is False:
            self._failed(c, username)
            return ErrorReply(NOPERM_AUTH)
        c.blocked = True
        rec = self.record(c.host, time.monotonic(), create=True)  # held: it may leave the table meanwhile

        def verify():
            return acl.authenticate(username, password)

        def hashed(fut):
            self.hashing -= 1
            self.finished(rec)
            if fut.cancelled():
                return  # the pool was shut down: the server is stopping
            try:
                user = fut.result()
            except Exception as e:  # noqa: BLE001 - an unexpected failure is a refusal, not a crash
                log.error("password check failed: %s", e)
                user = None
            if user is not None and acl.users.get(username) is not user:
                user = None  # deleted or replaced while hashing
            if user is not None:
                user.remember(password)
                try:
                    reply = self._succeeded(c, user, username, then)
                except CommandError as e:
                    reply = ErrorReply(str(e))
            else:
                self._failed(c, username)
                reply = ErrorReply(NOPERM_AUTH)
            self._answer(c, reply)

        def start():
            if c.transport is None:
                return False
            self.hashing += 1
            server.loop.run_in_executor(self.pool, verify).add_done_callback(hashed)
            return True

        self.submit(rec, start)
        return NO_REPLY

    def _answer(self, c, reply):
        c.blocked = False
        c.replies.append(reply)
        self.server.to_flush.add(c)
        if c.transport is not None:
            self.server.schedule(c)  # runs what the client pipelined meanwhile, then flushes

    def _succeeded(self, c, user, username, then):
        c.user = user
        c.authenticated = True
        self.server.auth_succeeded(c, username)
        self.server.limits.client_authenticated(c)
        self.server.audit.event("auth_ok", c, user=username)
        return then()

    def _failed(self, c, username):
        self.failed(c.host)
        self.server.auth_failed(c, username)
        self.server.acl.deny(c, "auth", "AUTH", username=username)

    def stats(self):
        return [("auth_delayed_attempts", self.delayed), ("auth_tracked_addresses", len(self.hosts))]

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)
