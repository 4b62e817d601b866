"""Documents as stored values: validation and msgpack encoding.

A stored document is one msgpack map (docs/format/keys.md, "Document record"). Values map as
    None, bool, int (64-bit signed), float, str, bytes, list, dict    msgpack's own types
    ObjectId                                                          ext type 1: the 12 bytes
    datetime                                                          ext type 2: i64 big-endian,
                                                                      milliseconds since the epoch (UTC)
Datetimes are stored to the millisecond, like MongoDB, and read back naive in UTC (as pymongo
returns them by default); an aware datetime is converted to UTC.
"""
import datetime
import struct
import threading

import msgpack

from .errors import InvalidDocument, InvalidDocumentType
from .objectid import ObjectId, objectid_from_bytes

EXT_OBJECTID = 1                  # msgpack ext type of an ObjectId
EXT_DATETIME = 2                  # msgpack ext type of a datetime
MAX_DOCUMENT_SIZE = 16 << 20      # bytes of an encoded document (MongoDB's limit)
INT64_MIN, UINT64_MAX = -(1 << 63), (1 << 64) - 1  # msgpack's integer range

EPOCH = datetime.datetime(1970, 1, 1)
_I64 = struct.Struct(">q")
_MS = datetime.timedelta(milliseconds=1)
_NoneType = type(None)
# value types stored as they are (dict, list and int are checked further)
_PLAIN = frozenset((str, float, bool, _NoneType, bytes, ObjectId, datetime.datetime))


def datetime_ms(value):
    """Milliseconds since the epoch of a datetime (naive = UTC), truncated like MongoDB."""
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def datetime_from_ms(ms):
    return EPOCH + datetime.timedelta(milliseconds=ms)


def _default(value):
    t = type(value)
    if t is ObjectId:
        return _ext(EXT_OBJECTID, value.binary)
    if t is datetime.datetime:
        return _ext(EXT_DATETIME, _I64.pack(datetime_ms(value)))
    if isinstance(value, dict) and t is not dict:
        value = dict(value)            # a dict subclass (OrderedDict, ...): stored as a plain map
        check_document(value)
        return value
    raise TypeError(f"cannot store a value of type {t.__name__}")


def _ext(code, data):
    # msgpack.ExtType's own __new__ re-checks its arguments in Python; ours are known good
    return tuple.__new__(msgpack.ExtType, (code, data))


def _ext_hook(code, data):
    if code == EXT_OBJECTID:
        return objectid_from_bytes(data)
    if code == EXT_DATETIME:
        return EPOCH + datetime.timedelta(milliseconds=_I64.unpack(data)[0])
    return msgpack.ExtType(code, data)


def pack(doc):
    """The msgpack bytes of a document whose field names check_document accepted. Values of a
    type documents cannot hold (tuples and bytearrays included) raise InvalidDocumentType naming
    the field; integers outside [-2**63, 2**64) raise InvalidDocument."""
    packer = _packers.__dict__.get("packer")
    if packer is None:
        packer = _packers.packer = msgpack.Packer(default=_default, use_bin_type=True, strict_types=True)
    try:
        data = packer.pack(doc)
    except (TypeError, OverflowError, ValueError):
        check_values(doc, "")
        raise
    if len(data) > MAX_DOCUMENT_SIZE:
        raise InvalidDocument(f"document is {len(data)} bytes encoded; the limit is {MAX_DOCUMENT_SIZE}")
    return data


_packers = threading.local()        # .packer: this thread's msgpack.Packer (a Packer is not thread-safe)
_MAP_HEADERS = {0xde: 3, 0xdf: 5}   # msgpack map16 / map32: header bytes
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_ID_FIELD = b"\xa3_id\xc7\x0c\x01"  # fixstr "_id", then ext8 of 12 bytes, type EXT_OBJECTID


def pack_with_new_id(doc, oid_bytes):
    """pack({"_id": ObjectId(oid_bytes), **doc}) for a doc without "_id", without building that
    dict: the map header is rewritten for one more field and the _id field put first."""
    data = pack(doc)
    first = data[0]
    if 0x80 <= first <= 0x8f:
        n, body = first & 0x0F, data[1:]
    else:
        size = _MAP_HEADERS[first]
        n = (_U16 if size == 3 else _U32).unpack(data[1:size])[0]
        body = data[size:]
    n += 1
    if n < 16:
        head = bytes((0x80 | n,))
    elif n < 65536:
        head = b"\xde" + _U16.pack(n)
    else:
        head = b"\xdf" + _U32.pack(n)
    return head + _ID_FIELD + oid_bytes + body


def pack_value(value):
    """msgpack bytes of any storable value (catalog records, ids)."""
    return msgpack.packb(value, default=_default, use_bin_type=True)


def unpack(data):
    """The document (or value) stored as `data`."""
    return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=False)


def check_document(doc):
    """Raise InvalidDocument (naming the field path) unless every field name in `doc` is a string
    that neither starts with '$' nor contains '.'. Value types are checked by pack()."""
    if not _names_ok(doc):
        _find_bad_name(doc, "")


_GOOD_NAMES = set()       # tuples of field names already found valid (documents repeat their shape)
_GOOD_LIMIT = 4096


def _names_ok(doc):
    names = tuple(doc)
    if names not in _GOOD_NAMES:
        try:
            joined = "".join(names)
        except TypeError:                 # a field name that is not a string
            return False
        if "." in joined or "$" in joined:
            # "$" is only wrong at the start of a name; look closer
            for name in names:
                if name[:1] == "$" or "." in name:
                    return False
        if len(_GOOD_NAMES) >= _GOOD_LIMIT:
            _GOOD_NAMES.clear()
        _GOOD_NAMES.add(names)
    for value in doc.values():
        t = type(value)
        if t is dict:
            if not _names_ok(value):
                return False
        elif t is list:
            if not _list_ok(value):
                return False
    return True


def _list_ok(items):
    for value in items:
        t = type(value)
        if t is dict:
            if not _names_ok(value):
                return False
        elif t is list:
            if not _list_ok(value):
                return False
    return True


def _find_bad_name(doc, path):
    for name, value in doc.items():
        if type(name) is not str:
            raise InvalidDocument(f"field names must be strings, got {name!r} in {path or 'the document'}")
        where = f"{path}.{name}" if path else name
        if name[:1] == "$" or "." in name:
            raise InvalidDocument(f"field name {where!r} must not start with '$' or contain '.'")
        _find_bad_name_in(value, where)


def _find_bad_name_in(value, where):
    if isinstance(value, dict):
        _find_bad_name(value, where)
    elif type(value) is list:
        for i, item in enumerate(value):
            _find_bad_name_in(item, f"{where}.{i}")


def check_values(value, path):
    """Raise InvalidDocumentType / InvalidDocument for the first value documents cannot hold."""
    t = type(value)
    if t in _PLAIN:
        return
    if t is int:
        if not INT64_MIN <= value <= UINT64_MAX:
            raise InvalidDocument(f"integer at {path!r} does not fit in 64 bits: {value}")
    elif isinstance(value, dict):
        for name, item in value.items():
            check_values(item, f"{path}.{name}" if path else str(name))
    elif t is list:
        for i, item in enumerate(value):
            check_values(item, f"{path}.{i}")
    else:
        raise InvalidDocumentType(f"cannot store a value of type {t.__name__} at {path!r}: documents hold "
                                  f"None, bool, int, float, str, bytes, list, dict, datetime and ObjectId")


def check_value(value, path):
    """Check one value (update operands): its types, and the field names of documents in it."""
    check_values(value, path)
    _find_bad_name_in(value, path)
