"""The server's options: one table naming each option as Redis does, with its
type, default, whether CONFIG SET may change it at run time, and its help.

Sources, later ones winning: the defaults, a configuration file (Redis-style
`name value` lines, or TOML when the file name ends in .toml), then command-line
flags (`--name value`). Values are validated on every path with the same parser,
so `CONFIG SET maxclients abc` and `--maxclients abc` fail alike.
"""
import os
import shlex

from kvdb._core.options import OPTION_FIELDS, format_size, parse_size, parse_text, show_text

__all__ = ["Option", "OPTIONS", "Config", "ConfigError", "parse_memory", "format_memory", "parse_replicaof"]


class ConfigError(ValueError):
    """An unknown option or a value its option does not accept."""


# Bytes in '512mb', '1gb', '100', '64kb' (Redis's units: k=1000, kb=1024), and back: the same
# text forms as the database's size options (kvdb/_core/options.py).
parse_memory = parse_size
format_memory = format_size


def _int(lo=None, hi=None):
    def parse(text):
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ValueError("argument couldn't be parsed into an integer") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"argument must be between {lo} and {hi}")
        return value
    return parse


def _choice(*names, aliases=None):
    def parse(text):
        value = str(text).strip().lower()
        value = (aliases or {}).get(value, value)
        if value not in names:
            raise ValueError(f"argument(s) must be one of the following: {', '.join(names)}")
        return value
    return parse


def _yesno(text):
    value = str(text).strip().lower()
    if value in ("yes", "1", "true", "on"):
        return True
    if value in ("no", "0", "false", "off"):
        return False
    raise ValueError("argument must be 'yes' or 'no'")


def parse_replicaof(text):
    """(host, port) of a `replicaof` value ("host port"; REPLICAOF's arguments), or None for
    "" and "no one"."""
    words = str(text).split()
    if not words or [w.lower() for w in words] == ["no", "one"]:
        return None
    if len(words) != 2:
        raise ValueError("give '<host> <port>' or 'no one'")
    try:
        port = int(words[1])
    except ValueError:
        raise ValueError(f"port {words[1]!r} is not an integer") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not in 1..65535")
    return words[0], port


def _replicaof(text):
    target = parse_replicaof(text)
    return "" if target is None else f"{target[0]} {target[1]}"


def _words(text):
    return " ".join(str(text).split())


def _string(text):
    return str(text)


def _keyspace_events(text):
    value = str(text)
    bad = set(value) - set("KEg$lshzxetmdnAn")
    if bad:
        raise ValueError(f"invalid event class character(s) {''.join(sorted(bad))!r}")
    return value


# Redis's default client-output-buffer-limit: normal clients unlimited (they are
# throttled by not reading their commands), pub/sub clients 32mb hard / 8mb for 60 s.
DEFAULT_OUTPUT_LIMITS = "normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60"
OUTPUT_LIMIT_CLASSES = ("normal", "replica", "pubsub")


def _output_limits(text):
    """{class: (hard bytes, soft bytes, soft seconds)} from 'class hard soft seconds ...'; classes not
    named keep Redis's defaults."""
    words = str(text).split()
    if not words or len(words) % 4:
        raise ValueError("wrong number of arguments: give <class> <hard> <soft> <seconds> groups")
    limits = {} if text == DEFAULT_OUTPUT_LIMITS else dict(_output_limits(DEFAULT_OUTPUT_LIMITS))
    for i in range(0, len(words), 4):
        cls = words[i].lower()
        cls = "replica" if cls == "slave" else cls
        if cls not in OUTPUT_LIMIT_CLASSES:
            raise ValueError(f"invalid client class {words[i]!r}")
        limits[cls] = (parse_memory(words[i + 1]), parse_memory(words[i + 2]), _int(0)(words[i + 3]))
    return limits


def _show_output_limits(limits):
    return " ".join(f"{cls} {hard} {soft} {secs}" for cls, (hard, soft, secs) in limits.items())


def _tls_protocols(text):
    names = str(text).split()
    for n in names:
        if n not in ("TLSv1.2", "TLSv1.3"):
            raise ValueError(f"unsupported TLS protocol {n!r} (TLSv1.2 and TLSv1.3 are accepted)")
    if not names:
        raise ValueError("no TLS protocol given")
    return " ".join(names)


