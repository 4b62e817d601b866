"""kvdb serve [--config FILE] [--data DIR] [--port N] [--bind ADDR] [--OPTION VALUE ...]:
the Redis-protocol server on a kvdb database (see docs/server.md).

Every server option can be given as a flag named as in Redis's configuration
(`--maxclients 100`, `--notify-keyspace-events KEA`); flags win over the file.

`engine` is the engine of a new database: a data directory that already holds
one is served with the engine its files show (an --engine flag that names the
other one is an error).
"""
import asyncio
import logging
import sys

from kvdb.server.config import OPTIONS, Config, ConfigError

from .dbpath import found_engine
from .errors import CLIError


def add_parser(sub):
    p = sub.add_parser("serve", help="run the Redis-protocol server on a data directory (./kvdb-data)",
                       description=__doc__)
    p.add_argument("--config", metavar="FILE", help="configuration file: `name value` lines, or TOML (.toml)")
    p.add_argument("--data", dest="opt_dir", metavar="DIR", help="data directory (Redis's `dir`; default ./kvdb-data)")
    for name, option in OPTIONS.items():
        # --replicaof takes `host port` as one word or two, as redis-server's does
        p.add_argument(f"--{name}", dest=f"opt_{name}", metavar="VALUE", nargs="+" if name == "replicaof" else None,
                       help=f"{option.help} (default {option.show(option.default)!r})" if name != "dir"
                       else option.help)
    p.set_defaults(func=run)


def build_config(args):
    config = Config()
    try:
        if args.config:
            config.load_file(args.config)
        for key, value in vars(args).items():
            if key.startswith("opt_") and value is not None:
                config.set(key[4:], " ".join(value) if isinstance(value, list) else value)
    except ConfigError as e:
        raise CLIError(str(e), status=2) from None
    except OSError as e:
        raise CLIError(f"cannot read configuration {args.config}: {e.strerror}", status=2) from None
    found = found_engine(config["dir"])
    if found is not None and found != config["engine"]:
        if getattr(args, "opt_engine", None) is not None:
            raise CLIError(f"{config['dir']} holds a database of engine {found}, not {config['engine']} "
                           "(leave out --engine to serve it)", status=2)
        config.set("engine", found)
    return config


def setup_logging(config):
    from kvdb.server.app import set_log_level   # the server and its Lua runtime load for `kvdb serve` only
    handler = logging.FileHandler(config["logfile"]) if config["logfile"] else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    root = logging.getLogger("kvdb")
    root.handlers[:] = [handler]
    root.propagate = False
    set_log_level(config["loglevel"])


def run(args):
    from kvdb.server import Server   # as in setup_logging: not loaded by the other commands
    from kvdb.server.app import ListenError
    config = build_config(args)
    setup_logging(config)
    try:
        import uvloop  # optional: the `server` extra
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    server = Server(config)
    try:
        runner(server.serve())
    except ListenError as e:                 # before the database was created or opened
        raise CLIError(f"cannot listen on {e.where}: {e.strerror}") from None
    finally:
        if server.db is not None:
            server.db.close()
    return 0
