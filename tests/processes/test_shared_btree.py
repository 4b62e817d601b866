"""Several processes on one B+Tree database (issue 15): real processes (multiprocessing, spawn)
commit, read and checkpoint the same directory. Invariants S1-S4 of docs/format/shm.md and P5
of docs/format/pages.md."""
import multiprocessing
import os
import signal
import time

import pytest

import kvdb
from tests import helpers
from tests.processes import workers

CTX = multiprocessing.get_context("spawn")


def test_counters_have_no_lost_updates(db_path):
    """4 processes increment shared counters in read-modify-write transactions with retries:
    every committed increment is in the final sums (serializable across processes)."""
    counters = 6
    rounds = 300 if not helpers.LONG else 2000
    kvdb.open(db_path).close()
    with CTX.Pool(4) as pool:
        results = pool.starmap(workers.counter_worker,
                               [(db_path, rounds, counters, seed, "normal", 4) for seed in range(4)])
    expected = {}
    for done, _ in results:
        for c, n in done.items():
            expected[c] = expected.get(c, 0) + n
    with kvdb.open(db_path) as db:
        got = {c: int(db.get(b"counter:%d" % c) or b"0") for c in range(counters)}
        db.verify()
    assert got == {c: expected.get(c, 0) for c in range(counters)}
    assert sum(got.values()) == 4 * rounds * 2
    assert sum(conflicts for _, conflicts in results) > 0   # they did contend


def test_bank_total_is_invariant_across_processes(db_path):
    accounts = 20
    with kvdb.open(db_path) as db:
        with db.transaction() as tx:
            for a in range(accounts):
                tx.put(b"acct:%03d" % a, b"1000")
    with CTX.Pool(4) as pool:
        results = pool.starmap(workers.bank_worker, [(db_path, 400, accounts, seed) for seed in range(4)])
    assert all(wrong == 0 for _, wrong in results), results
    with kvdb.open(db_path) as db:
        assert sum(int(v) for _, v in db.scan(prefix=b"acct:")) == accounts * 1000
        db.verify()


@pytest.mark.parametrize("checkpoint_every", [0, 50])
def test_O1_readers_never_see_partial_or_stale_commits(db_path, checkpoint_every):
    """Precisely: once a reader has received n from the writer (sent after the writer's commit
    of n returned), every snapshot, scan and get it starts shows all 8 keys of the group at one
    commit's value, and that value is >= n. With checkpoints every 50 commits the reader also
    rebuilds its view on the writer's checkpoints (rebases)."""
    kvdb.open(db_path).close()
    w_recv, w_send = CTX.Pipe(duplex=False)
    r_recv, r_send = CTX.Pipe(duplex=False)
    commits = 400 if not helpers.LONG else 3000
    reader = CTX.Process(target=workers.observing_reader, args=(db_path, w_recv, r_send))
    reader.start()
    try:
        assert r_recv.poll(60) and r_recv.recv() == "ready"
        workers.announcing_writer(db_path, commits, w_send, checkpoint_every)
        assert r_recv.poll(60), "reader did not finish"
        checks, violations = r_recv.recv()
    finally:
        reader.join(30)
        if reader.is_alive():
            reader.kill()
    assert violations == 0
    assert checks > 10


