"""`kvdb` / `python -m kvdb`: the parser, the dispatch, and the one rule that
every failure is one line on stderr and a non-zero exit, never a traceback
(set KVDB_DEBUG=1 to get the traceback of an unexpected error).

Exit status: 0 success; 1 an error, or problems found (check), or a key not
found (get, delete); 2 bad usage, or a command that is not available yet;
130 interrupted; 141 the reader of stdout went away.
"""
import argparse
import os
import sys

import kvdb

from . import (cmd_backup, cmd_bench, cmd_check, cmd_compact, cmd_demo, cmd_docs, cmd_dump, cmd_kv, cmd_load,
               cmd_restore, cmd_salvage, cmd_serve, cmd_stats)
from .errors import CLIError, describe

COMMANDS = [cmd_serve, cmd_demo, cmd_check, cmd_stats, cmd_dump, cmd_load, cmd_salvage, cmd_backup, cmd_restore,
            cmd_compact, cmd_kv, cmd_bench, cmd_docs]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kvdb", description="kvdb embedded database tools",
        epilog="Keys and values on the command line are text, or hex when they start with 0x. "
               "Run `kvdb COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"kvdb {kvdb.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else None
    try:
        if command == "bench":  # its options belong to the benchmark's own parser
            return cmd_bench.run(argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        print(f"kvdb {command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except SystemExit:
        raise
    except (CLIError, kvdb.Error, OSError, ValueError, MemoryError) as e:
        if os.environ.get("KVDB_DEBUG") and not isinstance(e, CLIError):
            raise
        _say(command, describe(e))
        return getattr(e, "status", 1)
    except Exception as e:  # a bug: still one line, unless debugging
        if os.environ.get("KVDB_DEBUG"):
            raise
        _say(command, f"internal error: {describe(e)} (set KVDB_DEBUG=1 for the traceback)")
        return 1


def _say(command, message):
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError, OSError):
        _silence_stdout()
    print(f"kvdb {command}: {message}" if command else f"kvdb: {message}", file=sys.stderr)


def _silence_stdout():
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
