# The LSM read path's merge (see merge.pxd): N sources in internal order become
# the (key, value) pairs one snapshot sees, forwards or backwards.

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy


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
        cdef Py_ssize_t i
        self.srcs = <PyObject **>malloc((len(sources) or 1) * sizeof(PyObject *))
        if self.srcs == NULL:
            raise MemoryError()
        for i in range(len(sources)):
            if not isinstance(sources[i], Source):
                raise TypeError("a MergeCursor merges Sources")
            self.srcs[i] = <PyObject *>sources[i]
        self.sources = sources
        self.nsrcs = len(sources)
        self.snap_seq = snap_seq
        self.now = now
        self.lo = lo
        self.hi = hi
        self.reverse = reverse
        self.pin = pin
        self.started = False
        self.done = False

    def __dealloc__(self):
        free(self.srcs)
        free(self.cur.p)

    cdef int keep_key(self, const unsigned char *k, Py_ssize_t n) except -1:
        """Copy the user key being merged into `cur` (the source it came from will move)."""
        cdef unsigned char *p
        if n > self.cur.cap:
            p = <unsigned char *>realloc(self.cur.p, n)
            if p == NULL:
                raise MemoryError()
            self.cur.p = p
            self.cur.cap = n
        memcpy(self.cur.p, k, n)
        self.cur.n = n
        return 0

    cdef int next_visible(self, bint with_expired) except -1:
        """1 with the next visible key in out_key, out_value (None for no value) and
        out_expires; 0 at the end. Keys not seen (deleted, expired, too new) make no object."""
        cdef Source s, best
        cdef Py_ssize_t i
        cdef int c
        cdef uint64_t best_seq, best_expires
        cdef int best_kind
        cdef bint found
        cdef object best_value
        if self.done:
            return 0
        if not self.started:
            self.started = True
            for i in range(self.nsrcs):
                (<Source>self.srcs[i]).seek(self.hi if self.reverse else self.lo, self.reverse)
        while True:
            # the smallest current key (the largest backwards) among the sources
            best = None
            for i in range(self.nsrcs):
                s = <Source>self.srcs[i]
                if not s.valid:
                    continue
                if best is None:
                    best = s
                    continue
                c = key_cmp(s.key, s.klen, best.key, best.klen)
                if (c > 0) if self.reverse else (c < 0):
                    best = s
            if best is None:
                self.finish()
                return 0
            if self.reverse:
                if self.lo is not None and bytes_cmp(self.lo, best.key, best.klen) > 0:
                    self.finish()
                    return 0
            elif self.hi is not None and bytes_cmp(self.hi, best.key, best.klen) <= 0:
                self.finish()
                return 0
            self.keep_key(best.key, best.klen)
            # every version of that key, from every source: keep the newest the snapshot sees
            found = False
            best_seq = 0
            best_kind = ENTRY_DELETE
            best_expires = 0
            best_value = None
            for i in range(self.nsrcs):
                s = <Source>self.srcs[i]
                while s.valid and key_cmp(s.key, s.klen, self.cur.p, self.cur.n) == 0:
                    if s.seq <= self.snap_seq and (not found or s.seq > best_seq):
                        found = True
                        best_seq = s.seq
                        best_kind = s.kind
                        best_expires = s.expires
                        # copied now: the value's memory may go when the source steps
                        best_value = PyBytes_FromStringAndSize(<const char *>s.val, s.vlen) \
                            if s.kind == ENTRY_PUT else None
                    s.step(self.reverse)
            if not found or best_kind == ENTRY_DELETE:
                continue
            if not with_expired and best_expires != 0 and self.now != 0 and best_expires <= self.now:
                continue
            self.out_key = PyBytes_FromStringAndSize(<const char *>self.cur.p, self.cur.n)
            self.out_value = best_value
            self.out_expires = best_expires
            return 1

    cdef object next_item(self):
        if not self.next_visible(False):
            return None
        cdef uint64_t e = self.out_expires
        self.last_expires = e
        if e and (self.min_expires == 0 or e < self.min_expires):
            self.min_expires = e
        return (self.out_key, self.out_value)

    def next_key_expires(self):
        """The next visible (key, expires), expired or not (the expiry sweep walks with this)."""
        if not self.next_visible(True):
            return None
        return (self.out_key, self.out_expires)

    cpdef int finish(self) except -1:
        """Stop early: drop the sources and the pin (files and memtables they kept alive)."""
        self.done = True
        self.nsrcs = 0                   # before the list that keeps srcs' objects alive goes
        self.sources = []
        self.pin = None
        self.out_key = None
        self.out_value = None
        return 0

    def close(self):
        self.finish()
