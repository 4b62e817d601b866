"""Transactions: read-own-writes, rollback, snapshot isolation, optimistic conflict detection
(serializable: lost update, write skew, phantoms), and multi-threaded invariants."""
import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvdb
from tests.helpers import dump, model_scan, value


@pytest.fixture
def db(db_path, engine):
    d = kvdb.open(db_path, engine=engine, sync="normal")
    yield d
    d.close()


def begin(db):
    return db.transaction().__enter__()


# -- single transaction -------------------------------------------------------

def test_read_own_writes(db):
    db.put(b"a", b"old")
    db.put(b"c", b"gone-soon")
    with db.transaction() as tx:
        assert tx.get(b"a") == b"old"
        tx.put(b"a", b"new")
        tx.put(b"b", b"fresh")
        assert tx.delete(b"c") is True
        assert tx.delete(b"c") is False
        assert tx.delete(b"never") is False
        assert tx.get(b"a") == b"new" and tx[b"b"] == b"fresh"
        assert tx.get(b"c") is None and b"c" not in tx and b"b" in tx
        assert tx.get(b"c", b"dflt") == b"dflt"
        with pytest.raises(KeyError):
            tx[b"c"]
        assert list(tx.scan()) == [(b"a", b"new"), (b"b", b"fresh")]
        assert list(tx.scan(reverse=True)) == [(b"b", b"fresh"), (b"a", b"new")]
        assert list(tx.scan(start=b"b")) == [(b"b", b"fresh")]
        assert list(tx.scan(prefix=b"a")) == [(b"a", b"new")]
        # not visible outside before commit
        assert db.get(b"a") == b"old" and db.get(b"b") is None and db.get(b"c") == b"gone-soon"
    assert dump(db) == {b"a": b"new", b"b": b"fresh"}


def test_tx_dict_like_and_put_delete_put(db):
    with db.transaction() as tx:
        tx[b"k"] = b"1"
        del tx[b"k"]
        with pytest.raises(KeyError):
            del tx[b"k"]
        tx[b"k"] = b"2"
        tx.put(b"d", b"x")
        tx.delete(b"d")
    assert dump(db) == {b"k": b"2"}


def test_tx_scan_merges_writes_over_many_keys(db):
    model = {}
    with db.transaction() as tx:
        for i in range(0, 400, 2):
            tx.put(b"%04d" % i, b"base")
            model[b"%04d" % i] = b"base"
    rng = random.Random(5)
    with db.transaction() as tx:
        for _ in range(300):
            k = b"%04d" % rng.randrange(400)
            if rng.random() < 0.4:
                tx.delete(k)
                model.pop(k, None)
            else:
                v = b"v%d" % rng.randrange(1000)
                tx.put(k, v)
                model[k] = v
        for bounds in [dict(), dict(start=b"0100", end=b"0200"), dict(prefix=b"03"),
                       dict(start=b"0390"), dict(end=b"0010")]:
            for rev in (False, True):
                assert list(tx.scan(reverse=rev, **bounds)) == model_scan(model, reverse=rev, **bounds)
    assert dump(db) == model


def test_rollback_on_exception(db):
    db.put(b"a", b"1")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with db.transaction() as tx:
            tx.put(b"a", b"2")
            tx.put(b"b", b"2")
            tx.delete(b"a")
            raise Boom()
    assert dump(db) == {b"a": b"1"}


def test_explicit_commit_and_rollback(db):
    tx = begin(db)
    tx.put(b"a", b"1")
    tx.rollback()
    assert db.get(b"a") is None
    tx = begin(db)
    tx.put(b"a", b"2")
    tx.commit()
    assert db.get(b"a") == b"2"
    with db.transaction() as tx:
        tx.put(b"b", b"3")
        tx.rollback()  # explicit rollback inside with: nothing is committed at exit
    assert db.get(b"b") is None
    with db.transaction() as tx:
        tx.put(b"c", b"4")
        tx.commit()  # explicit commit inside with: exit does not commit twice or fail
    assert dump(db) == {b"a": b"2", b"c": b"4"}


def test_rollback_releases_nothing_persisted(db_path, engine):
    with kvdb.open(db_path, engine=engine) as db:
        db.put(b"keep", b"1")
        for i in range(20):
            tx = begin(db)
            for j in range(50):
                tx.put(b"junk%d-%d" % (i, j), b"x" * 300)
            tx.rollback()
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == {b"keep": b"1"}
        db.verify()


# -- isolation ----------------------------------------------------------------

