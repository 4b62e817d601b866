"""`kvdb salvage` for a B+Tree directory: data.kvdb read raw, page by page, and the log
replayed on top; nothing is written to the directory.

Layout (docs/format/pages.md, kvdb/_core/btree/pager.pxd and tree.pxd): page 0 is the file
header (pagescan.read_header); every other page has a 24-byte header (crc u32 of the rest of
the page, type u8, flags u8, ncells u16, pgno u32, link u32, lower u16, upper u16, frag u16,
reserved u16). Meta pages 1 and 2 hold generation u64, seq u64, root u32, freelist u32 and
page_count u32 at byte 24. Branch and leaf pages have ncells u16 slots at byte 24 pointing at
cells; a leaf cell is flags u8, klen varint, key (or its first KEY_PREFIX_LEN bytes and the u32
first page of an overflow chain), [expires u64], vlen varint, value (or a u32 overflow pgno);
a branch cell is child u32, flags u8, klen varint, key part; the header's link is the
rightmost child. Overflow pages carry `lower` data bytes at byte 24 and link to the next.

What salvage does:
1. The newest valid meta gives the root. The tree is walked from it; a page that fails its
   checksum, page number, type or layout is skipped and reported with the key range its parent
   gives it ([low, high)); every cell of every good leaf is decoded, its overflow chains
   verified page by page (a damaged chain loses that one key, named).
2. Leaves the walk did not reach (stale copies of older versions, free pages) are used only
   for keys inside the ranges of skipped pages, and only where no reachable leaf or log record
   gave the key: they may hold older values, and the report says how many came from them.
   The last open's clean close punches free pages as holes, so such copies are found in a file
   that was not closed cleanly (a crash, a copy taken while open), not after a clean close.
3. Log records past the meta's seq are applied on top (salvage_log.read_log).
"""
import os
import struct

from kvdb._core.btree.engine import DATA_FILE
from kvdb._core.btree.pager import FILE_HEADER_BYTES

from .pagescan import check_page, read_header
from .salvage_log import Lost, Salvage, read_log
from .sstscan import read_varint

PAGE_HEADER = struct.Struct("<IBBHIIHHHH")   # crc, type, flags, ncells, pgno, link, lower, upper, frag, reserved
META_BODY = struct.Struct("<QQIII")          # generation, seq, root, freelist, page_count (at byte 24)
PAGE_HEADER_SIZE = PAGE_HEADER.size          # 24
PAGE_BRANCH, PAGE_LEAF, PAGE_OVERFLOW, PAGE_META = 1, 2, 3, 5   # pager.pxd page types
CELL_VALUE_OVERFLOW, CELL_KEY_OVERFLOW, CELL_EXPIRES = 1, 2, 4  # tree.pxd cell flags
KEY_PREFIX_LEN = 32                          # tree.pxd: key bytes kept in the page when the key overflows
MAX_DEPTH = 32                               # tree.pxd: the tree is never deeper
CELL_MAX_KEY = 16384                         # tree.pxd: no key is longer
CELL_MAX_VALUE = 256 * 1024 * 1024           # tree.pxd: no value is longer
assert PAGE_HEADER_SIZE == 24


class Damaged(Exception):
    """A page (or a cell in it) that cannot be read: .pgno and the reason."""

    def __init__(self, pgno, what):
        super().__init__(what)
        self.pgno = pgno


class DataFile:
    """data.kvdb opened read-only: checked pages by number."""

    def __init__(self, path):
        self.f = open(path, "rb", buffering=0)
        size = os.fstat(self.f.fileno()).st_size
        self.page_size, self.header_problem = read_header(os.pread(self.f.fileno(), FILE_HEADER_BYTES, 0))
        if self.page_size is None:
            self.page_size = self._guess_page_size(size)
        self.pages = size // self.page_size if self.page_size else 0

    def _guess_page_size(self, size):
        """With a damaged file header: the page size at which a meta page checks."""
        for ps in (4096, 512, 1024, 2048, 8192, 16384, 32768):
            for pgno in (1, 2):
                if size >= (pgno + 1) * ps and check_page(self.raw(pgno, ps), pgno, ps) is None:
                    return ps
        return None

    def raw(self, pgno, ps=None):
        ps = ps or self.page_size
        return os.pread(self.f.fileno(), ps, pgno * ps)

    def page(self, pgno, kinds):
        """The page's bytes if it checks and is of one of `kinds`; else Damaged."""
        if not 0 < pgno < self.pages:
            raise Damaged(pgno, f"page {pgno} is outside the file ({self.pages} pages)")
        data = self.raw(pgno)
        what = check_page(data, pgno, self.page_size)
        if what == "zero":
            what = "never written (all zero)"
        if what is None and data[4] not in kinds:
            what = f"type {data[4]} where a page of type {'/'.join(map(str, kinds))} belongs"
        if what is not None:
            raise Damaged(pgno, what)
        return data

    def chain(self, pgno, n):
        """The n bytes of the overflow chain starting at pgno, every page checked."""
        room = self.page_size - PAGE_HEADER_SIZE
        hops = (n + room - 1) // room
        out = bytearray()
        while len(out) < n:
            if hops == 0 or pgno == 0:
                raise Damaged(pgno, f"overflow chain ends after {len(out)} of {n} bytes")
            data = self.page(pgno, (PAGE_OVERFLOW,))
            _c, _t, _f, _n, _p, link, lower, _u, _fr, _r = PAGE_HEADER.unpack_from(data, 0)
            if not 0 < lower <= room:
                raise Damaged(pgno, f"overflow page holds {lower} bytes")
            out += data[PAGE_HEADER_SIZE:PAGE_HEADER_SIZE + lower]
            pgno, hops = link, hops - 1
        return bytes(out[:n])

    def close(self):
        self.f.close()


