"""ACL users and their rules: passwords as salted scrypt hashes, the ACL SETUSER
rule language, and the pure permission check (docs/security.md). The Acl that
holds users, the log and the aclfile is in acl.py.

A user has a switch (on/off), passwords stored only as salted scrypt hashes, the
commands it may run (by name, subcommand or @category), the keys it may read
and write (glob patterns, ~ for both, %R~ read, %W~ write) and the pub/sub
channels it may use (&pattern). Rules apply left to right; callers apply them
to a copy and take it only when every rule parsed, so a bad rule changes nothing.

A key's required permission follows Redis's key specs: a command that returns
or copies the key's data needs read (R), one that inserts, updates or deletes
needs write (W), one that only looks at metadata (EXISTS, TTL, TYPE) needs a
pattern of either kind. KEY_ACCESS lists the commands whose keys differ from
what their readonly/write flag implies. Document commands (DOC.*) name their
collection as key 1, so collection access follows the same patterns.
"""
import hashlib
import hmac
import os
import shlex

from .commands.registry import COMMANDS
from .glob import glob_match

SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1   # ~16 MiB and ~50 ms per hash
SCRYPT_SALT_LEN = 16
SCRYPT_LEN = 32
HASH_PREFIX = "scrypt$"

# The categories ACL CAT lists (Redis's names). @all is implicit.
CATEGORIES = ("keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap", "hyperloglog",
              "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous", "connection",
              "transaction", "scripting")

# Per command: the permission each key position needs, when it differs from
# the flag default (readonly -> "R", write -> "W"). "" is metadata only.
KEY_ACCESS = {
    "exists": "", "ttl": "", "pttl": "", "type": "", "expiretime": "", "pexpiretime": "", "touch": "",
    "strlen": "", "hexists": "", "hlen": "", "hstrlen": "", "object|encoding": "", "object|refcount": "",
    "object|idletime": "", "watch": "",
    "getset": "RW", "getdel": "RW", "getex": "RW", "incr": "RW", "decr": "RW", "incrby": "RW", "decrby": "RW",
    "incrbyfloat": "RW", "hincrby": "RW", "hincrbyfloat": "RW",
    "copy": ("R", "W"), "rename": ("RW", "W"), "renamenx": ("RW", "W"),
    # Document commands that pick documents by a filter read them too: a write-only
    # user must not probe a collection's contents through match counts.
    "doc.update": "RW", "doc.delete": "RW",
    # Commands that read what they change (pops, moves, increments, trims, claims),
    # and scripts, which may do anything with their keys.
    **{name: "RW" for name in (
        "lpop", "rpop", "lmpop", "blpop", "brpop", "blmpop", "linsert", "lrem", "ltrim", "lset",
        "spop", "srem", "zincrby", "zrem", "zpopmin", "zpopmax", "bzpopmin", "bzpopmax", "zmpop", "bzmpop",
        "zremrangebyrank", "zremrangebyscore", "zremrangebylex", "xreadgroup", "xack", "xclaim", "xautoclaim",
        "xdel", "xtrim", "setbit", "bitfield", "pfadd", "eval", "evalsha", "fcall")},
    "lmove": ("RW", "RW"), "blmove": ("RW", "RW"), "rpoplpush": ("RW", "RW"), "brpoplpush": ("RW", "RW"),
    "smove": ("RW", "RW"), "pfmerge": ("RW", "R"), "bitop": ("W", "R"),
    # STORE forms: the destination is written, the sources read.
    **{name: ("W", "R") for name in ("sinterstore", "sunionstore", "sdiffstore", "zunionstore", "zinterstore",
                                    "zdiffstore", "zrangestore", "geosearchstore")},
    "eval_ro": "R", "evalsha_ro": "R", "fcall_ro": "R",
}

AUDITED_CATEGORIES = frozenset(["admin", "dangerous"])  # commands the audit log records
NOPERM_AUTH = "WRONGPASS invalid username-password pair or user is disabled."
NOT_IN_MULTI = "ERR Command not allowed inside a transaction"


class AclError(ValueError):
    """A rule, user name or ACL file line the ACL cannot accept; str() is the reply text."""


# -- passwords -----------------------------------------------------------------

def hash_password(password: bytes, salt: bytes = None) -> str:
    """A salted scrypt hash, as stored: 'scrypt$<salt hex>$<hash hex>'."""
    salt = salt if salt is not None else os.urandom(SCRYPT_SALT_LEN)
    digest = hashlib.scrypt(password, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_LEN)
    return f"{HASH_PREFIX}{salt.hex()}${digest.hex()}"


