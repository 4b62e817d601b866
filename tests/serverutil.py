"""Starting and stopping `kvdb serve` for tests.

Each server binds 127.0.0.1 on an ephemeral port, keeps its data in a temporary
directory, and is stopped (SIGTERM, then SIGKILL after a timeout) when the test
ends, so no process outlives its test.

    from tests.serverutil import ServerProcess
    with ServerProcess(tmp_path, "--sync", "full") as srv:
        r = srv.client()             # a redis.Redis on it (decode_responses=False)
        srv.port, srv.data, srv.log()
"""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

try:
    import redis
except ImportError:  # pragma: no cover - the test extra installs it
    redis = None


def _die_with_parent():
    """In the child before exec: ask Linux to SIGTERM it when the test process dies, so a
    killed test run (timeout, Ctrl-C) leaves no server behind."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what, timeout=10):
    """Return once 127.0.0.1:port accepts a connection; RuntimeError naming `what` if the
    process `proc` exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.05)


class ServerProcess:
    def __init__(self, tmp_path, *args, data=None, port=None, env=None, start_timeout=20):
        self.data = str(data or (tmp_path / "data"))
        self.port = port or free_port()
        self.log_path = str(tmp_path / f"server-{self.port}.log")
        self.args = list(args)
        self.env = env
        self.proc = None
        self.start_timeout = start_timeout

    def start(self):
        cmd = [sys.executable, "-m", "kvdb", "serve", "--data", self.data, "--port", str(self.port),
               "--bind", "127.0.0.1"] + self.args
        env = dict(os.environ)
        env.update(self.env or {})
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start within {self.start_timeout}s:\n{self.log()}")

    def stop(self, timeout=15):
        """SIGTERM and wait (graceful shutdown); SIGKILL if it hangs. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self._log.close()
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def client(self, **kw):
        if redis is None:
            pytest.skip("redis-py is not installed")
        kw.setdefault("socket_timeout", 10)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
