"""Durability of the collection types: clients push and pop a list, SADD, ZADD, XADD
and read a stream through a consumer group (acking some entries) against
`kvdb serve --sync full`, the test kill -9s the server, restarts it, checks, lets the
clients run again and kills it a second time.

After each restart:
  - every acknowledged LPUSH is in the list or was popped by an acknowledged RPOP
    (at most one unacknowledged, in-flight pop per popper may have taken one more);
  - a pop acknowledged to a client is never delivered again: not in the list, and no
    later pop returns it;
  - every acknowledged SADD member and ZADD member (with its score) is there;
  - every acknowledged XADD entry is there, with its fields;
  - an entry whose XACK was acknowledged is not pending; an entry delivered by an
    acknowledged XREADGROUP for which no XACK was sent is still pending, for the
    consumer it was delivered to; the group's cursor does not go back (XREADGROUP >
    never delivers an entry delivered before).
"""
import threading
import time

import pytest

from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")
import redis.backoff  # noqa: E402
import redis.retry  # noqa: E402
pytestmark = pytest.mark.timeout(120)   # pytest-timeout (the test extra)

LIST, SET, ZSET, STREAM, GROUP = "d:list", "d:set", "d:zset", "d:stream", "g"
DEAD = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)
RUN_SECONDS = 1.5
NO_RETRY = redis.retry.Retry(redis.backoff.NoBackoff(), 0)   # a command is sent once: no replay after a failure
POPPERS = 2
ROUNDS = 3


class Model:
    """What the clients were told, across both rounds. Each field is only appended to by
    the thread that owns it (a dict or set per kind), under the GIL."""

    def __init__(self):
        self.pushed = set()          # list values whose LPUSH was acknowledged
        self.popped = set()          # values an acknowledged RPOP returned
        self.double_pops = []        # values an RPOP returned a second time (must stay empty)
        self.members = set()         # acknowledged SADD members
        self.scores = {}             # acknowledged ZADD member -> score
        self.entries = {}            # acknowledged XADD id -> fields
        self.delivered = {}          # id -> consumer, from acknowledged XREADGROUP replies
        self.ack_sent = set()        # ids an XACK was sent for (acknowledged or not)
        self.acked = set()           # ids whose XACK was acknowledged
        self.errors = []             # unexpected exceptions in client threads


def pusher(srv, m, stop, tag):
    c = srv.client(socket_timeout=5, retry=NO_RETRY)
    i = 0
    try:
        while not stop.is_set():
            v = f"{tag}:{i}"
            c.lpush(LIST, v)
            m.pushed.add(v)
            i += 1
    except DEAD:
        pass


def popper(srv, m, stop):
    c = srv.client(socket_timeout=5, retry=NO_RETRY)
    try:
        while not stop.is_set():
            v = c.rpop(LIST)
            if v is None:
                time.sleep(0.002)
                continue
            v = v.decode()
            if v in m.popped:
                m.double_pops.append(v)
            m.popped.add(v)
    except DEAD:
        pass


def set_zset_adder(srv, m, stop, tag):
    c = srv.client(socket_timeout=5, retry=NO_RETRY)
    i = 0
    try:
        while not stop.is_set():
            member = f"{tag}:{i}"
            if i % 2:
                c.sadd(SET, member)
                m.members.add(member)
            else:
                score = (i * 7919) % 1000 + 0.5
                c.zadd(ZSET, {member: score})
                m.scores[member] = score
            i += 1
    except DEAD:
        pass


def xadder(srv, m, stop, tag):
    c = srv.client(socket_timeout=5, retry=NO_RETRY)
    i = 0
    try:
        while not stop.is_set():
            fields = {"w": tag, "i": str(i)}
            eid = c.xadd(STREAM, fields).decode()
            m.entries[eid] = fields
            i += 1
    except DEAD:
        pass


def group_reader(srv, m, stop, consumer):
    """Reads new entries; acks those whose i is not a multiple of 3, leaves the rest pending."""
    c = srv.client(socket_timeout=5, retry=NO_RETRY)
    try:
        while not stop.is_set():
            reply = c.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=10, block=100)
            if not reply:
                continue
            entries = reply[0][1]
            for eid, _ in entries:
                m.delivered[eid.decode()] = consumer
            to_ack = [eid.decode() for eid, f in entries if int(f[b"i"]) % 3]
            if to_ack:
                m.ack_sent.update(to_ack)
                c.xack(STREAM, GROUP, *to_ack)
                m.acked.update(to_ack)
    except DEAD:
        pass


