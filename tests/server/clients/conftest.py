"""The server the real-client tests (tests/server/clients/test_clients_*.py) talk to.

The fixtures here apply to every test in this directory:

    def test_something(target):
        r = target.client()                  # redis.Redis on it, socket timeout 10 s
        target.url                           # "redis://127.0.0.1:PORT/0" for kombu, Celery, RQ
        target.name                          # "kvdb" or "redis"

`target` is a `kvdb serve` on an ephemeral port with its default settings, as a user
starts it. With KVDB_CLIENT_TESTS_REDIS=1 in the environment every test also runs
against a reference redis-server (Debian's package), which checks the tests
themselves: a test that fails there is wrong, not kvdb.

Each test starts on an empty database (FLUSHALL before it). When a test fails against
kvdb, the server log lines it wrote during the test (a traceback, say) are printed so
the failure names the server-side cause.
"""
import os

import pytest

from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")

TARGETS = ["kvdb"] + (["redis"] if os.environ.get("KVDB_CLIENT_TESTS_REDIS") else [])
SOCKET_TIMEOUT = 10     # seconds: no client call in these tests may hang longer


class Target:
    def __init__(self, name, port, srv=None):
        self.name = name          # "kvdb" or "redis"
        self.port = port          # TCP port on 127.0.0.1
        self.srv = srv            # the ServerProcess for kvdb, None for redis-server
        self.url = f"redis://127.0.0.1:{port}/0"

    def client(self, **kw):
        kw.setdefault("socket_timeout", SOCKET_TIMEOUT)
        kw.setdefault("socket_connect_timeout", SOCKET_TIMEOUT)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def async_client(self, **kw):
        import redis.asyncio
        kw.setdefault("socket_timeout", SOCKET_TIMEOUT)
        kw.setdefault("socket_connect_timeout", SOCKET_TIMEOUT)
        return redis.asyncio.Redis(host="127.0.0.1", port=self.port, **kw)

    def log(self):
        return self.srv.log() if self.srv else ""


@pytest.fixture(scope="module", params=TARGETS)
def target(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "kvdb":
        with ServerProcess(tmp) as srv:
            yield Target("kvdb", srv.port, srv)
    else:
        from tests.redisref import redis_reference
        with redis_reference(str(tmp)) as port:
            yield Target("redis", port)


@pytest.fixture(autouse=True)
def _fresh_and_logged(target):
    c = target.client()
    c.flushall()
    c.close()
    start = len(target.log())
    yield
    # Printed always; pytest shows a test's captured output only when it fails.
    tail = target.log()[start:].strip()
    if tail:
        print(f"--- kvdb server log during the test ---\n{tail[-6000:]}")
