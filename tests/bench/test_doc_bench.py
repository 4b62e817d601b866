"""kvdb bench documents end to end on a tiny N: every engine that is installed, the table, the
saved result file (seconds; no timings are asserted)."""
import glob
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_documents_bench_tiny(tmp_path):
    cmd = [sys.executable, "-m", "kvdb", "bench", "documents", "--num", "300", "--runs", "1", "--ops", "20",
           "--seconds", "0.2", "--sync", "off", "--dir", str(tmp_path), "--results-dir", str(tmp_path / "results")]
    p = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stdout.splitlines()
    for workload in ("insert_many", "find_id", "find_eq", "find_range", "find_unindexed", "update_many",
                     "delete_many"):
        assert any(line.startswith(workload) for line in lines), p.stdout
    assert "kvdb" in lines[3] and "sqlite3-json1" in lines[3]
    (saved,) = glob.glob(str(tmp_path / "results" / "documents-*-n300.txt"))
    with open(saved) as f:
        assert "insert_many" in f.read()
    assert os.listdir(tmp_path) == ["results"]          # the databases were removed


def test_documents_bench_rejects_unknown_engine(tmp_path):
    p = subprocess.run([sys.executable, "-m", "kvdb", "bench", "documents", "--engines", "mongo", "--no-save"],
                       cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown engine" in p.stderr
