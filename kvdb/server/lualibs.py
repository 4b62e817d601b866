"""The libraries Redis gives Lua scripts besides its own API: cjson, bit and
cmsgpack, written in Python over lupa tables (the `lua51` module of lupa ships
none of them).

Each function follows one calling convention, which lua.py wraps in a Lua
closure: it returns (True, value), (True, lua_table, count) for several
results, or (False, message) for an error the closure raises at the script's
line. They never raise into Lua.

Behaviour follows lua-cjson 2.1 and lua-cmsgpack 0.4 as Redis builds them:
cjson numbers use %.14g, an empty table encodes as {}, arrays may have holes
up to the sparse-array rule (more than 10 slots and over half empty is an
error), '/' is escaped; cmsgpack packs integral numbers as integers, other
numbers as float 32 when that loses nothing, tables with keys 1..n as arrays.
"""
import json
import math
import struct

import msgpack

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

    def tables(self):
        """{library name: {function name: callable}} as lua.py expects."""
        g = _guarded
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
        self._encode(args[0], out, 0)
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
        try:
            value = json.loads(text.decode("utf-8", "surrogateescape"))
        except json.JSONDecodeError as e:
            raise _Error(f"Expected value but found invalid token at character {e.pos + 1}") from None
        except RecursionError:
            raise _Error(f"Found too many nested data structures ({MAX_DEPTH + 1})") from None
        return self._to_lua(value, 0)

    def _to_lua(self, v, depth):
        if depth > MAX_DEPTH:
            raise _Error(f"Found too many nested data structures ({depth})")
        if v is None:
            return self.rt.null
        if isinstance(v, str):
            try:
                return v.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                return v.encode("utf-8", "surrogatepass")
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return v if -(1 << 63) <= v < (1 << 63) else float(v)
        if isinstance(v, float):
            return v
        if isinstance(v, list):
            return self.rt.table([self._to_lua(x, depth + 1) for x in v])
        return self.rt.table({self._to_lua(k, depth + 1): self._to_lua(x, depth + 1) for k, x in v.items()})

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
        return self.rt.table(values), len(values)

    def msgpack_unpack_one(self, data=None, offset=0, *rest):
        return self.msgpack_unpack_limit(data, 1, offset)

    def msgpack_unpack_limit(self, data=None, limit=0, offset=0, *rest):
        if not isinstance(limit, (int, float)) or not isinstance(offset, (int, float)):
            raise _Error("Bad data format in input.")
        values, end = self._unpack(data, int(limit), int(offset))
        nxt = -1 if end >= len(data) else end
        return self.rt.table([nxt] + values), 1 + len(values)

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


def _guarded(f):
    """f's results in the (ok, value[, count]) convention; errors become (False, text)."""
    def call(*args):
        try:
            r = f(*args)
        except _Error as e:
            return False, str(e).encode()
        except (RecursionError, MemoryError) as e:
            return False, f"{type(e).__name__}".encode()
        if isinstance(r, tuple):
            return (True,) + r
        return True, r
    return call


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
