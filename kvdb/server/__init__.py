"""The RESP server (kvdb serve): Redis's protocol, commands and data types on a kvdb database.

RESP2 and RESP3 over asyncio; the wire path is in protocol/, the commands in commands/, the
data model on the key space in keyspace.py and the *store.py modules. `kvdb serve` runs it;
see docs/server.md."""
from .app import Server, pick_free_port
from .config import Config, ConfigError

__all__ = ["Server", "pick_free_port", "Config", "ConfigError"]
