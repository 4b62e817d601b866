"""The Lua runtime of the server's scripts (EVAL, FUNCTION): one lupa Lua 5.1
state, the sandbox scripts run in, and the hook that lets a long script be
stopped.

Why lupa: it is a maintained binding of the reference Lua interpreter, and its
`lua51` module is the Lua 5.1 that Redis embeds, so scripts written for Redis
(number formatting, `unpack`, `table.getn`, `loadstring`, ...) behave the same.

The sandbox (docs/server.md, "Lua scripting"):

* A script sees only an environment table of its own, never the state's real
  globals: no os, io, require, module, package, dofile, loadfile, debug,
  getfenv/setfenv, print, newproxy, and no `python` object of lupa. Reading a
  global that does not exist raises "Script attempted to access nonexistent
  global variable", creating one raises "Attempt to modify a readonly table"
  (Redis 7's rules).
* The library tables (string, math, table, coroutine, redis, cjson, bit,
  cmsgpack) are read-only views: a script cannot change what the next script
  sees. rawset, table.insert/remove/sort refuse them; pairs/next/rawget see
  through them. The string metatable is guarded by __metatable.
* loadstring/load compile text only (a chunk starting with ESC, Lua bytecode,
  gives nil) and give the compiled chunk the caller's sandbox environment.
* Python reaches scripts only as the API's functions: lupa's attribute filter
  refuses every attribute of a Python object (but `err` of a CallError) and the
  `python` bridge is removed. Functions that may raise (redis.call, sha1hex,
  log, cjson.decode, ...) are the Python callables themselves, not Lua
  closures, so that `return redis.call(...)` is no Lua tail call and an error
  still knows the script's line; they raise CallError, whose `err` is the text.
* Memory is capped (MAX_MEMORY): past it an allocation fails with a Lua error.

The hook. A count hook runs every HOOK_COUNT VM instructions (in every
coroutine: coroutine.create/wrap set it in the new thread) and calls
`tick()`. tick returns an error text when the script must stop (SCRIPT KILL,
FUNCTION LOAD timeout); the hook then raises it and switches itself to run on
every line, so a script that catches the error with pcall gets it again at its
next line, as in Redis.
"""
import logging

from .compat import REDIS_VERSION, REDIS_VERSION_NUM  # redis.REDIS_VERSION, redis.REDIS_VERSION_NUM

try:
    from lupa import LuaError, LuaMemoryError, lua51
except ImportError:  # the server runs without Lua: scripting commands say what to install
    lua51 = None

    class LuaError(Exception):
        """Stands in for lupa's when lupa is not installed."""

    class LuaMemoryError(LuaError):
        """Stands in for lupa's when lupa is not installed."""

__all__ = ["LuaRuntime", "CallError", "LuaError", "LuaMemoryError", "available", "HOOK_COUNT", "MAX_MEMORY",
           "INTERNAL_CHUNK"]

log = logging.getLogger("kvdb.server")

HOOK_COUNT = 100000          # VM instructions between two calls of tick() (Redis uses the same)
MAX_MEMORY = 1 << 30         # bytes the Lua state may allocate (scripts and libraries together)
INTERNAL_CHUNK = "=kvdb"     # chunk name of the sandbox code: error locations skip its frames


class CallError(Exception):
    """What redis.call raises into Lua for an error reply: a Lua error whose value is
    this object, with `err` (bytes) its only readable attribute (`e.err` in Lua, as
    for Redis's error tables; pcall turns it into the string)."""

    def __init__(self, err):
        super().__init__(err)
        self.err = err

    def __str__(self):
        return self.err.decode("utf-8", "replace")


def _attribute_filter(obj, name, is_setting):
    if not is_setting and name == b"err" and type(obj) is CallError:
        return name
    raise AttributeError("Python attributes are not accessible from Lua")


