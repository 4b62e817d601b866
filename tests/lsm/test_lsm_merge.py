"""The LSM read path's merge in C (lsm/merge.pyx) against a merge written plainly in Python.

MergeCursor compares its sources' current entries in place (C pointers into memtable arenas,
loaded blocks and key buffers) and makes Python objects only for what it returns. The reference
here is the definition of what a snapshot sees: per user key in [lo, hi), the version with the
highest seq <= the snapshot's; nothing if that version is a tombstone or a put expired at `now`.

Two levels: memtables built directly and merged (every interleaving of versions across
sources, backwards too), and a database whose versions sit in the memtable, level-0 tables and
deeper levels at once, read through snapshots.
"""
import random

import pytest
from hypothesis import given, settings, strategies as st

import kvdb
from kvdb._core.lsm.memtable import Memtable
from kvdb._core.lsm.merge import MergeCursor

KEYS = [b"", b"a", b"ab", b"abc", b"b", b"b\x00", b"b\xff", b"c" * 40, b"\xff"]


def reference(versions, snap_seq, now, lo, hi, reverse):
    """[(key, value)] a snapshot at snap_seq sees in [lo, hi): versions is
    [(key, seq, is_put, value, expires)]."""
    newest = {}
    for key, seq, is_put, value, expires in versions:
        if seq <= snap_seq and (key not in newest or seq > newest[key][0]):
            newest[key] = (seq, is_put, value, expires)
    out = []
    for key in sorted(newest, reverse=reverse):
        _, is_put, value, expires = newest[key]
        if lo is not None and key < lo or hi is not None and key >= hi:
            continue
        if not is_put or (expires and now and expires <= now):
            continue
        out.append((key, value))
    return out


version_lists = st.lists(
    st.tuples(st.sampled_from(KEYS), st.booleans(), st.binary(max_size=12), st.sampled_from([0, 0, 50, 150]),
              st.integers(0, 3)),
    max_size=60)


@settings(max_examples=300, deadline=None)
@given(version_lists, st.integers(0, 70), st.sampled_from([0, 100]),
       st.one_of(st.none(), st.sampled_from(KEYS)), st.one_of(st.none(), st.sampled_from(KEYS)), st.booleans())
def test_merge_of_memtables_matches_the_python_merge(rows, snap_seq, now, lo, hi, reverse):
    """Versions with distinct seqs spread over four memtables, any of them holding any version
    (the merge does not rely on L1): the C merge returns what the reference returns."""
    mems = [Memtable() for _ in range(4)]
    versions = []
    for seq, (key, is_put, value, expires, where) in enumerate(rows, 1):
        if is_put:
            mems[where].put(seq, key, value, expires)
        else:
            mems[where].delete(seq, key)
        versions.append((key, seq, is_put, value if is_put else None, expires if is_put else 0))
    cursor = MergeCursor([m.source() for m in mems], snap_seq, now, lo, hi, reverse, None)
    assert list(cursor) == reference(versions, snap_seq, now, lo, hi, reverse)


def test_merge_stops_early_and_counts_expired_keys_for_the_sweep():
    mem = Memtable()
    mem.put(1, b"a", b"1", 50)
    mem.put(2, b"b", b"2")
    mem.delete(3, b"c")
    mem.put(4, b"d", b"4", 50)
    cursor = MergeCursor([mem.source()], 10, 100, None, None, False, None)
    assert cursor.next_key_expires() == (b"a", 50)       # the sweep walks expired keys too
    assert cursor.next_key_expires() == (b"b", 0)
    assert cursor.next_key_expires() == (b"d", 50)       # the tombstone is no key
    assert cursor.next_key_expires() is None
    cursor = MergeCursor([mem.source()], 10, 100, None, None, False, None)
    assert next(cursor) == (b"b", b"2")                  # expired at now=100: skipped
    cursor.finish()
    assert list(cursor) == []


def test_merge_refuses_what_is_not_a_source():
    with pytest.raises(TypeError):
        MergeCursor([object()], 1, 0, None, None, False, None)


TINY = dict(engine="lsm", memtable_size=4 << 10, sstable_size=4 << 10, level1_size=16 << 10)


@pytest.mark.parametrize("seed", range(3))
def test_snapshots_over_memtable_level0_and_levels_match_the_python_merge(db_path, seed):
    """Puts, deletes and overwrites in rounds, with compactions between some rounds, so each
    key's versions lie in several sources (memtable, level-0 tables, levels 1+); snapshots
    taken between rounds keep old versions alive. Every snapshot's scans, forwards and
    backwards, whole and bounded, equal the reference over the history of commits."""
    rng = random.Random(seed)
    keys = [b"k%04d" % i for i in range(400)]
    versions = []
    snaps = []
    level0_seen = 0                   # level-0 tables after some round (compactions run in the background)
    with kvdb.open(db_path, sync="off", **TINY) as db:
        for round_ in range(8):
            for _ in range(300):
                key = rng.choice(keys)
                if rng.random() < 0.2:
                    db.delete(key)
                    versions.append((key, db.seq, False, None, 0))
                else:
                    v = b"%d-%d" % (round_, rng.randrange(1 << 30)) + b"x" * rng.randrange(60)
                    db.put(key, v)
                    versions.append((key, db.seq, True, v, 0))
            if round_ in (2, 5):
                db.compact()
            if round_ % 2:
                snaps.append((db.snapshot(), db.seq))
            level0_seen = max(level0_seen, db.stats()["lsm_files_per_level"][0])
        files = db.stats()["lsm_files_per_level"]
        # Level 0 may be empty right now (a background compaction just moved it down): it is
        # enough that some round left tables there while snapshots kept their versions.
        assert level0_seen > 0 and sum(files[1:]) > 0, f"versions are not spread over the levels: {files}"
        for snap, seq in snaps + [(db.snapshot(), db.seq)]:
            with snap:
                for _ in range(6):
                    lo, hi = sorted(rng.sample(keys, 2))
                    for start, end in ((None, None), (lo, hi), (lo, None), (None, hi)):
                        for reverse in (False, True):
                            got = list(snap.scan(start=start, end=end, reverse=reverse))
                            assert got == reference(versions, seq, 0, start, end, reverse), \
                                (seq, start, end, reverse)
