"""A tool that reads never writes: `kvdb check`, `stats`, `get`, `scan` and `dump` leave every
file of the database directory as they found it, bytes and modification time, on both engines
(issue 14, item 6). The database is left as a crash leaves it: commits in the log that no
checkpoint or flush has taken in yet, which is when an open would be tempted to tidy up.
The one exception is the B+Tree's shared-memory file, data.kvdb-shm (docs/format/shm.md): every
open of a B+Tree, read-only ones included, registers its slot there (issue 15), so a reading tool
writes it by design; it must still be there afterwards, and every other file must be untouched."""
import os

import pytest

import kvdb
from tests.cli.test_cli import run_cli
from tests.crash.torture import wait_released

SHARED_MEMORY = {"btree": {"data.kvdb-shm"}, "lsm": set()}   # written by every open, by design


def snapshot(path):
    """{name: (bytes, mtime_ns)} of every file in the directory."""
    out = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            with open(full, "rb") as f:
                out[name] = (f.read(), os.stat(full).st_mtime_ns)
    return out


def make_database(path, engine):
    opts = dict(engine=engine, sync="full")
    if engine == "lsm":
        opts.update(memtable_size=32 << 10, sstable_size=32 << 10)
    db = kvdb.open(path, **opts)
    for i in range(400):
        db.put(b"k%04d" % i, b"v" * 200, ttl=10 ** 6 if i % 3 == 0 else None)
    db.checkpoint()
    for i in range(50):
        db.put(b"late%03d" % i, b"in the log only")
    del db                               # dropped: the last commits are only in the log
    wait_released(path)


@pytest.mark.parametrize("engine", ["btree", "lsm"])
@pytest.mark.parametrize("tool", [("check",), ("stats",), ("get", "k0001"), ("scan",), ("dump", "-o", "{out}")])
def test_reading_tools_leave_the_directory_untouched(tmp_path, engine, tool):
    path = str(tmp_path / "db")
    make_database(path, engine)
    before = snapshot(path)
    args = [a.format(out=tmp_path / "dump.out") for a in tool]
    p = run_cli(args[0], path, *args[1:])
    assert p.returncode == 0, p.stderr.decode()
    after = snapshot(path)
    assert sorted(after) == sorted(before), f"kvdb {tool[0]} created or removed files"
    changed = [name for name in before if before[name] != after[name] and name not in SHARED_MEMORY[engine]]
    assert not changed, f"kvdb {tool[0]} changed {changed} on {engine}"
