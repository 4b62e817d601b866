"""kvdb bench [kv] [OPTIONS]: the db_bench benchmark (kvdb/cli/bench/),
`kvdb bench --help` lists its options.

kvdb bench documents / kvdb bench server: not available yet (exit 2).
"""
import sys

NOT_BUILT = {
    "documents": "the document layer is not built",
    "server": "the server is not built",
}


def add_parser(sub):
    # Listed for `kvdb --help`; main() hands `kvdb bench ...` to run() before argparse sees it.
    sub.add_parser("bench", help="benchmark kvdb against sqlite3, lmdb, rocksdb, leveldb, diskcache "
                                 "(kvdb bench --help)", add_help=False)


def run(argv):
    if argv and argv[0] in NOT_BUILT:
        print(f"kvdb bench {argv[0]}: not available yet: {NOT_BUILT[argv[0]]}", file=sys.stderr)
        return 2
    if argv and argv[0] == "kv":
        argv = argv[1:]
    from .bench.runner import main

    return main(argv, prog="kvdb bench")
