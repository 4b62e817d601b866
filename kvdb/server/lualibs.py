"""The libraries Redis gives Lua scripts besides its own API: cjson, bit and
cmsgpack, written in Python over lupa tables (the `lua51` module of lupa ships
none of them).

Scripts call these Python functions directly (see lua.py): several results are
a Python tuple, and an error raises lua.CallError with "ERR <script>:<line>:
<message>", the text Redis gives for an error of these C libraries.

Behaviour follows lua-cjson 2.1 and lua-cmsgpack 0.4 as Redis builds them:
cjson numbers use %.14g, an empty table encodes as {}, arrays may have holes
up to the sparse-array rule (more than 10 slots and over half empty is an
error), '/' is escaped; cmsgpack packs integral numbers as integers, other
numbers as float 32 when that loses nothing, tables with keys 1..n as arrays.
"""
import math
import re
import struct

import msgpack

from .lua import CallError

__all__ = ["Libraries"]

MAX_DEPTH = 1000          # cjson's nesting limit, both ways
MSGPACK_MAX_NESTING = 16  # lua-cmsgpack encodes deeper tables as nil

_ESCAPES = {0x22: b'\\"', 0x5C: b"\\\\", 0x2F: b"\\/", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r",
            0x09: b"\\t", 0x7F: b"\\u007f"}
_ESCAPE_TABLE = [_ESCAPES.get(i, (b"\\u%04x" % i) if i < 0x20 else bytes((i,))) for i in range(256)]


class _Error(Exception):
    """A library error; its text goes to the script as a Lua error."""


def _fmt14(x):
    return (b"%.14g" % x)


def _lua_type(v):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, bytes):
        return "string"
    t = type(v).__name__
    if t == "_LuaTable":
        return "table"
    if t == "_LuaFunction":
        return "function"
    if t == "_LuaThread":
        return "thread"
    return "userdata"