# The sandbox, run once in the real global environment. `py` holds the Python callbacks;
# it returns the functions Python drives the state with.
_BOOTSTRAP = r"""
local py, HOOK_COUNT, INTERNAL, REDIS_VERSION, REDIS_VERSION_NUM = ...
local type, error, tostring, select, next, rawget, rawset = type, error, tostring, select, next, rawget, rawset
local pcall, xpcall, setmetatable, getmetatable, unpack = pcall, xpcall, setmetatable, getmetatable, unpack
local loadstring, setfenv, getfenv = loadstring, setfenv, getfenv
local getinfo, sethook = debug.getinfo, debug.sethook
local co_create, co_wrap = coroutine.create, coroutine.wrap
local tinsert, tremove, tsort, sfind, ssub, sbyte = table.insert, table.remove, table.sort, string.find, string.sub, string.byte
local newproxy = newproxy

-- read-only views ---------------------------------------------------------
local protected = setmetatable({}, {__mode = "k"})   -- tables a script may not change
local real_of = setmetatable({}, {__mode = "k"})     -- view -> the table it shows

local READONLY = "Attempt to modify a readonly table"
local function ro_newindex() error(READONLY, 2) end

local function readonly(t)
  local view = setmetatable({}, {__index = t, __newindex = ro_newindex, __metatable = false})
  protected[view] = true
  real_of[view] = t
  return view
end

local function guard(t)
  if protected[t] then error(READONLY, 3) end
end

local s_rawset = function(t, k, v)
  if protected[t] then error(READONLY, 0) end
  return rawset(t, k, v)
end
local s_setmetatable = function(t, mt)
  if protected[t] then error(READONLY, 0) end
  return setmetatable(t, mt)
end
local s_rawget = function(t, k) return rawget(real_of[t] or t, k) end
local s_next = function(t, k) return next(real_of[t] or t, k) end
local s_pairs = function(t)
  if type(t) ~= "table" then error("bad argument #1 to 'pairs' (table expected, got " .. type(t) .. ")", 2) end
  return s_next, t, nil
end
local s_ipairs = function(t)
  if type(t) ~= "table" then error("bad argument #1 to 'ipairs' (table expected, got " .. type(t) .. ")", 2) end
  local real = real_of[t] or t
  return function(_, i)
    i = i + 1
    local v = rawget(real, i)
    if v ~= nil then return i, v end
  end, t, 0
end

-- Redis's pcall: an error table with a string `err` comes back as that string.
local function err_of(e)
  -- the err text of an error value: Redis's error tables, redis.call's CallError
  if type(e) == "table" then return rawget(e, "err") end
  if type(e) == "userdata" then
    local ok, m = pcall(function() return e.err end)
    if ok then return m end
  end
  return nil
end
local function pcall_result(ok, ...)
  if ok then return ok, ... end
  local m = err_of((...))
  if type(m) == "string" or type(m) == "number" then return false, m end
  return false, ...
end
local s_pcall = function(f, ...) return pcall_result(pcall(f, ...)) end

-- the hook ----------------------------------------------------------------
local hook
hook = function()
  local stop = py.tick()
  if stop then
    sethook(hook, "l")
    -- Raise in script code only: the error handler and this file's wrappers must finish.
    local info = getinfo(2, "S")
    if info and info.source ~= INTERNAL then error({err = stop}, 0) end
  end
end
local function arm() sethook(hook, "", HOOK_COUNT) end

local function hooked(f)
  return function(...)
    sethook(hook, "", HOOK_COUNT)   -- a hook is per thread: the new coroutine gets its own
    return f(...)
  end
end
local coroutine_lib = {}
for k, v in pairs(coroutine) do coroutine_lib[k] = v end
coroutine_lib.create = function(f)
  if type(f) ~= "function" then return co_create(f) end
  return co_create(hooked(f))
end
coroutine_lib.wrap = function(f)
  if type(f) ~= "function" then return co_wrap(f) end
  return co_wrap(hooked(f))
end

-- compiling ---------------------------------------------------------------
local function compile_in(env)
  return function(text, name)
    if type(text) ~= "string" then return loadstring(text, name) end
    if sbyte(text, 1) == 27 then return nil end   -- bytecode is refused (as Redis does)
    local f, e = loadstring(text, name)
    if f then setfenv(f, env) end
    return f, e
  end
end
local function load_in(env)
  local compile = compile_in(env)
  return function(reader, name)
    if type(reader) ~= "function" then error("bad argument #1 to 'load' (function expected)", 2) end
    local parts = {}
    while true do
      local piece = reader()
      if piece == nil or piece == "" then break end
      if type(piece) ~= "string" then return nil, "reader function must return a string" end
      parts[#parts + 1] = piece
    end
    return compile(table.concat(parts), name or "=(load)")
  end
end

-- libraries ---------------------------------------------------------------
local table_lib = {}
for k, v in pairs(table) do table_lib[k] = v end
table_lib.insert = function(t, ...) guard(t) return tinsert(t, ...) end
table_lib.remove = function(t, ...) guard(t) return tremove(t, ...) end
table_lib.sort = function(t, ...) guard(t) return tsort(t, ...) end

-- cjson, bit, cmsgpack: Python functions (lualibs.py), called directly (see redis.call).
local function copy(t) local out = {} for k, v in pairs(t) do out[k] = v end return out end
local cjson_null = newproxy(false)
local cjson_lib = {encode = py.cjson.encode, decode = py.cjson.decode, null = cjson_null}
local string_view = readonly(string)
getmetatable("").__metatable = readonly({__index = string_view})

-- redis.* -----------------------------------------------------------------
local function errbuff(s)
  -- Redis's luaPushErrorBuff: "-CODE msg" keeps CODE, anything else gets ERR.
  local code, msg
  if ssub(s, 1, 1) == "-" then
    local sp = sfind(s, " ", 1, true)
    if sp then code, msg = ssub(s, 2, sp - 1), ssub(s, sp + 1) else code, msg = "ERR", ssub(s, 2) end
  else
    code, msg = "ERR", s
  end
  msg = msg:gsub("^[\r\n]+", ""):gsub("[\r\n]+$", "")
  return code .. " " .. msg
end
local function raise(text) error({err = text}, 0) end

local redis = {
  call = py.call,
  pcall = py.pcall,
  error_reply = function(...)
    local s = ...
    if select("#", ...) ~= 1 or type(s) ~= "string" then return {err = "ERR wrong number or type of arguments"} end
    if ssub(s, 1, 1) ~= "-" then s = "-" .. s end
    return {err = errbuff(s)}
  end,
  status_reply = function(...)
    local s = ...
    if select("#", ...) ~= 1 or type(s) ~= "string" then return {err = "ERR wrong number or type of arguments"} end
    return {ok = s}
  end,
  sha1hex = py.sha1hex, log = py.log, setresp = py.setresp, set_repl = py.set_repl,
  replicate_commands = function() return true end,
  breakpoint = function() return false end,
  debug = function() end,
  acl_check_cmd = py.acl_check,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
  REDIS_VERSION = REDIS_VERSION, REDIS_VERSION_NUM = REDIS_VERSION_NUM,
}

-- FUNCTION LOAD's redis.register_function: validates and collects into `registered`.
local registered = nil   -- {list of {name, fn, flags, description}} while a library loads
local FLAGS = {["no-writes"] = true, ["allow-oom"] = true, ["allow-stale"] = true, ["no-cluster"] = true,
               ["allow-cross-slot-keys"] = true}
local function register(name, fn, flags, desc)
  if type(name) ~= "string" or name == "" or sfind(name, "[^%w_]") then
    raise("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long")
  end
  for _, f in ipairs(registered) do
    if f.name == name then raise("ERR Function already exists in the library") end
  end
  local fl = {}
  if flags ~= nil then
    if type(flags) ~= "table" then raise("ERR flags argument to redis.register_function must be a table representing function flags") end
    for _, v in ipairs(flags) do
      if type(v) ~= "string" or not FLAGS[v] then raise("ERR unknown flag given") end
      fl[#fl + 1] = v
    end
  end
  registered[#registered + 1] = {name = name, fn = fn, flags = fl, description = desc}
end
local register_function = function(...)
  local n = select("#", ...)
  if n == 1 then
    local t = ...
    if type(t) ~= "table" then
      raise("ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).")
    end
    local name, fn, flags, desc
    for k, v in pairs(t) do
      if k == "function_name" then
        if type(v) ~= "string" then raise("ERR function_name argument given to redis.register_function must be a string") end
        name = v
      elseif k == "callback" then
        if type(v) ~= "function" then raise("ERR callback argument given to redis.register_function must be a function") end
        fn = v
      elseif k == "flags" then
        if type(v) ~= "table" then raise("ERR flags argument to redis.register_function must be a table representing function flags") end
        flags = v
      elseif k == "description" then
        if type(v) ~= "string" then raise("ERR description argument given to redis.register_function must be a string") end
        desc = v
      else
        raise("ERR unknown argument given to redis.register_function")
      end
    end
    if name == nil then raise("ERR redis.register_function must get a function name argument") end
    if fn == nil then raise("ERR redis.register_function must get a callback argument") end
    register(name, fn, flags, desc)
  elseif n == 2 then
    local name, fn = ...
    if type(name) ~= "string" then raise("ERR first argument to redis.register_function must be a string") end
    if type(fn) ~= "function" then raise("ERR second argument to redis.register_function must be a function") end
    register(name, fn, nil, nil)
  else
    raise("ERR wrong number of arguments to redis.register_function")
  end
end

-- environments --------------------------------------------------------------
local function missing(k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 3)
end

-- What every script sees (the values are shared, read-only views where they are tables).
local api = {
  assert = assert, collectgarbage = collectgarbage, error = error, gcinfo = gcinfo,
  getmetatable = getmetatable, ipairs = s_ipairs, next = s_next, pairs = s_pairs, pcall = s_pcall,
  rawequal = rawequal, rawget = s_rawget, rawset = s_rawset, select = select, setmetatable = s_setmetatable,
  tonumber = tonumber, tostring = tostring, type = type, unpack = unpack, xpcall = xpcall,
  _VERSION = _VERSION,
  string = string_view, math = readonly(math), table = readonly(table_lib),
  coroutine = readonly(coroutine_lib), redis = readonly(redis), cjson = readonly(cjson_lib),
  bit = readonly(copy(py.bit)), cmsgpack = readonly(copy(py.cmsgpack)),
}

-- EVAL scripts: KEYS and ARGV of the running script come first.
local vars = {}   -- _G, loadstring, load, KEYS, ARGV
local eval_env = setmetatable({}, {
  __index = function(_, k)
    local v = vars[k]
    if v == nil then v = api[k] end
    if v == nil then missing(k) end
    return v
  end,
  __newindex = ro_newindex, __metatable = false})
protected[eval_env] = true
vars._G = eval_env
vars.loadstring = compile_in(eval_env)
vars.load = load_in(eval_env)

-- FUNCTION libraries: one environment for all, showing only `redis` (register_function,
-- log) while a library loads, the whole API while a function runs.
local lib_env
local loading_redis = {register_function = register_function, log = redis.log,
                       LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
                       REDIS_VERSION = REDIS_VERSION, REDIS_VERSION_NUM = REDIS_VERSION_NUM}
local loading_view = setmetatable({}, {
  __index = function(_, k)
    local v = loading_redis[k]
    if v == nil then missing(k) end
    return v
  end,
  __newindex = ro_newindex, __metatable = false})
protected[loading_view] = true
real_of[loading_view] = loading_redis
local loading_api = {redis = loading_view}
local running_api = {}
local lib_api = running_api
lib_env = setmetatable({}, {
  __index = function(_, k)
    local v = lib_api[k]
    if v == nil and lib_api == running_api then v = api[k] end
    if v == nil then missing(k) end
    return v
  end,
  __newindex = ro_newindex, __metatable = false})
protected[lib_env] = true
running_api._G = lib_env
running_api.loadstring = compile_in(lib_env)
running_api.load = load_in(lib_env)

-- errors ------------------------------------------------------------------
local function user_frame()
  local level = 3
  while true do
    local info = getinfo(level, "Sl")
    if not info then return nil end
    if info.what ~= "C" and info.what ~= "tail" and info.source ~= INTERNAL then return info end
    level = level + 1
  end
end
local function handler(e)
  local out
  local m = err_of(e)
  if m ~= nil or type(e) == "table" then
    out = {err = m}
  else
    out = {err = "ERR " .. tostring(e)}
  end
  local info = user_frame()
  if info then
    out.source = info.source
    out.line = info.currentline
  end
  return out
end

-- the functions Python calls ---------------------------------------------------
local M = {}
function M.compile(text, chunkname, kind)
  if sbyte(text, 1) == 27 then return nil, "attempt to load a binary chunk" end
  local f, e = loadstring(text, chunkname)
  if not f then return nil, e end
  setfenv(f, kind == "lib" and lib_env or eval_env)
  return f
end
local function disarmed(...)
  sethook()   -- no hook outside scripts (after a kill it would run on every line)
  return ...
end
function M.run_eval(f, keys, argv)
  vars.KEYS = keys
  vars.ARGV = argv
  arm()
  return disarmed(xpcall(f, handler))
end
function M.run_function(f, keys, args)
  lib_api = running_api
  arm()
  return disarmed(xpcall(function() return f(keys, args) end, handler))
end
function M.load_library(chunk)
  registered = {}
  lib_api = loading_api
  arm()
  local ok, e = xpcall(chunk, handler)
  sethook()
  lib_api = running_api
  local got = registered
  registered = nil
  if not ok then return false, e end
  return true, got
end
-- Raw reads for the reply conversion (no metamethods, as Redis reads replies).
function M.fields(t)
  return rawget(t, "err"), rawget(t, "ok"), rawget(t, "double"), rawget(t, "big_number"),
         rawget(t, "verbatim_string"), rawget(t, "map"), rawget(t, "set")
end
function M.array(t)
  local out, n = {}, 0
  while true do
    local v = rawget(t, n + 1)
    if v == nil then return out, n end
    n = n + 1
    out[n] = v
  end
end
function M.verbatim(t)
  return rawget(t, "format"), rawget(t, "string")
end
function M.is_null(v) return v == cjson_null end
-- "user_script:3:" for the innermost script frame (as luaL_where gives a C library's errors)
function M.where()
  local level = 2
  while true do
    local info = getinfo(level, "Sl")
    if not info then return "" end
    if info.what ~= "C" and info.what ~= "tail" and info.source ~= INTERNAL then
      return info.short_src .. ":" .. info.currentline .. ":"
    end
    level = level + 1
  end
end
M.null = cjson_null
M.gc = function() collectgarbage("step", 200) end
sethook()
return M
"""


