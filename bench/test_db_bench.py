"""Smoke test of the harness: `pytest bench/test_db_bench.py` (a few seconds; not a
micro-benchmark, so `pytest bench/ --benchmark-only` skips it).

kvdb itself may not be built yet, so a tiny stand-in `kvdb` package with the
same API is written to a temporary directory and passed with --kvdb-path.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "db_bench.py")

FAKE_KVDB = textwrap.dedent('''
    """Stand-in for kvdb with the documented API: a dict saved with marshal on close."""
    import bisect, builtins, marshal, os, threading

    class _Tx:
        def __init__(self, db):
            self.db, self.ops = db, []
        def put(self, k, v):
            self.ops.append((k, v))
        def __enter__(self):
            return self
        def __exit__(self, t, e, tb):
            if t is None:
                self.db._apply(self.ops)

    class _DB:
        def __init__(self, path, sync):
            os.makedirs(path, exist_ok=True)
            self.file = os.path.join(path, "data")
            self.map = marshal.loads(builtins.open(self.file, "rb").read()) if os.path.exists(self.file) else {}
            self.keys = sorted(self.map)
            self.sync, self.lock = sync, threading.Lock()
            self.log = builtins.open(os.path.join(path, "log"), "ab")
        def _apply(self, ops):
            with self.lock:
                for k, v in ops:
                    if k not in self.map:
                        bisect.insort(self.keys, k)
                    self.map[k] = v
                self.log.write(b"c")
                if self.sync == "full":
                    self.log.flush()
                    os.fsync(self.log.fileno())
        def put(self, k, v):
            self._apply([(k, v)])
        __setitem__ = put
        def put_many(self, pairs):
            self._apply(list(pairs))
        def get(self, k):
            return self.map.get(k)
        def delete(self, k):
            with self.lock:
                if self.map.pop(k, None) is not None:
                    del self.keys[bisect.bisect_left(self.keys, k)]
        discard = delete  # kvdb's delete that does not report whether the key existed
        def transaction(self):
            return _Tx(self)
        def scan(self, start=None, end=None, prefix=None, reverse=False):
            i = bisect.bisect_left(self.keys, start) if start else 0
            while i < len(self.keys):
                k = self.keys[i]
                yield k, self.map[k]
                i += 1
        def close(self):
            with builtins.open(self.file, "wb") as f:
                marshal.dump(self.map, f)
            self.log.close()

    def open(path, engine="btree", sync="off", cache_size=0, **options):
        return _DB(path, sync)
''')


def run_bench(tmp_path, kvdb_src, engines, *extra):
    pkg = tmp_path / "kvdbsrc" / "kvdb"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(kvdb_src)
    out = tmp_path / "out.json"
    cmd = [sys.executable, SCRIPT, "--num", "2000", "--runs", "1", "--sync-num", "100", "--threads", "4",
           "--engines", engines, "--dir", str(tmp_path), "--json", str(out), "--quiet",
           "--kvdb-path", str(tmp_path / "kvdbsrc"), *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout, json.loads(out.read_text())


def test_small_run_with_fake_kvdb(tmp_path):
    stdout, doc = run_bench(tmp_path, FAKE_KVDB, "kvdb-btree,sqlite3")
    summary = doc["summary"]
    for engine in ("kvdb-btree", "sqlite3"):
        for w in ("fillbatch", "fillrandom", "overwrite", "readrandom", "readmissing", "readseq",
                  "seekrandom", "deleterandom", "fillsync"):
            assert summary[engine][w]["median"] > 0, (engine, w, summary[engine][w])
        res = doc["runs"][engine][0]["results"]
        assert res["readrandom"]["found"] == 2000
        assert res["readmissing"]["found"] == 0
        assert res["readseq"]["entries"] == 2000
        assert 2000 * 9 < res["seekrandom"]["entries"] <= 2000 * 10  # fewer than 10 near the end
    seeks = {e: doc["runs"][e][0]["results"]["seekrandom"]["entries"] for e in ("kvdb-btree", "sqlite3")}
    assert len(set(seeks.values())) == 1, seeks
    assert "disagree" not in stdout
    assert summary["kvdb-btree"]["fillsync-threads"]["scaling"] > 0
    assert summary["sqlite3"]["fillsync-threads"] == {"na": "fillsync-threads runs for kvdb engines only"}
    assert "kvdb-btree / peer" in stdout and "fillsync-threads kvdb-btree" in stdout
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["python"]
    assert not list(tmp_path.glob("dbbench-*")), "worker directories must be removed"


def test_unbuilt_kvdb_is_skipped_not_fatal(tmp_path):
    stdout, doc = run_bench(tmp_path, "", "kvdb-btree,sqlite3", "--workloads", "fillrandom,readrandom")
    assert "kvdb-btree" in doc["skipped"]
    assert doc["summary"]["sqlite3"]["readrandom"]["median"] > 0
    assert "skipped" in stdout


@pytest.mark.parametrize("workload", ["readseq", "deleterandom"])
def test_reads_without_fill_prepare_the_database(tmp_path, workload):
    _, doc = run_bench(tmp_path, FAKE_KVDB, "sqlite3", "--workloads", workload)
    assert doc["summary"]["sqlite3"][workload]["median"] > 0
