"""Which Redis this server answers as. Clients read REDIS_VERSION (INFO's redis_version,
HELLO's version) to decide which commands and reply forms they may use, so it names
the Redis release whose commands and replies the server follows. kvdb's own release
is kvdb.version.VERSION (INFO's kvdb_version)."""

REDIS_VERSION = "7.2.0"  # the Redis version whose commands and replies this server follows
# The same as one number, 0xMMmmpp (Lua's redis.REDIS_VERSION_NUM): 7.2.0 is 0x070200.
REDIS_VERSION_NUM = int("".join("%02x" % int(part) for part in REDIS_VERSION.split(".")), 16)
