"""Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT, and the engine
that runs scripts and functions (commands/functions.py) for the server.

A script runs inside the command group of the client that called it, on the
event loop's thread, so no other command runs in between and its writes
commit with that group, as one kvdb transaction: all of them are durable
together or none. Like Redis, a script that fails after writing keeps what it
wrote (there is no rollback of a script's own writes); what kvdb adds is that a
crash never leaves half of a script's writes on disk.

redis.call runs a command through Server.call on the caller's connection, with
`in_script` set (blocking commands answer at once), the connection's protocol
switched to the script's (redis.setresp) and its database restored after the
script (SELECT inside a script does not leak). Before running it checks what
Redis checks, in Redis's order: arity, commands not allowed from scripts, the
ACL (key patterns and categories; a denial is "ERR ACL failure in script: ..."),
and writes from read-only scripts (EVAL_RO, FCALL_RO, the no-writes flag).

Long scripts: see scriptbusy.py (BUSY replies, SCRIPT KILL, SHUTDOWN NOSAVE).
Errors carry the script's line as Redis 7 writes them:
"ERR user_script:1: boom script: <sha1>, on @user_script:1."
"""
import hashlib
import logging
import time

from kvdb.server.protocol.resp import OK, ErrorReply, Status
from ..acl_user import _printable, _text, denial
from ..lua import CallError, LuaError, LuaMemoryError, LuaRuntime, available
from ..luaconv import ConversionTooDeep, error_text, from_lua, lua_arg, to_lua
from ..lualibs import Libraries
from ..scriptbusy import BUSY_EVAL, BUSY_FUNCTION, POLL_INTERVAL, BusyIO
from .registry import COMMANDS, NO_REPLY, CommandError, command, container, int_arg, lookup, numkeys_keys, subcommand

log = logging.getLogger("kvdb.server")

__all__ = ["engine", "Run", "Scripting", "numkeys_arg", "check_keys"]

LOAD_TIMEOUT = 0.5   # seconds FUNCTION LOAD may run a library's top-level code (as Redis)
KILLED = b"ERR Script killed by user with SCRIPT KILL..."
UNKILLABLE = ("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either "
              "wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.")
NOTBUSY = "NOTBUSY No scripts in execution right now."
SCRIPT_FLAGS = frozenset(["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"])
# Commands Redis 7 refuses inside scripts (CMD_NOSCRIPT), by ACL name, whatever flags the
# command table here gives them.
REDIS_NOSCRIPT = frozenset("""acl|cat acl|deluser acl|dryrun acl|genpass acl|getuser acl|list acl|load acl|log
acl|save acl|setuser acl|users acl|whoami auth bgrewriteaof bgsave blmove blpop brpop brpoplpush bzpopmax bzpopmin
client|caching client|getname client|getredir client|id client|info client|kill client|list client|no-evict
client|no-touch client|pause client|reply client|setname client|setinfo client|tracking client|trackinginfo
client|unblock client|unpause cluster|reset config|get config|resetstat config|rewrite config|set debug discard eval
eval_ro evalsha evalsha_ro exec failover fcall fcall_ro function|delete function|dump function|flush function|kill
function|list function|load function|restore function|stats hello latency|doctor latency|graph latency|histogram
latency|history latency|latest latency|reset module|list module|load module|loadex module|unload monitor multi
psubscribe psync punsubscribe quit replconf replicaof reset role save script|debug script|exists script|flush
script|kill script|load shutdown slaveof ssubscribe subscribe sunsubscribe sync unsubscribe unwatch wait watch
""".split())
# Commands that may replicate: refused in read-only scripts like writes.
MAY_REPLICATE = frozenset(["publish", "spublish", "pfcount"])


class Run:
    """One running script or function (or a library's top-level code while it loads)."""
    __slots__ = ("client", "name", "is_eval", "read_only", "dirty", "start", "busy", "killed", "resp", "command",
                 "loading", "next_poll")

    def __init__(self, client, name, is_eval, read_only, command, loading=False):
        self.client = client          # the Client that called it (None while a stored library loads)
        self.name = name              # sha1 of an EVAL script, or the function's name
        self.is_eval = is_eval        # EVAL family (else FCALL): which KILL applies
        self.read_only = read_only    # *_RO or the no-writes flag: writes are refused
        self.dirty = False            # it ran a write command: SCRIPT KILL refuses
        self.start = time.monotonic() # when it started
        self.busy = False             # past busy-reply-threshold: others get BUSY
        self.killed = None            # error text the hook raises (SCRIPT/FUNCTION KILL, shutdown)
        self.resp = 2                 # protocol of its redis.call replies (redis.setresp)
        self.command = command        # the command that started it (FUNCTION STATS)
        self.loading = loading        # a library's top-level code (FUNCTION LOAD): 500 ms limit
        self.next_poll = 0.0          # monotonic time of the next busy poll