def available():
    """Whether lupa is installed (the `server` extra)."""
    return lua51 is not None


class LuaRuntime:
    """One Lua 5.1 state with the sandbox. `callbacks` provides the Python side of
    redis.*: call, pcall, acl_check, log, setresp, set_repl, sha1hex (which raise
    CallError for a Lua error and nothing else), and tick() -> None or an error text
    (never raises). `libs` is a lualibs.Libraries (cjson, bit, cmsgpack)."""

    def __init__(self, callbacks, libs):
        self.lua = lua51.LuaRuntime(encoding=None, register_eval=False, register_builtins=False,
                                    unpack_returned_tuples=True, max_memory=MAX_MEMORY,
                                    attribute_filter=_attribute_filter)
        tables = {name: self.lua.table_from(funcs) for name, funcs in libs.tables().items()}
        py = self.lua.table_from({
            b"call": callbacks.call, b"pcall": callbacks.pcall, b"acl_check": callbacks.acl_check,
            b"tick": callbacks.tick,
            b"log": callbacks.log, b"setresp": callbacks.setresp, b"sha1hex": callbacks.sha1hex,
            b"set_repl": callbacks.set_repl,
            b"cjson": tables["cjson"], b"bit": tables["bit"], b"cmsgpack": tables["cmsgpack"],
        })
        loader = self.lua.execute("return loadstring(...)", _BOOTSTRAP.encode(), INTERNAL_CHUNK.encode())
        if loader is None:
            raise RuntimeError("the Lua sandbox does not compile")
        m = loader(py, HOOK_COUNT, INTERNAL_CHUNK.encode(), REDIS_VERSION.encode(), REDIS_VERSION_NUM)
        self.lua.execute("python = nil")   # lupa's Python bridge: unreachable from scripts anyway
        self._compile = m[b"compile"]
        self.run_eval = m[b"run_eval"]            # (f, keys table, argv table) -> ok, result or error table
        self.run_function = m[b"run_function"]    # (f, keys table, args table) -> ok, result or error table
        self.load_library = m[b"load_library"]    # (chunk) -> ok, list of functions or error table
        self.fields = m[b"fields"]                # (table) -> err, ok, double, big_number, verbatim, map, set
        self.array = m[b"array"]                  # (table) -> plain copy of t[1..n], n
        self.verbatim = m[b"verbatim"]            # (table) -> format, string
        self.is_null = m[b"is_null"]              # (value) -> whether it is cjson.null
        self.where = m[b"where"]                  # () -> b"user_script:3:" of the running script
        self.null = m[b"null"]                    # cjson.null
        self.gc = m[b"gc"]                        # a step of garbage collection
        self.table = self.lua.table_from          # Python list/dict -> Lua table
        libs.bind(self)

    def compile(self, text, chunkname, kind="eval"):
        """(function, None) or (None, Lua's error message as text)."""
        res = self._compile(text, chunkname.encode(), kind.encode())
        f, err = res if isinstance(res, tuple) else (res, None)
        if f is None:
            return None, (err or b"").decode("utf-8", "replace")
        return f, None
