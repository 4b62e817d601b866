"""Per-connection limits that keep one client from taking the server down
(docs/security.md): protected mode, stricter parser caps before
authentication, client-output-buffer-limit, and the deadline for a new
connection's first command.

Protected mode: while the default user needs no password, a client whose
address is not 127.0.0.1 or ::1 (Redis's rule) is answered PROTECTED_MODE_ERROR
and closed.

Before a client authenticates (only when a password is needed) its parser
accepts at most PREAUTH_MAX_MULTIBULK arguments of at most PREAUTH_MAX_BULK
bytes, and PREAUTH_QUERY_BUFFER bytes of unparsed input, as Redis does since its
unauthenticated-DoS fix; an anonymous client cannot make the server buffer
more than that. After AUTH the configured limits apply.

Output: after each write to a client, the bytes its transport still holds are
compared with client-output-buffer-limit for its class (replica for a
replica's stream, pubsub when subscribed, else normal): over the hard limit it is closed at once; over the
soft limit for soft-seconds (checked again every cron tick) it is closed too.
"""
import ipaddress
import logging
import time

from .tls import peer_certificate_subject

log = logging.getLogger("kvdb.server")

PREAUTH_MAX_MULTIBULK = 10          # Redis: unauthenticated multibulk length cap
PREAUTH_MAX_BULK = 16 * 1024        # Redis: unauthenticated bulk length cap
PREAUTH_MAX_INLINE = 16 * 1024      # longest inline line before AUTH
PREAUTH_QUERY_BUFFER = 256 * 1024   # unparsed input buffered before AUTH
SCAN_INTERVAL = 0.5                 # seconds between first-command-timeout passes over all clients

PROTECTED_MODE_ERROR = (
    "-DENIED kvdb is running in protected mode because protected mode is enabled and no password is set for "
    "the default user. In this mode connections are only accepted from the loopback interface. If you want to "
    "connect from external computers to kvdb you may adopt one of the following solutions: 1) Just disable "
    "protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by "
    "connecting to kvdb from the same host the server is running, however MAKE SURE kvdb is not publicly "
    "accessible from internet if you do so. Use --protected-mode no in the configuration file to make this "
    "change permanent. 2) Alternatively you can just disable the protected mode by editing the kvdb "
    "configuration file, and setting the protected mode option to 'no', and then restarting the server. "
    "3) If you started the server manually just for testing, restart it with the '--protected-mode no' "
    "option. 4) Set up an authentication password for the default user (--requirepass or ACL SETUSER). "
    "NOTE: You only need to do one of the above things in order for the server to start accepting "
    "connections from the outside.\r\n")


UNIX_PEER = "unix"      # _peer_ip's answer for a Unix socket peer (no IP address)
_IPV4_LOCALHOST = ipaddress.ip_address("127.0.0.1")
_IPV6_LOCALHOST = ipaddress.ip_address("::1")


def _peer_ip(host):
    """The peer's IP address (an IPv4-mapped IPv6 address as IPv4), UNIX_PEER, or None if
    `host` is not an address."""
    if not host or host.startswith("/"):
        return UNIX_PEER
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip


def is_loopback(host):
    """Whether an address is this machine's loopback (127.0.0.0/8, ::1, ::ffff:127.x, a Unix socket)."""
    ip = _peer_ip(host)
    return ip is UNIX_PEER or (ip is not None and ip.is_loopback)


def is_local_peer(host):
    """Whether protected mode lets a peer in: as in Redis, only 127.0.0.1, ::1 (also as
    ::ffff:127.0.0.1) and Unix sockets; other 127.x.x.x sources are refused like any remote one."""
    ip = _peer_ip(host)
    return ip is UNIX_PEER or ip in (_IPV4_LOCALHOST, _IPV6_LOCALHOST)


def protected_refusal(protected_mode, no_password, host):
    """Whether protected mode refuses a client from host."""
    return bool(protected_mode and no_password and not is_local_peer(host))


def exposed_addresses(bind):
    """The bind addresses that are not loopback ('*', '0.0.0.0', '::' and any real interface)."""
    out = []
    for host in bind.split():
        h = host.lstrip("-")
        if h in ("*", "0.0.0.0", "::", "") or not is_loopback(h):
            out.append(host)
    return out


