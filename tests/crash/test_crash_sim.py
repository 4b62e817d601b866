"""Crash sweeps on SimFS with sync="full".

A seeded workload of transactions (puts, deletes, overwrites of shared keys, explicit
checkpoints, a final close) is stopped at I/O call k by crash_after(k) for many k, then power
is lost with fs.crash(seed) and the database reopened. It must hold exactly the state after the
acknowledged transactions, or that plus the one in flight (never part of a transaction), and
verify() must pass. Default mode steps through the crash points; --long tries every one.
"""
import random
import weakref

import pytest

import kvdb
from tests.helpers import apply_ops, drop_abandoned, dump, value

try:
    from kvdb._core.file import SimFS, SimulatedCrash
except ImportError:  # pragma: no cover
    SimFS = SimulatedCrash = None

PATH = "/sim/db"
CONFIGS = {
    "small-pages": dict(page_size=512, cache_size=16 << 10, checkpoint_size=4 << 10),
    "default-pages": dict(page_size=4096, cache_size=64 << 10, checkpoint_size=32 << 10),
    # LSM with tiny memtables and tables: crashes land in memtable switches, flushes,
    # compactions and manifest switches
    "lsm-tiny": dict(engine="lsm", cache_size=64 << 10, memtable_size=4 << 10, sstable_size=4 << 10,
                     level1_size=16 << 10),
}


@pytest.fixture(autouse=True)
def _need_simfs():
    if SimFS is None:
        pytest.fail("kvdb._core.file.SimFS is missing")


def make_workload(seed, n_txns=30):
    """A list of steps: ("tx", ops) or ("checkpoint",). Deterministic in seed."""
    rng = random.Random(seed)
    steps = []
    for i in range(n_txns):
        ops = [("put", b"m:%03d" % i, b"%d" % i)]
        for j in range(rng.randint(1, 4)):
            size = rng.choice([10, 300, 1500, 5000])
            ops.append(("put", b"t:%03d:%d" % (i, j), value(seed * 100000 + i * 10 + j, size)))
        if rng.random() < 0.5:
            ops.append(("put", b"shared:%d" % rng.randrange(4), b"%d" % i * rng.choice([1, 200])))
        if i and rng.random() < 0.4:
            ops.append(("delete", b"t:%03d:0" % rng.randrange(i)))
        if i and rng.random() < 0.2:
            ops.append(("delete", b"m:%03d" % rng.randrange(i)))
        steps.append(("tx", ops))
        if rng.random() < 0.15:
            steps.append(("checkpoint",))
    return steps



class Run:
    """One execution of a workload on fs, recording what was acknowledged."""

    def __init__(self, fs, steps, options):
        self.fs, self.steps, self.options = fs, steps, options
        self.acked = []            # ops of the acknowledged transactions, in order
        self.in_flight = None      # ops of the transaction whose commit was interrupted
        self.crashed = False
        self.opened = None         # a weak reference to the open execute() made, once made

    def execute(self):
        try:
            db = kvdb.open(PATH, _fs=self.fs, sync="full", **self.options)
            self.opened = weakref.ref(db)
            for step in self.steps:
                if step[0] == "checkpoint":
                    db.checkpoint()
                    continue
                ops = step[1]
                self.in_flight = ops
                with db.transaction() as tx:
                    for op in ops:
                        tx.put(op[1], op[2]) if op[0] == "put" else tx.delete(op[1])
                self.in_flight = None
                self.acked.append(ops)
            db.close()
        except (SimulatedCrash, kvdb.Error):
            self.crashed = True
        return self

    def candidates(self):
        model = {}
        for ops in self.acked:
            apply_ops(model, ops)
        result = [model]
        if self.in_flight is not None:
            plus = dict(model)
            apply_ops(plus, self.in_flight)
            result.append(plus)
        return result


def measure_io(steps, options):
    fs = SimFS()
    before = fs.io_calls
    run = Run(fs, steps, options).execute()
    assert not run.crashed
    return fs.io_calls - before


