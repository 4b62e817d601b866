"""db.put_many(pairs) (issue 16, item 5): one commit for the whole batch, straight from the pairs
to the log record; a bad pair anywhere stores nothing."""
import pytest

import kvdb


@pytest.fixture
def db(engine, tmp_path):
    d = kvdb.open(str(tmp_path / "db"), engine=engine)
    yield d
    d.close()


def test_put_many_is_one_commit(db):
    before = db.stats()["commits"]
    assert db.put_many((b"%05d" % i, b"v%d" % i) for i in range(5000)) == 5000
    assert db.stats()["commits"] == before + 1
    assert len(db) == 5000 and db[b"04999"] == b"v4999"
    db.update({b"00000": b"new"})
    assert db.stats()["commits"] == before + 2 and db[b"00000"] == b"new"


def test_a_later_pair_with_the_same_key_wins(db):
    db.put_many([(b"k", b"1"), (b"j", b"x"), (b"k", b"2")])
    assert dict(db.items()) == {b"j": b"x", b"k": b"2"} and len(db) == 2


def test_a_bad_pair_stores_nothing(db):
    db[b"keep"] = b"1"
    for pairs, error in [([(b"a", b"1"), (b"b", None)], TypeError), ([(b"a", b"1"), (b"", b"x")], ValueError),
                         ([(b"a", b"1"), (b"x" * (kvdb.MAX_KEY_SIZE + 1), b"x")], ValueError),
                         ([(b"a", b"1"), (b"b",)], ValueError), (5, TypeError)]:
        with pytest.raises(error):
            db.put_many(pairs)
    assert dict(db.items()) == {b"keep": b"1"}


def test_put_many_accepts_a_mapping_and_bytes_likes(db):
    db.put_many({b"a": bytearray(b"1"), memoryview(b"b"): b"2"})
    assert dict(db.items()) == {b"a": b"1", b"b": b"2"}
    assert db.put_many([]) == 0


def test_put_many_on_a_read_only_open_or_snapshot_is_refused(db, tmp_path):
    with db.snapshot() as snap, pytest.raises(kvdb.ReadOnlyError):
        snap.put_many([(b"a", b"1")])


def test_put_many_logs_the_same_record_as_the_ops_it_stands_for(db, tmp_path):
    """The fast path (keys and values in two lists, no tuple per key) writes the payload that
    encode_ops writes for the same puts: a replica, a reopen and another process read it alike."""
    from kvdb._core.wal import decode_ops, encode_ops
    pairs = [(b"k%04d" % i, b"v" * (i % 300)) for i in range(700)] + [(b"k0001", b"again")]
    seen = []
    db._set_commit_listener(lambda seq, ops: seen.append(list(ops)))
    db.put_many(pairs)
    db._set_commit_listener(None)
    assert seen == [[(k, v, 0) for k, v in pairs]]
    assert decode_ops(encode_ops(seen[0])) == seen[0]
    path = db.path
    db.close()
    with kvdb.open(path) as again:                   # replayed from the log (the LSM) or the file
        assert again[b"k0001"] == b"again" and len(again) == 700


def test_put_many_into_namespace_keys_keeps_their_counts(db):
    ns = db.namespace("users")
    ns.put_many([(b"a", b"1"), (b"b", b"2")])
    # raw database keys that fall in the namespace's range go through the ops path (K1)
    raw = [k for k, _ in db.items() if k.startswith(b"\x02")]
    db.put_many([(k + b"-copy", b"x") for k in raw if not k.startswith(b"\x02\x00")][:1])
    assert len(ns) == 3 and len(db) == 4       # its 3 keys and its count record


def test_a_transaction_that_read_a_key_conflicts_with_put_many_of_it(db):
    db[b"k"] = b"1"
    with pytest.raises(kvdb.ConflictError):
        with db.transaction() as tx:
            assert tx[b"k"] == b"1"
            db.put_many([(b"other", b"x"), (b"k", b"2")])
            tx[b"j"] = b"3"
    assert db[b"k"] == b"2" and b"j" not in db
