"""Read-only opens by a process that may not write the database's directory or files (issue 15
item 3): it reads the files alone, writes nothing, keeps writers out while it reads, and is
refused with a clear error while a writer is in. Needs root to drop to another user (the test
runs the reader as `nobody` in a forked child); skipped otherwise."""
import os
import shutil
import stat
import tempfile
import time

import pytest

import kvdb

NOBODY = 65534

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="needs root, to read as another user")


@pytest.fixture
def shared_dir():
    d = tempfile.mkdtemp(prefix="kvdb-ro-")
    os.chmod(d, 0o755)                 # others may enter and read, not write
    yield os.path.join(d, "db")
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(fn, wait=True):
    """Run fn() in a forked child as user nobody; its exit code (or the pid with wait=False)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.close(r)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = fn(w)
        except BaseException as e:  # noqa: BLE001 - reported through the exit code
            os.write(w, f"{type(e).__name__}: {e}".encode()[:500])
        finally:
            os._exit(code)
    os.close(w)
    if not wait:
        return pid, r
    _, status = os.waitpid(pid, 0)
    out = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        out += chunk
    os.close(r)
    return os.waitstatus_to_exitcode(status), out.decode()


def files_of(path):
    return {n: (os.stat(os.path.join(path, n)).st_mtime_ns, os.path.getsize(os.path.join(path, n)))
            for n in sorted(os.listdir(path))}


@pytest.mark.parametrize("engine", ["btree", "lsm"])
def test_reads_a_database_it_may_not_write(shared_dir, engine):
    with kvdb.open(shared_dir, engine=engine) as db:
        for i in range(500):
            db.put(b"k%04d" % i, b"v%d" % i)
    before = files_of(shared_dir)

    def child(w):
        with kvdb.open(shared_dir, readonly=True) as db:
            ok = len(list(db.scan())) == 500 and db.get(b"k0042") == b"v42"
            try:
                db.put(b"x", b"y")
            except kvdb.ReadOnlyError:
                return 0 if ok else 3
        return 4

    code, out = as_nobody(child)
    assert code == 0, out
    assert files_of(shared_dir) == before          # not a byte written, no file created


def test_refused_beside_a_writer_it_cannot_follow(shared_dir):
    with kvdb.open(shared_dir) as db:
        db.put(b"a", b"1")

        def child(w):
            try:
                kvdb.open(shared_dir, readonly=True)
            except kvdb.ReadOnlyError as e:
                os.write(w, str(e).encode())
                return 0
            return 5

        code, out = as_nobody(child)
        assert code == 0, out
        assert "write access" in out


def test_writers_wait_until_it_is_done(shared_dir):
    with kvdb.open(shared_dir) as db:
        db.put(b"a", b"1")

    def child(w):
        with kvdb.open(shared_dir, readonly=True) as db:
            os.write(w, b"open")
            time.sleep(2)
            return 0 if db.get(b"a") == b"1" else 6

    pid, r = as_nobody(child, wait=False)
    try:
        assert os.read(r, 4) == b"open"
        with pytest.raises(kvdb.LockedError, match="without write access"):
            kvdb.open(shared_dir)
        with kvdb.open(shared_dir, readonly=True) as other:     # readers may join it
            assert other.get(b"a") == b"1"
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0
    with kvdb.open(shared_dir) as db:                  # and writers once it is gone
        db.put(b"b", b"2")
    assert stat.S_IMODE(os.stat(os.path.dirname(shared_dir)).st_mode) == 0o755
