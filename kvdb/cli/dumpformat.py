"""The dump formats read by `kvdb load` and written by `kvdb dump`; the full
description (grammar, fields, worked example, invariants D1-D4) is
docs/format/dump.md, and the format's version is DUMP_VERSION below.

jsonl   one JSON object per line, {"key": B64, "value": B64} or, for a key
        that expires, {"key": B64, "value": B64, "expires_ms": MS}, where B64
        is the standard base64 (RFC 4648, "+/" alphabet, with "=" padding) of
        the raw bytes and MS the absolute expiry in wall-clock milliseconds
        since the Unix epoch; UTF-8, "\\n" line ends, keys in ascending byte
        order. Every byte value round-trips (0x00, 0xff, invalid UTF-8, ...).
msgpack a stream of arrays [key, value] or [key, value, expires_ms]: key and
        value msgpack bin (raw bytes, no encoding), expires_ms a positive
        msgpack int, one after the other with no header.

Neither has a header: a dump is just its records, so `jq`, `head` and
msgpack tools read it directly. The original format (before expiries) is the
same without the expiry member; it is read as keys that never expire.
"""
import base64
import binascii
import json
import os

import msgpack

import kvdb

from .errors import CLIError

DUMP_VERSION = 2    # 1: records without expiries; 2: a record may carry its key's absolute expiry
MAX_EXPIRES_MS = 1 << 62   # as kvdb/_core/database.pyx: a larger expiry is refused
FORMATS = ("jsonl", "msgpack")
_EXT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".msgpack": "msgpack", ".mpk": "msgpack",
        ".msgp": "msgpack", ".mp": "msgpack"}


def format_for_path(path):
    """The format a file name implies, or None."""
    return _EXT.get(os.path.splitext(path or "")[1].lower())


def sniff(stream):
    """Guess the format from the first byte of a buffered binary stream."""
    head = stream.peek(1)[:1] if hasattr(stream, "peek") else b""
    if head in (b"{", b" ", b"\n", b"\r", b"\t"):
        return "jsonl"
    if head and (head[0] & 0xF0 == 0x90 or head[0] in (0xDC, 0xDD)):
        return "msgpack"
    return "jsonl"


class JsonlWriter:
    def __init__(self, out):
        self.out = out

    def write(self, key, value, expires_ms=0):
        b64 = base64.b64encode
        line = b'{"key": "' + b64(key) + b'", "value": "' + b64(value)
        line += b'", "expires_ms": %d}\n' % expires_ms if expires_ms else b'"}\n'
        self.out.write(line)
        return len(line)


class MsgpackWriter:
    def __init__(self, out):
        self.out = out
        self.packer = msgpack.Packer(use_bin_type=True)

    def write(self, key, value, expires_ms=0):
        data = self.packer.pack([key, value, expires_ms] if expires_ms else [key, value])
        self.out.write(data)
        return len(data)


def writer(fmt, out):
    return {"jsonl": JsonlWriter, "msgpack": MsgpackWriter}[fmt](out)


def _b64(text, lineno, field):
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise CLIError(f"line {lineno}: {field} is not valid base64") from None


def _expiry(ms, where):
    """The expiry a record carries: 0 (none) when absent, else a checked positive int."""
    if ms is None:
        return 0
    if type(ms) is not int or not 0 < ms < MAX_EXPIRES_MS:
        raise CLIError(f"{where}: expires_ms must be a positive integer of milliseconds")
    return ms


def read_jsonl(stream):
    """Yield (key, value, expires_ms or 0, bytes consumed so far)."""
    consumed = 0
    for lineno, line in enumerate(stream, 1):
        consumed += len(line)
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise CLIError(f"line {lineno}: not JSON ({e})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("key"), str) or not isinstance(rec.get("value"), str):
            raise CLIError(f'line {lineno}: expected {{"key": base64, "value": base64}}')
        yield (_b64(rec["key"], lineno, "key"), _b64(rec["value"], lineno, "value"),
               _expiry(rec.get("expires_ms"), f"line {lineno}"), consumed)


class _Counting:
    """A binary stream wrapper that counts the bytes read through it."""

    def __init__(self, stream):
        self.stream, self.count = stream, 0

    def read(self, n=-1):
        data = self.stream.read(n)
        self.count += len(data)
        return data


def read_msgpack(stream):
    """Yield (key, value, expires_ms or 0, bytes consumed so far)."""
    limit = kvdb.MAX_KEY_SIZE + kvdb.MAX_VALUE_SIZE + 4096
    counting = _Counting(stream)
    unpacker = msgpack.Unpacker(counting, raw=False, use_list=True, max_buffer_size=limit, max_bin_len=limit)
    n = pos = 0
    try:
        for rec in unpacker:
            n += 1
            pos = unpacker.tell()
            if not (isinstance(rec, list) and len(rec) in (2, 3) and all(isinstance(x, bytes) for x in rec[:2])):
                raise CLIError(f"record {n} (byte {unpacker.tell()}): expected a [key, value] array of two bin "
                               "values, or [key, value, expires_ms]")
            expires = _expiry(rec[2], f"record {n} (byte {unpacker.tell()})") if len(rec) == 3 else 0
            yield rec[0], rec[1], expires, pos
    except (msgpack.UnpackException, ValueError) as e:
        raise CLIError(f"record {n + 1} (byte {pos}): not valid msgpack"
                       f"{': ' + str(e) if str(e) else ''}") from None
    if counting.count > pos:
        raise CLIError(f"record {n + 1} (byte {pos}): truncated msgpack at the end of the input")


def reader(fmt, stream):
    return {"jsonl": read_jsonl, "msgpack": read_msgpack}[fmt](stream)
