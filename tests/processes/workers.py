"""Work that the several-processes tests run in other processes (multiprocessing, spawn): each
function opens the database itself, as a separate program would, and reports through its return
value or a pipe."""
import os
import random
import time

import kvdb


def counter_worker(path, rounds, counters, seed, sync, workers):
    """Random read-modify-write transactions on shared counters, each retried on ConflictError
    until it commits; returns {counter: increments this process committed}. The `workers`
    workers start together, once each has opened the database (a file per ready worker beside
    it), so that they contend however long their start takes on a loaded machine."""
    rng = random.Random(seed)
    done = {}
    conflicts = 0
    with kvdb.open(path, sync=sync) as db:
        ready = os.path.dirname(os.path.abspath(path))
        open(os.path.join(ready, f"counter-worker-{seed}.ready"), "w").close()
        deadline = time.monotonic() + 60
        while sum(1 for n in os.listdir(ready) if n.endswith(".ready")) < workers and time.monotonic() < deadline:
            time.sleep(0.001)
        for _ in range(rounds):
            picks = rng.sample(range(counters), 2)
            while True:
                try:
                    with db.transaction() as tx:
                        for c in picks:
                            key = b"counter:%d" % c
                            tx.put(key, b"%d" % (int(tx.get(key) or b"0") + 1))
                    break
                except kvdb.ConflictError:
                    conflicts += 1
            for c in picks:
                done[c] = done.get(c, 0) + 1
    return done, conflicts


def bank_worker(path, transfers, accounts, seed):
    """Transfers between accounts in transactions, checking in each that the total is intact;
    returns (committed transfers, snapshots whose total was wrong)."""
    rng = random.Random(seed)
    wrong = committed = 0
    with kvdb.open(path, sync="normal") as db:
        for i in range(transfers):
            a, b = rng.sample(range(accounts), 2)
            amount = rng.randint(1, 50)
            try:
                with db.transaction() as tx:
                    ka, kb = b"acct:%03d" % a, b"acct:%03d" % b
                    tx.put(ka, b"%d" % (int(tx.get(ka)) - amount))
                    tx.put(kb, b"%d" % (int(tx.get(kb)) + amount))
                committed += 1
            except kvdb.ConflictError:
                pass
            if i % 25 == 0:
                with db.snapshot() as snap:
                    total = sum(int(v) for _, v in snap.scan(prefix=b"acct:"))
                    if total != accounts * 1000:
                        wrong += 1
    return committed, wrong


def announcing_writer(path, commits, conn, checkpoint_every):
    """Commit `commits` transactions, each setting every key of a group to its number n, and
    send n through `conn` once commit() has returned (the commit is acknowledged)."""
    with kvdb.open(path, sync="normal", checkpoint_size=1 << 30) as db:
        for n in range(1, commits + 1):
            time.sleep(0.001)
            with db.transaction() as tx:
                for g in range(8):
                    tx.put(b"group:%d" % g, b"%08d" % n + b"x" * (n % 200))
            conn.send(n)
            if checkpoint_every and n % checkpoint_every == 0:
                db.checkpoint()
    conn.send(None)


def observing_reader(path, conn, results):
    """Read while the writer announces: after seeing n announced, every read of the group (a
    snapshot, an iterator, plain gets) shows a value >= n, and a snapshot shows all keys equal
    (no partial commit). Sends (checks, violations) to `results`."""
    checks = violations = 0
    with kvdb.open(path) as db:
        results.send("ready")
        seen = 0
        while True:
            while conn.poll():
                n = conn.recv()
                if n is None:
                    results.send((checks, violations))
                    return
                seen = n
            with db.snapshot() as snap:
                vals = [snap.get(b"group:%d" % g) for g in range(8)]
            nums = {int(v[:8]) for v in vals if v is not None}
            if len(nums) > 1 or (seen and (not nums or min(nums) < seen)):
                violations += 1
            got = db.get(b"group:3")
            if seen and (got is None or int(got[:8]) < seen):
                violations += 1
            scanned = [int(v[:8]) for _, v in db.scan(prefix=b"group:")]
            if len(set(scanned)) > 1 or (seen and (not scanned or scanned[0] < seen)):
                violations += 1
            checks += 1


def steady_committer(path, conn, tag, sync):
    """Commit forever (until killed), sending each acknowledged commit's number through conn."""
    db = kvdb.open(path, sync=sync, checkpoint_size=64 << 10)
    n = 0
    while True:
        n += 1
        with db.transaction() as tx:
            tx.put(b"%s:%08d" % (tag, n), os.urandom(64))
            tx.put(b"%s:last" % tag, b"%d" % n)
        conn.send(n)


def random_reader(path, seconds, keys, seed, cache_size):
    """Random point reads for `seconds`; returns the number of reads."""
    rng = random.Random(seed)
    n = 0
    with kvdb.open(path, cache_size=cache_size) as db:
        deadline = time.perf_counter() + seconds
        get = db.get
        while time.perf_counter() < deadline:
            for _ in range(1000):
                get(b"key%012d" % rng.randrange(keys))
            n += 1000
    return n


def handle_server(path, conn):
    """Serve commands on a handle of its own (the Hypothesis model test's second process):
    ("put", k, v), ("delete", k), ("get", k), ("items",), ("checkpoint",), ("reopen",),
    ("txn", [(k, v or None)]); replies ("ok", result) or ("err", type name)."""
    db = kvdb.open(path)
    while True:
        msg = conn.recv()
        op = msg[0]
        try:
            if op == "stop":
                db.close()
                conn.send(("ok", None))
                return
            if op == "put":
                db.put(msg[1], msg[2])
                result = None
            elif op == "delete":
                result = db.delete(msg[1])
            elif op == "get":
                result = db.get(msg[1])
            elif op == "items":
                result = list(db.scan())
            elif op == "checkpoint":
                db.checkpoint()
                result = None
            elif op == "reopen":
                db.close()
                db = kvdb.open(path)
                result = None
            elif op == "txn":
                with db.transaction() as tx:
                    for k, v in msg[1]:
                        if v is None:
                            tx.delete(k)
                        else:
                            tx.put(k, v)
                result = None
            else:
                raise ValueError(op)
            conn.send(("ok", result))
        except Exception as e:  # noqa: BLE001 - reported to the test
            conn.send(("err", f"{type(e).__name__}: {e}"))


def handle_server_opened_with(path, conn, options):
    """handle_server whose opens (the first and each reopen) pass `options`, such as a small
    cache and checkpoint threshold. It runs in a process of its own, whose kvdb.open it wraps."""
    import functools
    kvdb.open = functools.partial(kvdb.open, **options)
    handle_server(path, conn)
