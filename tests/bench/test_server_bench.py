"""`kvdb bench server` runs end to end (tiny sizes) and prints its ratio table."""
import shutil
import subprocess
import sys

import pytest

from kvdb.cli.cmd_bench import suite_module
from tests.server.test_sharding_twemproxy import nutcracker_path


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


@pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None
                    or nutcracker_path() is None, reason="needs redis-server, redis-benchmark and nutcracker")
def test_bench_server_through_twemproxy(tmp_path):
    """--topology twemproxy adds nodes behind nutcracker and a table of the proxy against one node."""
    p = subprocess.run([sys.executable, "-m", "kvdb", "bench", "server", "--runs", "1", "--requests", "500",
                        "--clients", "4", "--pipelines", "1", "--tests", "set,get", "--topology", "twemproxy",
                        "--nodes", "2"], capture_output=True, timeout=300)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    assert "through twemproxy over 2 kvdb nodes" in out
    section = out.split("through twemproxy")[1]
    assert section.count("\nSET ") == 1 and section.count("\nGET ") == 1


def test_bench_proxy_config_moves_only_ports(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    server = suite_module("server")
    text = server.proxy_config(4242, [5001, 5002])
    assert "listen: 127.0.0.1:4242" in text and "127.0.0.1:5001:1 kvdb-0" in text and "127.0.0.1:5002:1 kvdb-1" in text
    assert "127.0.0.1:7001:1" not in text and "hash_tag" in text and "murmur" in text
