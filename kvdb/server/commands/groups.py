"""Every command group: importing a group's module registers its commands in
registry.COMMANDS, so once this module has run the table is complete. The server
(app.py) takes `lookup` from here, which makes importing the server fill the table.
The import order is the table's order (COMMAND lists commands in it): a group comes
after the groups it imports from."""
from . import acl_cmds, connection, documents, keys, strings, hashes, pubsub_cmds, server_cmds, transactions
from . import bitops, scripting, functions, zsets, zsets_ops, zsets_pop, zsets_range, geo, hyperloglog, lists
from . import sets, streams, stream_groups, stream_claims, stream_info, admin_backup, replication_cmds
from .registry import lookup

__all__ = ["GROUPS", "lookup"]

GROUPS = (acl_cmds, connection, documents, keys, strings, hashes, pubsub_cmds, server_cmds, transactions,
          bitops, scripting, functions, zsets, zsets_ops, zsets_pop, zsets_range, geo, hyperloglog, lists,
          sets, streams, stream_groups, stream_claims, stream_info, admin_backup,
          replication_cmds)   # each command group's module
