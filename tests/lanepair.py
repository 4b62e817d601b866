"""Differential fixtures over both command paths of `kvdb serve`: the C fast lane
(kvdb/server/protocol/fastlane.pyx) and the general path (KVDB_SERVER_FASTLANE=0).

    from tests.lanepair import LANE_PARAMS, LANE_IDS, lane_pair

    @pytest.fixture(scope="module", params=LANE_PARAMS, ids=LANE_IDS)
    def pair(request, tmp_path_factory):
        protocol, lane = request.param
        with lane_pair(tmp_path_factory, protocol, lane) as p:
            yield p

A test using `pair` then runs four times: RESP2 and RESP3, each with the fast lane
on and off, every reply compared with redis-server's (tests/redisref.py).
"""
import contextlib

from tests.redisref import Pair, redis_reference
from tests.serverutil import ServerProcess

LANES = {"fastlane": "1", "general": "0"}      # lane -> KVDB_SERVER_FASTLANE
LANE_PARAMS = [(2, "fastlane"), (3, "fastlane"), (2, "general"), (3, "general")]
LANE_IDS = [f"resp{p}-{lane}" for p, lane in LANE_PARAMS]


def lane_env(lane):
    return {"KVDB_SERVER_FASTLANE": LANES[lane]}


@contextlib.contextmanager
def lane_pair(tmp_path_factory, protocol, lane, kvdb_args=("--sync", "normal")):
    """A redisref.Pair against a fresh redis-server and a fresh kvdb server running `lane`."""
    tmp = tmp_path_factory.mktemp("ref")
    with redis_reference(str(tmp)) as redis_port:
        with ServerProcess(tmp, *kvdb_args, env=lane_env(lane)) as srv:
            p = Pair(srv.port, redis_port, protocol)
            try:
                yield p
            finally:
                p.close()
