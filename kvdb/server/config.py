"""The server's options: one table naming each option as Redis does, with its
type, default, whether CONFIG SET may change it at run time, and its help.

Sources, later ones winning: the defaults, a configuration file (Redis-style
`name value` lines, or TOML when the file name ends in .toml), then command-line
flags (`--name value`). Values are validated on every path with the same parser,
so `CONFIG SET maxclients abc` and `--maxclients abc` fail alike.
"""
import os
import shlex

__all__ = ["Option", "OPTIONS", "Config", "ConfigError", "parse_memory", "format_memory"]


class ConfigError(ValueError):
    """An unknown option or a value its option does not accept."""


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 ** 2, "mb": 1024 ** 2, "g": 1000 ** 3,
          "gb": 1024 ** 3}


def parse_memory(text):
    """Bytes in '512mb', '1gb', '100', '64kb' (Redis's units: k=1000, kb=1024)."""
    s = str(text).strip().lower()
    digits = s.rstrip("kmgb")
    unit = s[len(digits):]
    if not digits or unit not in _UNITS:
        raise ValueError(f"not a memory size: {text!r}")
    value = int(digits)
    if value < 0:
        raise ValueError(f"not a memory size: {text!r}")
    return value * _UNITS[unit]


def format_memory(n):
    for unit, size in (("gb", 1024 ** 3), ("mb", 1024 ** 2), ("kb", 1024)):
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _int(lo=None, hi=None):
    def parse(text):
        value = int(str(text).strip())
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


class Option:
    __slots__ = ("name", "parse", "default", "mutable", "help", "show")

    def __init__(self, name, parse, default, mutable, help, show=None):
        self.name = name          # Redis's option name
        self.parse = parse        # text -> value; ValueError with a reason when invalid
        self.default = default    # value when no source sets it
        self.mutable = mutable    # CONFIG SET may change it while running
        self.help = help          # one line for --help
        self.show = show or str   # value -> the text CONFIG GET shows


def _show_secret(v):
    """CONFIG GET never returns a password: only whether one is set."""
    return "(hidden)" if v else ""


def _show_bool(v):
    return "yes" if v else "no"


OPTIONS = {o.name: o for o in [
    Option("dir", _string, "./kvdb-data", False, "data directory (created if missing); --data is an alias"),
    Option("port", _int(0, 65535), 6380, False, "TCP port (0 turns the plaintext listener off)"),
    Option("bind", _words, "127.0.0.1", False, "addresses to listen on, space-separated"),
    Option("engine", _choice("btree", "lsm"), "btree", False, "storage engine of a new database"),
    Option("sync", _choice("full", "normal", "off",
                           aliases={"always": "full", "everysec": "normal", "no": "off"}),
           "normal", False, "durability of an acknowledged write: full (fsync before the reply), "
                            "normal (fsync within a second), off; appendfsync names accepted",
           ),
    Option("cache-size", parse_memory, 64 << 20, False, "engine page cache", format_memory),
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
    Option("maxmemory", parse_memory, 0, True, "accepted for compatibility; data lives on disk", format_memory),
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
    Option("tls-ca-cert-file", _string, "", False, "CA bundle that client certificates must chain to"),
    Option("tls-ca-cert-dir", _string, "", False, "directory of CA certificates (c_rehash layout)"),
    Option("tls-auth-clients", _choice("yes", "no", "optional"), "yes", False,
           "client certificates: yes (required), optional (verified when sent), no"),
    Option("tls-protocols", _tls_protocols, "TLSv1.2 TLSv1.3", False, "TLS versions accepted (1.2 and newer)"),
]}


# Options whose values never appear in logs or the audit log.
SECRET_OPTIONS = frozenset(["requirepass", "tls-key-file-pass"])


ALIASES = {"data": "dir", "appendfsync": "sync"}


class Config:
    """Current values by option name; set() validates, and records which were given."""

    def __init__(self):
        self.values = {name: o.default for name, o in OPTIONS.items()}
        self.file = None          # path of the configuration file read, if any

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
