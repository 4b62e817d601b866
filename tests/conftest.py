"""Shared fixtures and options for the kvdb test suite.

Options:
  --long    more rounds, crash points and Hypothesis examples (minutes, not seconds).

Fixtures:
  long_mode   True under --long.
  engine      each storage engine in ENGINES (extend the list when a new engine lands).
  db_path     a path for a database directory that does not exist yet (open() creates it).
"""
import os
import sys

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

ENGINES = ["btree", "lsm"]

_common = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=DirectoryBasedExampleDatabase(os.path.join(TESTS_DIR, ".hypothesis")),
    print_blob=True,
)
settings.register_profile("default", max_examples=100, stateful_step_count=50, **_common)
settings.register_profile("long", max_examples=500, stateful_step_count=100, **_common)


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="run the long variants: more rounds, crash points and examples")


def pytest_configure(config):
    config.addinivalue_line("markers", "long_only: runs only under --long")
    settings.load_profile("long" if config.getoption("--long") else "default")
    from tests import helpers
    helpers.LONG = config.getoption("--long")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long-mode only: pass --long")
    for item in items:
        if "long_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def long_mode(request):
    return request.config.getoption("--long")


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "db")


def pytest_terminal_summary(terminalreporter):
    """How many commands were compared against a reference redis-server (redisref.py), and the
    corruption torture suite's tables (tests/crash/torture.py)."""
    torture = sys.modules.get("tests.crash.torture")
    for report in (torture.REPORTS if torture is not None else ()):
        for line in report.splitlines():
            terminalreporter.write_line(line)
    ref = sys.modules.get("tests.redisref")
    if ref is not None and ref.COMPARED:
        names = sorted(ref.COMPARED)
        terminalreporter.write_line(f"compared with redis-server: {len(names)} commands, "
                                    f"{sum(ref.COMPARED.values())} replies ({' '.join(names)})")


@pytest.fixture(scope="module", params=[2, 3], ids=["resp2", "resp3"])
def pair(request, tmp_path_factory):
    """A fresh kvdb server and a reference redis-server side by side, one pair per module
    and protocol (tests/redisref.py); modules that need other settings define their own."""
    from tests.redisref import reference_pair
    with reference_pair(tmp_path_factory, protocol=request.param) as p:
        yield p
