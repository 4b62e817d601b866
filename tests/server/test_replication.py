"""Replication between real `kvdb serve` processes on loopback ports (kvdb/server/replication,
docs/format/replication.md): a replica follows its primary under a write load and ends with
the same data; it continues after a restart without a full sync while the backlog holds its
position, and syncs in full when it does not; bad targets and credentials get clear errors."""
import os
import random
import shutil
import subprocess
import sys
import threading
import time

import pytest

import kvdb
from tests.serverutil import ServerProcess, free_port, wait_listening

redis = pytest.importorskip("redis")

POSITION_PREFIX = b"\x03"      # the replica's own position record (stream.REPLICATION_PREFIX)


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def replication(client):
    return client.info("replication")


def link_up(client):
    return replication(client).get("master_link_status") == "up"


def restart_and_catch_up(replica, primary_client, what):
    """Start the replica again; return its client once it has every commit of the primary."""
    replica.start()
    rc = replica.client()
    wait_for(lambda: link_up(rc), what=what)
    assert primary_client.wait(1, 10000) == 1
    return rc


def contents(data_dir):
    """Every key of the database in data_dir (read-only open beside the server), with value and
    expiry, less the replica's position record."""
    db = kvdb.open(data_dir, readonly=True)
    try:
        with db.snapshot() as snap:
            return {k: (v, e) for k, v, e in snap._scan_expiry() if not k.startswith(POSITION_PREFIX)}
    finally:
        db.close()


def kvdb_check(data_dir):
    out = subprocess.run([sys.executable, "-m", "kvdb", "check", data_dir], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def write_load(port, stop, seed, counts):
    """One client's mix of writes over every type until `stop` is set."""
    rng = random.Random(seed)
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=20)
    n = 0
    while not stop.is_set():
        k = f"{seed}:{rng.randrange(200)}"
        op = rng.randrange(11)
        pipe = r.pipeline(transaction=op == 10)
        if op == 0:
            pipe.set("s" + k, os.urandom(rng.randrange(1, 300)))
        elif op == 1:
            pipe.incrby("n" + k, rng.randrange(-5, 50))
        elif op == 2:
            pipe.hset("h" + k, mapping={f"f{rng.randrange(20)}": rng.random() for _ in range(3)})
        elif op == 3:
            pipe.rpush("l" + k, *[rng.randrange(100) for _ in range(3)])
            pipe.lpop("l" + k)
        elif op == 4:
            pipe.sadd("S" + k, *[rng.randrange(50) for _ in range(4)])
            pipe.srem("S" + k, rng.randrange(50))
        elif op == 5:
            pipe.zadd("z" + k, {f"m{rng.randrange(30)}": rng.random() for _ in range(3)})
        elif op == 6:
            pipe.xadd("x" + k, {"a": rng.randrange(1000)}, maxlen=50, approximate=False)
        elif op == 7:
            pipe.delete("s" + k, "l" + k)
        elif op == 8:
            pipe.set("e" + k, "v", px=rng.randrange(50, 400))
        elif op == 9:
            pipe.eval("redis.call('set', KEYS[1], ARGV[1]); return redis.call('incr', KEYS[2])", 2,
                      "lua" + k, "luan" + k, str(n))
        else:
            pipe.set("t" + k, n)
            pipe.hincrby("th" + k, "c", 1)
        pipe.execute()
        n += 1
    counts.append(n)


def run_load(port, seconds, clients=3):
    stop = threading.Event()
    counts = []
    threads = [threading.Thread(target=write_load, args=(port, stop, seed, counts)) for seed in range(clients)]
    for t in threads:
        t.start()
    return stop, threads, counts


@pytest.mark.parametrize("engines", [("btree", "btree"), ("lsm", "lsm"), ("lsm", "btree")],
                         ids=["btree", "lsm", "lsm-to-btree"])
