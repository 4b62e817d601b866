"""ACL users, rules and permissions (issue 6; docs/security.md).

The rule language and the permission check are tested in-process on
kvdb.server.acl_user (fast); NOAUTH, WRONGPASS, read-only users, key-pattern
users (~, %R~, %W~, DOC.* collections), channel permissions, dangerous commands,
ACL LOG and the ACL SAVE/LOAD round trip against a running `kvdb serve` with
redis-py and raw sockets.
"""
import os

import pytest

from kvdb.server import acl_user
from kvdb.server.acl import Acl
from kvdb.server.acl_user import AclError, User, apply_rule, denial, parse_acl_text
from kvdb.server.commands.registry import lookup
from kvdb.server.config import Config
from tests.securityutil import RawClient, RespError
from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")

ADMIN_PW = "adm1n-Secret"


# -- in-process: the rule language -------------------------------------------------

def _user(*rules):
    u = User("u")
    for r in rules:
        apply_rule(u, r)
    return u


def _denied(user, *words):
    args = [w.encode() if isinstance(w, str) else w for w in words]
    cmd, error = lookup(args)
    assert cmd is not None, error
    return denial(user, cmd, args)


def test_new_user_is_off_with_no_permissions():
    u = User("x")
    assert not u.enabled and not u.nopass and u.passwords == []
    assert u.describe() == "user x off resetkeys resetchannels -@all"
    assert _denied(_user("on", "nopass"), "GET", "k")[0] == "command"


def test_commands_categories_and_subcommands():
    u = _user("on", "+@read", "-strlen", "~*")
    assert _denied(u, "GET", "k") is None
    assert _denied(u, "STRLEN", "k")[0] == "command"
    assert _denied(u, "SET", "k", "v")[2] == "NOPERM User u has no permissions to run the 'set' command"
    u = _user("on", "+@all", "-@dangerous", "~*", "&*")
    for words in (["FLUSHALL"], ["FLUSHDB"], ["KEYS", "*"], ["CONFIG", "GET", "x"], ["SHUTDOWN"],
                  ["DEBUG", "SLEEP", "0"], ["ACL", "LIST"], ["CONFIG", "SET", "timeout", "1"]):
        assert _denied(u, *words)[0] == "command", words
    assert _denied(u, "SET", "k", "v") is None
    u = _user("on", "-@all", "+client|id", "~*")
    assert _denied(u, "CLIENT", "ID") is None
    assert _denied(u, "CLIENT", "KILL", "ID", "1")[0] == "command"
    u = _user("on", "+client", "-client|kill", "~*")
    assert _denied(u, "CLIENT", "SETNAME", "n") is None
    assert _denied(u, "CLIENT", "KILL", "ID", "1")[0] == "command"


def test_key_patterns_read_write_and_metadata():
    u = _user("on", "+@all", "~app:*")
    assert _denied(u, "GET", "app:1") is None
    assert _denied(u, "GET", "other") == ("key", "other", "NOPERM User u has no permissions to access the "
                                                          "'other' key")
    assert _denied(u, "MGET", "app:1", "other")[1] == "other"
    assert _denied(u, "MSET", "app:1", "v", "app:2", "v") is None
    assert _denied(u, "MSET", "app:1", "v", "x", "app:2")[1] == "x"  # keys are every other argument
    r = _user("on", "+@all", "%R~ro:*")
    assert _denied(r, "GET", "ro:1") is None
    assert _denied(r, "SET", "ro:1", "v")[0] == "key"
    assert _denied(r, "INCR", "ro:1")[0] == "key"        # read and write
    assert _denied(r, "EXISTS", "ro:1") is None          # metadata: any pattern
    w = _user("on", "+@all", "%W~wo:*")
    assert _denied(w, "SET", "wo:1", "v") is None
    assert _denied(w, "GET", "wo:1")[0] == "key"
    assert _denied(w, "SET", "wo:1", "v", "GET")[0] == "key"   # SET ... GET returns the old value
    assert _denied(w, "TTL", "wo:1") is None
    c = _user("on", "+@all", "%R~src", "%W~dst")
    assert _denied(c, "COPY", "src", "dst") is None
    assert _denied(c, "COPY", "dst", "src")[0] == "key"
    assert _denied(c, "RENAME", "src", "dst")[0] == "key"  # RENAME deletes its source: needs write too