def test_snapshot_taken_at_begin(db):
    db.put(b"x", b"1")
    db.put(b"del", b"here")
    tx = begin(db)
    db.put(b"x", b"2")  # committed after tx began
    db.put(b"new", b"n")
    db.delete(b"del")
    assert tx.get(b"x") == b"1"
    assert tx.get(b"new") is None
    assert tx.get(b"del") == b"here"
    assert list(tx.scan()) == [(b"del", b"here"), (b"x", b"1")]
    tx.rollback()


def test_uncommitted_writes_invisible_to_others(db):
    t1 = begin(db)
    t2 = begin(db)
    t1.put(b"a", b"t1")
    assert t2.get(b"a") is None
    assert db.get(b"a") is None
    with db.snapshot() as snap:
        assert snap.get(b"a") is None
    t1.commit()
    assert t2.get(b"a") is None  # t2's snapshot predates t1's commit
    assert db.get(b"a") == b"t1"
    t2.rollback()


def test_snapshot_does_not_block_writers(db):
    db.put(b"a", b"1")
    with db.snapshot() as snap:
        for i in range(200):
            db.put(b"a", b"%d" % i)
            with db.transaction() as tx:
                tx.put(b"b%03d" % i, b"x")
        assert snap.get(b"a") == b"1"
        assert list(snap.scan()) == [(b"a", b"1")]
    assert db.get(b"a") == b"199"


# -- conflicts ----------------------------------------------------------------

def test_lost_update_conflicts(db):
    db.put(b"x", b"0")
    t1, t2 = begin(db), begin(db)
    v1 = int(t1.get(b"x"))
    v2 = int(t2.get(b"x"))
    t2.put(b"x", b"%d" % (v2 + 1))
    t2.commit()
    t1.put(b"x", b"%d" % (v1 + 1))
    with pytest.raises(kvdb.ConflictError):
        t1.commit()
    assert db.get(b"x") == b"1"


def test_discard_is_a_blind_write_and_does_not_conflict(db):
    db.put(b"x", b"0")
    t1, t2 = begin(db), begin(db)
    t1.discard(b"x")                 # reads nothing: no read set entry for x
    t2.put(b"x", b"1")
    t2.commit()
    t1.commit()                      # a later blind delete wins, as a later put would
    assert db.get(b"x") is None
    t3, t4 = begin(db), begin(db)
    assert t3.delete(b"y") is False  # delete() reads y, so a concurrent write to y conflicts
    t4.put(b"y", b"1")
    t4.commit()
    with pytest.raises(kvdb.ConflictError):
        t3.commit()
    assert db.get(b"y") == b"1"


def test_conflict_in_with_block_rolls_back(db):
    db.put(b"x", b"0")
    with pytest.raises(kvdb.ConflictError):
        with db.transaction() as t1:
            t1.get(b"x")
            t1.put(b"y", b"from-t1")
            db.put(b"x", b"changed")
    assert db.get(b"y") is None
    assert db.get(b"x") == b"changed"


def test_write_skew_conflicts(db):
    # Invariant: at least one doctor on call. Each transaction checks both and removes one.
    db.put(b"alice", b"on")
    db.put(b"bob", b"on")
    t1, t2 = begin(db), begin(db)
    assert t1.get(b"alice") == b"on" and t1.get(b"bob") == b"on"
    assert t2.get(b"alice") == b"on" and t2.get(b"bob") == b"on"
    t1.put(b"alice", b"off")
    t2.put(b"bob", b"off")
    t2.commit()
    with pytest.raises(kvdb.ConflictError):
        t1.commit()
    assert dump(db) == {b"alice": b"on", b"bob": b"off"}


@pytest.mark.parametrize("change", ["insert", "delete", "update"])
def test_phantom_range_conflicts(db, change):
    for k in (b"a", b"b", b"d", b"z"):
        db.put(k, b"1")
    t1 = begin(db)
    assert [k for k, _ in t1.scan(start=b"b", end=b"e")] == [b"b", b"d"]
    t1.put(b"count", b"2")
    if change == "insert":
        db.put(b"c", b"phantom")
    elif change == "delete":
        db.delete(b"d")
    else:
        db.put(b"b", b"2")
    with pytest.raises(kvdb.ConflictError):
        t1.commit()
    assert db.get(b"count") is None


def test_phantom_prefix_and_reverse_scan_conflicts(db):
    db.put(b"user:1", b"x")
    t1 = begin(db)
    list(t1.scan(prefix=b"user:", reverse=True))
    t1.put(b"users", b"1")
    db.put(b"user:2", b"y")
    with pytest.raises(kvdb.ConflictError):
        t1.commit()


