"""Misuse of kvdb.open (and of the core's Database(...), reachable too): every argument is checked
before the disk is touched, the errors name the argument and what it accepts, and an open that
fails leaves nothing behind (issue 14, item 9)."""
import errno
import os
import pathlib

import pytest

import kvdb
from kvdb._core.database import Database
from kvdb._core.file import OsFS

ENGINES = ["btree", "lsm"]

# (keyword, bad value, exception, words the message must hold): one or more per option
BAD_OPTIONS = [
    ("engine", "b-tree", ValueError, ["engine", "'btree'", "'lsm'"]),
    ("engine", 5, ValueError, ["engine", "'btree'"]),
    ("sync", "always", ValueError, ["sync", "'full'"]),
    ("sync", None, ValueError, ["sync", "'full'"]),
    ("sync", 2, ValueError, ["sync", "'normal'"]),
    ("cache_size", "64mb", TypeError, ["cache_size", "integer"]),
    ("cache_size", -1, ValueError, ["cache_size", "non-negative"]),
    ("cache_size", 1.5, TypeError, ["cache_size", "integer"]),
    ("page_size", 1000, ValueError, ["page_size", "power of two from 512 to 32768"]),
    ("page_size", "4k", TypeError, ["page_size", "integer"]),
    ("checkpoint_size", "x", TypeError, ["checkpoint_size", "integer"]),
    ("checkpoint_size", -5, ValueError, ["checkpoint_size"]),
    ("memtable_size", 0, ValueError, ["memtable_size", "positive"]),
    ("memtable_size", "16mb", TypeError, ["memtable_size", "integer"]),
    ("sstable_size", None, TypeError, ["sstable_size", "integer"]),
    ("level1_size", -1, ValueError, ["level1_size", "positive"]),
    ("max_open_tables", 0, ValueError, ["max_open_tables", "positive"]),
    ("max_open_tables", True, TypeError, ["max_open_tables", "integer"]),
]


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """An empty current directory, so that a stray relative path would show up in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def everything(root):
    """Every path under `root`, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in pathlib.Path(root).rglob("*"))


@pytest.mark.parametrize("opener", [kvdb.open, Database], ids=["kvdb.open", "Database"])
@pytest.mark.parametrize("path", [None, b"data", 42, ["data"]], ids=["None", "bytes", "int", "list"])
def test_path_must_be_str_or_pathlike(cwd, opener, path):
    with pytest.raises(TypeError) as info:
        opener(path)
    message = str(info.value)
    assert "path must be a str or os.PathLike" in message and type(path).__name__ in message
    assert everything(cwd) == []                  # no ./None, no ./b'data'


def test_bytes_path_error_says_how_to_decode(cwd):
    with pytest.raises(TypeError, match="os.fsdecode"):
        kvdb.open(b"data")


def test_empty_path_is_refused(cwd):
    with pytest.raises(ValueError, match="path must name the database directory"):
        kvdb.open("")
    assert everything(cwd) == []


def test_pathlike_paths_are_accepted(cwd):
    with kvdb.open(pathlib.Path("a") / "db") as db:
        db.put(b"k", b"v")
        assert db.path == os.path.join("a", "db")
    with Database(pathlib.Path("a/db")) as db:
        assert db.get(b"k") == b"v"


@pytest.mark.parametrize("opener", [kvdb.open, Database], ids=["kvdb.open", "Database"])
@pytest.mark.parametrize("name,value,error,words", BAD_OPTIONS, ids=[f"{b[0]}={b[1]!r}" for b in BAD_OPTIONS])
def test_bad_option_names_itself_and_creates_nothing(cwd, opener, name, value, error, words):
    with pytest.raises(error) as info:
        opener("db", **{name: value})
    message = str(info.value)
    assert all(w in message for w in words), message
    assert "not supported between" not in message
    assert everything(cwd) == []


def test_options_checked_before_the_directory_is_looked_at(cwd):
    """A bad option is reported even where the directory would fail too (a file)."""
    (cwd / "f").write_text("x")
    with pytest.raises(TypeError, match="cache_size"):
        Database("f", cache_size="64mb")