class Script:
    __slots__ = ("sha", "body", "fn", "flags")

    def __init__(self, sha, body, fn, flags):
        self.sha = sha        # hex sha1 of body (bytes)
        self.body = body      # the source as sent
        self.fn = fn          # the compiled Lua chunk
        self.flags = flags    # shebang flags (frozenset of str), None for a script without "#!lua"


def engine(server):
    """The server's scripting engine, created at first use."""
    e = getattr(server, "scripting", None)
    if e is None:
        if not available():
            raise CommandError("ERR Lua scripting needs the lupa package: pip install lupa (or kvdb[server])")
        e = server.scripting = Scripting(server)
    return e


def sha1hex(data):
    return hashlib.sha1(data).hexdigest().encode()


class Scripting:
    """The Lua state, the script cache, the running script and the Lua callbacks."""

    def __init__(self, server):
        self.server = server                 # the app.Server
        self.scripts = {}                    # sha1 hex (bytes) -> Script
        self.run = None                      # the Run in progress, or None
        self.busy = BusyIO(server)           # serving others while a run is busy
        self.rt = LuaRuntime(self, Libraries())
        self.functions = None                # functions.Functions, set by commands/functions.py

    # -- running -------------------------------------------------------------------

    def execute(self, run, fn, keys, args):
        """Runs fn (an EVAL chunk, or a function when not run.is_eval) and returns the reply."""
        if self.run is not None:
            raise CommandError("ERR a script is already running")
        c = run.client
        saved = (c.db, c.in_script, c.last_command)
        self.run = run
        c.in_script = True
        try:
            kt = self.rt.table(keys)
            at = self.rt.table(args)
            res = (self.rt.run_eval if run.is_eval else self.rt.run_function)(fn, kt, at)
            ok, value = (res[0], res[1] if len(res) > 1 else None) if isinstance(res, tuple) else (res, None)
            if ok:
                reply = from_lua(self.rt, value, run.resp)
            else:
                reply = ErrorReply(error_message(value, run.name))
        except (ConversionTooDeep, RecursionError):
            reply = ErrorReply("ERR reached lua stack limit")
        except LuaMemoryError:
            reply = ErrorReply("ERR Lua out of memory: the script allocated more than the Lua memory limit")
        except LuaError as e:
            reply = ErrorReply(f"ERR Error running script: {_one_line(e)}")
        finally:
            self.run = None
            if run.busy:
                self.busy.end()
                log.warning("Slow script %s finished after %d ms", run.name, (time.monotonic() - run.start) * 1000)
            c.db, c.in_script, c.last_command = saved
        if run.killed and isinstance(reply, ErrorReply):
            log.warning("Lua script killed by user with SCRIPT KILL.")
        return reply

    def kill(self, is_eval):
        """SCRIPT KILL (is_eval) / FUNCTION KILL."""
        run = self.run
        if run is None or run.loading:
            raise CommandError(NOTBUSY)
        if run.dirty:
            raise CommandError(UNKILLABLE)
        if is_eval and not run.is_eval:
            raise CommandError(BUSY_FUNCTION)
        if not is_eval and run.is_eval:
            raise CommandError(BUSY_EVAL)
        run.killed = KILLED
        return OK

    # -- the callbacks of lua.py ---------------------------------------------------------

    def tick(self):
        run = self.run
        if run is None:
            return None
        try:
            now = time.monotonic()
            if run.loading:
                return b"ERR FUNCTION LOAD timeout" if now - run.start > LOAD_TIMEOUT else None
            if run.killed:
                return run.killed
            if not run.busy:
                if (now - run.start) * 1000 < self.server.config["busy-reply-threshold"]:
                    return None
                run.busy = True
                self.busy.begin(run)
            if now >= run.next_poll:
                run.next_poll = now + POLL_INTERVAL
                self.busy.poll(run)
            return run.killed
        except Exception:  # noqa: BLE001 - the hook must not fail the script for a server-side bug
            log.error("error while serving clients during a busy script", exc_info=True)
            return None

    def pcall(self, *args):
        """redis.pcall: the Lua value of the reply, an {err=...} table for an error."""
        ok, value = self._safe_call(args)
        return value if ok else self.rt.table({b"err": value})

    def call(self, *args):
        """redis.call: the Lua value of the reply; an error raises CallError into Lua."""
        ok, value = self._safe_call(args)
        if ok:
            return value
        raise CallError(value)

    def _safe_call(self, args):
        try:
            return self._call(args)
        except (ConversionTooDeep, RecursionError):
            return False, b"ERR reached lua stack limit"
        except LuaMemoryError:
            return False, b"ERR Lua out of memory: the reply does not fit in the Lua memory limit"
        except Exception as e:  # noqa: BLE001 - a server bug must reach the script as an error, not a crash
            log.error("internal error in redis.call", exc_info=True)
            return False, f"ERR internal error in redis.call: {type(e).__name__}".encode()

    def _error(self, text):
        return text.encode()

    def _argv(self, args):
        if not args:
            return None, "ERR Please specify at least one argument for this redis lib call"
        argv = [lua_arg(a) for a in args]
        if None in argv:
            return None, "ERR Lua redis lib command arguments must be strings or integers"
        return argv, None

    def _call(self, args):
        run = self.run
        if run is None or run.loading or run.client is None:
            return False, self._error("ERR redis.call is not available now")
        argv, err = self._argv(args)
        if err:
            return False, self._error(err)
        cmd, error = lookup(argv)
        if cmd is None:
            if error.startswith("ERR wrong number"):
                return False, self._error("ERR Wrong number of args calling Redis command from script")
            return False, self._error("ERR Unknown Redis command called from script")
        if "noscript" in cmd.flags or cmd.fullname in REDIS_NOSCRIPT:
            return False, self._error("ERR This Redis command is not allowed from script")
        c = run.client
        server = self.server
        if not c.user.unrestricted or cmd.audited:
            denied = server.acl.check(c, cmd, argv)
            if denied:
                text = denied[len("NOPERM "):] if denied.startswith("NOPERM ") else denied
                return False, self._error("ERR ACL failure in script: " + text)
        if run.read_only and ("write" in cmd.flags or "may_replicate" in cmd.flags or cmd.fullname in MAY_REPLICATE):
            return False, self._error("ERR Write commands are not allowed from read-only scripts.")
        if "write" in cmd.flags:
            run.dirty = True
        proto = c.proto
        c.proto = run.resp
        try:
            reply = server.call(c, cmd, argv)
        finally:
            c.proto = proto
        if reply is NO_REPLY:
            reply = None
        if isinstance(reply, ErrorReply):
            return False, error_text("-" + str(reply)).encode()
        return True, to_lua(self.rt, reply, run.resp)

    def acl_check(self, *args):
        """redis.acl_check_cmd: whether the running script's user may run the command."""
        argv, err = self._argv(args)
        if err:
            raise CallError(err.encode())
        cmd, _ = lookup(argv)
        if cmd is None:
            raise CallError(b"ERR Invalid command passed to redis.acl_check_cmd()")
        run = self.run
        user = run.client.user if run is not None and run.client is not None else self.server.acl.default
        return denial(user, cmd, argv) is None

    def log(self, *args):
        """redis.log(level, message...)."""
        if len(args) < 2:
            raise CallError(b"ERR redis.log() requires two arguments or more.")
        level = args[0]
        if type(level) not in (int, float):
            raise CallError(b"ERR First argument must be a number (log level).")
        if not 0 <= level <= 3:
            raise CallError(b"ERR Invalid debug level.")
        text = b" ".join(lua_tostring(a) for a in args[1:] if type(a) in (bytes, int, float))
        log.log((logging.DEBUG, logging.INFO, logging.INFO, logging.WARNING)[int(level)], "%s",
                text.decode("utf-8", "replace"))

    def setresp(self, *args):
        if len(args) != 1:
            raise CallError(b"ERR redis.setresp() requires one argument.")
        if args[0] not in (2, 3) or type(args[0]) is bool:
            raise CallError(b"ERR RESP version must be 2 or 3.")
        if self.run is not None:
            self.run.resp = int(args[0])

    def set_repl(self, *args):
        if len(args) != 1:
            raise CallError(b"ERR redis.set_repl() requires one argument.")
        if type(args[0]) not in (int, float) or not 0 <= args[0] <= 3:
            raise CallError(b"ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.")

    def sha1hex(self, *args):
        if len(args) != 1:
            raise CallError(b"ERR wrong number of arguments")
        a = args[0]
        return sha1hex(lua_tostring(a) if type(a) in (bytes, int, float) else b"")

    # -- the script cache ------------------------------------------------------------------

    def script(self, body):
        """The cached Script of body, compiled on first use (CommandError when it does not compile)."""
        sha = sha1hex(body)
        s = self.scripts.get(sha)
        if s is None:
            flags, code = parse_shebang(body)
            fn, err = self.rt.compile(code, "@user_script")
            if fn is None:
                raise CommandError(f"ERR Error compiling script (new function): {err}")
            s = self.scripts[sha] = Script(sha, body, fn, flags)
        return s


