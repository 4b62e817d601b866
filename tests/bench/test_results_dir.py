"""Where `kvdb bench` writes its results (issue 14, item 9): the current directory by default, or
--out DIR (--results-dir still works), and never into the checkout unless asked, wherever it is
run from."""
import glob
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKOUT_RESULTS = os.path.join(REPO, "bench", "results")


def checkout_results():
    return sorted(os.listdir(CHECKOUT_RESULTS)) if os.path.isdir(CHECKOUT_RESULTS) else []


def bench(cwd, *args):
    cmd = [sys.executable, "-m", "kvdb", "bench", "--quick", "--num", "300", "--runs", "1", "--engines",
           "kvdb-btree", "--workloads", "fillrandom,readrandom", "--no-charts", "--quiet", "--dir", str(cwd), *args]
    p = subprocess.run(cmd, cwd=cwd, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return p


def results_in(d):
    return glob.glob(os.path.join(str(d), "db_bench-*-quick-n300.json"))


def test_default_is_the_current_directory(tmp_path):
    before = checkout_results()
    p = bench(tmp_path)
    written = results_in(tmp_path)
    assert len(written) == 1 and f"results: {written[0]}" in p.stderr
    assert checkout_results() == before


@pytest.mark.parametrize("flag", ["--out", "--results-dir"])
def test_out_names_the_directory(tmp_path, flag):
    before = checkout_results()
    bench(tmp_path, flag, "runs/here")                       # relative to the current directory
    assert len(results_in(tmp_path / "runs" / "here")) == 1
    assert results_in(tmp_path) == []
    assert checkout_results() == before
