# The B+Tree engine (engine.pxd). Recovery = the data file's meta page (the last checkpoint)
# plus a replay of the log records after it; a checkpoint writes the dirty pages and the meta,
# then resets the log. Readers without a pin read the newest root; pinned readers read their
# version's root, whose pages are never changed in place (B4) nor reused while pinned (P2).

import os
import threading
import weakref

from libc.stdint cimport uint32_t, uint64_t

from kvdb._core.engine cimport Pin
from kvdb._core.file cimport FS, OsFS
from kvdb._core.wal cimport Wal
from kvdb._core.untracked cimport keys_committed
from kvdb._core.wal cimport decode_checked, keys_of_checked
from kvdb._core.btree.pager cimport CheckpointPlan, Pager
from kvdb._core.btree.tree cimport BTree
from kvdb._core.engine import replayed_ops
from kvdb._core.btree.pager import reclaim_pages
from kvdb._core.btree.shared import SHM_FILE_SUFFIX
from kvdb._core.btree.shared cimport SharedMemory
from kvdb._core.wal cimport WAL_HEADER_SIZE
from kvdb._core.file cimport File

from kvdb.errors import CorruptionError, IOFailureError, ReadOnlyError

DATA_FILE = "data.kvdb"                  # the page file
WAL_FILE = "wal-000001.log"              # the one log file
LOG_RECYCLE_FACTOR = 4                   # log bytes, in checkpoint_size units, past which a checkpoint
                                         # holds the writer lock throughout to recycle the log
TAIL_FACTOR = 8                          # a background checkpoint whose commits-meanwhile took at most
                                         # checkpoint_size / TAIL_FACTOR of log writes them under the lock
cdef int REBASES_UNLOCKED = 4           # rounds of lock_shared_log_current() that let the commit mutex go
                                         # to rebase without it


class LogMoved(Exception):
    """The published records were not whole in the log when read: (message, offset)."""


