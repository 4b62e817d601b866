"""Where Redis would cut a stream into radix-tree nodes.

Redis keeps a stream's entries in listpacks ("nodes") of at most
stream-node-max-entries entries (deleted ones included) and stream-node-max-bytes
bytes, and approximate trimming (MAXLEN ~, MINID ~) removes whole nodes only. kvdb
stores one record per entry, but numbers each entry with the node Redis would
have put it in, so that `~` trims what Redis trims and XINFO reports Redis's
radix-tree-keys. This module computes a tail node's size in bytes as Redis's
listpack encoding makes it: the master entry (count, deleted, the field names,
a terminator) and per entry its flags, id deltas from the node's first id,
fields (unless the same as the master entry's), values and element count; each
element is an integer when the string reads as one, else a string, plus its
back-length. Stream (streamstore) keeps these figures for the tail node in its meta
record and for each closed node in a node record.
"""
import hashlib
import struct

__all__ = ["master_size", "entry_size", "counts_size", "fields_digest", "LISTPACK_MAX"]

LISTPACK_MAX = 1 << 30       # Redis's STREAM_LISTPACK_MAX_SIZE: stream-node-max-bytes 0 means this
_HEADER = 7                  # listpack header (total bytes u32, element count u16) and end byte
FLAG_SAMEFIELDS = 2


def _backlen(n):
    if n <= 127:
        return 1
    if n < 16383:
        return 2
    if n < 2097151:
        return 3
    if n < 268435455:
        return 4
    return 5


def int_element(v):
    if 0 <= v <= 127:
        n = 1
    elif -4096 <= v <= 4095:
        n = 2
    elif -32768 <= v <= 32767:
        n = 3
    elif -8388608 <= v <= 8388607:
        n = 4
    elif -2147483648 <= v <= 2147483647:
        n = 5
    else:
        n = 9
    return n + _backlen(n)


def _as_int(s):
    """The int64 a listpack stores the string as (Redis's lpStringToInt64), or None."""
    if not s or len(s) > 20:
        return None
    if s == b"0":
        return 0
    body = s[1:] if s[:1] == b"-" else s
    if not body or not (0x31 <= body[0] <= 0x39) or not body.isdigit() or not body.isascii():
        return None
    v = int(s)
    return v if -(1 << 63) <= v < (1 << 63) else None


def str_element(s):
    v = _as_int(s)
    if v is not None:
        return int_element(v)
    n = len(s)
    n += 1 if n <= 63 else 2 if n <= 4095 else 5
    return n + _backlen(n)


_DIGESTS = {}                # recent field lists -> digest (XADDs mostly repeat their fields)


def fields_digest(fields):
    """64 bits naming a list of field names (whether an entry repeats the master's)."""
    key = tuple(fields)
    d = _DIGESTS.get(key)
    if d is None:
        h = hashlib.blake2b(digest_size=8)
        for f in fields:
            h.update(struct.pack(">I", len(f)))
            h.update(f)
        d = struct.unpack(">Q", h.digest())[0]
        if sum(map(len, fields)) <= 1024:      # small lists only: the cache stays small
            if len(_DIGESTS) >= 256:
                _DIGESTS.clear()
            _DIGESTS[key] = d
    return d


def master_size(fields):
    """Bytes of a new node without its count and deleted elements: header, field count,
    field names, terminator."""
    return _HEADER + int_element(len(fields)) + sum(str_element(f) for f in fields) + int_element(0)


def counts_size(live, deleted):
    """Bytes of the master entry's count and deleted elements."""
    return int_element(live) + int_element(deleted)


def _int64(v):
    """v as Redis stores the uint64 difference in an int64 (wrapping)."""
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def entry_size(id_, master_id, fields, values, same):
    """Bytes an entry adds to its node."""
    ms_diff = id_[0] - master_id[0]
    seq_diff = id_[1] - master_id[1]
    if not 0 <= ms_diff <= 127:
        ms_diff = _int64(ms_diff)
    if not 0 <= seq_diff <= 127:
        seq_diff = _int64(seq_diff)
    # flags (0 or SAMEFIELDS: one byte and its back-length)
    n = 2 + (2 if 0 <= ms_diff <= 127 else int_element(ms_diff)) + (2 if 0 <= seq_diff <= 127 else
                                                                      int_element(seq_diff))
    count = len(values) + 3
    if not same:
        n += int_element(len(fields)) + sum(map(str_element, fields))
        count += len(fields) + 1
    n += sum(map(str_element, values))
    return n + int_element(count)
