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
from securityutil import RawClient, RespError
from serverutil import ServerProcess


class _Server:
    pass


def _guard():
    g = AuthGuard(_Server())
    g.pool.shutdown()
    return g


def test_spacing_grows_and_is_capped():
    assert [AuthGuard.spacing(n) for n in range(FREE_FAILURES)] == [0.0] * FREE_FAILURES
    s = [AuthGuard.spacing(FREE_FAILURES + i) for i in range(12)]
    assert s[0] == FIRST_DELAY and s[1] == 2 * FIRST_DELAY
    assert all(a <= b for a, b in zip(s, s[1:])) and s[-1] == MAX_DELAY


def test_attempts_queue_after_free_failures():
    g = _guard()
    now = 1000.0
    for _ in range(FREE_FAILURES - 1):
        g.failed("10.0.0.1", now)
    g.started("10.0.0.1", now)
    assert not g.must_wait("10.0.0.1", now)
    g.failed("10.0.0.1", now)                       # the FREE_FAILURES-th failure
    g.started("10.0.0.1", now)                      # the next attempt starts and reserves a spacing
    assert g.must_wait("10.0.0.1", now + FIRST_DELAY / 2)
    assert not g.must_wait("10.0.0.1", now + FIRST_DELAY)
    assert not g.must_wait("10.0.0.2", now)          # other addresses are not affected
    assert g.tracked_failures("10.0.0.2") == 0


def test_records_expire_and_the_table_is_bounded(monkeypatch):
    g = _guard()
    g.failed("10.0.0.1", 0.0)
    assert g.record("10.0.0.1", authguard.FORGET_AFTER - 1) is not None
    assert g.record("10.0.0.1", authguard.FORGET_AFTER + 1) is None
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
            # Attempts FREE_FAILURES+2 and +3 waited at least the first two spacings.
            assert times[-2] >= FIRST_DELAY * 0.9 and times[-1] >= 2 * FIRST_DELAY * 0.9, times
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


def test_abandoned_attempts_are_skipped_without_waiting():
    g = _guard()
    timers = []

    class _Loop:
        def call_later(self, delay, fn, *args):
            timers.append((delay, fn, args))
            return object()

    g.server.loop = _Loop()
    rec = g.hosts["10.0.0.9"] = authguard.HostRecord()
    started = []
    for alive in (False, False, False, True, True):
        rec.waiting.append(lambda alive=alive: started.append(alive) or alive)
    g._drain("10.0.0.9", rec)
    assert started == [False, False, False, True]   # three gone clients skipped in one turn
    assert len(rec.waiting) == 1 and len(timers) == 1  # the next live one gets the next slot
