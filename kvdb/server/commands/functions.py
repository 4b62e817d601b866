"""Redis functions: FUNCTION LOAD/LIST/DELETE/FLUSH/STATS/KILL/DUMP/RESTORE/HELP,
FCALL and FCALL_RO.

A library is Lua code starting with a `#!lua name=<library>` line whose top-level
code registers functions with redis.register_function (positional
`(name, callback)` or the table form with function_name, callback, flags,
description). It runs once at load with only `redis.register_function` and
`redis.log` in reach, within 500 ms; the registered callbacks then run for
FCALL with the whole scripting API, getting (keys, args).

Libraries are durable: each is a record `\\x01 \\xff \\x00 "fn" \\x00 <name>` ->
code (docs/format/server-keys.md (Function libraries)), written in the command group's
transaction like any write, and loaded again at the first scripting command
after a restart. FLUSHALL does not remove them (as in Redis).

FUNCTION DUMP/RESTORE use kvdb's own payload (a version word, the libraries'
code, a CRC-32), not Redis's RDB encoding: a dump restores into kvdb only.
"""
import logging
import re
import struct
import time
import zlib

from kvdb.server.protocol.resp import OK, Status

from ..glob import glob_match
from ..scriptbusy import BUSY_EVAL
from .registry import COMMANDS, CommandError, command, container, numkeys_keys, subcommand
from .scripting import Run, check_keys, engine, error_message, numkeys_arg

log = logging.getLogger("kvdb.server")

LIBRARY_PREFIX = b"\x01\xff\x00fn\x00"   # + library name -> library code
NAME_RE = re.compile(rb"^[A-Za-z0-9_]+$")
DUMP_MAGIC = b"KVDBFN\x00\x01"          # FUNCTION DUMP payload, version 1


class Function:
    __slots__ = ("name", "fn", "flags", "description", "library")

    def __init__(self, name, fn, flags, description, library):
        self.name = name                # bytes
        self.fn = fn                    # the Lua callback
        self.flags = flags              # tuple of flag names (str), in registration order
        self.description = description  # bytes or None
        self.library = library          # its Library


class Library:
    __slots__ = ("name", "code", "functions")

    def __init__(self, name, code):
        self.name = name                # bytes
        self.code = code                # the code as loaded (bytes)
        self.functions = {}             # name -> Function, in registration order


class Functions:
    """The loaded libraries and the function index."""

    def __init__(self, eng):
        self.eng = eng                  # scripting.Scripting
        self.libraries = {}             # name -> Library
        self.index = {}                 # function name -> Function
        self.restored = False           # stored libraries loaded from the database

    def restore_stored(self):
        if self.restored:
            return
        self.restored = True
        store = self.eng.server.ks.store
        with store.scan(prefix=LIBRARY_PREFIX) as it:
            records = list(it)
        for key, code in records:
            try:
                lib = self.build(code)
                self.install(lib, replace=False)
            except CommandError as e:
                log.error("stored function library %r does not load: %s", key[len(LIBRARY_PREFIX):], e)

    def build(self, code):
        """A Library from code, its top-level code run (CommandError on any problem)."""
        name = parse_library_header(code)
        end = code.find(b"\n")
        rt = self.eng.rt
        chunk, err = rt.compile(code[end:], "@user_function", "lib")
        if chunk is None:
            raise CommandError(f"ERR Error compiling function: {err}")
        if self.eng.run is not None:
            raise CommandError("ERR a script is already running")
        run = Run(None, name.decode("utf-8", "replace"), False, True, [], loading=True)
        self.eng.run = run
        try:
            res = rt.load_library(chunk)
        finally:
            self.eng.run = None
        ok, value = res if isinstance(res, tuple) else (res, None)
        if not ok:
            text = error_message(value, "")
            text = text.split(" script: ", 1)[0]
            raise CommandError(f"ERR Error registering functions: {text}")
        lib = Library(name, code)
        arr, n = rt.array(value)
        for i in range(1, n + 1):
            f = arr[i]
            fname = f[b"name"]
            flags_t = f[b"flags"]
            flags = tuple(x.decode() for x in flags_t.values()) if flags_t is not None else ()
            lib.functions[fname] = Function(fname, f[b"fn"], flags, f[b"description"], lib)
        if not lib.functions:
            raise CommandError("ERR No functions registered")
        return lib

    def check_install(self, lib, replace):
        old = self.libraries.get(lib.name)
        if old is not None and not replace:
            raise CommandError(f"ERR Library '{lib.name.decode('utf-8', 'replace')}' already exists")
        for fname in lib.functions:
            other = self.index.get(fname)
            if other is not None and other.library is not old:
                raise CommandError(f"ERR Function {fname.decode('utf-8', 'replace')} already exists")

    def install(self, lib, replace):
        self.check_install(lib, replace)
        self.remove(lib.name)
        self.libraries[lib.name] = lib
        for fname, f in lib.functions.items():
            self.index[fname] = f

    def remove(self, name):
        old = self.libraries.pop(name, None)
        if old is not None:
            for fname in old.functions:
                self.index.pop(fname, None)
        return old

    # -- the stored records --

    def persist(self, lib):
        self.eng.server.ks.store.put(LIBRARY_PREFIX + lib.name, lib.code)

    def unpersist(self, name):
        self.eng.server.ks.store.delete(LIBRARY_PREFIX + name)