def test_O2_checkpoint_by_another_process_keeps_pinned_views(db_path):
    """An iterator and a snapshot opened before another process rewrites most keys and
    checkpoints several times keep reading their version (the old view: S2, P5)."""
    with kvdb.open(db_path, checkpoint_size=1 << 30) as db:
        with db.transaction() as tx:
            for i in range(3000):
                tx.put(b"k%05d" % i, b"old%05d" % i + b"." * 200)
        snap = db.snapshot()
        it = db.scan()
        first = [next(it) for _ in range(10)]
        parent, child = CTX.Pipe()
        p = CTX.Process(target=workers.handle_server, args=(db_path, child))
        p.start()
        try:
            for round_ in range(4):
                parent.send(("txn", [(b"k%05d" % i, b"new%d-%05d" % (round_, i)) for i in range(0, 3000, 2)]))
                assert parent.recv()[0] == "ok"
                parent.send(("txn", [(b"k%05d" % i, None) for i in range(1, 3000, 7)]))
                assert parent.recv()[0] == "ok"
                parent.send(("checkpoint",))
                assert parent.recv() == ("ok", None)
                assert db.get(b"k00000") == b"new%d-00000" % round_          # the newest, through a rebase
            rest = list(it)
            assert first + rest == [(b"k%05d" % i, b"old%05d" % i + b"." * 200) for i in range(3000)]
            assert snap.get(b"k00002") == b"old00002" + b"." * 200
            assert len(list(snap.scan())) == 3000
            snap.close()
            parent.send(("stop",))
            parent.recv()
        finally:
            p.join(10)
            if p.is_alive():
                p.kill()
        assert db.stats()["rebases"] >= 1
        db.verify()
        db.checkpoint()
        db.verify()
    with kvdb.open(db_path) as db:
        model = {b"k%05d" % i: b"new3-%05d" % i if i % 2 == 0 else b"old%05d" % i + b"." * 200
                 for i in range(3000) if i % 7 != 1}
        assert dict(db.scan()) == model
        db.verify()


def _kill_rounds(db_path, rounds, sync):
    """Writers commit without pause; one is killed with SIGKILL at a random moment, possibly
    holding the commit mutex or mid-commit; the survivors go on (S4) and every commit a writer
    acknowledged before its death is in the database."""
    kvdb.open(db_path).close()
    acked = {}
    rng = __import__("random").Random(1)
    procs = {}

    def start(tag):
        recv, send = CTX.Pipe(duplex=False)
        p = CTX.Process(target=workers.steady_committer, args=(db_path, send, tag, sync))
        p.start()
        procs[tag] = (p, recv)

    def drain(tag):
        _, recv = procs[tag]
        while recv.poll():
            try:
                acked[tag] = recv.recv()
            except EOFError:
                break

    try:
        for tag in (b"a", b"b", b"c"):
            start(tag)
        for r in range(rounds):
            tag = (b"a", b"b", b"c")[r % 3]
            deadline = time.monotonic() + 20
            while acked.get(tag, 0) < 1 and time.monotonic() < deadline:
                drain(tag)
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
            p, _ = procs[tag]
            os.kill(p.pid, signal.SIGKILL)
            p.join()
            drain(tag)
            for other in (b"a", b"b", b"c"):
                drain(other)
            before = dict(acked)
            # the others keep committing after the kill (a machine under load may be slow to show it)
            deadline = time.monotonic() + 30
            progressing = []
            while not progressing and time.monotonic() < deadline:
                time.sleep(0.01)
                for other in (b"a", b"b", b"c"):
                    if other != tag:
                        drain(other)
                progressing = [o for o in (b"a", b"b", b"c") if o != tag and acked.get(o, 0) > before.get(o, 0)]
            assert progressing, f"round {r}: no writer made progress in 30 s after a kill"
            with kvdb.open(db_path, readonly=True) as db:
                for t, n in acked.items():
                    assert int(db.get(b"%s:last" % t) or b"0") >= n, (r, t, n)
                    assert db.get(b"%s:%08d" % (t, n)) is not None
            start(tag)
            acked.pop(tag, None)
    finally:
        for p, _ in procs.values():
            if p.is_alive():
                p.kill()
            p.join()
    with kvdb.open(db_path) as db:
        db.verify()


def test_O3_kill9_of_a_committer_never_blocks_or_loses(db_path):
    _kill_rounds(db_path, 200 if helpers.LONG else 12, "normal")


@pytest.mark.long_only
def test_O3_kill9_of_a_full_sync_committer(db_path):
    _kill_rounds(db_path, 200, "full")


