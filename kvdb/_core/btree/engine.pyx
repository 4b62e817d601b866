# The B+Tree engine (engine.pxd). Recovery = the data file's meta page (the last checkpoint)
# plus a replay of the log records after it; a checkpoint writes the dirty pages and the meta,
# then resets the log. Readers without a pin read the newest root; pinned readers read their
# version's root, whose pages are never changed in place (B4) nor reused while pinned (P2).

import os
import threading

from libc.stdint cimport uint32_t, uint64_t

from kvdb._core.engine cimport Pin
from kvdb._core.file cimport FS, OsFS
from kvdb._core.wal cimport Wal
from kvdb._core.btree.pager cimport Pager
from kvdb._core.btree.tree cimport BTree
from kvdb._core.engine import replayed_ops
from kvdb._core.btree.pager import reclaim_pages

from kvdb.errors import CorruptionError, IOFailureError

DATA_FILE = "data.kvdb"                  # the page file
WAL_FILE = "wal-000001.log"              # the one log file


cdef class BTreeEngine(Engine):
    """A copy-on-write B+Tree in data.kvdb with its log in wal-000001.log."""
    marker = DATA_FILE
    marker_role = "(the page file)"
    files = (DATA_FILE, "wal-*.log")

    def __init__(self, FS fs, str path, page_size=4096, cache_size=64 << 20, checkpoint_size=64 << 20,
                 **lsm_options):
        """The options are kvdb.open's; those of the LSM engine (memtable_size, ...) are ignored."""
        self.fs = fs
        self.path = path
        self.page_size = page_size
        self.cache_size = cache_size
        self.checkpoint_size = max(checkpoint_size, 4096)
        self.blind_deletes = False
        self.maint = threading.RLock()

    cdef object recover(self):
        data_path = os.path.join(self.path, DATA_FILE)
        wal_path = os.path.join(self.path, WAL_FILE)
        if self.read_only:
            data = self.fs.open_read(data_path)
            # a missing log holds no commits (the data file is checked first, by the pager)
            wal_file = self.fs.open_read(wal_path) if self.fs.exists(wal_path) else None
            created = False
        else:
            created = not self.fs.exists(data_path)
            data = self.fs.open(data_path, True)
            wal_file = self.fs.open(wal_path, True)
            if created:
                self.fs.sync_dir(self.path)
        self.pager = Pager(data, data_path, self.page_size, self.cache_size)
        # dirty pages count against cache_size too; checkpoint when they fill three quarters
        self.dirty_limit = max(64, (self.cache_size // self.pager.page_size) * 3 // 4)
        meta = self.pager.meta
        self.tree = BTree(self.pager, meta.root, meta.entries)
        self.tree.expiring = meta.expiring
        self.seq = meta.seq
        if wal_file is None:
            return self.seq
        self.wal = Wal(wal_file, wal_path)
        records, self.recovery = self.wal.recover(meta.seq)
        for seq, payload in records:
            self.tree.apply(replayed_ops(payload, seq, wal_path), seq, 0)
            self.seq = seq
        if self.read_only:
            return self.seq              # the replayed commits stay in memory (dirty pages)
        if records:
            self.pager.checkpoint(self.seq, self.tree.root, self.tree.entries, False, self.tree.expiring)
        self.wal.reset(self.seq, True)   # fresh: no leftover of this run's torn tail survives (W3)
        if created:
            self.fs.sync_dir(self.path)
        return self.seq

    # -- reads -----------------------------------------------------------

    cdef int fill_pin(self, Pin p) except -1:
        p.root = self.tree.root
        p.entries = self.tree.entries
        p.expiring = self.tree.expiring
        p.counted = self.tree.expiring == 0
        return 0

    cdef object get(self, Pin p, bytes key):
        return self.tree.get(p.root, key, True, p.now_ms)

    cdef object get_entry(self, Pin p, bytes key):
        return self.tree.get_entry(p.root, key, True)

    cdef object get_newest(self, uint64_t seq, bytes key, uint64_t now):
        return self.tree.get(0, key, False, now)

    cdef object entry_newest(self, uint64_t seq, bytes key):
        return self.tree.get_entry(0, key, False)

    cdef object cursor(self, Pin p, object keep, object lo, object hi, bint reverse, uint64_t now):
        return self.tree.cursor(p.root, keep, lo, hi, reverse, now)

    cdef bint has_expiring(self):
        return self.tree.expiring > 0

    cdef object live_count(self):
        return self.tree.entries if self.tree.expiring == 0 else None

    # -- the commit path -------------------------------------------------

    cdef int before_commit(self) except -1:
        return 0

    cdef int apply(self, list ops, uint64_t seq) except -1:
        self.tree.apply(ops, seq, self.max_live())
        self.seq = seq
        return 0

    cdef int published(self) except -1:
        reclaim_pages(self.pager, self.min_live())
        return 0

    cdef int committed(self) except -1:
        if self.wal.write_off >= self.checkpoint_size or len(self.pager.dirty) >= self.dirty_limit:
            self.wake.set()
        return 0

    # -- maintenance -----------------------------------------------------

    cdef int checkpoint_locked(self, bint mirror) except -1:
        """Write the dirty pages and the meta (both meta copies with `mirror`), then reset the
        log (writer lock held). A failure makes the database refuse writes."""
        try:
            if self.pager.dirty or self.pager.meta.seq != self.seq or self.pager.pending_ckpt \
                    or (mirror and not self.pager.mirrored):
                self.pager.checkpoint(self.seq, self.tree.root, self.tree.entries, mirror, self.tree.expiring)
            self.wal.mark_synced(self.seq)
            self.write_gen += 1
            try:
                reclaim_pages(self.pager, self.min_live())
            finally:
                self.write_gen += 1
            self.wal.reset(self.seq)
        except BaseException as e:
            self.host()._fail(e)
            raise IOFailureError(f"checkpoint failed: {e}; the database refuses writes until reopened") from e
        return 0

    cdef int checkpoint(self) except -1:
        with self.lock:
            self.host()._check_writable()
            self.checkpoint_locked(False)
        return 0

    cdef int compact(self, object lo, object hi) except -1:
        # the tree compacts as it goes; `kvdb compact` rewrites the file
        return self.checkpoint()

    cdef int maintain(self) except -1:
        if self.wal.write_off >= self.checkpoint_size or len(self.pager.dirty) >= self.dirty_limit:
            with self.lock:
                db = self.host()
                if db is not None and db._accepting_writes():
                    self.checkpoint_locked(False)
        return 0

    cdef object verify(self):
        with self.lock:
            reachable, count, expiring = self.tree.verify(self.tree.root, True)
            if count != self.tree.entries:
                raise CorruptionError(f"{self.pager.path}: tree holds {count} keys, meta says {self.tree.entries}",
                                      path=self.pager.path)
            if expiring != self.tree.expiring:
                raise CorruptionError(f"{self.pager.path}: tree holds {expiring} keys with an expiry, meta says "
                                      f"{self.tree.expiring}", path=self.pager.path)
            free, pending, fl = self.pager.free_list_snapshot()
            owners = {}
            for name, group in (("tree", reachable), ("free", free), ("pending", pending), ("freelist", fl)):
                for pgno in group:
                    if pgno in owners and not (name == "pending" and owners[pgno] == "pending"):
                        raise CorruptionError(f"{self.pager.path}: page {pgno} is both {owners[pgno]} and {name}",
                                              path=self.pager.path, pgno=pgno)
                    owners[pgno] = name
            for pgno in range(3, self.pager.page_count):
                if pgno not in owners:
                    raise CorruptionError(f"{self.pager.path}: page {pgno} is leaked (neither in the tree "
                                          "nor free)", path=self.pager.path, pgno=pgno)
        return True

    cdef bint backup(self, Pin p, str dest) except -1:
        """A physical copy: the pages the pinned version reaches, then its meta, then an empty log."""
        reachable, _, _ = self.tree.verify(p.root, False)
        os.makedirs(dest, exist_ok=True)
        target = os.path.join(dest, DATA_FILE)
        if os.path.exists(target):
            raise FileExistsError(f"{target} exists; backup needs an empty directory")
        tmp = target + ".tmp"
        fs = OsFS()
        out = Pager(fs.open(tmp, True), tmp, self.pager.page_size, 1 << 20)
        for n, pgno in enumerate(sorted(reachable)):
            out.adopt(pgno, self.pager.get_raw(pgno))
            if n % 4096 == 4095:
                out.spill()          # bounded memory: the copy's meta is written last
        out.set_page_count(self.pager.page_count,
                           [n for n in range(3, self.pager.page_count) if n not in reachable])
        out.checkpoint(p.seq, p.root, p.entries, True, p.expiring)
        out.close()
        fs.rename(tmp, target)
        wal = Wal(fs.open(os.path.join(dest, WAL_FILE), True), os.path.join(dest, WAL_FILE))
        wal.reset(p.seq)
        wal.close()
        fs.sync_dir(dest)
        return True

    cdef dict stats(self):
        s = {"entries": self.tree.entries, "expiring_keys": self.tree.expiring,
             "wal_bytes_written": self.wal.bytes_written if self.wal is not None else 0,
             "recovery": self.recovery}     # a torn tail dropped at open (W2), or None
        s.update(self.pager.stats())
        return s

    cdef dict creation_options(self):
        return {"page_size": self.pager.page_size}

    cdef int prepare_close(self) except -1:
        return 0

    cdef int close_locked(self) except -1:
        self.checkpoint_locked(True)
        try:
            self.wal.shrink()
        except OSError as e:
            raise IOFailureError(f"shrinking the log after the final checkpoint failed: {e} "
                                 "(every commit is already durable)") from e
        return 0

    cdef int release(self) except -1:
        try:
            self.pager.close()
        finally:
            if self.wal is not None:
                self.wal.close()
        return 0
