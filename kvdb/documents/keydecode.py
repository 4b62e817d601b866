"""Decoding of keycodec's order-preserving value encodings (error messages, explain, tests)."""
import struct

from kvdb.errors import CorruptionError

from .codec import datetime_from_ms
from .keycodec import (TAG_ARRAY, TAG_BOOL, TAG_BYTES, TAG_DATETIME, TAG_NULL, TAG_NUMBER, TAG_OBJECT,
                       TAG_OBJECTID, TAG_STRING, TAG_UNDEFINED, UNDEFINED, invert)
from .objectid import ObjectId

_U64 = struct.Struct(">Q")
_D = struct.Struct(">d")
_SIGN = 1 << 63
_MASK = (1 << 64) - 1


def _string(buf, pos):
    out = bytearray()
    while True:
        i = buf.index(b"\x00", pos)
        out += buf[pos:i]
        if buf[i + 1] == 0xFF:
            out.append(0)
            pos = i + 2
        else:
            return out.decode("utf-8", "surrogatepass"), i + 2


def _number(buf, pos):
    body = buf[pos:pos + 10]
    if body == bytes(10):
        return float("nan"), pos + 10
    bits = _U64.unpack(body[:8])[0]
    bits = bits & ~_SIGN & _MASK if bits & _SIGN else bits ^ _MASK
    f = _D.unpack(_U64.pack(bits))[0]
    rest = int.from_bytes(body[8:], "big")
    if rest or (f.is_integer() and abs(f) < 2 ** 63):
        return int(f) + rest, pos + 10
    return f, pos + 10


def _body(tag, buf, pos):
    if tag == TAG_NULL:
        return None, pos
    if tag == TAG_UNDEFINED:
        return UNDEFINED, pos
    if tag == TAG_NUMBER:
        return _number(buf, pos)
    if tag == TAG_STRING:
        return _string(buf, pos)
    if tag == TAG_OBJECT:
        out = {}
        while buf[pos] != 0:
            vtag = buf[pos]
            name, pos = _string(buf, pos + 1)
            out[name], pos = _body(vtag, buf, pos)
        return out, pos + 1
    if tag == TAG_ARRAY:
        out = []
        while buf[pos] != 0:
            v, pos = decode_value(buf, pos)
            out.append(v)
        return out, pos + 1
    if tag == TAG_BYTES:
        n = int.from_bytes(buf[pos:pos + 4], "big")
        return bytes(buf[pos + 4:pos + 4 + n]), pos + 4 + n
    if tag == TAG_OBJECTID:
        return ObjectId(bytes(buf[pos:pos + 12])), pos + 12
    if tag == TAG_BOOL:
        return buf[pos] == 1, pos + 1
    if tag == TAG_DATETIME:
        return datetime_from_ms((_U64.unpack(buf[pos:pos + 8])[0] - _SIGN)), pos + 8
    raise CorruptionError(f"unknown value tag 0x{tag:02x} in an index key")


def decode_value(buf, pos=0):
    """(value, position after it) of the encoding at buf[pos:]."""
    return _body(buf[pos], buf, pos + 1)


def decode_fields(buf, directions):
    """The values of a compound key's fields (descending fields are inverted first)."""
    values = []
    pos = 0
    for d in directions:
        if d == 1:
            v, pos = decode_value(buf, pos)
        else:
            rest = invert(buf[pos:])
            v, used = decode_value(rest, 0)
            pos += used
        values.append(v)
    return values
