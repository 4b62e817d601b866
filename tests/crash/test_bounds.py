"""Checksum-valid lies: every length, count, offset and page number read from disk is
bounds-checked before use, so a page or block whose checksum was recomputed after the damage
gives kvdb.CorruptionError naming the file and the page (B+Tree) or offset (LSM), never
MemoryError, SystemError, ValueError or OSError (issue 14, item 3).

Layouts: kvdb/_core/btree/pager.pxd and tree.pxd (docs/format/pages.md), kvdb/_core/lsm/sstable.pxd
(docs/format/sstable.md).
"""
import os
import struct

import pytest

import kvdb
from kvdb._core.coding import crc32c_of
from kvdb._core.lsm import lz4block
from tests.helpers import dump, value

DATA = "data.kvdb"
PS = 4096
PAGE_LEAF, PAGE_FREELIST = 2, 4
CELL_VALUE_OVERFLOW, CELL_KEY_OVERFLOW, CELL_EXPIRES = 1, 2, 4


# -- byte helpers -------------------------------------------------------------------

def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf, off):
    shift = n = 0
    while True:
        b = buf[off]
        off += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, off


def find_all(data, needle):
    out, i = [], data.find(needle)
    while i >= 0:
        out.append(i)
        i = data.find(needle, i + 1)
    return out


def data_file(path):
    with open(os.path.join(path, DATA), "rb") as f:
        return bytearray(f.read())


def write_data_file(path, data):
    with open(os.path.join(path, DATA), "r+b") as f:
        f.write(data)


def reseal(page):
    """The page checksum: crc32c of bytes [4, page_size) stored little-endian at 0."""
    struct.pack_into("<I", page, 0, crc32c_of(bytes(page[4:])))


def edit_page(path, pgno, mutate):
    data = data_file(path)
    page = bytearray(data[pgno * PS:(pgno + 1) * PS])
    mutate(page)
    reseal(page)
    data[pgno * PS:(pgno + 1) * PS] = page
    write_data_file(path, data)


def leaf_cells(page):
    """[(slot i, cell offset, flags, key, offset of the vlen varint)] of a leaf page."""
    out = []
    for i in range(struct.unpack_from("<H", page, 6)[0]):
        off = struct.unpack_from("<H", page, 24 + 2 * i)[0]
        flags = page[off]
        klen, q = read_varint(page, off + 1)
        key = bytes(page[q:q + (32 if flags & CELL_KEY_OVERFLOW else klen)])
        q += 32 + 4 if flags & CELL_KEY_OVERFLOW else klen
        if flags & CELL_EXPIRES:
            q += 8
        out.append((i, off, flags, key, q))
    return out


def rewrite_cell(page, slot, cell_off, cell_end, at, new_varint):
    """Rewrite a leaf cell with the varint at `at` replaced by `new_varint`, as a new cell
    placed below the cell content area (the old one counted as fragmentation), so the page
    stays well formed except for the lie."""
    _, after = read_varint(page, at)
    cell = bytes(page[cell_off:at]) + varint(new_varint) + bytes(page[after:cell_end])
    upper = struct.unpack_from("<H", page, 18)[0] or PS
    new_off = upper - len(cell)
    page[new_off:upper] = cell
    struct.pack_into("<H", page, 24 + 2 * slot, new_off)
    struct.pack_into("<H", page, 18, new_off)
    struct.pack_into("<H", page, 20, struct.unpack_from("<H", page, 20)[0] + cell_end - cell_off)


def cell_end(page, cell_off, vlen_at):
    vlen, q = read_varint(page, vlen_at)
    return q + (4 if page[cell_off] & CELL_VALUE_OVERFLOW else vlen)


