"""Write a file all-or-nothing: into FILE.tmp-PID, renamed over FILE on success."""
import contextlib
import os
import sys


@contextlib.contextmanager
def output(path):
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
    except BaseException:
        f.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
