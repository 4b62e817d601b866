"""The command table: every command's name, arity, flags, ACL categories and key
positions, as Redis's COMMAND INFO describes them, and the handler that runs it.

A handler is `handler(ctx, args) -> reply`, where args[0] is the command name as
sent and the reply is a value kvdb.server.protocol.resp.encode_reply accepts. Handlers
raise CommandError for error replies. Arity follows Redis: n > 0 means exactly n
words (name included), -n means at least n.
"""
__all__ = ["NO_REPLY", "Command", "CommandError", "COMMANDS", "command", "subcommand", "lookup", "SYNTAX", "NOT_INTEGER",
           "numkeys_keys", "after_token_keys",
           "NOT_FLOAT", "WRONGTYPE", "int_arg", "float_arg"]


class _NoReply:
    """Returned by a handler that sends no reply now (SUBSCRIBE sends pushes, DEBUG SLEEP
    replies later, SHUTDOWN closes)."""
    __slots__ = ()


NO_REPLY = _NoReply()


class CommandError(Exception):
    """An error reply; str(e) is the text after '-' (it starts with ERR, WRONGTYPE, ...)."""


SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


class Command:
    __slots__ = ("audited", "name", "handler", "arity", "flags", "categories", "first_key", "last_key", "step",
                 "subcommands", "parent", "summary", "group", "since", "fullname", "key_finder")

    def __init__(self, name, handler, arity, flags, categories, keys, summary, group, since, parent=None,
                 key_finder=None):
        self.name = name                      # lower-case name ("get", or "setname" under client)
        self.fullname = f"{parent.name}|{name}" if parent else name  # "client|setname" for ACL and COMMAND
        self.handler = handler                # callable(ctx, args) or None for a container
        self.arity = arity                    # Redis arity (negative: at least)
        self.flags = frozenset(flags.split())  # write readonly fast admin pubsub noauth loading stale ...
        self.categories = frozenset(c.lstrip("@") for c in categories.split())  # ACL categories, no '@'
        self.first_key, self.last_key, self.step = keys  # key positions (0, 0, 0 when none)
        self.subcommands = {}                 # name -> Command, for containers like CLIENT
        self.parent = parent                  # the container of a subcommand
        self.summary = summary                # COMMAND DOCS summary
        self.group = group                    # COMMAND DOCS group (string, hash, generic, ...)
        self.since = since                    # Redis version that introduced it
        self.audited = bool(self.categories & {"admin", "dangerous"})  # the audit log records each call
        self.key_finder = key_finder          # callable(args) -> key positions, for movable keys (or None)

    def key_indexes(self, argc):
        """Positions of key arguments in a call with argc words."""
        if self.first_key <= 0 or argc <= self.first_key:
            return range(0)
        last = self.last_key if self.last_key >= 0 else argc + self.last_key
        return range(self.first_key, min(last, argc - 1) + 1, self.step or 1)

    def keys_of(self, args):
        """Positions of the key arguments in args: the fixed (first, last, step) range, or
        for commands whose keys move (LMPOP's numkeys, XREAD's STREAMS, EVAL's numkeys)
        what their key finder reads from the arguments. Malformed arguments give the
        positions that can be read; the handler then replies the error."""
        if self.key_finder is not None:
            return [i for i in self.key_finder(args) if 0 < i < len(args)]
        return self.key_indexes(len(args))

    def arity_ok(self, argc):
        return argc == self.arity if self.arity > 0 else argc >= -self.arity


COMMANDS = {}


def _categories(flags, categories):
    cats = set(categories.split())
    f = set(flags.split())
    if "write" in f:
        cats.add("@write")
    if "readonly" in f and "@write" not in cats:
        cats.add("@read")
    if "fast" in f:
        cats.add("@fast")
    else:
        cats.add("@slow")
    if "admin" in f:
        cats.update(("@admin", "@dangerous"))
    if "pubsub" in f:
        cats.add("@pubsub")
    return " ".join(sorted(cats))


def command(name, arity, flags="", categories="", keys=(0, 0, 0), summary="", group="generic", since="1.0.0",
            key_finder=None):
    """Registers a handler as a top-level command. key_finder: for movable keys (see
    numkeys_keys and after_token_keys)."""
    def register(handler):
        COMMANDS[name] = Command(name, handler, arity, flags, _categories(flags, categories), keys, summary,
                                 group, since, key_finder=key_finder)
        return handler
    return register


