"""The replication stream's bytes: the header a primary sends after KVSYNC, its frames, and
the position record a replica keeps. Documented in docs/format/replication.md, which
this module writes and reads; the version number lives here, once.

    stream = header { frame }
    header = "KVDBREPL" version:u8 mode:u8 replid:40 ascii-hex seq:u64 crc32c:u32
    frame  = type:u8 length:u32 crc32c:u32 payload[length]

Integers are big-endian. A frame's crc32c covers its type, length and payload.
"""
import struct

from kvdb._core.coding import crc32c_of
from kvdb._core.wal import decode_ops, encode_ops

__all__ = ["MAGIC", "VERSION", "HEADER_SIZE", "FRAME_HEADER", "MODE_FULL", "MODE_CONTINUE", "SNAPSHOT", "END",
           "RECORD", "PING", "FAIL", "StreamError", "encode_header", "decode_header", "frame", "record_frame",
           "FrameReader", "POSITION_KEY", "encode_position", "decode_position", "REPLICATION_PREFIX",
           "decode_ops", "encode_ops"]

MAGIC = b"KVDBREPL"
VERSION = 1
MODE_FULL = b"F"            # a snapshot (SNAPSHOT frames, then END) comes before the records
MODE_CONTINUE = b"C"        # records continue right after the replica's position
REPLID_SIZE = 40            # a replication id: 20 random bytes as lower-case hex

_HEADER = struct.Struct(">8sBc40sQ")     # magic version mode replid seq (then the crc32c)
HEADER_SIZE = _HEADER.size + 4
_FRAME = struct.Struct(">cII")           # type length crc32c
FRAME_HEADER = _FRAME.size
_U64 = struct.Struct(">Q")
_U64X2 = struct.Struct(">QQ")

# Frame types.
SNAPSHOT = b"S"    # payload: keys of the snapshot, in the log's op grammar (puts only)
END = b"E"         # payload: seq:u64 count:u64 - the snapshot is the version at seq, of count keys
RECORD = b"R"      # payload: seq:u64 then one commit's ops in the log's op grammar
PING = b"P"        # payload: seq:u64 now_ms:u64 - the primary's newest seq and wall clock
FAIL = b"X"        # payload: UTF-8 text - the primary ends the stream and says why
TYPES = frozenset((SNAPSHOT, END, RECORD, PING, FAIL))

MAX_FRAME = 1 << 31        # a frame's payload is at most this: a receiver buffers no more per frame

# Keys starting with this byte belong to replication: a replica's position record. They are
# never copied from a primary (each replica keeps its own).
REPLICATION_PREFIX = b"\x03"
POSITION_KEY = b"\x03replication position"
_POSITION = struct.Struct(">40sQ")       # replid seq


class StreamError(Exception):
    """Bytes that are not a valid replication stream (a checksum, a type, a length)."""


def encode_header(mode, replid, seq):
    body = _HEADER.pack(MAGIC, VERSION, mode, replid.encode("ascii"), seq)
    return body + crc32c_of(body).to_bytes(4, "big")


def decode_header(raw):
    """(mode, replid, seq) of a header's HEADER_SIZE bytes; StreamError if it does not check out."""
    if len(raw) != HEADER_SIZE:
        raise StreamError(f"stream header is {len(raw)} bytes, not {HEADER_SIZE}")
    magic, version, mode, replid, seq = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise StreamError(f"stream header starts {magic!r}, not {MAGIC!r}: the primary is not a kvdb server")
    if version != VERSION:
        raise StreamError(f"stream version {version}, this server reads version {VERSION}")
    if crc32c_of(raw[:-4]) != int.from_bytes(raw[-4:], "big"):
        raise StreamError("stream header checksum mismatch")
    if mode not in (MODE_FULL, MODE_CONTINUE):
        raise StreamError(f"stream mode {mode!r} is neither F nor C")
    return mode, replid.decode("ascii"), seq


def frame(type_, payload):
    """OverflowError for a payload over MAX_FRAME bytes."""
    if len(payload) > MAX_FRAME:
        raise OverflowError(f"a frame's payload of {len(payload)} bytes passes the {MAX_FRAME}-byte limit")
    head = type_ + len(payload).to_bytes(4, "big")
    crc = crc32c_of(payload, crc32c_of(head))
    return head + crc.to_bytes(4, "big") + payload


def record_frame(seq, ops):
    return frame(RECORD, _U64.pack(seq) + encode_ops(ops))


def ping_frame(seq, now_ms):
    return frame(PING, _U64X2.pack(seq, now_ms))


def end_frame(seq, count):
    return frame(END, _U64X2.pack(seq, count))


def fail_frame(text):
    return frame(FAIL, text.encode("utf-8", "replace"))


class FrameReader:
    """Splits received bytes into checked frames: feed(data) -> [(type, payload)]."""

    def __init__(self):
        self.buf = bytearray()       # received bytes not yet a whole frame

    def feed(self, data):
        buf = self.buf
        buf += data
        out = []
        pos = 0
        n = len(buf)
        while n - pos >= FRAME_HEADER:
            type_, length, crc = _FRAME.unpack_from(buf, pos)
            if type_ not in TYPES:
                raise StreamError(f"frame type {type_!r} is not one of S E R P X")
            if length > MAX_FRAME:
                raise StreamError(f"frame of {length} bytes passes the {MAX_FRAME}-byte limit")
            end = pos + FRAME_HEADER + length
            if end > n:
                break
            payload = bytes(buf[pos + FRAME_HEADER:end])
            if crc32c_of(payload, crc32c_of(bytes(buf[pos:pos + 5]))) != crc:
                raise StreamError(f"frame {type_.decode()} of {length} bytes: checksum mismatch")
            out.append((type_, payload))
            pos = end
        if pos:
            del buf[:pos]
        return out


def decode_record(payload):
    """(seq, ops) of a RECORD payload."""
    if len(payload) < 8:
        raise StreamError("record frame shorter than its seq")
    try:
        return _U64.unpack_from(payload)[0], decode_ops(payload[8:])
    except ValueError as e:
        raise StreamError(f"record frame: {e}") from None


def decode_snapshot(payload):
    try:
        return decode_ops(payload)
    except ValueError as e:
        raise StreamError(f"snapshot frame: {e}") from None


def decode_pair(payload, what):
    if len(payload) != 16:
        raise StreamError(f"{what} frame is {len(payload)} bytes, not 16")
    return _U64X2.unpack(payload)


def encode_position(replid, seq):
    return _POSITION.pack(replid.encode("ascii"), seq)


def decode_position(raw):
    """(replid, seq) of a position record, or None when it does not decode (a full sync follows)."""
    if raw is None or len(raw) != _POSITION.size:
        return None
    replid, seq = _POSITION.unpack(raw)
    try:
        return replid.decode("ascii"), seq
    except UnicodeDecodeError:
        return None