# -- Redis's own parsers, for the options kvdb accepts for compatibility ----------------
# (config.c's numericParseString / memtoull / yesnotoi / enum lookup, with its error texts)

INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
LONG_MAX = (1 << 63) - 1
_MEM_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 ** 2, "mb": 1024 ** 2, "g": 1000 ** 3,
              "gb": 1024 ** 3}


def _strict_int(text):
    """Redis's string2ll: optional '-', digits, no leading zeros, no '+', no spaces; None if not."""
    if not text or len(text) > 20:
        return None
    digits = text[1:] if text[0] == "-" else text
    if not digits or not digits.isascii() or not digits.isdigit() or (digits[0] == "0" and (len(digits) > 1 or
                                                                                            text[0] == "-")):
        return None
    n = int(text)
    return n if -(1 << 63) <= n <= LONG_MAX else None


def _strict_memory(text):
    """Redis's memtoull: digits and an optional unit (b k kb m mb g gb, any case); None if not."""
    i = 0
    while i < len(text) and text[i].isascii() and text[i].isdigit():
        i += 1
    unit = text[i:].lower()
    if unit not in _MEM_UNITS or (text[:1] == "-"):
        return None
    n = int(text[:i]) if i else 0
    return n * _MEM_UNITS[unit] if n < (1 << 64) else None


def _redis_int(lo, hi, memory=False, percent=False):
    """A numeric option parsed and range-checked as Redis does (the value error names
    the accepted range in Redis's words). percent: 'N%' is kept as -N (Redis's encoding)."""
    def parse(text):
        text = str(text)
        value = _strict_memory(text) if memory else None
        if value is None and percent and len(text) > 1 and text.endswith("%"):
            pct = _strict_int(text[:-1])
            if pct is not None and pct >= 0:
                if pct > 100:
                    raise ValueError("percentage argument must be less or equal to 100")
                return -pct
        if value is None and not memory and not percent:
            value = _strict_int(text)
        if value is None:
            raise ValueError("argument must be a memory or percent value" if memory and percent else
                             "argument must be a memory value" if memory else
                             "argument couldn't be parsed into an integer")
        if not lo <= value <= hi:
            raise ValueError(f"argument must be between {lo} and {hi} inclusive")
        return value
    return parse


def _show_percent(v):
    return f"{-v}%" if v < 0 else str(v)


def _redis_yesno(text):
    value = str(text).lower()
    if value not in ("yes", "no"):
        raise ValueError("argument must be 'yes' or 'no'")
    return value == "yes"


def _redis_enum(*names, same=None):
    """One of names (any case); `same` maps a name to the one Redis shows for its value."""
    def parse(text):
        value = str(text).lower()
        if value not in names:
            raise ValueError(f"argument(s) must be one of the following: {', '.join(names)}")
        return (same or {}).get(value, value)
    return parse


def _percentiles(text):
    """latency-tracking-info-percentiles: space-separated numbers within [0, 100]."""
    words = str(text).split()
    for w in words:
        try:
            x = float(w)
        except ValueError:
            raise ValueError("latency-tracking-info-percentiles parameters should be a decimal number") from None
        if not 0.0 <= x <= 100.0:
            raise ValueError("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]")
    return " ".join(words)


class Option:
    __slots__ = ("name", "parse", "default", "mutable", "help", "show")

    def __init__(self, name, parse, default, mutable, help, show=None):
        self.name = name          # Redis's option name
        self.parse = parse        # text -> value; ValueError with a reason when invalid
        self.default = default    # value when no source sets it
        self.mutable = mutable    # CONFIG SET may change it while running
        self.help = help          # one line for --help
        self.show = show or str   # value -> the text CONFIG GET shows


