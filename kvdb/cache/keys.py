"""Cache keys and tags as kvdb keys: an encoding whose byte order is diskcache's key order.

diskcache keeps a key in an SQLite column and compares keys as SQLite does: numbers (int and float
compared by value, so 1 and 1.0 are one key) before text (UTF-8, bytewise) before blobs (bytewise,
shorter first; pickled keys are blobs too, after a raw blob of the same bytes). The encoded key
("ekey", the whole E key) keeps that order, so iterkeys() and the queue's range scans are kvdb
scans. Only exact types are native, as in diskcache: a bool, a str subclass or an int outside
64 bits is pickled. Layout: docs/format/cache.md, "Keys".
"""
import pickle
import struct

from kvdb.cache.layout import ENTRY, float_of_sortable, sortable_float

NUMBER = 0x10               # E 10 value:f64s delta:u64   int or float, by value
TEXT = 0x20                 # E 20 utf-8                  str
BLOB = 0x30                 # E 30 escaped 00 raw:u8      bytes (raw=1) or a pickle (raw=0)

# What the key was, stored beside the entry (the record's flags and the R index's value): the
# encoding cannot tell an int from the float of the same value, since they are one key.
KIND_INT, KIND_FLOAT, KIND_STR, KIND_BYTES, KIND_PICKLE = range(5)

# Keys always pickle with this protocol, whatever disk_pickle_protocol says, so that every open
# finds a pickled key under the same bytes.
KEY_PICKLE_PROTOCOL = 5

# The longest encoded key: kvdb keys are at most 16384 bytes, and index keys add up to 17 bytes
# (and a tag) to the encoded key.
MAX_ENCODED_KEY = 16384 - 1024

_TEXT_PREFIX = ENTRY + bytes([TEXT])   # also used inline by Cache.get
_BLOB_PREFIX = ENTRY + bytes([BLOB])
_NUMBER = struct.Struct(">BBQQ")
_ENTRY_BYTE = ENTRY[0]
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_DELTA_BIAS = 1 << 63
_RAW_END = b"\x00\x01"
_PICKLE_END = b"\x00\x00"


def _blob(payload, end):
    if b"\x00" in payload:
        payload = payload.replace(b"\x00", b"\x00\xff")
    return _BLOB_PREFIX + payload + end


def _number(value):
    approx = float(value)
    return _NUMBER.pack(_ENTRY_BYTE, NUMBER, sortable_float(approx), value - int(approx) + _DELTA_BIAS)


def _float(value):
    return _NUMBER.pack(_ENTRY_BYTE, NUMBER, sortable_float(value), _DELTA_BIAS)


def entry_key(key):
    """The E key of cache key `key` (ValueError if it encodes to more than MAX_ENCODED_KEY)."""
    kind = type(key)
    if kind is str:
        ekey = _TEXT_PREFIX + key.encode("utf-8", "surrogatepass")
    elif kind is bytes:
        ekey = _blob(key, _RAW_END)
    elif kind is int and _INT64_MIN <= key <= _INT64_MAX:
        return _number(key)
    elif kind is float and key == key:
        return _float(key)
    else:
        ekey = _blob(pickle.dumps(key, KEY_PICKLE_PROTOCOL), _PICKLE_END)
    if len(ekey) > MAX_ENCODED_KEY:
        raise ValueError(f"cache key too long: it encodes to {len(ekey)} bytes, at most {MAX_ENCODED_KEY} fit")
    return ekey


def key_kind(key):
    """The KIND_* of `key`, as entry_key() encodes it."""
    kind = type(key)
    if kind is str:
        return KIND_STR
    if kind is bytes:
        return KIND_BYTES
    if kind is int and _INT64_MIN <= key <= _INT64_MAX:
        return KIND_INT
    if kind is float and key == key:
        return KIND_FLOAT
    return KIND_PICKLE


def key_of(ekey, kind):
    """The cache key that entry_key() encoded as `ekey`; `kind` tells an int from a float."""
    tag = ekey[1]
    if tag == TEXT:
        return ekey[2:].decode("utf-8", "surrogatepass")
    if tag == BLOB:
        payload = ekey[2:-2]
        if b"\x00" in payload:
            payload = payload.replace(b"\x00\xff", b"\x00")
        return payload if ekey[-1] == 1 else pickle.loads(payload)
    _, _, approx, delta = _NUMBER.unpack(ekey)
    value = float_of_sortable(approx)
    if kind == KIND_FLOAT:
        return value
    return int(value) + delta - _DELTA_BIAS


def ekey_problem(ekey):
    """Why `ekey` is not an encoded key (C1), or None; pickles are not unpickled."""
    if len(ekey) < 2 or ekey[0] != _ENTRY_BYTE:
        return "not an E key"
    if len(ekey) > MAX_ENCODED_KEY:
        return f"longer than {MAX_ENCODED_KEY} bytes"
    if ekey[1] == NUMBER:
        return None if len(ekey) == _NUMBER.size else f"a number key of {len(ekey)} bytes"
    if ekey[1] == TEXT:
        try:
            ekey[2:].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return "str key is not UTF-8"
        return None
    if ekey[1] == BLOB:
        if ekey[-2:] not in (_RAW_END, _PICKLE_END) or len(ekey) < 4:
            return "bytes key without its end"
        return None
    return f"key type {ekey[1]:#x} is none of number, str, bytes"


def encode_tag(tag):
    """A tag as bytes: tags are encoded like keys (without the E prefix); None is no tag."""
    return entry_key(tag)[1:]


def tag_of(etag, kind):
    """The tag that encode_tag() gave `etag`; `kind` (key_kind of the tag) as for keys."""
    return key_of(ENTRY + etag, kind)
