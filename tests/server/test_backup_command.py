"""BACKUP <name> (kvdb/server/commands/admin_backup.py, docs/server.md "Hot backup"): a
consistent copy of the served database in backup-dir/<name>, made while the server serves;
+OK once it is complete; the copy opens with kvdb.open and holds every acknowledged write;
its error cases; backup-dir shown by CONFIG GET and refused by CONFIG SET."""
import os
import threading
import time

import pytest

import kvdb
from kvdb.server.keyspace import decode_entry, meta_key
from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")

ENGINES = ["btree", "lsm"]


def stored_string(db, name, number=0):
    """The value of string key `name` of logical database `number` in a served database's
    files (docs/format/server-keys.md), or None."""
    entry = decode_entry(db.get(meta_key(number, name)))
    return None if entry is None else entry.body


def assert_holds(path, expected):
    """The copy at path opens read-only and holds every key of `expected` with its value."""
    with kvdb.open(str(path), readonly=True) as db:
        db.verify()
        missing = [k for k, v in expected.items() if stored_string(db, k) != v]
    assert not missing, f"{len(missing)} acknowledged keys missing from the backup, e.g. {missing[:3]}"


def error_of(call):
    with pytest.raises(redis.ResponseError) as e:
        call()
    return str(e.value)


@pytest.fixture(params=ENGINES)
def server(request, tmp_path):
    with ServerProcess(tmp_path, "--engine", request.param, "--backup-dir", str(tmp_path / "backups"),
                       "--sync", "full") as srv:
        srv.engine = request.param
        srv.backups = tmp_path / "backups"
        yield srv


def test_backup_holds_every_acknowledged_key(server):
    r = server.client()
    expected = {b"k%05d" % i: b"v%d" % i for i in range(3000)}
    for i in range(0, 3000, 500):
        r.mset({k: expected[k] for k in list(expected)[i:i + 500]})
    r.delete(b"k00000")
    del expected[b"k00000"]
    assert r.execute_command("BACKUP", "first") in (b"OK", True)
    assert os.listdir(server.backups) == ["first"]   # no partial copy left beside it
    assert_holds(server.backups / "first", expected)
    with kvdb.open(str(server.backups / "first"), readonly=True) as db:
        assert db.engine == server.engine
        assert stored_string(db, b"k00000") is None
    assert r.get(b"k00001") == b"v1"                  # the server goes on as before
    assert r.set(b"after", b"1")


def test_a_write_pipelined_before_backup_is_in_it(server):
    """SET and BACKUP in one pipeline run in one command group: the copy waits for that
    group's commit, so it holds the SET."""
    r = server.client()
    p = r.pipeline(transaction=False)
    p.set(b"same-group", b"yes")
    p.execute_command("BACKUP", "piped")
    p.get(b"same-group")                              # waits for BACKUP's reply, then runs
    assert p.execute()[1:] in ([b"OK", b"yes"], [True, b"yes"])
    assert_holds(server.backups / "piped", {b"same-group": b"yes"})


def test_the_copy_serves(server, tmp_path):
    """The copy is a data directory like any other: kvdb serve starts on it."""
    r = server.client()
    r.set(b"greeting", b"hello")
    r.hset(b"h", mapping={b"f": b"v"})
    r.execute_command("BACKUP", "served")
    copy_dir = tmp_path / "second"
    copy_dir.mkdir()
    with ServerProcess(copy_dir, data=server.backups / "served") as second:
        r2 = second.client()
        assert r2.get(b"greeting") == b"hello" and r2.hgetall(b"h") == {b"f": b"v"}
        assert r2.dbsize() == 2


def test_errors(server, tmp_path):
    r = server.client()
    r.set(b"k", b"v")
    for bad in ["", ".", "..", "a/b", "/abs", "../up", "nul\0byte"]:
        assert "invalid backup name" in error_of(lambda: r.execute_command("BACKUP", bad)), bad
    assert not server.backups.exists() or os.listdir(server.backups) == []
    r.execute_command("BACKUP", "once")
    assert "already exists" in error_of(lambda: r.execute_command("BACKUP", "once"))
    os.makedirs(server.backups / "taken")
    assert "already exists" in error_of(lambda: r.execute_command("BACKUP", "taken"))
    assert os.listdir(server.backups / "taken") == []
    assert "wrong number of arguments" in error_of(lambda: r.execute_command("BACKUP"))
    assert "wrong number of arguments" in error_of(lambda: r.execute_command("BACKUP", "a", "b"))
    # inside MULTI: EXEC's reply holds the error; in a script: refused
    p = r.pipeline(transaction=True)
    p.execute_command("BACKUP", "in-multi")
    with pytest.raises(redis.ResponseError, match="not allowed inside a transaction"):
        p.execute()
    assert not (server.backups / "in-multi").exists()
    assert "script" in error_of(lambda: r.eval("return redis.call('BACKUP', 'in-script')", 0)).lower()
    assert not (server.backups / "in-script").exists()
    assert sorted(os.listdir(server.backups)) == ["once", "taken"]


