"""kvdb serve's configuration: defaults, Redis-style and TOML files, flags winning,
CONFIG GET/SET, and one-line errors for bad values."""
import socket
import subprocess
import sys

import pytest

from kvdb.server.config import Config, ConfigError, parse_memory
from tests.serverutil import ServerProcess


def test_memory_units():
    assert parse_memory("512mb") == 512 << 20 and parse_memory("1gb") == 1 << 30
    assert parse_memory("10k") == 10_000 and parse_memory("64kb") == 65536 and parse_memory("7") == 7
    for bad in ("", "mb", "1tb", "-1", "x"):
        with pytest.raises(ValueError):
            parse_memory(bad)


def test_file_then_flags(tmp_path):
    conf = tmp_path / "kvdb.conf"
    conf.write_text("# comment\nport 7000\nmaxclients 50\nnotify-keyspace-events \"KEA\"\nappendfsync always\n")
    cfg = Config()
    cfg.load_file(str(conf))
    assert cfg["port"] == 7000 and cfg["maxclients"] == 50 and cfg["notify-keyspace-events"] == "KEA"
    assert cfg["sync"] == "full"
    cfg.set("maxclients", "60")
    assert cfg["maxclients"] == 60


def test_toml_file(tmp_path):
    pytest.importorskip("tomllib")
    conf = tmp_path / "kvdb.toml"
    conf.write_text('port = 7001\nbind = ["127.0.0.1"]\nappendonly = true\nsync = "off"\n')
    cfg = Config()
    cfg.load_file(str(conf))
    assert cfg["port"] == 7001 and cfg["bind"] == "127.0.0.1" and cfg["sync"] == "off"


@pytest.mark.parametrize("name, value", [("port", "70000"), ("maxclients", "x"), ("sync", "sometimes"),
                                         ("nosuchoption", "1"), ("notify-keyspace-events", "Q")])
def test_bad_values_are_refused(name, value):
    with pytest.raises(ConfigError):
        Config().set(name, value)


def run_serve(*args):
    return subprocess.run([sys.executable, "-m", "kvdb", "serve"] + list(args), capture_output=True, timeout=60)


def test_cli_bad_option_is_one_line(tmp_path):
    p = run_serve("--data", str(tmp_path / "d"), "--maxclients", "lots")
    err = p.stderr.decode()
    assert p.returncode == 2 and "maxclients" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    conf = tmp_path / "bad.conf"
    conf.write_text("port 1\nbogus 2\n")
    p = run_serve("--config", str(conf))
    assert p.returncode == 2 and "bad.conf:2" in p.stderr.decode()


def test_cli_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = run_serve("--data", str(tmp_path / "d"), "--port", str(port))
    err = p.stderr.decode()
    assert p.returncode == 1 and "cannot listen" in err and "Traceback" not in err


def test_config_file_applies_to_running_server(tmp_path):
    conf = tmp_path / "kvdb.conf"
    conf.write_text("maxclients 77\nslowlog-max-len 5\n")
    with ServerProcess(tmp_path, "--config", str(conf), "--slowlog-max-len", "9") as srv:
        c = srv.client()
        assert c.config_get("maxclients") == {"maxclients": "77"}
        assert c.config_get("slowlog-max-len") == {"slowlog-max-len": "9"}
        assert c.info("server")["config_file"] == str(conf)


def test_database_options_reach_the_database(tmp_path):
    """Every kvdb.Options field is a server option, and each one given reaches kvdb.open: a
    database the server creates with --page-size 8192 has 8 KiB pages (the page size is
    fixed at creation and recorded in the file, so a later open shows it)."""
    import kvdb
    with ServerProcess(tmp_path, "--page-size", "8192") as srv:
        srv.client().set("k", "v")
    with kvdb.open(srv.data) as db:
        assert db.stats()["page_size"] == 8192


@pytest.mark.parametrize("engine", ["btree", "lsm"])
def test_port_in_use_creates_no_database(tmp_path, engine):
    """The listening sockets are bound before the database is created or opened (issue 14,
    item 9): a port in use fails the start with one line and leaves no data directory."""
    data = tmp_path / "d"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = run_serve("--data", str(data), "--port", str(port), "--bind", "127.0.0.1", "--engine", engine)
    err = p.stderr.decode()
    assert p.returncode == 1 and f"cannot listen on 127.0.0.1 port {port}" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not data.exists()


def test_config_rewrite_keeps_comments_and_writes_the_values_in_force(tmp_path):
    conf = tmp_path / "kvdb.conf"
    conf.write_text("# my settings\nmaxclients 50\nhz 20\nhz 30\nslave-read-only yes\n\n# the end\n")
    cfg = Config()
    cfg.load_file(str(conf))
    cfg.set("maxclients", "70")
    cfg.set("replicaof", "10.0.0.1 6380")
    cfg.set("masterauth", "pa ss")
    cfg.rewrite()
    lines = conf.read_text().splitlines()
    assert lines[:5] == ["# my settings", "maxclients 70", "hz 30", "replica-read-only yes", ""]
    assert "# the end" in lines and "replicaof '10.0.0.1 6380'" in lines and "masterauth 'pa ss'" in lines
    again = Config()
    again.load_file(str(conf))
    for name in ("maxclients", "hz", "replicaof", "masterauth", "replica-read-only"):
        assert again[name] == cfg[name], name
    assert not list(tmp_path.glob("*.rewrite-*"))


def test_config_rewrite_needs_a_name_value_file(tmp_path):
    with pytest.raises(ConfigError, match="without a config file"):
        Config().rewrite()
    pytest.importorskip("tomllib")
    toml = tmp_path / "kvdb.toml"
    toml.write_text("port = 7001\n")
    cfg = Config()
    cfg.load_file(str(toml))
    with pytest.raises(ConfigError, match="not TOML"):
        cfg.rewrite()
    assert toml.read_text() == "port = 7001\n"


def test_config_rewrite_over_resp(tmp_path):
    conf = tmp_path / "kvdb.conf"
    conf.write_text("maxclients 50\n")
    with ServerProcess(tmp_path, "--config", str(conf)) as srv:
        r = srv.client()
        r.config_set("maxclients", 80)
        assert r.config_rewrite()
        assert "maxclients 80" in conf.read_text().splitlines()
    with ServerProcess(tmp_path) as srv:
        with pytest.raises(Exception, match="without a config file"):
            srv.client().config_rewrite()
