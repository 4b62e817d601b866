"""Helpers shared by the test modules (not a test module itself)."""
import os
import random
import subprocess
import sys

import kvdb
from tests.child_writer import log_value

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(TESTS_DIR, "child_writer.py")
LONG = False  # set by conftest.py under --long (for module-level settings)


def value(seed, n):
    """n reproducible pseudo-random (incompressible) bytes."""
    return random.Random(seed).randbytes(n)


def dump(view, **scan_args):
    """Everything a db, snapshot or transaction sees, as a dict (checks the scan order too)."""
    items = list(view.scan(**scan_args))
    keys = [k for k, _ in items]
    assert keys == sorted(keys), "scan is not in ascending key order"
    assert len(set(keys)) == len(keys), "scan returned a key twice"
    for k, v in items:
        assert type(k) is bytes and type(v) is bytes, (type(k), type(v))
    return dict(items)


def model_scan(model, start=None, end=None, prefix=None, reverse=False):
    """What scan(...) must return for a dict model."""
    keys = sorted(model)
    if start is not None:
        keys = [k for k in keys if k >= start]
    if end is not None:
        keys = [k for k in keys if k < end]
    if prefix is not None:
        keys = [k for k in keys if k.startswith(prefix)]
    if reverse:
        keys.reverse()
    return [(k, model[k]) for k in keys]


def child_env():
    """Environment for a child python that must import the same kvdb as this process."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(kvdb.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_child(*args, timeout=60, **kw):
    """Run tests/child_writer.py with args; returns the CompletedProcess (text mode)."""
    return subprocess.run([sys.executable, CHILD, *map(str, args)], env=child_env(),
                          capture_output=True, text=True, timeout=timeout, **kw)


def popen_child(*args, prefix=(), **kw):
    return subprocess.Popen([*prefix, sys.executable, CHILD, *map(str, args)], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def check_commit_state(db, context):
    """For a database written by child_writer.py "commits": check it holds exactly the state
    after transaction n for some n, and return n (-1 if empty)."""
    state = dump(db)
    if b"counter" not in state:
        assert state == {}, f"{context}: no counter but {len(state)} keys"
        return -1
    n = int(state[b"counter"])
    for j in range(4):
        v = state.get(b"tag:%d" % j)
        assert v is not None and v.split(b"|")[0] == b"%d" % n, \
            f"{context}: tag:{j}={v[:20] if v else v!r} but counter={n}: a transaction is half-applied"
    logs = sorted(k for k in state if k.startswith(b"log:"))
    assert logs == [b"log:%08d" % i for i in range(n + 1)], f"{context}: log keys do not match counter {n}"
    for i in range(n + 1):
        assert state[b"log:%08d" % i] == log_value(i), f"{context}: log:{i} has the wrong value"
    tmps = [k for k in state if k.startswith(b"tmp:")]
    assert tmps == [b"tmp:%d" % n], f"{context}: tmp keys {tmps[:3]} for counter {n}"
    assert len(state) == 1 + 4 + (n + 1) + 1, f"{context}: unexpected keys"
    return n


def apply_ops(model, ops):
    """Apply [("put", k, v) | ("delete", k)] to a dict model."""
    for op in ops:
        if op[0] == "put":
            model[op[1]] = op[2]
        else:
            model.pop(op[1], None)


def drop_abandoned(ref):
    """Before a simulated crash: make sure the open that the weak reference `ref` points to
    (None when the open itself failed, so it is not known) is gone, so that nothing it still
    holds writes after the crash. A full gc.collect() walks every object of the test process:
    tens of milliseconds per call in a full suite run, most of some crash tests' time. So it
    runs only when the open is still alive (a reference cycle, such as an exception's
    traceback, keeps it) or not known."""
    import gc
    if ref is None or ref() is not None:
        gc.collect()


def open_after_drop(path, **options):
    """kvdb.open(path) right after the test dropped its last reference to an open database
    there without closing it. Its background thread may be in the middle of a step that holds
    the database for a moment; the lock is released when that step ends and the object is
    freed, so a LockedError naming this process is retried for up to 5 s."""
    import gc
    import time
    deadline = time.monotonic() + 5
    while True:
        gc.collect()
        try:
            return kvdb.open(path, **options)
        except kvdb.LockedError as e:
            if e.pid != os.getpid() or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
