"""`kvdb bench` in quick mode on a tiny N: the tables, the JSON (with the
machine description and the I/O numbers) and, when matplotlib is installed,
the charts. Also the --scale series, bench/db_bench.py (the same program run
as a script) and the one-line answer of a kvdb installed without a checkout.
Well under a minute in all.
"""
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
PNG = b"\x89PNG\r\n\x1a\n"


def bench(tmp_path, *args, script=None):
    cmd = [sys.executable, script] if script else [sys.executable, "-m", "kvdb", "bench"]
    cmd += ["--runs", "1", "--sync-num", "200", "--threads", "4", "--dir", str(tmp_path),
            "--results-dir", str(tmp_path / "results"), *args]
    p = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    return p


def only_json(tmp_path, pattern):
    files = glob.glob(str(tmp_path / "results" / pattern))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return files[0], json.load(f)


def test_quick_kvdb_and_sqlite(tmp_path):
    p = bench(tmp_path, "--quick", "--num", "2000", "--engines", "kvdb-btree,sqlite3")
    text = p.stdout
    assert "db_bench: num=2,000" in text
    assert "kvdb-btree / peer" in text  # the ratio table
    assert "disk I/O per workload" in text and "write amp" in text and "fsyncs/commit" in text
    for w in ("fillbatch", "fillrandom", "readrandom", "readseq", "deleterandom", "fillsync"):
        assert w in text

    path, doc = only_json(tmp_path, "db_bench-*-quick-n2000.json")
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["python"] and doc["machine"]["kernel"]
    assert doc["config"]["mode"] == "quick" and doc["config"]["num"] == 2000
    for engine in ("kvdb-btree", "sqlite3"):
        for w in ("fillbatch", "fillrandom", "overwrite", "readrandom", "readmissing", "readseq", "seekrandom",
                  "deleterandom", "fillsync"):
            assert doc["summary"][engine][w]["median"] > 0, (engine, w)
        res = doc["runs"][engine][0]["results"]
        assert res["readrandom"]["found"] == 2000 and res["readseq"]["entries"] == 2000
        assert res["fillrandom"]["io"]["write_bytes"] >= 0  # /proc/self/io was read around it
        io = doc["io_summary"][engine]
        assert io["fillrandom"]["space_amp"] > 0.1
        assert io["readrandom"]["write_amp"] is None  # a read workload writes no user data
    kv = doc["io_summary"]["kvdb-btree"]
    assert kv["fillsync"]["fsyncs_per_commit"] == pytest.approx(1.0, abs=0.05)  # sync=full: one per commit
    assert kv["fillsync-threads"]["fsyncs_per_commit"] <= 1.0
    assert doc["io_summary"]["sqlite3"]["fillsync"]["fsyncs_per_commit"] is None  # not exposed: n/a
    assert doc["summary"]["sqlite3"]["fillsync-threads"] == {"na": "fillsync-threads runs for kvdb engines only"}
    assert not glob.glob(str(tmp_path / "dbbench-*")), "worker directories are removed"

    charts = glob.glob(os.path.splitext(path)[0] + "-ops.png")
    if HAVE_MPL:
        assert len(charts) == 1
        with open(charts[0], "rb") as f:
            assert f.read(8) == PNG
        os.unlink(charts[0])
        bench(tmp_path, "--charts-from", path)  # redraws it from the JSON alone
        assert os.path.exists(charts[0])
    else:
        assert not charts and "matplotlib is not installed" in p.stderr


def test_scale_series_and_chart(tmp_path):
    p = bench(tmp_path, "--scale", "--num", "3000", "--series", "3", "--engines", "sqlite3")
    assert "throughput vs data size" in p.stdout
    assert "readrandom" in p.stdout and "fillbatch" not in p.stdout  # --scale: fillrandom + readrandom
    path, doc = only_json(tmp_path, "db_bench-*-scale-n3000.json")
    points = doc["series"]["sqlite3"]
    assert [pt["keys"] for pt in points] == [1000, 2000, 3000]
    assert all(pt["fill_ops_per_sec"] > 0 and pt["read_ops_per_sec"] > 0 for pt in points)
    assert all(pt["read_found"] == pt["read_ops"] for pt in points)
    if HAVE_MPL:
        with open(os.path.splitext(path)[0] + "-scale.png", "rb") as f:
            assert f.read(8) == PNG


def test_repository_wrapper(tmp_path):
    p = bench(tmp_path, "--num", "500", "--engines", "kvdb-btree,sqlite3", "--workloads", "fillrandom,readrandom",
              "--no-save", script=os.path.join(REPO, "bench", "db_bench.py"))
    assert "kvdb-btree / peer" in p.stdout
    assert not os.path.exists(tmp_path / "results")


def test_installed_package_without_checkout_says_what_to_do(tmp_path):
    """The benchmark is not installed with kvdb: copy the package alone (as a wheel would lay it
    out) and run `kvdb bench` from elsewhere: one line on stderr saying what to do, exit 2."""
    site = tmp_path / "site"
    shutil.copytree(os.path.join(REPO, "kvdb"), site / "kvdb",
                    ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.pyx", "*.pxd", "*.pxi", "*.h"))
    work = tmp_path / "work"
    work.mkdir()
    p = subprocess.run([sys.executable, "-m", "kvdb", "bench", "--num", "500", "--runs", "1"], cwd=work,
                       env=dict(os.environ, PYTHONPATH=str(site)), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith("kvdb bench: needs a source checkout"), p.stderr
    assert "pip install -e ." in p.stderr and "python bench/db_bench.py" in p.stderr
    assert str(site / "bench") in p.stderr             # where it looked
    assert p.stdout == "" and os.listdir(work) == []


def test_help_works_from_a_checkout():
    p = subprocess.run([sys.executable, "-m", "kvdb", "bench", "--help"], cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: kvdb bench kv") and "--engines" in p.stdout and "--kvdb-path" in p.stdout


def test_unknown_engine_is_a_usage_error(tmp_path):
    p = subprocess.run([sys.executable, "-m", "kvdb", "bench", "--engines", "nosuchdb"], cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown engine" in p.stderr and "Traceback" not in p.stderr
