#!/usr/bin/env python3
"""db_bench for kvdb: LevelDB-style workloads against kvdb and peer engines.

A thin wrapper around the benchmark package next to it, bench/dbbench/ (also
`kvdb bench` from a checkout). It imports nothing from kvdb, so it runs even
where kvdb is not built or installed (kvdb is then reported as skipped).

    python bench/db_bench.py [--quick | --num N | --scale] [--engines kvdb-btree,sqlite3,...]
                             [--workloads fillbatch,...] [--runs R] [--dir TMPDIR] [--fio]

See bench/README.md, or --help.
"""
import sys

from dbbench.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="db_bench.py"))
