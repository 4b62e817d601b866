"""The replication stream's bytes (kvdb/server/replication/stream.py) against
docs/format/replication.md: the worked example, and every check a replica makes (R3)."""
import pytest

from kvdb._core.coding import crc32c_of
from kvdb.server.replication import stream

REPLID = "a1" * 20
KEY = bytes.fromhex("01006b6b")                  # server string key "k" in database 0
VALUE = b"s" + bytes(8) + b"v"


def test_the_worked_example_of_the_format_doc():
    head = stream.encode_header(stream.MODE_FULL, REPLID, 7)
    assert head[:10] == b"KVDBREPL\x01F" and head[10:50] == REPLID.encode()
    assert head[50:58] == (7).to_bytes(8, "big") and len(head) == stream.HEADER_SIZE == 62
    assert int.from_bytes(head[58:], "big") == crc32c_of(head[:58])
    snap = stream.frame(stream.SNAPSHOT, stream.encode_ops([(KEY, VALUE, 0)]))
    assert snap[:5] == b"S\x00\x00\x00\x11"
    assert snap[9:] == bytes.fromhex("010401006b6b0a73") + bytes(8) + b"v"
    assert int.from_bytes(snap[5:9], "big") == crc32c_of(snap[9:], crc32c_of(snap[:5]))
    end = stream.end_frame(7, 1)
    assert end[:5] == b"E\x00\x00\x00\x10" and end[9:] == (7).to_bytes(8, "big") + (1).to_bytes(8, "big")
    rec = stream.record_frame(8, [(KEY, b"s" + bytes(8) + b"w", 0)])
    assert rec[:5] == b"R\x00\x00\x00\x19" and rec[9:17] == (8).to_bytes(8, "big")
    assert stream.decode_header(head) == (stream.MODE_FULL, REPLID, 7)
    reader = stream.FrameReader()
    data = snap + end + rec
    got = []
    for i in range(len(data)):                  # a byte at a time: frames come out whole
        got += reader.feed(data[i:i + 1])
    assert [t for t, _ in got] == [stream.SNAPSHOT, stream.END, stream.RECORD]
    assert stream.decode_snapshot(got[0][1]) == [(KEY, VALUE, 0)]
    assert stream.decode_pair(got[1][1], "END") == (7, 1)
    assert stream.decode_record(got[2][1]) == (8, [(KEY, b"s" + bytes(8) + b"w", 0)])


def test_a_position_record_round_trips_and_a_damaged_one_reads_as_none():
    raw = stream.encode_position(REPLID, 12345)
    assert len(raw) == 48 and stream.decode_position(raw) == (REPLID, 12345)
    assert stream.decode_position(raw[:-1]) is None and stream.decode_position(None) is None


@pytest.mark.parametrize("damage", ["magic", "version", "mode", "crc", "short"])
def test_R3_a_damaged_header_is_refused_with_its_reason(damage):
    head = bytearray(stream.encode_header(stream.MODE_CONTINUE, REPLID, 3))
    if damage == "magic":
        head[0:8] = b"+OK\r\n$12"
        match = "not a kvdb server"
    elif damage == "version":
        head[8] = 9
        match = "version 9"
    elif damage == "mode":
        head[9] = ord("Q")
        body = bytes(head[:58])
        head[58:] = crc32c_of(body).to_bytes(4, "big")
        match = "mode"
    elif damage == "crc":
        head[20] ^= 1
        match = "checksum"
    else:
        head = head[:-1]
        match = "61 bytes"
    with pytest.raises(stream.StreamError, match=match):
        stream.decode_header(bytes(head))


@pytest.mark.parametrize("damage", ["payload", "type", "length", "ops"])
def test_R3_a_damaged_frame_is_refused_before_use(damage):
    good = stream.record_frame(5, [(KEY, VALUE, 0)])
    data = bytearray(good)
    if damage == "payload":
        data[-1] ^= 0x40
        match = "checksum mismatch"
    elif damage == "type":
        data[0] = ord("Z")
        match = "frame type"
    elif damage == "length":
        data[1:5] = (1 << 31 | 1).to_bytes(4, "big")
        match = "limit"
    else:
        data = bytearray(stream.frame(stream.RECORD, (5).to_bytes(8, "big") + b"\x07garbage"))
        match = "record frame"
    with pytest.raises(stream.StreamError, match=match):
        for t, payload in stream.FrameReader().feed(bytes(data)):
            stream.decode_record(payload)
