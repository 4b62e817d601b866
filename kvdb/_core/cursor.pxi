# Cursor: a position in a handle's keys that moves both ways (included into database.pyx).
#
# The engines' cursors go one way over a range. A Cursor keeps one of them open in the
# direction it last moved: next() after next() (or prev() after prev()) is one step of it, and
# turning round or seeking opens a new one from the current key, one descent of the tree. It
# reads one version throughout: a database's cursor pins a snapshot for its life; a snapshot's
# or a transaction's reads theirs (a transaction's with its own writes as of each move).


cdef class Cursor:
    """db.cursor(): seek(key), seek_first(), seek_last(), next(), prev(); key, value, item and
    valid describe the current position. Close it (or use `with`) to release its snapshot."""
    cdef Handle src              # the handle whose raw_scan the cursor reads (a fixed version)
    cdef Snapshot owned          # the snapshot this cursor pinned (closed with it), or None
    cdef Codec kc, vc            # the codecs of the handle it was made from; constant
    cdef Iterator it             # the one-way scan the cursor is stepping, or None
    cdef bint forward            # `it` runs in ascending order
    cdef bytes k                 # the stored key at the current position; None: not positioned
    cdef object v                # the stored value at the current position
    cdef bint closed

    def __init__(self, Handle handle):
        self.kc, self.vc = handle.kc, handle.vc
        self.src, self.owned = handle.raw_cursor_source()

    cdef int check(self) except -1:
        if self.closed:
            raise ClosedError("cursor is closed")
        self.src.ready()
        return 0

    cdef bint step(self):
        item = next(self.it, None)
        if item is None:
            self.it.close()
            self.it = None
            self.k = self.v = None
            return False
        self.k, self.v = item
        return True

    cdef bint start(self, object lo, object hi, bint forward):
        if self.it is not None:
            self.it.close()
        self.it = self.src.raw_scan(lo, hi, not forward)
        self.it.shape(None, None, SCAN_ITEMS, -1)     # stored pairs, less any namespace prefix
        self.forward = forward
        return self.step()

    def seek(self, key):
        """Move to the first key >= key; False (and not valid) if there is none."""
        self.check()
        return self.start(enc_key(self.kc, key), None, True)

    def seek_first(self):
        """Move to the first key; False if there are none."""
        self.check()
        return self.start(None, None, True)

    def seek_last(self):
        """Move to the last key; False if there are none."""
        self.check()
        return self.start(None, None, False)

    def next(self):
        """Move to the next key; False (and not valid) past the last. An unpositioned cursor
        moves to the first key."""
        self.check()
        if self.k is None:
            return self.start(None, None, True)
        if self.forward and self.it is not None:
            return self.step()
        return self.start(self.k + b"\x00", None, True)

    def prev(self):
        """Move to the previous key; False (and not valid) before the first. An unpositioned
        cursor moves to the last key."""
        self.check()
        if self.k is None:
            return self.start(None, None, False)
        if not self.forward and self.it is not None:
            return self.step()
        return self.start(None, self.k, False)

    @property
    def valid(self):
        """Whether the cursor is at a key."""
        return not self.closed and self.k is not None

    @property
    def key(self):
        """The current key; None if not valid."""
        self.check()
        return None if self.k is None else dec_key(self.kc, self.k)

    @property
    def value(self):
        """The current value; None if not valid."""
        self.check()
        return None if self.k is None else dec_value(self.vc, self.v)

    def item(self):
        """(key, value) at the current position; None if not valid."""
        self.check()
        return None if self.k is None else (dec_key(self.kc, self.k), dec_value(self.vc, self.v))

    def __iter__(self):
        """(key, value) from the current position (the first key if unpositioned) onward,
        moving the cursor."""
        self.check()
        if self.k is None and not self.start(None, None, True):
            return
        while self.k is not None:
            yield dec_key(self.kc, self.k), dec_value(self.vc, self.v)
            self.check()
            if not self.next():
                return

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.k = self.v = None
        if self.it is not None:
            self.it.close()
            self.it = None
        if self.owned is not None:
            self.owned.close()
            self.owned = None

    def __enter__(self):
        self.check()
        return self

    def __exit__(self, *exc):
        self.close()
        return False
