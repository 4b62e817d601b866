"""The cache's key layout in its kvdb database: one-byte keyspace prefixes and the index keys.

Every key of a cache database starts with one of the prefixes below; docs/format/cache.md gives
the grammar, a worked example and the invariants (C1...) that check() verifies. An entry is one
E key (the record: kvdb/cache/records.py) plus the index keys that point back at it, each ending
in the entry's encoded key (kvdb/cache/keys.py), so an index key names its entry by itself.
"""
import struct

# The layout's version, stored under VERSION_KEY (ASCII decimal) when the database is created and
# checked by every open. Change it whenever a key or record of docs/format/cache.md changes.
CACHE_FORMAT_VERSION = 1

META = b"\x00"          # settings, version, counters, the transact lock
ENTRY = b"E"            # E ekey -> record (records.py)
ROWID = b"R"            # R rowid:u64 ekey -> key kind:u8       insertion order (iteration, peekitem)
ORDER = b"O"            # O order:u64 rowid:u64 ekey -> b""     eviction order of the policy
ORDER_VALUE = b"P"      # P ekey -> order:u64                   LRU/LFU only: the entry's O position
EXPIRY = b"X"           # X expire:f64s rowid:u64 ekey -> b""   entries with an expiry, soonest first
TAG = b"G"              # G len:u32 tag ekey -> b""             entries with a tag, by tag

VERSION_KEY = META + b"version"       # -> ASCII decimal CACHE_FORMAT_VERSION
SETTING = META + b"s:"                # s:<name> -> repr of the setting's value (settings.py)
SHARD = META + b"n:"                  # n:<opener id> -> count, size, hits, misses (counters.py)
LOCK_KEY = META + b"lock"             # held by a transact() block: pid, thread, instance, deadline

U64 = struct.Struct(">Q")
U64_PAIR = struct.Struct(">QQ")
_F64 = struct.Struct(">d")
_SIGN = 1 << 63
_ALL = (1 << 64) - 1


def sortable_float(x):
    """A u64 whose unsigned order is the numeric order of float `x` (-0.0 as 0.0; no NaN)."""
    if x == 0.0:
        x = 0.0
    bits = U64.unpack(_F64.pack(x))[0]
    return bits ^ _ALL if bits & _SIGN else bits | _SIGN


def float_of_sortable(u):
    """The float that sortable_float() turned into `u`."""
    bits = u ^ _SIGN if u & _SIGN else u ^ _ALL
    return _F64.unpack(U64.pack(bits))[0]


def rowid_key(rowid, ekey):
    return ROWID + U64.pack(rowid) + ekey


def order_key(order, rowid, ekey):
    return ORDER + U64_PAIR.pack(order, rowid) + ekey


def expiry_key(expire_time, rowid, ekey):
    return EXPIRY + U64_PAIR.pack(sortable_float(expire_time), rowid) + ekey


def tag_prefix(etag):
    """The prefix of every G key of the encoded tag `etag`."""
    return TAG + struct.pack(">I", len(etag)) + etag


# Where the key ends inside each index key (the rest is the entry's encoded key).
ROWID_EKEY_AT = 1 + 8
ORDER_EKEY_AT = 1 + 8 + 8
EXPIRY_EKEY_AT = 1 + 8 + 8