class Libraries:
    """The Python halves of cjson, bit and cmsgpack for one LuaRuntime; bind() gives
    them the runtime once it exists (table constructor, cjson.null)."""

    def __init__(self):
        self.rt = None   # the lua.LuaRuntime

    def bind(self, rt):
        self.rt = rt

    def _guarded(self, f):
        """f, its errors raised into Lua as CallError at the script's line."""
        def call(*args):
            try:
                return f(*args)
            except _Error as e:
                text = str(e)
            except (RecursionError, MemoryError) as e:
                text = type(e).__name__
            where = self.rt.where()
            raise CallError(b"ERR " + (where + b" " if where else b"") + text.encode())
        return call

    def tables(self):
        """{library name: {function name: callable}} as lua.py expects."""
        g = self._guarded
        return {
            "cjson": {b"encode": g(self.cjson_encode), b"decode": g(self.cjson_decode)},
            "bit": {b"tobit": g(_bit1(lambda a: a)), b"bnot": g(_bit1(lambda a: ~a)),
                    b"band": g(_bitn(lambda a, b: a & b)), b"bor": g(_bitn(lambda a, b: a | b)),
                    b"bxor": g(_bitn(lambda a, b: a ^ b)), b"lshift": g(_shift("lshift")),
                    b"rshift": g(_shift("rshift")), b"arshift": g(_shift("arshift")), b"rol": g(_shift("rol")),
                    b"ror": g(_shift("ror")), b"bswap": g(_bswap), b"tohex": g(_tohex)},
            "cmsgpack": {b"pack": g(self.msgpack_pack), b"unpack": g(self.msgpack_unpack),
                         b"unpack_one": g(self.msgpack_unpack_one), b"unpack_limit": g(self.msgpack_unpack_limit)},
        }

    # -- cjson ----------------------------------------------------------------

    def cjson_encode(self, *args):
        if len(args) != 1:
            raise _Error("bad argument #1 to 'encode' (expected 1 argument)")
        out = []
        try:
            self._encode(args[0], out, 0)
        except RecursionError:
            raise _Error("Cannot serialise, excessive nesting") from None
        return b"".join(out)

    def _encode(self, v, out, depth):
        t = _lua_type(v)
        if t == "string":
            out.append(b'"' + b"".join(_ESCAPE_TABLE[c] for c in v) + b'"')
        elif t == "number":
            if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
                raise _Error("Cannot serialise number: must not be NaN or Inf")
            out.append(_fmt14(v))
        elif t == "boolean":
            out.append(b"true" if v else b"false")
        elif t == "nil":
            out.append(b"null")
        elif t == "table":
            depth += 1
            if depth > MAX_DEPTH:
                raise _Error(f"Cannot serialise, excessive nesting ({depth})")
            items = list(v.items())
            n = _array_length(items)
            if n > 0:
                slots = dict(items)
                out.append(b"[")
                for i in range(1, n + 1):
                    if i > 1:
                        out.append(b",")
                    self._encode(slots.get(i), out, depth)
                out.append(b"]")
            else:
                out.append(b"{")
                for i, (k, val) in enumerate(items):
                    if i:
                        out.append(b",")
                    kt = _lua_type(k)
                    if kt == "string":
                        self._encode(k, out, depth)
                    elif kt == "number":
                        out.append(b'"' + _fmt14(k) + b'"')
                    else:
                        raise _Error(f"Cannot serialise {kt}: table key must be a number or string")
                    out.append(b":")
                    self._encode(val, out, depth)
                out.append(b"}")
        elif t == "userdata" and self.rt.is_null(v):
            out.append(b"null")
        else:
            raise _Error(f"Cannot serialise {t}: type not supported")

    def cjson_decode(self, *args):
        if len(args) != 1:
            raise _Error("bad argument #1 to 'decode' (expected 1 argument)")
        text = args[0]
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            text = _fmt14(text)
        if not isinstance(text, bytes):
            raise _Error(f"bad argument #1 to 'decode' (string expected, got {_lua_type(text)})")
        parser = _JsonParser(text, self.rt)
        try:
            return parser.parse()
        except RecursionError:
            raise _Error(f"Found too many nested data structures ({parser.depth}) at character {parser.i + 1}") from None

    # -- cmsgpack ---------------------------------------------------------------

    def msgpack_pack(self, *args):
        if not args:
            raise _Error("MessagePack pack needs input.")
        out = bytearray()
        for a in args:
            _mp_encode(a, out, 0)
        return bytes(out)

    def _unpack(self, data, limit, offset):
        if not isinstance(data, bytes):
            raise _Error("bad argument #1 to 'unpack' (string expected)")
        unpacker = msgpack.Unpacker(raw=True, strict_map_key=False, max_buffer_size=max(len(data), 1 << 20))
        unpacker.feed(data[offset:])
        values = []
        try:
            while limit <= 0 or len(values) < limit:
                values.append(self._mp_to_lua(unpacker.unpack(), 0))
        except msgpack.OutOfData:
            if unpacker.tell() < len(data) - offset:
                raise _Error("Missing bytes in input.") from None
        except (ValueError, msgpack.UnpackException, TypeError):
            raise _Error("Bad data format in input.") from None
        return values, offset + unpacker.tell()

    def msgpack_unpack(self, data=None, *rest):
        values, _ = self._unpack(data, 0, 0)
        return tuple(values)

    def msgpack_unpack_one(self, data=None, offset=0, *rest):
        return self.msgpack_unpack_limit(data, 1, offset)

    def msgpack_unpack_limit(self, data=None, limit=0, offset=0, *rest):
        if not isinstance(limit, (int, float)) or not isinstance(offset, (int, float)):
            raise _Error("Bad data format in input.")
        values, end = self._unpack(data, int(limit), int(offset))
        nxt = -1 if end >= len(data) else end
        return (nxt, *values)

    def _mp_to_lua(self, v, depth):
        if isinstance(v, (list, tuple)):
            return self.rt.table([self._mp_to_lua(x, depth + 1) for x in v])
        if isinstance(v, dict):
            return self.rt.table({self._mp_to_lua(k, depth + 1): self._mp_to_lua(x, depth + 1) for k, x in v.items()})
        if isinstance(v, int) and not isinstance(v, bool) and not -(1 << 63) <= v < (1 << 63):
            return float(v)
        if isinstance(v, (bytes, bool, int, float)) or v is None:
            return v
        return None   # ext types and timestamps: nil


def _array_length(items):
    """lua-cjson's array test: n when every key is an integer 1..n with no excessive holes,
    0 when the table is an object (or empty); raises for an excessively sparse array."""
    if not items:
        return 0
    top = 0
    for k, _ in items:
        if isinstance(k, bool) or not isinstance(k, (int, float)) or k != int(k) or k < 1:
            return 0
        top = max(top, int(k))
    if top > len(items) * 2 and top > 10:
        raise _Error("Cannot serialise table: excessively sparse array")
    return top


# -- bit (LuaBitOp semantics: 32-bit, results signed) ------------------------------

def _tobit(x, pos, name):
    if isinstance(x, bytes):
        try:
            x = float(x)
        except ValueError:
            x = None
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
        raise _Error(f"bad argument #{pos} to '{name}' (number expected, got {_lua_type(x)})")
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return 0
        x = round(x)
    return x & 0xFFFFFFFF


def _signed(u):
    u &= 0xFFFFFFFF
    return u - (1 << 32) if u >= (1 << 31) else u


def _bit1(op):
    def f(*args):
        return _signed(op(_tobit(args[0] if args else None, 1, "tobit")))
    return f