def test_document_commands_obey_key_patterns_by_collection():
    u = _user("on", "+@all", "%R~users", "~orders")
    assert _denied(u, "DOC.FIND", "users", "{}") is None
    assert _denied(u, "DOC.COUNT", "users") is None
    assert _denied(u, "DOC.INSERT", "users", "{}")[:2] == ("key", "users")
    assert _denied(u, "DOC.INSERT", "orders", "{}") is None
    assert _denied(u, "DOC.FIND", "secrets", "{}")[:2] == ("key", "secrets")
    w = _user("on", "+@all", "%W~log")
    assert _denied(w, "DOC.INSERT", "log", "{}") is None
    assert _denied(w, "DOC.DELETE", "log", "{}")[0] == "key"    # a filter reads: needs R as well


def test_channel_patterns():
    u = _user("on", "+@all", "~*", "&news.*")
    assert _denied(u, "SUBSCRIBE", "news.1") is None
    assert _denied(u, "SUBSCRIBE", "news.1", "sports")[:2] == ("channel", "sports")
    assert _denied(u, "PUBLISH", "sports", "m")[0] == "channel"
    assert _denied(u, "PSUBSCRIBE", "news.*") is None          # a pattern must be granted literally
    assert _denied(u, "PSUBSCRIBE", "n*")[0] == "channel"
    assert _denied(_user("on", "+@all", "~*"), "PUBLISH", "x", "m")[0] == "channel"  # resetchannels by default


def test_bad_rules_are_rejected_with_the_rule_named():
    for rule in ("bogus", "+nosuchcommand", "+@nosuchcategory", "%X~a", "%R", "!notahash", "#abc"):
        with pytest.raises(AclError) as e:
            _user("on", rule)
        assert str(e.value).startswith("ERR Error in ACL SETUSER modifier"), rule
    with pytest.raises(AclError):
        _user("allkeys", "~more")


def test_passwords_are_stored_only_as_salted_scrypt_hashes():
    u = _user("on", ">hunter2", ">hunter2", ">other")
    v = _user("on", ">hunter2")
    assert len(u.passwords) == 2                      # the same password is kept once
    assert u.passwords[0] != v.passwords[0]           # salted: equal passwords, different hashes
    for h in u.passwords:
        assert h.startswith("scrypt$") and "hunter2" not in h
    assert "hunter2" not in u.describe()
    assert u.check_password(b"hunter2") and not u.check_password(b"hunter3")
    apply_rule(u, "<hunter2")
    assert len(u.passwords) == 1 and u.check_password(b"other")
    with pytest.raises(AclError):
        apply_rule(u, "<hunter2")
    apply_rule(u, "!" + u.passwords[0])
    assert u.passwords == [] and not u.check_password(b"other")
    assert not _user("off", "nopass").check_password(b"")   # a disabled user never authenticates


def test_describe_round_trips_through_the_aclfile_parser():
    u = _user("on", ">pw", "~app:*", "%R~ro:*", "%W~wo:*", "&news.*", "+@read", "-strlen", "+set")
    text = u.describe()
    assert text.startswith("user u on #scrypt$")
    assert "~app:* %R~ro:* %W~wo:* &news.* -@all +@read -strlen +set" in text
    back = parse_acl_text(text + "\n")["u"]
    assert back.describe() == text
    assert back.check_password(b"pw")


def test_aclfile_errors_name_the_line():
    with pytest.raises(AclError, match=r"f:2: .*Syntax error"):
        parse_acl_text("user a on nopass\nuser b on wat\n", "f")
    with pytest.raises(AclError, match="duplicate"):
        parse_acl_text("user a on\nuser a off\n", "f")
    with pytest.raises(AclError, match="user keyword"):
        parse_acl_text("a on\n", "f")


