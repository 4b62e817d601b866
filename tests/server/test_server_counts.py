"""The server's count records (docs/format/server-keys.md, C6): after every commit they hold what
a count of the records gives, across restarts and kill -9; a database of the previous layout is
counted once and upgraded; a replica's counters follow its primary's."""
import os
import random
import threading
import time

import pytest

import kvdb
from kvdb.server.keyspace import COUNTS_KEY, FORMAT_VERSION, GARBAGE_COUNT_KEY, VERSION_KEY, Keyspace
from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")


def recorded_and_counted(data_dir, databases=16):
    """(counters from the count records, counters from a scan of the records) of a stopped or
    running server's database, read-only."""
    db = kvdb.open(data_dir, readonly=True)
    try:
        with db.snapshot() as snap:                 # one version, even while the server commits
            ks = Keyspace(snap, databases, lambda *a: None)
            ks.read_counts()
            recorded = (ks.keys, ks.expires, ks.garbage)
            ks.count_records()
            return recorded, (ks.keys, ks.expires, ks.garbage)
    finally:
        db.close()


def mixed_writes(r, rng, n, short_expiries=True):
    for i in range(n):
        db = rng.randrange(3)
        r.execute_command("SELECT", db)
        k = f"k{rng.randrange(60)}"
        op = rng.randrange(9)
        if op == 0:
            r.set(k, "v", px=rng.choice([None, 30 if short_expiries else None, 100000]))
        elif op == 1:
            r.rpush("l" + k, *range(rng.randrange(1, 120)))   # over 64 elements: DEL leaves garbage
        elif op == 2:
            r.delete(k, "l" + k, "s" + k)
        elif op == 3:
            r.sadd("s" + k, *range(rng.randrange(1, 100)))
        elif op == 4:
            r.expire("l" + k, rng.choice([1 if short_expiries else 100000, 100000]))
        elif op == 5:
            r.persist("l" + k)
        elif op == 6:
            r.hset("h" + k, "f", 1)
        elif op == 7 and rng.random() < 0.05:
            r.flushdb()
        else:
            r.rename("s" + k, "s" + k + "x") if r.exists("s" + k) else r.incr("n" + k)


def test_C6_count_records_hold_what_a_count_of_the_records_gives(tmp_path):
    rng = random.Random(6)
    with ServerProcess(tmp_path, "--hz", "50") as srv:
        r = srv.client()
        mixed_writes(r, rng, 1500)                  # expiries the sweep deletes, garbage the cron collects
        recorded, counted = recorded_and_counted(srv.data)
        assert recorded == counted
        time.sleep(1.3)                             # every short expiry has passed and been swept
        mixed_writes(r, rng, 300, short_expiries=False)
        dbsizes = [r.execute_command("SELECT", d) and r.dbsize() for d in range(3)]
    recorded, counted = recorded_and_counted(srv.data)
    assert recorded == counted and recorded[0][:3] == dbsizes
    with ServerProcess(tmp_path) as srv:           # read back at start, not counted
        r = srv.client()
        assert [r.execute_command("SELECT", d) and r.dbsize() for d in range(3)] == dbsizes


def test_C6_count_records_survive_kill_9_mid_load(tmp_path):
    srv = ServerProcess(tmp_path, "--hz", "50").start()
    stop = threading.Event()

    def load(seed):
        r = srv.client(socket_timeout=5)
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                mixed_writes(r, rng, 20)
        except (redis.RedisError, OSError):
            pass

    threads = [threading.Thread(target=load, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        srv.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join()
    srv.start()                                     # recovery replays the log: records and counts together
    try:
        recorded, counted = recorded_and_counted(srv.data)
        assert recorded == counted
        time.sleep(1.5)                             # every short expiry has passed and been swept
        r = srv.client()
        dbsize = sum(r.execute_command("SELECT", d) and r.dbsize() for d in range(3))
        recorded, counted = recorded_and_counted(srv.data)
        assert recorded == counted and dbsize == sum(counted[0])
    finally:
        srv.stop()


def test_a_database_of_the_previous_layout_is_counted_once_and_upgraded(tmp_path):
    with ServerProcess(tmp_path) as srv:
        r = srv.client()
        for i in range(50):
            r.set(f"k{i}", i, ex=1000 if i % 2 else None)
        r.rpush("big", *range(100))
        r.delete("big")                             # a garbage record
    db = kvdb.open(srv.data)                        # make it look like version 2: no count records
    with db.transaction() as tx:
        for k, _ in db.scan(prefix=COUNTS_KEY):
            tx.delete(k)
        tx.discard(GARBAGE_COUNT_KEY)
        tx.put(VERSION_KEY, b"kvdb-server-keys 2")
    db.close()
    with ServerProcess(tmp_path) as srv:
        r = srv.client()
        assert r.dbsize() == 50
        assert r.info("keyspace")["db0"]["expires"] == 25
    db = kvdb.open(srv.data, readonly=True)
    assert db.get(VERSION_KEY) == FORMAT_VERSION and db.get(COUNTS_KEY + b"\x00") is not None
    db.close()
    recorded, counted = recorded_and_counted(srv.data)
    assert recorded == counted and counted[0][0] == 50


def test_C6_a_replica_takes_its_counters_from_its_primarys_records(tmp_path):
    rng = random.Random(7)
    with ServerProcess(tmp_path, data=tmp_path / "p") as p, \
            ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {p.port}", data=tmp_path / "r") as rep:
        pc, rc = p.client(), rep.client()
        mixed_writes(pc, rng, 800)
        assert pc.wait(1, 10000) == 1
        for d in range(3):
            pc.execute_command("SELECT", d)
            rc.execute_command("SELECT", d)
            assert rc.dbsize() == pc.dbsize()
        assert rc.info("keyspace") == pc.info("keyspace")
        recorded, counted = recorded_and_counted(os.fspath(rep.data))
        assert recorded == counted
