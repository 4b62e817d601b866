"""redis-cli and redis-benchmark (Debian's redis-tools) work against kvdb serve unchanged."""
import shutil
import subprocess

import pytest

from tests.serverutil import ServerProcess

pytestmark = pytest.mark.skipif(shutil.which("redis-cli") is None or shutil.which("redis-benchmark") is None,
                                reason="redis-tools (redis-cli, redis-benchmark) not installed")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("tools")) as s:
        yield s


def cli(srv, *args, stdin=None):
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(srv.port)] + list(args), input=stdin,
                       capture_output=True, timeout=30)
    return p.stdout.decode(), p.returncode


def test_redis_cli(srv):
    assert cli(srv, "PING") == ("PONG\n", 0)
    assert cli(srv, "SET", "greeting", "hello world")[0] == "OK\n"
    assert cli(srv, "GET", "greeting")[0] == "hello world\n"
    assert cli(srv, "HSET", "h", "f", "v")[0] == "1\n"
    out, _ = cli(srv, "--scan", "--pattern", "gree*")
    assert out.split() == ["greeting"]
    out, _ = cli(srv, stdin=b"SET a 1\nINCR a\nGET a\n")
    assert out.split() == ["OK", "2", "2"]
    out, _ = cli(srv, "INFO", "server")
    assert "redis_version" in out
    out, _ = cli(srv, "-3", "HGETALL", "h")  # RESP3
    assert "f" in out and "v" in out
    out, _ = cli(srv, "COMMAND", "DOCS", "get")
    assert "summary" in out


def test_redis_benchmark(srv):
    p = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(srv.port), "-t", "set,get,incr,hset,mset",
                        "-n", "2000", "-c", "10", "-r", "1000", "-P", "4", "-q", "--csv"],
                       capture_output=True, timeout=120)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    for test in ("SET", "GET", "INCR", "HSET", "MSET"):
        assert any(line.startswith(f'"{test}') for line in out.splitlines()), out
    assert cli(srv, "PING")[0] == "PONG\n"


def test_plain_redis_benchmark_runs_every_default_test(srv):
    """redis-benchmark with no -t runs its whole default list (lists, sets, sorted sets,
    LRANGE, MSET ...): before the data types landed it exited 1 at LPUSH."""
    p = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(srv.port), "-n", "500", "-c", "5",
                        "-q", "--csv"], capture_output=True, timeout=300)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    for test in ("LPUSH", "RPOP", "SADD", "SPOP", "ZADD", "ZPOPMIN", "LRANGE_600", "MSET"):
        assert any(line.startswith(f'"{test}') for line in out.splitlines()), out