def test_partial_scan_conflicts_on_what_it_saw(db):
    for i in range(10):
        db.put(b"k%d" % i, b"v")
    t1 = begin(db)
    it = t1.scan()
    assert [next(it)[0] for _ in range(3)] == [b"k0", b"k1", b"k2"]
    t1.put(b"out", b"1")
    db.put(b"k1", b"changed")  # inside the part t1 has read
    with pytest.raises(kvdb.ConflictError):
        t1.commit()


def test_missing_key_read_conflicts_on_insert(db):
    t1 = begin(db)
    assert t1.get(b"x") is None
    assert b"y" not in t1
    t1.put(b"other", b"1")
    db.put(b"x", b"appeared")
    with pytest.raises(kvdb.ConflictError):
        t1.commit()


def test_contains_counts_as_read(db):
    db.put(b"x", b"1")
    t1 = begin(db)
    assert b"x" in t1
    t1.put(b"other", b"1")
    db.delete(b"x")
    with pytest.raises(kvdb.ConflictError):
        t1.commit()


def test_scan_outside_changed_range_no_conflict(db):
    for k in (b"a", b"b", b"d", b"z"):
        db.put(k, b"1")
    t1 = begin(db)
    list(t1.scan(start=b"b", end=b"e"))
    t1.get(b"z")
    t1.put(b"count", b"2")
    db.put(b"e", b"at the exclusive end")
    db.put(b"a0", b"before start")
    db.put(b"y", b"between")
    t1.commit()
    assert db.get(b"count") == b"2"


def test_disjoint_concurrent_commits_succeed(db):
    db.put(b"a", b"0")
    db.put(b"b", b"0")
    t1, t2, t3 = begin(db), begin(db), begin(db)
    t1.put(b"a", b"%d" % (int(t1.get(b"a")) + 1))
    t2.put(b"b", b"%d" % (int(t2.get(b"b")) + 1))
    t3.put(b"c", b"new")
    t2.commit()
    t1.commit()
    t3.commit()
    assert dump(db) == {b"a": b"1", b"b": b"1", b"c": b"new"}


def test_blind_writes_do_not_conflict(db):
    # The spec's conflict rule is about reads and scans only; a blind write is neither.
    t1, t2 = begin(db), begin(db)
    t1.put(b"x", b"t1")
    t2.put(b"x", b"t2")
    t2.commit()
    t1.commit()
    assert db.get(b"x") == b"t1"  # the last committer wins


def test_read_only_never_conflicts(db):
    db.put(b"x", b"1")
    db.put(b"y", b"1")
    t1 = begin(db)
    assert t1.get(b"x") == b"1"
    list(t1.scan())
    db.put(b"x", b"2")
    db.put(b"w", b"new")
    assert t1.get(b"x") == b"1"
    t1.commit()  # a read-only transaction is serializable before the writer
    with db.transaction() as t2:
        t2.get(b"y")
        db.delete(b"y")
    assert db.get(b"y") is None


def test_conflict_only_against_commits_after_begin(db):
    db.put(b"x", b"1")
    t1 = begin(db)  # begins after the put: no conflict
    t1.get(b"x")
    t1.put(b"x", b"2")
    t1.commit()
    assert db.get(b"x") == b"2"


def test_rolled_back_writer_causes_no_conflict(db):
    db.put(b"x", b"1")
    t1, t2 = begin(db), begin(db)
    t1.get(b"x")
    t2.put(b"x", b"never")
    t2.rollback()
    t1.put(b"y", b"1")
    t1.commit()
    assert dump(db) == {b"x": b"1", b"y": b"1"}


def test_after_conflict_retry_succeeds(db):
    db.put(b"n", b"0")
    t1 = begin(db)
    t1.put(b"n", b"%d" % (int(t1.get(b"n")) + 1))
    db.put(b"n", b"10")
    with pytest.raises(kvdb.ConflictError):
        t1.commit()
    with db.transaction() as t1:
        t1.put(b"n", b"%d" % (int(t1.get(b"n")) + 1))
    assert db.get(b"n") == b"11"


# -- threads ------------------------------------------------------------------

def retry(db, fn, attempts=100000):
    for _ in range(attempts):
        try:
            with db.transaction() as tx:
                return fn(tx)
        except kvdb.ConflictError:
            continue
    raise AssertionError("transaction never committed")


def run_threads(n, target):
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


ACCOUNTS = 10
START = 100


