"""The audit log (--audit-log; kvdb/server/audit.py): every event kind appears,
every line parses as JSON with time, client address and port, user and event,
and no password or value ever appears in it."""
import json
import socket
import time

from kvdb.server.audit import AuditLog
from kvdb.server.config import Config
from tests.securityutil import RawClient, RespError
from tests.serverutil import ServerProcess

SECRETS = ["Adm1nPw-XYZ", "UserPw-QQQ", "NewPw-RRR", "WrongPw-TTT", "VALUE-SSS", "HashField-VVV"]


def _events(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
    return out


def test_every_event_is_logged_as_json_without_secrets(tmp_path):
    audit = tmp_path / "audit.jsonl"
    with ServerProcess(tmp_path, "--requirepass", SECRETS[0], "--audit-log", str(audit), "--maxclients", "3",
                       "--client-output-buffer-limit", "pubsub 64kb 0 0") as srv:
        with RawClient(srv.port) as admin, RawClient(srv.port) as other:
            assert isinstance(other.call("AUTH", SECRETS[3]), RespError)                  # auth_failed
            assert admin.call("AUTH", SECRETS[0]) == b"OK"                                 # auth_ok
            assert admin.call("SET", "k", SECRETS[4]) == b"OK"
            assert admin.call("HSET", "h", "f", SECRETS[5]) == 1
            assert admin.call("ACL", "SETUSER", "ro", "on", ">" + SECRETS[1], "~*", "+@read") == b"OK"  # command
            assert other.call("AUTH", "ro", SECRETS[1]) == b"OK"
            assert isinstance(other.call("SET", "k", "x"), RespError)                      # acl_denied (command)
            assert admin.call("ACL", "SETUSER", "ro", "resetkeys", "~pub:*") == b"OK"
            assert isinstance(other.call("GET", "k"), RespError)                           # acl_denied (key)
            assert admin.call("CONFIG", "SET", "timeout", "300") == b"OK"                  # config_set
            assert admin.call("CONFIG", "SET", "requirepass", SECRETS[2]) == b"OK"         # a secret option
            assert admin.call("CONFIG", "GET", "requirepass") == [b"requirepass", b"(hidden)"]
            assert admin.call("FLUSHDB") == b"OK"                                          # dangerous
            with RawClient(srv.port) as third:
                with RawClient(srv.port) as refused:                                       # connection_refused
                    assert str(refused.read()) == "ERR max number of clients reached"
                assert third.call("AUTH", SECRETS[2]) == b"OK"
                third.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                third.send(b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n")
                third.read()
                for _ in range(200):                                                       # client_closed
                    admin.call("PUBLISH", "ch", "m" * 65536)
                    if admin.call("PUBSUB", "NUMSUB", "ch")[1] == 0:
                        break
        time.sleep(0.3)
    events = _events(audit)
    kinds = {e["event"] for e in events}
    assert {"connect", "disconnect", "connection_refused", "auth_ok", "auth_failed", "acl_denied", "command",
            "config_set", "client_closed"} <= kinds, kinds
    for e in events:
        assert e["time"].endswith("Z") and "T" in e["time"]
        assert e["addr"] == "127.0.0.1" and isinstance(e["port"], int) and e["port"] > 0
        assert isinstance(e["user"], str) and isinstance(e["client_id"], int)
    by = {}
    for e in events:
        by.setdefault(e["event"], []).append(e)
    assert {e["reason"] for e in by["acl_denied"]} == {"command", "key"}
    assert any(e.get("key") == "k" and e["user"] == "ro" for e in by["acl_denied"])
    assert any(e["command"] == "set" for e in by["acl_denied"] if e["reason"] == "command")
    assert {"acl|setuser", "config|set", "flushdb"} <= {e["command"] for e in by["command"]}
    assert any(e.get("target") == ["ro"] for e in by["command"] if e["command"] == "acl|setuser")
    cfg = {n for e in by["config_set"] for n in e["options"]}
    assert cfg == {"timeout", "requirepass"}
    assert all("requirepass" not in e["values"] for e in by["config_set"])
    assert any(e["values"].get("timeout") == "300" for e in by["config_set"])
    assert by["auth_failed"][0]["user"] == "default" and by["auth_ok"][0]["user"] == "default"
    assert any(e["user"] == "ro" for e in by["auth_ok"])
    assert any(e["reason"] == "maxclients" for e in by["connection_refused"])
    assert any("client-output-buffer-limit" in e["reason"] for e in by["client_closed"])
    text = audit.read_text()
    for secret in SECRETS:
        assert secret not in text, secret


def test_audit_log_to_stderr(tmp_path):
    with ServerProcess(tmp_path, "--audit-log", "-") as srv:
        assert srv.client().ping()
        srv.client().config_set("slowlog-max-len", 10)
    lines = [json.loads(line) for line in srv.log().splitlines() if line.startswith("{")]
    assert {"connect", "config_set", "command"} <= {e["event"] for e in lines}


def test_audit_log_off_writes_nothing_and_bad_path_is_a_clear_error(tmp_path):
    log = AuditLog(Config())
    assert not log.enabled
    log.event("connect")  # no file: nothing happens
    bad = ServerProcess(tmp_path, "--audit-log", str(tmp_path / "no" / "such" / "dir" / "audit.log"))
    try:
        bad.start()
        raise AssertionError("the server started with an unwritable audit log")
    except RuntimeError as e:
        assert "cannot open audit-log" in str(e)
    finally:
        bad.stop()