def test_P5_freed_pages_wait_for_every_opens_generation(db_path):
    """While another open still reads an older version (a snapshot taken before this open's
    checkpoints), the pages those checkpoints free are not reused: the file grows instead. Once
    it lets go and catches up, they are reused, and what it read stayed intact meanwhile."""
    with kvdb.open(db_path) as a, kvdb.open(db_path) as b:
        for i in range(2000):
            a.put(b"k%05d" % i, b"v0-%05d" % i)
        a.checkpoint()
        snap = b.snapshot()                      # b reads the version of this checkpoint
        reused_while_held = []
        for round_ in range(1, 4):
            with a.transaction() as tx:
                for i in range(2000):
                    tx.put(b"k%05d" % i, b"v%d-%05d" % (round_, i))
            a.checkpoint()
            st = a.stats()
            reused_while_held.append(st["free_pages"])
        assert reused_while_held == [0, 0, 0], reused_while_held      # every freed page waited
        pages_held = a.stats()["pages"]
        assert snap.get(b"k01999") == b"v0-01999"
        assert sum(1 for _ in snap.scan()) == 2000
        snap.close()
        assert b.get(b"k00000") == b"v3-00000"   # b catches up: its slot moves to the newest meta
        with a.transaction() as tx:
            for i in range(2000):
                tx.put(b"k%05d" % i, b"v4-%05d" % i)
        assert a.stats()["free_pages"] > 0 or a.stats()["pages"] == pages_held
        a.checkpoint()
        a.verify()
        b.verify()


def test_forked_child_opens_afresh_and_holds_none_of_the_parents_locks(db_path):
    """What pre-fork servers do: the parent opens the database, forks, and the child opens it
    again (the inherited handle raises ForkError). The child drops the descriptors it inherited,
    so once the parent closes, nothing of the parent's open lives on in the child: an exclusive
    open succeeds while the child still runs."""
    parent = kvdb.open(db_path)
    parent.put(b"from-parent", b"1")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            try:
                parent.get(b"from-parent")
            except kvdb.ForkError as e:
                if "open it again in the child" in str(e):
                    code = 2
            if code == 2:
                with kvdb.open(db_path) as mine:
                    if mine.get(b"from-parent") == b"1":
                        mine.put(b"from-child", b"1")
                        code = 0
                os.write(w, b"done")
                time.sleep(3)             # alive, with only the inherited (dropped) descriptors
        finally:
            os._exit(code)
    os.close(w)
    try:
        assert os.read(r, 16) == b"done"
        assert parent.get(b"from-child") == b"1"
        parent.close()
        with kvdb.open(db_path, _exclusive=True) as db:   # the child still runs: no lock of the parent's
            assert db.get(b"from-child") == b"1"            # open lives on in it
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0


def test_first_writable_open_after_readers_runs_recovery(db_path):
    """A database left with commits only in its log (its writer was killed) is opened read-only
    first, which replays them in memory and writes nothing; the first writable open to join then
    runs recovery's writes (checkpoint, fresh log), and the reader goes on following it."""
    recv, send = CTX.Pipe(duplex=False)
    p = CTX.Process(target=workers.steady_committer, args=(db_path, send, b"w", "full"))
    p.start()
    acked = 0
    deadline = time.monotonic() + 30
    while acked < 50 and time.monotonic() < deadline:
        if recv.poll(0.1):
            acked = recv.recv()
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    while recv.poll():
        try:
            acked = recv.recv()
        except EOFError:
            break
    assert acked >= 50
    log_size = os.path.getsize(os.path.join(db_path, "wal-000001.log"))
    with kvdb.open(db_path, readonly=True) as reader:
        assert int(reader.get(b"w:last")) >= acked
        assert os.path.getsize(os.path.join(db_path, "wal-000001.log")) == log_size   # wrote nothing
        with kvdb.open(db_path) as writer:
            assert int(writer.get(b"w:last")) >= acked
            assert writer.stats()["checkpoints"] >= 1          # recovery's checkpoint ran here
            writer.put(b"after", b"1")
            writer.verify()
        assert reader.get(b"after") == b"1"
        assert int(reader.get(b"w:last")) >= acked


