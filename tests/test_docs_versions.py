"""Each version number is stated once, in code, and the docs point at it (issue 13).

The format documents name each version's constant and the file that holds it; a number is left
in them only where a worked example shows the bytes a file holds ("02 00 00 00  version 2"). This
test reads every constant from the code and checks that each "version N" still in
docs/format/*.md, and the bytes shown with it, match the constant of the format that document
describes, and that each document names its constant. So a version bump fails here until the
docs follow. kvdb's own release and the Redis release the server follows are not restated in
any doc at all.
"""
import glob
import os
import re

import pytest

from kvdb._core.btree.pager import PAGE_FORMAT_VERSION
from kvdb._core.lsm.sstable import TABLE_FORMAT_VERSION
from kvdb.documents.catalog import CATALOG_VERSION
from kvdb.server.compat import REDIS_VERSION
from kvdb.server.keyspace import FORMAT_VERSION as SERVER_KEYS_FORMAT
from kvdb.version import VERSION

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT_DOCS = os.path.join(ROOT, "docs", "format")

VERSION_WORD = re.compile(r"\bversion[ \t]+(\d+)\b", re.IGNORECASE)           # "version 2"
VERSION_BYTES = re.compile(r"\b((?:[0-9a-f]{2} ){3}[0-9a-f]{2})[ \t]+version[ \t]+(\d+)\b")
                                                            # "02 00 00 00  version 2": a u32, little-endian
VERSION_FIELD = re.compile(r'"version"\s*:\s*(\d+)')                         # a catalog record's field
SERVER_KEYS_VALUE = re.compile(r"kvdb-server-keys (\d+)")                    # the server's version record


def pxd_enum(path, name):
    """The value of `name = N` in a .pxd's cdef enum, which Python cannot import."""
    with open(os.path.join(ROOT, path)) as f:
        values = re.findall(rf"^\s+{name}\s*=\s*(\d+)\b", f.read(), re.MULTILINE)
    assert len(values) == 1, f"{path}: expected one '{name} = N', found {len(values)}"
    return int(values[0])


def server_keys_version():
    """N of keyspace.FORMAT_VERSION, b"kvdb-server-keys N"."""
    m = SERVER_KEYS_VALUE.fullmatch(SERVER_KEYS_FORMAT.decode())
    assert m, f"kvdb/server/keyspace.py: FORMAT_VERSION {SERVER_KEYS_FORMAT!r} is not b'kvdb-server-keys N'"
    return int(m.group(1))


# document -> (constant, the file that states it, its value): the version a "version N" in that
# document means. The Python-visible ones are imported; the others are parsed from their .pxd.
def replication_stream_version():
    from kvdb.server.replication.stream import VERSION
    return VERSION


DOC_VERSIONS = {
    "pages.md": ("FORMAT_VERSION", "kvdb/_core/btree/pager.pxd", PAGE_FORMAT_VERSION),
    "wal.md": ("WAL_VERSION", "kvdb/_core/wal.pxd", pxd_enum("kvdb/_core/wal.pxd", "WAL_VERSION")),
    "sstable.md": ("SST_VERSION", "kvdb/_core/lsm/sstable.pxd", TABLE_FORMAT_VERSION),
    "manifest.md": ("MANIFEST_VERSION", "kvdb/_core/lsm/manifest.pxd",
                    pxd_enum("kvdb/_core/lsm/manifest.pxd", "MANIFEST_VERSION")),
    "keys.md": ("CATALOG_VERSION", "kvdb/documents/catalog.py", CATALOG_VERSION),
    "server-keys.md": ("FORMAT_VERSION", "kvdb/server/keyspace.py", server_keys_version()),
    "replication.md": ("VERSION", "kvdb/server/replication/stream.py", replication_stream_version()),
}
NO_VERSION_DOCS = ("README.md", "resp.md", "namespaces.md")   # name constants only (README) or have no version
                                                               # (RESP; namespaces are keys of the engines' formats)


def read(name):
    with open(os.path.join(FORMAT_DOCS, name)) as f:
        return f.read()


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def test_every_format_document_is_accounted_for():
    found = {os.path.basename(p) for p in glob.glob(os.path.join(FORMAT_DOCS, "*.md"))}
    assert found == set(DOC_VERSIONS) | set(NO_VERSION_DOCS), \
        "a format document was added or removed: say in DOC_VERSIONS which version constant it describes"


