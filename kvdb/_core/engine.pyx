# The engine contract (engine.pxd) and what both engines share: the Pin, and the decoding of
# a log record during recovery. Each method of Engine here only names the contract; the
# implementations are BTreeEngine (btree/engine.pyx) and LsmEngine (lsm/engine.pyx).

from kvdb._core.wal import decode_ops
from kvdb._core.wal cimport pairs_as_ops, undecodable

from kvdb.errors import ClosedError, CorruptionError


cdef class Pin:

    cdef Pin copy(self):
        cdef Pin p = Pin.__new__(Pin)
        p.pins = self.pins
        p.seq = self.seq
        p.root = self.root
        p.entries = self.entries
        p.expiring = self.expiring
        p.counted = self.counted
        p.now_ms = self.now_ms
        p.view = self.view
        self.pins[p.seq] = self.pins.get(p.seq, 0) + 1
        return p

    def clone(self):
        """Another pin on the same version (an iterator must outlive its snapshot safely)."""
        if self.released:
            raise ClosedError("snapshot is closed")
        return self.copy()

    def release(self):
        if not self.released:
            self.released = True
            self.view = None
            unpin(self.pins, self.seq)

    def __dealloc__(self):
        if not self.released and self.pins is not None:
            try:
                unpin(self.pins, self.seq)
            except Exception:
                pass


cdef inline void unpin(dict pins, uint64_t seq):
    n = pins.get(seq, 0) - 1
    if n <= 0:
        pins.pop(seq, None)
    else:
        pins[seq] = n


def replayed_ops(bytes payload, uint64_t seq, str path):
    """The operations of a log record being replayed; CorruptionError naming the file if a
    record whose checksum is valid does not decode."""
    try:
        return decode_ops(payload)
    except ValueError:
        raise undecodable(path, seq) from None


cdef class EngineCursor:

    cdef object next_item(self):
        raise NotImplementedError

    cpdef int finish(self) except -1:
        raise NotImplementedError

    def __iter__(self):
        return self

    def __next__(self):
        item = self.next_item()
        if item is None:
            raise StopIteration
        return item