def error_message(err, name):
    """The reply text of a failed run: the error table's err, then where it happened."""
    if not hasattr(err, "items"):
        text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
        return f"ERR {text}"
    msg, source, line = err[b"err"], err[b"source"], err[b"line"]
    if isinstance(msg, bytes):
        text = msg.decode("utf-8", "replace")
    elif isinstance(msg, (int, float)) and not isinstance(msg, bool):
        text = (b"%.14g" % msg).decode()
    else:
        text = "ERR Error running script: unknown error"
    if source is not None and line is not None:
        src = source.decode("utf-8", "replace") if isinstance(source, bytes) else str(source)
        return f"{text} script: {name.decode() if isinstance(name, bytes) else name}, on {src}:{line}."
    return text


def lua_tostring(v):
    """Lua's tostring of a string or number (%.14g)."""
    return v if type(v) is bytes else b"%.14g" % v


def _one_line(e):
    return " ".join(str(e).split())


def parse_shebang(body):
    """(flags, code to compile) of an EVAL script: flags None without a "#!lua" line;
    the shebang line is blanked, keeping its newline so line numbers stay right."""
    if not body.startswith(b"#!"):
        return None, body
    end = body.find(b"\n")
    if end < 0:
        raise CommandError("ERR Invalid script shebang")
    parts = body[:end].decode("utf-8", "replace").split()
    if not parts:
        raise CommandError("ERR Invalid engine in script shebang")
    if parts[0] != "#!lua":
        raise CommandError(f"ERR Unexpected engine in script shebang: {parts[0]}")
    flags = set()
    for part in parts[1:]:
        if not part.startswith("flags="):
            raise CommandError(f"ERR Unknown lua shebang option: {part}")
        for f in part[6:].split(","):
            if not f:
                continue
            if f not in SCRIPT_FLAGS:
                raise CommandError(f"ERR Unexpected flag in script shebang: {f}")
            flags.add(f)
    return frozenset(flags), body[end:]


