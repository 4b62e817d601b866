#!/usr/bin/env python3
"""The disk's synced 4 KiB write rate, measured with fio (a wrapper around
bench/dbbench/fio.py; kvdb need not be built).

    python bench/fio_fsync.py [DIR] [--size 64m]
"""
import sys

from dbbench.fio import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
