"""The database options as flags (--cache-size 256mb, --sync off, --memtable-size 4mb, ...) of the
commands that open a database. Their names, help, accepted values and defaults are kvdb.Options's
(kvdb/_core/options.py); sizes take Redis's units, as the server's configuration does (k=1000,
kb=1024, m, mb, g, gb). A flag that is not given leaves its option at the default, or at the
command's own default where it has one (`kvdb demo` writes with sync normal).
"""
import argparse

from kvdb._core.options import OPTION_FIELDS, parse_text, show_text

# Said of --engine on a command that may create a database (dbpath.open_or_create).
ENGINE_NOTE = ("a new database gets btree unless this says otherwise; an existing one keeps its engine, "
               "which --engine must match")


def add_database_options(parser, creates=False, defaults=None):
    """Add a flag per option to `parser`. creates: the command may create the database, so the
    options fixed at creation (engine, page size) are offered too. defaults: {name: value} the
    command uses instead of Options's defaults."""
    defaults = defaults or {}
    group = parser.add_argument_group("database options (kvdb.Options)")
    for f in OPTION_FIELDS:
        if f.fixed and not creates:
            continue
        default = defaults.get(f.name, f.default)
        text = f.brief
        if f.name == "engine":
            text = f"{text}; {ENGINE_NOTE}"
        elif default is not None:
            text = f"{text} (default {show_text(f.name, default)})"
        group.add_argument(f"--{f.flag}", dest=f.name, default=default, type=_text_parser(f.name),
                           metavar=None if f.kind == "choice" else "BYTES" if f.kind == "size" else "N",
                           choices=f.choices, help=text.replace("%", "%%"))


def database_options(args):
    """kvdb.open's keywords from the flags of add_database_options (the value given, else the
    default). The engine is left out: the commands pass it to dbpath.open_or_create."""
    return {f.name: getattr(args, f.name) for f in OPTION_FIELDS if f.name != "engine" and hasattr(args, f.name)}


def _text_parser(name):
    def parse(text):
        try:
            return parse_text(name, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = name   # argparse names the option in its message
    return parse
