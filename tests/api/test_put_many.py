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