def valid_hash(stored: str) -> bool:
    parts = stored.split("$")
    if len(parts) != 3 or parts[0] + "$" != HASH_PREFIX:
        return False
    try:
        return len(bytes.fromhex(parts[1])) >= 8 and len(bytes.fromhex(parts[2])) == SCRYPT_LEN
    except ValueError:
        return False


def verify_password(password: bytes, stored: str) -> bool:
    if not valid_hash(stored):
        return False
    salt = bytes.fromhex(stored.split("$")[1])
    return hmac.compare_digest(hash_password(password, salt), stored)


# A process-local key for remembering passwords that verified, so a client
# that reconnects with a right password skips scrypt. Only successful pairs are
# remembered, in memory, as HMACs; nothing of it is ever written anywhere.
_REMEMBER_KEY = os.urandom(32)
REMEMBER_PER_USER = 16


def _remember_token(password: bytes) -> bytes:
    return hmac.new(_REMEMBER_KEY, password, hashlib.sha256).digest()


# -- users ---------------------------------------------------------------------

def _text(b):
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


def _printable(b, limit=128):
    """A key or channel name safe to put in an error line."""
    s = _text(b)[:limit]
    return "".join(ch if ch.isprintable() else "?" for ch in s)


class User:
    """One user's switch, passwords and permissions. Mutated only on the loop thread."""

    def __init__(self, name):
        self.name = name              # user name (str)
        self.enabled = False          # 'on' / 'off'
        self.nopass = False           # any password authenticates
        self.passwords = []           # stored scrypt hashes, in the order added
        self.remembered = set()       # HMAC tokens of passwords that verified (never persisted)
        self.all_commands = False     # +@all: every command, including ones registered later
        self.allowed = set()          # command fullnames allowed when not all_commands
        self.denied = set()           # fullnames denied after +@all (-cmd on top of allcommands)
        self.command_rules = []       # the command rules since the last reset, for ACL LIST
        self.key_patterns = []        # [(perm "R"/"W"/"RW", pattern bytes)]
        self.channel_patterns = []    # [pattern bytes]; allchannels is [b"*"] with all_channels
        self.all_keys = False         # ~* given (fast path)
        self.all_channels = False     # &* given (fast path)
        self.unrestricted = False     # all of the above: check() returns at once

    def copy(self):
        u = User(self.name)
        u.assign_from(self)
        return u

    def assign_from(self, other):
        """Takes every permission of other (keeps identity: clients hold this object)."""
        for f in ("enabled", "nopass", "all_commands", "all_keys", "all_channels"):
            setattr(self, f, getattr(other, f))
        if set(self.passwords) != set(other.passwords):
            self.remembered = set()
        self.passwords = list(other.passwords)
        self.allowed = set(other.allowed)
        self.denied = set(other.denied)
        self.command_rules = list(other.command_rules)
        self.key_patterns = list(other.key_patterns)
        self.channel_patterns = list(other.channel_patterns)
        self.refresh()

    def refresh(self):
        self.unrestricted = self.all_commands and not self.denied and self.all_keys and self.all_channels

    # -- passwords --

    def password_ok_fast(self, password: bytes):
        """True / False when known without scrypt, None when a hash must be checked."""
        if not self.enabled:
            return False
        if self.nopass:
            return True
        if _remember_token(password) in self.remembered:
            return True
        return None if self.passwords else False

    def check_password(self, password: bytes) -> bool:
        """Verifies with scrypt (slow; authguard runs it off the event loop)."""
        fast = self.password_ok_fast(password)
        if fast is not None:
            return fast
        return any(verify_password(password, h) for h in list(self.passwords))

    def remember(self, password: bytes):
        if not self.nopass and len(self.remembered) < REMEMBER_PER_USER:
            self.remembered.add(_remember_token(password))

    # -- commands --

    def can_run(self, cmd):
        name = cmd.fullname
        if self.all_commands:
            return name not in self.denied and (cmd.parent is None or cmd.parent.name not in self.denied)
        if name in self.allowed:
            return True
        return cmd.parent is not None and cmd.parent.name in self.allowed and name not in self.denied

    def key_allowed(self, key, need):
        if self.all_keys:
            return True
        for perm, pattern in self.key_patterns:
            if all(p in perm for p in need) and glob_match(pattern, key):
                return True
        return False

    def channel_allowed(self, channel, is_pattern=False):
        if self.all_channels:
            return True
        for pattern in self.channel_patterns:
            if (pattern == channel) if is_pattern else glob_match(pattern, channel):
                return True
        return False

    # -- description (ACL LIST, GETUSER, the aclfile) --

    def flags(self):
        f = ["on" if self.enabled else "off"]
        if self.nopass:
            f.append("nopass")
        if self.all_keys:
            f.append("allkeys")
        if self.all_channels:
            f.append("allchannels")
        return f

    def commands_text(self):
        return " ".join(self.command_rules) or "-@all"

    def keys_text(self):
        if self.all_keys:
            return "~*"
        return " ".join(("~" if perm == "RW" else f"%{perm}~") + _text(p) for perm, p in self.key_patterns)

    def channels_text(self):
        if self.all_channels:
            return "&*"
        return " ".join("&" + _text(p) for p in self.channel_patterns)

    def describe(self):
        """The user as one ACL LIST line (rules that rebuild it; passwords as hashes)."""
        parts = ["user", self.name] + self.flags()[:2 if self.nopass else 1]
        parts += ["#" + h for h in self.passwords]
        keys = self.keys_text()
        channels = self.channels_text()
        parts += [keys] if keys else ["resetkeys"]
        parts += [channels] if channels else ["resetchannels"]
        parts.append(self.commands_text())
        return " ".join(p for p in parts if p)


