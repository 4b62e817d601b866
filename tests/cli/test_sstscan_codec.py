"""The raw table scan (the first pass of `kvdb check`) needs no package beyond the install's own
dependencies: the package lz4 is only the tests' reference for the engine's LZ4 block codec, so
after the README's plain `pip install -e .` it is absent, and compressed blocks must still decode."""
import sys

import kvdb
from kvdb.cli import sstscan
from tests.cli.test_cli_lsm import tables


def test_raw_table_scan_decodes_compressed_blocks_without_the_lz4_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lz4", None)          # `import lz4` fails, as after a plain install
    monkeypatch.setitem(sys.modules, "lz4.block", None)
    path = tmp_path / "db"
    with kvdb.open(str(path), engine="lsm") as db:
        with db.transaction() as tx:
            for i in range(5000):
                tx.put(b"a/common/prefix/%08d" % i, b"compressible " * 20)
    (name,) = tables(path)
    scan = sstscan.scan_table(str(path / name))
    assert scan.blocks > 50 and scan.bad == []
