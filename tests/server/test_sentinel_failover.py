"""Failover of kvdb nodes run by Redis Sentinel (Debian's redis-server --sentinel), end to end:
1 primary, 2 replicas and 3 Sentinels on loopback ports; kill -9 of the primary; Sentinel
promotes a replica and reconfigures the other; redis-py's Sentinel client finds the new
primary and keeps writing; the old primary, restarted, rejoins as a replica of the new one.
Every write acknowledged by WAIT 1 before the kill must be on the new primary."""
import shutil
import subprocess
import threading
import time

import pytest

from tests.serverutil import ServerProcess, free_port, wait_listening

redis = pytest.importorskip("redis")
from redis.sentinel import Sentinel  # noqa: E402

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server (Debian's redis-server package, which "
                                                              "runs Sentinel with --sentinel) is not installed")
DOWN_AFTER_MS = 3000     # Sentinel's reconnection to a new primary can take a second: 1000 ms is too tight


class SentinelProcess:
    def __init__(self, tmp_path, index, primary_port):
        self.port = free_port()
        self.conf = tmp_path / f"sentinel-{index}.conf"
        self.conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                             f"sentinel monitor kvdb 127.0.0.1 {primary_port} 2\n"
                             f"sentinel down-after-milliseconds kvdb {DOWN_AFTER_MS}\n"
                             "sentinel failover-timeout kvdb 15000\nsentinel parallel-syncs kvdb 1\n")
        self.log = tmp_path / f"sentinel-{index}.log"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([REDIS_SERVER, str(self.conf), "--sentinel"], stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT)
        wait_listening(self.port, self.proc, "redis-server --sentinel")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (redis.exceptions.RedisError, OSError) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def test_sentinel_fails_over_to_a_replica_without_losing_writes_acknowledged_by_wait(tmp_path):
    def node(name, *args):
        conf = tmp_path / f"{name}.conf"
        conf.write_text("".join(f"{a}\n" for a in args))
        return ServerProcess(tmp_path, "--config", str(conf), data=tmp_path / name)

    primary = node("p").start()
    replicas = [node(f"r{i}", f"replicaof 127.0.0.1 {primary.port}").start() for i in range(2)]
    sentinels = []
    stop = threading.Event()
    acked = {}                 # key -> value of writes WAIT 1 acknowledged, with when (before/after the kill)
    errors = []
    writer = None
    try:
        sentinels = [SentinelProcess(tmp_path, i, primary.port).start() for i in range(3)]
        sentinel = Sentinel([("127.0.0.1", s.port) for s in sentinels], socket_timeout=2)
        wait_for(lambda: len(sentinel.discover_slaves("kvdb")) == 2 and all(
            redis.Redis(port=s.port).sentinel_master("kvdb")["num-other-sentinels"] == 2 for s in sentinels),
            60, "the Sentinels to know both replicas and each other")
        killed = threading.Event()

        def write():
            n = 0
            master = sentinel.master_for("kvdb", socket_timeout=2)
            while not stop.is_set():
                key, value = f"k{n}", str(n).encode()
                try:
                    master.set(key, value)
                    if master.wait(1, 1000) >= 1:
                        acked[key] = (value, killed.is_set())
                    n += 1
                except (redis.exceptions.RedisError, OSError) as e:   # the failover: try the new primary
                    errors.append(type(e).__name__)
                    time.sleep(0.1)
                    master = sentinel.master_for("kvdb", socket_timeout=2)

        writer = threading.Thread(target=write)
        writer.start()
        wait_for(lambda: len(acked) >= 50, 30, "writes before the kill")
        primary.kill9()
        killed.set()
        before = {k: v for k, (v, after) in acked.items() if not after}
        new_addr = wait_for(lambda: (lambda a: a if a[1] != primary.port else None)(sentinel.discover_master("kvdb")),
                            60, "Sentinel to promote a replica")
        new = next(r for r in replicas if r.port == new_addr[1])
        other = next(r for r in replicas if r is not new)
        wait_for(lambda: sum(1 for _, after in acked.values() if after) >= 20, 60,
                 "writes acknowledged by the new primary and a replica")
        stop.set()
        writer.join()
        nc = new.client()
        assert nc.role()[0] == b"master"
        lost = [k for k, v in before.items() if nc.get(k) != v]
        assert lost == [], f"{len(lost)} of {len(before)} writes acknowledged by WAIT 1 before the kill were lost"
        assert all(nc.get(k) == v for k, (v, _) in acked.items())
        wait_for(lambda: other.client().role()[:3] == [b"slave", b"127.0.0.1", new.port], 30,
                 "the other replica to follow the new primary")
        # the old primary comes back with its old configuration (a primary): Sentinel turns it
        # into a replica of the new one, which discards whatever it had that the new one has not
        primary.start()
        pc = primary.client()
        wait_for(lambda: pc.role()[:4] == [b"slave", b"127.0.0.1", new.port, b"connected"], 60,
                 "the old primary to rejoin as a replica")
        nc.set("after-rejoin", 1)
        assert nc.wait(2, 10000) == 2
        assert pc.get("after-rejoin") == b"1" and pc.dbsize() == nc.dbsize()
        for k, v in before.items():
            assert pc.get(k) == v
    finally:
        stop.set()
        if writer is not None:
            writer.join()
        for s in sentinels:
            s.stop()
        for srv in [primary] + replicas:
            srv.stop()
