"""DOC.* commands: JSON documents through the RESP server."""
import json

import pytest

from tests.serverutil import ServerProcess

redis = pytest.importorskip("redis")
pytest.importorskip("kvdb.documents")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("docs")) as s:
        yield s


@pytest.fixture
def r(srv):
    c = srv.client()
    for name in ("users", "people"):
        c.execute_command("DOC.DELETE", name, "{}")
    return c


def docs(reply):
    return [json.loads(d) for d in reply]


def test_insert_find_sort_skip_limit(r):
    ids = json.loads(r.execute_command("DOC.INSERT", "users", '{"name": "ada", "age": 36, "tags": ["math"]}',
                                       '{"name": "bob", "age": 25}', '{"name": "cy", "age": 41, "tags": ["art"]}'))
    assert len(ids) == 3
    found = docs(r.execute_command("DOC.FIND", "users", '{"age": {"$gte": 30}}', '{"name": 1, "_id": 0}',
                                   "SORT", "age", "-1"))
    assert found == [{"name": "cy"}, {"name": "ada"}]
    found = docs(r.execute_command("DOC.FIND", "users", "{}", '{"name": 1, "_id": 0}', "SORT", "age", "1",
                                   "SKIP", "1", "LIMIT", "1"))
    assert found == [{"name": "ada"}]
    assert r.execute_command("DOC.COUNT", "users", '{"tags": "math"}') == 1
    assert r.execute_command("DOC.COUNT", "users") == 3


def test_update_delete_upsert(r):
    r.execute_command("DOC.INSERT", "users", '{"name": "ada", "age": 36}', '{"name": "bob", "age": 25}')
    res = json.loads(r.execute_command("DOC.UPDATE", "users", '{"name": "ada"}', '{"$inc": {"age": 1}}'))
    assert res["matched"] == 1 and res["modified"] == 1
    res = json.loads(r.execute_command("DOC.UPDATE", "users", '{}', '{"$set": {"x": 1}}', "MULTI"))
    assert res["matched"] == 2
    res = json.loads(r.execute_command("DOC.UPDATE", "users", '{"name": "zed"}', '{"$set": {"age": 9}}', "UPSERT"))
    assert res["matched"] == 0 and res["upserted_id"] is not None
    assert r.execute_command("DOC.DELETE", "users", '{"age": {"$lt": 30}}') == 2
    assert r.execute_command("DOC.DELETE", "users", '{}', "ONE") == 1
    assert r.execute_command("DOC.COUNT", "users", "{}") == 0


def test_index_explain_unique(r):
    r.execute_command("DOC.INSERT", "people", '{"email": "a@x", "age": 1}', '{"email": "b@x", "age": 2}')
    name = r.execute_command("DOC.INDEX", "people", "email", "UNIQUE")
    assert name
    plan = json.loads(r.execute_command("DOC.EXPLAIN", "people", '{"email": "a@x"}'))
    assert "email" in json.dumps(plan)
    with pytest.raises(redis.ResponseError, match="(?i)duplicate"):
        r.execute_command("DOC.INSERT", "people", '{"email": "a@x"}')
    assert r.execute_command("DOC.COUNT", "people", "{}") == 2
    assert r.execute_command("DOC.INDEX", "people", '[["age", -1]]')


def test_bad_input(r):
    with pytest.raises(redis.ResponseError, match="invalid JSON"):
        r.execute_command("DOC.INSERT", "users", "{not json")
    with pytest.raises(redis.ResponseError, match="must be a JSON object"):
        r.execute_command("DOC.INSERT", "users", "[1, 2]")
    with pytest.raises(redis.ResponseError):
        r.execute_command("DOC.FIND", "users", '{"a": {"$bogus": 1}}')
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("DOC.FIND", "users", "{}", "{}", "SORT")


def test_documents_in_multi_exec_are_atomic(r):
    p = r.pipeline(transaction=True)
    p.execute_command("DOC.INSERT", "users", '{"name": "t1"}')
    p.set("counter", 1)
    p.execute_command("DOC.COUNT", "users", "{}")
    res = p.execute()
    assert res[2] == 1 and r.get("counter") == b"1"


def test_binary_and_dates_round_trip(r):
    r.execute_command("DOC.INSERT", "users", '{"_id": 7, "blob": {"$binary": "AAEC"}, "when": {"$date": 1700000000000}}')
    (doc,) = docs(r.execute_command("DOC.FIND", "users", '{"_id": 7}'))
    assert doc == {"_id": 7, "blob": {"$binary": "AAEC"}, "when": {"$date": 1700000000000}}
