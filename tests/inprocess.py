"""Server commands run in process, straight on a Keyspace over a kvdb database (no server,
no socket), for tests that read the records a command leaves (the invariants of
docs/format/server-keys.md).

    from tests.inprocess import InProcess
    with InProcess(tmp_path) as run:
        run("SADD", "s", "a", "b")            # one command group: committed when it returns
        run.records(prefix)                   # [(key, value)] under a prefix, from the database
        run.ks, run.db                        # the Keyspace and the kvdb.Database

A command that fails raises its CommandError (after committing what it wrote, as the server
commits a group whatever its replies). Blocking commands and anything needing a connection
(pub/sub, ACL users, scripts) are out of reach.
"""
import types

import kvdb
from kvdb.server.commands.groups import lookup
from kvdb.server.commands.registry import CommandError
from kvdb.server.config import Config
from kvdb.server.keyspace import Keyspace

__all__ = ["InProcess"]


class InProcess:
    def __init__(self, tmp_path, databases=16, **config):
        self.path = str(tmp_path / "db")
        self.db = kvdb.open(self.path)                       # the database the records are in
        self.ks = Keyspace(self.db, databases, lambda *a: None)
        self.ks.load()
        cfg = Config()
        for name, text in config.items():
            cfg.set(name.replace("_", "-"), str(text))
        server = types.SimpleNamespace(ks=self.ks, config=cfg, key_changed=lambda *a: None,
                                       stats=types.SimpleNamespace(hit=lambda found: None))
        user = types.SimpleNamespace(all_keys=True)          # the default user: every key
        # what command handlers read of their client: its server, database, protocol, user
        self.client = types.SimpleNamespace(server=server, db=0, proto=2, user=user)

    def __call__(self, *args):
        args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        cmd, error = lookup(args)
        if cmd is None:
            raise CommandError(error)
        try:
            return cmd.handler(self.client, args)
        finally:
            self.ks.store.commit()

    def records(self, prefix):
        """[(key, value)] of the database under prefix, in key order."""
        with self.db.scan(prefix=prefix) as it:
            return list(it)

    def close(self):
        self.ks.store.rollback()
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
