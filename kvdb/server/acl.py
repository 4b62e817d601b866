"""The server's ACL: its users (acl_user.py holds the user model and rule
language), the check before every command, ACL LOG, and the aclfile
(docs/security.md).

The aclfile holds one `user <name> <rules>` line per user, as ACL LIST shows
them (passwords as `#<scrypt hash>`); SAVE writes it atomically (temporary
file, fsync, rename), LOAD replaces every user or, on any error, none.
Changing or deleting a user takes effect on its open connections at once:
clients hold the User object, which is updated in place.
"""
import logging
import os
import time

from .acl_user import (AUDITED_CATEGORIES, DUMMY_HASH, NOT_IN_MULTI, AclError, User, _printable,  # noqa: F401
                       apply_rule, denial, hash_password, parse_acl_text, verify_password)

log = logging.getLogger("kvdb.server")


class LogEntry:
    __slots__ = ("entry_id", "count", "reason", "context", "object", "username", "created", "updated",
                 "client_info")

    def __init__(self, entry_id, reason, context, obj, username, client_info):
        self.entry_id = entry_id          # ACL LOG entry-id
        self.count = 1                    # identical denials folded into this entry
        self.reason = reason              # command, key, channel or auth
        self.context = context            # toplevel or multi
        self.object = obj                 # command fullname, key, channel, or AUTH
        self.username = username          # user the denial was for
        self.created = time.time()        # first occurrence
        self.updated = self.created       # last occurrence
        self.client_info = client_info    # CLIENT INFO line of the client then

    def reply(self):
        now = time.time()
        return {"count": self.count, "reason": self.reason, "context": self.context, "object": self.object,
                "username": self.username, "age-seconds": round(now - self.created, 3),
                "client-info": self.client_info, "entry-id": self.entry_id,
                "timestamp-created": int(self.created * 1000), "timestamp-last-updated": int(self.updated * 1000)}


def _default_user():
    d = User("default")
    for rule in ("on", "nopass", "~*", "&*", "+@all"):
        apply_rule(d, rule)
    return d


