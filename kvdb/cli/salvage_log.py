"""Raw readers for `kvdb salvage` shared by both engines: the write-ahead log and the
outcome of a salvage (Salvage). They read files with plain os.pread and never write.

Log (docs/format/wal.md, kvdb/_core/wal.pxd): a 32-byte header ("kvdb-wal", version u32,
salt u32, base_seq u64, reserved u32, crc u32 of bytes [0, 28)), then records: crc u32 of
bytes [4, 28 + length), length u32, seq u64, synced u64, salt u32, payload (operations,
decoded by kvdb._core.wal.decode_ops). Replay stops at the first record that does not
check, as the engines' own recovery does (W2); salvage says where and goes on with what it has.
"""
import os
import struct

from kvdb._core.coding import crc32c_of
from kvdb._core.wal import WAL_MAGIC, decode_ops

WAL_HEADER = struct.Struct("<8sIIQII")        # magic, version, salt, base_seq, reserved, crc
WAL_RECORD_HEAD = struct.Struct("<IIQQI")     # crc, length, seq, synced, salt
WAL_HEADER_CRC_SPAN = WAL_HEADER.size - 4     # the header's crc covers the bytes before it
WAL_VERSION = 2                               # kvdb/_core/wal.pxd WAL_VERSION
assert WAL_HEADER.size == 32 and WAL_RECORD_HEAD.size == 28, "wal.pxd's layout changed: update salvage_log"


class Lost:
    """One damaged region salvage skipped, and the keys it may have held where they are known."""

    def __init__(self, where, what, low=None, high=None, low_open=False, high_open=True):
        self.where = where            # "page 17", "000012.sst block at offset 8192", ...
        self.what = what              # what is wrong with it
        self.low = low                # key bound below it, None = unknown or the start
        self.high = high              # key bound above it, None = unknown or the end
        self.low_open = low_open      # True: low itself is not in the range (an LSM block: after the previous block)
        self.high_open = high_open    # True: high itself is not in the range (a B+Tree page: below the next separator)

    def key_range(self, show):
        """The keys it can have held, as text ("keys unknown" when no bound is known)."""
        if self.low is None and self.high is None:
            return "keys unknown (any)"
        if self.low is not None and self.low == self.high:
            return f"key {show(self.low)}"
        parts = []
        if self.low is not None:
            parts.append(("after " if self.low_open else "from ") + show(self.low))
        if self.high is not None:
            parts.append(("below " if self.high_open else "up to ") + show(self.high))
        return "keys " + " ".join(parts)


class Salvage:
    """What a salvage recovered and what it could not."""

    def __init__(self, engine):
        self.engine = engine   # "btree" or "lsm"
        self.records = {}      # key -> (value, expires_ms or 0): the recovered live keys
        self.lost = []         # [Lost]: damaged pages, blocks, chains and files that were skipped
        self.notes = []        # other things the report must say (log stopped early, stale leaves used, ...)
        self.expired = 0       # recovered keys left out because their expiry had passed
        self.from_log = 0      # commits replayed from the log(s)

    def sorted_records(self):
        """(key, value, expires_ms or 0) in key order."""
        for key in sorted(self.records):
            value, expires = self.records[key]
            yield key, value, expires


def read_log(path, after_seq=0):
    """([(seq, [(key, value-or-None, expires)])] of the records with seq > after_seq, in order,
    problem or None): a whole log file read as recovery would read it, stopping at damage."""
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    if len(data) < WAL_HEADER.size:
        return [], (f"{name}: shorter than its header" if data else None)
    magic, version, salt, base_seq, _reserved, crc = WAL_HEADER.unpack_from(data, 0)
    if data[:WAL_HEADER.size] == bytes(WAL_HEADER.size):
        rest = any(data[WAL_HEADER.size:])
        return [], (f"{name}: zeroed header with records after it; they cannot be verified" if rest else None)
    if magic != WAL_MAGIC or crc != crc32c_of(data[:WAL_HEADER_CRC_SPAN]):
        return [], f"{name}: damaged header; its records cannot be verified and were skipped"
    if version != WAL_VERSION:
        return [], f"{name}: unsupported log version {version}; skipped"
    records, off, expect = [], WAL_HEADER.size, base_seq + 1
    while off + WAL_RECORD_HEAD.size <= len(data):
        rcrc, length, seq, _synced, rsalt = WAL_RECORD_HEAD.unpack_from(data, off)
        end = off + WAL_RECORD_HEAD.size + length
        if rsalt != salt or seq != expect or end > len(data) or rcrc != crc32c_of(data[off + 4:end]):
            if _later_record(data, off + WAL_RECORD_HEAD.size, salt, expect):
                return records, f"{name}: record at offset {off} is damaged; the commits from seq {expect} on were lost"
            return records, None       # the end of this generation (or a torn tail)
        try:
            ops = decode_ops(bytes(data[off + WAL_RECORD_HEAD.size:end]))
        except ValueError:
            return records, f"{name}: record at offset {off} (seq {seq}) does not decode; replay stopped there"
        if seq > after_seq:
            records.append((seq, ops))
        off, expect = end, expect + 1
    return records, None


def _later_record(data, after, salt, expect):
    """True if a record of this generation with a seq past `expect` follows `after` (mid-log damage)."""
    needle = salt.to_bytes(4, "little")
    at = data.find(needle, max(after, WAL_HEADER.size))
    while at >= 0:
        head = at - 24
        if head >= WAL_HEADER.size:
            _c, length, seq, _s, _salt = WAL_RECORD_HEAD.unpack_from(data, head)
            end = head + WAL_RECORD_HEAD.size + length
            if seq > expect and end <= len(data) and _c == crc32c_of(data[head + 4:end]):
                return True
        at = data.find(needle, at + 1)
    return False