def test_bank_transfers_preserve_total(db, long_mode):
    per_thread = 300 if long_mode else 60
    for a in range(ACCOUNTS):
        db.put(b"acct:%02d" % a, b"%d" % START)
    stop = threading.Event()
    bad_reads = []

    def auditor():
        while not stop.is_set():
            with db.snapshot() as snap:
                total = sum(int(v) for _, v in snap.scan(prefix=b"acct:"))
            if total != ACCOUNTS * START:
                bad_reads.append(total)

    aud = threading.Thread(target=auditor)
    aud.start()

    def worker(i):
        rng = random.Random(i)
        for _ in range(per_thread):
            src, dst = rng.sample(range(ACCOUNTS), 2)
            amount = rng.randint(1, 30)

            def transfer(tx):
                s = int(tx.get(b"acct:%02d" % src))
                d = int(tx.get(b"acct:%02d" % dst))
                if s >= amount:
                    tx.put(b"acct:%02d" % src, b"%d" % (s - amount))
                    tx.put(b"acct:%02d" % dst, b"%d" % (d + amount))
            retry(db, transfer)

    try:
        run_threads(8, worker)
    finally:
        stop.set()
        aud.join()
    balances = [int(v) for _, v in db.scan(prefix=b"acct:")]
    assert sum(balances) == ACCOUNTS * START
    assert min(balances) >= 0
    assert not bad_reads, f"a snapshot saw an inconsistent total: {bad_reads[:5]}"


def test_history_is_serializable(db, long_mode):
    """Each transfer also reads and bumps a global version; replaying the committed transfers
    in version order must reproduce every value each one read and the final balances."""
    per_thread = 100 if long_mode else 25
    for a in range(ACCOUNTS):
        db.put(b"acct:%02d" % a, b"%d" % START)
    db.put(b"version", b"0")
    log = []
    log_lock = threading.Lock()

    def worker(i):
        rng = random.Random(1000 + i)
        for _ in range(per_thread):
            src, dst = rng.sample(range(ACCOUNTS), 2)
            amount = rng.randint(1, 60)

            def transfer(tx):
                ver = int(tx.get(b"version"))
                s = int(tx.get(b"acct:%02d" % src))
                d = int(tx.get(b"acct:%02d" % dst))
                moved = amount if s >= amount else 0
                tx.put(b"acct:%02d" % src, b"%d" % (s - moved))
                tx.put(b"acct:%02d" % dst, b"%d" % (d + moved))
                tx.put(b"version", b"%d" % (ver + 1))
                return ver, src, dst, s, d, moved
            rec = retry(db, transfer)
            with log_lock:
                log.append(rec)

    run_threads(8, worker)
    log.sort()
    assert [r[0] for r in log] == list(range(len(log))), "two commits read the same version"
    bal = [START] * ACCOUNTS
    for ver, src, dst, s, d, moved in log:
        assert (bal[src], bal[dst]) == (s, d), f"commit {ver} read values no serial order explains"
        bal[src] -= moved
        bal[dst] += moved
    assert [int(v) for _, v in db.scan(prefix=b"acct:")] == bal
    assert int(db.get(b"version")) == len(log) == 8 * per_thread


def test_counters_with_retries(db, long_mode):
    per_thread = 200 if long_mode else 50
    counters = 3
    expected = [0] * counters
    plan = []
    for i in range(8):
        rng = random.Random(i)
        mine = [rng.randrange(counters) for _ in range(per_thread)]
        plan.append(mine)
        for c in mine:
            expected[c] += 1

    def worker(i):
        for c in plan[i]:
            def incr(tx):
                v = tx.get(b"counter:%d" % c, b"0")
                tx.put(b"counter:%d" % c, b"%d" % (int(v) + 1))
            retry(db, incr)

    run_threads(8, worker)
    assert [int(db.get(b"counter:%d" % c, b"0")) for c in range(counters)] == expected


def test_concurrent_disjoint_writers_and_readers(db_path, engine):
    with kvdb.open(db_path, engine=engine, sync="normal", page_size=512,
                   cache_size=32 << 10, checkpoint_size=16 << 10) as db:
        def worker(i):
            for j in range(150):
                with db.transaction() as tx:
                    tx.put(b"w%d:%04d" % (i, j), b"%d" % j * 20)
                    if j % 3 == 0:
                        tx.delete(b"w%d:%04d" % (i, j - 1))
                if j % 25 == 0:
                    with db.snapshot() as snap:
                        mine = [k for k, _ in snap.scan(prefix=b"w%d:" % i)]
                    assert mine[-1] == b"w%d:%04d" % (i, j)
        run_threads(6, worker)
        expected = {}
        for i in range(6):
            for j in range(150):
                expected[b"w%d:%04d" % (i, j)] = b"%d" % j * 20
            for j in range(0, 150, 3):
                expected.pop(b"w%d:%04d" % (i, j - 1), None)
        assert dump(db) == expected
        db.verify()
    with kvdb.open(db_path, engine=engine) as db:
        assert dump(db) == expected


