# The LSM read path's merge (see merge.pxd): N sources in internal order become
# the (key, value) pairs one snapshot sees, forwards or backwards.

from libc.stdint cimport uint64_t


cdef class Source:
    """Base class: a source positions itself with seek() and moves with step()."""

    cdef int seek(self, bytes key, bint reverse) except -1:
        """Forwards: the first entry with user key >= key (None: the first entry).
        Backwards: the last entry with user key < key (None: the last entry)."""
        raise NotImplementedError

    cdef int step(self, bint reverse) except -1:
        raise NotImplementedError


cdef class MergeCursor:
    """What a snapshot at `snap_seq` sees in [lo, hi), merged from every source."""

    def __init__(self, list sources, uint64_t snap_seq, uint64_t now, lo, hi, bint reverse, pin):
        self.sources = sources
        self.snap_seq = snap_seq
        self.now = now
        self.lo = lo
        self.hi = hi
        self.reverse = reverse
        self.pin = pin
        self.started = False
        self.done = False

    cdef object next_visible(self, bint with_expired):
        """(key, value, expires) of the next visible key, or None at the end."""
        cdef Source s
        cdef bytes k, best_key
        cdef uint64_t best_seq
        cdef int best_kind
        cdef uint64_t best_expires
        cdef bint found
        if self.done:
            return None
        if not self.started:
            self.started = True
            for s in self.sources:
                s.seek(self.hi if self.reverse else self.lo, self.reverse)
        while True:
            best_key = None
            for s in self.sources:
                if s.valid and (best_key is None or
                                (s.key > best_key if self.reverse else s.key < best_key)):
                    best_key = s.key
            if best_key is None:
                self.finish()
                return None
            if self.reverse:
                if self.lo is not None and best_key < self.lo:
                    self.finish()
                    return None
            elif self.hi is not None and best_key >= self.hi:
                self.finish()
                return None
            # every version of best_key, from every source: keep the newest the snapshot sees
            found = False
            best_seq = 0
            best_kind = ENTRY_DELETE
            best_expires = 0
            best_value = None
            for s in self.sources:
                while s.valid and s.key == best_key:
                    if s.seq <= self.snap_seq and (not found or s.seq > best_seq):
                        found = True
                        best_seq = s.seq
                        best_kind = s.kind
                        best_expires = s.expires
                        best_value = s.value
                    s.step(self.reverse)
            if not found or best_kind == ENTRY_DELETE:
                continue
            if not with_expired and best_expires != 0 and self.now != 0 and best_expires <= self.now:
                continue
            return (best_key, best_value, best_expires)

    cdef object next_item(self):
        entry = self.next_visible(False)
        if entry is None:
            return None
        cdef uint64_t e = entry[2]
        self.last_expires = e
        if e and (self.min_expires == 0 or e < self.min_expires):
            self.min_expires = e
        return (entry[0], entry[1])

    def next_key_expires(self):
        """The next visible (key, expires), expired or not (the expiry sweep walks with this)."""
        entry = self.next_visible(True)
        if entry is None:
            return None
        return (entry[0], entry[2])

    def finish(self):
        """Stop early: drop the sources and the pin (files and memtables they kept alive)."""
        self.done = True
        self.sources = []
        self.pin = None

    def close(self):
        self.finish()