def test_backup_dir_is_shown_and_not_settable(server, tmp_path):
    r = server.client()
    assert r.config_get("backup-dir") == {"backup-dir": str(server.backups)}
    elsewhere = tmp_path / "elsewhere"
    assert "immutable" in error_of(lambda: r.config_set("backup-dir", str(elsewhere)))
    assert r.config_get("backup-dir") == {"backup-dir": str(server.backups)}
    assert not elsewhere.exists()


def test_disabled_without_backup_dir(tmp_path):
    with ServerProcess(tmp_path) as srv:
        r = srv.client()
        assert error_of(lambda: r.execute_command("BACKUP", "x")) == "BACKUP is disabled: set backup-dir"
        assert r.config_get("backup-dir") == {"backup-dir": ""}


def test_backup_dir_inside_the_data_directory_is_refused(tmp_path):
    with ServerProcess(tmp_path, "--backup-dir", str(tmp_path / "data" / "backups")) as srv:
        r = srv.client()
        assert "inside the data directory" in error_of(lambda: r.execute_command("BACKUP", "x"))
        assert not (tmp_path / "data" / "backups").exists()


class ServerThread:
    """A kvdb.server.Server on an event loop in a thread of this process, so a test can hold
    a backup's copy step open (patching admin_backup._write_copy) and see what the server does
    meanwhile."""

    def __init__(self, tmp_path, engine):
        from kvdb.server import Server
        from kvdb.server.config import Config
        from tests.serverutil import free_port
        cfg = Config()
        for name, value in (("dir", tmp_path / "data"), ("backup-dir", tmp_path / "backups"),
                            ("port", free_port()), ("engine", engine)):
            cfg.set(name, str(value))
        self.port = cfg["port"]
        self.server = Server(cfg)
        self.loop = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.failure = None

    def _run(self):
        import asyncio
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self.server.serve())
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.failure = e
        finally:
            if self.server.db is not None:
                self.server.db.close()
            self.loop.close()

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return self
            except redis.ConnectionError:
                assert self.thread.is_alive(), self.failure
                time.sleep(0.05)
        raise RuntimeError("the in-process server did not start")

    def client(self, **kw):
        kw.setdefault("socket_timeout", 30)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def __exit__(self, *exc):
        if self.loop is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.server.request_shutdown, "test over")
        self.thread.join(30)
        assert not self.thread.is_alive(), "the in-process server did not stop"
        assert self.failure is None, self.failure


@pytest.mark.parametrize("engine", ENGINES)
def test_other_clients_are_served_during_a_backup(tmp_path, monkeypatch, engine):
    """While one client's BACKUP is copying (held open here), other clients' reads and writes
    are answered, a second BACKUP is refused as in progress, and the first client's own next
    command waits for its BACKUP reply. Released, the copy holds everything acknowledged
    before BACKUP was sent."""
    from kvdb.server.commands import admin_backup
    copying, release = threading.Event(), threading.Event()
    real_copy = admin_backup._write_copy

    def held_copy(*args):
        copying.set()
        assert release.wait(30), "the test never released the backup"
        return real_copy(*args)

    monkeypatch.setattr(admin_backup, "_write_copy", held_copy)
    with ServerThread(tmp_path, engine) as srv:
        r = srv.client()
        acknowledged = {b"k%04d" % i: b"v%d" % i for i in range(500)}
        r.mset(acknowledged)
        replies = []
        backing_up = srv.client()
        pipe = backing_up.pipeline(transaction=False)
        pipe.execute_command("BACKUP", "held")
        pipe.get(b"k0001")                                  # runs only after BACKUP's reply
        t = threading.Thread(target=lambda: replies.append(pipe.execute()))
        t.start()
        try:
            assert copying.wait(20), "the backup's copy step never started"
            other = srv.client()
            assert other.set(b"during", b"1") and other.get(b"during") == b"1"
            assert other.get(b"k0002") == b"v2"
            assert error_of(lambda: other.execute_command("BACKUP", "second")) == "a backup is already in progress"
            assert not replies, "BACKUP replied before its copy was made"
        finally:
            release.set()
            t.join(30)
        assert replies and replies[0][0] in (b"OK", True) and replies[0][1] == b"v1", replies
        assert sorted(os.listdir(tmp_path / "backups")) == ["held"]
        assert_holds(tmp_path / "backups" / "held", acknowledged)
        assert r.execute_command("BACKUP", "after") in (b"OK", True)   # the flag was cleared
    assert_holds(tmp_path / "backups" / "after", {**acknowledged, b"during": b"1"})
