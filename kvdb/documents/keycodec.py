"""Order-preserving encoding of document values (docs/format/keys.md, "Value encoding").

encode(v) returns bytes whose bytewise order is MongoDB's order of values:
    undefined(empty array, sort keys only) < null (and missing) < numbers < strings < objects
    < arrays < bytes < ObjectId < bool < datetime
Every encoding starts with a one-byte type tag and is prefix-free (no encoding is a prefix of
another), so encodings concatenate into compound keys that still sort field by field, and a
descending field is its encoding with every byte inverted (invert()).

    TAG   TYPE       BODY
    0x12  undefined  (none)                          an empty array's sort key / index key
    0x14  null       (none)                          None, and a missing field
    0x20  number     8-byte key of the largest double <= v, then u16 v - that double
                                                     (all ints and floats in one family: 1 == 1.0;
                                                     NaN is eight zero bytes, below -inf)
    0x28  string     UTF-8 with 00 -> 00 FF, then 00 00
    0x30  object     per field: value tag, name as a string body, value body; then 00
    0x38  array      per element: its encoding; then 00
    0x40  bytes      u32 length big-endian, then the bytes (MongoDB: shorter binary first)
    0x48  ObjectId   the 12 bytes
    0x50  bool       00 false, 01 true
    0x58  datetime   i64 milliseconds since the epoch, big-endian with the sign bit flipped
"""
import datetime
import math
import struct

from .codec import datetime_ms
from .objectid import ObjectId

TAG_UNDEFINED = 0x12
TAG_NULL = 0x14
TAG_NUMBER = 0x20
TAG_STRING = 0x28
TAG_OBJECT = 0x30
TAG_ARRAY = 0x38
TAG_BYTES = 0x40
TAG_OBJECTID = 0x48
TAG_BOOL = 0x50
TAG_DATETIME = 0x58

END = b"\x00"                     # ends an object or an array (below every tag)
STRING_END = b"\x00\x00"          # ends a string (a 00 inside is written 00 FF)
NULL_KEY = bytes([TAG_NULL])
UNDEFINED_KEY = bytes([TAG_UNDEFINED])


class _Undefined:
    """The key of an empty array in sort keys and index keys (below null, like MongoDB)."""
    __slots__ = ()

    def __repr__(self):
        return "UNDEFINED"


UNDEFINED = _Undefined()

_U64 = struct.Struct(">Q")
_D = struct.Struct(">d")
_NUM_HEAD = bytes([TAG_NUMBER])
_STR_HEAD = bytes([TAG_STRING])
_NAN_BODY = bytes(10)
_SIGN = 1 << 63
_MASK = (1 << 64) - 1
_INVERT = bytes(255 - i for i in range(256))
_NoneType = type(None)


def _double_key(f):
    bits = _U64.unpack(_D.pack(f))[0]
    return _U64.pack(bits ^ _MASK if bits & _SIGN else bits | _SIGN)


def number_body(v):
    """10 bytes: the order-preserving key of a number (int or float, one family)."""
    if type(v) is float:
        if v != v:
            return _NAN_BODY
        if v == 0.0:
            v = 0.0                      # -0.0 == 0.0
        return _double_key(v) + b"\x00\x00"
    f = float(v)
    if f == v:                           # exact (int/float comparison is exact in Python)
        return _double_key(f) + b"\x00\x00"
    if f > v:
        f = math.nextafter(f, -math.inf)
    return _double_key(f) + (v - int(f)).to_bytes(2, "big")


def string_body(s):
    return s.encode("utf-8", "surrogatepass").replace(b"\x00", b"\x00\xff") + STRING_END


_INT_KEYS = {}           # int -> its key (ints repeat: ages, counters, small codes)
_INT_CACHE = 1 << 16     # entries _INT_KEYS may hold


def encode(v):
    """The order-preserving key of one value."""
    t = type(v)
    if t is str:
        return _STR_HEAD + string_body(v)
    if t is int:
        k = _INT_KEYS.get(v)
        if k is None:
            k = _NUM_HEAD + number_body(v)
            if len(_INT_KEYS) < _INT_CACHE:
                _INT_KEYS[v] = k
        return k
    if t is float:
        return _NUM_HEAD + number_body(v)
    if t is _NoneType:
        return NULL_KEY
    if t is bool:
        return b"\x50\x01" if v else b"\x50\x00"
    if t is ObjectId:
        return b"\x48" + v.binary
    if t is dict or isinstance(v, dict):
        parts = [b"\x30"]
        for name, item in v.items():
            e = encode(item)
            parts.append(e[:1])
            parts.append(string_body(name))
            parts.append(e[1:])
        parts.append(END)
        return b"".join(parts)
    if t is list:
        return b"\x38" + b"".join([encode(item) for item in v]) + END
    if t is bytes:
        return b"\x40" + len(v).to_bytes(4, "big") + v
    if t is datetime.datetime:
        return b"\x58" + _U64.pack((datetime_ms(v) + _SIGN) & _MASK)
    if v is UNDEFINED:
        return UNDEFINED_KEY
    raise TypeError(f"cannot encode a value of type {t.__name__}")


def invert(key):
    """A key whose byte order is the reverse of `key`'s (descending index fields)."""
    return key.translate(_INVERT)


# Type brackets: comparisons ($gt, $lt, ...) only match values of the operand's bracket.
RANK_NULL, RANK_NUMBER, RANK_STRING, RANK_OBJECT, RANK_ARRAY, RANK_BYTES, RANK_OBJECTID, RANK_BOOL, \
    RANK_DATETIME = range(1, 10)
_RANKS = {_NoneType: RANK_NULL, int: RANK_NUMBER, float: RANK_NUMBER, str: RANK_STRING, dict: RANK_OBJECT,
          list: RANK_ARRAY, bytes: RANK_BYTES, ObjectId: RANK_OBJECTID, bool: RANK_BOOL,
          datetime.datetime: RANK_DATETIME}


def rank(v):
    """The type bracket of a value (0 for a type documents cannot hold)."""
    r = _RANKS.get(type(v))
    if r is None:
        return RANK_OBJECT if isinstance(v, dict) else 0
    return r


def values_equal(a, b):
    """MongoDB equality: same bracket and equal (1 == 1.0, NaN == NaN, objects in field order)."""
    ta, tb = type(a), type(b)
    if ta is tb and (ta is str or ta is bool or ta is bytes or ta is _NoneType):
        return a == b
    ra, rb = rank(a), rank(b)
    if ra != rb:
        return False
    if ra == RANK_NUMBER:
        return a == b or (a != a and b != b)
    if ra == RANK_OBJECT or ra == RANK_ARRAY or ra == RANK_DATETIME:
        return encode(a) == encode(b)
    return a == b