def _count(word):
    try:
        n = int(word)
    except (TypeError, ValueError):
        return 0
    return n if n > 0 else 0


def numkeys_keys(numkeys_at, fixed=()):
    """A key finder for commands whose keys follow a count: `numkeys_at` is the count's
    position and the keys come right after it (LMPOP, ZUNION, SINTERCARD, EVAL, FCALL);
    `fixed` are positions of other keys (ZUNIONSTORE's destination)."""
    def find(args):
        n = _count(args[numkeys_at]) if numkeys_at < len(args) else 0
        return list(fixed) + list(range(numkeys_at + 1, min(numkeys_at + 1 + n, len(args))))
    return find


def after_token_keys(token):
    """A key finder for XREAD/XREADGROUP: after `token` (STREAMS) come n keys, then n ids."""
    def find(args):
        for i in range(1, len(args)):
            if args[i].lower() == token:
                n = (len(args) - i - 1) // 2
                return list(range(i + 1, i + 1 + n))
        return []
    return find


def container(name, arity, flags="", categories="", summary="", group="server", since="1.0.0"):
    """Registers a command that only dispatches to subcommands (CLIENT, CONFIG, ...)."""
    COMMANDS[name] = Command(name, None, arity, flags, _categories(flags, categories), (0, 0, 0), summary,
                             group, since)


def subcommand(parent, name, arity, flags="", categories="", keys=(0, 0, 0), summary="", since="1.0.0"):
    def register(handler):
        p = COMMANDS[parent]
        p.subcommands[name] = Command(name, handler, arity, flags, _categories(flags, categories), keys, summary,
                                      p.group, since, parent=p)
        return handler
    return register


_BY_RAW_NAME = {}        # command name as sent (any case) -> Command, for commands without subcommands
_BY_RAW_NAME_LIMIT = 4096


def lookup(args):
    """(command, None) for a known command and subcommand, else (None, error text)."""
    cmd = _BY_RAW_NAME.get(args[0])
    if cmd is not None and cmd.arity_ok(len(args)):
        return cmd, None
    return _lookup(args)


def _lookup(args):
    name = args[0].lower().decode("utf-8", "replace") if isinstance(args[0], bytes) else str(args[0]).lower()
    cmd = COMMANDS.get(name)
    if cmd is None:
        shown = "".join(f"'{a[:128].decode('utf-8', 'replace')}' " for a in args[1:])[:128]
        return None, f"ERR unknown command '{args[0][:128].decode('utf-8', 'replace')}', with args beginning with: {shown}"
    if cmd.subcommands:
        if len(args) < 2:
            return None, f"ERR wrong number of arguments for '{name}' command"
        sub = cmd.subcommands.get(args[1].lower().decode("utf-8", "replace"))
        if sub is None:
            return None, (f"ERR unknown subcommand '{args[1][:128].decode('utf-8', 'replace')}'. "
                          f"Try {name.upper()} HELP.")
        if not sub.arity_ok(len(args)):
            return None, f"ERR wrong number of arguments for '{name}|{sub.name}' command"
        return sub, None
    if not cmd.arity_ok(len(args)):
        return None, f"ERR wrong number of arguments for '{name}' command"
    if len(_BY_RAW_NAME) < _BY_RAW_NAME_LIMIT and isinstance(args[0], bytes):
        _BY_RAW_NAME[args[0]] = cmd
    return cmd, None


def int_arg(value, message=NOT_INTEGER):
    """A signed 64-bit integer argument, as Redis parses it (no spaces, no '+')."""
    try:
        text = value.decode("ascii")
    except (UnicodeDecodeError, AttributeError):
        raise CommandError(message) from None
    if not text or text.strip() != text or text.startswith("+") or (len(text) > 1 and text.lstrip("-").startswith("0")) \
            or text == "-0" or "_" in text:
        raise CommandError(message)
    try:
        n = int(text)
    except ValueError:
        raise CommandError(message) from None
    if not -(1 << 63) <= n < (1 << 63):
        raise CommandError(message)
    return n


def float_arg(value, message=NOT_FLOAT):
    try:
        text = value.decode("ascii")
        if not text or text.strip() != text or "_" in text:
            raise ValueError
        x = float(text)
    except (UnicodeDecodeError, ValueError, AttributeError):
        raise CommandError(message) from None
    if x != x:
        raise CommandError(message)
    return x