def run_round(srv, m, rnd):
    """Runs the clients for RUN_SECONDS, then kill -9s the server."""
    stop = threading.Event()

    def guarded(fn, *args):
        try:
            fn(srv, m, stop, *args)
        except Exception as e:  # noqa: BLE001 - an error reply: reported by the test
            m.errors.append(f"{fn.__name__}: {e!r}")

    jobs = [(pusher, f"r{rnd}p{n}") for n in range(2)] + [(popper,)] * POPPERS
    jobs += [(set_zset_adder, f"r{rnd}z{n}") for n in range(2)] + [(xadder, f"r{rnd}x{n}") for n in range(2)]
    jobs += [(group_reader, f"c{n}") for n in range(2)]
    threads = [threading.Thread(target=guarded, args=job, daemon=True) for job in jobs]
    for t in threads:
        t.start()
    time.sleep(RUN_SECONDS)
    srv.kill9()
    stop.set()
    for t in threads:
        t.join(15)
        assert not t.is_alive(), "a client thread did not stop after the server died"


def check(c, m, in_flight_pops):
    assert not m.double_pops, f"acknowledged pops delivered twice: {m.double_pops[:10]}"

    # lists: read the whole list (small), never re-delivering a popped value
    in_list = [v.decode() for v in c.lrange(LIST, 0, -1)]
    assert len(in_list) == len(set(in_list)), "a value is in the list twice"
    again = m.popped.intersection(in_list)
    assert not again, f"acknowledged pops are back in the list: {sorted(again)[:10]}"
    lost = m.pushed - m.popped - set(in_list)
    assert len(lost) <= in_flight_pops, f"acknowledged pushes lost: {sorted(lost)[:10]}"

    # sets and sorted sets
    missing = [x for x in m.members if not c.sismember(SET, x)]
    assert not missing, f"acknowledged SADD members lost: {missing[:10]}"
    stored = dict((k.decode(), v) for k, v in c.zrange(ZSET, 0, -1, withscores=True))
    wrong = {k: (v, stored.get(k)) for k, v in m.scores.items() if stored.get(k) != v}
    assert not wrong, f"acknowledged ZADDs lost or changed: {list(wrong.items())[:10]}"
    assert c.zcard(ZSET) == len(stored)

    # streams
    have = {eid.decode(): {k.decode(): v.decode() for k, v in f.items()}
            for eid, f in c.xrange(STREAM, "-", "+")}
    gone = {k: v for k, v in m.entries.items() if have.get(k) != v}
    assert not gone, f"acknowledged XADDs lost or changed: {list(gone.items())[:10]}"
    pending = {p["message_id"].decode(): p["consumer"].decode()
               for p in c.xpending_range(STREAM, GROUP, "-", "+", 10 ** 7)}
    still = m.acked & set(pending)
    assert not still, f"XACKed entries are pending again: {sorted(still)[:10]}"
    must = {eid: who for eid, who in m.delivered.items() if eid not in m.ack_sent}
    lost_pel = {eid: who for eid, who in must.items() if pending.get(eid) != who}
    assert not lost_pel, f"delivered, unacked entries lost from the PEL: {list(lost_pel.items())[:10]}"
    assert c.xpending(STREAM, GROUP)["pending"] == len(pending)
    return max(m.delivered, key=lambda e: tuple(map(int, e.split("-"))), default=None)


def stream_id(e):
    return tuple(map(int, e.split("-")))


def test_list_L5_kill9_during_collection_writes_keeps_every_acknowledged_one(tmp_path):
    """L5: a command's records and meta record are written in its group's one transaction, so
    every acknowledged change to the list (and to the set, sorted set and stream: T9) is
    whole after kill -9 under --sync full."""
    m = Model()
    srv = ServerProcess(tmp_path, "--sync", "full").start()
    c = srv.client()
    c.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    for rnd in range(ROUNDS):
        run_round(srv, m, rnd)
        assert not m.errors, m.errors
        assert len(m.pushed) > 50 and len(m.popped) > 10 and len(m.members) > 20 and len(m.scores) > 20, \
            "the clients made too little progress to test anything"
        assert len(m.entries) > 50 and len(m.delivered) > 20 and len(m.acked) > 10, \
            "the stream clients made too little progress to test anything"
        print(f"round {rnd}: {len(m.pushed)} pushed, {len(m.popped)} popped, {len(m.members)} SADD, "
              f"{len(m.scores)} ZADD, {len(m.entries)} XADD, {len(m.delivered)} delivered, {len(m.acked)} acked")
        t0 = time.monotonic()
        srv = ServerProcess(tmp_path, "--sync", "full", data=srv.data).start()
        print(f"restart in {time.monotonic() - t0:.1f} s")
        c = srv.client()
        last = check(c, m, in_flight_pops=POPPERS * (rnd + 1))
        # the group cursor did not go back: '>' delivers only entries after every delivered one
        reply = c.xreadgroup(GROUP, "probe", {STREAM: ">"}, count=1000)
        fresh = [eid.decode() for eid, _ in reply[0][1]] if reply else []
        assert all(stream_id(e) > stream_id(last) for e in fresh), "XREADGROUP > re-delivered old entries"
        for eid in fresh:          # now delivered to "probe", unacked: the model keeps that
            m.delivered[eid] = "probe"
    # finally: drain the list; nothing popped before comes out again
    rest = []
    while True:
        v = c.rpop(LIST, 1000)
        if not v:
            break
        rest += [x.decode() for x in v]
    assert not m.popped.intersection(rest)
    srv.stop()