def functions_of(server):
    eng = engine(server)
    if eng.functions is None:
        eng.functions = Functions(eng)
    eng.functions.restore_stored()
    return eng.functions


def parse_library_header(code):
    """The library name from the `#!<engine> name=<name>` line (CommandError otherwise)."""
    if not code.startswith(b"#!"):
        raise CommandError("ERR Missing library metadata")
    end = code.find(b"\n")
    if end < 0:
        raise CommandError("ERR Invalid library metadata")
    parts = code[2:end].split()
    if not parts:
        raise CommandError("ERR Invalid library metadata")
    engine_name = parts[0]
    name = None
    for part in parts[1:]:
        if part[:5].lower() == b"name=":
            if name is not None:
                raise CommandError("ERR Invalid metadata value, name argument was given multiple times")
            name = part[5:]
        else:
            raise CommandError(f"ERR Invalid metadata value given: {part.decode('utf-8', 'replace')}")
    if engine_name.lower() != b"lua":
        raise CommandError(f"ERR Engine '{engine_name.decode('utf-8', 'replace')}' not found")
    if name is None:
        raise CommandError("ERR Library name was not given")
    if not NAME_RE.match(name):
        raise CommandError("ERR Library names can only contain letters, numbers, or underscores(_) and must be at "
                           "least one character long")
    return name


# -- FCALL ---------------------------------------------------------------------------------

def _fcall(c, args, ro):
    funcs = functions_of(c.server)
    f = funcs.index.get(args[1])
    if f is None:
        raise CommandError("ERR Function not found")
    n = numkeys_arg(args, "ERR Bad number of keys provided")
    keys, argv = args[3:3 + n], args[3 + n:]
    if not ro:
        check_keys(c, COMMANDS["fcall"], keys, "RW")
    no_writes = "no-writes" in f.flags
    if ro and not no_writes:
        raise CommandError("ERR Can not execute a script with write flag using *_ro command.")
    run = Run(c, f.name.decode("utf-8", "replace"), False, ro or no_writes, list(args))
    return funcs.eng.execute(run, f.fn, keys, argv)


def _f(**kw):
    return dict(group="scripting", **kw)


FCALL_FLAGS = "noscript stale skip_monitor no_mandatory_keys movablekeys"


@command("fcall", -3, FCALL_FLAGS, "@scripting", key_finder=numkeys_keys(2), **_f(summary="Invokes a function.", since="7.0.0"))
def fcall(c, args):
    return _fcall(c, args, False)


@command("fcall_ro", -3, "readonly " + FCALL_FLAGS, "@scripting", key_finder=numkeys_keys(2),
         **_f(summary="Invokes a read-only function.", since="7.0.0"))
def fcall_ro(c, args):
    return _fcall(c, args, True)


COMMANDS["fcall_ro"].categories = frozenset(["scripting", "slow"])   # not @read, as in Redis


# -- FUNCTION -------------------------------------------------------------------------------

container("function", -2, "", "", summary="A container for function commands.", group="scripting")


@subcommand("function", "load", -3, "write denyoom noscript", "@scripting",
            summary="Creates a library.", since="7.0.0")
def function_load(c, args):
    replace = False
    for a in args[2:-1]:
        if a.lower() == b"replace":
            replace = True
        else:
            raise CommandError(f"ERR Unknown option given: {a.decode('utf-8', 'replace')}")
    funcs = functions_of(c.server)
    code = args[-1]
    name = parse_library_header(code)
    if name in funcs.libraries and not replace:
        raise CommandError(f"ERR Library '{name.decode('utf-8', 'replace')}' already exists")
    lib = funcs.build(code)
    funcs.install(lib, replace)
    funcs.persist(lib)
    return lib.name


@subcommand("function", "delete", 3, "write noscript", "@scripting", summary="Deletes a library and its functions.",
            since="7.0.0")
def function_delete(c, args):
    funcs = functions_of(c.server)
    if funcs.remove(args[2]) is None:
        raise CommandError("ERR Library not found")
    funcs.unpersist(args[2])
    return OK


@subcommand("function", "flush", -2, "write noscript", "@scripting", summary="Deletes all libraries and functions.",
            since="7.0.0")