def test_a_replica_follows_its_primary_under_a_write_load(tmp_path, engines):
    primary_engine, replica_engine = engines
    with ServerProcess(tmp_path, "--engine", primary_engine, data=tmp_path / "p") as p:
        pc = p.client()
        for i in range(3000):                       # something for the full sync to copy
            pc.set(f"pre{i}", os.urandom(50))
        stop, threads, counts = run_load(p.port, 0)
        try:
            time.sleep(0.5)
            with ServerProcess(tmp_path, "--engine", replica_engine, "--replicaof", f"127.0.0.1 {p.port}",
                               data=tmp_path / "r") as r:
                rc = r.client()
                wait_for(lambda: link_up(rc), what="the replica's link")
                time.sleep(2.0)                         # records flow while the load runs
                stop.set()
                for t in threads:
                    t.join()
                assert sum(counts) > 100
                time.sleep(0.6)                         # the load's short expiries pass and are swept
                assert pc.wait(1, 20000) == 1
                info = replication(rc)
                assert info["master_full_syncs"] == 1 and info["slave_repl_offset"] == replication(pc)[
                    "master_repl_offset"]
                assert rc.dbsize() == pc.dbsize()
                assert contents(r.data) == contents(p.data)
                assert rc.hgetall("h1:2") == pc.hgetall("h1:2")
                assert rc.zrange("z2:3", 0, -1, withscores=True) == pc.zrange("z2:3", 0, -1, withscores=True)
                assert rc.xrange("x0:4") == pc.xrange("x0:4")
                kvdb_check(p.data)
                kvdb_check(r.data)
        finally:
            stop.set()
            for t in threads:
                t.join()