cdef class Engine:
    """The storage engine contract. `marker` is the file whose presence in a directory says it
    holds this engine's database (detect_engine in database.pyx), `marker_role` what it does;
    `files` the name patterns of every file such a directory holds besides the LOCK file;
    `remnants` those that, without the marker, mean a damaged database of this engine."""
    marker = None
    marker_role = ""
    files = ()
    remnants = ()

    cdef object recover(self):
        """Open the files and replay the log; returns the last committed seq. With `read_only`,
        nothing is written: the replayed commits stay in memory."""
        raise NotImplementedError

    cdef int fill_pin(self, Pin p) except -1:
        """Record the newest version's handle in p (writer lock held)."""
        raise NotImplementedError

    cdef object get(self, Pin p, bytes key):
        """The value of key in the pinned version, None if absent or expired at p.now_ms."""
        raise NotImplementedError

    cdef object get_entry(self, Pin p, bytes key):
        """(value, expires) of key in the pinned version, expired or not, or None."""
        raise NotImplementedError

    cdef object get_newest(self, uint64_t seq, bytes key, uint64_t now):
        """The value of key in the newest version `seq`, None if absent or expired at `now`."""
        raise NotImplementedError

    cdef object entry_newest(self, uint64_t seq, bytes key):
        """(value, expires) of key in the newest version, expired or not, or None."""
        raise NotImplementedError

    cdef object cursor(self, Pin p, object keep, object lo, object hi, bint reverse, uint64_t now):
        """An ordered cursor over the pinned version in [lo, hi), skipping entries expired at
        `now` (0: none); `keep` (a pin, or None) lives as long as it."""
        raise NotImplementedError

    cdef bint has_expiring(self):
        """Some key may carry an expiry (the expiry sweep has work)."""
        raise NotImplementedError

    cdef object live_count(self):
        """The number of live keys now, when the engine knows it in O(1); else None."""
        raise NotImplementedError

    cdef bint stale(self):
        """Another open (another process) committed since this one last caught up, or replaced
        what it reads (a checkpoint): catch_up() has work. Called before every read without a
        lock, so it must be cheap. An engine that only one open can write returns False."""
        return False

    cdef list catch_up(self):
        """Apply the commits other opens made since this one last looked (writer lock held,
        write_gen odd): [(seq, keys)] for transaction validation, keys None when unknown."""
        return []

    cdef list read_published(self):
        """Writer lock held: the commits other opens published since this one last looked, read
        and checked to decode but neither decoded nor applied, [(seq, payload)] (Wal.read_after;
        the keys: keys_of_checked), with the log taken over so that this open's
        next record goes after them. A commit calls it under the commit mutex (begin_commit),
        validates against their keys and applies them with its own after end_commit, outside the
        mutex; catch_up() applies them at once. None when they cannot be read so (the B+Tree's
        rebase onto another open's checkpoint): catch_up() rebuilds the view."""
        return []

    cdef int apply_published(self, list records) except -1:
        """Writer lock held, write_gen odd: apply what read_published returned, in order."""
        if records:
            raise NotImplementedError
        return 0

    cdef int begin_commit(self) except -1:
        """Writer lock held: take the lock every open's commits share (the B+Tree's commit
        mutex); the database then calls catch_up() and validates."""
        return 0

    cdef int end_commit(self) except -1:
        """After a commit (or its failure), still under the writer lock: publish what it
        appended and release the lock begin_commit() took."""
        return 0

    cdef int before_commit(self) except -1:
        """Before a commit, no lock held: the engine may delay a writer (LSM write stalls)."""
        raise NotImplementedError

    cdef int apply(self, list ops, uint64_t seq) except -1:
        """Apply one commit's [(key, value-or-None, expires)] as version `seq`, after its log
        record is written (writer lock held, readers told to retry)."""
        raise NotImplementedError

    cdef int apply_pairs(self, list keys, list values, uint64_t seq) except -1:
        """apply() of puts without expiry, keys[i] -> values[i] (put_many, without a tuple per
        key). This default builds the ops; an engine may do without."""
        return self.apply(pairs_as_ops(keys, values), seq)

    cdef int published(self) except -1:
        """The commit applied last is now visible (writer lock held, readers still told to
        retry): the engine may reuse space no live version reaches."""
        raise NotImplementedError

    cdef uint64_t max_live(self):
        """The newest pinned version (0: none)."""
        return max(self.pins) if self.pins else 0

    cdef uint64_t min_live(self):
        """The oldest version a reader may still reach."""
        return min(self.pins) if self.pins else self.seq + 1

    cdef int committed(self) except -1:
        """After a commit, writer lock still held: start what it made due (a checkpoint, a new
        memtable and log file)."""
        raise NotImplementedError

    cdef int checkpoint(self) except -1:
        """Make every commit durable without the log, then recycle the log (no lock held)."""
        raise NotImplementedError

    cdef int compact(self, object lo, object hi) except -1:
        """Compact the key range [lo, hi) (None: unbounded) as far as it goes (no lock held)."""
        raise NotImplementedError

    cdef int maintain(self) except -1:
        """One round of background work (no lock held). A failure makes the database refuse
        writes and is raised (the background thread logs it; the next call raises it)."""
        raise NotImplementedError

    cdef object verify(self):
        """Check every checksum and invariant; CorruptionError naming the place. True."""
        raise NotImplementedError

    cdef bint backup(self, Pin p, str dest) except -1:
        """Write a copy of the pinned version into directory dest; False if this engine has no
        copy of its own (the database then copies the keys into a new database)."""
        raise NotImplementedError

    cdef dict stats(self):
        """The engine's counters, merged into db.stats(); includes "entries", "expiring_keys"
        (None where unknown) and "wal_bytes_written"."""
        raise NotImplementedError

    cdef dict creation_options(self):
        """The options a copy of this database is created with (logical backup)."""
        raise NotImplementedError

    cdef int prepare_close(self) except -1:
        """Before close, no lock held: work the next open should not have to redo."""
        raise NotImplementedError

    cdef int close_locked(self, bint last) except -1:
        """The final, durable step of a clean close (writer lock held; not after a failure)."""
        raise NotImplementedError

    cdef int forget(self) except -1:
        """After fork(), in the child: let go of inherited descriptors whose locks must stay the
        parent's alone (the B+Tree's shared-memory slot), touching nothing shared."""
        return 0

    cdef int release(self) except -1:
        """Close every file (writer lock held, or the database is being dropped)."""
        raise NotImplementedError
