"""An entry's record, the value of its E key: a fixed header, the tag, then the value's bytes.

    OFFSET SIZE  FIELD
    0      1     flags: value mode (bits 0-2), HAS_EXPIRE (0x10), HAS_TAG (0x20)
    1      1     key kind (keys.KIND_*): an int key from the float of the same value
    2      8     expire_time, f64 big-endian, seconds since the epoch (0.0 without HAS_EXPIRE)
    10     8     store_time, f64 big-endian: when the value was last set
    18     8     rowid, u64 big-endian: the entry's position in insertion order (its R key)
    26     8     indexed order, u64 big-endian: where the entry's O key is (<= its true order)
    34     5+n   only with HAS_TAG: tag kind u8, n u32, the encoded tag (keys.encode_tag)
    ...          the value: bytes as is, str as UTF-8, int as i64, float as f64, else a pickle

Values follow diskcache's rules: exact int (64 bits), float, str and bytes are stored natively,
everything else (bool, big ints, containers, objects) pickled. docs/format/cache.md, "Records".
"""
import io
import pickle
import struct

from kvdb.cache.keys import tag_of

HEADER = struct.Struct(">BBddQQ")       # flags, key kind, expire_time, store_time, rowid, indexed order
HEADER_SIZE = HEADER.size               # 34
TAG_HEADER = struct.Struct(">BI")       # tag kind, tag length
EXPIRE_AT = 2                           # offset of expire_time
STORE_AT = 10                           # offset of store_time
ROWID_AT = 18                           # offset of rowid
ORDER_AT = 26                           # offset of the indexed order

MODE_BYTES, MODE_STR, MODE_INT, MODE_FLOAT, MODE_PICKLE = range(5)
MODE_MASK = 0x07
HAS_EXPIRE = 0x10
HAS_TAG = 0x20

F64 = struct.Struct(">d")
I64 = struct.Struct(">q")
U64 = struct.Struct(">Q")
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def encode_value(value, protocol):
    """(mode, payload) for `value`; a value that cannot be pickled raises pickle's error."""
    kind = type(value)
    if kind is bytes:
        return MODE_BYTES, value
    if kind is str:
        return MODE_STR, value.encode("utf-8", "surrogatepass")
    if kind is int and _INT64_MIN <= value <= _INT64_MAX:
        return MODE_INT, I64.pack(value)
    if kind is float:
        return MODE_FLOAT, F64.pack(value)
    return MODE_PICKLE, pickle.dumps(value, protocol)


def encode_record(mode, payload, key_kind, expire_time, store_time, rowid, order, tag_kind=0, etag=None):
    """The record of an entry; expire_time None is no expiry, etag None no tag."""
    flags = mode
    if expire_time is None:
        expire_time = 0.0
    else:
        flags |= HAS_EXPIRE
    head = HEADER.pack(flags | (HAS_TAG if etag is not None else 0), key_kind, expire_time, store_time, rowid,
                       order)
    if etag is None:
        return head + payload
    return head + TAG_HEADER.pack(tag_kind, len(etag)) + etag + payload


def payload_at(record):
    """Where the value's bytes start in `record`."""
    if record[0] & HAS_TAG:
        return HEADER_SIZE + TAG_HEADER.size + TAG_HEADER.unpack_from(record, HEADER_SIZE)[1]
    return HEADER_SIZE


def decode_payload(mode, record, at):
    """The value stored in `record` from offset `at` in `mode`."""
    if mode == MODE_BYTES:
        return record[at:]
    if mode == MODE_STR:
        return record[at:].decode("utf-8", "surrogatepass")
    if mode == MODE_INT:
        return I64.unpack_from(record, at)[0]
    if mode == MODE_FLOAT:
        return F64.unpack_from(record, at)[0]
    return pickle.loads(memoryview(record)[at:])


def value_of(record):
    return decode_payload(record[0] & MODE_MASK, record, payload_at(record))


def expire_time_of(record):
    """The entry's expire_time, None if it never expires."""
    return F64.unpack_from(record, EXPIRE_AT)[0] if record[0] & HAS_EXPIRE else None


def store_time_of(record):
    return F64.unpack_from(record, STORE_AT)[0]


def rowid_of(record):
    return U64.unpack_from(record, ROWID_AT)[0]


def indexed_order_of(record):
    return U64.unpack_from(record, ORDER_AT)[0]


def with_indexed_order(record, order):
    """`record` with its O key moved to `order` (eviction's repair of a lagging O key)."""
    return record[:ORDER_AT] + U64.pack(order) + record[ORDER_AT + 8:]


def tag_fields(record):
    """(tag kind, encoded tag), or (0, None) for an untagged entry."""
    if not record[0] & HAS_TAG:
        return 0, None
    kind, size = TAG_HEADER.unpack_from(record, HEADER_SIZE)
    at = HEADER_SIZE + TAG_HEADER.size
    return kind, record[at:at + size]


def with_expire(record, expire_time):
    """`record` with another expire_time (None: none): touch's rewrite."""
    flags = record[0] & ~HAS_EXPIRE
    if expire_time is None:
        expire_time = 0.0
    else:
        flags |= HAS_EXPIRE
    return bytes([flags]) + record[1:EXPIRE_AT] + F64.pack(expire_time) + record[EXPIRE_AT + 8:]


def file_value(mode, record, at):
    """What get(read=True) returns: the value's bytes as a binary file object (BytesIO)."""
    if mode == MODE_BYTES:
        return io.BytesIO(record[at:])
    return decode_payload(mode, record, at)


def tag_value(record):
    """The entry's tag, None if it has none."""
    kind, etag = tag_fields(record)
    return None if etag is None else tag_of(etag, kind)


def record_problem(record):
    """Why `record` is not a well-formed record (C1), or None; pickles are not unpickled."""
    if len(record) < HEADER_SIZE:
        return f"record of {len(record)} bytes, shorter than its {HEADER_SIZE}-byte header"
    mode = record[0] & MODE_MASK
    if mode > MODE_PICKLE or record[0] & ~(MODE_MASK | HAS_EXPIRE | HAS_TAG):
        return f"flags {record[0]:#x} name no value mode"
    at = HEADER_SIZE
    if record[0] & HAS_TAG:
        if len(record) < HEADER_SIZE + TAG_HEADER.size:
            return "record too short for its tag header"
        at = payload_at(record)
        if at > len(record):
            return "tag runs past the record's end"
    if mode in (MODE_INT, MODE_FLOAT) and len(record) - at != 8:
        return f"a number of {len(record) - at} bytes, not 8"
    if mode == MODE_STR:
        try:
            record[at:].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return "str value is not UTF-8"
    return None
