"""Protocol fuzzing: Hypothesis builds byte streams from RESP fragments, command
words and arbitrary bytes, splits them at arbitrary points, and sends them to
a running `kvdb serve`. The server must never crash or raise out of its loop;
every reply must be well-formed RESP; a stream the parser rejects must end in
an `-ERR Protocol error` reply and a closed connection; another client is
answered after every example.

The expected outcome of each stream comes from the same RequestParser fed in
one piece, and the parser fed in the fuzzed pieces must agree with it (split
invariance). Bounded: a few seconds by default, more examples under --long.
The fuzzed user may not run @admin/@dangerous commands, DEBUG, SETRANGE or
SHUTDOWN, so the fuzz cannot stop or stall the server on purpose.
"""
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvdb.server.protocol.resp import RequestParser
from tests.securityutil import RawClient, RespError, encode_command, read_reply
from tests.serverutil import ServerProcess

from tests import helpers
EXAMPLES = 200 if helpers.LONG else 25

WORDS = [b"GET", b"SET", b"DEL", b"INCR", b"HSET", b"HGET", b"MGET", b"EXISTS", b"PING", b"ECHO", b"MULTI",
         b"EXEC", b"DISCARD", b"WATCH", b"SUBSCRIBE", b"UNSUBSCRIBE", b"PSUBSCRIBE", b"PUBLISH", b"HELLO", b"AUTH",
         b"SELECT", b"CLIENT", b"COMMAND", b"SCAN", b"TYPE", b"EXPIRE", b"TTL", b"APPEND", b"GETRANGE", b"KEYS",
         b"FLUSHALL", b"CONFIG", b"DOC.FIND", b"ACL", b"RESET", b"nosuch", b"GETEX", b"OBJECT", b"SETRANGE"]
ARGS = st.one_of(st.sampled_from([b"k", b"h", b"0", b"-1", b"3", b"99999999999999999999", b"", b"*", b"ENCODING",
                                  b"LIST", b"WHOAMI", b"SETNAME", b"EX", b"GET", b"{}", b"\"", b"\r\n"]),
                 st.binary(max_size=12))


@st.composite
def commands(draw):
    words = [draw(st.sampled_from(WORDS))] + draw(st.lists(ARGS, max_size=4))
    return encode_command(*words)


FRAGMENTS = st.one_of(
    commands(),
    st.sampled_from([b"*", b"$", b"\r\n", b"\n", b"*-1\r\n", b"*0\r\n", b"$-1\r\n", b"*2\r\n$3\r\n", b"$99999\r\n",
                     b"*1048577\r\n", b"*9999999999999999999999\r\n", b"$abc\r\n", b"*1\r\n:5\r\n", b"\x00",
                     b"PING\r\n", b"ECHO \"a\\x41\" 'b'\r\n", b"SET k \"unbalanced\r\n", b"   \r\n", b"+OK\r\n"]),
    st.binary(max_size=24),
)


@st.composite
def streams(draw):
    data = b"".join(draw(st.lists(FRAGMENTS, min_size=1, max_size=8)))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=6))))
    pieces, last = [], 0
    for c in cuts + [len(data)]:
        if c > last:
            pieces.append(data[last:c])
            last = c
    return data, pieces


def _reference(pieces):
    p = RequestParser()
    out = []
    for piece in pieces:
        out += p.feed(piece)
    return out, p.error, p.in_frame


@settings(max_examples=EXAMPLES * 8, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_parser_is_split_invariant(stream):
    data, pieces = stream
    whole = _reference([data])
    split = _reference(pieces)
    assert split[1] == whole[1]
    if whole[1] is None:
        assert split == whole
    else:
        assert split[0] == whole[0]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    aclfile = tmp / "fuzz.acl"
    aclfile.write_text("user default on nopass ~* &* +@all -@admin -@dangerous -debug -shutdown -setrange -acl "
                       "-config\n")
    with ServerProcess(tmp, "--aclfile", str(aclfile), "--proto-max-bulk-len", "64kb") as srv:
        srv.control = RawClient(srv.port)
        yield srv
        srv.control.close()
        log = srv.log()
    assert "Exception in callback" not in log and "Unhandled" not in log, log[-3000:]


def _read_all(rc):
    """Replies until the server closes the connection (each one validated as RESP)."""
    replies = []
    while True:
        try:
            replies.append(read_reply(rc.f))
        except (EOFError, OSError):
            return replies


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stream=streams())
def test_server_survives_arbitrary_bytes(fuzz_server, stream):
    data, pieces = stream
    commands, error, in_frame = _reference([data])
    rc = RawClient(fuzz_server.port, timeout=10)
    rc.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for piece in pieces:
            rc.send(piece)
        if error is None and not in_frame:
            # A sentinel after the stream: leave any MULTI, then an ECHO-like PING the reply names.
            rc.send(encode_command("DISCARD") + encode_command("PING", "fuzz-sentinel") + encode_command("QUIT"))
        else:
            try:
                rc.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # already closed by the server
        replies = _read_all(rc)
    except OSError:
        replies = None   # the server closed first (protocol error, QUIT): fine, the server checks follow
    finally:
        rc.close()
    quit_sent = any(c and c[0].lower() == b"quit" for c in commands)
    if replies is not None and error is not None and not quit_sent and replies:
        assert isinstance(replies[-1], RespError) and str(replies[-1]).startswith("ERR Protocol error"), replies[-3:]
    if replies is not None and error is None and not in_frame and not quit_sent:
        flat = repr(replies)
        assert "fuzz-sentinel" in flat, replies[-3:]
    assert fuzz_server.control.call("PING") == b"PONG"
    assert fuzz_server.proc.poll() is None