def _bitn(op):
    def f(*args):
        if not args:
            raise _Error("bad argument #1 (number expected, got no value)")
        acc = _tobit(args[0], 1, "band")
        for i, a in enumerate(args[1:], 2):
            acc = op(acc, _tobit(a, i, "band"))
        return _signed(acc)
    return f


def _shift(kind):
    def f(*args):
        if len(args) < 2:
            raise _Error(f"bad argument #{len(args) + 1} to '{kind}' (number expected, got no value)")
        x = _tobit(args[0], 1, kind)
        n = _tobit(args[1], 2, kind) & 31
        if kind == "lshift":
            r = x << n
        elif kind == "rshift":
            r = x >> n
        elif kind == "arshift":
            r = _signed(x) >> n
        elif kind == "rol":
            r = (x << n) | (x >> ((32 - n) & 31)) if n else x
        else:
            r = (x >> n) | (x << ((32 - n) & 31)) if n else x
        return _signed(r)
    return f


def _bswap(*args):
    x = _tobit(args[0] if args else None, 1, "bswap")
    return _signed(int.from_bytes(x.to_bytes(4, "little"), "big"))


def _tohex(*args):
    x = _tobit(args[0] if args else None, 1, "tohex")
    n = 8 if len(args) < 2 or args[1] is None else _signed(_tobit(args[1], 2, "tohex"))
    upper = n < 0
    n = min(abs(n), 8)
    digits = ("%08X" if upper else "%08x") % x
    return digits[8 - n:].encode()


# -- cmsgpack encoding ------------------------------------------------------------

def _mp_encode(v, out, depth):
    t = _lua_type(v)
    if t == "nil":
        out.append(0xC0)
    elif t == "boolean":
        out.append(0xC3 if v else 0xC2)
    elif t == "number":
        _mp_number(v, out)
    elif t == "string":
        n = len(v)
        if n < 32:
            out.append(0xA0 | n)
        elif n <= 0xFF:
            out += b"\xd9" + bytes((n,))
        elif n <= 0xFFFF:
            out += b"\xda" + struct.pack(">H", n)
        else:
            out += b"\xdb" + struct.pack(">I", n)
        out += v
    elif t == "table" and depth < MSGPACK_MAX_NESTING:
        items = list(v.items())
        keys = [k for k, _ in items]
        n = len(items)
        is_array = n > 0 and all(isinstance(k, int) and not isinstance(k, bool) for k in keys) and \
            sorted(keys) == list(range(1, n + 1))
        if is_array or n == 0:
            if n == 0:
                out.append(0x90)
                return
            slots = dict(items)
            _mp_header(out, n, 0x90, 0xDC, 0xDD)
            for i in range(1, n + 1):
                _mp_encode(slots[i], out, depth + 1)
        else:
            _mp_header(out, n, 0x80, 0xDE, 0xDF)
            for k, val in items:
                _mp_encode(k, out, depth + 1)
                _mp_encode(val, out, depth + 1)
    else:
        out.append(0xC0)


def _mp_header(out, n, fix, b16, b32):
    if n < 16:
        out.append(fix | n)
    elif n <= 0xFFFF:
        out += bytes((b16,)) + struct.pack(">H", n)
    else:
        out += bytes((b32,)) + struct.pack(">I", n)


def _mp_number(v, out):
    if isinstance(v, float) and not (math.isinf(v) or math.isnan(v)) and v == int(v) and -(1 << 63) <= v < (1 << 64):
        v = int(v)
    if isinstance(v, int):
        if v >= 0:
            if v < 128:
                out.append(v)
            elif v <= 0xFF:
                out += b"\xcc" + struct.pack(">B", v)
            elif v <= 0xFFFF:
                out += b"\xcd" + struct.pack(">H", v)
            elif v <= 0xFFFFFFFF:
                out += b"\xce" + struct.pack(">I", v)
            else:
                out += b"\xcf" + struct.pack(">Q", v)
        else:
            if v >= -32:
                out += struct.pack(">b", v)
            elif v >= -128:
                out += b"\xd0" + struct.pack(">b", v)
            elif v >= -32768:
                out += b"\xd1" + struct.pack(">h", v)
            elif v >= -(1 << 31):
                out += b"\xd2" + struct.pack(">i", v)
            else:
                out += b"\xd3" + struct.pack(">q", v)
        return
    f32 = struct.unpack(">f", struct.pack(">f", v))[0] if abs(v) < 3.4e38 or math.isinf(v) or math.isnan(v) else None
    if f32 is not None and (f32 == v or (math.isnan(v) and math.isnan(f32))):
        out += b"\xca" + struct.pack(">f", v)
    else:
        out += b"\xcb" + struct.pack(">d", v)


# -- cjson.decode: lua-cjson's grammar and error messages --------------------------------------

