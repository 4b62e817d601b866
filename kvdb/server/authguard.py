"""AUTH without stalling the server, and slower and slower for a guesser.

Checking a password costs one scrypt hash (~50 ms of CPU, 16 MiB), far too
much to run on the event loop, where every client waits for it. So AUTH (and
HELLO ... AUTH) blocks only its own connection, runs the hash on a small thread
pool, and answers when it is done; other clients keep being served. A password
that verified once is remembered (as an in-memory HMAC, acl.User.remembered),
so reconnecting clients skip the hash.

Brute force: failures are counted per client address (the IP, not the port).
After FREE_FAILURES failures within FORGET_AFTER seconds, each further attempt
from that address that needs a hash is delayed: the first by FIRST_DELAY, and
every failure doubles the spacing, up to MAX_DELAY. Attempts from one address
wait in one queue and start one spacing apart, so opening many connections
does not help; an attempt whose client left is skipped without waiting. The
table of addresses is bounded (MAX_TRACKED, oldest forgotten first). Successes
do not clear a record (an attacker with one valid account could otherwise reset
it between guesses); it expires FORGET_AFTER seconds after the last failure.
"""
import collections
import concurrent.futures
import logging
import time

from kvdb._core.resp import ErrorReply

from .acl_user import NOPERM_AUTH
from .commands.registry import NO_REPLY, CommandError

log = logging.getLogger("kvdb.server")

FREE_FAILURES = 3          # failures from one address answered without delay
FIRST_DELAY = 0.25         # seconds before the first delayed attempt
MAX_DELAY = 5.0            # longest spacing between attempts from one address
FORGET_AFTER = 600.0       # seconds without a failure after which an address starts afresh
MAX_TRACKED = 10000        # addresses remembered at most
HASH_THREADS = 2           # threads running scrypt (each holds 16 MiB while hashing)


class HostRecord:
    __slots__ = ("failures", "last_failure", "next_slot", "waiting", "timer")

    def __init__(self):
        self.failures = 0                     # failures since the record was created
        self.last_failure = 0.0               # monotonic time of the last failure
        self.next_slot = 0.0                  # monotonic time before which the next hashed attempt may not start
        self.waiting = collections.deque()    # (client, start callback) of attempts not started yet
        self.timer = None                     # the loop TimerHandle that starts the next waiting attempt


class AuthGuard:
    """Used on the event loop thread only (the hash runs on the pool, results come back to the loop)."""

    def __init__(self, server):
        self.server = server                                # acl, clients, limits, stats hooks
        self.hosts = collections.OrderedDict()              # ip -> HostRecord, least recently failed first
        self.pool = concurrent.futures.ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="kvdb-auth")
        self.delayed = 0                                    # attempts answered later because of failures
        self.hashing = 0                                    # hashes queued or running now

    # -- the policy (unit-tested directly) --

    def record(self, host, now):
        rec = self.hosts.get(host)
        if rec is not None and now - rec.last_failure > FORGET_AFTER:
            del self.hosts[host]
            rec = None
        return rec

    def must_wait(self, host, now):
        """Whether an attempt from host starting at `now` has to queue."""
        rec = self.record(host, now)
        if rec is None or rec.failures < FREE_FAILURES:
            return False
        return bool(rec.waiting) or now < rec.next_slot

    def started(self, host, now):
        """An attempt from host starts hashing now: the next one waits one spacing."""
        rec = self.record(host, now)
        if rec is not None:
            rec.next_slot = now + self.spacing(rec.failures)

    @staticmethod
    def spacing(failures):
        if failures < FREE_FAILURES:
            return 0.0
        return min(FIRST_DELAY * 2 ** (failures - FREE_FAILURES), MAX_DELAY)

    def failed(self, host, now=None):
        now = time.monotonic() if now is None else now
        rec = self.record(host, now)
        if rec is None:
            rec = self.hosts[host] = HostRecord()
            while len(self.hosts) > MAX_TRACKED:
                self.hosts.popitem(last=False)
        else:
            self.hosts.move_to_end(host)
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
        else blocks c and returns None; the reply is queued when the hash is done."""
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
        self.hashing += 1
        loop = server.loop

        def verify():
            return acl.authenticate(username, password)

        def hashed(fut):
            self.hashing -= 1
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
                self.hashing -= 1
                return False
            self.started(c.host, time.monotonic())
            fut = loop.run_in_executor(self.pool, verify)
            fut.add_done_callback(hashed)
            return True

        now = time.monotonic()
        if self.must_wait(c.host, now):
            self.delayed += 1
            rec = self.hosts[c.host]
            rec.waiting.append(start)
            if rec.timer is None:
                self._arm(c.host, rec, now)
        else:
            start()
        return NO_REPLY

    def _arm(self, host, rec, now):
        rec.timer = self.server.loop.call_later(max(0.0, rec.next_slot - now), self._drain, host, rec)

    def _drain(self, host, rec):
        """Starts the next waiting attempt from host whose client is still there."""
        rec.timer = None
        while rec.waiting:
            if rec.waiting.popleft()():
                break
        if rec.waiting:
            self._arm(host, rec, time.monotonic())

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
        limits = getattr(self.server, "limits", None)
        if limits is not None:
            limits.client_authenticated(c)
        audit = getattr(self.server, "audit", None)
        if audit is not None:
            audit.event("auth_ok", c, user=username)
        return then()

    def _failed(self, c, username):
        self.failed(c.host)
        self.server.auth_failed(c, username)
        self.server.acl.deny(c, "auth", "AUTH", username=username)

    def stats(self):
        return [("auth_delayed_attempts", self.delayed), ("auth_tracked_addresses", len(self.hosts))]

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)