class _FakeServer:
    def __init__(self, **options):
        self.config = Config()
        for k, v in options.items():
            self.config.set(k, v)
        self.clients = {}

        class _NoAudit:
            file = None
        self.audit = _NoAudit()


def test_setuser_is_all_or_nothing():
    acl = Acl(_FakeServer())
    acl.setuser("bob", ["on", ">pw", "~a:*", "+get"])
    before = acl.users["bob"].describe()
    with pytest.raises(AclError):
        acl.setuser("bob", ["resetkeys", "~b:*", "+nosuch"])
    assert acl.users["bob"].describe() == before
    with pytest.raises(AclError):
        acl.setuser("new", ["on", "bad-rule"])
    assert "new" not in acl.users
    with pytest.raises(AclError, match="default"):
        acl.deluser(["default"])


def test_requirepass_sets_the_default_users_hash():
    acl = Acl(_FakeServer(requirepass="pw"))
    assert acl.auth_required()
    assert acl.default.passwords[0].startswith("scrypt$")
    assert acl.authenticate("default", b"pw") is acl.default
    assert acl.authenticate("default", b"nope") is None
    assert acl.authenticate("nosuchuser", b"pw") is None


# -- against a running server ---------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("acl")
    aclfile = tmp / "users.acl"
    aclfile.write_text(f"user default on >{ADMIN_PW} ~* &* +@all\n"
                       "user reader on >readpw ~* &* -@all +@read +@connection +@transaction\n")
    with ServerProcess(tmp, "--aclfile", str(aclfile)) as srv:
        srv.aclfile = aclfile
        yield srv


def _s(x):
    return x.decode() if isinstance(x, bytes) else x


def _admin(srv):
    return srv.client(password=ADMIN_PW)


def _as(srv, user, pw, **kw):
    return srv.client(username=user, password=pw, **kw)


def test_noauth_and_wrongpass_raw(server):
    with RawClient(server.port) as rc:
        r = rc.call("GET", "k")
        assert isinstance(r, RespError) and str(r) == "NOAUTH Authentication required."
        r = rc.call("AUTH", "wrong")
        assert isinstance(r, RespError)
        assert str(r) == "WRONGPASS invalid username-password pair or user is disabled."
        assert rc.call("PING") .__class__ is RespError  # still not authenticated
        assert rc.call("AUTH", ADMIN_PW) == b"OK"
        assert rc.call("PING") == b"PONG"
        assert rc.call("ACL", "WHOAMI") == b"default"


def test_hello_auth_and_auth_inside_multi(server):
    with RawClient(server.port) as rc:
        r = rc.call("HELLO", "3")
        assert isinstance(r, RespError) and str(r).startswith("NOAUTH HELLO must be called")
        hello = rc.call("HELLO", "3", "AUTH", "reader", "readpw", "SETNAME", "r1")
        assert hello[b"proto"] == 3
        assert rc.call("CLIENT", "GETNAME") == b"r1"
        assert rc.call("MULTI") == b"OK"
        r = rc.call("AUTH", "reader", "readpw")
        assert isinstance(r, RespError) and str(r) == "ERR Command not allowed inside a transaction"
        r = rc.call("EXEC")
        assert isinstance(r, RespError) and str(r).startswith("EXECABORT")


def test_redis_py_noauth_and_wrongpass(server):
    with pytest.raises(redis.AuthenticationError):
        server.client().ping()
    assert _admin(server).ping()
    assert _as(server, "reader", "readpw").ping()


def test_read_only_user(server):
    admin = _admin(server)
    admin.set("ro:k", "v")
    r = _as(server, "reader", "readpw")
    assert r.get("ro:k") == b"v"
    assert r.exists("ro:k") == 1
    with pytest.raises(redis.exceptions.NoPermissionError, match="'set' command"):
        r.set("ro:k", "w")
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.flushall()
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.hset("h", "f", "v")
    assert admin.get("ro:k") == b"v"


