"""Every option of a kvdb database, written once: its name, default and meaning (as LevelDB's
include/leveldb/options.h).

    kvdb.open(path, engine="lsm", cache_size=256 << 20)          # keywords, as always
    kvdb.open(path, options=kvdb.Options(engine="lsm"))          # or one Options value

`Options` is a frozen dataclass; each field below carries its meaning (`summary`, `more`), the
values it accepts, the engine that reads it, and whether it is fixed when the database is created.
Building one checks every value: a bad one raises ValueError (TypeError for a value of the wrong
type) naming the option.

The command line (`kvdb put PATH K V --cache-size 256mb`) and the server (`kvdb serve
--cache-size 256mb`, `cache-size 256mb` in its configuration file) take their flags, defaults
and help from OPTION_FIELDS and read text with parse_text(), so the list exists only here.

Pure Python, importing nothing of kvdb: it sits at the bottom of the stack, beside the core.
"""
import dataclasses
import operator
import os
import textwrap
from typing import Optional

__all__ = ["Options", "OptionField", "OPTION_FIELDS", "FIELD_NAMES", "ENGINES", "SYNC_MODES", "READ_PATHS", "parse_text",
           "show_text", "parse_size", "format_size", "check_path", "check_options"]

ENGINES = ("btree", "lsm")               # the storage engines, the first one a new database's default
SYNC_MODES = ("full", "normal", "off")   # durability of a commit, most durable first
KEY_COUNTS = ("exact", "scan")           # the LSM engine's len(): a kept count, or a scan
READ_PATHS = ("mmap", "pread")           # how the B+Tree reads pages of its data file
MIN_PAGE_SIZE = 512                      # B+Tree page sizes (powers of two between), as the file
MAX_PAGE_SIZE = 32768                    # format allows them (pager.pxd's constants of the same names)


def _option(default, kind, summary, more=None, engine="both", fixed=False, minimum=None, maximum=None,
            power_of_two=False, choices=None):
    """A field of Options, described in its metadata (the fields of OptionField)."""
    return dataclasses.field(default=default, metadata=dict(
        kind=kind, summary=summary, more=more, engine=engine, fixed=fixed, minimum=minimum, maximum=maximum,
        power_of_two=power_of_two, choices=choices))


@dataclasses.dataclass(frozen=True)
class Options:
    engine: Optional[str] = _option(
        None, "choice", choices=ENGINES, fixed=True,
        summary='storage engine: "btree" (copy-on-write B+Tree, read-optimised) or "lsm" (memtable and '
                'SSTables with leveled compaction, write-optimised)',
        more='None opens the engine the directory holds; a new database gets "btree"')
    sync: str = _option(
        "full", "choice", choices=SYNC_MODES,
        summary='when a commit is durable: "full" (fsynced before commit returns), "normal" (fsynced in '
                'the background within a second), "off" (fsynced only at checkpoints)',
        more='"full" survives power loss; "normal" and "off" survive a process crash, but power loss may '
             'lose the last second ("normal") or every commit since the last checkpoint ("off")')
    cache_size: int = _option(
        64 << 20, "size", minimum=0,
        summary="bytes of memory for cached pages (btree) or table blocks (lsm)",
        more="on the B+Tree dirty pages count too: past three quarters of it, a commit writes the oldest "
             "ahead of the checkpoint to the file (without an fsync) and lets the OS page cache hold them")
    page_size: int = _option(
        4096, "size", engine="btree", fixed=True, minimum=MIN_PAGE_SIZE, maximum=MAX_PAGE_SIZE, power_of_two=True,
        summary=f"bytes per page of the data file, a power of two from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE}",
        more="a later open keeps the size the file was created with")
    checkpoint_size: int = _option(
        64 << 20, "size", engine="btree", minimum=0,
        summary="log bytes after which a background checkpoint writes the changes into the data file and "
                "recycles the log",
        more="values under 4096 count as 4096; the checkpoint writes while commits go on, and the log "
             "grows on while they do, up to 4 times this before a checkpoint holds writers back to "
             "recycle it")
    read_path: str = _option(
        "mmap", "choice", choices=READ_PATHS,
        summary='how the files are read: "mmap" (in place from a read-only map, through the OS page '
                'cache) or "pread" (copied with a system call)',
        more='btree: "mmap" checks each page once per process and keeps only a small handle per page in the '
             'cache, so a database larger than cache_size reads at memory speed while the OS caches it. '
             'lsm: a block that misses the block cache is checked and decompressed straight from the '
             'table\'s map, with no system call. On both, a disk read error on a mapped page ends the '
             'process (SIGBUS) where "pread" raises IOFailureError')
    memtable_size: int = _option(
        16 << 20, "size", engine="lsm", minimum=1,
        summary="memtable bytes after which it is flushed to a level-0 table",
        more="up to five memtables are in memory at once: one taking writes, four awaiting their flush")
    sstable_size: int = _option(
        4 << 20, "size", engine="lsm", minimum=1,
        summary="bytes per table file written by compactions")
    level1_size: int = _option(
        64 << 20, "size", engine="lsm", minimum=1,
        summary="bytes level 1 may hold before it is compacted into level 2",
        more="each deeper level holds ten times more")
    key_count: str = _option(
        "exact", "choice", engine="lsm", choices=KEY_COUNTS,
        summary='"exact": the engine keeps the count of keys, so len() is O(1); "scan": writes are blind '
                'and len() scans',
        more='"exact" makes each overwrite or delete of a key already in a table look it up first (about '
             'as much as a get); "scan" writes as RocksDB does. Switching to "exact" counts the keys once, '
             'with a scan, at the next open for writing')
    max_open_tables: Optional[int] = _option(
        None, "count", engine="lsm", minimum=1,
        summary="table files kept open at most (None: 1000, or half the process's open-file limit if "
                "that is lower)",
        more="evicted tables are reopened on demand")

    def __post_init__(self):
        for f in OPTION_FIELDS:
            object.__setattr__(self, f.name, f.check(getattr(self, f.name)))

    def replace(self, **changes):
        """A copy with `changes` (option names as keywords), checked like a new Options."""
        unknown = sorted(set(changes) - set(FIELD_NAMES))
        if unknown:
            raise TypeError(f"unknown option {unknown[0]!r}; the options are: {', '.join(FIELD_NAMES)}")
        return dataclasses.replace(self, **changes)

    def as_keywords(self):
        """{name: value} of every option: the keyword arguments of the core's Database(...)."""
        return {name: getattr(self, name) for name in FIELD_NAMES}


