"""The RESP parser and encoder, in process and against a running server: frames
split at every byte, malformed input, limits, and robustness to garbage."""
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvdb.server.protocol.resp import NULL_ARRAY, ErrorReply, Push, RequestParser, Status, encode_reply, split_inline
from tests.serverutil import ServerProcess


def frame(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


# -- parser, in process ----------------------------------------------------------

def test_pipelined_frames_in_one_read():
    p = RequestParser()
    data = frame(b"SET", b"k", b"v") + frame(b"GET", b"k") + b"PING\r\n"
    assert p.feed(data) == [[b"SET", b"k", b"v"], [b"GET", b"k"], [b"PING"]]
    assert p.error is None and p.pending == 0


def test_every_split_point_gives_the_same_commands():
    data = frame(b"SET", b"key", b"va\r\nlue") + b"ECHO \"a b\"\r\n" + frame(b"MGET", b"", b"x" * 300)
    expected = RequestParser().feed(data)
    assert len(expected) == 3
    for i in range(len(data) + 1):
        p = RequestParser()
        assert p.feed(data[:i]) + p.feed(data[i:]) == expected, i
    p = RequestParser()  # one byte at a time
    got = []
    for b in data:
        got += p.feed(bytes([b]))
    assert got == expected


@pytest.mark.parametrize("data, error", [
    (b"*1\r\n$-1\r\n", "invalid bulk length"),
    (b"*1\r\n$abc\r\n", "invalid bulk length"),
    (b"*1\r\n$9999999999999\r\n", "invalid bulk length"),
    (b"*-5\r\n", None),                                     # Redis treats argc <= 0 as an empty frame
    (b"*99999999999\r\n", "invalid multibulk length"),
    (b"*2000000\r\n", "invalid multibulk length"),
    (b"*x\r\n", "invalid multibulk length"),
    (b"*1\r\n+OK\r\n", "expected '$', got '+'"),
    (b"*1\r\n$3\r\nabcde\r\n", "bulk string not terminated by CRLF"),
    (b"SET \"unbalanced\r\n", "unbalanced quotes"),
    (b"SET 'x\r\n", "unbalanced quotes"),
    (b"SET \"a\"b\r\n", "unbalanced quotes"),
])
def test_malformed_frames(data, error):
    p = RequestParser()
    assert p.feed(data) == []
    if error is None:
        assert p.error is None
    else:
        assert error in p.error and p.error.startswith("ERR Protocol error")
        assert p.feed(frame(b"PING")) == []  # nothing more is parsed after an error


def test_limits_reject_headers_before_the_bytes_arrive():
    p = RequestParser(max_bulk_len=1024)
    assert p.feed(b"*1\r\n$2048\r\n") == [] and "invalid bulk length" in p.error
    p = RequestParser(max_multibulk_len=10)
    assert p.feed(b"*11\r\n") == [] and "invalid multibulk length" in p.error
    p = RequestParser(max_inline_len=100)
    assert p.feed(b"x" * 200) == [] and "too big inline request" in p.error
    p = RequestParser()
    assert p.feed(b"*1\r\n" + b"$" + b"1" * 70000) == [] and "too big bulk count string" in p.error


def test_commands_before_an_error_are_kept():
    p = RequestParser()
    assert p.feed(frame(b"SET", b"a", b"1") + b"*1\r\n$-7\r\n") == [[b"SET", b"a", b"1"]]
    assert p.error


def test_inline_quoting():
    assert split_inline(b'set "a\\x41\\n" \'it\\\'s\'  plain') == [b"set", b"aA\n", b"it's", b"plain"]
    assert split_inline(b"   ") == []
    assert split_inline(b'"open') is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=5))
def test_garbage_never_raises(data, cuts):
    p = RequestParser(max_bulk_len=1 << 20)
    pieces = [data[a:b] for a, b in zip([0] + sorted(cuts), sorted(cuts) + [len(data)])]
    for piece in pieces:
        out = p.feed(piece)
        assert isinstance(out, list)
        assert all(isinstance(cmd, list) and all(isinstance(a, bytes) for a in cmd) for cmd in out)
    assert p.pending <= len(data)


def test_encoder_types():
    assert encode_reply(b"x") == b"$1\r\nx\r\n"
    assert encode_reply(None) == b"$-1\r\n" and encode_reply(None, 3) == b"_\r\n"
    assert encode_reply(NULL_ARRAY) == b"*-1\r\n" and encode_reply(NULL_ARRAY, 3) == b"_\r\n"
    assert encode_reply(Status("OK")) == b"+OK\r\n"
    assert encode_reply(ErrorReply("ERR a\r\nb")) == b"-ERR a  b\r\n"
    assert encode_reply(7) == b":7\r\n" and encode_reply(True, 3) == b"#t\r\n" and encode_reply(False) == b":0\r\n"
    assert encode_reply(1.5) == b"$3\r\n1.5\r\n" and encode_reply(1.5, 3) == b",1.5\r\n"
    assert encode_reply({b"a": 1}) == b"*2\r\n$1\r\na\r\n:1\r\n" and encode_reply({b"a": 1}, 3) == b"%1\r\n$1\r\na\r\n:1\r\n"
    assert encode_reply(Push([b"m"]), 3) == b">1\r\n$1\r\nm\r\n" and encode_reply(Push([b"m"])) == b"*1\r\n$1\r\nm\r\n"
    assert encode_reply(2 ** 70, 3) == b"(1180591620717411303424\r\n"
    with pytest.raises(TypeError):
        encode_reply(object())


# -- against a server ----------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("proto"), "--proto-max-bulk-len", "1mb") as s:
        yield s


def talk(srv, data, wait_close=True, timeout=5):
    """Sends data, returns (everything received, whether the server closed)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                return got, True
            got += chunk
            if not wait_close:
                s.settimeout(0.3)
        return got, False


@pytest.mark.parametrize("bad", [
    b"*1\r\n$-3\r\n", b"*3000000\r\n", b"*1\r\n$99999999\r\n", b"GET \"x\r\n", b"*1\r\n:5\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\nab\r\n",
])
def test_protocol_error_replies_and_closes(srv, bad):
    got, closed = talk(srv, frame(b"PING") + bad)
    assert got.startswith(b"+PONG\r\n-ERR Protocol error") and closed
    assert srv.client().ping()  # others unaffected


def test_inline_commands_and_pipelines(srv):
    got, _ = talk(srv, b"SET inl 'a b'\r\nGET inl\r\n\r\nPING\r\n", wait_close=False)
    assert got == b"+OK\r\n$3\r\na b\r\n+PONG\r\n"


def test_binary_garbage_does_not_hurt_the_server(srv):
    import random
    rnd = random.Random(7)
    for _ in range(30):
        talk(srv, bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 2000))), timeout=1)
    assert srv.client().ping()
    assert "Traceback" not in srv.log()


def test_frame_split_across_sends(srv):
    data = frame(b"SET", b"split", b"x" * 5000) + frame(b"GET", b"split")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        for i in range(0, len(data), 7):
            s.sendall(data[i:i + 7])
        want = b"+OK\r\n$5000\r\n" + b"x" * 5000 + b"\r\n"
        got = b""
        while len(got) < len(want):
            got += s.recv(65536)
        assert got == want


def test_oversize_bulk_is_refused(srv):
    got, closed = talk(srv, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n")
    assert b"invalid bulk length" in got and closed