def small_db(path):
    """One leaf (page 3 or later): a few inline values and one 20 KiB overflow value."""
    model = {b"a%02d" % i: value(i, 40) for i in range(5)}
    model[b"big"] = value(99, 20000)
    with kvdb.open(path, page_size=PS) as db:
        with db.transaction() as tx:
            for k, v in model.items():
                tx.put(k, v)
    data = data_file(path)
    leaves = [p for p in range(3, len(data) // PS) if data[p * PS + 4] == PAGE_LEAF]
    assert len(leaves) == 1, "expected a one-leaf tree"
    return model, leaves[0]


def every_read_is_corruption(path, model, pgno):
    """Open, get every key, scan and verify: each either reads right or raises a
    CorruptionError naming the data file and `pgno`; at least one raises."""
    raised = 0
    with kvdb.open(path) as db:
        for name, read in [("get", lambda: [db.get(k) == v or pytest.fail("wrong value")
                                            for k, v in model.items()]),
                           ("scan", lambda: dump(db) == model or pytest.fail("wrong scan")),
                           ("verify", db.verify)]:
            try:
                read()
            except kvdb.CorruptionError as e:
                raised += 1
                assert e.pgno == pgno, f"{name}: names page {e.pgno}, the damaged one is {pgno}"
                assert e.path and DATA in e.path and str(pgno) in str(e)
    assert raised, "a lying cell went unnoticed"


# -- B+Tree cells --------------------------------------------------------------------

@pytest.mark.parametrize("key,new_vlen", [
    (b"big", 1 << 62),           # an overflow value "62-bit long": MemoryError in read_overflow
    (b"big", (1 << 28) + 1),     # one byte above MAX_VALUE_SIZE
    (b"a01", (1 << 64) - 1),     # an inline value whose length wraps a signed size to -1
    (b"a02", 1 << 40),           # an inline value far past the page end
])
def test_cell_value_length_lies(db_path, key, new_vlen):
    model, leaf = small_db(db_path)

    def lie(page):
        (slot, off, _, _, vlen_at), = [c for c in leaf_cells(page) if c[3] == key]
        rewrite_cell(page, slot, off, cell_end(page, off, vlen_at), vlen_at, new_vlen)

    edit_page(db_path, leaf, lie)
    every_read_is_corruption(db_path, model, leaf)


def test_cell_key_length_lie(db_path):
    """A key length varint far past the page end (inline key)."""
    model, leaf = small_db(db_path)

    def lie(page):
        (slot, off, _, _, vlen_at), = [c for c in leaf_cells(page) if c[3] == b"a03"]
        rewrite_cell(page, slot, off, cell_end(page, off, vlen_at), off + 1, 1 << 50)

    edit_page(db_path, leaf, lie)
    every_read_is_corruption(db_path, model, leaf)


def test_fragmentation_count_lie_is_refused_before_a_write(db_path):
    """A leaf whose `frag` claims more free bytes than the cell area has would let an insert
    defragment into the cell pointer array: the page is refused when loaded."""
    model, leaf = small_db(db_path)
    edit_page(db_path, leaf, lambda page: struct.pack_into("<H", page, 20, 4000))
    with kvdb.open(db_path) as db:
        with pytest.raises(kvdb.CorruptionError) as ei:
            with db.transaction() as tx:
                for i in range(200):
                    tx.put(b"n%04d" % i, value(i, 60))
        assert ei.value.pgno == leaf and DATA in ei.value.path


# -- meta and freelist ---------------------------------------------------------------

@pytest.mark.parametrize("page_count", [0xFFFFFFF8, 0xFFFFFFFF, 1 << 31])
def test_meta_page_count_lie(db_path, page_count):
    """Both meta pages (mirrored at close) claim a page count near 2^32: open refuses the file
    with CorruptionError naming a meta page, not `ValueError: database is full` later."""
    small_db(db_path)
    for pgno in (1, 2):
        edit_page(db_path, pgno, lambda page: struct.pack_into("<I", page, 48, page_count))
    with pytest.raises(kvdb.CorruptionError) as ei:
        with kvdb.open(db_path) as db:
            db.put(b"new", b"1")
    assert ei.value.pgno in (1, 2) and DATA in ei.value.path


def freelist_db(path):
    """A database whose durable freelist has entries (keys deleted, then a clean close)."""
    with kvdb.open(path, page_size=PS) as db:
        with db.transaction() as tx:
            for i in range(300):
                tx.put(b"k%04d" % i, value(i, 200))
        db.checkpoint()
        with db.transaction() as tx:
            for i in range(0, 300, 2):
                tx.delete(b"k%04d" % i)
    data = data_file(path)
    meta = max((struct.unpack_from("<Q", data, p * PS + 24)[0], p) for p in (1, 2))[1]
    fl = struct.unpack_from("<I", data, meta * PS + 44)[0]
    assert fl and data[fl * PS + 4] == PAGE_FREELIST, "expected a durable freelist"
    return fl


def test_freelist_duplicate_entry(db_path):
    """A freelist that lists one page twice would hand it out to two owners."""
    fl = freelist_db(db_path)

    def dup(page):
        n = struct.unpack_from("<H", page, 16)[0]
        assert n >= 2
        struct.pack_into("<I", page, 24 + 4, struct.unpack_from("<I", page, 24)[0])

    edit_page(db_path, fl, dup)
    with pytest.raises(kvdb.CorruptionError) as ei:
        kvdb.open(db_path).close()
    assert ei.value.pgno == fl and DATA in ei.value.path


# -- LSM tables -----------------------------------------------------------------------

FOOTER = 52


def one_table(path):
    with kvdb.open(path, sync="off", engine="lsm", memtable_size=1 << 20) as db:
        for i in range(300):
            db.put(b"k%05d" % i, value(i, 100))
    (name,) = sorted(n for n in os.listdir(path) if n.endswith(".sst"))
    return os.path.join(path, name)


def edit_footer(sst, mutate):
    with open(sst, "r+b") as f:
        data = bytearray(f.read())
        foot = bytearray(data[-FOOTER:])
        mutate(foot)
        struct.pack_into("<I", foot, 40, crc32c_of(bytes(foot[:40])))
        data[-FOOTER:] = foot
        f.seek(0)
        f.write(data)


@pytest.mark.parametrize("field,val", [
    (0, (1 << 64) - 10),       # index offset wrapping offset + size around 2^64
    (12, (1 << 64) - 3),       # filter offset
    (24, 1 << 63),             # props offset
])
def test_sstable_footer_handle_lies(db_path, field, val):
    sst = one_table(db_path)
    edit_footer(sst, lambda foot: struct.pack_into("<Q", foot, field, val))
    with pytest.raises(kvdb.CorruptionError) as ei:
        with kvdb.open(db_path, engine="lsm") as db:
            dump(db)
    assert ei.value.path == sst and ei.value.offset is not None


def read_block_at(data, off, size):
    """The raw payload of the block at off (lz4 undone); blocks end with type u8, crc u32."""
    payload, btype = bytes(data[off:off + size]), data[off + size]
    if btype == 1:
        ulen, q = read_varint(payload, 0)
        return lz4block.decompress(payload[q:], ulen)
    return payload


def encode_block(entries):
    """A raw block of (internal key, value) entries, each a restart point (shared = 0)."""
    out, restarts = bytearray(), []
    for k, v in entries:
        restarts.append(len(out))
        out += varint(0) + varint(len(k)) + varint(len(v)) + k + v
    for r in restarts:
        out += struct.pack("<I", r)
    return bytes(out + struct.pack("<I", len(restarts)))


def decode_block(raw):
    n = struct.unpack_from("<I", raw, len(raw) - 4)[0]
    end, p, prev, out = len(raw) - 4 - 4 * n, 0, b"", []
    while p < end:
        shared, p = read_varint(raw, p)
        unshared, p = read_varint(raw, p)
        vlen, p = read_varint(raw, p)
        key = prev[:shared] + raw[p:p + unshared]
        p += unshared
        out.append((key, raw[p:p + vlen]))
        p += vlen
        prev = key
    return out


def rewrite_index(sst, mutate):
    """Replace the table's index block by mutate([(key, handle)]), stored raw with a valid
    checksum, and point the footer (checksum recomputed) at it."""
    with open(sst, "rb") as f:
        data = bytearray(f.read())
    foot = bytearray(data[-FOOTER:])
    ioff, isize = struct.unpack_from("<QI", foot, 0)
    entries = decode_block(read_block_at(data, ioff, isize))
    lie = mutate(entries)
    block = encode_block(lie)
    # The manifest records each table's size: make the new block exactly as long as the old.
    # Longer: drop user key bytes of the other entries (only seeks read index keys; a full
    # scan walks the handles); shorter: pad the lying value (handle decoding ignores the rest).
    i = 0
    while len(block) > isize:
        k, v = lie[i % len(lie)]
        if len(k) > 9 and v != lie[len(lie) // 2][1]:
            lie[i % len(lie)] = (k[:-9] + k[-8:], v)
        i += 1
        block = encode_block(lie)
    k, v = lie[len(lie) // 2]
    lie[len(lie) // 2] = (k, v + bytes(isize - len(block)))
    block = encode_block(lie)
    assert len(block) == isize
    trailer = b"\0" + struct.pack("<I", crc32c_of(block + b"\0"))
    struct.pack_into("<QI", foot, 0, ioff, len(block))
    struct.pack_into("<I", foot, 40, crc32c_of(bytes(foot[:40])))
    with open(sst, "wb") as f:
        f.write(bytes(data[:ioff]) + block + trailer + bytes(foot))


@pytest.mark.parametrize("boff,bsize", [
    ((1 << 64) - 10, 20),      # offset + size wraps around 2^64 past the bound check
    (0, (1 << 64) - 2),        # a size that wraps
])
def test_sstable_index_handle_lies(db_path, boff, bsize):
    sst = one_table(db_path)

    def lie(entries):
        k, _ = entries[len(entries) // 2]
        entries[len(entries) // 2] = (k, varint(boff) + varint(bsize))
        return entries

    rewrite_index(sst, lie)
    with pytest.raises(kvdb.CorruptionError) as ei:
        with kvdb.open(db_path, engine="lsm") as db:
            dump(db)
    assert ei.value.path == sst and ei.value.offset is not None


def test_sstable_expiring_entry_shorter_than_its_expiry(db_path):
    """An entry whose kind says "put with expiry" but whose value is shorter than the 8-byte
    expiry (kind byte changed, block checksum recomputed): forward and backward reads both
    refuse it, where the backward scan read the expiry from past the value."""
    model = {b"k%05d" % i: value(i, 100) for i in range(300)}
    model[b"k00150"] = b"ZQ!"
    with kvdb.open(db_path, sync="off", engine="lsm", memtable_size=1 << 20) as db:
        for k, v in model.items():
            db.put(k, v)
    (name,) = sorted(n for n in os.listdir(db_path) if n.endswith(".sst"))
    sst = os.path.join(db_path, name)
    with open(sst, "rb") as f:
        data = bytearray(f.read())
    ioff, isize = struct.unpack_from("<QI", data, len(data) - FOOTER)
    handles = []
    for _, h in decode_block(read_block_at(data, ioff, isize)):
        boff, q = read_varint(h, 0)
        handles.append((boff, read_varint(h, q)[0]))
    # entry: shared, unshared, vlen varints, key suffix ending in the trailer (kind byte, then
    # seq, little-endian u64), value
    (at,) = [i - 8 for i in find_all(data, b"ZQ!") if data[i - 8] == 1]
    data[at] = 2                                        # SST_PUT_EXPIRES
    boff, bsize = next((o, s) for o, s in handles if o <= at < o + s)
    assert data[boff + bsize] == 0, "a raw block"
    struct.pack_into("<I", data, boff + bsize + 1, crc32c_of(bytes(data[boff:boff + bsize + 1])))
    with open(sst, "wb") as f:
        f.write(data)
    with kvdb.open(db_path, engine="lsm") as db:
        for read in (lambda: db.get(b"k00150"), lambda: dump(db), lambda: list(db.scan(reverse=True))):
            with pytest.raises(kvdb.CorruptionError) as ei:
                read()
            assert ei.value.path == sst and ei.value.offset == boff
