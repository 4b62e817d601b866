"""A raw pass over the tables (*.sst) of an LSM directory for `kvdb check`:
each table's footer (magic, checksum, version, block handles), then the
checksum of every block -- index, filter, properties and every data block the
index lists -- read straight from the file (the format is in
docs/format/sstable.md and kvdb/_core/lsm/sstable.pxd). Unlike db.verify(), which
stops at the first damage, it goes on, so every damaged table and block is
named; db.verify() then checks what only the engine can (key order, the
manifest's view of each table).

Block: payload, type u8 (0 raw, 1 lz4), crc u32 = CRC-32C(payload + type).
Footer (the last FOOTER_SIZE bytes): index_off u64, index_size u32,
filter_off u64, filter_size u32, props_off u64, props_size u32, version u32,
crc u32 = CRC-32C(footer[0:40]), magic "kvdb-sst".
"""
import os
import struct

from kvdb._core.coding import crc32c_of
from kvdb._core.lsm.lz4block import decompress as lz4_decompress
from kvdb._core.lsm.sstable import SST_MAGIC as MAGIC
from kvdb._core.lsm.sstable import TABLE_BLOCK_LZ4 as BLOCK_LZ4
from kvdb._core.lsm.sstable import TABLE_BLOCK_RAW as BLOCK_RAW
from kvdb._core.lsm.sstable import TABLE_BLOCK_TRAILER_SIZE as BLOCK_TRAILER_SIZE
from kvdb._core.lsm.sstable import TABLE_FOOTER_SIZE as FOOTER_SIZE
from kvdb._core.lsm.sstable import TABLE_FORMAT_VERSION as VERSION

FOOTER = struct.Struct("<QIQIQIII8s")  # index, filter, props handles; version; crc; magic
FOOTER_CRC_SPAN = FOOTER_SIZE - 4 - len(MAGIC)   # the footer's crc covers its bytes before the crc
assert FOOTER.size == FOOTER_SIZE, "sstable.pxd's footer layout changed: update FOOTER"
MAX_BLOCK_BYTES = 1 << 32               # no block decompresses to more (a value is at most 256 MiB)


class TableScan:
    """What the raw pass found in one table file."""

    def __init__(self, name, size):
        self.name = name      # file name, e.g. 000004.sst
        self.size = size      # bytes
        self.blocks = 0       # blocks whose checksum was read and matched
        self.bad = []         # (byte offset, what is wrong)


def scan_dir(path, progress=None, names=None):
    """Scan every *.sst in the directory at path (or only those of `names`), in name order;
    progress(bytes_done, bytes_total). A table that is gone by the time it is read (the
    writer of a live database compacted it away) is left out."""
    names = sorted(n for n in os.listdir(path) if n.endswith(".sst") and (names is None or n in names))
    sizes = {}
    for n in names:
        try:
            sizes[n] = os.path.getsize(os.path.join(path, n))
        except FileNotFoundError:
            pass
    total = sum(sizes.values())
    done = 0
    results = []
    for name in sizes:
        try:
            results.append(scan_table(os.path.join(path, name)))
        except FileNotFoundError:
            continue
        done += sizes[name]
        if progress:
            progress(done, total)
    return results


def scan_table(path):
    size = os.path.getsize(path)
    res = TableScan(os.path.basename(path), size)
    with open(path, "rb", buffering=0) as f:
        fd = f.fileno()
        handles = _footer(fd, size, res)
        if handles is None:
            return res
        (ioff, isize), (foff, fsize), (poff, psize) = handles
        index = _block(fd, ioff, isize, res)
        for off, sz in ((foff, fsize), (poff, psize)):
            _block(fd, off, sz, res)
        if index is None:
            return res  # without the index the data blocks cannot be found
        try:
            data_handles = [_handle(v) for v in _values(index)]
        except ValueError as e:
            res.bad.append((ioff, f"index block does not decode: {e}"))
            return res
        for off, sz in data_handles:
            if off + sz + BLOCK_TRAILER_SIZE > ioff:
                res.bad.append((ioff, f"index block points past the data (block at {off})"))
                continue
            _block(fd, off, sz, res)
    return res


def _footer(fd, size, res):
    """The three (offset, size) handles of index, filter and properties; None if the footer is bad."""
    if size < FOOTER_SIZE:
        res.bad.append((0, f"file of {size} bytes is too short for an sstable footer"))
        return None
    at = size - FOOTER_SIZE
    raw = os.pread(fd, FOOTER_SIZE, at)
    ioff, isize, foff, fsize, poff, psize, version, crc, magic = FOOTER.unpack(raw)
    if magic != MAGIC:
        res.bad.append((at, "bad sstable magic in the footer"))
        return None
    if crc != crc32c_of(raw[:FOOTER_CRC_SPAN]):
        res.bad.append((at, "sstable footer checksum mismatch"))
        return None
    if version != VERSION:
        res.bad.append((at + 36, f"unsupported sstable version {version}"))
        return None
    handles = ((ioff, isize), (foff, fsize), (poff, psize))
    for off, sz in handles:
        if off + sz + BLOCK_TRAILER_SIZE > at:
            res.bad.append((at, f"footer points past the data (block at {off})"))
            return None
    return handles


def _block(fd, offset, size, res):
    """The block's raw (uncompressed) bytes if its checksum matches, else None (and a finding)."""
    data = os.pread(fd, size + BLOCK_TRAILER_SIZE, offset)
    if len(data) != size + BLOCK_TRAILER_SIZE:
        res.bad.append((offset, "block cut short by the end of the file"))
        return None
    kind = data[size]
    stored = int.from_bytes(data[size + 1:], "little")
    if stored != crc32c_of(data[:size + 1]):
        res.bad.append((offset, "block checksum mismatch"))
        return None
    res.blocks += 1
    if kind == BLOCK_RAW:
        return data[:size]
    if kind != BLOCK_LZ4:
        res.bad.append((offset, f"block has unknown type {kind}"))
        return None
    try:
        raw_len, pos = read_varint(data, 0, size)
        if raw_len > MAX_BLOCK_BYTES:
            raise ValueError(f"its stated length {raw_len} is past any block's")
        return lz4_decompress(bytes(data[pos:size]), raw_len)
    except (ValueError, MemoryError) as e:  # a bad length or lz4 stream
        res.bad.append((offset, f"compressed block does not decompress: {e}"))
        return None


def read_varint(buf, pos, end):
    """(value, next position) of the LEB128 varint at buf[pos:end]; ValueError if it is bad."""
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError(f"bad varint at {pos}")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _values(block):
    """The values of a raw block's entries (keys are skipped: only the index's handles are needed)."""
    if len(block) < 4:
        raise ValueError("shorter than its restart count")
    restarts = int.from_bytes(block[-4:], "little")
    end = len(block) - 4 - 4 * restarts
    if restarts < 1 or end < 0:
        raise ValueError(f"bad restart count {restarts}")
    pos = 0
    values = []
    while pos < end:
        _shared, pos = read_varint(block, pos, end)
        unshared, pos = read_varint(block, pos, end)
        vlen, pos = read_varint(block, pos, end)
        pos += unshared
        if pos + vlen > end:
            raise ValueError(f"entry at {pos} runs past the entries")
        values.append(block[pos:pos + vlen])
        pos += vlen
    return values


def _handle(value):
    off, pos = read_varint(value, 0, len(value))
    size, _ = read_varint(value, pos, len(value))
    return off, size
