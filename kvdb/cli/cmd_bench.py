"""kvdb bench [kv|documents|server] [OPTIONS]

  kv (default)  the db_bench key-value benchmark (bench/dbbench/runner.py)
  documents     the document benchmark (bench/dbbench/documents.py)
  server        the RESP server benchmark (bench/dbbench/server.py)
  targets       every ratio the performance targets name, in one run (bench/dbbench/targets.py)

`kvdb bench <suite> --help` lists a suite's options.

The benchmark is not part of the installed package: it lives in the repository's bench/
directory, next to the `kvdb` package in a source checkout (`pip install -e .`). This command
finds that directory from kvdb.__file__ and imports the `dbbench` package from it; without a
checkout it says what to do in one line.
"""
import importlib
import os
import sys

import kvdb

from .errors import CLIError

SUITES = {  # suite name -> the module of bench/dbbench whose main(argv, prog) runs it
    "kv": "dbbench.runner",
    "documents": "dbbench.documents",
    "server": "dbbench.server",
    "targets": "dbbench.targets",
}
PACKAGE = "dbbench"  # the benchmark's package, a directory in bench/
NO_CHECKOUT = ("needs a source checkout: the benchmark is not installed with kvdb, it lives in the "
               "repository's bench/ (none at {bench_dir}); in a clone of the kvdb repository run "
               "`pip install -e . && kvdb bench`, or `python bench/db_bench.py`")


def add_parser(sub):
    # Listed for `kvdb --help`; main() hands `kvdb bench ...` to run() before argparse sees it.
    sub.add_parser("bench", help="benchmarks: kv (db_bench against sqlite3, lmdb, rocksdb, leveldb, "
                                 "diskcache), documents, server, targets (kvdb bench --help); needs a source "
                                 "checkout",
                   add_help=False)


def bench_dir(package_file=None):
    """Where a checkout keeps bench/: next to the directory of the `kvdb` package.
    package_file: kvdb/__init__.py (default kvdb.__file__, the running kvdb)."""
    package_dir = os.path.dirname(os.path.abspath(package_file or kvdb.__file__))
    return os.path.join(os.path.dirname(package_dir), "bench")


def suite_module(suite, package_file=None):
    """The module that runs `suite` (a key of SUITES), imported from the checkout's bench/;
    CLIError (status 2, the one-line NO_CHECKOUT) when kvdb runs without a checkout (a wheel)."""
    where = bench_dir(package_file)
    if not os.path.isfile(os.path.join(where, PACKAGE, "__init__.py")):
        raise CLIError(NO_CHECKOUT.format(bench_dir=where), status=2)
    if where not in sys.path:
        sys.path.insert(0, where)
    return importlib.import_module(SUITES[suite])


def run(argv):
    suite = "kv"
    if argv and argv[0] in SUITES:
        suite, argv = argv[0], argv[1:]
    return suite_module(suite).main(argv, prog=f"kvdb bench {suite}")
