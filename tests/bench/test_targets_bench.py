"""`kvdb bench targets`: every ratio of the performance targets in one run, as one table.
The table's logic on made-up numbers, then the whole suite end to end in --quick mode."""
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "bench"))

from dbbench import targets  # noqa: E402


def made_up(args):
    kv = {"summary": {"kvdb-btree": {"readrandom": {"median": 200.0}, "seekrandom": {"median": 90.0}},
                      "lmdb": {"readrandom": {"median": 100.0}, "seekrandom": {"median": 100.0}}},
          "io_summary": {"kvdb-btree": {"fillrandom": {"space_amp": 2.0}}, "lmdb": {"fillrandom": {"space_amp": 1.6}}},
          "skipped": {"plyvel": "not installed"}}
    return {"kv": kv, "server": {"kvdb": {("GET", 16): 80.0}, "redis": {("GET", 16): 100.0}}}


def row(table, label, peer):
    lines = [x for x in table.splitlines() if f" {label} " in x and f" {peer} " in x]
    assert len(lines) == 1, (label, peer, table)
    return lines[0]


def tail(table, label, peer):
    """(ratio, target, result) of a row."""
    cells = re.split(r"\s{2,}", row(table, label, peer).strip())
    return tuple(cells[-3:])


def test_each_target_is_met_missed_reported_or_said_why_not_measured():
    args = targets.parse_args(["--parts", "kv,server"], "t")
    table = targets.render(args, made_up(args), {("kv", "plyvel"): "not installed"}, {})
    assert tail(table, "B+Tree readrandom", "lmdb") == ("2.00x", ">=1", "met")
    assert tail(table, "B+Tree seekrandom (seek+next10)", "lmdb") == ("0.90x", ">=1", "MISSED")
    assert tail(table, "B+Tree file after fillrandom", "lmdb") == ("1.25x", "<=1.2", "MISSED")   # lower is better
    assert row(table, "LSM seekrandom (seek+next10)", "plyvel").endswith("not measured: not installed")
    assert row(table, "B+Tree overwrite", "lmdb").endswith("  not measured")
    assert tail(table, "GET -P 16", "redis") == ("0.80x", ">=0.8", "met")
    assert not [x for x in table.splitlines() if x.startswith(("documents ", "durable ", "scale "))]  # not asked
    assert "2 met, 2 missed" in table


def test_parts_are_checked_before_anything_runs(capsys):
    with pytest.raises(SystemExit):
        targets.parse_args(["--parts", "kv,nope"], "t")
    assert "unknown part(s) nope" in capsys.readouterr().err


def installed(module):
    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None,
                    reason="needs redis-server and redis-benchmark (.ci/run installs them)")
def test_a_small_run_prints_and_saves_one_table_of_its_parts(tmp_path):
    """kv, documents and the durable server part on tiny sizes (the server part runs the same
    code as durable with other tests; scale is kv at another size). A peer that is not
    installed (the `bench` extra) is a row that says so."""
    p = subprocess.run([sys.executable, "-m", "kvdb", "bench", "targets", "--runs", "1", "--num", "5000", "--docs", "200",
                        "--requests", "5000", "--parts", "kv,documents,durable", "--dir", str(tmp_path),
                        "--out", str(tmp_path / "results")],
                       cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    table = p.stdout.split("kvdb bench targets: ")[-1]
    for label, peer, module in (("B+Tree readrandom", "lmdb", "lmdb"), ("LSM seekrandom (seek+next10)", "plyvel", "plyvel"),
                                ("LSM readrandom", "sqlite3", "sqlite3"), ("insert_many", "sqlite3-json1", "sqlite3"),
                                ("SET -P 1", "redis", None), ("INCR -P 16", "redis", None)):
        line = row(table, label, peer)
        if module is None or installed(module):
            assert line.endswith(("met", "MISSED", "reported")), line
        else:
            assert re.search(r"not measured: \S", line) and module in line, line
    assert not [x for x in table.splitlines() if x.startswith(("server ", "scale "))]
    saved = glob.glob(str(tmp_path / "results" / "targets-*.txt"))
    assert len(saved) == 1 and "B+Tree readrandom" in open(saved[0]).read()
    assert not [n for n in os.listdir(tmp_path) if n != "results"], "the runs left their databases behind"