cdef class BTreeEngine(Engine):
    """A copy-on-write B+Tree in data.kvdb with its log in wal-000001.log."""
    marker = DATA_FILE
    marker_role = "(the page file)"
    files = (DATA_FILE, "wal-*.log", DATA_FILE + SHM_FILE_SUFFIX)
    lock_role = "member"                 # any number of opens, in any processes, read and write

    def __init__(self, FS fs, str path, page_size=4096, cache_size=64 << 20, checkpoint_size=64 << 20,
                 read_path="mmap", **lsm_options):
        """The options are kvdb.open's; those of the LSM engine (memtable_size, ...) are ignored."""
        self.fs = fs
        self.path = path
        self.page_size = page_size
        self.cache_size = cache_size
        self.checkpoint_size = max(checkpoint_size, 4096)
        self.map_reads = read_path == "mmap"
        self.blind_deletes = False
        self.maint = threading.RLock()

    cdef object recover(self):
        data_path = os.path.join(self.path, DATA_FILE)
        wal_path = os.path.join(self.path, WAL_FILE)
        self.old_views = []
        self.rebases = self.caught_up = self.rebases_locked = 0
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
        self.data = data
        if isinstance(self.fs, OsFS) and not self.detached:
            try:
                self.shm = SharedMemory(data_path + SHM_FILE_SUFFIX, self.first_open)
            except OSError as e:
                if not self.read_only:
                    raise
                if not self.first_open:
                    raise ReadOnlyError(
                        f"{data_path}{SHM_FILE_SUFFIX}: a read-only open beside other opens registers in the "
                        f"shared-memory file, which this process cannot write ({e.strerror}); open it when no "
                        "other process has the database open, or with write access to that file") from e
                self.shm = None          # read-only media or directory, and no other open: nothing moves
        if self.shm is not None and not self.first_open:
            return self.join(data, data_path, wal_file, wal_path)
        if self.shm is not None:
            self.shm.claim_slot(0)       # protects everything until the meta is known (O2)
        self.open_view(data, data_path, self.shm is not None)
        meta = self.pager.meta
        if wal_file is None:
            if self.shm is not None:
                self.shm.publish(self.seq, 0, 0, self.seq, self.base_gen)
                self.shm.set_base(self.base_gen, self.seq)
            return self.seq
        self.wal = Wal(wal_file, wal_path)
        records, self.recovery = self.wal.recover(meta.seq)
        for seq, payload in records:
            self.tree.apply(replayed_ops(payload, seq, wal_path), seq, 0)
            self.seq = seq
        if not self.read_only:
            if records:
                self.pager.checkpoint(self.seq, self.tree.root, self.tree.entries, False, self.tree.expiring)
                self.set_base_gen(self.pager.meta.generation)
            self.wal.reset(self.seq, True)   # fresh: no leftover of this run's torn tail survives (W3)
            if created:
                self.fs.sync_dir(self.path)
        # else: the replayed commits stay in memory (dirty pages)
        if self.shm is not None:
            self.attach_wal()
            self.publish(self.seq)
            if not self.read_only:
                self.shm.set_recovered()
            self.shm.set_base(self.base_gen, self.seq)
        return self.seq

    cdef int open_view(self, File data, str data_path, bint shared) except -1:
        """The pager and tree of the meta the data file holds now: this open's first view."""
        self.pager = Pager(data, data_path, self.page_size, self.cache_size, shared, self.map_reads)
        # dirty pages count against cache_size too; checkpoint when they fill three quarters
        self.dirty_limit = max(64, (self.cache_size // self.pager.page_size) * 3 // 4)
        meta = self.pager.meta
        self.tree = BTree(self.pager, meta.root, meta.entries)
        self.tree.expiring = meta.expiring
        self.seq = meta.seq
        self.set_base_gen(meta.generation)
        return 0

    def join(self, File data, str data_path, File wal_file, str wal_path):
        """Open a database other opens already have: under the commit mutex, register this open
        (O2), read the meta page, and replay the log up to the last published commit, in memory.
        The first writable open after only read-only ones runs recovery's writes (checkpoint,
        fresh log) here, since no recovery ran for the file yet."""
        self.lock_shared_log()
        try:
            commit_seq, log_end, salt, base, gen, pub = self.shm.published()
            self.seen_pub = pub
            self.shm.claim_slot(gen)
            self.open_view(data, data_path, True)
            self.shm.set_base(min(gen, self.base_gen), self.seq)
            if wal_file is None:
                return self.seq
            self.wal = Wal(wal_file, wal_path)
            self.attach_wal()
            if salt:
                if base > self.seq:
                    raise CorruptionError(f"{wal_path}: the log starts after commit {base} but the meta page "
                                          f"holds only up to commit {self.seq}", path=wal_path)
                self.wal.adopt(<uint32_t>salt, base, WAL_HEADER_SIZE, base)
                try:
                    records = self.published_records(commit_seq, log_end, <uint32_t>salt, base, self.seq, True)
                except LogMoved as e:        # the commit mutex is held: nothing moves
                    raise CorruptionError(e.args[0], path=wal_path, offset=e.args[1]) from None
                self.apply_records(self.tree, records)
                if records:
                    self.seq = commit_seq
                self.wal.adopt(<uint32_t>salt, base, log_end, self.seq)
            if not self.read_only and not self.shm.recovered:
                # recovery's writes, which the read-only opens before this one could not do
                if self.seq > self.pager.meta.seq:
                    self.pager.checkpoint(self.seq, self.tree.root, self.tree.entries, False, self.tree.expiring)
                    self.set_base_gen(self.pager.meta.generation)
                self.wal.reset(self.seq, True)
                self.publish(self.seq)
                self.shm.set_recovered()
            self.shm.set_base(self.base_gen, self.seq)
            return self.seq
        finally:
            self.unlock_shared_log()

    def attach_wal(self):
        shm = self.shm
        self.wal.peer_synced = lambda: shm.synced_seq
        self.wal.note_synced = shm.note_synced

    cdef list published_records(self, uint64_t commit_seq, uint64_t log_end, uint32_t salt, uint64_t base,
                                uint64_t after, bint decode):
        """The log's records after seq `after` up to the published commit_seq, read from the log
        generation `salt` (based at `base`): decoded, [(seq, ops)], or checked, [(seq, payload)]
        (Wal.read_after); LogMoved if the log does
        not hold exactly the records up to commit_seq there: another open recycled it while this
        one read it (the caller looks again), or it is damaged."""
        cdef uint64_t start, first, last
        start = WAL_HEADER_SIZE if (salt != self.wal.salt or after < self.wal.base_seq or
                                    self.wal.write_off <= WAL_HEADER_SIZE or after != self.wal.written_seq) \
            else self.wal.write_off
        first = base + 1 if start == WAL_HEADER_SIZE else after + 1
        records = self.wal.read_after(salt, start, log_end, first, after, decode, &last)
        if records is None or last != commit_seq:
            raise LogMoved(f"{self.wal.path}: commits up to {commit_seq} were published by another open but the "
                           f"log does not hold them whole between offsets {start} and {log_end}", start)
        return records

    cdef list apply_records(self, BTree tree, list records):
        """Apply decoded records [(seq, ops)] to `tree`; [(seq, keys)]."""
        applied = []
        for seq, ops in records:
            tree.apply(ops, seq, self.max_live())
            applied.append(keys_committed(seq, ops))
        return applied

    # -- reads -----------------------------------------------------------

    cdef int fill_pin(self, Pin p) except -1:
        p.view = self.tree
        p.root = self.tree.root
        p.entries = self.tree.entries
        p.expiring = self.tree.expiring
        p.counted = True                 # entries counts what is stored, expired or not (len())
        return 0

    cdef object get(self, Pin p, bytes key):
        return (<BTree>p.view).get(p.root, key, True, p.now_ms)

    cdef object get_entry(self, Pin p, bytes key):
        return (<BTree>p.view).get_entry(p.root, key, True)

    cdef object get_newest(self, uint64_t seq, bytes key, uint64_t now):
        return self.tree.get(0, key, False, now)

    cdef object entry_newest(self, uint64_t seq, bytes key):
        return self.tree.get_entry(0, key, False)

    cdef object cursor(self, Pin p, object keep, object lo, object hi, bint reverse, uint64_t now):
        return (<BTree>p.view).cursor(p.root, keep, lo, hi, reverse, now)

    cdef bint has_expiring(self):
        return self.tree.expiring > 0

    cdef object live_count(self):
        return self.tree.entries

    # -- the commit path -------------------------------------------------

    # -- other opens of the database (docs/format/shm.md) -------------------

    cdef bint stale(self):
        # a commit, a checkpoint or a recycled log: every publication changes `pub`
        return self.shm is not None and self.shm.pub_now() != self.seen_pub

    cdef list catch_up(self):
        """Apply what other opens committed; a view on a meta older than the newest one (another
        open checkpointed) is rebuilt on the newest (rebase). Writer lock held, write_gen odd."""
        cdef uint32_t salt
        if self.shm is None:
            return []
        checked = self.read_published()
        if checked is not None:
            self.apply_published(checked)
            return [keys_of_checked((<tuple>r)[0], (<tuple>r)[1]) for r in checked]
        while True:
            commit_seq, log_end, salt_, base, gen, pub = self.shm.published()
            salt = <uint32_t>salt_
            try:
                applied = self.rebase(commit_seq, log_end, salt, base)
            except LogMoved as e:
                if self.shm.pub_now() != pub:
                    continue             # the log moved on while it was read: look again
                raise CorruptionError(e.args[0], path=self.wal.path, offset=e.args[1]) from None
            break
        self.caught_up += len(applied)
        self.seen_pub = pub
        self.shm.set_base(self.oldest_view_gen(), self.seq)
        return applied

    cdef list read_published(self):
        # Also without the commit mutex (catch_up): if another open recycles the log meanwhile,
        # the records read do not check out (their salt is the old one), `pub` has moved, and it
        # looks again.
        cdef uint32_t salt
        if self.shm is None:
            return []
        while True:
            commit_seq, log_end, salt_, base, gen, pub = self.shm.published()
            salt = <uint32_t>salt_
            if self.outdated(gen, salt, base):
                return None                  # a rebase: catch_up() builds the new view now
            if commit_seq <= self.seq:
                self.seen_pub = pub
                return []
            try:
                records = self.published_records(commit_seq, log_end, salt, base, self.seq, False)
            except LogMoved as e:
                if self.shm.pub_now() != pub:
                    continue
                raise CorruptionError(e.args[0], path=self.wal.path, offset=e.args[1]) from None
            break
        self.wal.adopt(salt, base, log_end, commit_seq)
        self.seen_pub = pub
        return records

    cdef int apply_published(self, list records) except -1:
        for seq, payload in records:
            self.tree.apply(decode_checked(payload), seq, self.max_live())
            self.seq = seq
        self.caught_up += len(records)
        self.shm.set_base(self.oldest_view_gen(), self.seq)
        return 0

    cdef list rebase(self, uint64_t commit_seq, uint64_t log_end, uint32_t salt, uint64_t base):
        """A new view on the newest meta: a pager and tree read from it, the clean pages of the
        old view that are still live in it, then the log's records after the meta's seq. Pins
        keep the old view (and its pages, on disk kept by this open's base generation, O2).
        Nothing changes until the new view is complete."""
        cdef Pager pager
        cdef BTree tree
        old_tree, old_gen, old_seq = self.tree, self.base_gen, self.seq
        pager = Pager(self.data, self.pager.path, self.pager.page_size, self.cache_size, True, self.map_reads)
        pager.share_map(self.pager)      # the meta is another open's: its pages are checked again (V2)
        meta = pager.meta
        if meta.seq > commit_seq:
            raise LogMoved(f"{pager.path}: meta page of generation {meta.generation} holds commit {meta.seq}, "
                           f"past commit {commit_seq}, the last one published", 0)
        records = []
        if salt != 0 and commit_seq > meta.seq:
            if base > meta.seq:
                raise LogMoved(f"{self.wal.path}: the log starts after commit {base} but the newest meta page "
                               f"holds only up to commit {meta.seq}", 0)
            self.wal.adopt(salt, base, WAL_HEADER_SIZE, base)
            records = self.published_records(commit_seq, log_end, salt, base, meta.seq, True)
        pager.adopt_clean(self.pager)
        tree = BTree(pager, meta.root, meta.entries)
        tree.expiring = meta.expiring
        replayed = self.apply_records(tree, records)
        if self.pins:
            self.old_views.append((weakref.ref(old_tree), old_gen))
        self.pager, self.tree = pager, tree
        self.seq = commit_seq if records else meta.seq
        self.set_base_gen(meta.generation)
        self.rebases += 1
        self.rebases_locked += self.holding
        if salt != 0:
            self.wal.adopt(salt, base, log_end, self.seq)
        applied = [] if old_seq >= meta.seq else [(meta.seq, None)]   # commits this open never saw
        applied.extend([r for r in replayed if (<tuple>r)[0] > old_seq])
        return applied

    cdef int set_base_gen(self, uint64_t gen) except -1:
        """The current view now stands on the meta of generation `gen` (a checkpoint, a rebase):
        pins taken from now on read pages of that generation or newer."""
        if self.gen_log is None:
            self.gen_log = []
        if gen != self.base_gen or not self.gen_log:
            self.gen_log.append((self.seq, gen))
        self.base_gen = gen
        return 0

    cdef uint64_t oldest_view_gen(self):
        """The oldest meta generation whose pages this open may still read (O2): its current
        view's, that of the oldest live pin (which may read pages its own later checkpoints
        freed), and that of earlier views pins still read."""
        cdef uint64_t oldest = self.base_gen, first_seq
        if self.pins:
            first_seq = min(self.pins)
            # The generation in force when a pin at first_seq was taken: the last one that began
            # before that seq (one that began at it may have come after the pin: the older counts).
            keep = 0
            for i in range(len(self.gen_log)):
                if (<tuple>self.gen_log[i])[0] < first_seq:
                    keep = i
            gen = (<tuple>self.gen_log[keep])[1] if self.gen_log else oldest
            if gen < oldest:
                oldest = gen
            if keep:
                del self.gen_log[:keep]
        elif self.gen_log is not None and len(self.gen_log) > 1:
            self.gen_log = [(self.seq, self.base_gen)]
        if self.old_views:
            self.old_views = [(ref, gen) for ref, gen in self.old_views if ref() is not None]
            for _, gen in self.old_views:
                if gen < oldest:
                    oldest = gen
        return oldest

    cdef int lock_shared_log(self) except -1:
        self.shm.lock()
        self.holding = True
        if self.shm.owner_died:
            self.repair()
        return 0

    cdef int lock_shared_log_current(self) except -1:
        """Writer lock held: take the commit mutex for a commit or a checkpoint. If another open's
        checkpoint is found under it, the view must be rebuilt (a rebase replays the log after the
        new meta, which can take long): let the mutex go, rebase without it, so that the other
        opens' commits do not queue behind the replay, and take it again; after REBASES_UNLOCKED
        rounds the caller's catch-up under the mutex does it."""
        cdef int rounds
        for rounds in range(REBASES_UNLOCKED):
            self.lock_shared_log()
            if not self.rebase_due():
                return 0
            self.unlock_shared_log()
            self.host()._catch_up_locked()
        return self.lock_shared_log()

    cdef int unlock_shared_log(self) except -1:
        if self.holding:
            self.holding = False
            self.shm.unlock()
        return 0

    cdef int repair(self) except -1:
        """The open that held the commit mutex died (O3): publish what the files hold. A record
        it wrote whole counts as committed, as recovery at open would count it; a log it recycled
        after its checkpoint is read from the new header."""
        commit_seq, log_end, salt, base, gen, _ = self.shm.published()
        header = self.wal.read_header() if self.wal is not None else None
        probe = Pager(self.data, os.path.join(self.path, DATA_FILE), self.page_size, 1 << 16, True)
        gen = probe.meta.generation
        if header is not None and header[0] != salt:
            salt, base = header
            found = self.wal.read_records(<uint32_t>salt, WAL_HEADER_SIZE, 0, base + 1)
        elif header is not None:
            found = self.wal.read_records(<uint32_t>salt, log_end, 0, commit_seq + 1)
        else:
            found = None
        if found is not None:
            records, log_end = found
            if records:
                commit_seq = records[-1][0]
            elif header is not None and header[0] == salt:
                pass
            else:
                commit_seq = max(base, probe.meta.seq)
        self.shm.publish(commit_seq, log_end, salt, base, gen)
        return 0

    cdef int publish(self, uint64_t seq) except -1:
        """Publish commit `seq` (this open's newest, or the record it just appended) and the log's
        state (O1)."""
        self.seen_pub = self.shm.publish(seq, self.wal.write_off if self.wal is not None else 0,
                         self.wal.salt if self.wal is not None else 0,
                         self.wal.base_seq if self.wal is not None else seq, self.base_gen)
        return 0

    cdef int begin_commit(self) except -1:
        if self.shm is not None:
            self.lock_shared_log_current()
        return 0

    cdef bint rebase_due(self) except -1:
        """catch_up() would rebuild the view rather than apply a few records (another open
        checkpointed): lock_shared_log_current() does it without the commit mutex."""
        if self.shm is None or not self.stale():
            return False
        commit_seq, log_end, salt, base, gen, pub = self.shm.published()
        return self.outdated(gen, <uint32_t>salt, base)

    cdef bint outdated(self, uint64_t gen, uint32_t salt, uint64_t base):
        """What the opens published (meta generation `gen`, log generation `salt` based at
        `base`) cannot be reached from this view by applying records: another open checkpointed,
        or recycled the log past commits this open never applied. Only a rebase catches up."""
        return gen != self.base_gen or (salt != self.wal.salt and self.seq < base)

    cdef int end_commit(self) except -1:
        if self.holding:
            try:
                if self.wal.written_seq > self.shm.commit_seq():
                    self.publish(self.wal.written_seq)   # O1: the record is whole in the log
            finally:
                self.unlock_shared_log()
        return 0

    cdef int before_commit(self) except -1:
        return 0

    cdef int apply(self, list ops, uint64_t seq) except -1:
        self.tree.apply(ops, seq, self.max_live())
        self.seq = seq
        return 0

    cdef int apply_pairs(self, list keys, list values, uint64_t seq) except -1:
        self.tree.apply_pairs(keys, values, seq, self.max_live())
        self.seq = seq
        return 0

    cdef int published(self) except -1:
        if self.shm is not None and (self.pager.pending_gen or self.pager.gen_gate):
            self.pager.reuse_gen = self.shm.min_base(self.oldest_view_gen())   # P5
        reclaim_pages(self.pager, self.min_live())
        return 0

    cdef bint checkpoint_due(self):
        """The log holds checkpoint_size bytes past this open's last checkpoint, or the dirty pages
        fill three quarters of the cache (writer lock held, or a hint read without it)."""
        cdef uint64_t off = self.wal.write_off
        cdef uint64_t covered = self.log_covered if self.log_covered <= off else 0
        return off - covered >= self.checkpoint_size or len(self.pager.dirty) >= self.dirty_limit

    cdef int committed(self) except -1:
        if len(self.pager.dirty) >= self.dirty_limit:
            self.spill()
        if self.checkpoint_due():
            self.wake.set()
        return 0

    cdef int spill(self) except -1:
        """Write the oldest dirty pages ahead of the checkpoint, down to half of dirty_limit
        (Pager.spill_dirty, P7), so that writes touching more pages than the cache holds go on
        with the OS page cache holding the rest: a checkpoint then comes with the log's size, and
        a page changed again before it is written once more in place, not copied. Writer lock
        held. Where this open may not write the file now (may_spill), the pages stay dirty and
        trigger a checkpoint, as before. A failed write makes the database refuse writes until
        it is reopened; the commit that came before is in the log."""
        db = self.host()
        if db is None or not db._accepting_writes() or not self.may_spill():
            return 0
        try:
            self.pager.spill_dirty(self.dirty_limit // 2)
        except BaseException as e:
            db._fail(IOFailureError(f"writing dirty pages ahead of the checkpoint failed: {e}; the database "
                                    "refuses writes until reopened (every commit so far is in the log)"))
            if not isinstance(e, Exception):
                raise                    # KeyboardInterrupt, SystemExit: not the caller's to lose
        return 0

    cdef bint may_spill(self) except -1:
        """Whether this open alone may write the data file until its next checkpoint (P7): always
        without shared memory; else it holds the checkpoint lock (O4), taken without waiting while
        no checkpoint of its own is under way, its view stands on the newest published meta, and
        no meta newer than that one is in the file (one a dead holder wrote, which O3's repair
        would publish). The lock is kept until a checkpoint takes the pages (unlock_checkpoints)."""
        if self.shm is None or self.spill_lock:
            return True
        if not self.maint.acquire(False):
            return False                 # this open is checkpointing: it lets go of the lock after
        try:
            if not self.shm.try_lock_checkpoints():
                return False
            if self.stale() or self.pager.newest_generation() != self.pager.meta.generation:
                self.shm.unlock_checkpoints()
                return False
            self.spill_lock = True
            return True
        finally:
            self.maint.release()

    # -- maintenance -----------------------------------------------------
    #
    # Locks, always taken in this order: `maint` (one checkpoint of this open at a time; close
    # waits for it), the checkpoint lock (one checkpoint of the file at a time, across opens and
    # processes: O4), the writer lock, the commit mutex.

    cdef int lock_checkpoints(self) except -1:
        if self.shm is not None:
            self.shm.lock_checkpoints()
        return 0

    cdef int unlock_checkpoints(self) except -1:
        """Let go of the checkpoint lock (writer lock not held), unless pages this open wrote
        ahead still wait for a checkpoint (P7)."""
        if self.shm is not None:
            if self.spill_lock:
                with self.lock:          # spill decides under it
                    if self.pager.spilled.count:
                        return 0
                    self.spill_lock = False
            self.shm.unlock_checkpoints()
        return 0

    cdef int checkpoint_locked(self, bint mirror) except -1:
        """Write the dirty pages and the meta (both meta copies with `mirror`), then reset the
        log, all under the writer lock (`maint` and the checkpoint lock held too). A failure makes
        the database refuse writes."""
        cdef bint took = False
        try:
            if self.shm is not None and not self.holding:
                # Only the newest view may be checkpointed, by one open at a time: take the commit
                # mutex (rebased onto another open's newer checkpoint without it) and catch up.
                self.lock_shared_log_current()
                took = True
                if self.stale():
                    self.host()._catch_up_locked()
            if self.pager.dirty or self.pager.meta.seq != self.seq or self.pager.pending_ckpt \
                    or (mirror and not self.pager.mirrored):
                self.pager.checkpoint(self.seq, self.tree.root, self.tree.entries, mirror, self.tree.expiring)
                self.set_base_gen(self.pager.meta.generation)
            self.publish_checkpoint(self.seq)
        except BaseException as e:
            self.host()._fail(e)
            raise IOFailureError(f"checkpoint failed: {e}; the database refuses writes until reopened") from e
        finally:
            if took:
                self.unlock_shared_log()
        return 0

    cdef int checkpoint_beside_commits(self, bint forced) except -1:
        """The background checkpoint (`maint` and the checkpoint lock held): choose the pages of
        the newest version under the writer lock, write and fsync them without it while commits
        go on (P6), then take it again (and the commit mutex) to write the meta and publish it.
        If commits came meanwhile, the log is recycled only if they are few (then a second
        checkpoint writes them under the lock); else it keeps growing, and once it holds
        LOG_RECYCLE_FACTOR times checkpoint_size the checkpoint holds the writer lock throughout,
        to recycle it."""
        cdef CheckpointPlan plan
        cdef bint took = False
        cdef uint64_t seq, log_off
        with self.lock:
            db = self.host()
            if db is None or not db._accepting_writes() or not (forced or self.checkpoint_due()):
                return 0
            if self.wal.write_off >= LOG_RECYCLE_FACTOR * self.checkpoint_size or not (
                    self.pager.dirty or self.pager.pending_ckpt or self.pager.meta.seq != self.seq):
                return self.checkpoint_locked(False)
            try:
                if self.shm is not None:
                    self.lock_shared_log_current()
                    took = True
                    if self.stale():
                        db._catch_up_locked()    # the newest meta's free pages are the ones to use
                seq = self.seq
                log_off = self.wal.write_off
                plan = self.pager.begin_checkpoint(seq, self.tree.root, self.tree.entries, self.tree.expiring)
            except BaseException as e:
                db._fail(e)
                raise IOFailureError(f"checkpoint failed: {e}; the database refuses writes until reopened") from e
            finally:
                if took:
                    self.unlock_shared_log()
                    took = False
        try:
            # The log stays, and its records up to seq may be unsynced there: recovery needs none
            # of them (the meta holds them), and a later record saying seq is durable (`synced`)
            # is not taken as mid-log damage, since W2 looks only past the meta's seq.
            self.pager.write_checkpoint_pages(plan)
        except BaseException as e:
            with self.lock:
                self.pager.abort_checkpoint(plan)
                db._fail(e)
            raise IOFailureError(f"checkpoint failed: {e}; the database refuses writes until reopened") from e
        with self.lock:
            try:
                if self.shm is not None:
                    self.lock_shared_log()
                    took = True
                    if self.stale():
                        db._catch_up_locked()    # publish no commit count below the published one
                self.pager.write_checkpoint_meta(plan, False)
                self.pager.end_checkpoint(plan)
                self.set_base_gen(plan.meta.generation)
                self.log_covered = log_off
                self.publish_checkpoint(seq)
            except BaseException as e:
                if plan.slot == 0:               # the meta was not written: the pages stay dirty
                    self.pager.abort_checkpoint(plan)
                db._fail(e)
                raise IOFailureError(f"checkpoint failed: {e}; the database refuses writes until reopened") from e
            finally:
                if took:
                    self.unlock_shared_log()
            if self.seq != seq and log_off <= self.wal.write_off <= log_off + self.checkpoint_size // TAIL_FACTOR:
                # Few commits came meanwhile: write their pages too, under the lock, so that the
                # log is recycled now rather than left to grow.
                self.checkpoint_locked(False)
        return 0

    cdef int publish_checkpoint(self, uint64_t seq) except -1:
        """The meta holding commits up to `seq` is durable (writer lock and, if shared, the commit
        mutex held): tell the log and the other opens, let freed pages go, and recycle the log
        if the meta holds every commit in it."""
        self.wal.mark_synced(seq)
        self.write_gen += 1
        try:
            if self.shm is not None:
                self.publish(self.seq)   # O1: the meta is durable
                self.shm.set_base(self.oldest_view_gen(), self.seq)
                self.pager.reuse_gen = self.shm.min_base(self.oldest_view_gen())
            reclaim_pages(self.pager, self.min_live())
        finally:
            self.write_gen += 1
        if self.seq == seq:
            if self.wal.base_seq != self.seq or self.wal.write_off > WAL_HEADER_SIZE:
                self.wal.reset(self.seq)
                if self.shm is not None:
                    self.publish(self.seq)
            self.log_covered = self.wal.write_off
        return 0

    cdef int checkpoint(self) except -1:
        with self.maint:
            self.lock_checkpoints()
            try:
                with self.lock:
                    self.host()._check_writable()
                    self.checkpoint_locked(False)
            finally:
                self.unlock_checkpoints()
        return 0

    cdef int compact(self, object lo, object hi) except -1:
        # the tree compacts as it goes; `kvdb compact` rewrites the file
        return self.checkpoint()

    cdef int maintain(self) except -1:
        cdef bint hand_over
        if self.read_only:
            return 0
        # P7: pages written ahead keep the checkpoint lock; with other opens, checkpoint them at
        # this background step (about once a second), so that the others' checkpoints, and the
        # dirty pages they hold meanwhile, wait no longer than that.
        hand_over = self.spill_lock and self.shm is not None and len(self.shm.live_opens()) > 1
        if hand_over or self.checkpoint_due():
            with self.maint:
                self.lock_checkpoints()
                try:
                    self.checkpoint_beside_commits(hand_over)
                finally:
                    self.unlock_checkpoints()
        return 0

    def _check_search(self, list keys):
        """For tests: BTree._check_search on the newest version (A1 in tree_heads.pxi)."""
        with self.lock:
            return self.tree._check_search(keys)

    def _check_cache_cost(self):
        """For tests: Pager._check_ring_cost of the current view."""
        with self.lock:
            return self.pager._check_ring_cost()

    cdef object verify(self):
        with self.maint, self.lock:      # no checkpoint half done (P6: its pages are not yet on disk)
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
        cdef BTree tree = <BTree>p.view      # the pinned version's view (another open may have rebased this one's)
        cdef Pager pager = tree.pager
        reachable, _, _ = tree.verify(p.root, False)
        os.makedirs(dest, exist_ok=True)
        target = os.path.join(dest, DATA_FILE)
        if os.path.exists(target):
            raise FileExistsError(f"{target} exists; backup needs an empty directory")
        tmp = target + ".tmp"
        fs = OsFS()
        out = Pager(fs.open(tmp, True), tmp, pager.page_size, 1 << 20)
        for n, pgno in enumerate(sorted(reachable)):
            out.adopt(pgno, pager.get_raw(pgno))
            if n % 4096 == 4095:
                out.spill()          # bounded memory: the copy's meta is written last
        out.set_page_count(pager.page_count,
                           [n for n in range(3, pager.page_count) if n not in reachable])
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
             "opens": len(self.shm.live_opens()) if self.shm is not None else 1,
             "rebases": self.rebases, "rebases_under_commit_mutex": self.rebases_locked,
             "commits_caught_up": self.caught_up,
             "wal_bytes_written": self.wal.bytes_written if self.wal is not None else 0,
             "recovery": self.recovery}     # a torn tail dropped at open (W2), or None
        s.update(self.pager.stats())
        return s

    cdef dict creation_options(self):
        return {"page_size": self.pager.page_size}

    cdef int prepare_close(self) except -1:
        return 0

    cdef int close_locked(self, bint last) except -1:
        if not last:
            return 0                     # the other opens go on; the log holds every commit
        self.lock_checkpoints()          # `maint` is held: no checkpoint of this open is under way
        try:
            self.checkpoint_locked(True)
            try:
                self.pager.release_free_space()   # the last open: free pages' blocks back, as holes
            except OSError:
                pass                     # only space: every commit is durable already
        finally:
            self.spill_lock = False      # closing: nothing is read from the pages written ahead now
            if self.shm is not None:
                self.shm.unlock_checkpoints()
        try:
            self.wal.shrink()
        except OSError as e:
            raise IOFailureError(f"shrinking the log after the final checkpoint failed: {e} "
                                 "(every commit is already durable)") from e
        return 0

    cdef int forget(self) except -1:
        if self.shm is not None:
            self.shm.forget()
        return 0

    cdef int release(self) except -1:
        try:
            if self.shm is not None:
                self.shm.close()
            self.pager.close()
        finally:
            if self.wal is not None:
                self.wal.close()
        return 0
