#!/usr/bin/env python3
"""db_bench for kvdb: LevelDB-style workloads against kvdb and peer engines.

A thin wrapper: the benchmark lives in kvdb/cli/bench/ (also `kvdb bench`).
This script loads it by file path, so it runs from a checkout even where
kvdb is not built or installed (kvdb is then reported as skipped).

    python bench/db_bench.py [--quick | --num N | --scale] [--engines kvdb-btree,sqlite3,...]
                             [--workloads fillbatch,...] [--runs R] [--dir TMPDIR] [--fio]

See bench/README.md, or --help.
"""
import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(REPO, "kvdb", "cli", "bench")


def load_engine():
    spec = importlib.util.spec_from_file_location("_kvdb_bench", os.path.join(ENGINE, "__init__.py"),
                                                  submodule_search_locations=[ENGINE])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_kvdb_bench"] = mod
    spec.loader.exec_module(mod)
    from _kvdb_bench.runner import main

    return main


if __name__ == "__main__":
    sys.exit(load_engine()(sys.argv[1:], prog="db_bench.py"))
