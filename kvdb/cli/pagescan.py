"""A raw pass over data.kvdb for `kvdb check`: the file header, then every
page's checksum, page number and type, read straight from the file (the page
layout is in kvdb/_core/btree/pager.pxd). It finds damage anywhere in the file,
including free pages the tree no longer reaches; what the tree reaches is
checked again, with its invariants, by db.verify().

An all-zero page is one that was allocated but never written (a backup leaves
its free pages as holes); it is counted, not reported.

Other processes may be writing the database while it is scanned (a checkpoint
rewrites pages in place), and a page read while it was being written can come
out torn in the read alone. recheck() reads each page that failed again, a few
times a moment apart: a torn read reads well the next time, damage on disk
reads the same every time.
"""
import os
import time

from kvdb._core.btree.pager import FILE_HEADER_BYTES as HEADER_SIZE
from kvdb._core.btree.pager import FILE_MAGIC as MAGIC
from kvdb._core.btree.pager import PAGE_TYPE_NAMES as TYPES
from kvdb._core.coding import crc32c_of

CHUNK_PAGES = 256
RECHECK_ROUNDS = 5        # re-reads of the pages that failed, in rounds
RECHECK_PAUSE = 0.05      # seconds between the rounds


class ScanResult:
    def __init__(self):
        self.page_size = None
        self.pages = 0  # pages in the file, page 0 (the file header) included
        self.types = {}  # type name -> count of pages with a good checksum
        self.zero = 0  # never-written pages
        self.bad = []  # (pgno, offset, what)
        self.header_problem = None
        self.tail_bytes = 0  # bytes after the last whole page


def read_header(head):
    """(page_size, None) or (None, why the header is bad)."""
    if len(head) < HEADER_SIZE:
        return None, f"file header is truncated ({len(head)} bytes)"
    if head[:8] != MAGIC:
        return None, f"bad magic {head[:8]!r}: not a kvdb data file"
    if int.from_bytes(head[16:20], "little") != crc32c_of(head[:16]):
        return None, "file header checksum mismatch"
    ps = int.from_bytes(head[12:16], "little")
    if ps < 512 or ps > 32768 or ps & (ps - 1):
        return None, f"file header has an invalid page size {ps}"
    return ps, None


def check_page(data, pgno, ps):
    """None if the page is good, "zero" if never written, else what is wrong."""
    stored = int.from_bytes(data[0:4], "little")
    if stored != crc32c_of(data[4:ps]):
        if data == bytes(ps):
            return "zero"
        return f"checksum mismatch (stored {stored:#010x}, computed {crc32c_of(data[4:ps]):#010x})"
    own = int.from_bytes(data[8:12], "little")
    if own != pgno:
        return f"holds page number {own} (misdirected write)"
    kind = data[4]
    if kind not in TYPES:
        return f"unknown page type {kind}"
    if (kind == 5) != (pgno in (1, 2)):
        return f"{TYPES[kind]} page where {'a meta' if pgno in (1, 2) else 'no meta'} page belongs"
    return None


def scan(path, progress=None):
    """Scan the data file at path; progress(pages_done, pages_total) is called as it goes."""
    res = ScanResult()
    size = os.path.getsize(path)
    with open(path, "rb", buffering=0) as f:
        ps, why = read_header(f.read(HEADER_SIZE))
        if ps is None:
            res.header_problem = why
            return res
        res.page_size = ps
        res.pages = size // ps
        res.tail_bytes = size % ps
        pgno = 1
        while pgno < res.pages:
            n = min(CHUNK_PAGES, res.pages - pgno)
            chunk = os.pread(f.fileno(), n * ps, pgno * ps)
            view = memoryview(chunk)
            for i in range(len(chunk) // ps):
                page = view[i * ps:(i + 1) * ps]
                what = check_page(page, pgno + i, ps)
                if what is None:
                    name = TYPES[page[4]]
                    res.types[name] = res.types.get(name, 0) + 1
                elif what == "zero":
                    res.zero += 1
                else:
                    res.bad.append((pgno + i, (pgno + i) * ps, what))
            pgno += n
            if progress:
                progress(pgno, res.pages)
    return res


def recheck(path, res, rounds=RECHECK_ROUNDS, pause=RECHECK_PAUSE):
    """Read the pages of res.bad again, up to `rounds` times `pause` seconds apart; a page that
    now reads well is counted as such and leaves res.bad."""
    if not res.bad or res.page_size is None:
        return res
    ps = res.page_size
    with open(path, "rb", buffering=0) as f:
        for _ in range(rounds):
            time.sleep(pause)
            still = []
            for pgno, offset, what in res.bad:
                page = os.pread(f.fileno(), ps, offset)
                now = check_page(page, pgno, ps) if len(page) == ps else what
                if now is None:
                    name = TYPES[page[4]]
                    res.types[name] = res.types.get(name, 0) + 1
                elif now == "zero":
                    res.zero += 1
                else:
                    still.append((pgno, offset, what))
            res.bad = still
            if not still:
                break
    return res
