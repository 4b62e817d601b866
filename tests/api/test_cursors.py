"""Cursors and scans with limits (issue 16, item 4): seek/seek_first/seek_last/next/prev against
a sorted-list model with Hypothesis, on both engines, on a database, a snapshot, a transaction
and a namespace; a cursor reads the version it started with across concurrent commits."""
import bisect

import pytest
from hypothesis import given, settings, strategies as st

import kvdb

KEYS = st.lists(st.sampled_from([b"a", b"b", b"c", b"\x00", b"\xff"]), min_size=1, max_size=3).map(b"".join)
MOVES = st.lists(st.one_of(st.tuples(st.just("seek"), KEYS), st.just(("next",)), st.just(("prev",)),
                           st.just(("first",)), st.just(("last",))), max_size=25)


class ListCursor:
    """The model: a position in a sorted list (None: not positioned)."""

    def __init__(self, keys):
        self.keys, self.i = sorted(keys), None

    def move(self, op):
        n = len(self.keys)
        if op[0] == "seek":
            self.i = bisect.bisect_left(self.keys, op[1])
        elif op[0] == "first":
            self.i = 0
        elif op[0] == "last":
            self.i = n - 1
        elif op[0] == "next":
            self.i = 0 if self.i is None else self.i + 1
        else:
            self.i = n - 1 if self.i is None else self.i - 1
        if not 0 <= self.i < n:
            self.i = None
        return self.i is not None

    @property
    def key(self):
        return None if self.i is None else self.keys[self.i]


def apply(cursor, op):
    if op[0] == "seek":
        return cursor.seek(op[1])
    return {"next": cursor.next, "prev": cursor.prev, "first": cursor.seek_first, "last": cursor.seek_last}[op[0]]()


@pytest.fixture(scope="module", params=["btree", "lsm"])
def shared(request, tmp_path_factory):
    db = kvdb.open(str(tmp_path_factory.mktemp("cursors") / "db"), engine=request.param, sync="off")
    yield db
    db.close()


@settings(max_examples=80, deadline=None)
@given(keys=st.sets(KEYS, max_size=12), moves=MOVES, kind=st.sampled_from(["db", "snapshot", "tx", "namespace"]))
def test_cursor_moves_like_a_position_in_a_sorted_list(shared, keys, moves, kind):
    shared.clear()
    target = shared.namespace("c") if kind == "namespace" else shared
    target.clear()
    target.put_many((k, k * 2) for k in keys)
    holder = shared.snapshot() if kind == "snapshot" else shared.transaction() if kind == "tx" else None
    handle = holder if holder is not None else target
    model = ListCursor(keys)
    with handle.cursor() as c:
        assert not c.valid and c.key is None
        for op in moves:
            assert apply(c, op) is model.move(op), op
            assert c.valid is (model.key is not None)
            assert c.key == model.key
            assert c.value == (None if model.key is None else model.key * 2)
    if holder is not None:
        holder.close() if kind == "snapshot" else holder.rollback()


def test_a_cursor_reads_its_snapshot_across_commits(shared):
    shared.clear()
    shared.put_many([(b"a", b"1"), (b"c", b"3")])
    with shared.cursor() as c:
        assert c.seek_first() and c.key == b"a"
        shared[b"b"] = b"2"                               # committed after the cursor began
        del shared[b"c"]
        assert c.next() and (c.key, c.value) == (b"c", b"3")
        assert c.prev() and c.key == b"a"
        assert list(c) == [(b"a", b"1"), (b"c", b"3")]
    assert list(shared.keys()) == [b"a", b"b"]
    assert shared.stats()["snapshots"] == 0              # the cursor let its snapshot go


def test_a_transactions_cursor_sees_its_own_writes(shared):
    shared.clear()
    shared.put_many([(b"a", b"1"), (b"c", b"3")])
    with shared.transaction() as tx:
        tx[b"b"] = b"2"
        tx.discard(b"c")
        with tx.cursor() as c:
            assert c.seek_last() and c.key == b"b"
            assert [k for k, _ in c] == [b"b"]
            assert c.seek_first() and [k for k, _ in c] == [b"a", b"b"]


def test_scan_limit_and_keys_or_values_only(shared):
    shared.clear()
    shared.put_many((b"k%d" % i, b"v%d" % i) for i in range(10))
    assert list(shared.scan(limit=3)) == [(b"k0", b"v0"), (b"k1", b"v1"), (b"k2", b"v2")]
    assert list(shared.scan(limit=2, reverse=True, keys_only=True)) == [b"k9", b"k8"]
    assert list(shared.scan(start=b"k5", values_only=True)) == [b"v%d" % i for i in range(5, 10)]
    assert list(shared.scan(limit=0)) == [] and shared.stats()["snapshots"] == 0
    for bad, error in [(dict(limit=-1), ValueError), (dict(limit="3"), TypeError), (dict(limit=True), TypeError),
                       (dict(keys_only=True, values_only=True), ValueError)]:
        with pytest.raises(error):
            shared.scan(**bad)
    assert shared.stats()["snapshots"] == 0


def test_a_closed_cursor_or_database_says_so(tmp_path):
    db = kvdb.open(str(tmp_path / "db"))
    db[b"a"] = b"1"
    c = db.cursor()
    c.seek_first()
    c.close()
    for call in (c.next, c.prev, c.seek_first, c.seek_last, lambda: c.seek(b"a"), lambda: c.key, lambda: c.value):
        with pytest.raises(kvdb.ClosedError, match="cursor is closed"):
            call()
    assert not c.valid
    c2 = db.cursor()
    db.close()
    with pytest.raises(kvdb.ClosedError):
        c2.seek_first()
