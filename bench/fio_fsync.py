#!/usr/bin/env python3
"""The disk's synced 4 KiB write rate, measured with fio (a wrapper around
kvdb/cli/bench/fio.py, loaded by file path so kvdb need not be built).

    python bench/fio_fsync.py [DIR] [--size 64m]
"""
import importlib.util
import os
import sys

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kvdb", "cli", "bench", "fio.py")

if __name__ == "__main__":
    spec = importlib.util.spec_from_file_location("_kvdb_bench_fio", PATH)
    fio = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fio)
    sys.exit(fio.main(sys.argv[1:]))
