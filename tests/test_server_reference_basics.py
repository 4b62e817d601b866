"""Strings, hashes and generic commands: the same replies as a reference redis-server."""
import pytest

from redisref import reference_pair


@pytest.fixture(scope="module", params=[2, 3], ids=["resp2", "resp3"])
def pair(request, tmp_path_factory):
    with reference_pair(tmp_path_factory, protocol=request.param) as p:
        yield p


@pytest.fixture(autouse=True)
def clean(pair):
    pair.flush()


def test_strings(pair):
    pair.same("SET", "a", "1")
    pair.same("GET", "a")
    pair.same("INCRBY", "a", 5)
    pair.same("APPEND", "a", "x")
    pair.same_error("INCR", "a")
    pair.same("GET", "missing")
    pair.same_error("GET")


def test_hashes(pair):
    pair.same("HSET", "h", "f1", "v1", "f2", "v2")
    pair.same("HGET", "h", "f1")
    pair.same("HLEN", "h")
    pair.same("HDEL", "h", "f1", "nope")
    pair.same_error("HSET", "h", "f")
    pair.same_error("GET", "h")
    pair.same("TYPE", "h")


def test_generic(pair):
    pair.same("SET", "k", "v")
    pair.same("EXISTS", "k", "nope")
    pair.same("RENAME", "k", "k2")
    pair.same_error("RENAME", "nope", "x")
    pair.same("DEL", "k2", "nope")
    pair.same("TYPE", "k2")
