"""The server key layout's collection records (docs/format/server-keys.md, C1-C5),
tested in process on the Keyspace itself: versions, vclock, lazy deletion and the
garbage collector."""
import struct

import kvdb
import pytest
from kvdb.server import keyspace as ksmod
from kvdb.server.keyspace import TYPE_LIST, TYPE_SET, Keyspace, sub_prefix

U64 = struct.Struct(">Q")


def open_ks(path):
    db = kvdb.open(str(path))
    ks = Keyspace(db, 16, lambda *a: None)
    ks.load()
    return db, ks


def make_set(ks, db, key, members):
    e = ks.collection_for_write(db, key, TYPE_SET)
    for m in members:
        ks.store.put(e.body.prefix(db, b"s") + m, b"")
    e.body.count += len(members)
    ks.save(db, key, e)
    return e.body.version


def records(database, prefix):
    with database.scan(prefix=prefix) as it:
        return [k for k, _ in it]


def test_C2_versions_never_reissued_across_reopen(tmp_path):
    db, ks = open_ks(tmp_path)
    v1 = make_set(ks, 0, b"a", [b"x"])
    ks.store.commit()
    db.close()
    db, ks = open_ks(tmp_path)
    # A clock that went back cannot make the next version collide.
    ks.last_version = 0
    v2 = make_set(ks, 0, b"b", [b"y"])
    ks.store.commit()
    assert v2 > v1
    assert U64.unpack(db.get(ksmod.VCLOCK_KEY))[0] >= v2
    db.close()


def test_C3_small_collection_deleted_at_once(tmp_path):
    db, ks = open_ks(tmp_path)
    v = make_set(ks, 0, b"s", [b"%d" % i for i in range(10)])
    ks.store.commit()
    assert ks.delete(0, b"s")
    ks.store.commit()
    assert records(db, sub_prefix(0, b"s", v)) == []
    assert ks.garbage == 0
    db.close()


def test_C3_large_collection_goes_to_the_collector(tmp_path):
    db, ks = open_ks(tmp_path)
    n = 5000
    v = make_set(ks, 0, b"big", [b"%06d" % i for i in range(n)])
    ks.store.commit()
    assert ks.delete(0, b"big")
    ks.store.commit()
    assert ks.entry(0, b"big") is None
    assert len(records(db, sub_prefix(0, b"s", v))) == n    # left for the collector
    assert records(db, ksmod.garbage_key(0, v)) == [ksmod.garbage_key(0, v)]
    # A new collection under the same name does not see the old members (C1, C2).
    v2 = make_set(ks, 0, b"big", [b"new"])
    ks.store.commit()
    assert v2 != v
    assert records(db, sub_prefix(0, b"s", v2)) == [sub_prefix(0, b"s", v2) + b"new"]
    steps = 0
    while ks.garbage:
        deleted = ks.collect_garbage(1000)
        ks.store.commit()
        assert deleted <= 1000
        steps += 1
        assert steps < 20
    assert records(db, sub_prefix(0, b"s", v)) == []
    assert records(db, ksmod.garbage_key(0, v)) == []
    assert records(db, sub_prefix(0, b"s", v2)) == [sub_prefix(0, b"s", v2) + b"new"]
    db.close()


def test_C1_sub_records_are_those_of_live_versions_and_their_kinds(tmp_path):
    """C1: a collection's sub-records are exactly the records 0x01 db kind v ... for the
    kinds of its type and v its meta record's version. After commands on every collection
    type (overwrites, deletes, renames, copies, moves; all small, so nothing is left to the
    collector), every sub-record is under a live meta record's version, in its database,
    with one of its type's kinds; and every live collection has records."""
    from kvdb.server.keyspace import COLLECTION_KINDS, decode_entry, meta_prefix
    from tests.inprocess import InProcess
    with InProcess(tmp_path) as run:
        run("RPUSH", "l", "a", "b", "c")
        run("SADD", "s", "x", "y")
        run("ZADD", "z", 1, "m", 2, "n")
        run("XADD", "x", "1-1", "f", "v")
        run("XGROUP", "CREATE", "x", "g", "0")
        run("XREADGROUP", "GROUP", "g", "c", "STREAMS", "x", ">")
        run("COPY", "s", "s2")
        run("RENAME", "l", "l2")
        run("MOVE", "z", 3)
        run("SADD", "s", "w")
        run("RPUSH", "gone", "a")
        run("DEL", "gone")
        run("SADD", "over", "a")
        run("RPUSH", "l3", "p")
        run("RENAME", "l3", "over")              # a set overwritten by a list
        run("SET", "s2", "now a string")
        assert run.ks.garbage == 0
        kinds = {k for ks in COLLECTION_KINDS.values() for k in ks}
        for d in range(16):
            live = {}
            for _, raw in run.records(meta_prefix(d)):
                e = decode_entry(raw)
                if e.type in COLLECTION_KINDS:
                    live[e.body.version] = e.type
            seen = set()
            for k, _ in run.records(bytes((1, d))):
                if k[2:3] not in kinds:
                    continue
                version = U64.unpack_from(k, 3)[0]
                assert version in live, f"db {d}: record {k!r} under no live version"
                assert k[2:3] in COLLECTION_KINDS[live[version]], f"db {d}: record {k!r}: not its type's kind"
                seen.add(version)
            assert seen == set(live), f"db {d}: collections without records: {set(live) - seen}"


