"""`kvdb salvage` for an LSM directory: every table's data blocks read raw, the logs replayed,
and the newest version of each key kept by seq; nothing is written to the directory.

Formats: docs/format/manifest.md (CURRENT names MANIFEST-NNNNNN: a 16-byte header "kvdb-man",
version u32, crc u32 of [0, 12); then records crc u32 of length + edit, length u32, edit,
decoded by kvdb._core.lsm.manifest.decode_edit), docs/format/sstable.md (footer, index and data
blocks, read and checked by kvdb/cli/sstscan.py; entries decoded by
kvdb._core.lsm.sstable.decode_block; internal key = user key + u64 trailer seq << 8 | kind,
kind 0 delete, 1 put, 2 put with a u64 expiry in front of the value) and docs/format/wal.md.

What salvage does:
1. The manifest gives the live tables and the oldest log still needed. If it cannot be read,
   every *.sst and every log in the directory is used, and the report says so (a table a
   compaction had already replaced can then bring back a key deleted since).
2. Each table's index lists its data blocks and the last key of each, so a block that fails its
   checksum or does not decode is skipped and reported with its key range (after the previous
   block's last key, up to its own). A table whose footer or index is damaged is lost whole,
   reported with the key range the manifest gives it.
3. Every entry of every good block, and every operation of the logs, is a version (seq, key);
   per key the version with the highest seq wins; a delete leaves the key out. A key whose
   newest version was in a lost block may come back at an older version from another table;
   the report counts the recovered keys inside lost ranges.
"""
import os
import struct

from kvdb._core.coding import crc32c_of
from kvdb._core.lsm.manifest import CURRENT, MANIFEST_MAGIC, decode_edit
from kvdb._core.lsm.sstable import decode_block

from . import sstscan
from .salvage_log import Lost, Salvage, read_log

MANIFEST_HEADER = struct.Struct("<8sII")     # magic, version, crc of [0, 12)
MANIFEST_RECORD_HEAD = struct.Struct("<II")  # crc of length + edit, length
TRAILER_SIZE = 8                             # an internal key's u64 seq << 8 | kind
SST_DELETE, SST_PUT, SST_PUT_EXPIRES = 0, 1, 2


class Version:
    """The newest version of a key seen so far."""
    __slots__ = ("seq", "value", "expires")

    def __init__(self, seq, value, expires):
        self.seq = seq          # commit seq
        self.value = value      # bytes, or None for a delete
        self.expires = expires  # wall-clock ms, 0 = none


def read_manifest(path):
    """({(level, number): FileMeta} of the live tables, oldest log number needed, problem or None),
    or (None, 0, why) when the manifest cannot be read at all."""
    try:
        with open(os.path.join(path, CURRENT), "rb") as f:
            name = f.read(256).decode("ascii", "replace")
    except OSError as e:
        return None, 0, f"{CURRENT}: {e.strerror}"
    if not (name.startswith("MANIFEST-") and name.endswith("\n") and name[9:-1].isdigit()):
        return None, 0, f"{CURRENT} does not name a manifest"
    name = name[:-1]
    try:
        with open(os.path.join(path, name), "rb") as f:
            data = f.read()
    except OSError as e:
        return None, 0, f"{name}: {e.strerror}"
    if len(data) < MANIFEST_HEADER.size or data[:8] != MANIFEST_MAGIC or \
            MANIFEST_HEADER.unpack_from(data)[2] != crc32c_of(data[:12]):
        return None, 0, f"{name}: damaged header"
    tables, log_number, off, problem = {}, 0, MANIFEST_HEADER.size, None
    while off + MANIFEST_RECORD_HEAD.size <= len(data):
        crc, length = MANIFEST_RECORD_HEAD.unpack_from(data, off)
        end = off + MANIFEST_RECORD_HEAD.size + length
        if end > len(data) or crc != crc32c_of(data[off + 4:end]):
            if end < len(data):
                problem = f"{name}: record at offset {off} is damaged; the edits after it were not applied"
            break
        try:
            edit = decode_edit(bytes(data[off + MANIFEST_RECORD_HEAD.size:end]))
        except ValueError as e:
            problem = f"{name}: record at offset {off} does not decode ({e}); the edits after it were not applied"
            break
        for meta in edit["added"]:
            tables[(meta.level, meta.number)] = meta
        for level_number in edit["deleted"]:
            tables.pop(tuple(level_number), None)
        log_number = edit.get("log_number", log_number)
        off = end
    return tables, log_number, problem