# The database's options (kvdb.Options, kvdb/_core/options.py: engine, sync, cache-size, page-size,
# memtable-size, ...) are the server's too, named with dashes. Their parsers, help and defaults come
# from there, except where the server differs:
SERVER_DEFAULTS = {
    "engine": "btree",    # always an engine's name (INFO, the log); `kvdb serve` serves a directory
                          # that holds a database with the engine its files show
    "sync": "normal",     # as Redis's default appendfsync, everysec
    "key_count": "scan",  # the server counts its keys itself (DBSIZE, invariant C6): the LSM need not
}
SERVER_NOTES = {
    "engine": "the server's default is btree; a data directory that holds a database is served with "
              "the engine its files show",
    "sync": "Redis's appendfsync names are accepted (always: full, everysec: normal, no: off)",
    "key_count": "the server's default is scan: it keeps its own count of keys for DBSIZE",
}
SYNC_ALIASES = {"always": "full", "everysec": "normal", "no": "off"}   # appendfsync's names


def _database_option(field):
    """The server Option for one field of kvdb.Options."""
    default = SERVER_DEFAULTS.get(field.name, field.default)

    def parse(text):
        if field.name == "sync":
            text = SYNC_ALIASES.get(str(text).strip().lower(), text)
        value = parse_text(field.name, text)
        if value is None and default is not None:
            raise ValueError(f"argument must be {field.accepted()}")
        return value

    note = SERVER_NOTES.get(field.name)
    return Option(field.flag, parse, default, False, f"{field.brief}{'; ' + note if note else ''}",
                  lambda value: show_text(field.name, value))


def _show_secret(v):
    """CONFIG GET never returns a password: only whether one is set."""
    return "(hidden)" if v else ""


def _show_bool(v):
    return "yes" if v else "no"


OPTIONS = {o.name: o for o in [
    Option("dir", _string, "./kvdb-data", False, "data directory (created if missing); --data is an alias"),
    # Not settable at run time (CONFIG SET refuses it, as Redis refuses its protected configs):
    # a client could otherwise make the server write a copy of the database anywhere.
    Option("backup-dir", _string, "", False,
           "directory BACKUP writes its copies into, created if missing ('' turns BACKUP off)"),
    Option("port", _int(0, 65535), 6380, False, "TCP port (0 turns the plaintext listener off)"),
    Option("bind", _words, "127.0.0.1", False, "addresses to listen on, space-separated"),
    *(_database_option(f) for f in OPTION_FIELDS),
    Option("databases", _int(1, 256), 16, False, "logical databases (SELECT 0..n-1)"),
    Option("maxclients", _int(1, 1 << 20), 10000, True, "connections accepted at once"),
    Option("timeout", _int(0), 0, True, "close a client idle this many seconds (0: never)"),
    Option("tcp-backlog", _int(1), 511, False, "listen backlog"),
    Option("proto-max-bulk-len", parse_memory, 512 * 1024 * 1024, True, "largest bulk string accepted",
           format_memory),
    Option("client-query-buffer-limit", parse_memory, 1024 ** 3, True,
           "largest unparsed input buffered for one client", format_memory),
    Option("notify-keyspace-events", _keyspace_events, "", True, "keyspace notification classes (Redis's letters)"),
    Option("slowlog-log-slower-than", _int(-1), 10000, True, "log commands slower than this many µs (-1: off)"),
    Option("slowlog-max-len", _int(0), 128, True, "entries the slow log keeps"),
    Option("loglevel", _choice("debug", "verbose", "notice", "warning"), "notice", True, "log verbosity"),
    Option("logfile", _string, "", False, "log file ('' for stderr)"),
    Option("hz", _int(1, 500), 10, True, "background task frequency (expiry sweep, timeouts)"),
    Option("requirepass", _string, "", True, "password of the default user ('' for none)", _show_secret),
    Option("appendonly", _yesno, True, False, "always yes: every write goes to the log", _show_bool),
    Option("save", _string, "", True, "accepted for compatibility; checkpoints are automatic"),
    Option("maxmemory", parse_memory, 0, True, "accepted for compatibility; data lives on disk"),
    # Security (docs/security.md).
    Option("protected-mode", _yesno, True, True, "with no password set, refuse clients from non-loopback addresses",
           _show_bool),
    Option("aclfile", _string, "", False, "ACL users file, loaded at start; ACL SAVE/LOAD write/read it"),
    Option("acllog-max-len", _int(0), 128, True, "entries ACL LOG keeps"),
    Option("audit-log", _string, "", False, "JSON-lines audit log file ('-' for stderr, '' for none)"),
    Option("proto-max-multibulk-len", _int(1, 1 << 31), 1024 * 1024, True,
           "most arguments one command may have"),
    Option("proto-max-inline-len", parse_memory, 64 * 1024, True, "longest inline command line", format_memory),
    Option("first-command-timeout", _int(0), 30, True,
           "close a new connection that sends no complete command within this many seconds (0: never)"),
    Option("client-output-buffer-limit", _output_limits, _output_limits(DEFAULT_OUTPUT_LIMITS), True,
           "per class (normal, replica, pubsub): hard limit, soft limit, soft seconds", _show_output_limits),
    Option("tls-port", _int(0, 65535), 0, False, "TLS port (0: no TLS listener)"),
    Option("tls-cert-file", _string, "", False, "server certificate (PEM)"),
    Option("tls-key-file", _string, "", False, "server private key (PEM)"),
    Option("tls-key-file-pass", _string, "", False, "passphrase of tls-key-file", _show_secret),
    Option("tls-client-cert-file", _string, "", False,
           "certificate this server presents when it connects as a client (a replica to its primary); "
           "'' : tls-cert-file"),
    Option("tls-client-key-file", _string, "", False, "private key of tls-client-cert-file"),
    Option("tls-client-key-file-pass", _string, "", False, "passphrase of tls-client-key-file", _show_secret),
    Option("tls-ca-cert-file", _string, "", False, "CA bundle that client certificates must chain to"),
    Option("tls-ca-cert-dir", _string, "", False, "directory of CA certificates (c_rehash layout)"),
    Option("tls-auth-clients", _choice("yes", "no", "optional"), "yes", False,
           "client certificates: yes (required), optional (verified when sent), no"),
    Option("tls-protocols", _tls_protocols, "TLSv1.2 TLSv1.3", False, "TLS versions accepted (1.2 and newer)"),
]}