# -- rules ---------------------------------------------------------------------

def _commands_in(category):
    out = []
    for cmd in COMMANDS.values():
        if category in cmd.categories or category == "all":
            out.append(cmd.fullname)
        for sub in cmd.subcommands.values():
            if category in sub.categories or category == "all":
                out.append(sub.fullname)
    return out


def _find_command(name):
    parent, _, sub = name.partition("|")
    cmd = COMMANDS.get(parent)
    if cmd is None:
        return None
    if sub:
        return cmd.subcommands.get(sub)
    return cmd


def _command_rule(user, rule):
    """Applies +cmd -cmd +@cat -@cat (+cmd|sub) to user."""
    allow = rule[0] == "+"
    body = rule[1:].lower()
    if body.startswith("@"):
        cat = body[1:]
        if cat != "all" and cat not in CATEGORIES:
            raise AclError(f"ERR Error in ACL SETUSER modifier '{rule}': Unknown command or category name in ACL")
        if cat == "all":
            user.all_commands = allow
            user.allowed.clear()
            user.denied.clear()
            user.command_rules = ["+@all" if allow else "-@all"]
            return
        names = _commands_in(cat)
    else:
        cmd = _find_command(body)
        if cmd is None or not body:
            raise AclError(f"ERR Error in ACL SETUSER modifier '{rule}': Unknown command or category name in ACL")
        names = [cmd.fullname] + [s.fullname for s in cmd.subcommands.values()]
    for n in names:
        if user.all_commands:
            (user.denied.discard if allow else user.denied.add)(n)
        else:
            (user.allowed.add if allow else user.allowed.discard)(n)
            if not allow and "|" in n:
                user.denied.add(n)
            elif allow:
                user.denied.discard(n)
    if not user.command_rules:
        user.command_rules = ["-@all"]
    user.command_rules.append(rule[0] + body)


def apply_rule(user, rule):
    """Applies one ACL SETUSER rule (str) to user, or raises AclError naming it."""
    low = rule.lower()
    if low == "on":
        user.enabled = True
    elif low == "off":
        user.enabled = False
    elif low == "nopass":
        user.nopass = True
        user.passwords = []
    elif low == "resetpass":
        user.nopass = False
        user.passwords = []
    elif rule.startswith(">"):
        pw = rule[1:].encode("utf-8", "surrogateescape")
        if not any(verify_password(pw, h) for h in user.passwords):  # a password is kept once
            user.passwords.append(hash_password(pw))
        user.nopass = False
    elif rule.startswith("<"):
        pw = rule[1:].encode("utf-8", "surrogateescape")
        kept = [h for h in user.passwords if not verify_password(pw, h)]
        if len(kept) == len(user.passwords):
            raise AclError("ERR Error in ACL SETUSER modifier '<...>': no such password for the user")
        user.passwords = kept
    elif rule.startswith("#"):
        if not valid_hash(rule[1:]):
            raise AclError("ERR Error in ACL SETUSER modifier '#...': The password hash must be a kvdb scrypt "
                           "hash as ACL LIST shows it (scrypt$<salt hex>$<hash hex>)")
        if rule[1:] not in user.passwords:
            user.passwords.append(rule[1:])
        user.nopass = False
    elif rule.startswith("!"):
        if rule[1:] not in user.passwords:
            raise AclError("ERR Error in ACL SETUSER modifier '!...': no such password hash for the user")
        user.passwords.remove(rule[1:])
    elif low in ("allkeys", "~*"):
        user.all_keys = True
        user.key_patterns = [("RW", b"*")]
    elif low == "resetkeys":
        user.all_keys = False
        user.key_patterns = []
    elif rule.startswith("~") or rule.startswith("%"):
        _key_rule(user, rule)
    elif low in ("allchannels", "&*"):
        user.all_channels = True
        user.channel_patterns = [b"*"]
    elif low == "resetchannels":
        user.all_channels = False
        user.channel_patterns = []
    elif rule.startswith("&"):
        if user.all_channels:
            raise AclError(f"ERR Error in ACL SETUSER modifier '{rule}': Adding a pattern after the * pattern "
                           "(or the 'allchannels' flag) is not valid and does not have any effect. Try "
                           "'resetchannels' to start with an empty list of channels")
        pattern = rule[1:].encode("utf-8", "surrogateescape")
        if pattern not in user.channel_patterns:
            user.channel_patterns.append(pattern)
    elif low == "allcommands":
        _command_rule(user, "+@all")
    elif low == "nocommands":
        _command_rule(user, "-@all")
    elif rule[:1] in ("+", "-") and len(rule) > 1:
        _command_rule(user, rule)
    elif low == "reset":
        fresh = User(user.name)
        fresh.command_rules = ["-@all"]
        user.assign_from(fresh)
    else:
        raise AclError(f"ERR Error in ACL SETUSER modifier '{_printable(rule)}': Syntax error")
    user.refresh()


