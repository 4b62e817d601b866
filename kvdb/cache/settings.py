"""The cache's settings: their defaults, the eviction policies, and the check of each value.

Settings are diskcache's (DEFAULT_SETTINGS has its names and defaults). The database stores them
under META "s:<name>" (docs/format/cache.md); a Cache given a setting stores it, one not given
reads the stored value. sqlite_* settings are accepted and stored for compatibility but change
nothing (there is no SQLite); disk_min_file_size too (values never go to separate files).
"""
import ast
import pickle

# Eviction policy name -> the entry field its O index orders by (None: no index, no eviction).
EVICTION_POLICY = {
    "none": None,
    "least-recently-stored": "store_time",
    "least-recently-used": "access_time",
    "least-frequently-used": "access_count",
}

DEFAULT_SETTINGS = {
    "statistics": 0,                            # count hits and misses (stats())
    "tag_index": 0,                             # accepted; the tag index always exists
    "eviction_policy": "least-recently-stored",
    "size_limit": 2 ** 30,                      # bytes, as volume() counts them
    "cull_limit": 10,                           # most entries one write evicts; 0: only cull()
    "sqlite_auto_vacuum": 1,                    # sqlite_*: accepted, no effect
    "sqlite_cache_size": 2 ** 13,
    "sqlite_journal_mode": "wal",
    "sqlite_mmap_size": 2 ** 26,
    "sqlite_synchronous": 1,
    "disk_min_file_size": 2 ** 15,              # accepted, no effect: values stay in the database
    "disk_pickle_protocol": pickle.HIGHEST_PROTOCOL,   # the protocol values are pickled with
}

_POLICY_NAMES = ", ".join(repr(name) for name in EVICTION_POLICY)


def check_setting(name, value):
    """`value` if it is acceptable for setting `name`, else ValueError/TypeError naming what is."""
    if name not in DEFAULT_SETTINGS:
        raise ValueError(f"unknown cache setting {name!r}; the settings are: {', '.join(DEFAULT_SETTINGS)}")
    if name == "eviction_policy":
        if value not in EVICTION_POLICY:
            raise ValueError(f"unknown eviction_policy {value!r}; accepted: {_POLICY_NAMES}")
    elif name == "size_limit":
        if type(value) not in (int, float) or isinstance(value, bool):
            raise TypeError(f"size_limit must be a number of bytes (int), not {type(value).__name__}")
        if not value > 0:
            raise ValueError(f"size_limit must be > 0 bytes, not {value!r}")
    elif name == "cull_limit":
        if type(value) is not int:
            raise TypeError(f"cull_limit must be an int, not {type(value).__name__}")
        if value < 0:
            raise ValueError(f"cull_limit must be >= 0, not {value}")
    elif name == "disk_pickle_protocol":
        if type(value) is not int or not 0 <= value <= pickle.HIGHEST_PROTOCOL:
            raise ValueError(f"disk_pickle_protocol must be an int from 0 to {pickle.HIGHEST_PROTOCOL}, "
                             f"not {value!r}")
    else:
        encode_setting(value)           # must survive the database
    return value


def encode_setting(value):
    text = repr(value)
    try:
        if ast.literal_eval(text) != value:
            raise ValueError
    except (ValueError, SyntaxError):
        raise TypeError(f"a cache setting must be a literal (number, str, bool, None), not {value!r}") from None
    return text.encode()


def decode_setting(raw):
    return ast.literal_eval(raw.decode())