def _compat(name, parse, default, help, show=None, mutable=True):
    """An option of Redis's that kvdb accepts, validates and reports as Redis does, so that
    tools and configuration files that set it work."""
    return Option(name, parse, default, mutable, help, show)


_ENCODING = "accepted for compatibility; sets the encoding OBJECT ENCODING reports (storage is kvdb's own)"
_COMPAT = "accepted for compatibility; no effect on kvdb"
_NUMBER = _redis_int(0, LONG_MAX)
_MEMORY = _redis_int(0, LONG_MAX, memory=True)
EVICTION_POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru",
                     "allkeys-lfu", "allkeys-random", "noeviction")

# Redis's encoding, tuning, eviction, lazy-free, defragmentation, persistence and
# replication options, with Redis's types, ranges and defaults (Redis 7.2).
OPTIONS.update((o.name, o) for o in [
    # Encodings of small collections (OBJECT ENCODING reports them).
    _compat("list-max-listpack-size", _redis_int(INT_MIN, INT_MAX), -2, _ENCODING),
    _compat("list-compress-depth", _redis_int(0, INT_MAX), 0, _COMPAT),
    _compat("set-max-intset-entries", _NUMBER, 512, _ENCODING),
    _compat("set-max-listpack-entries", _NUMBER, 128, _ENCODING),
    _compat("set-max-listpack-value", _NUMBER, 64, _ENCODING),
    _compat("zset-max-listpack-entries", _NUMBER, 128, _ENCODING),
    _compat("zset-max-listpack-value", _MEMORY, 64, _ENCODING),
    _compat("hash-max-listpack-entries", _NUMBER, 512, _ENCODING),
    _compat("hash-max-listpack-value", _MEMORY, 64, _ENCODING),
    _compat("stream-node-max-bytes", _MEMORY, 4096, _COMPAT),
    _compat("stream-node-max-entries", _NUMBER, 100, _COMPAT),
    _compat("hll-sparse-max-bytes", _MEMORY, 3000, _COMPAT),
    # Eviction (data lives on disk: nothing is evicted) and LFU.
    _compat("maxmemory-policy", _redis_enum(*EVICTION_POLICIES), "noeviction", _COMPAT),
    _compat("maxmemory-samples", _redis_int(1, INT_MAX), 5, _COMPAT),
    _compat("maxmemory-eviction-tenacity", _redis_int(0, 100), 10, _COMPAT),
    _compat("maxmemory-clients", _redis_int(-100, LONG_MAX, memory=True, percent=True), 0, _COMPAT,
            _show_percent),
    _compat("lfu-log-factor", _redis_int(0, INT_MAX), 10, _COMPAT),
    _compat("lfu-decay-time", _redis_int(0, INT_MAX), 1, _COMPAT),
    _compat("active-expire-effort", _redis_int(1, 10), 1, _COMPAT),
    # Lazy freeing (kvdb always frees large collections in the background).
    _compat("lazyfree-lazy-eviction", _redis_yesno, False, _COMPAT, _show_bool),
    _compat("lazyfree-lazy-expire", _redis_yesno, False, _COMPAT, _show_bool),
    _compat("lazyfree-lazy-server-del", _redis_yesno, False, _COMPAT, _show_bool),
    _compat("lazyfree-lazy-user-del", _redis_yesno, False, _COMPAT, _show_bool),
    _compat("lazyfree-lazy-user-flush", _redis_yesno, False, _COMPAT, _show_bool),
    _compat("replica-lazy-flush", _redis_yesno, False, _COMPAT, _show_bool),
    # Active defragmentation and rehashing (memory allocator matters of Redis).
    _compat("activedefrag", _redis_yesno, False, _COMPAT, _show_bool),
    _compat("active-defrag-ignore-bytes", _redis_int(1, LONG_MAX, memory=True), 100 << 20, _COMPAT),
    _compat("active-defrag-threshold-lower", _redis_int(0, 1000), 10, _COMPAT),
    _compat("active-defrag-threshold-upper", _redis_int(0, 1000), 100, _COMPAT),
    _compat("active-defrag-cycle-min", _redis_int(1, 99), 1, _COMPAT),
    _compat("active-defrag-cycle-max", _redis_int(1, 99), 25, _COMPAT),
    _compat("active-defrag-max-scan-fields", _redis_int(1, LONG_MAX), 1000, _COMPAT),
    _compat("activerehashing", _redis_yesno, True, _COMPAT, _show_bool),
    _compat("jemalloc-bg-thread", _redis_yesno, True, _COMPAT, _show_bool),
    _compat("dynamic-hz", _redis_yesno, True, _COMPAT, _show_bool),
    # Scripts: a script running longer than this may be stopped with SCRIPT KILL.
    _compat("busy-reply-threshold", _NUMBER, 5000, "ms a script runs before other clients get BUSY replies "
                                                   "and SCRIPT KILL may stop it (lua-time-limit is an alias)"),
    # Latency monitoring and client tracking.
    _compat("latency-monitor-threshold", _NUMBER, 0, _COMPAT),
    _compat("latency-tracking", _redis_yesno, True, _COMPAT, _show_bool),
    _compat("latency-tracking-info-percentiles", _percentiles, "50 99 99.9", _COMPAT),
    _compat("tracking-table-max-keys", _NUMBER, 1000000, _COMPAT),
    _compat("tcp-keepalive", _redis_int(0, INT_MAX), 300, _COMPAT),
    _compat("shutdown-timeout", _redis_int(0, INT_MAX), 10, _COMPAT),
    _compat("oom-score-adj", _redis_enum("no", "yes", "relative", "absolute", same={"relative": "yes"}), "no", _COMPAT),
    # Persistence of Redis's RDB and AOF files (kvdb's log and checkpoints replace them).
    _compat("stop-writes-on-bgsave-error", _redis_yesno, True, _COMPAT, _show_bool),
    _compat("rdbcompression", _redis_yesno, True, _COMPAT, _show_bool),
    _compat("rdbchecksum", _redis_yesno, True, _COMPAT, _show_bool, mutable=False),
    _compat("rdb-save-incremental-fsync", _redis_yesno, True, _COMPAT, _show_bool),
    _compat("aof-use-rdb-preamble", _redis_yesno, True, _COMPAT, _show_bool),
    _compat("aof-rewrite-incremental-fsync", _redis_yesno, True, _COMPAT, _show_bool),
    _compat("aof-load-truncated", _redis_yesno, True, _COMPAT, _show_bool),
    _compat("aof-timestamp-enabled", _redis_yesno, False, _COMPAT, _show_bool),
    _compat("no-appendfsync-on-rewrite", _redis_yesno, False, _COMPAT, _show_bool),
    _compat("auto-aof-rewrite-percentage", _redis_int(0, INT_MAX), 100, _COMPAT),
    _compat("auto-aof-rewrite-min-size", _redis_int(0, LONG_MAX, memory=True), 64 << 20, _COMPAT),
    # Replication (kvdb/server/replication, docs/replication.md).
    _compat("replica-read-only", _redis_yesno, True, "a replica refuses writes from clients (READONLY)", _show_bool),
    _compat("replica-serve-stale-data", _redis_yesno, True, "always yes: a replica serves its data while it syncs",
            _show_bool),
    _compat("replica-ignore-maxmemory", _redis_yesno, True, _COMPAT, _show_bool),
    _compat("replica-priority", _redis_int(0, INT_MAX), 100, "reported in INFO replication for Sentinel's choice "
                                                            "of a replica to promote (0: never)"),
    _compat("min-replicas-to-write", _redis_int(0, INT_MAX), 0, "a primary refuses writes (NOREPLICAS) while fewer "
                                                               "replicas than this acknowledged recently (0: off)"),
    _compat("min-replicas-max-lag", _redis_int(0, INT_MAX), 10, "seconds since a replica's last acknowledgement "
                                                               "within which it counts for min-replicas-to-write"),
    _compat("repl-diskless-sync", _redis_yesno, True, "always yes: a full sync streams a snapshot, no file",
            _show_bool),
    _compat("repl-backlog-size", _redis_int(1, LONG_MAX, memory=True), 16 << 20,
            "bytes of the newest log records a primary keeps for replicas to continue from"),
    _compat("repl-timeout", _redis_int(1, INT_MAX), 60, "seconds without data before a replica reconnects"),
    _compat("replicaof", _replicaof, "", "'<host> <port>': start as a replica of that kvdb server ('' : a primary); "
                                         "REPLICAOF changes it at run time", mutable=False),
    _compat("masterauth", _string, "", "password a replica authenticates to its primary with", _show_secret),
    _compat("masteruser", _string, "", "user a replica authenticates to its primary as ('' : AUTH with the "
                                       "password alone)"),
    _compat("replica-announce-ip", _string, "", "address a replica gives its primary for INFO and ROLE "
                                                "('' : the connection's)"),
    _compat("replica-announce-port", _redis_int(0, 65535), 0, "port a replica gives its primary (0: its own)"),
    _compat("tls-replication", _redis_yesno, False, "a replica connects to its primary's TLS port with TLS",
            _show_bool),
    # Process settings fixed at start in Redis.
    _compat("io-threads", _redis_int(1, 128), 1, _COMPAT, mutable=False),
    _compat("io-threads-do-reads", _redis_yesno, False, _COMPAT, _show_bool, mutable=False),
    _compat("daemonize", _redis_yesno, False, "always no: run kvdb serve under a supervisor", _show_bool,
            mutable=False),
    _compat("cluster-enabled", _redis_yesno, False, "always no: kvdb serves one node", _show_bool, mutable=False),
])