def _slots(data, ps):
    """The cell offsets of a branch or leaf page, its layout checked."""
    _c, _t, _f, ncells, _p, link, lower, upper, _fr, _r = PAGE_HEADER.unpack_from(data, 0)
    upper = upper or ps
    if lower != PAGE_HEADER_SIZE + 2 * ncells or not lower <= upper <= ps:
        raise ValueError(f"bad layout (ncells {ncells}, lower {lower}, upper {upper})")
    slots = struct.unpack_from(f"<{ncells}H", data, PAGE_HEADER_SIZE)
    if any(not upper <= s < ps for s in slots):
        raise ValueError("a slot points outside the cell area")
    return slots, link


def _key(df, data, pos, end, max_key=CELL_MAX_KEY):
    """(key, key prefix, pos after the key part); Damaged if an overflowing key's chain is bad."""
    flags = data[pos]
    klen, pos = read_varint(data, pos + 1, end)
    if not 0 < klen <= max_key:
        raise ValueError(f"key length {klen}")
    if flags & CELL_KEY_OVERFLOW:
        if pos + KEY_PREFIX_LEN + 4 > end:
            raise ValueError("key part runs past the page")
        prefix = bytes(data[pos:pos + KEY_PREFIX_LEN])
        kpg = int.from_bytes(data[pos + KEY_PREFIX_LEN:pos + KEY_PREFIX_LEN + 4], "little")
        return (lambda: df.chain(kpg, klen)), prefix, flags, pos + KEY_PREFIX_LEN + 4
    if pos + klen > end:
        raise ValueError("key runs past the page")
    key = bytes(data[pos:pos + klen])
    return (lambda: key), key, flags, pos + klen


def leaf_cells(df, data, res, pgno):
    """Yield (key, value, expires) of a good leaf's cells; a cell whose overflow chain is
    damaged is reported (its key, or its key's first bytes) and skipped."""
    ps = df.page_size
    slots, _link = _slots(data, ps)
    for off in slots:
        key_of, prefix, flags, pos = _key(df, data, off, ps)
        expires = 0
        if flags & CELL_EXPIRES:
            if pos + 8 > ps:
                raise ValueError("expiry runs past the page")
            expires = int.from_bytes(data[pos:pos + 8], "little")
            pos += 8
        vlen, pos = read_varint(data, pos, ps)
        if vlen > CELL_MAX_VALUE:
            raise ValueError(f"value length {vlen}")
        key = None
        try:
            key = key_of()
            if flags & CELL_VALUE_OVERFLOW:
                if pos + 4 > ps:
                    raise ValueError("value pgno runs past the page")
                value = df.chain(int.from_bytes(data[pos:pos + 4], "little"), vlen)
            else:
                if pos + vlen > ps:
                    raise ValueError("value runs past the page")
                value = bytes(data[pos:pos + vlen])
        except Damaged as e:
            if key is None:    # the key's own chain: known by its first KEY_PREFIX_LEN bytes
                res.lost.append(Lost(f"overflow page {e.pgno} (the key of a cell of leaf page {pgno})", str(e),
                                     prefix, prefix + b"\xff"))
            else:
                res.lost.append(Lost(f"overflow page {e.pgno} (the value of a cell of leaf page {pgno})", str(e),
                                     key, key))
            continue
        yield key, value, expires


def branch_children(df, data):
    """[(child pgno, low key or None, high key or None)] of a good branch page, given its own
    bounds by the caller (None here means the parent's bound)."""
    ps = df.page_size
    slots, link = _slots(data, ps)
    out, prev = [], None
    for off in slots:
        if off + 5 > ps:
            raise ValueError("branch cell runs past the page")
        child = int.from_bytes(data[off:off + 4], "little")
        key_of, prefix, _flags, _pos = _key(df, data, off + 4, ps)
        try:
            sep = key_of()
        except Damaged:
            sep = prefix          # the bound is known to its first KEY_PREFIX_LEN bytes
        out.append((child, prev, sep))
        prev = sep
    out.append((link, prev, None))
    return out