class Acl:
    def __init__(self, server):
        self.server = server                        # config, clients, audit
        self.users = {"default": _default_user()}   # name -> User
        self._requirepass = None                    # the requirepass value the default user reflects
        self.log = []                               # ACL LOG entries, newest first
        self._next_entry_id = 0                     # next ACL LOG entry-id
        self.denials = 0                            # ACL denials (INFO acl_access_denied_*)
        self.denials_by_reason = {"command": 0, "key": 0, "channel": 0, "auth": 0}
        self.sync_requirepass()
        if server.config["aclfile"]:
            self.load_file(startup=True)

    @property
    def default(self):
        return self.users["default"]

    def sync_requirepass(self):
        password = self.server.config["requirepass"]
        if password == self._requirepass:
            return
        self._requirepass = password
        d = self.default.copy()
        if password:
            apply_rule(d, "resetpass")
            d.passwords = [hash_password(password.encode("utf-8", "surrogateescape"))]
        else:
            apply_rule(d, "nopass")
        self.default.assign_from(d)

    def auth_required(self):
        d = self.default
        return not (d.enabled and d.nopass)

    def no_password(self):
        """True when the default user lets anyone in (protected mode applies)."""
        return not self.auth_required()

    def authenticate(self, username, password):
        """The User if the pair is valid, else None. Runs scrypt and changes nothing, so authguard
        runs it on its thread pool; the caller remembers a success (User.remember) on the loop."""
        user = self.users.get(username)
        if user is None:
            verify_password(password, DUMMY_HASH)  # same cost as a real user: names do not leak by timing
            return None
        if not user.check_password(password):
            return None
        return user

    # -- the check before every command --

    def check(self, client, cmd, args):
        """An error text if client's user may not run cmd with args, else None. Also audits
        @admin / @dangerous commands that pass (at EXEC time for queued ones, not when queued)."""
        if client.multi is not None:
            if cmd.name in ("auth", "hello"):
                return NOT_IN_MULTI  # they answer asynchronously (authguard), so they cannot be queued
            user = client.user
            return None if user.unrestricted else self._check_user(client, user, cmd, args)
        user = client.user
        if not user.unrestricted:
            denied = self._check_user(client, user, cmd, args)
            if denied is not None:
                return denied
        audit = self.server.audit
        if audit.file is not None and not cmd.categories.isdisjoint(AUDITED_CATEGORIES):
            audit.event("command", client, command=cmd.fullname, **_audit_target(cmd, args))
        return None

    def _check_user(self, client, user, cmd, args):
        found = denial(user, cmd, args)
        if found is None:
            return None
        reason, obj, text = found
        self.deny(client, reason, obj, cmd)
        return text

    def deny(self, client, reason, obj, cmd=None, username=None):
        """Records a denial in ACL LOG, INFO and the audit log."""
        username = username if username is not None else client.user.name
        context = "multi" if client.multi is not None else "toplevel"
        self.denials += 1
        self.denials_by_reason[reason] = self.denials_by_reason.get(reason, 0) + 1
        now = time.time()
        for e in self.log[:8]:
            if (e.reason, e.context, e.object, e.username) == (reason, context, obj, username) \
                    and now - e.updated < 60:
                e.count += 1
                e.updated = now
                break
        else:
            self.log.insert(0, LogEntry(self._next_entry_id, reason, context, obj, username, client.info_line()))
            self._next_entry_id += 1
            del self.log[self.server.config["acllog-max-len"]:]
        audit = self.server.audit
        if audit.file is not None:
            extra = {"command": cmd.fullname} if cmd is not None else {}
            if reason in ("key", "channel"):
                extra[reason] = obj
            audit.event("acl_denied" if reason != "auth" else "auth_failed", client, user=username,
                        reason=reason, **extra)

    def info_stats(self):
        """INFO stats lines, named as Redis names them."""
        d = self.denials_by_reason
        return [("acl_access_denied_auth", d["auth"]), ("acl_access_denied_cmd", d["command"]),
                ("acl_access_denied_key", d["key"]), ("acl_access_denied_channel", d["channel"])]

    # -- changing users --

    def setuser(self, name, rules):
        """Creates or changes a user; all rules apply or none (AclError)."""
        if not name or any(ch.isspace() for ch in name) or not name.isprintable():
            raise AclError("ERR Usernames can't contain spaces or null characters")
        current = self.users.get(name)
        candidate = current.copy() if current is not None else User(name)
        for rule in rules:
            apply_rule(candidate, rule)
        if current is None:
            self.users[name] = candidate
        else:
            current.assign_from(candidate)
            self.drop_lost_subscriptions(current)

    def deluser(self, names):
        n = 0
        for name in names:
            if name == "default":
                raise AclError("ERR The 'default' user cannot be removed")
        for name in names:
            user = self.users.pop(name, None)
            if user is not None:
                n += 1
                self.kill_clients_of(user, f"user {name} deleted")
        return n

    def kill_clients_of(self, user, why):
        for c in list(self.server.clients.values()):
            if c.user is user:
                c.close(why)

    def drop_lost_subscriptions(self, user):
        """Closes clients of user subscribed to channels the user may no longer use (as Redis does)."""
        for c in list(self.server.clients.values()):
            if c.user is not user:
                continue
            if any(not user.channel_allowed(ch) for ch in c.channels) or \
                    any(not user.channel_allowed(p, True) for p in c.patterns):
                c.close(f"user {user.name} lost access to a subscribed channel")

    # -- the aclfile --

    def load_file(self, startup=False):
        """Replaces every user with the aclfile's; on any error nothing changes (AclError)."""
        path = self.server.config["aclfile"]
        if not path:
            raise AclError("ERR This kvdb instance is not configured to use an ACL file. Start it with "
                           "--aclfile FILE to use ACL SAVE and ACL LOAD.")
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except FileNotFoundError:
            if startup:
                log.info("aclfile %s does not exist yet: starting with the default user only", path)
                return
            raise AclError(f"ERR Error loading the ACL file {path}: it does not exist") from None
        except OSError as e:
            raise AclError(f"ERR Error loading the ACL file {path}: {e.strerror}") from None
        users = parse_acl_text(text, path)
        if "default" not in users:
            users["default"] = self.default.copy()
        for name in list(self.users):
            if name not in users:
                self.kill_clients_of(self.users.pop(name), f"user {name} removed by ACL LOAD")
        for name, user in users.items():
            if name in self.users:
                self.users[name].assign_from(user)
                self.drop_lost_subscriptions(self.users[name])
            else:
                self.users[name] = user
        log.info("loaded %d ACL users from %s", len(users), path)

    def save_file(self):
        path = self.server.config["aclfile"]
        if not path:
            raise AclError("ERR This kvdb instance is not configured to use an ACL file. Start it with "
                           "--aclfile FILE to use ACL SAVE and ACL LOAD.")
        text = "".join(u.describe() + "\n" for u in self.users.values())
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise AclError(f"ERR There was an error trying to save the ACLs to {path}: {e.strerror}") from None


def _audit_target(cmd, args):
    """What the audit log says about an admin command's arguments: a user name for ACL
    SETUSER/DELUSER/GETUSER, option names for CONFIG; never values or passwords."""
    if cmd.fullname in ("acl|setuser", "acl|deluser", "acl|getuser") and len(args) > 2:
        return {"target": [_printable(a) for a in args[2:3 if cmd.fullname != "acl|deluser" else None]]}
    if cmd.fullname == "config|set":
        return {"options": [_printable(a) for a in args[2::2]]}
    return {}