def function_flush(c, args):
    if len(args) > 3 or (len(args) == 3 and args[2].lower() not in (b"sync", b"async")):
        raise CommandError("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
    funcs = functions_of(c.server)
    _flush(funcs)
    return OK


def _flush(funcs):
    for name in list(funcs.libraries):
        funcs.remove(name)
        funcs.unpersist(name)
    funcs.eng.rt.gc()


@subcommand("function", "list", -2, "noscript", "@scripting", summary="Returns information about all libraries.",
            since="7.0.0")
def function_list(c, args):
    with_code = False
    pattern = None
    i = 2
    while i < len(args):
        a = args[i].lower()
        if not with_code and a == b"withcode":
            with_code = True
        elif pattern is None and a == b"libraryname":
            if i >= len(args) - 1:
                raise CommandError("ERR library name argument was not given")
            i += 1
            pattern = args[i]
        else:
            raise CommandError(f"ERR Unknown argument {args[i].decode('utf-8', 'replace')}")
        i += 1
    out = []
    for lib in functions_of(c.server).libraries.values():
        if pattern is not None and not glob_match(pattern.lower(), lib.name.lower()):
            continue
        entry = {b"library_name": lib.name, b"engine": b"LUA",
                 b"functions": [{b"name": f.name, b"description": f.description,
                                 b"flags": {x.encode() for x in f.flags}} for f in lib.functions.values()]}
        if with_code:
            entry[b"library_code"] = lib.code
        out.append(entry)
    return out


@subcommand("function", "stats", 2, "noscript allow_busy", "@scripting",
            summary="Returns information about a function during execution.", since="7.0.0")
def function_stats(c, args):
    eng = engine(c.server)
    run = eng.run
    if run is not None and run.is_eval:
        raise CommandError(BUSY_EVAL)
    running = None
    if run is not None and not run.loading:
        running = {b"name": run.name.encode(), b"command": run.command,
                   b"duration_ms": int((time.monotonic() - run.start) * 1000)}
    funcs = functions_of(c.server)
    return {b"running_script": running,
            b"engines": {b"LUA": {b"libraries_count": len(funcs.libraries), b"functions_count": len(funcs.index)}}}


@subcommand("function", "kill", 2, "noscript allow_busy", "@scripting",
            summary="Terminates a function during execution.", since="7.0.0")
def function_kill(c, args):
    return engine(c.server).kill(False)


@subcommand("function", "dump", 2, "noscript", "@scripting",
            summary="Dumps all libraries into a serialized binary payload.", since="7.0.0")
def function_dump(c, args):
    body = bytearray(DUMP_MAGIC)
    for lib in functions_of(c.server).libraries.values():
        body += struct.pack(">I", len(lib.code)) + lib.code
    return bytes(body) + struct.pack(">I", zlib.crc32(body))


@subcommand("function", "restore", -3, "write denyoom noscript", "@scripting",
            summary="Restores all libraries from a payload.", since="7.0.0")
def function_restore(c, args):
    policy = b"append"
    if len(args) > 4:
        raise CommandError("ERR syntax error")
    if len(args) == 4:
        policy = args[3].lower()
        if policy not in (b"append", b"replace", b"flush"):
            raise CommandError("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")
    codes = _parse_dump(args[2])
    funcs = functions_of(c.server)
    libs = [funcs.build(code) for code in codes]
    names = [lib.name for lib in libs]
    if len(set(names)) != len(names):
        raise CommandError("ERR payload holds a library twice")
    if policy == b"append":
        for lib in libs:
            if lib.name in funcs.libraries:
                raise CommandError(f"ERR Library {lib.name.decode('utf-8', 'replace')} already exists")
    # Function names must stay unique once the payload is in (all or nothing).
    keep = {} if policy == b"flush" else {n: lib for n, lib in funcs.libraries.items() if n not in names}
    seen = {f for lib in keep.values() for f in lib.functions}
    for lib in libs:
        for fname in lib.functions:
            if fname in seen:
                raise CommandError(f"ERR Function {fname.decode('utf-8', 'replace')} already exists")
            seen.add(fname)
    if policy == b"flush":
        _flush(funcs)
    for lib in libs:
        funcs.install(lib, replace=True)
        funcs.persist(lib)
    return OK


def _parse_dump(payload):
    bad = CommandError("ERR payload version or checksum are wrong")
    if len(payload) < len(DUMP_MAGIC) + 4 or not payload.startswith(DUMP_MAGIC):
        raise bad
    body, crc = payload[:-4], struct.unpack(">I", payload[-4:])[0]
    if zlib.crc32(body) != crc:
        raise bad
    codes = []
    i = len(DUMP_MAGIC)
    while i < len(body):
        if i + 4 > len(body):
            raise bad
        n = struct.unpack(">I", body[i:i + 4])[0]
        if i + 4 + n > len(body):
            raise bad
        codes.append(body[i + 4:i + 4 + n])
        i += 4 + n
    return codes


FUNCTION_HELP = [
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
]


@subcommand("function", "help", 2, "loading stale", "@scripting", summary="Returns helpful text about FUNCTION.",
            since="7.0.0")
def function_help(c, args):
    return [Status(line) for line in FUNCTION_HELP]


__all__ = ["Functions", "Library", "Function", "functions_of", "parse_library_header", "LIBRARY_PREFIX"]
