"""Micro-benchmark of the server's wire protocol: the RESP parser turning one pipelined batch
of BATCH commands (as redis-benchmark -P sends them) into argument lists.

The parser is kvdb.server.protocol.resp.RequestParser (docs/format/resp.md); a fresh one per
round, as a new connection has.
"""
import pytest

from kvdb.server.protocol.resp import RequestParser
from microdata import BATCH, ROUNDS, VALUE_SIZE, key


def frame(*args):
    """One command as a client sends it: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


PIPELINES = {  # command -> one pipelined batch of BATCH of them
    "SET": b"".join(frame(b"SET", key(i), b"v" * VALUE_SIZE) for i in range(BATCH)),
    "GET": b"".join(frame(b"GET", key(i)) for i in range(BATCH)),
}


@pytest.mark.benchmark(group="resp", min_rounds=ROUNDS)
@pytest.mark.parametrize("command", sorted(PIPELINES))
def test_resp_parse_pipeline(benchmark, command):
    data = PIPELINES[command]

    def parse():
        return RequestParser().feed(data)

    commands = benchmark(parse)
    assert len(commands) == BATCH and commands[0][0] == command.encode()
