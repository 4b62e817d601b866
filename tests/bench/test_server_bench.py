"""`kvdb bench server` runs end to end (tiny sizes) and prints its ratio table."""
import shutil
import subprocess
import sys

import pytest

from kvdb.cli.cmd_bench import suite_module


@pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None,
                    reason="needs redis-server and redis-benchmark")
def test_bench_server_smoke(tmp_path):
    p = subprocess.run([sys.executable, "-m", "kvdb", "bench", "server", "--runs", "1", "--requests", "500",
                        "--clients", "4", "--pipelines", "1,4", "--tests", "set,get", "--out", str(tmp_path)],
                       capture_output=True, timeout=300)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    assert "rps ratio" in out and out.count("\nSET ") == 2 and out.count("\nGET ") == 2
    assert list(tmp_path.glob("server-*.txt"))


def test_bench_server_says_what_is_missing(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))          # suite_module puts bench/ on it; undone after
    server = suite_module("server")
    monkeypatch.setattr(server.shutil, "which", lambda tool: None)
    assert server.main(["--quick"]) == 2