class Limits:
    """Used on the event loop thread only."""

    def __init__(self, server):
        self.server = server             # config, clients, acl, audit
        self.soft_since = {}             # client id -> monotonic time its output first passed the soft limit
        self.output_kills = 0            # clients closed by client-output-buffer-limit
        self.protected_refusals = 0      # connections refused by protected mode
        self.slow_start_kills = 0        # connections closed by first-command-timeout
        self.next_scan = 0.0             # monotonic time of the next first-command-timeout pass

    # -- connections --

    def admit(self, c):
        """Protected mode and parser caps for a new client; False when it was refused (and closed)."""
        server = self.server
        cfg = server.config
        if protected_refusal(cfg["protected-mode"], server.acl.no_password(), c.host):
            self.protected_refusals += 1
            server.audit.event("connection_refused", c, reason="protected-mode")
            log.warning("refused %s: protected mode (no password set, not a loopback address)", c.addr)
            c.transport.write(PROTECTED_MODE_ERROR.encode())
            c.closing = True
            c.transport.close()
            return False
        self.client_reset(c)
        if c.tls:
            server.audit.event("connect", c, tls=True, cert=peer_certificate_subject(c.transport))
        else:
            server.audit.event("connect", c, tls=False)
        return True

    def client_reset(self, c):
        """Parser caps for c's state: the pre-AUTH caps until it authenticates (also after RESET)."""
        if c.authenticated:
            self.apply_parser_limits(c)
            return
        cfg = self.server.config
        p = c.parser
        p.max_bulk_len = min(PREAUTH_MAX_BULK, cfg["proto-max-bulk-len"])
        p.max_multibulk_len = min(PREAUTH_MAX_MULTIBULK, cfg["proto-max-multibulk-len"])
        p.max_inline_len = min(PREAUTH_MAX_INLINE, cfg["proto-max-inline-len"])

    def apply_parser_limits(self, c):
        cfg = self.server.config
        p = c.parser
        p.max_bulk_len = cfg["proto-max-bulk-len"]
        p.max_multibulk_len = cfg["proto-max-multibulk-len"]
        p.max_inline_len = cfg["proto-max-inline-len"]

    def client_authenticated(self, c):
        self.apply_parser_limits(c)

    def client_gone(self, c):
        self.soft_since.pop(c.id, None)
        self.server.audit.event("disconnect", c)

    def query_buffer_limit(self, c):
        limit = self.server.config["client-query-buffer-limit"]
        return limit if c.authenticated else min(limit, PREAUTH_QUERY_BUFFER)

    def config_changed(self, names):
        if {"proto-max-bulk-len", "proto-max-multibulk-len", "proto-max-inline-len"} & set(names):
            for c in self.server.clients.values():
                if c.authenticated:
                    self.apply_parser_limits(c)

    # -- output --

    def check_output(self, c, now=None):
        transport = c.transport
        if transport is None or c.closing:
            return
        size = transport.get_write_buffer_size()
        cls = "replica" if getattr(c, "replica_link", None) is not None else \
            "pubsub" if c.subscriptions else "normal"
        hard, soft, seconds = self.server.config["client-output-buffer-limit"][cls]
        if hard and size > hard:
            self.kill_for_output(c, cls, size, "hard")
            return
        if soft and size > soft:
            now = time.monotonic() if now is None else now
            since = self.soft_since.setdefault(c.id, now)
            if now - since >= seconds:
                self.kill_for_output(c, cls, size, "soft")
        else:
            self.soft_since.pop(c.id, None)

    def kill_for_output(self, c, cls, size, which):
        self.output_kills += 1
        reason = f"client-output-buffer-limit {cls} {which} limit passed ({size} bytes pending)"
        self.server.audit.event("client_closed", c, reason=reason)
        log.warning("closing client %s (%s): %s", c.addr, c.user.name, reason)
        self.soft_since.pop(c.id, None)
        c.close()

    # -- the cron tick --

    def cron(self):
        """Every tick: soft output limits of the clients above one. Every SCAN_INTERVAL: the
        first-command deadline over all clients (a full pass each tick would cost O(maxclients))."""
        now = time.monotonic()
        for cid in list(self.soft_since):
            c = self.server.clients.get(cid)
            if c is None:
                self.soft_since.pop(cid, None)
            else:
                self.check_output(c, now)
        deadline = self.server.config["first-command-timeout"]
        if not deadline or now < self.next_scan:
            return
        self.next_scan = now + SCAN_INTERVAL
        cutoff = time.time() - deadline
        for c in list(self.server.clients.values()):
            if not c.first_command_seen and c.created < cutoff and not c.closing:
                self.slow_start_kills += 1
                self.server.audit.event("client_closed", c, reason="first-command-timeout")
                c.close(f"no complete command within first-command-timeout ({deadline}s)")

    def stats(self):
        return [("client_output_limit_disconnections", self.output_kills),
                ("protected_mode_refusals", self.protected_refusals),
                ("first_command_timeouts", self.slow_start_kills)]

    def startup_warnings(self):
        cfg = self.server.config
        exposed = exposed_addresses(cfg["bind"])
        if exposed and self.server.acl.no_password():
            if cfg["protected-mode"]:
                log.warning("listening on %s with no password: protected mode refuses every client that is not "
                            "127.0.0.1 or ::1; set --requirepass or ACL users to serve them",
                            " ".join(exposed))
            else:
                log.warning("WARNING: listening on %s with no password and protected mode off: anyone who can "
                            "reach this port can read, change and delete every key", " ".join(exposed))
