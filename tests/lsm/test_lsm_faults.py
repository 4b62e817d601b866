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


# -- item 5: a lying bloom filter -------------------------------------------------------

FOOTER = 52            # sstable footer: index off u64, size u32, filter off u64 (at 12), size u32 (at 20), ...


def lsm_with_tables(path):
    """Three level-0 tables of interleaved keys (each flushed by a checkpoint; below the
    level-0 compaction trigger, so no background compaction replaces them)."""
    model = {}
    with kvdb.open(path, engine="lsm", sync="off", memtable_size=4 << 20) as db:
        for t in range(3):
            for i in range(t, 1500, 3):
                model[b"k%05d" % i] = value(i, 200)
                db.put(b"k%05d" % i, model[b"k%05d" % i])
            db.checkpoint()
    names = tables(path)
    assert len(names) == 3, f"expected three tables, got {names}"
    return model, names


def zero_filter(sst):
    """Zero a table's filter bits (the probe count, its last byte, stays) and recompute the
    block checksum: crc32c of payload + type byte, stored after the type (docs/format/sstable.md).
    Returns the filter block's offset."""
    with open(sst, "r+b") as f:
        data = bytearray(f.read())
        foff, fsize = struct.unpack_from("<QI", data, len(data) - FOOTER + 12)
        assert data[foff + fsize] == 0, "the filter block is stored raw"
        data[foff:foff + fsize - 1] = bytes(fsize - 1)
        struct.pack_into("<I", data, foff + fsize + 1, crc32c_of(bytes(data[foff:foff + fsize + 1])))
        f.seek(0)
        f.write(data)
    return foff


def test_verify_checks_each_filter_against_its_keys(db_path):
    model, names = lsm_with_tables(db_path)
    victim = os.path.join(db_path, names[len(names) // 2])
    foff = zero_filter(victim)
    with kvdb.open(db_path, engine="lsm") as db:
        assert dump(db) == model                       # the scan does not use the filter
        missed = [k for k, v in model.items() if db.get(k) != v]
        assert missed, "a zeroed filter should hide the table's keys from get(): the test damaged nothing"
        with pytest.raises(kvdb.CorruptionError) as ei:
            db.verify()
    e = ei.value
    assert e.path == victim and e.offset == foff, (e.path, e.offset, str(e))
    assert victim in str(e) and f"offset {foff}" in str(e) and "filter" in str(e)


def test_kvdb_check_reports_a_lying_filter(db_path, capsys):
    from kvdb.cli.main import main
    model, names = lsm_with_tables(db_path)
    victim = os.path.join(db_path, names[0])
    foff = zero_filter(victim)
    status = main(["check", db_path])
    text = capsys.readouterr().out
    assert status == 1, text
    assert f"{victim}" in text and "filter" in text and f"offset {foff}" in text, text
