"""The B+Tree's memory-mapped read path (read_path="mmap", kvdb/_core/btree/filemap.pxd):
invariants V1-V3, the checks it keeps (P4), and the same answers as read_path="pread"."""
import os
import random

import pytest

import kvdb
from kvdb._core.btree import filemap
from tests.helpers import dump

SMALL = dict(page_size=512, sync="off", checkpoint_size=1 << 30)


@pytest.fixture
def small_maps():
    """Maps from 64 KiB up instead of 1 GiB, so that test files outgrow them."""
    old = filemap.set_map_min_bytes(64 << 10)
    yield
    filemap.set_map_min_bytes(old)


def fill(db, n, seed=0, size=60):
    rng = random.Random(seed)
    model = {}
    for start in range(0, n, 500):
        with db.transaction() as tx:
            for i in range(start, min(n, start + 500)):
                k, v = b"k%07d" % rng.randrange(10 * n), rng.randbytes(size)
                tx.put(k, v)
                model[k] = v
    return model


def read_all(db, model):
    for k, v in model.items():
        assert db.get(k) == v


def test_option_checked_and_reported(tmp_path):
    with pytest.raises(ValueError, match="read_path"):
        kvdb.open(tmp_path / "a", read_path="mapped")
    assert not os.path.exists(tmp_path / "a")
    for path in ("mmap", "pread"):
        with kvdb.open(tmp_path / path, read_path=path) as db:
            db.put(b"k", b"v")
            assert db.stats()["read_path"] == path
    with kvdb.open(tmp_path / "lsm", engine="lsm", read_path="pread") as db:   # not the LSM's: ignored
        db.put(b"k", b"v")


def test_V1_file_grows_past_the_map(tmp_path, small_maps):
    """The file outgrows its map several times (a checkpoint after each batch); every page is
    read from a map that covers it, none past the end of the file."""
    path = tmp_path / "db"
    with kvdb.open(path, cache_size=16 << 10, **SMALL) as db:
        model = {}
        seen = []
        for round_ in range(6):
            model.update(fill(db, 1500, seed=round_))
            db.checkpoint()
            read_all(db, model)
            s = db.stats()
            assert 0 < s["mapped_pages"] <= os.path.getsize(path / "data.kvdb") // 512
            seen.append(s["mapped_pages"])
        assert seen == sorted(seen) and seen[-1] * 512 > 4 * (64 << 10)   # remapped as it grew
        assert dump(db) == model


def test_V1_another_open_grows_the_file(tmp_path, small_maps):
    """A second open writes and checkpoints far past the first one's map: the first open's
    reads find the new pages (it looks at the size again and maps again), never past the end."""
    path = tmp_path / "db"
    with kvdb.open(path, cache_size=16 << 10, **SMALL) as a:
        model = fill(a, 500)
        a.checkpoint()
        read_all(a, model)
        with kvdb.open(path, cache_size=16 << 10, sync="off", checkpoint_size=1 << 30) as b:
            model.update(fill(b, 6000, seed=1))
            b.checkpoint()
        read_all(a, model)
        assert dump(a) == model
        assert a.stats()["rebases"] >= 1


def test_V2_pages_are_checked_once_and_this_opens_writes_are_trusted(tmp_path):
    """With "mmap" a page is checked at its first load, not at each pool miss; a page this
    open writes is not checked at its next load: the map shows the image it sealed. With
    "pread" every miss is checked."""
    path = tmp_path / "db"
    with kvdb.open(path, **SMALL) as db:
        model = fill(db, 6000)
    with kvdb.open(path, cache_size=16 << 10, read_path="pread") as db:
        read_all(db, model)
        s1 = db.stats()
        read_all(db, model)
        s2 = db.stats()
        assert s2["cache_misses"] > s1["cache_misses"]
        assert s2["pages_checked"] - s1["pages_checked"] == s2["cache_misses"] - s1["cache_misses"]
        assert s2["layouts_checked"] > s1["layouts_checked"]     # each copy's cells, again
    with kvdb.open(path, cache_size=16 << 10, sync="off", checkpoint_size=1 << 30) as db:
        read_all(db, model)
        s1 = db.stats()
        assert 0 < s1["pages_checked"] <= s1["mapped_pages"]
        read_all(db, model)
        s2 = db.stats()
        assert s2["cache_misses"] > s1["cache_misses"]          # handles were evicted and made again
        assert s2["pages_checked"] == s1["pages_checked"]        # but no page was checked twice,
        assert s2["layouts_checked"] == s1["layouts_checked"]    # nor its cells
        assert 0 < s1["layouts_checked"] <= s1["pages_checked"]
        for k in list(model)[::50]:
            db.put(k, b"new")
            model[k] = b"new"
        db.checkpoint()
        written = db.stats()["pages_written"]
        read_all(db, model)
        s3 = db.stats()
        assert written > 0 and s3["cache_misses"] > s2["cache_misses"]
        assert s3["pages_checked"] == s2["pages_checked"]
        assert s3["layouts_checked"] == s2["layouts_checked"]


