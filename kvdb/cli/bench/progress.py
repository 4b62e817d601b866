"""The progress bar of the command line (kvdb/cli/progress.py), also when this
package is loaded by file path outside kvdb (as bench/db_bench.py and the
workers do, see spawn.py), where `..progress` is not importable: then the
same file is loaded by its path. It needs nothing from kvdb."""
try:
    from ..progress import Progress
except ImportError:
    import importlib.util
    import os

    _path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "progress.py")
    _spec = importlib.util.spec_from_file_location("_kvdb_cli_progress", _path)
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    Progress = _mod.Progress

__all__ = ["Progress"]
