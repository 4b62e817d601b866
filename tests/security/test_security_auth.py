"""Brute-force slowdown of AUTH (kvdb/server/authguard.py; docs/security.md).

The policy is tested in-process with explicit clocks; against a running server,
repeated wrong AUTHs from one address get slower (lower bounds on elapsed time
only, never upper bounds), are counted in INFO and logged, and a client that
authenticated earlier keeps being served while the guesser waits.
"""
import time

import pytest

from kvdb.server import authguard
from kvdb.server.authguard import FIRST_DELAY, FREE_FAILURES, MAX_DELAY, AuthGuard
from tests.securityutil import RawClient, RespError
from tests.serverutil import ServerProcess


class _Loop:
    """Records call_later instead of running it; tests fire timers by hand."""

    def __init__(self):
        self.timers = []

    def call_later(self, delay, fn, *args):
        self.timers.append((delay, fn, args))
        return object()


class _Server:
    def __init__(self):
        self.loop = _Loop()


def _guard():
    g = AuthGuard(_Server())
    g.pool.shutdown()
    return g


class _Attempt:
    """A start callback that records when it ran; alive=False plays a client that left."""

    def __init__(self, log, name, alive=True):
        self.log, self.name, self.alive = log, name, alive

    def __call__(self):
        self.log.append(self.name)
        return self.alive


def test_spacing_grows_and_is_capped():
    assert [AuthGuard.spacing(n) for n in range(FREE_FAILURES)] == [0.0] * FREE_FAILURES
    s = [AuthGuard.spacing(FREE_FAILURES + i) for i in range(12)]
    assert s[0] == FIRST_DELAY and s[1] == 2 * FIRST_DELAY
    assert all(a <= b for a, b in zip(s, s[1:])) and s[-1] == MAX_DELAY


def test_one_address_runs_few_hashes_at_once():
    g = _guard()
    rec = g.record("10.0.0.1", 0.0, create=True)
    ran = []
    for i in range(FREE_FAILURES + 2):
        g.submit(rec, _Attempt(ran, i), now=0.0)
    assert ran == list(range(FREE_FAILURES)) and rec.inflight == FREE_FAILURES and len(rec.waiting) == 2
    g.finished(rec, now=0.1)                 # one hash done: the next waiting one may start
    assert len(g.server.loop.timers) == 1
    g._drain(rec, now=0.1)
    assert ran[-1] == FREE_FAILURES and len(rec.waiting) == 1
    other = g.record("10.0.0.2", 0.0, create=True)
    g.submit(other, _Attempt(ran, "other"), now=0.1)
    assert ran[-1] == "other"                # other addresses are not held up


def test_after_free_failures_attempts_are_spaced_and_serial():
    g = _guard()
    for _ in range(FREE_FAILURES):
        g.failed("10.0.0.1", 100.0)
    rec = g.record("10.0.0.1", 100.0)
    ran = []
    g.submit(rec, _Attempt(ran, "a"), now=100.0)
    g.submit(rec, _Attempt(ran, "b"), now=100.0)
    assert ran == ["a"] and rec.inflight == 1          # one at a time now
    g.finished(rec, now=100.05)
    delay, fn, args = g.server.loop.timers[-1]
    assert abs(delay - (FIRST_DELAY - 0.05)) < 1e-9      # b starts one spacing after a started
    g._drain(rec, now=100.0 + FIRST_DELAY)
    assert ran == ["a", "b"]


def test_abandoned_attempts_are_skipped_without_waiting():
    g = _guard()
    for _ in range(FREE_FAILURES):
        g.failed("10.0.0.9", 0.0)
    rec = g.record("10.0.0.9", 0.0)
    ran = []
    g.submit(rec, _Attempt(ran, "first"), now=0.0)
    for i, alive in enumerate((False, False, False, True, True)):
        g.submit(rec, _Attempt(ran, i, alive), now=0.0)
    g.finished(rec, now=1.0)
    g._drain(rec, now=1.0)
    assert ran == ["first", 0, 1, 2, 3]                  # three gone clients skipped in one turn
    assert len(rec.waiting) == 1 and rec.inflight == 1


def test_records_expire_and_the_table_is_bounded(monkeypatch):
    g = _guard()
    g.failed("10.0.0.1", 0.0)
    assert g.record("10.0.0.1", authguard.FORGET_AFTER - 1) is not None
    assert g.record("10.0.0.1", authguard.FORGET_AFTER + 1) is None
    rec = g.record("10.0.0.3", 0.0, create=True)
    rec.inflight = 1
    assert g.record("10.0.0.3", authguard.FORGET_AFTER + 1) is rec   # not forgotten while in flight
    monkeypatch.setattr(authguard, "MAX_TRACKED", 3)
    for i in range(10):
        g.failed(f"10.0.1.{i}", 5.0)
    assert len(g.hosts) == 3 and list(g.hosts) == ["10.0.1.7", "10.0.1.8", "10.0.1.9"]


def _info_stats(rc):
    text = rc.call("INFO", "stats").decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def test_repeated_failures_are_slowed_counted_and_logged(tmp_path):
    with ServerProcess(tmp_path, "--requirepass", "right-pw") as srv:
        with RawClient(srv.port) as friend, RawClient(srv.port) as guesser:
            assert friend.call("AUTH", "right-pw") == b"OK"
            times = []
            for i in range(FREE_FAILURES + 3):
                t = time.monotonic()
                r = guesser.call("AUTH", f"guess-{i}")
                times.append(time.monotonic() - t)
                assert isinstance(r, RespError) and str(r).startswith("WRONGPASS")
            # Attempts FREE_FAILURES+2 and +3 waited the first two spacings. Spacings run from
            # the start of one attempt's hash to the start of the next, while the client sends
            # its next attempt only when the previous reply arrives, one hash later; so what
            # the client sees is at least the spacing minus one hash time (measured above).
            hash_time = 2 * max(times[:FREE_FAILURES])
            assert times[-2] >= FIRST_DELAY * 0.9 - hash_time, times
            assert times[-1] >= 2 * FIRST_DELAY * 0.9 - hash_time and times[-1] > times[-2], times
            # While the guesser's next attempt waits, the authenticated client is served.
            guesser.send(b"*2\r\n$4\r\nAUTH\r\n$7\r\nguess-x\r\n")
            assert friend.call("PING") == b"PONG"
            guesser.sock.settimeout(0.05)
            with pytest.raises(OSError):          # no answer yet: it is being delayed
                guesser.sock.recv(1)
            guesser.sock.settimeout(30)
            assert str(guesser.read()).startswith("WRONGPASS")
            # The right password still works from that address (after its turn).
            assert guesser.call("AUTH", "right-pw") == b"OK"
            stats = _info_stats(friend)
            assert int(stats["auth_failures"]) == FREE_FAILURES + 4
            assert int(stats["auth_delayed_attempts"]) >= 3
            assert int(stats["acl_access_denied_auth"]) == FREE_FAILURES + 4
        log = srv.log()
        assert "failed AUTH from 127.0.0.1" in log and "further attempts are slowed down" in log
