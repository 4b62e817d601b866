"""`kvdb bench` finds the benchmark in the checkout kvdb runs from (bench/ next to the kvdb
package), and without one (kvdb installed from a wheel, simulated here by pointing kvdb.__file__
into an empty site-packages) it fails with one line that says what to do."""
import os
import sys

import pytest

import kvdb
from kvdb.cli import cmd_bench
from kvdb.cli.errors import CLIError
from kvdb.cli.main import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def wheel_install(tmp_path, monkeypatch):
    """kvdb.__file__ as a wheel lays it out: site-packages/kvdb/__init__.py, no bench/ beside it."""
    package = tmp_path / "site-packages" / "kvdb"
    package.mkdir(parents=True)
    monkeypatch.setattr(kvdb, "__file__", str(package / "__init__.py"))
    return tmp_path / "site-packages"


def test_checkout_bench_dir_is_found_from_kvdb_file(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))          # undone after the test
    assert cmd_bench.bench_dir() == os.path.join(REPO, "bench")
    for suite in cmd_bench.SUITES:
        module = cmd_bench.suite_module(suite)
        assert callable(module.main)
        assert os.path.dirname(os.path.dirname(module.__file__)) == os.path.join(REPO, "bench")


@pytest.mark.parametrize("argv", [["bench"], ["bench", "--quick"], ["bench", "documents"], ["bench", "server", "--help"]])
def test_without_checkout_one_line_says_what_to_do(wheel_install, capsys, argv):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("kvdb bench: needs a source checkout"), err
    assert "pip install -e . && kvdb bench" in err and "python bench/db_bench.py" in err
    assert str(wheel_install / "bench") in err


def test_suite_module_without_checkout_is_a_usage_error(wheel_install):
    with pytest.raises(CLIError) as info:
        cmd_bench.suite_module("kv")
    assert info.value.status == 2