def newest_meta(df, res):
    """(seq, root) of the newest valid meta page, or (0, None) when neither is valid."""
    best = None
    for pgno in (1, 2):
        try:
            data = df.page(pgno, (PAGE_META,))
        except Damaged as e:
            res.notes.append(f"meta page {pgno}: {e}")
            continue
        generation, seq, root, _freelist, page_count = META_BODY.unpack_from(data, PAGE_HEADER_SIZE)
        if page_count < 3 or root >= page_count:
            res.notes.append(f"meta page {pgno}: root {root} or page count {page_count} is impossible")
            continue
        if best is None or generation > best[0]:
            best = (generation, seq, root)
    if best is None:
        return 0, None
    return best[1], best[2]


def salvage_btree(path, now_ms):
    res = Salvage("btree")
    df = DataFile(os.path.join(path, DATA_FILE))
    try:
        if df.header_problem:
            res.notes.append(f"{DATA_FILE}: {df.header_problem}"
                             + (f"; read with page size {df.page_size}" if df.page_size else ""))
        if not df.page_size:
            res.lost.append(Lost(DATA_FILE, "no page size can be found: no page could be read"))
            seq, reached, lost_ranges = 0, set(), [(None, None)]
        else:
            seq, root = newest_meta(df, res)
            if root is None:
                res.lost.append(Lost("meta pages 1-2", "neither meta page is valid: the tree's root is unknown"))
                reached, lost_ranges = set(), [(None, None)]
            else:
                reached, lost_ranges = _walk(df, root, res)
            _stale_leaves(df, reached, lost_ranges, res)
        _replay_log(path, seq, res)
    finally:
        df.close()
    _drop_expired(res, now_ms)
    return res


def _walk(df, root, res):
    """Decode every leaf reachable from root into res.records; (pages reached, lost key ranges)."""
    reached, lost_ranges = set(), []
    stack = [(root, None, None, 0)] if root else []
    while stack:
        pgno, low, high, depth = stack.pop()
        if pgno in reached or depth > MAX_DEPTH:
            res.lost.append(Lost(f"page {pgno}", "reached twice or too deep: a loop in the tree", low, high))
            lost_ranges.append((low, high))
            continue
        reached.add(pgno)
        try:
            data = df.page(pgno, (PAGE_BRANCH, PAGE_LEAF))
            if data[4] == PAGE_LEAF:
                cells = list(leaf_cells(df, data, res, pgno))
                for key, value, expires in cells:
                    res.records[key] = (value, expires)
            else:
                children = branch_children(df, data)
                for child, clow, chigh in reversed(children):
                    stack.append((child, low if clow is None else clow, high if chigh is None else chigh, depth + 1))
        except (Damaged, ValueError) as e:
            res.lost.append(Lost(f"page {pgno}", str(e), low, high))
            lost_ranges.append((low, high))
    return reached, lost_ranges


def _in_ranges(key, ranges):
    return any((lo is None or key >= lo) and (hi is None or key < hi) for lo, hi in ranges)


def _stale_leaves(df, reached, lost_ranges, res):
    """Keys in the lost ranges found only on leaves the tree no longer reaches."""
    if not lost_ranges:
        return
    used = pages = 0
    for pgno in range(3, df.pages):
        if pgno in reached:
            continue
        try:
            data = df.page(pgno, (PAGE_LEAF,))
            cells = list(leaf_cells(df, data, Salvage("btree"), pgno))
        except (Damaged, ValueError):
            continue
        took = 0
        for key, value, expires in cells:
            if key not in res.records and _in_ranges(key, lost_ranges):
                res.records[key] = (value, expires)
                took += 1
        used += took
        pages += bool(took)
    if used:
        res.notes.append(f"{used:,} keys in the lost ranges were taken from {pages:,} leaf pages the tree no longer "
                         "reaches (older copies): their values may be older than the lost ones, and keys "
                         "deleted since may be among them")


def _replay_log(path, seq, res):
    for name in sorted(n for n in os.listdir(path) if n.startswith("wal-") and n.endswith(".log")):
        records, problem = read_log(os.path.join(path, name), seq)
        if problem:
            res.notes.append(problem)
        for _seq, ops in records:
            for key, value, expires in ops:
                if value is None:
                    res.records.pop(key, None)
                else:
                    res.records[key] = (value, expires)
        res.from_log += len(records)


def _drop_expired(res, now_ms):
    gone = [k for k, (_v, e) in res.records.items() if e and e <= now_ms]
    for k in gone:
        del res.records[k]
    res.expired = len(gone)
