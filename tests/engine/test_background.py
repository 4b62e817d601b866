"""The background thread (sync="normal" fsyncs, the engine's maintenance, the expiry sweep):
a failure there is not swallowed. It is logged through the "kvdb" logger, the database refuses
writes as after any I/O failure, and the next call raises it once."""
import logging
import time

import pytest

import kvdb
from kvdb._core.file import SimFS

PATH = "/sim/db"


class Clock:
    def __init__(self, t=1_700_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("engine", ["btree", "lsm"])
def test_a_background_failure_is_logged_and_raised_by_the_next_call(engine, caplog):
    fs = SimFS()
    clock = Clock()
    db = kvdb.open(PATH, _fs=fs, _clock=clock, sync="off", engine=engine)
    for i in range(20):
        db.put(b"k%02d" % i, b"v", ttl=1)
    db.put(b"keep", b"v")
    caplog.set_level(logging.ERROR, logger="kvdb")
    clock.t += 10                        # every k.. has expired: the sweep's next step deletes them
    fs.fail_after(1, op="write")         # ... and its commit's log write fails
    assert wait_for(lambda: any("background work" in r.getMessage() for r in caplog.records)), \
        "the background failure was not logged"
    record = next(r for r in caplog.records if "background work" in r.getMessage())
    assert record.name == "kvdb" and PATH in record.getMessage() and record.exc_info
    with pytest.raises(kvdb.IOFailureError):
        db.get(b"keep")                  # the next call raises what the background thread hit
    assert db.get(b"keep") == b"v"       # once: reads go on
    with pytest.raises(kvdb.IOFailureError):
        db.put(b"x", b"y")               # writes are refused until reopened
    db.close()
