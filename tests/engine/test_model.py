"""Model-based tests: Hypothesis drives a kvdb database and a dict side by side.

Tiny pages (512 B), a tiny cache and a tiny checkpoint threshold make splits, merges,
overflow pages, evictions and checkpoints happen all the time; keys come from a small
alphabet so overwrites and deletes of existing keys are common. A fake clock lets keys
written with a ttl expire between steps; the model drops them when the clock passes.

KvdbMachine works on a real directory; CrashMachine works on SimFS and adds power loss
(with sync="full" nothing committed may be lost) and crashes in the middle of a commit.
"""
import gc
import shutil
import tempfile
import weakref

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, precondition, rule

from tests import helpers
import kvdb
from tests.helpers import dump, model_scan, value

try:
    from kvdb._core.file import SimFS, SimulatedCrash
except ImportError:  # pragma: no cover - reported by the tests that need it
    SimFS = SimulatedCrash = None

DB_OPTIONS = dict(page_size=512, cache_size=16 << 10, checkpoint_size=4 << 10)
# A log threshold far above the dirty-page limit (64 pages here): dirty pages are written ahead of
# the checkpoint (P7), evicted, read back, changed in place again, freed and reused between checkpoints.
SPILL_OPTIONS = dict(page_size=512, cache_size=16 << 10, checkpoint_size=1 << 20)
# Tiny memtables, tables and levels: flushes, compactions and trivial moves happen all the time.
LSM_OPTIONS = dict(engine="lsm", cache_size=16 << 10, memtable_size=2 << 10, sstable_size=2 << 10,
                   level1_size=8 << 10)

# -- strategies ---------------------------------------------------------------

short_keys = st.binary(min_size=1, max_size=3).map(
    lambda b: bytes(b"ab\x00\xff"[x % 4] for x in b))
long_keys = st.tuples(short_keys, st.sampled_from([100, 300, 599])).map(
    lambda t: t[0] + b"L" * t[1])
keys = st.one_of(short_keys, short_keys, short_keys, long_keys)
bound = st.one_of(st.none(), short_keys)
values = st.tuples(st.integers(0, 1 << 16), st.sampled_from([0, 1, 5, 40, 200, 700, 1500, 3000])).map(
    lambda t: value(*t))

bulk = st.tuples(short_keys, st.integers(5, 120), st.integers(0, 1 << 16), st.sampled_from([0, 30, 200, 900]))


def bulk_items(base, n, seed, size):
    """n keys base + 3-digit index (deep trees: splits now, merges when deleted)."""
    return [(base + b"%03d" % i, value(seed + i, size)) for i in range(n)]


ttls = st.sampled_from([1, 2, 5, 0.5])


class FakeClock:
    def __init__(self):
        self.t = 1_700_000_000.0

    def __call__(self):
        return self.t

    def ms(self):
        return int(self.t * 1000)


tx_op = st.one_of(
    st.tuples(st.just("put"), keys, values),
    st.tuples(st.just("putttl"), keys, values, ttls),
    st.tuples(st.just("delete"), keys),
    st.tuples(st.just("discard"), keys),
    st.tuples(st.just("get"), keys),
    st.tuples(st.just("scan"), bound, bound, st.booleans()),
    st.tuples(st.just("prefix"), short_keys, st.booleans()),
)


def apply_tx_op(tx, view, op):
    """Run op on transaction tx and on the dict view of what it must see; check reads."""
    kind = op[0]
    if kind == "put":
        tx.put(op[1], op[2])
        view[op[1]] = op[2]
    elif kind == "putttl":
        tx.put(op[1], op[2], ttl=op[3])
        view[op[1]] = op[2]
    elif kind == "delete":
        assert tx.delete(op[1]) is (op[1] in view)
        view.pop(op[1], None)
    elif kind == "discard":
        assert tx.discard(op[1]) is None
        view.pop(op[1], None)
    elif kind == "get":
        assert tx.get(op[1]) == view.get(op[1])
        assert (op[1] in tx) is (op[1] in view)
    elif kind == "scan":
        _, start, end, rev = op
        assert list(tx.scan(start=start, end=end, reverse=rev)) == \
            model_scan(view, start=start, end=end, reverse=rev)
    elif kind == "prefix":
        assert list(tx.scan(prefix=op[1], reverse=op[2])) == model_scan(view, prefix=op[1], reverse=op[2])


def sweep_everything(db):
    """Run the expiry sweep until it has passed over every key from the first."""
    while not db._sweep_expired(1000)[2]:
        pass                        # to the end from where the last step stopped
    while not db._sweep_expired(1000)[2]:
        pass                        # and a whole pass from the first key


