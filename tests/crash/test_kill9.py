"""kill -9 a writer process at a random moment; every acknowledged commit must survive.

The child (child_writer.py "commits") commits transaction n = counter + 1, counter + 2, ...
where transaction n sets counter=n, tag:0..3=n, log:n, and replaces tmp:n-1 by tmp:n; it
prints "C n" once commit returns. After SIGKILL the parent reopens the same database and checks
the state is exactly the one after some transaction n >= the last acknowledged one (at most one
more: the one in flight), and that verify() passes. The next round continues on the same db.
"""
import os
import random
import signal
import time

import pytest

import kvdb
from tests.helpers import check_commit_state, popen_child


def run_round(db_path, rng, context, sync, engine):
    child = popen_child("commits", db_path, 10 ** 9, 64 << 10, sync, engine)
    acked = -1
    lines = []
    try:
        first = child.stdout.readline().decode()
        lines.append(first)
        assert first.strip() == "READY", f"{context}: child did not start: {first!r} " \
            f"{child.stderr.read().decode()[-2000:] if child.poll() is not None else ''}"
        # let it commit for a while, then kill it without warning
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    for line in out.decode().splitlines():
        if line.startswith("C "):
            acked = int(line.split()[1])
        elif line.startswith(("E ", "X ")):
            pytest.fail(f"{context}: child failed: {line} {err.decode()[-2000:]}")
    assert child.returncode == -signal.SIGKILL, f"{context}: child exited by itself: {err.decode()[-2000:]}"
    return acked


# sync="normal" and "off" promise to survive a process crash (not power loss): kill -9 too.
@pytest.mark.parametrize("sync", ["full", "normal", "off"])
def test_W1_kill9_loses_no_acknowledged_commit(db_path, long_mode, sync, engine):
    """W1: a commit is acknowledged only once its record is written."""
    rounds = 30 if long_mode else 3
    seed = int(os.environ.get("KVDB_TEST_SEED", "0")) or random.randrange(1 << 30)
    rng = random.Random(seed)
    last = -1
    total_acked = 0
    for r in range(rounds):
        context = f"engine={engine} sync={sync} round {r} (seed {seed}; rerun with KVDB_TEST_SEED={seed})"
        acked = run_round(db_path, rng, context, sync, engine)
        if acked >= 0:
            total_acked += acked - last
        with kvdb.open(db_path, engine=engine, sync="full") as db:
            n = check_commit_state(db, context)
            assert n >= acked, f"{context}: commit {acked} was acknowledged but the db stops at {n}"
            assert n <= max(acked, last) + 1, f"{context}: db at {n}, more than one past acked {acked}"
            db.verify()
        last = n
    assert total_acked > 0, "no commit was acknowledged in any round: the test tested nothing"