def test_shm_slots_fit_their_page_and_run_out_with_a_clear_error(tmp_path):
    """Every open's slot lies inside the mapped page (a slot count that overflowed it read the
    next mapping: closing one database after another closed crashed the process), and the
    open after the last free slot gets LockedError, not a slot outside the page."""
    from kvdb._core.btree.shared import SLOT_CAPACITY
    first, second = kvdb.open(str(tmp_path / "a")), kvdb.open(str(tmp_path / "b"))
    first.put(b"k", b"1")
    second.put(b"k", b"2")
    first.close()                       # its page is unmapped; the second's slots must not reach it
    assert second.get(b"k") == b"2"
    second.close()

    path = str(tmp_path / "many")
    opens = []
    try:
        for _ in range(SLOT_CAPACITY):
            opens.append(kvdb.open(path))
        with pytest.raises(kvdb.LockedError, match="opens of this database are live"):
            kvdb.open(path)
        opens[-1].put(b"last", b"slot")
        assert all(db.get(b"last") == b"slot" for db in opens)
    finally:
        for db in reversed(opens):
            db.close()


def test_commit_applies_others_commits_after_the_commit_mutex(db_path):
    """A commit that finds other opens' commits unapplied reads them under the commit mutex,
    validates against their keys and applies them with its own after releasing it
    (Engine.read_published): the open then reads exactly what catching up first would give, and
    a commit that fails in between (a conflict) still applies them."""
    a = kvdb.open(db_path, sync="normal")
    b = kvdb.open(db_path, sync="normal")
    model = {}
    try:
        for i in range(50):
            a.put(b"a%03d" % i, b"x%d" % i)
            model[b"a%03d" % i] = b"x%d" % i
        caught = b.stats()["commits_caught_up"]
        b.put(b"b", b"1")                      # finds a's 50 commits unapplied
        model[b"b"] = b"1"
        assert b.stats()["commits_caught_up"] == caught + 50
        assert dict(b.scan()) == model

        tx = b.transaction()
        assert tx.get(b"a000") == b"x0"
        tx.put(b"c", b"2")
        a.put(b"a000", b"changed")
        a.delete(b"a001")
        model[b"a000"] = b"changed"
        del model[b"a001"]
        with pytest.raises(kvdb.ConflictError):
            tx.commit()                        # reads a's two commits, then fails validation
        assert b.get(b"a000") == b"changed" and b.get(b"a001") is None and b.get(b"c") is None
        assert dict(b.scan()) == model
        b.verify()
        b.put(b"d", b"3")
        model[b"d"] = b"3"
        assert a.get(b"d") == b"3" and dict(a.scan()) == model
    finally:
        a.close()
        b.close()
    with kvdb.open(db_path) as db:
        assert dict(db.scan()) == model


def test_rebase_after_another_opens_checkpoint_is_done_without_the_commit_mutex(db_path):
    """A commit or checkpoint that finds another open's newer checkpoint rebuilds its view (a
    rebase replays the log after the new meta, which can take long) without holding the commit
    mutex, so that the other opens' commits do not queue behind it; the rebased view reads and
    commits exactly what catching up under the mutex gave."""
    a = kvdb.open(db_path, sync="normal")
    b = kvdb.open(db_path, sync="normal")
    model = {}
    try:
        for round_ in range(3):
            for i in range(200):
                key, value = b"k%04d" % i, b"a%d-%d" % (round_, i)
                a.put(key, value)
                model[key] = value
            a.checkpoint()                     # a new meta generation: b's view is on the old one
            before = b.stats()
            if round_ == 1:
                b.checkpoint()                 # the checkpoint path rebases first too
            else:
                b.put(b"b%d" % round_, b"1")   # the commit path
                model[b"b%d" % round_] = b"1"
            after = b.stats()
            assert after["rebases"] == before["rebases"] + 1
            assert after["rebases_under_commit_mutex"] == 0
            assert dict(b.scan()) == model
            b.verify()
        assert dict(a.scan()) == model
    finally:
        a.close()
        b.close()
    with kvdb.open(db_path) as db:
        assert dict(db.scan()) == model


