"""Users and what they may do. This module holds the default user and the
requirepass password; ACL SETUSER rules, categories and key patterns build on
it (see docs/security.md)."""
import hashlib
import hmac
import os


def hash_password(password: bytes, salt: bytes = None) -> str:
    """A salted scrypt hash, as stored: 'scrypt$<salt hex>$<hash hex>'."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password, salt=salt, n=1 << 14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: bytes, stored: str) -> bool:
    try:
        kind, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


class User:
    def __init__(self, name):
        self.name = name              # user name
        self.enabled = True           # 'on' / 'off'
        self.nopass = True            # any password authenticates
        self.passwords = set()        # stored password hashes

    def check_password(self, password: bytes) -> bool:
        if not self.enabled:
            return False
        if self.nopass:
            return True
        return any(verify_password(password, h) for h in self.passwords)


class Acl:
    def __init__(self, server):
        self.server = server
        self.users = {"default": User("default")}   # name -> User
        self._requirepass = None                    # the requirepass value the default user reflects
        self.sync_requirepass()

    @property
    def default(self):
        return self.users["default"]

    def sync_requirepass(self):
        password = self.server.config["requirepass"]
        if password == self._requirepass:
            return
        self._requirepass = password
        d = self.default
        if password:
            d.nopass = False
            d.passwords = {hash_password(password.encode())}
        else:
            d.nopass = True
            d.passwords = set()

    def auth_required(self):
        d = self.default
        return not (d.enabled and d.nopass)

    def authenticate(self, username, password):
        """The User if the pair is valid, else None."""
        user = self.users.get(username)
        if user is None or not user.check_password(password):
            return None
        return user

    def check(self, client, cmd, args):
        """An error text if client's user may not run cmd with args, else None."""
        return None
