"""kvdb collections / find / index: the document commands of the CLI."""
import json

import pytest

import kvdb
from kvdb.cli.main import main


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "db"
    with kvdb.open(p, sync="off") as db:
        db.collection("users").insert_many([{"_id": i, "name": "u%d" % i, "age": i % 10, "city": "c%d" % (i % 3)}
                                            for i in range(100)])
    return str(p)


def test_index_find_collections(path, capsys):
    assert main(["index", path, "users", "city,-age"]) == 0
    assert capsys.readouterr().out.strip() == "city_1_age_-1"
    assert main(["index", path, "users", '[["age", 1]]', "--name", "by_age"]) == 0
    assert main(["index", path, "users"]) == 0
    listed = [json.loads(line)["name"] for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == ["_id_", "city_1_age_-1", "by_age"]
    assert main(["find", path, "users", '{"city": "c1", "age": {"$gte": 8}}', "--projection", '{"_id": 1}',
                 "--sort=-age,_id"]) == 0
    assert [json.loads(x) for x in capsys.readouterr().out.splitlines()] == \
        [{"_id": 19}, {"_id": 49}, {"_id": 79}, {"_id": 28}, {"_id": 58}, {"_id": 88}]
    assert main(["find", path, "users", '{"age": 3}', "--count"]) == 0
    assert capsys.readouterr().out.strip() == "10"
    assert main(["find", path, "users", '{"age": 3}', "--explain"]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == "by_age"
    assert main(["collections", path, "--verify"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("users\t100 documents") and out.rstrip().endswith("ok")
    assert main(["index", path, "users", "--drop", "by_age"]) == 0


def test_errors_are_one_line(path, capsys):
    assert main(["index", path, "users", "age", "--unique"]) == 1
    assert "DuplicateKeyError" in capsys.readouterr().err
    assert main(["find", path, "users", "{bad"]) == 1
    assert "bad JSON in FILTER" in capsys.readouterr().err
    assert main(["find", path, "users", '{"a": {"$nope": 1}}']) == 1
    assert "unknown operator" in capsys.readouterr().err
    assert main(["find", str(path) + "-missing", "users"]) == 1
    assert "no database" in capsys.readouterr().err


def test_extended_json_round_trip(path, capsys):
    from kvdb.documents import ObjectId
    oid = ObjectId()
    with kvdb.open(path) as db:
        db.collection("t").insert_one({"_id": oid, "b": b"\x00\x01", "w": __import__("datetime").datetime(2020, 1, 1)})
    assert main(["find", path, "t", json.dumps({"_id": {"$oid": str(oid)}})]) == 0
    assert json.loads(capsys.readouterr().out) == {"_id": {"$oid": str(oid)}, "b": {"$binary": "AAE="},
                                                    "w": {"$date": 1577836800000}}