def test_garbage_survives_reopen(tmp_path):
    db, ks = open_ks(tmp_path)
    v = make_set(ks, 0, b"big", [b"%06d" % i for i in range(200)])
    ks.store.commit()
    ks.delete(0, b"big")
    ks.store.commit()
    db.close()
    db, ks = open_ks(tmp_path)
    assert ks.garbage == 1
    ks.collect_garbage(1000)
    ks.store.commit()
    assert ks.garbage == 0
    assert records(db, sub_prefix(0, b"s", v)) == []
    db.close()


def test_C4_empty_collection_has_no_meta(tmp_path):
    db, ks = open_ks(tmp_path)
    e = ks.collection_for_write(0, b"l", TYPE_LIST)
    ks.save(0, b"l", e)           # still empty: nothing written
    ks.store.commit()
    assert ks.entry(0, b"l") is None and ks.keys[0] == 0
    db.close()


def test_wrongtype_and_overwrite_by_string(tmp_path):
    db, ks = open_ks(tmp_path)
    v = make_set(ks, 0, b"k", [b"%d" % i for i in range(100)])
    ks.store.commit()
    with pytest.raises(ksmod.WrongType):
        ks.collection(0, b"k", TYPE_LIST)
    ks.set_string(0, b"k", b"now a string")
    ks.store.commit()
    assert ks.get_string(0, b"k") == b"now a string"
    assert ks.keys[0] == 1
    while ks.garbage:
        ks.collect_garbage()
        ks.store.commit()
    assert records(db, sub_prefix(0, b"s", v)) == []
    db.close()


def test_corrupt_vclock_is_named(tmp_path):
    db, ks = open_ks(tmp_path)
    db.put(ksmod.VCLOCK_KEY, b"xx")
    db.close()
    with pytest.raises(kvdb.CorruptionError, match="vclock"):
        open_ks(tmp_path)


def test_version_1_files_are_upgraded(tmp_path):
    db = kvdb.open(str(tmp_path))
    db.put(ksmod.VERSION_KEY, b"kvdb-server-keys 1")
    db.close()
    db, ks = open_ks(tmp_path)
    assert db.get(ksmod.VERSION_KEY) == ksmod.FORMAT_VERSION
    db.close()


def test_name_limit():
    with pytest.raises(ksmod.NameTooLong, match=str(ksmod.MAX_NAME)):
        ksmod.check_name(b"x" * (ksmod.MAX_NAME + 1))
    ksmod.check_name(b"x" * ksmod.MAX_NAME)


def test_a_group_reads_through_its_transaction_even_when_that_sees_no_key(tmp_path):
    """Once a command group wrote, its reads go through its transaction, also when the
    transaction's view of the database is empty: a Transaction is a mapping, so `tx or db`
    (the old reader) took an empty one for false, read the database and saw a deleted key,
    and for a non-empty one paid a scan per read (ZADD of 100k members took 100 s)."""
    from kvdb.server.keyspace import Store
    db = kvdb.open(str(tmp_path / "db"))
    db.put(b"only", b"value")
    store = Store(db)
    store.delete(b"only")                # the transaction now sees no key at all
    assert store.get(b"only") is None
    assert list(store.scan()) == []
    store.tx.rollback()
    db.close()
