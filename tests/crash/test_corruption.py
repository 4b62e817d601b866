"""Damaged files: open, get, scan and verify must raise kvdb.CorruptionError naming what is
wrong (e.pgno for pages), never crash and never return wrong data silently.

Layout used (kvdb/_core/btree/pager.pxd, docs/format/): the data file `data.kvdb` is an array of
page_size pages; page 0 holds the file header (magic at offset 0), pages 1 and 2 are the two
meta pages, every page starts with a crc32c at offset 0, its type at 4 and its own pgno at 8.
WAL files are `wal-*.log` (found with listdir, whatever their exact names).
"""
import gc
import os
import random
import shutil
import struct

import pytest

import kvdb
from tests.helpers import dump, value

try:
    from kvdb._core.file import SimFS, SimulatedCrash
except ImportError:  # pragma: no cover
    SimFS = SimulatedCrash = None

DATA = "data.kvdb"
META_PGNOS = (1, 2)
PAGE_BRANCH, PAGE_LEAF, PAGE_OVERFLOW = 1, 2, 3


def build(path, n=400, page_size=4096, big=True, **kw):
    """A closed database with n keys of unique random 200-byte values (+ one 20 KiB value)."""
    model = {b"key%05d" % i: value(i, 200) for i in range(n)}
    if big:
        model[b"big"] = value(10 ** 6, 20000)
    with kvdb.open(path, page_size=page_size, **kw) as db:
        with db.transaction() as tx:
            for k, v in model.items():
                tx.put(k, v)
    return model


def read(path):
    with open(os.path.join(path, DATA), "rb") as f:
        return bytearray(f.read())


def write(path, data):
    with open(os.path.join(path, DATA), "r+b") as f:
        f.write(data)
        f.truncate(len(data))


def flip(data, offset, mask=0x5A):
    data[offset] ^= mask


def find_all(data, needle):
    out, i = [], data.find(needle)
    while i >= 0:
        out.append(i)
        i = data.find(needle, i + 1)
    return out


def outcome(path, model, **kw):
    """Open, read every key, scan and verify. Returns "corruption" if a CorruptionError was
    raised by any of them, "intact" if everything matched the model exactly. Any other
    exception, or any wrong answer, fails the test."""
    try:
        db = kvdb.open(path, **kw)
    except kvdb.CorruptionError as e:
        assert str(e)
        return "corruption", e
    try:
        try:
            for k, v in model.items():
                got = db.get(k)
                assert got == v, f"get({k!r}) returned wrong data silently"
            assert dump(db) == model, "scan returned wrong data silently"
            db.verify()
        except kvdb.CorruptionError as e:
            assert str(e)
            return "corruption", e
        return "intact", None
    finally:
        db.close()


# -- data pages ----------------------------------------------------------------

