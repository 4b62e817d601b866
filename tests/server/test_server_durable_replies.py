"""--sync full with group commit pipelining (Server.flush_when_durable): the server runs the
next command groups while an fsync is in flight, and no reply (a write's, or a read's that
shows another client's write) goes out before the fsync that makes what it shows durable. The
fsync is slowed down here (Server.wait_durable patched) so that an early reply would show."""
import threading
import time

import pytest

from kvdb.server.app import Server
from tests.server.test_backup_command import ServerThread

redis = pytest.importorskip("redis")

FSYNC_DELAY = 0.03      # seconds added to every fsync of the log


@pytest.fixture
def slow_fsync(monkeypatch):
    fsyncs = []                                   # (seq covered, monotonic time done)
    real = Server.wait_durable

    def wait_durable(self, token):
        time.sleep(FSYNC_DELAY)
        real(self, token)
        fsyncs.append((token[1], time.monotonic()))
    monkeypatch.setattr(Server, "wait_durable", wait_durable)
    return fsyncs


def test_replies_wait_for_the_fsync_of_what_they_show(tmp_path, slow_fsync):
    srv = ServerThread(tmp_path, "btree")
    srv.server.config.set("sync", "full")
    with srv:
        sent = {}                                 # value -> monotonic time its SET was sent
        stop = threading.Event()
        early = []

        def writer(n):
            r = srv.client()
            for i in range(n):
                value = f"{i}".encode()
                sent[value] = time.monotonic()
                r.set("shared", value)
                took = time.monotonic() - sent[value]
                if took < FSYNC_DELAY * 0.9:
                    early.append(("write", i, took))
            stop.set()

        def reader():
            r = srv.client()
            while not stop.is_set():
                value = r.get("shared")
                now = time.monotonic()
                if value is not None and now - sent[value] < FSYNC_DELAY * 0.9:
                    early.append(("read", value, now - sent[value]))

        threads = [threading.Thread(target=writer, args=(40,))] + [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not early, f"replies before the fsync of what they show: {early[:5]}"
        assert len(slow_fsync) >= 20


def test_other_clients_commands_run_while_an_fsync_is_in_flight(tmp_path, slow_fsync):
    """8 clients each send 10 SETs one at a time. One fsync at a time, each taking at least
    FSYNC_DELAY: if each waited for the fsync of the group before it to end, the 80 writes
    would need about 80 of them; run during the fsyncs, groups share them."""
    srv = ServerThread(tmp_path, "btree")
    srv.server.config.set("sync", "full")
    with srv:
        def client(c):
            r = srv.client()
            for i in range(10):
                r.set(f"k{c}:{i}", i)

        start = time.monotonic()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.monotonic() - start
        r = srv.client()
        assert r.dbsize() == 80 and r.get("k7:9") == b"9"
        assert len(slow_fsync) < 40, f"{len(slow_fsync)} fsyncs for 80 writes of 8 clients"
        assert elapsed < 40 * FSYNC_DELAY
