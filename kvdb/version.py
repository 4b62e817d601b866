"""kvdb's release version, stated once: kvdb.__version__, `kvdb --version`, the server's INFO
and the package metadata (pyproject.toml reads it) all take it from here."""

VERSION = "0.1.0"
