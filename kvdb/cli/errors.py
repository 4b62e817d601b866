"""CLIError: a failure the command explains in one line (exit status 1 unless
given), and `describe` that turns any exception into that line."""
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
        return f"corrupt database: {exc}"
    if isinstance(exc, kvdb.Error):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return f"{type(exc).__name__}: {exc}"
