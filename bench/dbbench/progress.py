"""The progress bar of the command line (kvdb/cli/progress.py), shared with kvdb's commands.

That module imports nothing from kvdb, but importing it as kvdb.cli.progress would import the
kvdb package, and the benchmark's parent process must not: kvdb may not be built, or may not be
on sys.path (`python bench/db_bench.py` has only bench/ there), and the workers choose theirs with
--kvdb-path. So the one file is loaded from the checkout by its path (paths.REPO).
"""
import importlib.util
import os

from .paths import REPO

_PATH = os.path.join(REPO, "kvdb", "cli", "progress.py")
_spec = importlib.util.spec_from_file_location("_kvdb_cli_progress", _PATH)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
Progress = _module.Progress

__all__ = ["Progress"]