def test_key_pattern_users(server):
    admin = _admin(server)
    admin.acl_setuser("app", enabled=True, passwords=["+apppw"], keys=["app:*", "%R~shared:*"],
                      commands=["+@all", "-@dangerous"])
    admin.set("shared:cfg", "1")
    admin.set("secret", "s")
    a = _as(server, "app", "apppw")
    assert a.set("app:1", "x") and a.get("app:1") == b"x"
    assert a.get("shared:cfg") == b"1"
    with pytest.raises(redis.exceptions.NoPermissionError, match="'shared:cfg' key"):
        a.set("shared:cfg", "2")
    with pytest.raises(redis.exceptions.NoPermissionError, match="'secret' key"):
        a.get("secret")
    with pytest.raises(redis.exceptions.NoPermissionError):
        a.mget("app:1", "secret")
    with pytest.raises(redis.exceptions.NoPermissionError):
        a.rename("app:1", "secret")
    with pytest.raises(redis.exceptions.NoPermissionError, match="'keys' command"):
        a.keys("*")
    with pytest.raises(redis.exceptions.NoPermissionError, match="config"):
        a.config_get("*")
    assert admin.get("secret") == b"s" and admin.get("shared:cfg") == b"1"
    # Documents: the collection is the key.
    with RawClient(server.port) as rc:
        assert rc.call("AUTH", "app", "apppw") == b"OK"
        r = rc.call("DOC.INSERT", "secret", '{"a": 1}')
        assert isinstance(r, RespError) and str(r).startswith("NOPERM") and "'secret' key" in str(r)
        r = rc.call("DOC.FIND", "secret", "{}")
        assert isinstance(r, RespError) and str(r).startswith("NOPERM")
    assert admin.execute_command("ACL", "DRYRUN", "app", "DOC.FIND", "shared:docs", "{}") == b"OK"
    assert b"NOPERM" in admin.execute_command("ACL", "DRYRUN", "app", "DOC.INSERT", "shared:docs", "{}")


def test_denied_command_inside_multi_aborts_exec(server):
    admin = _admin(server)
    admin.acl_setuser("tx", enabled=True, passwords=["+txpw"], keys=["tx:*"], commands=["+@all"])
    with RawClient(server.port) as rc:
        assert rc.call("AUTH", "tx", "txpw") == b"OK"
        assert rc.call("MULTI") == b"OK"
        assert rc.call("SET", "tx:1", "a") == b"QUEUED"
        r = rc.call("SET", "nottx", "b")
        assert isinstance(r, RespError) and str(r).startswith("NOPERM")
        r = rc.call("EXEC")
        assert isinstance(r, RespError) and str(r).startswith("EXECABORT")
    assert admin.get("tx:1") is None and admin.get("nottx") is None


def test_channel_permissions(server):
    admin = _admin(server)
    admin.acl_setuser("sub", enabled=True, passwords=["+subpw"], keys=["*"], channels=["news.*"],
                      commands=["+@all"])
    with RawClient(server.port) as rc:
        assert rc.call("AUTH", "sub", "subpw") == b"OK"
        r = rc.call("SUBSCRIBE", "sports")
        assert isinstance(r, RespError) and "'sports' channel" in str(r)
        r = rc.call("PSUBSCRIBE", "n*")
        assert isinstance(r, RespError) and str(r).startswith("NOPERM")
        r = rc.call("PUBLISH", "sports", "x")
        assert isinstance(r, RespError)
        assert rc.call("PUBLISH", "news.today", "x") == 0
        assert rc.call("SUBSCRIBE", "news.today") == [b"subscribe", b"news.today", 1]
        # Taking the channel away disconnects the subscriber, as Redis does.
        admin.acl_setuser("sub", enabled=True, channels=["other"], reset_channels=True)
        assert rc.closed_by_server()