def check_recovered(fs, run, seed, where):
    drop_abandoned(run.opened)
    fs.crash(seed)
    db = kvdb.open(PATH, _fs=fs, sync="full", **run.options)
    try:
        got = dump(db)
        cands = run.candidates()
        if got not in cands:
            lost = [k for k in cands[0] if k not in got or got[k] != cands[0][k]]
            extra = [k for k in got if k not in cands[-1]]
            pytest.fail(f"{where}: recovered state is not the acknowledged one "
                        f"({len(run.acked)} transactions acknowledged, in flight: "
                        f"{run.in_flight is not None}); missing/wrong keys {lost[:5]}, "
                        f"unexpected keys {extra[:5]}")
        try:
            db.verify()
        except kvdb.CorruptionError as e:
            pytest.fail(f"{where}: verify() failed after recovery: {e}")
        # the recovered database keeps working
        db.put(b"after-crash", b"ok")
        assert db.get(b"after-crash") == b"ok"
    finally:
        db.close()
    return got


def crash_points(total, long_mode, target=100):
    if long_mode:
        return list(range(1, total + 2))
    step = max(1, total // target)
    pts = set(range(1, total + 2, step))
    pts.update({1, 2, 3, total - 1, total, total + 1})  # open and close edges
    return sorted(p for p in pts if p >= 1)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_crash_sweep(config, long_mode):
    options = CONFIGS[config]
    base = sorted(CONFIGS).index(config) + 1
    workloads = [base, base + 10, base + 20] if long_mode else [base]
    seeds = 4 if long_mode else 2
    crashed = 0
    for wseed in workloads:
        steps = make_workload(wseed, n_txns=60 if long_mode else 30)
        total = measure_io(steps, options)
        for k in crash_points(total, long_mode):
            for s in range(seeds):
                seed = k * 1000 + s
                fs = SimFS()
                fs.crash_after(k)
                run = Run(fs, steps, options).execute()
                crashed += run.crashed
                check_recovered(fs, run, seed, f"config={config} workload_seed={wseed} "
                                                f"crash_after={k} crash_seed={seed}")
    assert crashed, "no crash point was reached: the sweep tested nothing"


def commit_all(db, run):
    for ops in run.steps:
        with db.transaction() as tx:
            for op in ops:
                tx.put(op[1], op[2]) if op[0] == "put" else tx.delete(op[1])
        run.acked.append(ops)


def finish(db, phase):
    if phase == "checkpoint":
        db.checkpoint()
    db.close()


@pytest.mark.parametrize("phase", ["checkpoint", "close"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_W3_crash_during_checkpoint_and_close(config, phase, long_mode):
    """Every I/O call of an explicit checkpoint (then close), or of close() alone, as a crash point.
    W3: the log is reset only once the new meta is durable, so no crash point loses a commit;
    P1 likewise: the pages the old meta reaches are intact until then."""
    # only explicit checkpoints: no WAL-size or dirty-page trigger, so the I/O count is exact
    options = dict(CONFIGS[config], checkpoint_size=1 << 30, cache_size=256 << 20)
    if options.get("engine") == "lsm":
        options["memtable_size"] = 1 << 30     # likewise no background flush: checkpoint flushes
    txs = [step[1] for step in make_workload(7, n_txns=12) if step[0] == "tx"]
    fs = SimFS()
    db = kvdb.open(PATH, _fs=fs, sync="full", **options)
    commit_all(db, Run(fs, txs, options))
    before = fs.io_calls
    finish(db, phase)
    n = fs.io_calls - before
    assert n > 0, f"{phase} made no I/O"
    ks = range(1, n + 1) if long_mode or n <= 60 else sorted(set(range(1, n + 1, n // 60 + 1)) | {n})
    for k in ks:
        for seed in range(3 if long_mode else 1):
            fs = SimFS()
            run = Run(fs, txs, options)
            db = kvdb.open(PATH, _fs=fs, sync="full", **options)
            commit_all(db, run)
            fs.crash_after(k)
            try:
                finish(db, phase)
            except (SimulatedCrash, kvdb.Error):
                run.crashed = True
            del db
            assert run.crashed, f"{phase}: crash_after={k} of {n} I/O calls did not fire"
            check_recovered(fs, run, k * 10 + seed, f"config={config} phase={phase} "
                                                    f"crash_after={k} crash_seed={k * 10 + seed}")


@pytest.mark.parametrize("config", ["small-pages", "lsm-tiny"])
def test_crash_during_recovery(config, long_mode):
    """A crash while reopening after a crash: the second recovery must still be right."""
    options = CONFIGS[config]
    steps = make_workload(11, n_txns=20)
    total = measure_io(steps, options)
    first_points = [total // 3, total // 2, (3 * total) // 4]
    for k in first_points:
        # how many I/O calls recovery makes from this state
        probe = SimFS()
        probe.crash_after(k)
        drop_abandoned(Run(probe, steps, options).execute().opened)
        probe.crash(k)
        before = probe.io_calls
        kvdb.open(PATH, _fs=probe, sync="full", **options).close()
        recovery_io = probe.io_calls - before
        js = range(1, recovery_io + 1) if long_mode else \
            sorted(set(range(1, recovery_io + 1, max(1, recovery_io // 15))))
        for j in js:
            fs = SimFS()
            fs.crash_after(k)
            run = Run(fs, steps, options).execute()
            drop_abandoned(run.opened)
            fs.crash(k)
            fs.crash_after(j)
            try:
                kvdb.open(PATH, _fs=fs, sync="full", **options).close()
            except (SimulatedCrash, kvdb.Error):
                pass
            check_recovered(fs, run, k + j, f"crash_after={k} crash_seed={k}, then during "
                                            f"recovery crash_after={j} crash_seed={k + j}")


@pytest.mark.parametrize("config", ["small-pages", "lsm-tiny"])
def test_repeated_crashes_accumulate_nothing_wrong(config, long_mode):
    """Crash, recover, write more, crash again, many times on one fs."""
    options = CONFIGS[config]
    rng = random.Random(99)
    fs = SimFS()
    model = {}
    rounds = 60 if long_mode else 15
    for r in range(rounds):
        db = kvdb.open(PATH, _fs=fs, sync="full", **options)
        assert dump(db) == model, f"round {r}: state after recovery differs"
        db.verify()
        steps = make_workload(1000 + r, n_txns=rng.randint(1, 6))
        run = Run(fs, steps, options)
        fs.crash_after(rng.randint(1, 400))
        fillers = 0
        try:
            for step in steps:
                if step[0] == "checkpoint":
                    db.checkpoint()
                    continue
                run.in_flight = step[1]
                with db.transaction() as tx:
                    for op in step[1]:
                        tx.put(op[1], op[2]) if op[0] == "put" else tx.delete(op[1])
                run.in_flight = None
                run.acked.append(step[1])
            for _ in range(1000):  # run into the crash point
                db.put(b"filler", b"%d" % r)
                fillers += 1
        except (SimulatedCrash, kvdb.Error):
            pass
        abandoned = weakref.ref(db)
        del db
        drop_abandoned(abandoned)
        fs.crash(r)
        db = kvdb.open(PATH, _fs=fs, sync="full", **options)
        got = dump(db)
        filler = got.pop(b"filler", None)
        if fillers:
            assert filler == b"%d" % r, f"round {r}: an acknowledged put was lost"
        else:  # the first filler put was interrupted (or never started): either outcome
            assert filler in (None, b"%d" % r)
        expected = dict(model)
        for ops in run.acked:
            apply_ops(expected, ops)
        cands = [expected]
        if run.in_flight is not None:
            plus = dict(expected)
            apply_ops(plus, run.in_flight)
            cands.append(plus)
        assert got in cands, f"round {r}: recovered state is wrong (crash seed {r})"
        db.delete(b"filler")
        db.close()
        model = got


def test_W1_concurrent_committers_crash(long_mode):
    """W1 under group commit: several threads commit at once; after a crash at any point every
    acknowledged commit of every thread is present, and each thread's commits form a prefix."""
    import threading
    options = dict(page_size=512, cache_size=32 << 10, checkpoint_size=8 << 10)
    nthreads, per_thread = 4, 15
    points = range(5, 400, 3 if long_mode else 23)
    for k in points:
        fs = SimFS()
        db = kvdb.open(PATH, _fs=fs, sync="full", **options)
        acked = [0] * nthreads
        errors = []

        def worker(t):
            try:
                for n in range(per_thread):
                    with db.transaction() as tx:
                        tx.put(b"t%d:%03d" % (t, n), value(t * 1000 + n, 50 + 400 * (n % 3)))
                        tx.put(b"last:%d" % t, b"%d" % n)
                    acked[t] = n + 1
            except (SimulatedCrash, kvdb.Error):
                pass
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        fs.crash_after(k)
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        if all(a == per_thread for a in acked):
            try:
                db.close()
            except (SimulatedCrash, kvdb.Error):
                pass
        abandoned = weakref.ref(db)
        del db
        drop_abandoned(abandoned)
        fs.crash(k)
        db = kvdb.open(PATH, _fs=fs, sync="full", **options)
        try:
            got = dump(db)
            for t in range(nthreads):
                ns = sorted(int(key.split(b":")[1]) for key in got if key.startswith(b"t%d:" % t))
                context = f"crash_after={k} crash_seed={k} thread {t}"
                assert ns == list(range(len(ns))), f"{context}: commits {ns} are not a prefix"
                assert len(ns) >= acked[t], f"{context}: {acked[t]} acknowledged, {len(ns)} present"
                assert len(ns) <= acked[t] + 1, f"{context}: more than the one commit in flight"
                for n in ns:
                    assert got[b"t%d:%03d" % (t, n)] == value(t * 1000 + n, 50 + 400 * (n % 3))
                if ns:
                    assert got[b"last:%d" % t] == b"%d" % ns[-1], f"{context}: half a transaction"
            db.verify()
        finally:
            db.close()


def test_a_thread_of_the_crashed_process_does_no_io_after_the_crash():
    """Power loss ends every thread: a thread that did I/O (or began, thread_started) before
    crash() gets SimulatedCrash from every later call, so a background thread caught in a table
    build cannot write into the revived file system; the thread that calls crash() and threads
    begun after it work."""
    import threading
    fs = SimFS()
    fs.makedirs("/sim/x")
    seen = {}
    gate, done = threading.Event(), threading.Event()

    def old_thread():
        fs.open("/sim/x/a", True).close()            # its first I/O: this power cycle
        gate.wait(10)
        try:
            fs.open("/sim/x/b", True)
            seen["old"] = "wrote"
        except SimulatedCrash:
            seen["old"] = "refused"
        done.set()

    def started_thread():
        fs.thread_started()                          # began in this cycle, no I/O yet
        gate.wait(10)
        try:
            fs.remove("/sim/x/a")
            seen["started"] = "wrote"
        except SimulatedCrash:
            seen["started"] = "refused"

    threads = [threading.Thread(target=old_thread), threading.Thread(target=started_thread)]
    for t in threads:
        t.start()
    fs.sync_dir("/sim/x")                            # /sim/x/a survives the crash
    fs.crash(0)
    gate.set()
    for t in threads:
        t.join(10)
    assert seen == {"old": "refused", "started": "refused"}
    assert fs.exists("/sim/x/a") and not fs.exists("/sim/x/b")
    fs.open("/sim/x/c", True).close()                # the thread that called crash() goes on
    new = []
    t = threading.Thread(target=lambda: new.append(fs.open("/sim/x/d", True)))
    t.start()
    t.join(10)
    assert new and fs.exists("/sim/x/d")             # a thread begun after the crash works
