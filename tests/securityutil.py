"""Helpers for the server security tests: a raw RESP client over a socket, a
RESP reply reader that validates framing, and the server's RSS.

    with RawClient(port) as rc:
        rc.call("AUTH", "pw")        # -> b"OK" / RespError("WRONGPASS ...")
"""
import socket


class RespError(Exception):
    """An error reply; str() is its text."""


def encode_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_reply(f):
    """One RESP2/RESP3 reply from a binary file object; RespError for '-'; EOFError at end of stream."""
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    if not line.endswith(b"\r\n"):
        raise ValueError(f"reply line not terminated by CRLF: {line!r}")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body
    if kind == b"-":
        return RespError(body.decode("utf-8", "replace"))
    if kind in (b":", b"("):
        return int(body)
    if kind in (b"$", b"="):
        n = int(body)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2 or not data.endswith(b"\r\n"):
            raise ValueError("bulk reply truncated or not terminated")
        return data[:-2]
    if kind in (b"*", b">", b"~"):
        n = int(body)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    if kind == b"%":
        return {_hashable(read_reply(f)): read_reply(f) for _ in range(int(body))}
    if kind == b"_":
        return None
    if kind == b"#":
        return body == b"t"
    if kind == b",":
        return float(body)
    raise ValueError(f"unknown reply type {line!r}")


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


class RawClient:
    def __init__(self, port, host="127.0.0.1", timeout=10, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.f = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        """Sends one command and returns its reply (a RespError instance for an error reply)."""
        self.send(encode_command(*args))
        return self.read()

    def read(self):
        return read_reply(self.f)

    def closed_by_server(self, timeout=5):
        """True when the server closes the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def rss_bytes(pid):
    """VmRSS of process pid, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line")
