"""Helpers shared by the test modules (not a test module itself)."""
import os
import random
import subprocess
import sys

import kvdb

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(TESTS_DIR, "child_writer.py")


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