@pytest.mark.parametrize("opener", [kvdb.open, Database], ids=["kvdb.open", "Database"])
def test_path_that_is_a_file(cwd, opener):
    (cwd / "notes.txt").write_text("keep me")
    with pytest.raises(NotADirectoryError) as info:
        opener("notes.txt")
    assert "notes.txt is a file, not a database directory" in str(info.value)
    assert info.value.errno == errno.ENOTDIR and info.value.filename == "notes.txt"
    assert (cwd / "notes.txt").read_text() == "keep me"
    assert everything(cwd) == ["notes.txt"]


@pytest.mark.parametrize("engine", ENGINES)
def test_rejected_page_size_leaves_no_directory(cwd, engine):
    with pytest.raises(ValueError, match="page_size"):
        kvdb.open("a/b/db", engine=engine, page_size=1000)
    assert everything(cwd) == []


class FailingFS(OsFS):
    """The real file system, failing the `nth` file open with EIO (the open of a database's
    files, after its directory and LOCK exist)."""

    def __init__(self, nth):
        self.left = nth

    def open(self, path, create):
        self.left -= 1
        if self.left == 0:
            raise OSError(errno.EIO, "injected failure", path)
        return OsFS.open(self, path, create)


def first_failing_open(cwd, engine):
    """The smallest n whose failing file open makes creating a database fail, and what a
    successful creation writes (so the test knows files were made before the failure)."""
    with kvdb.open(str(cwd / "probe"), engine=engine):
        pass
    for n in range(2, 10):
        fs = FailingFS(n)
        try:
            kvdb.open(str(cwd / f"try{n}"), engine=engine, _fs=fs).close()
        except kvdb.IOFailureError:
            return n
    pytest.skip("no failing open found")


@pytest.mark.parametrize("engine", ENGINES)
def test_failed_creation_removes_what_it_created(cwd, engine):
    n = first_failing_open(cwd, engine)
    for d in list(cwd.iterdir()):                     # the probes
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    with pytest.raises(kvdb.IOFailureError, match="injected failure"):
        kvdb.open("x/y/db", engine=engine, _fs=FailingFS(n))
    assert everything(cwd) == []                      # x, x/y, x/y/db and its files all gone


@pytest.mark.parametrize("engine", ENGINES)
def test_failed_creation_in_existing_directory_keeps_what_was_there(cwd, engine):
    n = first_failing_open(cwd, engine)
    os.makedirs("mine/db")
    (cwd / "mine" / "db" / "README").write_text("mine")
    with pytest.raises(kvdb.IOFailureError):
        kvdb.open("mine/db", engine=engine, _fs=FailingFS(n))
    assert everything(cwd / "mine") == ["db", "db/README"]
    assert (cwd / "mine" / "db" / "README").read_text() == "mine"
    os.remove("mine/db/README")
    with pytest.raises(kvdb.IOFailureError):              # an empty directory that existed stays
        kvdb.open("mine/db", engine=engine, _fs=FailingFS(n))
    assert everything(cwd / "mine") == ["db"]


@pytest.mark.parametrize("engine", ENGINES)
def test_failed_open_of_existing_database_removes_nothing(cwd, engine):
    with kvdb.open("db", engine=engine) as db:
        db.put(b"k", b"v")
        before = everything(cwd)
        with pytest.raises(kvdb.LockedError):
            kvdb.open("db", _exclusive=True)
        assert everything(cwd) == before
    before = everything(cwd)
    with pytest.raises(ValueError, match="holds an engine="):
        kvdb.open("db", engine="lsm" if engine == "btree" else "btree")
    assert everything(cwd) == before
    with kvdb.open("db") as db:
        assert db.get(b"k") == b"v"


def test_locked_error_on_new_path_leaves_the_holders_directory(cwd):
    with kvdb.open("db"):
        with pytest.raises(kvdb.LockedError):
            Database("db", _exclusive=True)
        assert os.path.isdir("db")