def test_catching_up_leaves_nothing_for_the_cyclic_collector(db_path):
    """The records of other opens' commits, decoded to catch up, and the keys of each kept for
    validating open transactions (Database.recent) hold only bytes and ints: they are kept off
    the cyclic collector's watch (kvdb/_core/untracked.pxd), which would otherwise run full
    collections of the heap every few thousand foreign commits."""
    import gc
    a = kvdb.open(db_path, sync="normal")
    b = kvdb.open(db_path, sync="normal")
    try:
        tx = b.transaction()                   # an open transaction: b keeps others' keys
        assert tx.get(b"k0000") is None
        for i in range(2000):
            a.put(b"k%04d" % i, b"v%d" % i)
        gc.collect()
        gc.disable()
        try:
            before = len(gc.get_objects())
            b.put(b"mine", b"1")               # reads, validates against and applies a's 2000
            grown = len(gc.get_objects()) - before
        finally:
            gc.enable()
        assert b.stats()["commits_caught_up"] >= 2000
        assert grown < 200, f"{grown} new objects tracked by the collector after catching up 2000 commits"
        assert b.get(b"k1999") == b"v1999" and tx.get(b"k1999") is None
        tx.rollback()
    finally:
        a.close()
        b.close()


def test_others_commits_read_for_a_commit_still_conflict_every_open_transaction(db_path):
    """A commit that reads other opens' commits validates its own transaction against them
    directly, and keeps their keys for validating later only while another transaction is
    open: each open transaction that read (or scanned over) a key another open changed gets
    ConflictError, whichever of them commits first."""
    a = kvdb.open(db_path, sync="normal")
    b = kvdb.open(db_path, sync="normal")
    try:
        a.put(b"x", b"0")
        a.put(b"r5", b"0")
        alone = b.transaction()                # the only open transaction in b
        assert alone.get(b"x") == b"0"
        alone.put(b"mine", b"1")
        a.put(b"x", b"1")
        with pytest.raises(kvdb.ConflictError):
            alone.commit()                     # a's commit is validated against without db.recent

        # Alone again, one at a time: many reads (checked by set), a scanned range, and reads
        # that another open's commits miss.
        def alone_across(reads, scan_range, other_key):
            t = b.transaction()
            for k in reads:
                t.get(k)
            if scan_range is not None:
                list(t.scan(start=scan_range[0], end=scan_range[1]))
            t.put(b"w", b"0")
            a.put(other_key, b"1")
            a.put(b"unread", b"1")
            t.commit()

        with pytest.raises(kvdb.ConflictError):
            alone_across([b"m%02d" % i for i in range(20)], None, b"m13")
        with pytest.raises(kvdb.ConflictError):
            alone_across([], (b"s0", b"s9"), b"s4")
        with pytest.raises(kvdb.ConflictError):
            alone_across([], (None, b"c"), b"b")          # unbounded below
        alone_across([b"elsewhere"], (b"s5", b"s9"), b"s4")   # nothing it read changed: commits
        assert b.get(b"w") == b"0"

        first, second, ranged = b.transaction(), b.transaction(), b.transaction()
        assert first.get(b"y") is None and second.get(b"x") == b"1"
        assert list(ranged.scan(start=b"r0", end=b"r9")) == [(b"r5", b"0")]
        for t in (first, second, ranged):
            t.put(b"w", b"1")
        a.put(b"x", b"2")                      # read by `second`
        a.put(b"r7", b"1")                     # inside `ranged`'s scan
        first.commit()                         # reads a's two commits: others are open, so kept
        with pytest.raises(kvdb.ConflictError):
            second.commit()
        with pytest.raises(kvdb.ConflictError):
            ranged.commit()
        assert b.get(b"x") == b"2" and b.get(b"w") == b"1" and b.get(b"mine") is None
    finally:
        a.close()
        b.close()