def test_dangerous_commands_are_categorised_and_deniable(server):
    admin = _admin(server)
    dangerous = {_s(c) for c in admin.acl_cat("dangerous")}
    for name in ("flushall", "flushdb", "keys", "config|set", "config|get", "shutdown", "debug|sleep",
                 "acl|setuser", "acl|load", "acl|save", "acl|deluser"):
        assert name in dangerous, name
    assert "get" in {_s(c) for c in admin.acl_cat("read")}
    assert {"read", "write", "keyspace", "string", "hash", "pubsub", "admin", "dangerous", "connection",
            "transaction"} <= {_s(c) for c in admin.acl_cat()}
    admin.acl_setuser("ops", enabled=True, passwords=["+opspw"], keys=["*"], commands=["+@all", "-@dangerous"])
    ops = _as(server, "ops", "opspw")
    for fn in (ops.flushall, ops.flushdb, lambda: ops.keys("*"), lambda: ops.config_set("timeout", 5),
               lambda: ops.execute_command("DEBUG", "SLEEP", "0"), ops.acl_list,
               lambda: ops.acl_setuser("ops", commands=["+@all"])):
        with pytest.raises(redis.exceptions.NoPermissionError):
            fn()
    assert _s(ops.acl_whoami()) == "ops"


def test_acl_list_getuser_never_show_plaintext(server):
    admin = _admin(server)
    admin.acl_setuser("pwuser", enabled=True, passwords=["+VerySecretPw1"], keys=["*"], commands=["+get"])
    listing = "\n".join(_s(x) for x in admin.acl_list())
    assert "VerySecretPw1" not in listing and ADMIN_PW not in listing
    info = admin.execute_command("ACL", "GETUSER", "pwuser")
    text = repr(info)
    assert "VerySecretPw1" not in text and "scrypt$" in text
    assert admin.execute_command("ACL", "GETUSER", "nosuchuser") is None


