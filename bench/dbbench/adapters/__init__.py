"""Engine name -> adapter class. Each adapter lives in its own module and
imports its library at module level, so a missing peer raises ImportError
from load_adapter() and is skipped by the caller."""
import importlib

from .base import Adapter, NotSupported

PEERS = {
    "sqlite3": "sqlite_adapter",
    "lmdb": "lmdb_adapter",
    "rocksdict": "rocksdict_adapter",
    "plyvel": "plyvel_adapter",
    "diskcache": "diskcache_adapter",
}
KVDB_PREFIX = "kvdb-"


def is_kvdb(engine):
    return engine.startswith(KVDB_PREFIX)


def known(engine):
    return is_kvdb(engine) or engine in PEERS


def load_adapter(engine):
    """The adapter class for engine; ImportError if its library is missing."""
    if is_kvdb(engine):
        from .kvdb_adapter import make

        return make(engine[len(KVDB_PREFIX):])
    if engine not in PEERS:
        raise ValueError(f"unknown engine {engine!r}; known: kvdb-<engine>, {', '.join(PEERS)}")
    return importlib.import_module(f".{PEERS[engine]}", __name__).ADAPTER


__all__ = ["Adapter", "NotSupported", "PEERS", "is_kvdb", "known", "load_adapter"]