def test_V2_a_page_this_open_rewrites_is_trusted_in_its_new_life(tmp_path):
    """Pages freed by one checkpoint are reused by the next one's commits: a pgno checked in its
    former life is trusted in its new one, whose image this open sealed and wrote (no check),
    and a pgno checked in neither is checked once."""
    path = tmp_path / "db"
    with kvdb.open(path, **SMALL) as db:
        model = fill(db, 6000)
    # A 4 KiB cache: 16 mapped handles or 8 owned pages stay cached; a round's few dozen dirty
    # pages stay under the 64-page checkpoint trigger, so only the explicit checkpoints write.
    with kvdb.open(path, cache_size=4096, sync="off", checkpoint_size=1 << 30) as db:
        read_all(db, model)            # every page checked once
        keys = sorted(model)
        for round_ in range(2):        # round 0 frees pages, round 1 reuses them
            for k in keys[round_::200]:
                db.put(k, b"round %d" % round_)
                model[k] = b"round %d" % round_
            before = db.stats()
            db.checkpoint()
            s = db.stats()
            assert s["checkpoints"] == before["checkpoints"] + 1
        # the last checkpoint's tree pages: what it wrote less its freelist pages (122 pgnos each)
        tree_pages = s["pages_written"] - before["pages_written"] - (s["pages"] // 122 + 1)
        assert s["pages"] == before["pages"] or tree_pages > s["pages"] - before["pages"]   # reused
        read_all(db, model)            # loads them all again, but for the few still cached
        after = db.stats()
        assert tree_pages >= 20 and after["cache_misses"] - s["cache_misses"] >= tree_pages - 16
        assert after["pages_checked"] == s["pages_checked"]
        assert after["layouts_checked"] == s["layouts_checked"]


def test_V1_V2_pages_written_ahead_are_read_back_from_the_map_unchecked(tmp_path):
    """Pages a commit wrote ahead of the checkpoint (P7) lie past the durable meta's page count,
    but inside the file: the map serves them once evicted (V1), without a check, since this
    open sealed their images (V2). Nothing was checkpointed: no meta reaches them."""
    path = tmp_path / "db"
    with kvdb.open(path, page_size=512, cache_size=16 << 10, sync="off", checkpoint_size=1 << 30) as db:
        model = fill(db, 4000)
        s = db.stats()
        assert s["checkpoints"] == 0 and s["pages_spilled"] > 100
        read_all(db, model)
        s2 = db.stats()
        assert s2["cache_misses"] - s["cache_misses"] > 100
        assert s2["mapped_pages"] * 512 > os.path.getsize(path / "data.kvdb") // 2
        assert s2["pages_checked"] == s["pages_checked"] == 0
        assert dump(db) == model


def test_V2_damage_is_found_at_the_first_load(tmp_path):
    """A page damaged on disk is a CorruptionError naming it when the map first serves it."""
    path = tmp_path / "db"
    with kvdb.open(path, **SMALL) as db:
        model = fill(db, 3000)
    with open(path / "data.kvdb", "r+b") as f:
        pages = os.path.getsize(path / "data.kvdb") // 512
        f.seek((pages // 2) * 512 + 100)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))
    with kvdb.open(path, cache_size=16 << 10) as db:
        assert db.stats()["read_path"] == "mmap"
        with pytest.raises(kvdb.CorruptionError, match=f"page {pages // 2}") as info:
            for k in model:
                db.get(k)
            db.verify()
        assert info.value.pgno == pages // 2


def test_V2_a_rebase_checks_pages_again(tmp_path):
    """Pages another open's checkpoint may have rewritten are checked again after the rebase
    onto its meta."""
    path = tmp_path / "db"
    with kvdb.open(path, cache_size=16 << 10, **SMALL) as a:
        model = fill(a, 3000)
        a.checkpoint()
        read_all(a, model)
        read_all(a, model)
        s = a.stats()
        tree_pages = s["pages"] - s["free_pages"] - s["pending_free_pages"]
        with kvdb.open(path, sync="off", checkpoint_size=1 << 30) as b:
            for k in list(model)[::10]:
                b.put(k, b"from b")
                model[k] = b"from b"
            b.checkpoint()
        read_all(a, model)
        s = a.stats()                 # the counters are the new view's pager's
        assert s["rebases"] >= 1
        assert s["pages_checked"] >= tree_pages // 2    # not only the pages b wrote
        assert s["layouts_checked"] >= tree_pages // 2


def test_V4_unpinned_reads_beside_commits_and_checkpoints(tmp_path, small_maps):
    """Readers in threads get random keys without a pin while a writer overwrites them and
    checkpoints (pages freed, reused and rewritten in the map, the map made again): every read
    returns a value the key had, never another key's or a torn one."""
    import threading
    path = tmp_path / "db"
    keys = [b"k%05d" % i for i in range(3000)]
    with kvdb.open(path, cache_size=16 << 10, **SMALL) as db:
        db.put_many((k, k + b"/0" * 20) for k in keys)
        db.checkpoint()
        stop = threading.Event()
        errors = []

        def reader(seed):
            rng = random.Random(seed)
            try:
                while not stop.is_set():
                    k = rng.choice(keys)
                    v = db.get(k)
                    if v is None or not v.startswith(k + b"/") or len(set(v[len(k):].split(b"/"))) != 2:
                        errors.append((k, v))
                        return
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        try:
            rng = random.Random(1)
            for n in range(1, 40):
                with db.transaction() as tx:
                    for k in rng.sample(keys, 200):
                        tx.put(k, k + (b"/%d" % n) * rng.choice((5, 20, 60)))
                if n % 5 == 0:
                    db.checkpoint()
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[:3]
        db.verify()


def test_V3_pages_outlive_a_new_map_and_the_close(tmp_path, small_maps):
    """A snapshot's iterator holds mapped pages while the file outgrows the map (a new one
    replaces it) and after the database closes: its pages stay mapped (no crash), and it reads
    the snapshot's data or raises ClosedError."""
    path = tmp_path / "db"
    db = kvdb.open(path, cache_size=8 << 10, **SMALL)
    model = fill(db, 2000)
    db.checkpoint()
    db.close()
    db = kvdb.open(path, cache_size=8 << 10, **SMALL)
    snap = db.snapshot()
    it = iter(snap.scan())
    first = [next(it) for _ in range(100)]
    fill(db, 8000, seed=5)                    # grows the file far past the first map
    db.checkpoint()
    rest = list(it)
    assert dict(first + rest) == model
    it = iter(snap.scan())
    next(it)
    snap.close()
    db.close()
    try:
        for _ in it:
            pass
    except kvdb.ClosedError:
        pass


def test_a_refused_map_falls_back_to_pread(tmp_path):
    """A system that refuses the map (here: a reservation larger than the address space) leaves
    the open reading with pread, not failing."""
    path = tmp_path / "db"
    with kvdb.open(path, **SMALL) as db:
        model = fill(db, 3000)
    old = filemap.set_map_min_bytes(1 << 62)
    try:
        with kvdb.open(path, cache_size=16 << 10) as db:
            read_all(db, model)
            s = db.stats()
            assert s["read_path"] == "pread" and s["mapped_pages"] == 0 and s["pages_read"] > 0
    finally:
        filemap.set_map_min_bytes(old)


def test_mmap_and_pread_read_the_same(tmp_path):
    """The same random work, read through either path, from a file larger than the cache."""
    rng = random.Random(7)
    path = tmp_path / "db"
    with kvdb.open(path, cache_size=32 << 10, **SMALL) as db:
        model = fill(db, 4000, seed=3, size=150)
        for _ in range(3):
            for k in rng.sample(sorted(model), 300):
                if rng.random() < 0.3:
                    db.delete(k)
                    del model[k]
                else:
                    model[k] = rng.randbytes(rng.choice((10, 150, 900)))
                    db.put(k, model[k])
            db.checkpoint()
    got = {}
    for read_path in ("mmap", "pread"):
        with kvdb.open(path, cache_size=16 << 10, read_path=read_path) as db:
            got[read_path] = (dump(db), [db.get(k) for k in sorted(model)],
                              list(db.scan(b"k0001", b"k0030")), list(db.scan(reverse=True))[:50])
            db.verify()
    assert got["mmap"] == got["pread"]
    assert got["mmap"][0] == model
