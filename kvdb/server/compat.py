"""Which Redis this server answers as. Clients read REDIS_VERSION (INFO's redis_version,
HELLO's version) to decide which commands and reply forms they may use, so it names
the Redis release whose commands and replies the server follows. kvdb's own release
is kvdb.version.VERSION (INFO's kvdb_version)."""

REDIS_VERSION = "7.2.0"  # the Redis version whose commands and replies this server follows
