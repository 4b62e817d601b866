"""kvdb.Options: the one list of database options, and the places that read it (kvdb.open, its
stub, the core's Database defaults, the CLI's flags, the server's configuration)."""
import ast
import dataclasses
import inspect
import os
import re
import subprocess
import sys

import pytest

import kvdb
from kvdb._core.options import OPTION_FIELDS, parse_size, parse_text, show_text

NAMES = [f.name for f in OPTION_FIELDS]


def test_options_are_frozen_and_checked_by_name():
    opts = kvdb.Options(engine="lsm", cache_size=1 << 20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.cache_size = 5
    assert opts.replace(sync="off").sync == "off" and opts.sync == "full"
    for bad, name, error in [(dict(engine="b-tree"), "engine", ValueError),
                             (dict(sync="always"), "sync", ValueError),
                             (dict(page_size=1000), "page_size", ValueError),
                             (dict(page_size=65536), "page_size", ValueError),
                             (dict(cache_size=-1), "cache_size", ValueError),
                             (dict(memtable_size=0), "memtable_size", ValueError),
                             (dict(max_open_tables=0), "max_open_tables", ValueError),
                             (dict(level1_size="64mb"), "level1_size", TypeError),
                             (dict(sstable_size=True), "sstable_size", TypeError)]:
        with pytest.raises(error, match=name):
            kvdb.Options(**bad)
    with pytest.raises(TypeError, match="cache"):
        opts.replace(cache=1)


def test_open_takes_keywords_or_options(db_path):
    with kvdb.open(db_path, engine="lsm", sync="off", memtable_size=1 << 20) as db:
        db.put(b"k", b"v")
        assert (db.engine, db.sync) == ("lsm", "off")
    with kvdb.open(db_path, options=kvdb.Options(sync="normal"), max_open_tables=7) as db:
        assert (db.engine, db.sync, db.get(b"k")) == ("lsm", "normal", b"v")
        assert db.stats()["table_cache_capacity"] == 7
    with pytest.raises(TypeError, match="cache"):
        kvdb.open(db_path, cache=1)
    with pytest.raises(TypeError, match="Options"):
        kvdb.open(db_path, options={"sync": "off"})


def test_open_signature_lists_every_option():
    params = inspect.signature(kvdb.open).parameters
    assert [p for p in params if p not in ("path", "options", "readonly", "keys", "values")] == NAMES
    assert all(params[f.name].default == f.default for f in OPTION_FIELDS)


def test_stub_names_the_same_options():
    stub = ast.parse(open(os.path.join(os.path.dirname(kvdb.__file__), "__init__.pyi")).read())
    classes = {node.name: node for node in stub.body if isinstance(node, ast.ClassDef)}
    for name in ("Options", "_OptionKeywords"):
        fields = [n.target.id for n in classes[name].body if isinstance(n, ast.AnnAssign)]
        assert fields == NAMES, name


def test_the_cores_defaults_agree():
    """Database(...) still has keyword defaults of its own; they must be Options's."""
    signature = kvdb.Database.__doc__.splitlines()[0]       # embedsignature
    for name, text in re.findall(r"(\w+)=([^,)]+)", signature):
        if name in NAMES:
            assert ast.literal_eval(text) == kvdb.Options().as_keywords()[name], name


def test_text_forms():
    assert parse_text("cache_size", "64mb") == 64 << 20 and parse_text("cache_size", "10k") == 10_000
    assert parse_text("engine", "LSM") == "lsm" and parse_text("max_open_tables", "") is None
    for f in OPTION_FIELDS:
        assert parse_text(f.name, show_text(f.name, f.default)) == f.default
    for name, text in [("page_size", "1000"), ("sync", "sometimes"), ("cache_size", "12q"), ("cache_size", "-1"),
                       ("max_open_tables", "0")]:
        with pytest.raises(ValueError):
            parse_text(name, text)
    with pytest.raises(ValueError):
        parse_size("1.5mb")


def test_server_config_has_every_option():
    from kvdb.server.config import Config, ConfigError
    config = Config()
    assert list(config.database_options()) == NAMES
    assert config.database_options()["sync"] == "normal"      # the server's own default
    config.set("memtable-size", "1mb")
    config.set("appendfsync", "always")
    assert config.database_options()["memtable_size"] == 1 << 20 and config["sync"] == "full"
    with pytest.raises(ConfigError, match="page-size"):
        config.set("page-size", "1000")


def test_cli_flags(tmp_path):
    path = str(tmp_path / "db")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "kvdb", *args], capture_output=True, text=True, timeout=60)

    p = cli("put", path, "k", "v", "--engine", "lsm", "--memtable-size", "1mb", "--sync", "off")
    assert p.returncode == 0, p.stderr
    p = cli("get", path, "k", "--cache-size", "2mb", "--max-open-tables", "10")
    assert p.returncode == 0 and p.stdout == "v\n", p.stderr
    p = cli("get", path, "k", "--cache-size", "lots")
    assert p.returncode == 2 and "--cache-size" in p.stderr and "Traceback" not in p.stderr
    p = cli("scan", path, "--page-size", "4096")          # fixed at creation: only the creating commands
    assert p.returncode == 2
