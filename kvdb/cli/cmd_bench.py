"""kvdb bench [kv|documents|server] [OPTIONS]

  kv (default)  the db_bench key-value benchmark (kvdb/cli/bench/runner.py)
  documents     the document benchmark (kvdb/cli/bench/documents.py)
  server        the RESP server benchmark (kvdb/cli/bench/server.py)

`kvdb bench <suite> --help` lists a suite's options.
"""
import importlib
import importlib.util
import sys

SUITES = {
    "kv": "kvdb.cli.bench.runner",
    "documents": "kvdb.cli.bench.documents",
    "server": "kvdb.cli.bench.server",
}


def add_parser(sub):
    # Listed for `kvdb --help`; main() hands `kvdb bench ...` to run() before argparse sees it.
    sub.add_parser("bench", help="benchmarks: kv (db_bench against sqlite3, lmdb, rocksdb, leveldb, "
                                 "diskcache), documents, server (kvdb bench --help)", add_help=False)


def run(argv):
    suite = "kv"
    if argv and argv[0] in SUITES:
        suite, argv = argv[0], argv[1:]
    module = SUITES[suite]
    if importlib.util.find_spec(module) is None:
        print(f"kvdb bench {suite}: not available in this build ({module} is missing)", file=sys.stderr)
        return 2
    return importlib.import_module(module).main(argv, prog=f"kvdb bench {suite}")
