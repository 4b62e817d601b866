"""Differential tests against a reference redis-server (Debian's package).

    from tests.redisref import reference_pair   # a pytest fixture factory, see below

    @pytest.fixture(scope="module", params=[2, 3], ids=["resp2", "resp3"])
    def pair(request, tmp_path_factory):
        with reference_pair(tmp_path_factory, protocol=request.param) as p:
            yield p

    def test_lpush(pair):
        pair.same("RPUSH", "l", "a", "b")        # same reply from kvdb and from redis-server
        pair.same("LRANGE", "l", 0, -1)
        pair.same_error("LPUSH", "l")            # both reply an error (text compared too)

Both servers bind 127.0.0.1 on ephemeral ports and are stopped when the block ends.
Every command sent through `same` is counted per command name in COMPARED, which
tests/server/test_server_reference_basics.py reports at the end of the run. Where redis-server is
not installed, the fixture skips with the reason.
"""
import contextlib
import os
import shutil
import signal
import subprocess

import pytest

from tests.serverutil import ServerProcess, _die_with_parent, free_port, wait_listening

redis = pytest.importorskip("redis")

COMPARED = {}   # command name (upper) -> number of replies compared


def redis_server_path():
    return shutil.which("redis-server")


@contextlib.contextmanager
def redis_reference(tmp_path, *extra):
    """A redis-server on an ephemeral 127.0.0.1 port, without persistence."""
    exe = redis_server_path()
    if exe is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    port = free_port()
    log = open(os.path.join(tmp_path, f"redis-{port}.log"), "ab")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path), "--protected-mode", "no", *extra],
                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        wait_listening(port, proc, "redis-server")
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _raw_client(port, protocol):
    return redis.Redis(host="127.0.0.1", port=port, protocol=protocol, socket_timeout=10)


def _normalize(reply):
    """Replies as plain Python values (redis-py's RESP3 parser gives sets for set replies
    and dicts for maps: keep them; bytes stay bytes)."""
    if isinstance(reply, list):
        return [_normalize(x) for x in reply]
    if isinstance(reply, tuple):
        return [_normalize(x) for x in reply]
    if isinstance(reply, dict):
        return {_normalize_key(k): _normalize(v) for k, v in reply.items()}
    return reply


def _normalize_key(k):
    return tuple(_normalize(k)) if isinstance(k, (list, tuple)) else k


class Pair:
    """One connection to kvdb and one to redis-server, both raw (no reply callbacks)."""

    def __init__(self, kvdb_port, redis_port, protocol):
        self.protocol = protocol
        self.kv = _raw_client(kvdb_port, protocol)
        self.ref = _raw_client(redis_port, protocol)

    def _send(self, client, args):
        conn = client.connection_pool.get_connection()
        try:
            conn.send_command(*args)
            try:
                return ("ok", _normalize(conn.read_response()))
            except redis.ResponseError as e:
                return ("error", str(e))
        finally:
            client.connection_pool.release(conn)

    def both(self, *args):
        """(kvdb's reply, redis's reply), each ('ok', value) or ('error', text)."""
        COMPARED[str(args[0]).upper()] = COMPARED.get(str(args[0]).upper(), 0) + 1
        return self._send(self.kv, args), self._send(self.ref, args)

    def same(self, *args, unordered=False):
        """Asserts the same reply (unordered: compare as sorted lists, for SMEMBERS and
        the like whose order Redis leaves open). Returns the reply."""
        got, want = self.both(*args)
        if unordered and got[0] == want[0] == "ok":
            got = ("ok", _sorted(got[1]))
            want = ("ok", _sorted(want[1]))
        assert got == want, f"{args}: kvdb replied {got!r}, redis-server {want!r}"
        return got[1]

    def same_error(self, *args, prefix_only=False):
        """Asserts both reply an error; the same text unless prefix_only (then the first word)."""
        got, want = self.both(*args)
        assert got[0] == "error" and want[0] == "error", f"{args}: kvdb {got!r}, redis-server {want!r}"
        if prefix_only:
            assert got[1].split()[0] == want[1].split()[0], f"{args}: kvdb {got!r}, redis-server {want!r}"
        else:
            assert got[1] == want[1], f"{args}: kvdb {got!r}, redis-server {want!r}"

    def flush(self):
        self.kv.flushall()
        self.ref.flushall()

    def close(self):
        self.kv.close()
        self.ref.close()


def _sorted(value):
    if isinstance(value, (list, set)):
        return sorted(value, key=repr)
    return value


@contextlib.contextmanager
def reference_pair(tmp_path_factory, protocol=2, kvdb_args=("--sync", "normal")):
    """A Pair against a fresh kvdb server and a fresh redis-server."""
    tmp = tmp_path_factory.mktemp("ref")
    with redis_reference(str(tmp)) as redis_port:
        with ServerProcess(tmp, *kvdb_args) as srv:
            p = Pair(srv.port, redis_port, protocol)
            try:
                yield p
            finally:
                p.close()