def _key_rule(user, rule):
    if rule.startswith("~"):
        perm, pattern = "RW", rule[1:]
    else:
        flags, sep, pattern = rule[1:].partition("~")
        perm = "".join(sorted(set(flags.upper())))
        if not sep or not flags or set(flags.upper()) - {"R", "W"}:
            raise AclError(f"ERR Error in ACL SETUSER modifier '{_printable(rule)}': Syntax error")
        perm = {"R": "R", "W": "W", "RW": "RW"}[perm]
    if user.all_keys:
        raise AclError(f"ERR Error in ACL SETUSER modifier '{_printable(rule)}': Adding a pattern after the * "
                       "pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try "
                       "'resetkeys' to start with an empty list of patterns")
    entry = (perm, pattern.encode("utf-8", "surrogateescape"))
    if entry not in user.key_patterns:
        user.key_patterns.append(entry)


def key_needs(cmd, position_index, args):
    """The permission ("R", "W", "RW" or "") the key at the position_index-th key slot needs."""
    access = KEY_ACCESS.get(cmd.fullname)
    if access is None:
        if cmd.fullname == "set" and any(a.lower() == b"get" for a in args[3:]):
            return "RW"
        return "W" if "write" in cmd.flags else "R"
    if isinstance(access, tuple):
        return access[min(position_index, len(access) - 1)]
    return access


# -- the ACL -------------------------------------------------------------------


DUMMY_HASH = hash_password(b"kvdb-dummy", b"\0" * SCRYPT_SALT_LEN)


def parse_acl_text(text, path="aclfile"):
    """{name: User} from aclfile text, or AclError naming the line."""
    users = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line, posix=True)
        except ValueError as e:
            raise AclError(f"ERR {path}:{lineno}: {e}") from None
        if len(words) < 2 or words[0] != "user":
            raise AclError(f"ERR {path}:{lineno}: should start with user keyword")
        name = words[1]
        if name in users:
            raise AclError(f"ERR {path}:{lineno}: duplicate user '{name}'")
        user = User(name)
        try:
            for rule in words[2:]:
                apply_rule(user, rule)
        except AclError as e:
            raise AclError(f"ERR {path}:{lineno}: {str(e).removeprefix('ERR ')}") from None
        users[name] = user
    return users


def denial(user, cmd, args):
    """(reason, object, error text) when user may not run cmd with args, else None. Pure: logs nothing."""
    if not user.can_run(cmd):
        return "command", cmd.fullname, f"NOPERM User {user.name} has no permissions to run the '{cmd.fullname}' command"
    if not user.all_keys:
        for i, pos in enumerate(cmd.keys_of(args)):
            if not user.key_allowed(args[pos], key_needs(cmd, i, args)):
                return "key", _text(args[pos]), (f"NOPERM User {user.name} has no permissions to access the "
                                                 f"'{_printable(args[pos])}' key")
    if not user.all_channels and "pubsub" in cmd.categories:
        for channel, is_pattern in channels_of(cmd, args):
            if not user.channel_allowed(channel, is_pattern):
                return "channel", _text(channel), (f"NOPERM User {user.name} has no permissions to access the "
                                                   f"'{_printable(channel)}' channel")
    return None


def channels_of(cmd, args):
    """[(channel or pattern, is_pattern)] a pub/sub command uses."""
    name = cmd.fullname
    if name in ("subscribe", "ssubscribe"):
        return [(a, False) for a in args[1:]]
    if name == "psubscribe":
        return [(a, True) for a in args[1:]]
    if name in ("publish", "spublish"):
        return [(args[1], False)]
    return []