class KvdbMachine(RuleBasedStateMachine):
    snapshots = Bundle("snapshots")
    options = DB_OPTIONS

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="kvdb-model-")
        self.path = self.dir + "/db"
        self.clock = FakeClock()
        self.db = self._open()
        self.model = {}
        self.exp = {}               # key -> expiry (ms) of live keys that have one
        self.expired_keys = set()   # keys whose expiry has passed at some step
        self.open_snaps = []

    def _open(self):
        return kvdb.open(self.path, sync="normal", _clock=self.clock, **self.options)

    def _written(self, ops):
        """Track expiries after committed ops (each op's first two items: kind, key)."""
        for op in ops:
            if op[0] == "putttl":
                self.exp[op[1]] = self.clock.ms() + int(op[3] * 1000)
            elif op[0] in ("put", "delete", "discard"):
                self.exp.pop(op[1], None)

    def teardown(self):
        try:
            self.db.close()
        except Exception:  # noqa: BLE001 - a failing step has already been reported
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule()
    def full_compare(self):
        assert dump(self.db) == self.model

    # -- writes --
    @rule(k=keys, v=values)
    def put(self, k, v):
        if len(self.model) % 2:
            self.db[k] = v
        else:
            self.db.put(k, v)
        self.model[k] = v
        self.exp.pop(k, None)

    @rule(k=keys, v=values, ttl=ttls)
    def put_ttl(self, k, v, ttl):
        self.db.put(k, v, ttl=ttl)
        self.model[k] = v
        self._written([("putttl", k, v, ttl)])

    @rule(seconds=st.sampled_from([0.25, 0.5, 1, 2, 3]))
    def advance_clock(self, seconds):
        self.clock.t += seconds
        now = self.clock.ms()
        for k in [k for k, e in self.exp.items() if e <= now]:
            del self.exp[k]
            del self.model[k]
            self.expired_keys.add(k)

    @rule(k=keys)
    def ttl_and_persist(self, k):
        if k not in self.model:
            with pytest.raises(KeyError):
                self.db.ttl(k)
            assert self.db.persist(k) is False
            return
        if k in self.exp:
            assert self.db.ttl(k) == pytest.approx((self.exp[k] - self.clock.ms()) / 1000)
        else:
            assert self.db.ttl(k) is None
        assert self.db.persist(k) is (k in self.exp)
        self.exp.pop(k, None)

    def stored_expired(self):
        """Keys that may still be stored though expired: written with a ttl, and neither
        rewritten nor deleted since (an upper bound: the sweep may have deleted some)."""
        return self.expired_keys - set(self.model)

    @rule(limit=st.sampled_from([1, 3, 50]))
    def sweep(self, limit):
        self.db._sweep_expired(limit)
        counted = self.db.stats()["expiring_keys"]          # the LSM does not count them (None)
        assert counted is None or counted >= len(self.exp)

    @rule(k=keys)
    def delete(self, k):
        assert self.db.delete(k) is (k in self.model)
        self.model.pop(k, None)
        self.exp.pop(k, None)

    @rule(k=keys)
    def discard(self, k):
        """The blind delete (an LSM tombstone written without a read), present or not."""
        assert self.db.discard(k) is None
        self.model.pop(k, None)
        self.exp.pop(k, None)

    @rule(spec=bulk)
    def bulk_put(self, spec):
        with self.db.transaction() as tx:
            for k, v in bulk_items(*spec):
                tx.put(k, v)
                self.model[k] = v
                self.exp.pop(k, None)

    @rule(start=short_keys, end=st.one_of(st.none(), short_keys))
    def delete_range(self, start, end):
        """Delete every key in [start, end) in one transaction (leaves merge)."""
        with self.db.transaction() as tx:
            doomed = [k for k, _ in tx.scan(start=start, end=end)]
            for k in doomed:
                assert tx.delete(k) is True
        assert doomed == [k for k, _ in model_scan(self.model, start=start, end=end)]
        for k in doomed:
            del self.model[k]
            self.exp.pop(k, None)

    @rule(data=st.data())
    def delete_existing(self, data):
        if self.model:
            k = data.draw(st.sampled_from(sorted(self.model)))
            del self.db[k]
            del self.model[k]
            self.exp.pop(k, None)

    @rule(ops=st.lists(tx_op, min_size=1, max_size=12), how=st.sampled_from(
        ["commit", "with", "rollback", "exception"]))
    def transaction(self, ops, how):
        view = dict(self.model)

        class Abort(Exception):
            pass

        if how == "with" or how == "exception":
            try:
                with self.db.transaction() as tx:
                    for op in ops:
                        apply_tx_op(tx, view, op)
                    if how == "exception":
                        raise Abort()
            except Abort:
                pass
        else:
            tx = self.db.transaction().__enter__()
            for op in ops:
                apply_tx_op(tx, view, op)
            tx.commit() if how == "commit" else tx.rollback()
        if how in ("commit", "with"):
            self.model = view
            self._written(ops)

    # -- reads --
    @rule(k=keys)
    def get(self, k):
        assert self.db.get(k) == self.model.get(k)
        assert (k in self.db) is (k in self.model)
        if k in self.model:
            assert self.db[k] == self.model[k]
        else:
            with pytest.raises(KeyError):
                self.db[k]

    @rule(start=bound, end=bound, rev=st.booleans())
    def scan(self, start, end, rev):
        assert list(self.db.scan(start=start, end=end, reverse=rev)) == \
            model_scan(self.model, start=start, end=end, reverse=rev)

    @rule(prefix=short_keys, rev=st.booleans())
    def scan_prefix(self, prefix, rev):
        assert list(self.db.scan(prefix=prefix, reverse=rev)) == \
            model_scan(self.model, prefix=prefix, reverse=rev)

    # -- snapshots --
    @precondition(lambda self: len(self.open_snaps) < 3)
    @rule(target=snapshots)
    def take_snapshot(self):
        snap = self.db.snapshot().__enter__()
        entry = [snap, dict(self.model)]
        self.open_snaps.append(entry)
        return entry

    @rule(entry=snapshots, k=keys)
    def check_snapshot(self, entry, k):
        snap, frozen = entry
        if snap is None:
            return
        assert snap.get(k) == frozen.get(k)
        assert (k in snap) is (k in frozen)
        assert dump(snap) == frozen

    @rule(entry=consumes(snapshots))
    def close_snapshot(self, entry):
        snap, frozen = entry
        if snap is None:
            return
        assert dump(snap) == frozen
        snap.__exit__(None, None, None)
        self.open_snaps.remove(entry)
        with pytest.raises(kvdb.ClosedError):
            snap.get(b"a")

    # -- maintenance --
    @rule()
    def checkpoint(self):
        self.db.checkpoint()

    @rule(start=bound, end=bound)
    def compact(self, start, end):
        self.db.compact(start, end)
        assert dump(self.db) == self.model

    @rule()
    def verify(self):
        self.db.verify()
        # len() counts what is stored: every live key, and expired ones until the sweep deletes
        # them (the background sweep may run at any moment). After a whole sweep pass nothing
        # expired is left (the clock is the test's), so the count is the model's exactly.
        assert len(self.model) <= len(self.db) <= len(self.model) + len(self.stored_expired())
        sweep_everything(self.db)
        assert len(self.db) == len(self.model)

    @rule()
    def reopen(self):
        self.db.close()
        for entry in self.open_snaps:
            with pytest.raises(kvdb.ClosedError):
                entry[0].get(b"a")
            entry[0] = None
        self.open_snaps = []
        self.db = self._open()
        assert dump(self.db) == self.model