def salvage_lsm(path, now_ms):
    res = Salvage("lsm")
    newest = {}
    lost_ranges = []
    tables, log_number, problem = read_manifest(path)
    if problem:
        res.notes.append(problem)
    if tables is None:
        res.notes.append("every table and log in the directory was used: a table already replaced by a compaction "
                         "can bring back a key deleted since")
        names = sorted(n for n in os.listdir(path) if n.endswith(".sst"))
        metas = {n: None for n in names}
    else:
        metas = {"%06d.sst" % number: meta for (_level, number), meta in sorted(tables.items())}
    for name, meta in metas.items():
        _read_table(os.path.join(path, name), meta, newest, lost_ranges, res)
    _replay_logs(path, log_number, newest, res)
    for key, v in newest.items():
        if v.value is not None:
            res.records[key] = (v.value, v.expires)
    inside = sum(1 for k in res.records if any(_inside(k, r) for r in lost_ranges))
    if inside:
        res.notes.append(f"{inside:,} recovered keys lie inside the key ranges of lost blocks: if a lost block held "
                         "a newer version of one of them, the recovered value is an older one")
    gone = [k for k, (_v, e) in res.records.items() if e and e <= now_ms]
    for k in gone:
        del res.records[k]
    res.expired = len(gone)
    return res


def _inside(key, bounds):
    low, high = bounds      # (low, high]: after low, up to and including high
    return (low is None or key > low) and (high is None or key <= high)


def _offer(newest, key, seq, value, expires):
    v = newest.get(key)
    if v is None or seq > v.seq:
        newest[key] = Version(seq, value, expires)


def _read_table(path, meta, newest, lost_ranges, res):
    name = os.path.basename(path)
    scan = sstscan.TableScan(name, 0)
    whole = (meta.smallest, meta.largest) if meta is not None else (None, None)
    if not os.path.exists(path):
        res.lost.append(Lost(name, "missing (the manifest lists it)", *whole, high_open=False))
        lost_ranges.append((None, None))
        return
    with open(path, "rb", buffering=0) as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        handles = sstscan._footer(fd, size, scan)
        index = sstscan._block(fd, handles[0][0], handles[0][1], scan) if handles else None
        if index is None:
            what = scan.bad[-1][1] if scan.bad else "unreadable"
            res.lost.append(Lost(f"{name} (whole table)", what, *whole, high_open=False))
            lost_ranges.append((None, None) if meta is None else (None, meta.largest))
            return
        try:
            index_keys, index_values = decode_block(bytes(index), path, handles[0][0])
            blocks = [(sstscan._handle(v), k[:-TRAILER_SIZE]) for k, v in zip(index_keys, index_values)]
        except (ValueError, Exception) as e:      # CorruptionError or a bad handle
            res.lost.append(Lost(f"{name} (whole table)", f"index block does not decode: {e}", *whole,
                                 high_open=False))
            lost_ranges.append((None, None))
            return
        prev = None
        for (off, sz), last in blocks:
            before = len(scan.bad)
            raw = None
            if off + sz + sstscan.BLOCK_TRAILER_SIZE <= handles[0][0]:
                raw = sstscan._block(fd, off, sz, scan)
            else:
                scan.bad.append((off, "index entry points past the data"))
            try:
                if raw is None:
                    raise ValueError(scan.bad[-1][1] if len(scan.bad) > before else "unreadable")
                keys, values = decode_block(bytes(raw), path, off)
                entries = list(_entries(keys, values))
            except Exception as e:     # a bad checksum, or a block that does not decode
                res.lost.append(Lost(f"{name} block at offset {off}", str(e), prev, last, low_open=True,
                                     high_open=False))
                lost_ranges.append((prev, last))
                prev = last
                continue
            for key, seq, value, expires in entries:
                _offer(newest, key, seq, value, expires)
            prev = last


def _entries(keys, values):
    for ik, value in zip(keys, values):
        if len(ik) <= TRAILER_SIZE:
            raise ValueError("an internal key shorter than its trailer")
        trailer = int.from_bytes(ik[-TRAILER_SIZE:], "little")
        seq, kind = trailer >> 8, trailer & 0xFF
        if kind == SST_DELETE:
            yield ik[:-TRAILER_SIZE], seq, None, 0
        elif kind == SST_PUT:
            yield ik[:-TRAILER_SIZE], seq, value, 0
        elif kind == SST_PUT_EXPIRES and len(value) >= 8:
            yield ik[:-TRAILER_SIZE], seq, value[8:], int.from_bytes(value[:8], "little")
        else:
            raise ValueError(f"entry of unknown kind {kind}")


def _replay_logs(path, log_number, newest, res):
    for name in sorted(n for n in os.listdir(path) if n.startswith("wal-") and n.endswith(".log")):
        number = name[4:-4]
        if number.isdigit() and int(number) < log_number:
            continue              # flushed: its commits are in the tables
        records, problem = read_log(os.path.join(path, name))
        if problem:
            res.notes.append(problem)
        for seq, ops in records:
            for key, value, expires in ops:
                _offer(newest, key, seq, value, expires)
        res.from_log += len(records)
