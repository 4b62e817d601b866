"""The audit log (--audit-log FILE, '-' for stderr): one JSON object per line.

Events: connect, connection_refused, disconnect, client_closed (a limit closed
it), auth_ok, auth_failed, acl_denied, command (every @admin or @dangerous
command that passed the ACL check), config_set. Each line has

    time       ISO 8601 UTC with milliseconds     "2026-11-28T09:12:01.250Z"
    event      one of the names above
    client_id  CLIENT ID of the connection
    addr       client IP                          port    client port
    user       the connection's user (or the name an AUTH tried)
    ...        per event: command, reason, key/channel (denials), options (config_set),
               target (the user name ACL SETUSER/DELUSER/GETUSER acts on), tls

Never a password, a key's value, or any other argument: callers pass only the
fields above, and config_set values of SECRET_OPTIONS are left out. Writes are
line-buffered; a failing write is logged once and the server keeps serving.
"""
import json
import logging
import sys
import time

from .config import SECRET_OPTIONS

log = logging.getLogger("kvdb.server")


def _split_addr(addr):
    host, _, port = addr.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        return addr, 0


class AuditLog:
    def __init__(self, config):
        self.path = config["audit-log"]     # '' (off), '-' (stderr) or a file path
        self.file = None                    # the open text stream, None when off
        self.broken = False                 # a write failed (logged once)
        self.events = 0                     # lines written
        if self.path == "-":
            self.file = sys.stderr
        elif self.path:
            try:
                self.file = open(self.path, "a", encoding="utf-8", buffering=1)
            except OSError as e:
                raise ValueError(f"cannot open audit-log {self.path}: {e.strerror}") from None

    @property
    def enabled(self):
        return self.file is not None

    def event(self, name, client=None, **fields):
        if self.file is None:
            return
        t = time.time()
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z",
                  "event": name}
        if client is not None:
            host, port = _split_addr(client.addr)
            record.update(client_id=client.id, addr=host, port=port)
            record["user"] = client.user.name
        record.update(fields)
        try:
            self.file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            self.events += 1
        except (OSError, ValueError) as e:
            if not self.broken:
                self.broken = True
                log.error("audit log %s: write failed: %s", self.path, e)

    def config_set(self, client, names, config):
        values = {n: config.show(n) for n in names if n not in SECRET_OPTIONS}
        self.event("config_set", client, options=list(names), values=values)

    def close(self):
        if self.file is not None and self.file is not sys.stderr:
            self.file.close()
        self.file = None