TestKvdbModel = KvdbMachine.TestCase


class SpillMachine(KvdbMachine):
    options = SPILL_OPTIONS


TestSpillModel = SpillMachine.TestCase
TestSpillModel.settings = settings(max_examples=200 if helpers.LONG else 50,
                                   stateful_step_count=80 if helpers.LONG else 50)


class LsmMachine(KvdbMachine):
    options = LSM_OPTIONS


TestLsmModel = LsmMachine.TestCase


# -- crashes ------------------------------------------------------------------

SIM_PATH = "/sim/db"


def run_until_crash(db, ops, with_checkpoint):
    """Commit ops as one transaction, maybe checkpoint, then put fillers until the armed crash
    fires. Returns (whether the transaction was acknowledged, fillers acknowledged)."""
    acked = False
    fillers = 0
    try:
        with db.transaction() as tx:
            for op in ops:
                tx.put(op[1], op[2]) if op[0] == "put" else tx.delete(op[1])
        acked = True
        if with_checkpoint:
            db.checkpoint()
        for _ in range(200):
            db.put(b"filler", b"x")
            fillers += 1
    except (SimulatedCrash, kvdb.Error):
        return acked, fillers
    raise AssertionError("200 sync='full' puts made no I/O call")


class CrashMachine(RuleBasedStateMachine):
    """Committed state survives power loss; an interrupted commit is all or nothing."""
    options = DB_OPTIONS

    def __init__(self):
        super().__init__()
        if SimFS is None:
            pytest.fail("kvdb._core.file.SimFS is missing")
        self.fs = SimFS()
        self.clock = FakeClock()    # never advanced: ttls written by transactions stay live
        self.db = self._open()
        self.model = {}

    def _open(self):
        return kvdb.open(SIM_PATH, _fs=self.fs, sync="full", _clock=self.clock, **self.options)

    def teardown(self):
        try:
            self.db.close()
        except Exception:  # noqa: BLE001 - a failing step has already been reported
            pass

    @rule()
    def full_compare(self):
        assert dump(self.db) == self.model
        self.db.verify()

    @rule(k=keys, v=values)
    def put(self, k, v):
        self.db.put(k, v)
        self.model[k] = v

    @rule(k=keys)
    def delete(self, k):
        if len(self.model) % 2:
            self.db.discard(k)
        else:
            assert self.db.delete(k) is (k in self.model)
        self.model.pop(k, None)

    @rule(spec=bulk)
    def bulk_put(self, spec):
        with self.db.transaction() as tx:
            for k, v in bulk_items(*spec):
                tx.put(k, v)
        self.model.update(bulk_items(*spec))

    @rule(prefix=short_keys)
    def delete_prefix(self, prefix):
        with self.db.transaction() as tx:
            for k, _ in tx.scan(prefix=prefix):
                tx.delete(k)
        for k in [k for k in self.model if k.startswith(prefix)]:
            del self.model[k]

    @rule(ops=st.lists(tx_op, min_size=1, max_size=10))
    def transaction(self, ops):
        view = dict(self.model)
        with self.db.transaction() as tx:
            for op in ops:
                apply_tx_op(tx, view, op)
        self.model = view

    @rule()
    def checkpoint(self):
        self.db.checkpoint()

    @rule(k=keys)
    def get(self, k):
        assert self.db.get(k) == self.model.get(k)

    def _crash_and_reopen(self, seed, candidates):
        # The abandoned open must be gone before the crash. A full gc.collect() per crash walked
        # every object of the test process (most of these tests' time in a full suite run), so
        # collect only when a reference cycle (an exception's traceback) keeps it alive.
        abandoned = weakref.ref(self.db)
        self.db = None
        if abandoned() is not None:
            gc.collect()
        self.fs.crash(seed)
        self.db = self._open()
        got = dump(self.db)
        assert got in candidates, "after the crash the database holds neither the committed state " \
            "nor the committed state plus the interrupted transaction"
        self.model = got
        self.db.verify()

    @rule(seed=st.integers(0, 1 << 32))
    def power_loss(self, seed):
        """Crash the live database at its next I/O (a put), then lose power."""
        self.fs.crash_after(1)
        try:
            self.db.put(b"a", b"interrupted")
        except (SimulatedCrash, kvdb.Error):
            pass
        else:
            raise AssertionError("a sync='full' put made no I/O call")
        self._crash_and_reopen(seed, [self.model, {**self.model, b"a": b"interrupted"}])

    @rule(ops=st.lists(st.one_of(st.tuples(st.just("put"), keys, values),
                                 st.tuples(st.just("delete"), keys)), min_size=1, max_size=8),
          after=st.integers(1, 60), seed=st.integers(0, 1 << 32), with_checkpoint=st.booleans())
    def crash_mid_commit(self, ops, after, seed, with_checkpoint):
        """Crash after `after` I/O calls into a transaction (and maybe a checkpoint)."""
        view = dict(self.model)
        for op in ops:
            if op[0] == "put":
                view[op[1]] = op[2]
            else:
                view.pop(op[1], None)
        self.fs.crash_after(after)
        acked, fillers = run_until_crash(self.db, ops, with_checkpoint)
        if fillers:
            self._crash_and_reopen(seed, [{**view, b"filler": b"x"}])
        elif acked:
            # The transaction returned: it must survive. The first filler put may or may not.
            self._crash_and_reopen(seed, [view, {**view, b"filler": b"x"}])
        else:
            self._crash_and_reopen(seed, [self.model, view])

    @rule()
    def reopen(self):
        self.db.close()
        self.db = self._open()
        assert dump(self.db) == self.model


TestCrashModel = CrashMachine.TestCase
# SimFS copies whole files at each crash: cap the long run (~10 minutes on 2 cores).
TestCrashModel.settings = settings(max_examples=200 if helpers.LONG else 100,
                                   stateful_step_count=80 if helpers.LONG else 50)


class SpillCrashMachine(CrashMachine):
    """Power loss and mid-commit crashes while pages written ahead of the checkpoint (P7), which
    no meta reaches, are in the file or only in the simulated page cache."""
    options = SPILL_OPTIONS


TestSpillCrashModel = SpillCrashMachine.TestCase
TestSpillCrashModel.settings = settings(max_examples=200 if helpers.LONG else 50,
                                        stateful_step_count=80 if helpers.LONG else 50)


class LsmCrashMachine(CrashMachine):
    """The same on the LSM engine: crashes land in memtable switches, flushes, compactions
    and manifest switches too."""
    options = LSM_OPTIONS

    @rule()
    def compact(self):
        self.db.compact()


TestLsmCrashModel = LsmCrashMachine.TestCase
TestLsmCrashModel.settings = settings(max_examples=200 if helpers.LONG else 60,
                                      stateful_step_count=80 if helpers.LONG else 50)
