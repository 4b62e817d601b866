"""The files in deploy/ are what their comments and docs/sharding.md say: the systemd unit passes
`systemd-analyze verify` (with ExecStart pointed at this checkout's kvdb) and starts a server
whose command line `kvdb serve` accepts; Redis Sentinel runs deploy/sentinel.conf (ports moved)
and reports the settings it names; the twemproxy configuration is checked end to end in
test_sharding_twemproxy.py, Sentinel failover in test_sentinel_failover.py."""
import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from tests.serverutil import ServerProcess, free_port, wait_listening

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(REPO, "deploy", "kvdb.service")
SENTINEL_CONF = os.path.join(REPO, "deploy", "sentinel.conf")


def exec_start():
    """The unit's ExecStart as argv."""
    line = next(l for l in open(UNIT).read().splitlines() if l.startswith("ExecStart="))
    return shlex.split(line[len("ExecStart="):])


def test_systemd_unit_verifies(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (the unit is checked where systemd is)")
    kvdb_script = shutil.which("kvdb") or os.path.join(os.path.dirname(sys.executable), "kvdb")
    if not os.access(kvdb_script, os.X_OK):
        pytest.skip("the kvdb script is not installed next to this Python")
    text = open(UNIT).read().replace("/usr/local/bin/kvdb", kvdb_script)
    (tmp_path / "kvdb.service").write_text(text)
    p = subprocess.run([tool, "verify", str(tmp_path / "kvdb.service")], capture_output=True, text=True, timeout=60)
    if p.returncode != 0 and "Failed to" in p.stderr and "kvdb.service" not in p.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {p.stderr.strip()[:200]}")
    assert p.returncode == 0 and "kvdb.service" not in p.stderr, p.stderr


def test_systemd_unit_command_line_starts_a_server(tmp_path):
    """The options in ExecStart, with the data directory and port moved, start kvdb serve."""
    argv = exec_start()
    assert argv[0] == "/usr/local/bin/kvdb" and argv[1] == "serve"
    opts = argv[2:]
    for flag in ("--data", "--port", "--bind"):
        i = opts.index(flag)
        del opts[i:i + 2]
    assert "--sync" in opts
    (tmp_path / "node").mkdir()
    with ServerProcess(tmp_path / "node", *opts) as srv:
        r = srv.client()
        assert r.set(b"k", b"v") and r.get(b"k") == b"v"
        assert r.config_get("sync") == {"sync": "normal"}


def test_sentinel_conf_runs_and_watches_a_kvdb_primary(tmp_path):
    """deploy/sentinel.conf with its ports moved: Sentinel starts with it, finds the kvdb primary
    and its replica, and reports the settings the file names."""
    redis = pytest.importorskip("redis")
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian's redis-server package runs Sentinel)")
    with ServerProcess(tmp_path, data=tmp_path / "p") as primary, \
            ServerProcess(tmp_path, "--replicaof", f"127.0.0.1 {primary.port}", data=tmp_path / "r"):
        port = free_port()
        text = open(SENTINEL_CONF).read()
        assert "sentinel monitor kvdb 127.0.0.1 6380 2" in text
        text = text.replace("port 26379", f"port {port}").replace("127.0.0.1 6380 2",
                                                                    f"127.0.0.1 {primary.port} 2")
        conf = tmp_path / "sentinel.conf"
        conf.write_text(text + f"dir {tmp_path}\n")
        proc = subprocess.Popen([server, str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_listening(port, proc, "redis-server --sentinel")
            s = redis.Redis(port=port, decode_responses=True)
            master = s.sentinel_master("kvdb")
            assert (master["port"], master["quorum"], master["down-after-milliseconds"],
                    master["failover-timeout"], master["parallel-syncs"]) == (primary.port, 2, 5000, 60000, 1)
            deadline = time.monotonic() + 30
            while not s.sentinel_slaves("kvdb") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(s.sentinel_slaves("kvdb")) == 1
        finally:
            proc.terminate()
            proc.wait(10)
