#!/usr/bin/env python3
"""The server benchmark: redis-benchmark against `kvdb serve` and redis-server side by side.
Same as `kvdb bench server`; see bench/dbbench/server.py or --help.

    python bench/server.py [--runs 3] [--pipelines 1,16] [--out bench/results]
"""
import sys

from dbbench.server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="bench/server.py"))
