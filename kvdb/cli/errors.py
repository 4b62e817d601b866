"""CLIError: a failure the command explains in one line (exit status 1 unless
given), `describe` that turns any exception into that line, and `located` that
makes sure a CorruptionError's line names its file and offset."""
import kvdb


class CLIError(Exception):
    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def describe(exc):
    """One line for exc, naming the kind of problem for kvdb's own errors."""
    if isinstance(exc, CLIError):
        return str(exc)
    if isinstance(exc, kvdb.LockedError):
        return f"locked: {exc}"
    if isinstance(exc, kvdb.CorruptionError):
        return f"corrupt database: {located(exc)}"
    if isinstance(exc, kvdb.Error):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return f"{type(exc).__name__}: {exc}"


def located(exc):
    """str(exc), plus the file and byte offset a CorruptionError carries (.path, .offset) where
    its message does not already name them."""
    text = str(exc)
    path, offset = getattr(exc, "path", None), getattr(exc, "offset", None)
    where = []
    if path and str(path) not in text:
        where.append(f"file {path}")
    if offset is not None and f"offset {offset}" not in text:
        where.append(f"byte offset {offset:,}")
    return f"{text} ({', '.join(where)})" if where else text