@pytest.mark.parametrize("where", ["middle", "start-of-cell-area", "crc"])
def test_P4_leaf_page_corruption(db_path, where):
    """P4: a leaf page whose bytes or checksum were damaged is refused when it is read (get,
    scan, verify), naming the page."""
    model = build(db_path)
    data = read(db_path)
    ps = 4096
    key = b"key%05d" % 200
    hits = find_all(data, model[key])
    assert hits, "the value is not stored literally in data.kvdb (compressed?): adapt the test"
    pgnos = {h // ps for h in hits}
    for h in hits:
        if where == "middle":
            flip(data, h + 100)
        elif where == "crc":
            flip(data, (h // ps) * ps + 1)
        else:
            flip(data, h)
    write(db_path, data)
    with kvdb.open(db_path) as db:
        with pytest.raises(kvdb.CorruptionError) as ei:
            db.get(key)
        assert ei.value.pgno in pgnos, f"error names page {ei.value.pgno}, damaged: {pgnos}"
        assert str(ei.value.pgno) in str(ei.value), "the message should name the page"
        assert ei.value.path is None or DATA in ei.value.path
        with pytest.raises(kvdb.CorruptionError) as ei:
            list(db.scan())
        assert ei.value.pgno in pgnos
        with pytest.raises(kvdb.CorruptionError) as ei:
            db.verify()
        assert ei.value.pgno in pgnos
        # keys far away on healthy pages are still readable
        assert db.get(b"key00000") == model[b"key00000"]


def test_overflow_page_corruption(db_path):
    model = build(db_path)
    data = read(db_path)
    ps = 4096
    needle = model[b"big"][10000:10064]
    hits = find_all(data, needle)
    assert hits, "the big value is not stored literally: adapt the test"
    for h in hits:
        flip(data, h + 10)
    write(db_path, data)
    with kvdb.open(db_path) as db:
        with pytest.raises(kvdb.CorruptionError) as ei:
            db.get(b"big")
        assert ei.value.pgno in {h // ps for h in hits}
        with pytest.raises(kvdb.CorruptionError):
            db.verify()
        assert db.get(b"key00001") == model[b"key00001"]


def page_types(data, ps):
    """{pgno: type} for pages whose header names their own pgno (written pages)."""
    out = {}
    for pgno in range(3, len(data) // ps):
        off = pgno * ps
        if struct.unpack_from("<I", data, off + 8)[0] == pgno or \
                struct.unpack_from(">I", data, off + 8)[0] == pgno:
            out[pgno] = data[off + 4]
    return out


def test_branch_page_corruption(db_path):
    model = build(db_path, n=3000, page_size=512, big=False)
    data = read(db_path)
    types = page_types(data, 512)
    branches = [p for p, t in types.items() if t == PAGE_BRANCH]
    assert branches, f"no branch page found (types seen: {sorted(set(types.values()))})"
    pgno = branches[len(branches) // 2]
    flip(data, pgno * 512 + 300)
    write(db_path, data)
    result, err = outcome(db_path, model)
    assert result == "corruption", "a damaged branch page went unnoticed"
    assert err.pgno == pgno, f"error names page {err.pgno}, damaged: {pgno}"


def test_P4_misdirected_write_detected(db_path):
    """A valid page written at the wrong place (checksum fine, pgno wrong) is caught."""
    model = build(db_path, n=3000, page_size=512, big=False)
    data = read(db_path)
    leaves = [p for p, t in page_types(data, 512).items() if t == PAGE_LEAF]
    assert len(leaves) > 2
    a, b = leaves[1], leaves[-2]
    data[b * 512:(b + 1) * 512] = data[a * 512:(a + 1) * 512]
    write(db_path, data)
    result, err = outcome(db_path, model)
    assert result == "corruption", "a page stored at the wrong pgno went unnoticed"
    assert err.pgno == b


def test_truncated_data_file(db_path):
    model = build(db_path)
    data = read(db_path)
    write(db_path, data[:len(data) // 2])
    result, _ = outcome(db_path, model)
    assert result == "corruption", "half of the data file is missing and nothing noticed"


# -- header and meta pages -------------------------------------------------------

def test_bad_magic(db_path):
    build(db_path, n=10)
    data = read(db_path)
    flip(data, 0)
    write(db_path, data)
    with pytest.raises(kvdb.CorruptionError) as ei:
        kvdb.open(db_path)
    assert "magic" in str(ei.value).lower(), str(ei.value)


def test_bad_header_field(db_path):
    build(db_path, n=10)
    data = read(db_path)
    flip(data, 13)  # the page size field, covered by the header crc
    write(db_path, data)
    with pytest.raises(kvdb.CorruptionError):
        kvdb.open(db_path)


def test_not_a_database(db_path):
    os.makedirs(db_path)
    with open(os.path.join(db_path, DATA), "wb") as f:
        f.write(b"this is not a kvdb file at all " * 500)
    with pytest.raises(kvdb.CorruptionError):
        kvdb.open(db_path)


def copy_db(src, dst):
    os.makedirs(dst)
    for name in os.listdir(src):
        if "lock" not in name.lower():
            shutil.copy2(os.path.join(src, name), os.path.join(dst, name))


def two_generations(db_path, tmp_path):
    """Phase 1, checkpoint, phase 2 (overwrites, deletes, inserts), checkpoint, and a copy of
    the files taken before close (so the two meta pages differ). Returns (copy, phase1, phase2)."""
    phase1 = {b"k%04d" % i: value(i, 300) for i in range(300)}
    phase2 = dict(phase1)
    with kvdb.open(db_path, page_size=512, checkpoint_size=1 << 30) as db:
        with db.transaction() as tx:
            for k, v in phase1.items():
                tx.put(k, v)
        db.checkpoint()
        with db.transaction() as tx:
            for i in range(0, 300, 2):
                tx.put(b"k%04d" % i, value(i + 5000, 250))
                phase2[b"k%04d" % i] = value(i + 5000, 250)
            for i in range(1, 300, 6):
                tx.delete(b"k%04d" % i)
                del phase2[b"k%04d" % i]
            for i in range(300, 400):
                tx.put(b"k%04d" % i, value(i, 100))
                phase2[b"k%04d" % i] = value(i, 100)
        db.checkpoint()
        copy = str(tmp_path / "copy")
        copy_db(db_path, copy)
    return copy, phase1, phase2


def test_P1_one_bad_meta_falls_back(tmp_path):
    """P1 (the older meta's whole tree is still intact) lets open fall back to it.
    Damage one meta page while the two differ. The older one: nothing may be lost. The newer
    one: open falls back to the older meta and recovers the rest from the WAL, or, if the WAL no
    longer covers the gap, raises CorruptionError - never silently opens the older state."""
    results = {}
    for s in META_PGNOS:
        copy, phase1, phase2 = two_generations(str(tmp_path / f"db{s}"), tmp_path / f"t{s}")
        data = read(copy)
        flip(data, s * 512 + 30)
        write(copy, data)
        try:
            db = kvdb.open(copy)
        except kvdb.CorruptionError as e:
            results[s] = f"CorruptionError: {e}"
            continue
        with db:
            got = dump(db)
            assert got != phase1, f"meta {s} damaged: opened the older checkpoint, silently " \
                "losing the commits of the newer one"
            assert got == phase2, f"meta {s} damaged: the state is not a committed one"
            db.verify()
            results[s] = "intact"
    assert "intact" in results.values(), f"damaging the older meta page was not survived: {results}"


def test_one_bad_meta_after_clean_close(db_path):
    for s in META_PGNOS:
        path = db_path + str(s)
        model = build(path, n=200)
        data = read(path)
        flip(data, s * 4096 + 30)
        write(path, data)
        with kvdb.open(path) as db:
            assert dump(db) == model, f"meta {s} damaged after a clean close: data differs"
            db.verify()


def test_both_metas_bad(db_path):
    build(db_path, n=50)
    data = read(db_path)
    for s in META_PGNOS:
        flip(data, s * 4096 + 30)
    write(db_path, data)
    with pytest.raises(kvdb.CorruptionError) as ei:
        kvdb.open(db_path)
    assert "meta" in str(ei.value).lower(), str(ei.value)


# -- random damage -----------------------------------------------------------------

def test_random_damage_never_returns_wrong_data(tmp_path, long_mode):
    pristine = str(tmp_path / "pristine")
    model = build(pristine, n=600, page_size=512)
    clean = read(pristine)
    npages = len(clean) // 512
    rounds = 300 if long_mode else 40
    seen = {"corruption": 0, "intact": 0}
    for seed in range(rounds):
        rng = random.Random(seed)
        path = str(tmp_path / f"r{seed}")
        copy_db(pristine, path)
        data = bytearray(clean)
        for _ in range(rng.choice([1, 1, 2, 5])):
            pgno = rng.randrange(npages)
            off = pgno * 512 + rng.randrange(512)
            data[off] ^= rng.randrange(1, 256)
        if rng.random() < 0.1:
            data = data[:rng.randrange(len(data))]
        write(path, data)
        try:
            result, _ = outcome(path, model)
        except AssertionError as e:
            raise AssertionError(f"random damage seed {seed}: {e}") from None
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"random damage seed {seed}: {type(e).__name__} instead of CorruptionError: {e}")
        seen[result] += 1
        shutil.rmtree(path)
    assert seen["corruption"], "no damage was ever detected"


# -- WAL ------------------------------------------------------------------------------

SIM = "/sim/db"


@pytest.fixture
def wal_fs():
    """SimFS holding a database whose 20 commits (w:i = 3000 random bytes, m:i) are only in
    the WAL: no checkpoint, no close, a crash that loses nothing unsynced (sync="full")."""
    if SimFS is None:
        pytest.fail("kvdb._core.file.SimFS is missing")
    fs = SimFS()
    db = kvdb.open(SIM, _fs=fs, sync="full", checkpoint_size=1 << 30)
    model = {}
    for i in range(20):
        with db.transaction() as tx:
            tx.put(b"w:%04d" % i, value(i, 3000))
            tx.put(b"m:%04d" % i, b"%d" % i)
        model[b"w:%04d" % i] = value(i, 3000)
        model[b"m:%04d" % i] = b"%d" % i
    kill(fs, db)
    del db
    power_off(fs)
    return fs, model


def kill(fs, db):
    """Crash a live database at its next I/O call."""
    fs.crash_after(1)
    try:
        db.put(b"zz", b"never acknowledged")
    except (SimulatedCrash, kvdb.Error):
        return
    raise AssertionError("a sync='full' put made no I/O call")


def power_off(fs):
    """Lose power once the caller has dropped every reference to the dead database."""
    gc.collect()
    fs.crash(0)


def wal_files(fs):
    names = [n for n in fs.listdir(SIM) if n.startswith("wal")]
    assert names, f"no WAL file in {fs.listdir(SIM)}"
    return [SIM + "/" + n for n in sorted(names)]


def locate(fs, needle):
    for path in wal_files(fs):
        data = fs.read_file(path)
        i = data.find(needle)
        if i >= 0:
            return path, i
    pytest.skip("the record is not stored literally in the WAL (compressed?): cannot aim the damage")


def sim_outcome(fs, model):
    try:
        db = kvdb.open(SIM, _fs=fs)
    except kvdb.CorruptionError as e:
        return "corruption", e
    try:
        try:
            for k, v in model.items():
                assert db.get(k) == v, f"get({k!r}) returned wrong data silently"
            assert dump(db) == model, "scan returned wrong data silently"
            db.verify()
        except kvdb.CorruptionError as e:
            return "corruption", e
        return "intact", None
    finally:
        db.close()


def test_wal_intact_baseline(wal_fs):
    fs, model = wal_fs
    assert sim_outcome(fs, model)[0] == "intact"


@pytest.mark.parametrize("commit", [0, 10, 18])
def test_W2_wal_middle_corruption(wal_fs, commit):
    """W2: a damaged record with valid records after it is damage in the middle of the log:
    CorruptionError naming the log, never a silent drop of the commits after it."""
    fs, model = wal_fs
    path, off = locate(fs, value(commit, 3000)[:64])
    data = bytearray(fs.read_file(path))
    flip(data, off + 1500)
    fs.write_file(path, data)
    result, err = sim_outcome(fs, model)
    assert result == "corruption", \
        "a damaged record in the middle of the WAL (valid records after it) was not reported"
    assert "wal" in (str(err) + str(err.path)).lower(), f"the error should name the WAL: {err}"


@pytest.mark.parametrize("offset", [0, 9, 13, 17, 29], ids=["magic", "version", "salt", "base-seq", "crc"])
def test_wal_header_damage(wal_fs, offset):
    """The WAL header is damaged while 20 acknowledged commits follow it: reporting the damage
    is required; treating the log as empty would silently lose them."""
    fs, model = wal_fs
    path = wal_files(fs)[0]
    data = bytearray(fs.read_file(path))
    flip(data, offset)
    fs.write_file(path, data)
    result, _ = sim_outcome(fs, model)
    assert result == "corruption", "a damaged WAL header made acknowledged commits vanish silently"


def test_W2_wal_torn_tail(wal_fs):
    """W2: replay stops at a torn last record: only the torn commit is dropped."""
    fs, model = wal_fs
    path, off = locate(fs, value(19, 3000)[:64])
    data = fs.read_file(path)
    fs.write_file(path, data[:off + 1500])  # cut the last commit in the middle
    expected = {k: v for k, v in model.items() if not k.endswith(b"0019")}
    db = kvdb.open(SIM, _fs=fs, sync="full", checkpoint_size=1 << 30)
    try:
        assert dump(db) == expected, "a torn WAL tail must drop only the torn commit"
        db.verify()
        # appending after the torn tail works, and survives another crash
        for i in range(100, 105):
            db.put(b"n:%d" % i, b"%d" % i)
            expected[b"n:%d" % i] = b"%d" % i
    except BaseException:
        db.close()
        raise
    kill(fs, db)
    del db
    power_off(fs)
    with kvdb.open(SIM, _fs=fs) as db:
        assert dump(db) == expected, "commits appended after a torn tail were lost"
        db.verify()


def test_wal_tail_garbage(wal_fs):
    """Zeros or junk after the last record (a preallocated or half-written tail) are not an error."""
    fs, model = wal_fs
    path = wal_files(fs)[-1]
    fs.write_file(path, fs.read_file(path) + bytes(5000) + os.urandom(100))
    assert sim_outcome(fs, model)[0] == "intact"


# -- damage with a valid checksum: the tree checks of verify() --------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def damage_sealed(data, pgno, ps, mutate):
    """Apply mutate(page: bytearray) to a page and give it a valid checksum again."""
    off = pgno * ps
    page = bytearray(data[off:off + ps])
    stored = bytes(page[:4])
    fmt = next((f for f in ("<I", ">I") if struct.pack(f, crc32c(page[4:])) == stored), None)
    assert fmt, f"page {pgno}: its checksum is not crc32c of bytes [4, page_size) as documented"
    mutate(page)
    page[:4] = struct.pack(fmt, crc32c(page[4:]))
    data[off:off + ps] = page


def u16_order(page, pgno):
    return "<" if struct.unpack_from("<I", page, 8)[0] == pgno else ">"


def test_B1_verify_catches_unsorted_leaf_with_valid_checksum(db_path):
    model = build(db_path, n=2000, page_size=512, big=False)
    data = read(db_path)
    leaves = [p for p, t in page_types(data, 512).items() if t == PAGE_LEAF]
    pgno = leaves[len(leaves) // 2]

    def swap_first_two_cells(page):
        e = u16_order(page, pgno)
        ncells = struct.unpack_from(e + "H", page, 6)[0]
        assert ncells >= 2
        a, b = struct.unpack_from(e + "HH", page, 24)
        struct.pack_into(e + "HH", page, 24, b, a)

    damage_sealed(data, pgno, 512, swap_first_two_cells)
    write(db_path, data)
    with kvdb.open(db_path) as db:
        with pytest.raises(kvdb.CorruptionError) as ei:
            db.verify()
        assert ei.value.pgno == pgno, f"verify named page {ei.value.pgno}, the unsorted leaf is {pgno}"
        # keys on other pages still read correctly
        assert db.get(b"key00000") == model[b"key00000"]


def cell_offset(data, pgno, ps, i):
    """Byte offset, in the file, of cell i of a branch or leaf page (slot array at 24)."""
    return pgno * ps + struct.unpack_from("<H", data, pgno * ps + 24 + 2 * i)[0]


def branch_child(data, pgno, ps, i):
    """Child of slot i of a branch page (i == ncells: the rightmost child, the header's link)."""
    if i == struct.unpack_from("<H", data, pgno * ps + 6)[0]:
        return struct.unpack_from("<I", data, pgno * ps + 12)[0]
    return struct.unpack_from("<I", data, cell_offset(data, pgno, ps, i))[0]


def cell_key(data, pgno, ps, i):
    """(file offset of the key bytes, key) of cell i; keys under 128 bytes, not spilled."""
    off = cell_offset(data, pgno, ps, i) + (0 if data[pgno * ps + 4] == PAGE_LEAF else 4)
    assert not data[off] & 2 and data[off + 1] < 128, "a short key, not spilled, expected"
    return off + 2, bytes(data[off + 2:off + 2 + data[off + 1]])


def test_B2_verify_catches_a_key_outside_its_branch_bounds(db_path):
    """B2: every key under branch cell i is >= key[i-1] and < key[i]. Raise one separator
    (still below the next, so the branch itself stays sorted) above the first key of the
    child to its right: verify names that child."""
    build(db_path, n=3000, page_size=512, big=False)
    data = read(db_path)
    ps = 512
    for pgno, t in page_types(data, ps).items():
        if t != PAGE_BRANCH or data[branch_child(data, pgno, ps, 0) * ps + 4] != PAGE_LEAF:
            continue
        n = struct.unpack_from("<H", data, pgno * ps + 6)[0]
        for i in range(n):
            at, sep = cell_key(data, pgno, ps, i)
            right = branch_child(data, pgno, ps, i + 1)
            first, second = cell_key(data, right, ps, 0)[1], cell_key(data, right, ps, 1)[1]
            raised = second[:len(sep)]
            upper = cell_key(data, pgno, ps, i + 1)[1] if i + 1 < n else None
            if first < raised and (upper is None or raised < upper):
                break
        else:
            continue
        break
    else:
        pytest.fail("no separator found that can be raised past its right child's first key")

    def raise_separator(page):
        off = at - pgno * ps
        page[off:off + len(raised)] = raised

    damage_sealed(data, pgno, ps, raise_separator)
    write(db_path, data)
    with kvdb.open(db_path) as db:
        with pytest.raises(kvdb.CorruptionError, match="out of order") as ei:
            db.verify()
        assert ei.value.pgno == right, f"verify named page {ei.value.pgno}, out of bounds: {right}"


def test_B3_verify_catches_leaves_at_different_depths(db_path):
    """B3: all leaves are at one depth. Point the root's first child straight at that
    child's own first leaf (its keys stay inside the root's bounds, so B1 and B2 still
    hold): verify reports the leaves at different depths."""
    build(db_path, n=3000, page_size=512, big=False)
    data = read(db_path)
    ps = 512
    root = struct.unpack_from("<I", data, 1 * ps + 40)[0]       # both metas agree after a clean close
    assert data[root * ps + 4] == PAGE_BRANCH
    below = branch_child(data, root, ps, 0)
    assert data[below * ps + 4] == PAGE_BRANCH, "the tree should be at least three levels deep"
    leaf = branch_child(data, below, ps, 0)
    assert data[leaf * ps + 4] == PAGE_LEAF

    def skip_a_level(page):
        struct.pack_into("<I", page, cell_offset(data, root, ps, 0) - root * ps, leaf)

    damage_sealed(data, root, ps, skip_a_level)
    write(db_path, data)
    with kvdb.open(db_path) as db:
        with pytest.raises(kvdb.CorruptionError, match="different depths"):
            db.verify()


def test_verify_catches_wrong_entry_count_in_meta(db_path):
    build(db_path, n=100, page_size=512, big=False)
    data = read(db_path)

    def bump_entries(page):
        e = "<" if struct.unpack_from("<I", page, 8)[0] in META_PGNOS else ">"
        n = struct.unpack_from(e + "Q", page, 56)[0]
        struct.pack_into(e + "Q", page, 56, n + 1)

    for pgno in META_PGNOS:
        damage_sealed(data, pgno, 512, bump_entries)
    write(db_path, data)
    try:
        db = kvdb.open(db_path)
    except kvdb.CorruptionError:
        return
    with db:
        with pytest.raises(kvdb.CorruptionError):
            db.verify()
