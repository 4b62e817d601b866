"""The LSM's read path under faults and damage its checksums cannot see (issue 14):
- item 4: a failed pread of an .sst during get() or a scan is a kvdb.IOFailureError naming
  the table, as the B+Tree's is for its data file, with the OSError as __cause__;
- item 5: a bloom filter damaged with its checksum intact (get() would miss keys that scan()
  finds) is caught by verify() and `kvdb check`, naming the table and the filter block.
"""
import os
import struct

import pytest

import kvdb
from kvdb._core.coding import crc32c_of
from kvdb._core.file import SimFS
from tests.helpers import dump, value

PATH = "/sim/db"
SMALL = dict(engine="lsm", sync="off", memtable_size=16 << 10, sstable_size=16 << 10,
             cache_size=16 << 10)


def tables(fs_or_path):
    return sorted(n for n in os.listdir(fs_or_path) if n.endswith(".sst"))


def sim_db_with_tables():
    """A SimFS LSM database with several tables, reopened so nothing is cached."""
    fs = SimFS()
    model = {b"k%05d" % i: value(i, 300) for i in range(600)}
    with kvdb.open(PATH, _fs=fs, **SMALL) as db:
        for k, v in model.items():
            db.put(k, v)
    return fs, model


# -- item 4: failed reads ------------------------------------------------------------

def assert_io_failure(e):
    assert isinstance(e, kvdb.IOFailureError), f"{type(e).__name__}: {e}"
    assert ".sst" in str(e), f"the error should name the table file: {e}"
    assert isinstance(e.__cause__, OSError)


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_failed_table_read_in_get_is_an_io_failure(nth):
    fs, model = sim_db_with_tables()
    with kvdb.open(PATH, _fs=fs, **SMALL) as db:
        fs.fail_after(nth, op="read")
        with pytest.raises(kvdb.Error) as ei:
            for k, v in model.items():
                assert db.get(k) == v
        assert_io_failure(ei.value)
        assert dump(db) == model        # the failure was one read: the next ones work


@pytest.mark.parametrize("reverse", [False, True])
def test_failed_table_read_in_scan_is_an_io_failure(reverse):
    fs, model = sim_db_with_tables()
    with kvdb.open(PATH, _fs=fs, **SMALL) as db:
        fs.fail_after(2, op="read")
        with pytest.raises(kvdb.Error) as ei:
            list(db.scan(reverse=reverse))
        assert_io_failure(ei.value)
        assert dump(db) == model

