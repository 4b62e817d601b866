"""Write a file all-or-nothing: into FILE.tmp-PID, renamed over FILE on success.

A failure removes the temporary file, unless the caller's `keep_partial(exc)` says the
output so far is worth keeping (a dump stopped by a damaged page): then it is renamed to
FILE.partial (partial_path(FILE)), never to FILE, so nobody mistakes it for a whole file.
"""
import contextlib
import os
import sys

PARTIAL_SUFFIX = ".partial"


def partial_path(path):
    """Where output(path, keep_partial=...) leaves the output of a failed write."""
    return f"{path}{PARTIAL_SUFFIX}"


@contextlib.contextmanager
def output(path, keep_partial=None):
    """A binary stream: stdout's buffer when path is None or "-", else an atomic file."""
    if path in (None, "-"):
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    f = open(tmp, "wb")
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
    except BaseException as exc:
        kept = False
        if keep_partial is not None and keep_partial(exc):
            with contextlib.suppress(OSError):
                f.flush()
                os.fsync(f.fileno())
                f.close()
                os.replace(tmp, partial_path(path))
                kept = True
        f.close()
        if not kept:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