def numkeys_arg(args, bad="ERR value is not an integer or out of range"):
    """KEYS of EVAL/FCALL-style args (name, body-or-name, numkeys, keys..., args...)."""
    n = int_arg(args[2], bad)
    if n > len(args) - 3:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    if n < 0:
        raise CommandError("ERR Number of keys can't be negative")
    return n


def check_keys(c, cmd, keys, need):
    """Redis declares EVAL's and FCALL's keys read-write: the ACL check before every
    command (through the key finder) asks for read access, this asks for the rest."""
    user = c.user
    if user.all_keys:
        return
    for key in keys:
        if not user.key_allowed(key, need):
            c.server.acl.deny(c, "key", _text(key), cmd)
            raise CommandError(f"NOPERM User {user.name} has no permissions to access the '{_printable(key)}' key")


# -- EVAL family ----------------------------------------------------------------------------

def _eval(c, args, by_sha, ro):
    n = numkeys_arg(args)
    keys, argv = args[3:3 + n], args[3 + n:]
    if not ro:
        check_keys(c, _cmd_of(args), keys, "RW")
    eng = engine(c.server)
    if by_sha:
        sha = args[1].lower()
        s = eng.scripts.get(sha) if len(sha) == 40 else None
        if s is None:
            raise CommandError("NOSCRIPT No matching script. Please use EVAL.")
    else:
        s = eng.script(args[1])
    if ro and s.flags is not None and "no-writes" not in s.flags:
        raise CommandError("ERR Can not execute a script with write flag using *_ro command.")
    read_only = ro or (s.flags is not None and "no-writes" in s.flags)
    run = Run(c, s.sha.decode(), True, read_only, list(args))
    return eng.execute(run, s.fn, keys, argv)


