"""kvdb's standalone server: the Redis protocol (RESP2/RESP3) over asyncio, on a
kvdb database. `kvdb serve` runs it; see docs/server.md."""
from .app import Server, pick_free_port
from .config import Config, ConfigError

__all__ = ["Server", "pick_free_port", "Config", "ConfigError"]