@dataclasses.dataclass(frozen=True)
class OptionField:
    """One option, described for the code that lists options (the CLI's flags, the server's
    configuration, generated documentation)."""
    name: str                       # the keyword of kvdb.open and the Options field ("cache_size")
    default: object                 # the value when none is given
    kind: str                       # "choice" (one of `choices`), "size" (bytes) or "count" (an integer)
    summary: str                    # what it means, in a line or two (flags' help)
    more: Optional[str]             # what else to know about it, or None
    engine: str                     # "both", "btree" or "lsm": the engine that reads it
    fixed: bool                     # fixed when the database is created (later opens ignore or check it)
    minimum: Optional[int]          # size/count: the least value accepted, None for no bound
    maximum: Optional[int]          # size/count: the largest value accepted, None for no bound
    power_of_two: bool              # size/count: only powers of two are accepted
    choices: Optional[tuple]        # choice: the values accepted

    @property
    def flag(self):
        """The name in flags and configuration files: "cache-size"."""
        return self.name.replace("_", "-")

    @property
    def brief(self):
        """The summary, saying which engine reads the option: a flag's help."""
        return self.summary if self.engine == "both" else f"{self.engine}: {self.summary}"

    @property
    def optional(self):
        """None is a value of this option (it means "decide for me"; see the summary)."""
        return self.default is None

    def check(self, value):
        """`value`, normalised (integers as int); TypeError or ValueError naming the option."""
        if value is None and self.optional:
            return None
        if self.kind == "choice":
            if value not in self.choices:
                names = [repr(c) for c in self.choices] + (["None"] if self.optional else [])
                raise ValueError(f"{self.name} must be {', '.join(names[:-1])} or {names[-1]}, not {value!r}")
            return value
        try:
            if isinstance(value, bool):
                raise TypeError
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"{self.name} must be an integer, not {value!r}") from None
        too_small = self.minimum is not None and value < self.minimum
        too_large = self.maximum is not None and value > self.maximum
        if too_small or too_large or (self.power_of_two and value & (value - 1)):
            raise ValueError(f"{self.name} must be {self.accepted()}, not {value!r}")
        return value

    def accepted(self):
        """The values accepted, in words ("a power of two from 512 to 32768")."""
        if self.kind == "choice":
            return " or ".join(repr(c) for c in self.choices)
        noun = "power of two" if self.power_of_two else "number of bytes" if self.kind == "size" else "integer"
        if self.minimum is not None and self.maximum is not None:
            return f"a {noun} from {self.minimum} to {self.maximum}"
        if self.minimum is not None and self.minimum <= 1:
            return f"a {'positive' if self.minimum == 1 else 'non-negative'} {noun}"
        if self.minimum is not None:
            return f"a {noun} of at least {self.minimum}"
        return f"a {noun}"


