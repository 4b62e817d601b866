"""B+Tree file space: a clean close by the last open gives the file system back the blocks of
the pages the durable freelist lists (Pager.release_free_space), as holes."""
import os
import random

import kvdb

SMALL = dict(page_size=4096, cache_size=1 << 20, checkpoint_size=64 << 20)


def blocks(path):
    return os.stat(path / "data.kvdb").st_blocks * 512


def test_a_clean_close_leaves_free_pages_as_holes(tmp_path):
    path = tmp_path / "db"
    keys = [b"%016d" % i for i in range(30000)]
    random.Random(5).shuffle(keys)
    with kvdb.open(path, sync="off", **SMALL) as db:
        for k in keys:
            db.put(k, b"x" * 100)
        db.checkpoint()                  # the overwrites below copy the pages it wrote
        for k in keys[:15000]:
            db.put(k, b"y" * 100)
        assert db.stats()["pages_spilled"] > 0
    size = os.path.getsize(path / "data.kvdb")
    with kvdb.open(path, **SMALL) as db:
        s = db.stats()
        free = s["free_pages"] + s["pending_free_pages"]
        assert free > 100, s
        used = blocks(path)
        # every listed free page is a hole; the rest of the file (tree, freelist, header) is not
        assert used <= size - free * 4096 + 16 * 4096, (used, size, free)
        assert all(db.get(k) == (b"y" * 100 if i < 15000 else b"x" * 100) for i, k in enumerate(keys))
        db.verify()
        for k in keys[:2000]:            # holes are written again like any free page
            db.put(k, b"z" * 100)
    with kvdb.open(path, **SMALL) as db:
        assert all(db.get(k) == b"z" * 100 for k in keys[:2000])
        db.verify()
    report = kvdb_check(path)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "never written" in report.stdout


def test_another_open_keeps_the_free_pages(tmp_path):
    path = tmp_path / "db"
    with kvdb.open(path, sync="off", **SMALL) as other:
        with kvdb.open(path, sync="off", **SMALL) as db:
            for i in range(20000):
                db.put(b"%016d" % (i * 7919 % 20000), b"x" * 100)
            db.checkpoint()
            for i in range(10000):
                db.put(b"%016d" % (i * 7919 % 20000), b"y" * 100)
            db.checkpoint()
        size, used = os.path.getsize(path / "data.kvdb"), blocks(path)
        assert used >= size - 4096, (used, size)     # not the last open: nothing released
        assert other.get(b"%016d" % 0) == b"y" * 100


def kvdb_check(path):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "kvdb", "check", str(path)], capture_output=True, text=True,
                          timeout=120)