def test_acl_log_records_denials(server):
    admin = _admin(server)
    admin.acl_log_reset()
    r = _as(server, "reader", "readpw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.set("k", "v")
    entries = admin.acl_log()
    assert entries and entries[0]["reason"] == "command" and entries[0]["object"] == "set"
    assert entries[0]["username"] == "reader"
    admin.acl_log_reset()
    assert admin.acl_log() == []
    assert admin.info("stats")["acl_access_denied_cmd"] >= 1


def test_deluser_disconnects_its_clients(server):
    admin = _admin(server)
    admin.acl_setuser("gone", enabled=True, passwords=["+gonepw"], keys=["*"], commands=["+@all"])
    with RawClient(server.port) as rc:
        assert rc.call("AUTH", "gone", "gonepw") == b"OK"
        assert admin.acl_deluser("gone") == 1
        assert rc.closed_by_server()
    with RawClient(server.port) as rc:
        assert isinstance(rc.call("AUTH", "gone", "gonepw"), RespError)


def test_acl_save_load_round_trip(server, tmp_path):
    admin = _admin(server)
    admin.acl_setuser("saved", enabled=True, passwords=["+SavedPw42"], keys=["s:*", "%R~pub:*"],
                      channels=["chan"], commands=["+@read", "+set"])
    before = sorted(admin.acl_list())
    assert admin.acl_save()
    text = server.aclfile.read_text()
    assert "SavedPw42" not in text and ADMIN_PW not in text and "readpw" not in text
    assert "user saved on #scrypt$" in text
    assert oct(os.stat(server.aclfile).st_mode & 0o777) == "0o600"
    admin.acl_deluser("saved")
    assert admin.acl_load()
    assert sorted(admin.acl_list()) == before
    s = _as(server, "saved", "SavedPw42")
    assert s.set("s:1", "v") and s.get("pub:x") is None
    # A broken file is refused and changes nothing.
    good = server.aclfile.read_text()
    server.aclfile.write_text(good + "user broken on +nosuchcommand\n")
    with pytest.raises(redis.ResponseError, match="nosuchcommand|Unknown command"):
        admin.acl_load()
    assert sorted(admin.acl_list()) == before
    server.aclfile.write_text(good)
    # A new server started on the saved file has the same users.
    with ServerProcess(tmp_path, "--aclfile", str(server.aclfile)) as srv2:
        assert sorted(srv2.client(password=ADMIN_PW).acl_list()) == before
        assert _as(srv2, "saved", "SavedPw42").get("s:1") is None


def test_acl_save_without_aclfile_is_an_error(tmp_path):
    with ServerProcess(tmp_path) as srv:
        r = srv.client()
        with pytest.raises(redis.ResponseError, match="not configured to use an ACL file"):
            r.acl_save()
        r.acl_setuser("x", enabled=True, nopass=True, keys=["*"], commands=["+@all"])
        assert [_s(u) for u in r.acl_users()] == ["default", "x"]


def test_bad_aclfile_stops_the_server_with_a_clear_error(tmp_path):
    bad = tmp_path / "bad.acl"
    bad.write_text("user a on +nosuchcommand\n")
    srv = ServerProcess(tmp_path, "--aclfile", str(bad))
    with pytest.raises(RuntimeError, match="bad.acl:1"):
        srv.start()
    srv.stop()


def test_scrypt_parameters_are_slow_hashes():
    assert acl_user.SCRYPT_N >= 1 << 14 and acl_user.SCRYPT_SALT_LEN >= 16


def test_remembered_passwords_skip_the_hash_and_are_forgotten_on_change():
    u = _user("on", ">pw1")
    assert u.password_ok_fast(b"pw1") is None          # unknown yet: needs scrypt
    u.remember(b"pw1")
    assert u.password_ok_fast(b"pw1") is True
    assert u.password_ok_fast(b"pw2") is None
    assert all(b"pw1" not in t for t in u.remembered)  # an HMAC, not the password
    changed = u.copy()
    apply_rule(changed, ">pw2")
    u.assign_from(changed)
    assert u.password_ok_fast(b"pw1") is None          # passwords changed: remembered ones are dropped
    apply_rule(u, "off")
    assert u.password_ok_fast(b"pw1") is False


def test_small_acl_commands(server):
    admin = _admin(server)
    p = admin.execute_command("ACL", "GENPASS")
    assert len(p) == 64 and int(p, 16) >= 0
    assert len(admin.execute_command("ACL", "GENPASS", "32")) == 8
    with pytest.raises(redis.ResponseError, match="GENPASS"):
        admin.execute_command("ACL", "GENPASS", "0")
    with pytest.raises(redis.ResponseError, match="Unknown category"):
        admin.execute_command("ACL", "CAT", "nosuch")
    with pytest.raises(redis.ResponseError, match="not found"):
        admin.execute_command("ACL", "DRYRUN", "nosuch", "GET", "k")
    assert admin.execute_command("ACL", "DRYRUN", "reader", "GET", "k") == b"OK"
    assert b"'set' command" in admin.execute_command("ACL", "DRYRUN", "reader", "SET", "k", "v")
    assert b"SETUSER" in b" ".join(admin.execute_command("ACL", "HELP"))
    with pytest.raises(redis.ResponseError, match="Syntax error"):
        admin.execute_command("ACL", "SETUSER", "x", "on", "bogus")
    assert admin.execute_command("ACL", "GETUSER", "x") is None       # nothing was created
    with pytest.raises(redis.ResponseError, match="spaces"):
        admin.execute_command("ACL", "SETUSER", "a b", "on")


def test_redis_cli_with_a_user(server):
    import shutil
    import subprocess
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")
    out = subprocess.run([cli, "-p", str(server.port), "--user", "reader", "--pass", "readpw", "--no-auth-warning",
                          "GET", "ro:k"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "NOPERM" not in out.stdout and "AUTH failed" not in out.stdout + out.stderr
    out = subprocess.run([cli, "-p", str(server.port), "--user", "reader", "--pass", "readpw", "--no-auth-warning",
                          "SET", "k", "v"], capture_output=True, text=True, timeout=30)
    assert "NOPERM" in out.stdout + out.stderr