def test_R2_a_restarted_replica_continues_without_a_full_sync(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p:
        pc = p.client()
        pc.set("a", 1)
        r = ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r").start()
        try:
            wait_for(lambda: link_up(r.client()), what="link")
            assert pc.wait(1, 10000) == 1
            r.stop()
            for i in range(500):                    # while the replica is down
                pc.set(f"k{i}", i)
            rc = restart_and_catch_up(r, pc, "link after restart")
            info = replication(rc)
            assert (info["master_full_syncs"], info["master_partial_syncs"]) == (0, 1)
            assert contents(r.data) == contents(p.data)
            # a kill -9 of the replica: it continues from what it had applied
            for i in range(300):
                pc.set(f"j{i}", i)
            r.kill9()
            pc.set("after-kill", 1)
            rc = restart_and_catch_up(r, pc, "link after kill -9")
            assert replication(rc)["master_full_syncs"] == 0
            assert contents(r.data) == contents(p.data)
        finally:
            r.stop()


def test_a_replica_syncs_in_full_when_the_backlog_no_longer_holds_its_position(tmp_path):
    with ServerProcess(tmp_path, "--repl-backlog-size", "16kb", data=tmp_path / "p") as p:
        pc = p.client()
        r = ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r").start()
        try:
            wait_for(lambda: link_up(r.client()), what="link")
            r.stop()
            for i in range(2000):
                pc.set(f"k{i}", os.urandom(40))
            assert replication(pc)["repl_backlog_histlen"] <= 16 * 1024 + 200
            rc = restart_and_catch_up(r, pc, "link after restart")
            assert replication(rc)["master_full_syncs"] == 1
            assert contents(r.data) == contents(p.data)
        finally:
            r.stop()


def test_R4_a_replica_of_a_restarted_primary_syncs_in_full_never_continuing_another_history(tmp_path):
    """A primary's restart starts a new history (a new replid): a replica's position in the old
    one is not continued, since the primary may have lost or replaced its newest commits."""
    p = ServerProcess(tmp_path, data=tmp_path / "p").start()
    r = ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r").start()
    try:
        pc = p.client()
        pc.set("a", 1)
        assert pc.wait(1, 10000) == 1
        p.kill9()
        shutil.rmtree(p.data)                       # the primary comes back with other data
        p.start()
        pc = p.client()
        pc.set("b", 2)
        rc = r.client()
        wait_for(lambda: link_up(rc) and replication(rc)["master_full_syncs"] == 2, what="second full sync")
        assert pc.wait(1, 10000) == 1
        assert rc.get("a") is None and rc.get("b") == b"2"
        assert contents(r.data) == contents(p.data)
    finally:
        r.stop()
        p.stop()


def test_a_replica_of_a_replica_gets_what_the_first_one_applies(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p, \
            ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r") as r, \
            ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {r.port}", "--engine", "lsm", data=tmp_path / "rr") as rr:
        pc, rc, rrc = p.client(), r.client(), rr.client()
        wait_for(lambda: link_up(rc) and link_up(rrc), what="both links")
        for i in range(200):
            pc.hset(f"h{i % 7}", f"f{i}", i)
        pc.zadd("z", {"a": 1})
        assert pc.wait(1, 10000) == 1                 # WAIT on a replica is refused, as in Redis
        wait_for(lambda: contents(rr.data) == contents(p.data), what="the second replica to catch up")
        assert rrc.hgetall("h3") == pc.hgetall("h3") and rrc.dbsize() == pc.dbsize()
        assert replication(rc)["connected_slaves"] == 1 and replication(rrc)["role"] == "slave"


def test_writes_to_a_replica_get_READONLY_as_from_redis(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p:
        with ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r") as r:
            rc = r.client()
            wait_for(lambda: link_up(rc), what="link")
            for call in (lambda: rc.set("x", 1), lambda: rc.incr("n"), lambda: rc.rpush("l", 1),
                         lambda: rc.eval("return redis.call('set', 'x', 1)", 0)):
                with pytest.raises(redis.exceptions.ReadOnlyError, match="You can't write against a read only "
                                                                         "replica."):
                    call()
            pipe = rc.pipeline()
            pipe.get("x")
            pipe.set("x", 1)
            with pytest.raises(redis.exceptions.ReadOnlyError):   # queued with an error: EXECABORT
                pipe.execute()
            assert rc.get("x") is None and rc.eval("return 1", 0) == 1
            rc.config_set("replica-read-only", "no")     # a writable replica, as Redis allows
            rc.set("local", 1)
            assert rc.get("local") == b"1"


def test_replicaof_no_one_promotes_and_the_old_primary_follows_the_new_one(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p, \
            ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r") as r:
        pc, rc = p.client(), r.client()
        pc.rpush("l", 1, 2, 3)
        pc.set("s", "v", ex=1000)
        assert pc.wait(1, 10000) == 1
        assert rc.replicaof("NO", "ONE")
        assert rc.role()[0] == b"master"
        rc.rpush("l", 4)
        assert rc.dbsize() == 2 and rc.lrange("l", 0, -1) == [b"1", b"2", b"3", b"4"]
        assert kvdb.open(r.data, readonly=True).get(POSITION_PREFIX + b"replication position") is None
        assert pc.replicaof("127.0.0.1", r.port)
        wait_for(lambda: link_up(pc), what="old primary following")
        assert rc.wait(1, 10000) == 1
        assert pc.lrange("l", 0, -1) == [b"1", b"2", b"3", b"4"] and 990 < pc.ttl("s") <= 1000
        assert contents(p.data) == contents(r.data)


def test_wait_counts_replicas_and_times_out(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p:
        pc = p.client()
        pc.set("a", 1)
        assert pc.wait(0, 0) == 0
        start = time.monotonic()
        assert pc.wait(1, 200) == 0                 # no replica: the timeout passes
        assert time.monotonic() - start >= 0.19
        with ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r") as r:
            wait_for(lambda: link_up(r.client()), what="link")
            pc.set("b", 2)
            assert pc.wait(1, 0) == 1
            start = time.monotonic()
            assert pc.wait(2, 300) == 1
            assert time.monotonic() - start >= 0.29
            with pytest.raises(redis.exceptions.ResponseError, match="replica"):
                r.client().wait(1, 10)


def test_a_replica_announces_the_address_and_port_it_is_given(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p, \
            ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", "--replica-announce-ip", "10.1.2.3",
                          "--replica-announce-port", "7777", "--replica-priority", "5", data=tmp_path / "r") as r:
        pc, rc = p.client(), r.client()
        wait_for(lambda: link_up(rc), what="link")
        pc.set("x", 1)
        assert pc.wait(1, 5000) == 1
        slave = replication(pc)["slave0"]
        assert (slave["ip"], slave["port"], slave["state"]) == ("10.1.2.3", 7777, "online")
        assert pc.role()[2] == [[b"10.1.2.3", b"7777", str(slave["offset"]).encode()]]
        assert replication(rc)["slave_priority"] == 5
        assert [c["flags"] for c in pc.client_list() if c["addr"].startswith("127.0.0.1")].count("S") == 1
        other = p.client()
        other.ping()
        assert pc.client_kill_filter(_type="normal", skipme=True) >= 1   # `other` goes
        time.sleep(0.3)
        assert [c["flags"] for c in pc.client_list()].count("S") == 1    # the replica's link stays
        assert link_up(rc) and pc.client_kill_filter(_type="replica") == 1


def test_replicaof_itself_is_refused(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p:
        pc = p.client()
        with pytest.raises(redis.exceptions.ResponseError, match="itself"):
            pc.replicaof("127.0.0.1", p.port)
        assert pc.role()[0] == b"master"
        pc.set("still", "writable")


def test_replicaof_another_name_of_itself_is_refused_by_node_id(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p:
        pc = p.client()
        pc.replicaof("127.1", p.port)               # 127.0.0.1 by another name: found out in the handshake
        wait_for(lambda: "itself" in replication(pc).get("master_link_error", ""), what="the refusal")
        assert replication(pc)["master_link_status"] == "down"
        pc.replicaof("NO", "ONE")
        pc.set("still", "writable")


def test_replicaof_a_server_that_is_not_kvdb_says_so(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian's redis-server package)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, "redis-server")
        with ServerProcess(tmp_path, data=tmp_path / "k") as k:
            kc = k.client()
            kc.set("mine", 1)
            kc.replicaof("127.0.0.1", port)
            wait_for(lambda: "not a kvdb server" in replication(kc).get("master_link_error", ""),
                     what="the error")
            assert replication(kc)["master_link_status"] == "down"
            assert kc.get("mine") == b"1"           # nothing is lost
            # and a Redis replica pointed at kvdb is refused with a reason
            rr = redis.Redis(host="127.0.0.1", port=port)
            rr.replicaof("127.0.0.1", k.port)
            with pytest.raises(redis.exceptions.ResponseError, match="kvdb replicas only"):
                kc.execute_command("PSYNC", "?", "-1")
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_wrong_masterauth_is_reported_and_nothing_is_copied(tmp_path):
    with ServerProcess(tmp_path, "--requirepass", "right", data=tmp_path / "p") as p:
        pc = p.client(password="right")
        pc.set("secret", 1)
        with ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", "--masterauth", "wrong",
                           data=tmp_path / "r") as r:
            rc = r.client()
            wait_for(lambda: "AUTH" in replication(rc).get("master_link_error", ""), what="the AUTH error")
            assert replication(rc)["master_link_status"] == "down" and rc.get("secret") is None
            rc.config_set("masterauth", "right")
            wait_for(lambda: link_up(rc), what="link with the right password")
            assert rc.get("secret") == b"1"


def test_a_replica_authenticates_as_an_acl_user(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p:
        pc = p.client()
        pc.acl_setuser("repl", enabled=True, passwords=["+s3cret"], commands=["+replconf", "+kvsync", "+ping"])
        pc.config_set("requirepass", "admin")
        pc = p.client(password="admin")
        pc.set("k", "v")
        with ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", "--masteruser", "repl",
                           "--masterauth", "s3cret", data=tmp_path / "r") as r:
            rc = r.client()
            wait_for(lambda: link_up(rc), what="link")
            assert rc.get("k") == b"v"


class FakePrimary:
    """A scripted primary on a loopback port: answers the handshake, then sends
    `sessions[i]` (bytes) on the i-th KVSYNC and keeps the connection open. Records each
    KVSYNC's arguments."""

    def __init__(self, sessions):
        import socket
        self.sessions = list(sessions)
        self.kvsyncs = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                words = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    words.append(f.read(n + 2)[:-2])
                if words[0].upper() == b"KVSYNC":
                    self.kvsyncs.append((words[1].decode(), int(words[2])))
                    i = len(self.kvsyncs) - 1
                    conn.sendall(self.sessions[i] if i < len(self.sessions) else b"-ERR no more sessions\r\n")
                elif words[0].upper() == b"REPLCONF" and words[1].lower() == b"ack":
                    pass
                else:
                    conn.sendall(b"+OK\r\n")
        except (OSError, ValueError):
            return

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_R1_R3_a_replica_refuses_a_log_that_does_not_follow_or_does_not_check_out(tmp_path):
    """R1 and R3 (docs/format/replication.md): a record whose seq does not follow the position,
    or a frame whose checksum fails, ends the session before anything of it is applied, and
    the replica asks for a full sync instead of continuing."""
    from kvdb.server.replication import stream
    replid = "ab" * 20
    snap = stream.encode_header(stream.MODE_FULL, replid, 10) + \
        stream.frame(stream.SNAPSHOT, stream.encode_ops([(b"\x01\x00ka", b"s" + bytes(8) + b"1", 0)]))
    first = snap + stream.end_frame(10, 1) + stream.record_frame(11, [(b"\x01\x00kb", b"s" + bytes(8) + b"2", 0)]) + \
        stream.record_frame(13, [(b"\x01\x00kc", b"s" + bytes(8) + b"3", 0)])
    bad = bytearray(stream.encode_header(stream.MODE_FULL, replid, 20) +
                    stream.frame(stream.SNAPSHOT, stream.encode_ops([(b"\x01\x00kd", b"s" + bytes(8) + b"4", 0)])))
    bad[-1] ^= 0x55                                     # a flipped byte in the snapshot frame's payload
    good = stream.encode_header(stream.MODE_FULL, replid, 30) + \
        stream.frame(stream.SNAPSHOT, stream.encode_ops([(b"\x01\x00ke", b"s" + bytes(8) + b"5", 0)])) + \
        stream.end_frame(30, 1)
    fake = FakePrimary([first, bytes(bad), good])
    try:
        with ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {fake.port}", data=tmp_path / "r") as r:
            rc = r.client()
            wait_for(lambda: len(fake.kvsyncs) >= 3 and rc.get("e") == b"5", what="three sessions")
            assert fake.kvsyncs[:3] == [("?", 0), ("?", 0), ("?", 0)]
            assert rc.get("c") is None and rc.get("d") is None and rc.get("a") is None
            assert replication(rc)["slave_repl_offset"] == 30
            log = r.log()
            assert "record 13 does not follow the applied seq 11" in log
            assert "checksum mismatch" in log
    finally:
        fake.close()


def test_R2_a_replica_continues_while_its_primary_takes_writes(tmp_path):
    """The continue header goes out before any record, even when other clients' commits are
    pumped in the same turn as KVSYNC."""
    with ServerProcess(tmp_path, data=tmp_path / "p") as p:
        pc = p.client()
        r = ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r").start()
        stop, threads, counts = run_load(p.port, 0, clients=2)
        try:
            wait_for(lambda: link_up(r.client()), what="link")
            for _ in range(3):
                r.stop()
                time.sleep(0.3)
                r.start()
                wait_for(lambda: link_up(r.client()), what="link after restart")
            stop.set()
            for t in threads:
                t.join()
            time.sleep(0.6)                         # the load's short expiries pass and are swept
            assert pc.wait(1, 10000) == 1
            info = replication(r.client())
            assert (info["master_full_syncs"], info["master_partial_syncs"]) == (0, 1)
            assert contents(r.data) == contents(p.data)
        finally:
            stop.set()
            for t in threads:
                t.join()
            r.stop()


def test_wait_ended_by_client_unblock_does_not_end_a_later_blocking_command(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p:
        pc = p.client()
        c = p.client()
        cid = c.client_id()
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("wait", c.wait(1, 400)))
        t.start()
        wait_for(lambda: pc.client_unblock(cid), what="the WAIT to block")
        t.join()
        assert out["wait"] == 0
        t = threading.Thread(target=lambda: out.setdefault("blpop", c.blpop(["q"], timeout=2)))
        t.start()
        time.sleep(0.6)                             # past the WAIT's own timeout
        pc.rpush("q", "x")
        t.join()
        assert out["blpop"] == (b"q", b"x")


def test_a_replica_runs_the_function_libraries_its_primary_loads(tmp_path):
    pytest.importorskip("lupa")
    with ServerProcess(tmp_path, data=tmp_path / "p") as p, \
            ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r") as r:
        pc, rc = p.client(), r.client()
        wait_for(lambda: link_up(rc), what="link")
        assert rc.function_list() == []
        pc.function_load("#!lua name=lib\nredis.register_function{function_name='get1', "
                         "callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}")
        pc.set("k", "v")
        assert pc.wait(1, 5000) == 1
        assert rc.fcall_ro("get1", 1, "k") == b"v"


def test_an_interrupted_swap_puts_the_old_data_back(tmp_path):
    from kvdb.server.app import recover_swap
    data = tmp_path / "data"
    old = tmp_path / "data.old-123"
    old.mkdir()
    (old / "x").write_text("old")
    (tmp_path / "data.sync-123").mkdir()
    recover_swap(str(data))
    assert (data / "x").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["data"]
    recover_swap(str(data))                         # nothing to do
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_a_fellow_replica_continues_from_the_promoted_one_without_a_full_sync(tmp_path):
    """After the primary is gone and one replica is promoted, the other, which had applied the
    same commits, continues from it (as Redis's replid2 allows) instead of syncing in full; one
    that lags, or a promoted node that took writes as a replica, makes it sync in full."""
    p = ServerProcess(tmp_path, data=tmp_path / "p").start()
    r1 = ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r1").start()
    r2 = ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r2").start()
    try:
        pc, c1, c2 = p.client(), r1.client(), r2.client()
        wait_for(lambda: link_up(c1) and link_up(c2), what="both links")
        for i in range(300):
            pc.hset(f"h{i % 9}", f"f{i}", i)
        assert pc.wait(2, 10000) == 2
        p.stop()
        assert c1.replicaof("NO", "ONE")
        info = replication(c1)
        assert info["master_replid2"] not in (0, "0" * 40) and info["second_repl_offset"] > 0
        assert c2.replicaof("127.0.0.1", r1.port)
        wait_for(lambda: link_up(c2) and replication(c2)["master_host"] == "127.0.0.1"
                 and replication(c2)["master_port"] == r1.port, what="following the promoted replica")
        c1.set("after", "promotion")
        assert c1.wait(1, 10000) == 1
        info = replication(c2)                      # counts of the link to r1
        assert (info["master_full_syncs"], info["master_partial_syncs"]) == (0, 1)
        assert c2.get("after") == b"promotion"
        assert contents(r2.data) == contents(r1.data)
        r2.stop()                                   # its position is now the promoted node's: it continues
        r2 = ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {r1.port}", data=tmp_path / "r2")
        rc = restart_and_catch_up(r2, c1, "link after restart")
        assert (replication(rc)["master_full_syncs"], replication(rc)["master_partial_syncs"]) == (0, 1)
    finally:
        for s in (r2, r1, p):
            s.stop()


def test_a_promoted_replica_that_took_writes_makes_fellows_sync_in_full(tmp_path):
    with ServerProcess(tmp_path, data=tmp_path / "p") as p, \
            ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", "--replica-read-only", "no",
                          data=tmp_path / "r1") as r1, \
            ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r2") as r2:
        pc, c1, c2 = p.client(), r1.client(), r2.client()
        wait_for(lambda: link_up(c1) and link_up(c2), what="both links")
        pc.set("a", 1)
        assert pc.wait(2, 10000) == 2
        c1.set("local", "write")                   # r1 now holds what its position does not say
        c1.replicaof("NO", "ONE")
        assert replication(c1)["master_replid2"] in (0, "0" * 40)   # redis-py reads 40 zeros as 0
        c2.replicaof("127.0.0.1", r1.port)
        wait_for(lambda: link_up(c2) and replication(c2)["master_port"] == r1.port, what="following r1")
        assert c1.wait(1, 10000) == 1
        assert replication(c2)["master_full_syncs"] == 1 and c2.get("local") == b"write"


def test_min_replicas_to_write_refuses_writes_as_redis_does(tmp_path):
    server = shutil.which("redis-server")
    with ServerProcess(tmp_path, "--min-replicas-to-write", "1", "--min-replicas-max-lag", "10",
                       data=tmp_path / "p") as p:
        pc = p.client()
        with pytest.raises(redis.exceptions.ResponseError, match="^NOREPLICAS Not enough good replicas to write"):
            pc.set("k", 1)
        with pytest.raises(redis.exceptions.ResponseError, match="^NOREPLICAS"):
            pc.eval("return redis.call('incr', 'n')", 0)
        assert pc.get("k") is None and pc.get("n") is None
        if server is not None:                      # the same reply from redis-server
            port = free_port()
            proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                     "--min-replicas-to-write", "1"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                wait_listening(port, proc, "redis-server")
                raw = lambda c: c.execute_command("SET", "k", 1)  # noqa: E731
                with pytest.raises(redis.exceptions.ResponseError) as want:
                    raw(redis.Redis(port=port))
                with pytest.raises(redis.exceptions.ResponseError) as again:
                    raw(pc)
                assert str(again.value) == str(want.value)
            finally:
                proc.terminate()
                proc.wait(10)
        with ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r") as r:
            wait_for(lambda: link_up(r.client()), what="link")
            wait_for(lambda: replication(pc).get("min_slaves_good_slaves") == 1, what="a good replica")
            assert pc.set("k", 1) and pc.wait(1, 5000) == 1 and r.client().get("k") == b"1"
        pc.config_set("min-replicas-to-write", 0)
        assert pc.set("k", 2)
