"""The command table (registry) and the modules that fill it, one per command group."""
from . import acl_cmds, connection, documents, hashes, keys, pubsub_cmds, server_cmds, strings, transactions  # noqa: F401
from . import bitops, functions, geo, hyperloglog, lists, scripting, sets, stream_claims, stream_groups, stream_info, streams, zsets  # noqa: F401
from .registry import COMMANDS, CommandError, lookup  # noqa: F401