# -- long-lived transactions and snapshots ----------------------------------------

def test_conflict_detected_after_many_later_commits(db):
    db.put(b"x", b"1")
    t1 = begin(db)
    assert t1.get(b"x") == b"1"
    for i in range(3000):
        db.put(b"noise%05d" % i, b"n")
    db.put(b"x", b"2")
    for i in range(3000):
        db.put(b"noise%05d" % i, b"m")
    t1.put(b"y", b"from t1")
    with pytest.raises(kvdb.ConflictError):
        t1.commit()
    assert db.get(b"y") is None


def test_range_conflict_detected_after_many_later_commits(db):
    t1 = begin(db)
    assert list(t1.scan(prefix=b"acct:")) == []
    for i in range(2000):
        db.put(b"noise%05d" % i, b"n")
    db.put(b"acct:new", b"1")
    for i in range(2000):
        db.delete(b"noise%05d" % i)
    t1.put(b"acct:summary", b"0")
    with pytest.raises(kvdb.ConflictError):
        t1.commit()


def test_P2_old_snapshot_survives_checkpoints_and_page_reuse(db_path, engine):
    """P2: pages the old version alone reaches are freed by the later commits but not reused
    while the snapshot and the transaction below them live (B4: nor changed in place)."""
    old = {b"k%04d" % i: value(i, 150) for i in range(1500)}
    with kvdb.open(db_path, engine=engine, page_size=512, cache_size=16 << 10,
                   checkpoint_size=4 << 10) as db:
        with db.transaction() as tx:
            for k, v in old.items():
                tx.put(k, v)
        with db.snapshot() as snap:
            t1 = begin(db)
            for round_ in range(4):
                with db.transaction() as tx:
                    for i in range(0, 1500, round_ + 1):
                        tx.put(b"k%04d" % i, value(100000 * (round_ + 1) + i, 150))
                    for i in range(round_, 1500, 7):
                        tx.delete(b"k%04d" % i)
                db.checkpoint()
                # the old version's pages were freed; a tiny cache forces re-reads from disk
                assert dump(snap) == old, f"snapshot changed after round {round_}"
                assert t1.get(b"k0700") == old[b"k0700"]
            assert dict(t1.scan()) == old
            t1.rollback()
        db.verify()


def test_transaction_unusable_after_commit_or_rollback(db):
    tx = begin(db)
    tx.put(b"a", b"1")
    tx.commit()
    with pytest.raises(kvdb.Error):
        tx.put(b"b", b"2")
    with pytest.raises(kvdb.Error):
        tx.commit()
    tx = begin(db)
    tx.rollback()
    with pytest.raises(kvdb.Error):
        tx.put(b"c", b"3")
    assert dump(db) == {b"a": b"1"}


def test_delete_result_is_a_read(db):
    """tx.delete() reports whether the key existed: that answer is a read, so a concurrent
    insert of the key must make the commit conflict (else the history is not serializable)."""
    t1 = begin(db)
    assert t1.delete(b"x") is False
    db.put(b"x", b"inserted meanwhile")
    with pytest.raises(kvdb.ConflictError):
        t1.commit()
    assert db.get(b"x") == b"inserted meanwhile"


@given(st.lists(st.tuples(st.sampled_from(["put", "delete", "discard", "scan", "rscan"]),
                          st.binary(min_size=1, max_size=3), st.binary(min_size=1, max_size=3)),
                max_size=120))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_scan_merges_own_writes_interleaved(tmp_path_factory, steps):
    """A transaction's scans see its own writes exactly, however writes and scans
    interleave (the sorted key list it keeps between scans must stay exact)."""
    path = tmp_path_factory.mktemp("txscan")
    with kvdb.open(str(path)) as db:
        base = {b"a": b"1", b"b\x00": b"2", b"m": b"3", b"zz": b"4"}
        for k, v in base.items():
            db.put(k, v)
        model = dict(base)
        with db.transaction() as tx:
            for op, k, k2 in steps:
                if op == "put":
                    tx.put(k, k2)
                    model[k] = k2
                elif op in ("delete", "discard"):
                    getattr(tx, op)(k)
                    model.pop(k, None)
                else:
                    lo, hi = min(k, k2), max(k, k2)
                    want = sorted((x, y) for x, y in model.items() if lo <= x < hi)
                    if op == "rscan":
                        want.reverse()
                    with tx.scan(start=lo, end=hi, reverse=op == "rscan") as it:
                        assert list(it) == want
            with tx.scan() as it:
                assert list(it) == sorted(model.items())