def test_the_python_aliases_are_the_pxd_constants():
    assert PAGE_FORMAT_VERSION == pxd_enum("kvdb/_core/btree/pager.pxd", "FORMAT_VERSION")
    assert TABLE_FORMAT_VERSION == pxd_enum("kvdb/_core/lsm/sstable.pxd", "SST_VERSION")


@pytest.mark.parametrize("name", sorted(DOC_VERSIONS))
def test_each_version_left_in_a_format_document_is_its_constant(name):
    constant, where, value = DOC_VERSIONS[name]
    text = read(name)
    assert re.search(rf"\b{constant}\b", text), \
        f"docs/format/{name} must name its version's constant {constant} ({where})"
    stated = [(m.start(), int(m.group(1)), m.group(0)) for m in VERSION_WORD.finditer(text)]
    stated += [(m.start(), int(m.group(1)), m.group(0)) for m in VERSION_FIELD.finditer(text)]
    if name == "server-keys.md":
        stated += [(m.start(), int(m.group(1)), m.group(0)) for m in SERVER_KEYS_VALUE.finditer(text)]
    wrong = [f"line {line_of(text, pos)}: {shown!r}" for pos, n, shown in stated if n != value]
    assert not wrong, (f"docs/format/{name} says a version other than {constant} = {value} ({where}); "
                       f"name the constant, or update the example: {wrong}")
    for m in VERSION_BYTES.finditer(text):
        shown = int.from_bytes(bytes.fromhex(m.group(1)), "little")
        assert shown == value, (f"docs/format/{name} line {line_of(text, m.start())}: the bytes "
                                f"{m.group(1)!r} are version {shown}, not {constant} = {value}")


@pytest.mark.parametrize("name", NO_VERSION_DOCS)
def test_documents_without_a_format_version_state_none(name):
    text = read(name)
    stated = [f"line {line_of(text, m.start())}: {m.group(0)!r}" for m in VERSION_WORD.finditer(text)]
    assert not stated, f"docs/format/{name} restates a version number; name its constant instead: {stated}"


def test_the_format_readme_points_at_every_constant():
    text = read("README.md")
    for name, (constant, where, _) in sorted(DOC_VERSIONS.items()):
        assert re.search(rf"\| `{constant}` \| `{re.escape(where)}`", text), \
            f"docs/format/README.md's table of versions lacks {constant} in {where} ({name})"


def test_no_doc_restates_the_release_versions():
    docs = [os.path.join(ROOT, "README.md")]
    docs += glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
    for path in docs:
        with open(path) as f:
            text = f.read()
        for constant, value, where in (("VERSION", VERSION, "kvdb/version.py"),
                                       ("REDIS_VERSION", REDIS_VERSION, "kvdb/server/compat.py")):
            assert not re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", text), \
                f"{os.path.relpath(path, ROOT)} restates {value}: name {constant} ({where}) instead"


# -- issue 14: the dump format (docs/format/dump.md), added here at the end --------------------

def dump_version():
    from kvdb.cli.dumpformat import DUMP_VERSION
    return DUMP_VERSION


DOC_VERSIONS["dump.md"] = ("DUMP_VERSION", "kvdb/cli/dumpformat.py", dump_version())


def test_the_dump_document_states_only_its_constant():
    """The parametrized tests above were collected before dump.md joined DOC_VERSIONS."""
    test_each_version_left_in_a_format_document_is_its_constant("dump.md")


# -- issue 15: the shared-memory file (docs/format/shm.md), added here at the end ---------------

DOC_VERSIONS["shm.md"] = ("SHM_VERSION", "kvdb/_core/btree/shared.pxd",
                          pxd_enum("kvdb/_core/btree/shared.pxd", "SHM_VERSION"))


def test_the_shm_document_states_only_its_constant():
    """The parametrized tests above were collected before shm.md joined DOC_VERSIONS."""
    test_each_version_left_in_a_format_document_is_its_constant("shm.md")


# -- issue 16: the cache's key layout (docs/format/cache.md), added here at the end ---------------

def cache_version():
    from kvdb.cache.layout import CACHE_FORMAT_VERSION
    return CACHE_FORMAT_VERSION


DOC_VERSIONS["cache.md"] = ("CACHE_FORMAT_VERSION", "kvdb/cache/layout.py", cache_version())


def test_the_cache_document_states_only_its_constant():
    """The parametrized tests above were collected before cache.md joined DOC_VERSIONS."""
    test_each_version_left_in_a_format_document_is_its_constant("cache.md")
