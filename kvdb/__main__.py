"""`python -m kvdb` and the `kvdb` console script: see kvdb/cli/main.py.

Subcommands: demo, check, stats, dump, load, backup, restore, compact, get,
put, delete, scan, bench.
"""
import sys

from kvdb.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