def _cmd_of(args):
    return COMMANDS.get(args[0].lower().decode("ascii", "replace"))


def _s(**kw):
    return dict(group="scripting", **kw)


EVAL_FLAGS = "noscript stale skip_monitor no_mandatory_keys movablekeys"
EVAL_KEYS = numkeys_keys(2)   # KEYS follow numkeys: the ACL checks them before the script runs


@command("eval", -3, EVAL_FLAGS, "@scripting", key_finder=EVAL_KEYS, **_s(summary="Executes a server-side Lua script.", since="2.6.0"))
def eval_(c, args):
    return _eval(c, args, False, False)


@command("evalsha", -3, EVAL_FLAGS, "@scripting", key_finder=EVAL_KEYS,
         **_s(summary="Executes a server-side Lua script by SHA1 digest.", since="2.6.0"))
def evalsha(c, args):
    return _eval(c, args, True, False)


@command("eval_ro", -3, "readonly " + EVAL_FLAGS, "@scripting", key_finder=EVAL_KEYS,
         **_s(summary="Executes a read-only server-side Lua script.", since="7.0.0"))
def eval_ro(c, args):
    return _eval(c, args, False, True)


@command("evalsha_ro", -3, "readonly " + EVAL_FLAGS, "@scripting", key_finder=EVAL_KEYS,
         **_s(summary="Executes a read-only server-side Lua script by SHA1 digest.", since="7.0.0"))
def evalsha_ro(c, args):
    return _eval(c, args, True, True)


# As in Redis, the read-only variants are in @scripting and @slow only (not @read).
for _name in ("eval_ro", "evalsha_ro"):
    COMMANDS[_name].categories = frozenset(["scripting", "slow"])


# -- SCRIPT -----------------------------------------------------------------------------------

container("script", -2, "", "", summary="A container for Lua scripts management commands.", group="scripting")


@subcommand("script", "load", 3, "noscript stale", "@scripting",
            summary="Loads a server-side Lua script to the script cache.", since="2.6.0")
def script_load(c, args):
    return engine(c.server).script(args[2]).sha


@subcommand("script", "exists", -3, "noscript", "@scripting",
            summary="Determines whether server-side Lua scripts exist in the script cache.", since="2.6.0")
def script_exists(c, args):
    scripts = engine(c.server).scripts
    return [1 if a.lower() in scripts else 0 for a in args[2:]]


@subcommand("script", "flush", -2, "noscript", "@scripting",
            summary="Removes all server-side Lua scripts from the script cache.", since="2.6.0")
def script_flush(c, args):
    if len(args) > 3 or (len(args) == 3 and args[2].lower() not in (b"sync", b"async")):
        raise CommandError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    eng = engine(c.server)
    eng.scripts = {}
    eng.rt.gc()
    return OK


@subcommand("script", "kill", 2, "noscript allow_busy", "@scripting",
            summary="Terminates a server-side Lua script during execution.", since="2.6.0")
def script_kill(c, args):
    return engine(c.server).kill(True)


@subcommand("script", "debug", 3, "noscript", "@scripting",
            summary="Sets the debug mode of server-side Lua scripts.", since="3.2.0")
def script_debug(c, args):
    mode = args[2].lower()
    if mode == b"no":
        return OK
    if mode in (b"yes", b"sync"):
        raise CommandError("ERR kvdb does not have the Lua debugger (SCRIPT DEBUG YES|SYNC)")
    raise CommandError("ERR Use SCRIPT DEBUG YES/SYNC/NO")


SCRIPT_HELP = [
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
]


@subcommand("script", "help", 2, "loading stale", "@scripting", summary="Returns helpful text about SCRIPT.",
            since="5.0.0")
def script_help(c, args):
    return [Status(line) for line in SCRIPT_HELP]

