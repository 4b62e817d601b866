"""A tiny progress bar for long commands: drawn on stderr only when stderr is
a terminal (and KVDB_NO_PROGRESS is unset), silent otherwise.

    with Progress("dump", total=len(db), unit="keys") as bar:
        for ...:
            bar.update(1)
"""
import os
import shutil
import sys
import time

REDRAW_SECONDS = 0.1


def enabled(stream=None):
    stream = sys.stderr if stream is None else stream
    if os.environ.get("KVDB_NO_PROGRESS"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _si(x):
    for unit in ("", "k", "M", "G", "T"):
        if abs(x) < 1000:
            return f"{x:.0f}{unit}" if unit == "" else f"{x:.1f}{unit}"
        x /= 1000
    return f"{x:.1f}P"


class Progress:
    """A bar with a label, a count out of `total` (None: unknown) and a rate."""

    def __init__(self, label, total=None, unit="", stream=None, show=None):
        self.stream = sys.stderr if stream is None else stream
        self.show = enabled(self.stream) if show is None else show
        self.label, self.total, self.unit = label, total, unit
        self.status = ""  # free text after the numbers (what is being done now)
        self.done = 0
        self.start = self.last = time.monotonic()
        self.drawn = False

    def __enter__(self):
        self._draw(force=True)
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, n=1):
        self.done += n
        self._draw()

    def set(self, done, total=None, status=None):
        self.done = done
        if total is not None:
            self.total = total
        if status is not None:
            self.status = status
        self._draw()

    def line(self):
        """The bar's text (without the carriage return), for tests and drawing."""
        width = shutil.get_terminal_size((80, 20)).columns
        elapsed = max(time.monotonic() - self.start, 1e-9)
        count = _si(self.done) + (f"/{_si(self.total)}" if self.total else "")
        count += f" {self.unit}" if self.unit else ""
        tail = f" {count} {_si(self.done / elapsed)}/s {elapsed:.0f}s"
        if self.total:
            frac = min(max(self.done / self.total, 0.0), 1.0)
            bar_w = max(10, min(40, width - len(self.label) - len(tail) - 10))
            fill = int(frac * bar_w)
            text = f"{self.label} [{'#' * fill}{'.' * (bar_w - fill)}] {frac:4.0%}{tail}"
        else:
            text = f"{self.label}{tail}"
        if self.status:
            text += f"  {self.status}"
        return text[: width - 1]

    def _draw(self, force=False):
        if not self.show:
            return
        now = time.monotonic()
        if not force and now - self.last < REDRAW_SECONDS:
            return
        self.last = now
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()
        self.drawn = True

    def close(self):
        if self.show and self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False
