"""bench/server_types.py runs end to end on tiny sizes (seconds) and prints both tables."""
import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench", "server_types.py")
pytestmark = pytest.mark.timeout(180)   # pytest-timeout (the test extra)


@pytest.mark.skipif(any(shutil.which(t) is None for t in ("redis-server", "redis-benchmark", "redis-cli")),
                    reason="needs redis-server, redis-benchmark and redis-cli")
def test_server_types_bench_smoke(tmp_path):
    p = subprocess.run([sys.executable, SCRIPT, "--runs", "1", "--requests", "300", "--clients", "4",
                        "--pipelines", "1,4", "--tests", "lpush,zadd,lrange_100", "--syncs", "normal",
                        "--big", "2000", "--small", "100", "--scale-requests", "200", "--out", str(tmp_path),
                        "--dir", str(tmp_path)], capture_output=True, timeout=170)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    assert out.count("\nLPUSH ") == 2 and out.count("\nLRANGE_100 ") == 2 and "ratio normal" in out
    for name in ("ZADD", "ZRANK", "ZRANGE-100", "ZRANGEBYSCORE-100", "XADD", "XRANGE-100"):
        assert f"\n{name} " in out.split("Part 2")[1], name
    assert list(tmp_path.glob("server_types-*.txt"))


def test_server_types_bench_says_what_is_missing(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))     # no redis tools on this PATH
    p = subprocess.run([sys.executable, SCRIPT, "--quick", "--no-save"], capture_output=True, timeout=60, env=env)
    assert p.returncode == 2 and b"is not installed" in p.stderr
