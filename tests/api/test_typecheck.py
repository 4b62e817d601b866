"""The public API's types (issue 16, item 8): mypy accepts tests/api/typecheck_example.py, which
makes every public call the way a user writes it, against kvdb's stubs; and the example runs."""
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(HERE, "typecheck_example.py")


def test_mypy_accepts_every_public_call(tmp_path):
    pytest.importorskip("mypy")
    p = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-error-summary",
                        "--cache-dir", str(tmp_path / "mypy-cache"), "--python-version", "3.10", EXAMPLE],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_example_runs():
    p = subprocess.run([sys.executable, EXAMPLE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stdout + p.stderr