_JSON_NUMBER = re.compile(rb"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_JSON_ESCAPES = {ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("b"): b"\b", ord("f"): b"\f",
                 ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t"}
_TOKEN_NAMES = {"{": "T_OBJ_BEGIN", "}": "T_OBJ_END", "[": "T_ARR_BEGIN", "]": "T_ARR_END", ":": "T_COLON",
                ",": "T_COMMA", "str": "T_STRING", "num": "T_NUMBER", "bool": "T_BOOLEAN", "null": "T_NULL",
                "end": "T_END"}


class _JsonParser:
    def __init__(self, text, rt):
        self.s = text          # the JSON text (bytes)
        self.i = 0             # read position
        self.rt = rt           # for tables and cjson.null
        self.depth = 0         # current nesting

    def token(self):
        """(kind, value, start index); kind "err" carries lua-cjson's message."""
        s, n = self.s, len(self.s)
        i = self.i
        while i < n and s[i] in b" \t\n\r":
            i += 1
        start = i
        if i >= n:
            self.i = i
            return "end", None, start
        ch = s[i:i + 1]
        if ch in b"{}[]:,":
            self.i = i + 1
            return ch.decode(), None, start
        if ch == b'"':
            return self.string(i + 1, start)
        if ch in b"-0123456789.":
            m = _JSON_NUMBER.match(s, i)
            if m is None:
                self.i = i
                return "err", "invalid number", start
            self.i = m.end()
            x = float(m.group())
            return "num", int(x) if x.is_integer() and abs(x) < 2 ** 63 else x, start
        for word, kind, value in ((b"true", "bool", True), (b"false", "bool", False), (b"null", "null", None)):
            if s.startswith(word, i):
                self.i = i + len(word)
                return kind, value, start
        self.i = i
        return "err", "invalid token", start

    def string(self, i, start):
        s, n = self.s, len(self.s)
        out = bytearray()
        while True:
            if i >= n:
                return "err", "unexpected end of string", start
            c = s[i]
            if c == 0x22:
                self.i = i + 1
                return "str", bytes(out), start
            if c != 0x5C:
                out.append(c)
                i += 1
                continue
            if i + 1 >= n:
                return "err", "unexpected end of string", start
            e = s[i + 1]
            if e == ord("u"):
                cp, i = self.unicode(i)
                if cp is None:
                    return "err", "invalid unicode escape code", start
                out += chr(cp).encode("utf-8", "surrogatepass")
                continue
            rep = _JSON_ESCAPES.get(e)
            if rep is None:
                return "err", "invalid escape code", start
            out += rep
            i += 2

    def unicode(self, i):
        s = self.s
        try:
            cp = int(s[i + 2:i + 6], 16)
        except ValueError:
            return None, i
        if len(s[i + 2:i + 6]) != 4:
            return None, i
        i += 6
        if 0xD800 <= cp < 0xDC00:
            if s[i:i + 2] != b"\\u":
                return None, i
            try:
                low = int(s[i + 2:i + 6], 16)
            except ValueError:
                return None, i
            if not 0xDC00 <= low < 0xE000:
                return None, i
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
            i += 6
        elif 0xDC00 <= cp < 0xE000:
            return None, i
        return cp, i

    def fail(self, expected, tok):
        kind, value, start = tok
        found = value if kind == "err" else _TOKEN_NAMES[kind]
        raise _Error(f"Expected {expected} but found {found} at character {start + 1}")

    def parse(self):
        value = self.value(self.token())
        tok = self.token()
        if tok[0] != "end":
            self.fail("the end", tok)
        return value

    def value(self, tok):
        kind, value, start = tok
        if kind in ("str", "num", "bool"):
            return value
        if kind == "null":
            return self.rt.null
        if kind in ("{", "["):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Error(f"Found too many nested data structures ({self.depth}) at character {start + 1}")
            result = self.obj() if kind == "{" else self.arr()
            self.depth -= 1
            return result
        self.fail("value", tok)

    def obj(self):
        d = {}
        tok = self.token()
        if tok[0] == "}":
            return self.rt.table(d)
        while True:
            if tok[0] != "str":
                self.fail("object key string", tok)
            key = tok[1]
            tok = self.token()
            if tok[0] != ":":
                self.fail("colon", tok)
            d[key] = self.value(self.token())
            tok = self.token()
            if tok[0] == "}":
                return self.rt.table(d)
            if tok[0] != ",":
                self.fail("comma or object end", tok)
            tok = self.token()

    def arr(self):
        items = []
        tok = self.token()
        if tok[0] == "]":
            return self.rt.table(items)
        while True:
            items.append(self.value(tok))
            tok = self.token()
            if tok[0] == "]":
                return self.rt.table(items)
            if tok[0] != ",":
                self.fail("comma or array end", tok)
            tok = self.token()
