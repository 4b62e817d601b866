"""kvdb.open(path, readonly=True): reads an existing database and writes nothing in its
directory, not even when its log holds commits no checkpoint or flush has taken in yet."""
import os

import pytest

import kvdb
from tests.crash.torture import wait_released


def snapshot(path):
    """Every file's bytes and mtime, but the B+Tree's shared-memory file: opens, read-only ones
    too, register in it (docs/format/shm.md); it describes the files, which it never changes."""
    return {n: (open(os.path.join(path, n), "rb").read(), os.stat(os.path.join(path, n)).st_mtime_ns)
            for n in sorted(os.listdir(path)) if n != "data.kvdb-shm"}


def crashed_database(path, engine):
    """A database dropped without close: its last commits are only in the log."""
    opts = dict(engine=engine, sync="full")
    if engine == "lsm":
        opts.update(memtable_size=32 << 10)
    db = kvdb.open(path, **opts)
    for i in range(300):
        db.put(b"k%04d" % i, b"v%d" % i, ttl=10 ** 6 if i % 4 == 0 else None)
    db.checkpoint()
    for i in range(40):
        db.put(b"late%03d" % i, b"only in the log")
    db.delete(b"k0001")
    model = dict(db.scan())
    del db
    wait_released(path)
    return model


def test_readonly_reads_everything_and_writes_nothing(db_path, engine):
    model = crashed_database(db_path, engine)
    before = snapshot(db_path)
    with kvdb.open(db_path, readonly=True) as db:
        assert db.readonly and db.engine == engine
        assert dict(db.scan()) == model
        assert db.get(b"late039") == b"only in the log" and db.get(b"k0001") is None
        assert len(db) == len(model)
        assert db.ttl(b"k0004") > 0
        with db.snapshot() as snap:
            assert snap.get(b"k0002") == b"v2"
        db.verify()
        assert db.stats()["readonly"] is True
        for write in (lambda: db.put(b"x", b"y"), lambda: db.delete(b"k0002"), lambda: db.transaction(),
                      lambda: db.checkpoint(), lambda: db.persist(b"k0004"), lambda: db.compact()):
            with pytest.raises(kvdb.ReadOnlyError):
                write()
    assert snapshot(db_path) == before
    with kvdb.open(db_path) as db:              # a writer afterwards recovers the same commits
        assert dict(db.scan()) == model


def test_readonly_never_creates(tmp_path):
    path = tmp_path / "missing"
    with pytest.raises(FileNotFoundError):
        kvdb.open(str(path), readonly=True)
    assert not path.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError):
        kvdb.open(str(empty), readonly=True)
    assert os.listdir(empty) == []


def test_readonly_and_writer_share(db_path, engine):
    kvdb.open(db_path, engine=engine).close()
    with kvdb.open(db_path) as writer:
        writer.put(b"a", b"1")
        with kvdb.open(db_path, readonly=True) as reader:
            assert reader.get(b"a") == b"1"
            writer.put(b"b", b"2")
            assert reader.get(b"b") == b"2"                  # followed
            with pytest.raises(kvdb.ReadOnlyError):
                reader.put(b"c", b"3")
    with kvdb.open(db_path, readonly=True) as r1, kvdb.open(db_path, readonly=True) as r2:
        assert r1.get(b"a") == r2.get(b"a") == b"1"        # readers share
        with pytest.raises(kvdb.LockedError):
            kvdb.open(db_path, _exclusive=True)             # an exclusive open waits for them


def test_readonly_argument_is_checked(db_path):
    kvdb.open(db_path).close()
    with pytest.raises(TypeError, match="readonly"):
        kvdb.open(db_path, readonly="yes")