OPTION_FIELDS = tuple(OptionField(name=f.name, default=f.default, **f.metadata)
                      for f in dataclasses.fields(Options))
FIELD_NAMES = tuple(f.name for f in OPTION_FIELDS)
FIELDS_BY_NAME = {f.name: f for f in OPTION_FIELDS}


def check_options(values):
    """{name: value} of options, each checked and normalised as Options does (TypeError or
    ValueError naming the option): the core's Database(...) takes its keywords through here, so
    a direct call is held to the same rules as kvdb.open, before anything touches the disk."""
    return {name: FIELDS_BY_NAME[name].check(value) for name, value in values.items()}


def check_path(path):
    """The database directory `path` as a str: a str or an os.PathLike (pathlib.Path) giving one.

    bytes are refused (TypeError), as are os.PathLike objects giving bytes: the path is kept and
    shown as text (Database.path, error messages), and str() of bytes would name another
    directory ("b'data'"); os.fsdecode() turns them into a str first. An empty path is a
    ValueError. Anything else (None, a number) is a TypeError, so that no stray value becomes a
    directory named after it ("None")."""
    given = path
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        hint = "; decode bytes with os.fsdecode()" if isinstance(path, bytes) else ""
        shown = type(given).__name__ + (" giving bytes" if given is not path else "")
        raise TypeError(f"path must be a str or os.PathLike (such as pathlib.Path) naming the database "
                        f"directory, not {shown}{hint}")
    if not path:
        raise ValueError("path must name the database directory, not ''")
    if "\0" in path:
        raise ValueError(f"path must not contain a NUL character: {path!r}")
    return path


def _document():
    """Options's docstring, written from the fields so help(kvdb.Options) lists them all."""
    lines = ["Every option of a kvdb database, with its default and meaning (kvdb.open's keywords).",
             "", "Frozen; a bad value raises ValueError or TypeError naming the option.", ""]
    for f in OPTION_FIELDS:
        scope = [] if f.engine == "both" else [f"{f.engine} only"]
        scope += ["fixed at creation"] if f.fixed else []
        shown = f"{f.default >> 20} << 20" if f.kind == "size" and f.default % (1 << 20) == 0 else repr(f.default)
        lines.append(f"{f.name} = {shown}{' (' + ', '.join(scope) + ')' if scope else ''}:")
        meaning = f"{f.summary}; {f.more}." if f.more else f"{f.summary}."
        lines += textwrap.wrap(meaning, 96, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(lines)


# -- text forms (the command line, the server's configuration) ----------------------------------

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 ** 2, "mb": 1024 ** 2, "g": 1000 ** 3,
          "gb": 1024 ** 3}          # Redis's memory units: k, m, g are powers of 1000, kb, mb, gb of 1024


def parse_size(text):
    """Bytes in '512mb', '1gb', '100', '64kb' (Redis's units: k=1000, kb=1024); ValueError if not."""
    s = str(text).strip().lower()
    digits = s.rstrip("kmgb")
    unit = s[len(digits):]
    if not (digits.isascii() and digits.isdigit()) or unit not in _UNITS:   # no sign, space, dot or "_"
        raise ValueError(f"not a memory size: {text!r}")
    return int(digits) * _UNITS[unit]


def format_size(n):
    """'64mb' for 64 << 20: the largest binary unit that divides n (parse_size reads it back)."""
    for unit, size in (("gb", 1024 ** 3), ("mb", 1024 ** 2), ("kb", 1024)):
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def parse_text(name, text):
    """The value of option `name` written as text ("64mb", "lsm", "1000"; "" or "none" for None
    where None is allowed), checked; ValueError naming what was wrong."""
    f = FIELDS_BY_NAME[name]
    s = str(text).strip()
    if f.optional and s.lower() in ("", "none"):
        return None
    if f.kind == "choice":
        value = s.lower()
        if value not in f.choices:
            raise ValueError(f"argument must be one of the following: {', '.join(f.choices)}")
        return value
    if f.kind == "size":
        value = parse_size(s)
    else:
        try:
            value = int(s)
        except ValueError:
            raise ValueError(f"not an integer: {text!r}") from None
    return f.check(value)


def show_text(name, value):
    """The text form of option `name`'s value (parse_text reads it back)."""
    if value is None:
        return ""
    return format_size(value) if FIELDS_BY_NAME[name].kind == "size" else str(value)


Options.__doc__ = _document()
