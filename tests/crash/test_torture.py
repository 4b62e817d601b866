"""The corruption torture suite (the harness and its outcome classes: tests/crash/torture.py).

Each engine's database is damaged region by region (file header, meta pages, branch, leaf,
overflow and freelist pages; CURRENT, manifest, table blocks and footers; the log's header,
first, middle and last record) in three ways (bit flips, zeroed runs, forged checksums), and
every trial must end in a clean kvdb.Error, intact data, or a torn tail the database reported.
Silent wrong data (except after a forged checksum, which no reader can detect), a crash, a hang
or a foreign exception fails the test. The default run makes 4 trials per region and damage
(about 320); --long makes 60 (over 2,000 per engine). The tables print at the end of the run.
"""
import pytest

from tests.crash import torture


@pytest.mark.parametrize("engine", ["btree", "lsm"])
def test_corruption_torture(engine, tmp_path, long_mode):
    per_cell = 60 if long_mode else 4
    table, failures = torture.run_trials(str(tmp_path), engine, per_cell, seed=13)
    report = torture.format_table(engine, table)
    torture.REPORTS.append(report)
    assert not failures, report + "\n\nfailures:\n" + "\n".join(failures[:40])
