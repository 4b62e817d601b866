# Codecs: how a handle turns the Python keys and values its caller gives into the bytes the
# engine stores, and back (included into database.pyx). kvdb.open(path, keys=..., values=...) and
# db.namespace(name, keys=..., values=...) choose them; raw bytes (no codec, None) is the default
# and the fast path: the handles test `codec is None` and go straight to as_key/as_value.
#
# Key codecs keep order: the engine orders keys bytewise, and a codec's encoding sorts as its
# Python values do (str: by code point, as UTF-8 does; int: numerically, KEY_INT below), so scans,
# cursors and ranges over encoded keys come out in the caller's order.

import json as _json
import pickle as _pickle

import msgpack as _msgpack

KEY_CODECS = ("bytes", "str", "int")                           # names kvdb.open(keys=) accepts
VALUE_CODECS = ("bytes", "str", "msgpack", "json", "pickle")   # names kvdb.open(values=) accepts
INT_KEY_MAX_BYTES = 126      # magnitude bytes an int key may have (|n| < 2**1008)


cdef class Codec:
    """One direction pair: encode(obj) -> bytes for the engine, decode(bytes) -> obj."""
    cdef readonly str name       # the name kvdb.open took ("str", "json", ...); constant

    cdef bytes encode(self, object obj):
        raise NotImplementedError

    cdef object decode(self, bytes data):
        raise NotImplementedError


cdef class StrCodec(Codec):
    """str <-> UTF-8. As a key codec it keeps order: UTF-8 sorts bytewise as code points do."""
    cdef str role                # "key" or "value": what the TypeError names; constant

    cdef bytes encode(self, object obj):
        if type(obj) is not str:
            if not isinstance(obj, str):
                raise TypeError(f"{self.role} must be str (this handle's codec is \"str\"), not {type(obj).__name__}")
        return (<str>obj).encode("utf-8", "surrogatepass")

    cdef object decode(self, bytes data):
        return data.decode("utf-8", "surrogatepass")


cdef class IntKeyCodec(Codec):
    """int <-> bytes whose bytewise order is numeric order (KEY_INT, docs/format/namespaces.md):
    n >= 0 is 0x80+L then n's L big-endian bytes (L minimal, 0 for zero); n < 0 is 0x7F-L then
    the L bytes of (256**L - 1 - |n|), so a longer magnitude sorts lower and, within one length,
    a larger magnitude sorts lower."""

    cdef bytes encode(self, object obj):
        cdef object size             # a Python int: 1 << (8 * size) must not be C arithmetic
        if type(obj) is not int and (isinstance(obj, bool) or not isinstance(obj, int)):
            raise TypeError(f"key must be int (this handle's key codec is \"int\"), not {type(obj).__name__}")
        n = int(obj)
        m = -n if n < 0 else n
        size = (m.bit_length() + 7) // 8
        if size > INT_KEY_MAX_BYTES:
            raise ValueError(f"int key {n if size < 40 else '...'} is too large: its magnitude needs {size} bytes, "
                             f"at most {INT_KEY_MAX_BYTES}")
        if n >= 0:
            return bytes((0x80 + size,)) + m.to_bytes(size, "big")
        return bytes((0x7F - size,)) + ((1 << (8 * size)) - 1 - m).to_bytes(size, "big")

    cdef object decode(self, bytes data):
        cdef int tag
        cdef object size             # a Python int, as in encode
        if not data:
            raise CorruptionError("an int key is empty")
        tag = data[0]
        size = tag - 0x80 if tag >= 0x80 else 0x7F - tag
        if size != len(data) - 1:
            raise CorruptionError(f"int key {data[:16].hex()} is not an int key encoding (tag {tag:#x}, "
                                  f"{len(data) - 1} bytes)")
        body = int.from_bytes(data[1:], "big")
        return body if tag >= 0x80 else -((1 << (8 * size)) - 1 - body)


cdef class MsgpackCodec(Codec):
    cdef bytes encode(self, object obj):
        try:
            return _msgpack.packb(obj, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as e:
            raise TypeError(f"value cannot be stored with the \"msgpack\" codec: {e}") from None

    cdef object decode(self, bytes data):
        return _msgpack.unpackb(data, raw=False, strict_map_key=False)


cdef class JsonCodec(Codec):
    cdef bytes encode(self, object obj):
        try:
            return _json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise TypeError(f"value cannot be stored with the \"json\" codec: {e}") from None

    cdef object decode(self, bytes data):
        return _json.loads(data)


cdef class PickleCodec(Codec):
    """pickle: any picklable object. Unpickling runs code named by the data: open only databases
    you trust with values="pickle" (README, Codecs)."""

    cdef bytes encode(self, object obj):
        return _pickle.dumps(obj, protocol=_pickle.HIGHEST_PROTOCOL)

    cdef object decode(self, bytes data):
        return _pickle.loads(data)


# name -> the codec class, per role; raw bytes ("bytes") is None
_KEY_CODEC_TYPES = {"str": StrCodec, "int": IntKeyCodec}
_VALUE_CODEC_TYPES = {"str": StrCodec, "msgpack": MsgpackCodec, "json": JsonCodec, "pickle": PickleCodec}


cdef Codec make_codec(object name, str role, tuple accepted, dict types):
    """The codec called `name` for keys or values (`role`), None for raw bytes; TypeError or
    ValueError naming the accepted ones."""
    cdef Codec c
    if name is None or (type(name) is str and name == "bytes"):
        return None
    if not isinstance(name, str):
        raise TypeError(f"{role}s must be one of {', '.join(map(repr, accepted))}, not {type(name).__name__}")
    if name not in types:
        raise ValueError(f"unknown {role} codec {name!r}; {role}s= accepts {', '.join(map(repr, accepted))}")
    c = types[name]()
    c.name = name
    if isinstance(c, StrCodec):
        (<StrCodec>c).role = role
    return c


cdef Codec key_codec(object name):
    return make_codec(name, "key", KEY_CODECS, _KEY_CODEC_TYPES)


cdef Codec value_codec(object name):
    return make_codec(name, "value", VALUE_CODECS, _VALUE_CODEC_TYPES)


cdef inline bytes enc_key(Codec kc, object key):
    """The stored form of a caller's key (checked: 1..MAX_KEY_SIZE bytes)."""
    if kc is None:
        return as_key(key)
    return as_key(kc.encode(key))


cdef inline bytes enc_value(Codec vc, object value):
    if vc is None:
        return as_value(value)
    return as_value(vc.encode(value))


cdef inline object dec_key(Codec kc, bytes key):
    return key if kc is None else kc.decode(key)


cdef inline object dec_value(Codec vc, object value):
    """The caller's form of a stored value; None stays None (absent)."""
    if vc is None or value is None:
        return value
    return vc.decode(<bytes>value)


def codec_name(Codec c):
    """The name a codec was made from ("bytes" for raw)."""
    return "bytes" if c is None else c.name