# Redis's alternative names (older ones) of options: CONFIG GET shows an alias under its
# own name, CONFIG SET and configuration files set the option it stands for.
REDIS_ALIASES = {
    "list-max-ziplist-size": "list-max-listpack-size",
    "zset-max-ziplist-entries": "zset-max-listpack-entries",
    "zset-max-ziplist-value": "zset-max-listpack-value",
    "hash-max-ziplist-entries": "hash-max-listpack-entries",
    "hash-max-ziplist-value": "hash-max-listpack-value",
    "lua-time-limit": "busy-reply-threshold",
    "slave-lazy-flush": "replica-lazy-flush",
    "slave-read-only": "replica-read-only",
    "slave-serve-stale-data": "replica-serve-stale-data",
    "slave-ignore-maxmemory": "replica-ignore-maxmemory",
    "slave-priority": "replica-priority",
    "slaveof": "replicaof",
    "min-slaves-to-write": "min-replicas-to-write",
    "min-slaves-max-lag": "min-replicas-max-lag",
}


# Options whose values never appear in logs or the audit log.
SECRET_OPTIONS = frozenset(["requirepass", "tls-key-file-pass"])


ALIASES = {"data": "dir", "appendfsync": "sync", **REDIS_ALIASES}


class Config:
    """Current values by option name; set() validates, and records which were given."""

    def __init__(self):
        self.values = {name: o.default for name, o in OPTIONS.items()}
        self.file = None          # path of the configuration file read, if any

    def database_options(self):
        """kvdb.open's keywords (kvdb.Options's fields) from the database options set here."""
        return {f.name: self.values[f.flag] for f in OPTION_FIELDS}

    def __getitem__(self, name):
        return self.values[name]

    def set(self, name, text):
        name = ALIASES.get(name.lower(), name.lower())
        option = OPTIONS.get(name)
        if option is None:
            raise ConfigError(f"unknown option '{name}'")
        try:
            self.values[name] = option.parse(text)
        except ValueError as e:
            raise ConfigError(f"invalid value {text!r} for '{name}': {e}") from None
        return name

    def show(self, name):
        return OPTIONS[name].show(self.values[name])

    def rewrite(self):
        """CONFIG REWRITE: the configuration file read at start, with every option line set to
        the value in force now (one line per option; comments and unknown lines kept), and the
        options changed from their defaults that it did not name appended. Written to a
        temporary file, fsynced, and renamed over it. Sentinel rewrites `replicaof` this way."""
        if self.file is None:
            raise ConfigError("The server is running without a config file")
        if self.file.endswith(".toml"):
            raise ConfigError("CONFIG REWRITE rewrites `name value` configuration files, not TOML")
        with open(self.file, encoding="utf-8") as f:
            lines = f.read().splitlines()
        out = []
        seen = set()
        for line in lines:
            text = line.strip()
            if not text or text.startswith("#"):
                out.append(line)
                continue
            try:
                words = shlex.split(text)
            except ValueError:
                out.append(line)
                continue
            name = ALIASES.get(words[0].lower(), words[0].lower())
            if name not in OPTIONS:
                out.append(line)
            elif name not in seen:
                seen.add(name)
                out.append(self._config_line(name))
        extra = [self._config_line(name) for name, option in OPTIONS.items()
                 if name not in seen and self.values[name] != option.default]
        if extra:
            out.append("# Generated by CONFIG REWRITE")
            out += extra
        tmp = f"{self.file}.rewrite-{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("\n".join(out) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.file)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        fd = os.open(os.path.dirname(self.file), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _config_line(self, name):
        option = OPTIONS[name]
        value = self.values[name]
        text = str(value) if option.show is _show_secret else option.show(value)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")
        return f"{name} {shlex.quote(str(text))}"

    def load_file(self, path):
        """Reads `path`: TOML when it ends in .toml, else Redis-style lines."""
        self.file = os.path.abspath(path)
        if path.endswith(".toml"):
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise ConfigError("TOML configuration needs Python 3.11+; use `name value` lines") from None
            with open(path, "rb") as f:
                try:
                    data = tomllib.load(f)
                except tomllib.TOMLDecodeError as e:
                    raise ConfigError(f"{path}: {e}") from None
            for name, value in data.items():
                if isinstance(value, bool):
                    value = "yes" if value else "no"
                elif isinstance(value, list):
                    value = " ".join(str(v) for v in value)
                self.set(name, str(value))
            return
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    words = shlex.split(line)
                except ValueError as e:
                    raise ConfigError(f"{path}:{lineno}: {e}") from None
                try:
                    self.set(words[0], " ".join(words[1:]))
                except ConfigError as e:
                    raise ConfigError(f"{path}:{lineno}: {e}") from None
