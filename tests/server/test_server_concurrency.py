"""Many connections at once: group commit shares fsyncs, and a client that does
not read its (large) replies does not stall the others."""
import socket
import threading
import time

import pytest

from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")


def test_writes_from_many_connections_share_commits(tmp_path):
    with ServerProcess(tmp_path, "--sync", "full") as srv:
        before = srv.client().info("persistence")
        writers, per_writer = 16, 40

        def write(n):
            c = srv.client()
            for i in range(per_writer):
                c.set(f"w{n}:{i}", i)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = srv.client().info("persistence")
        writes = writers * per_writer
        commits = after["kvdb_commits"] - before["kvdb_commits"]
        fsyncs = after["kvdb_fsyncs"] - before["kvdb_fsyncs"]
        assert srv.client().dbsize() == writes
        # Each acknowledged write was committed, and concurrent ones shared commits and fsyncs.
        assert 0 < commits < writes and 0 < fsyncs < writes, (commits, fsyncs)


def test_unread_large_replies_do_not_stall_others(tmp_path):
    with ServerProcess(tmp_path) as srv:
        c = srv.client()
        c.set("big", b"x" * (4 << 20))
        hog = socket.create_connection(("127.0.0.1", srv.port))
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.sendall(b"GET big\r\n" * 64)  # 256 MiB of replies it never reads
        time.sleep(0.5)
        start = time.monotonic()
        for i in range(200):
            assert c.set(f"k{i}", i) and c.get(f"k{i}") == str(i).encode()
        assert time.monotonic() - start < 10
        # The server stopped producing replies the hog does not read: its memory stayed
        # far below the 256 MiB those 64 replies would take.
        rss_kib = int(next(line.split()[1] for line in open(f"/proc/{srv.proc.pid}/status")
                           if line.startswith("VmRSS:")))
        assert rss_kib < 150 * 1024, rss_kib
        hog.close()
        assert c.ping()
