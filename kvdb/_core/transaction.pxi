# Iterators, snapshots and optimistic transactions (included into database.pyx).


cdef class Iterator:
    """Iterates a cursor over a pinned version; usable until exhausted, closed or the db closes.
    It yields what the handle's scan asked for (shape): (key, value), keys or values, decoded by
    the handle's codecs, stopping after `limit` items."""
    cdef Database db
    cdef object it               # an EngineCursor, or a generator for transaction scans
    cdef Codec kc, vc            # codecs of the handle that made it (None: raw bytes)
    cdef int mode                # SCAN_ITEMS, SCAN_KEYS or SCAN_VALUES
    cdef Py_ssize_t left         # items still to yield; -1: no limit
    cdef Py_ssize_t strip        # bytes of namespace prefix cut from each key
    cdef bint plain              # raw (key, value) pairs, no limit: the fast path

    def __init__(self, Database db, it):
        self.db = db
        self.it = it
        self.left = -1
        self.plain = True

    cdef shape(self, Codec kc, Codec vc, int mode, Py_ssize_t limit):
        self.kc, self.vc, self.mode, self.left = kc, vc, mode, limit
        self.plain = kc is None and vc is None and mode == SCAN_ITEMS and limit < 0 and self.strip == 0
        if limit == 0:
            self.close()

    def __iter__(self):
        return self

    def __next__(self):
        if self.db.state != STATE_OPEN:
            self.close()
            self.db.check_open()
        if self.it is None:
            raise StopIteration
        if isinstance(self.it, EngineCursor):
            item = (<EngineCursor>self.it).next_item()
            if item is None:
                self.it = None
                raise StopIteration
        else:
            try:
                item = next(self.it)
            except StopIteration:
                self.close()
                raise
        if self.plain:
            return item
        return self.shaped(item)

    cdef object shaped(self, tuple item):
        if self.left >= 0:
            self.left -= 1
            if self.left == 0:
                self.close()
        if self.mode == SCAN_VALUES:
            return dec_value(self.vc, item[1])
        k = <bytes>item[0]
        if self.strip:
            k = k[self.strip:]
        if self.mode == SCAN_KEYS:
            return dec_key(self.kc, k)
        return dec_key(self.kc, k), dec_value(self.vc, item[1])

    def close(self):
        it = self.it
        self.it = None
        if isinstance(it, EngineCursor):
            (<EngineCursor>it).finish()
        elif it is not None:
            it.close()          # a transaction's merge generator

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


cdef class Snapshot(Handle):
    """A point-in-time read-only view (pins one version)."""
    cdef Database db
    cdef Pin p

    def __init__(self, Database db):
        self.db = db
        self.p = db.pin()

    cdef int check(self) except -1:
        self.db.check_open()
        if self.p is None:
            raise ClosedError("snapshot is closed")
        return 0

    cdef int ready(self) except -1:
        return self.check()

    @property
    def seq(self):
        return self.p.seq if self.p is not None else None

    cdef object raw_get(self, bytes k):
        return self.db.pinned_get(self.p, k)

    cdef object raw_ttl(self, bytes k):
        """Seconds the key had left when the snapshot was taken."""
        entry = self.db.pinned_entry(self.p, k)
        if entry is None or is_expired(entry[1], self.p.now_ms):
            raise KeyError(k)
        return None if entry[1] == 0 else (entry[1] - self.p.now_ms) / 1000.0

    cdef object raw_len(self):
        """Keys stored in the snapshot (see Database.__len__ for what counts)."""
        if self.p.counted:
            return self.p.entries
        return count_live(self.db.open_cursor(self.p, self.p.clone(), None, None, False, 0))

    cdef object raw_scan(self, object lo, object hi, bint reverse):
        return Iterator(self.db, self.db.open_cursor(self.p, self.p.clone(), lo, hi, reverse, self.p.now_ms))

    def _scan_expiry(self, start=None, end=None):
        """(key, value, expires) of the snapshot's live keys in [start, end), expires in
        wall-clock ms (0 = none): a replica's full copy of this version, with its expiries."""
        self.check()
        lo, hi = scan_bounds(start, end, None)
        c = self.db.open_cursor(self.p, self.p.clone(), lo, hi, False, self.p.now_ms)
        try:
            for k, v in c:
                yield k, v, c.last_expires
        finally:
            c.finish()

    cdef object raw_cursor_source(self):
        return self, None

    cdef int refuse(self) except -1:
        raise ReadOnlyError("a snapshot is read-only; write through the database or a transaction")

    cdef int raw_put(self, bytes k, bytes v, object ttl) except -1:
        return self.refuse()

    cdef bint raw_delete(self, bytes k) except -1:
        return self.refuse()

    cdef int raw_discard(self, bytes k) except -1:
        return self.refuse()

    cdef int raw_put_many(self, list ops) except -1:
        return self.refuse()

    cdef int raw_delete_many(self, list keys) except -1:
        return self.refuse()

    cdef object read_and_delete(self, bytes k):
        self.refuse()

    cdef object read_or_put(self, bytes k, bytes v):
        self.refuse()

    def put(self, key, value, ttl=None):
        self.refuse()

    def delete(self, key):
        self.refuse()

    def discard(self, key):
        self.refuse()

    def close(self):
        if self.p is not None:
            self.p.release()
            self.p = None

    def __enter__(self):
        self.check()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"<kvdb.Snapshot of {self.db.path!r} at seq {self.seq}>"


cdef inline bint in_range(bytes key, object lo, object hi):
    return (lo is None or key >= lo) and (hi is None or key < hi)


cdef class Transaction(Handle):
    """Reads one snapshot, buffers writes, and commits them atomically if nothing it
    read or scanned changed since it began (optimistic concurrency control)."""
    cdef Database db
    cdef Pin p
    cdef dict writes             # key -> value, or None for a delete
    cdef list sorted_keys        # the keys of `writes` in order, from the first scan on (None before)
    cdef list unsorted_keys      # keys added to `writes` since sorted_keys was last brought up to date
    cdef dict write_expires      # key -> expiry (wall-clock ms) of buffered puts with a ttl
    cdef set reads               # keys read from the snapshot
    cdef list ranges             # [(lo, hi)] scanned from the snapshot
    cdef public uint64_t min_expires  # earliest expiry among the entries read (0 = none): if it
                                      # passes before commit, what was read is gone -> conflict
    cdef bint done

    def __init__(self, Database db):
        self.db = db
        self.p = db.pin()
        self.writes = {}
        self.sorted_keys = None
        self.unsorted_keys = []
        self.write_expires = {}
        self.min_expires = 0
        self.reads = set()
        self.ranges = []
        self.done = False
        db.txn_starts[self.p.seq] = db.txn_starts.get(self.p.seq, 0) + 1

    cdef int check(self) except -1:
        self.db.check_open()
        if self.done:
            raise ClosedError("transaction is finished (committed or rolled back)")
        return 0

    @property
    def seq(self):
        return self.p.seq

    def collection(self, str name):
        """The document collection `name`, read and written inside this transaction."""
        self.require_bytes("document collections")
        return extension("transaction_collection")(self, name)

    cdef int ready(self) except -1:
        return self.check()

    cdef object raw_get(self, bytes k):
        if k in self.writes:
            return self.writes[k]
        self.reads.add(k)
        entry = self.db.pinned_entry(self.p, k)
        if entry is None or is_expired(entry[1], self.p.now_ms):
            return None
        self.note_expires(entry[1])
        return entry[0]

    cdef inline void note_expires(self, uint64_t expires):
        if expires and (self.min_expires == 0 or expires < self.min_expires):
            self.min_expires = expires

    def put(self, key, value, ttl=None, _expires_ms=None):
        """Buffer a put; with `ttl` (seconds > 0) the key expires that long after this call.
        (`_expires_ms`, an absolute wall-clock expiry, is for copying tools like kvdb compact.)"""
        self.check()
        k = enc_key(self.kc, key)
        v = enc_value(self.vc, value)
        if _expires_ms:
            if ttl is not None or not isinstance(_expires_ms, int) or not 0 < _expires_ms < MAX_EXPIRES_MS:
                raise ValueError("_expires_ms must be a positive int of milliseconds, without ttl")
            self.write_expires[k] = _expires_ms
            self.buffer(k, v)
            return
        self.raw_put(k, v, ttl)

    cdef int raw_put(self, bytes k, bytes v, object ttl) except -1:
        if ttl is None:
            if self.write_expires:
                self.write_expires.pop(k, None)
        else:
            self.write_expires[k] = expiry_from_ttl(ttl, self.db.now_ms())
        self.buffer(k, v)
        return 0

    cdef inline void buffer(self, bytes k, object v):
        """Buffer a put (v) or a delete (None) of k."""
        if self.sorted_keys is not None and k not in self.writes:
            self.unsorted_keys.append(k)
        self.writes[k] = v

    cdef bint raw_delete(self, bytes k) except -1:
        """Delete k; True if it was present (as this transaction sees it)."""
        existed = self.raw_get(k) is not None
        self.buffer(k, None)
        self.write_expires.pop(k, None)
        return existed

    cdef int raw_discard(self, bytes k) except -1:
        """A blind delete: unlike delete() it adds nothing to this transaction's read set and
        cannot make it conflict."""
        self.buffer(k, None)
        self.write_expires.pop(k, None)
        return 0

    cdef int raw_put_many(self, list ops) except -1:
        for op in ops:
            self.raw_put(op[0], op[1], None)
        return 0

    cdef int raw_delete_many(self, list keys) except -1:
        for k in keys:
            self.raw_discard(k)
        return 0

    cdef object read_and_delete(self, bytes k):
        v = self.raw_get(k)
        if v is not None:
            self.raw_discard(k)
        return v

    cdef object read_or_put(self, bytes k, bytes v):
        old = self.raw_get(k)
        if old is None:
            self.raw_put(k, v, None)
        return old

    cdef object raw_ttl(self, bytes k):
        if k in self.writes:
            if self.writes[k] is None:
                raise KeyError(k)
            expires = self.write_expires.get(k, 0)
            return None if expires == 0 else (expires - self.db.now_ms()) / 1000.0
        self.reads.add(k)
        entry = self.db.pinned_entry(self.p, k)
        if entry is None or is_expired(entry[1], self.p.now_ms):
            raise KeyError(k)
        self.note_expires(entry[1])
        return None if entry[1] == 0 else (entry[1] - self.p.now_ms) / 1000.0

    cdef object raw_len(self):
        """Keys stored in this transaction's snapshot, plus those it adds, minus those it
        deletes: O(its writes), never a scan (unless the engine keeps no count)."""
        if self.p.counted:
            base = self.p.entries
        else:
            base = count_live(self.db.open_cursor(self.p, self.p.clone(), None, None, False, 0))
        return base + self.write_delta(None)

    cdef object ns_len(self, bytes prefix, bytes record):
        return decode_count(self.raw_get(record), record) + self.write_delta(prefix)

    cdef Py_ssize_t write_delta(self, bytes prefix) except? -1:
        """Keys this transaction's writes (those starting with `prefix`, None: all) add to its
        snapshot, less those they delete. Each written key's presence joins the read set."""
        cdef Py_ssize_t d = 0
        for k, v in self.writes.items():
            if prefix is not None and not (<bytes>k).startswith(prefix):
                continue
            self.reads.add(k)
            entry = self.db.pinned_entry(self.p, k)
            before = entry is not None
            after = v is not None
            if before != after:
                d += 1 if after else -1
        return d

    cdef object raw_scan(self, object lo, object hi, bint reverse):
        """The snapshot merged with this transaction's own writes. The whole range joins the
        read set."""
        self.ranges.append((lo, hi))
        own = self.own_writes(lo, hi, reverse)
        base = self.db.open_cursor(self.p, self.p.clone(), lo, hi, reverse, self.p.now_ms)
        return Iterator(self.db, _merge(base, own, reverse, self))

    cdef object raw_cursor_source(self):
        return self, None

    cdef list own_writes(self, object lo, object hi, bint reverse):
        """The keys this transaction wrote in [lo, hi), in key order (descending if
        reverse), in O(log W) plus a copy of k references for W buffered writes: the keys
        are sorted once and kept sorted, so a command group that interleaves many writes
        and short scans (the RESP server's pipelines) does not pay for every write on
        every scan. Values are looked up as the merge reaches each key."""
        cdef list keys = self.sorted_keys
        cdef list fresh = self.unsorted_keys
        cdef Py_ssize_t i, j
        if keys is None or len(fresh) * 16 > len(keys):
            keys = self.sorted_keys = sorted(self.writes)
            self.unsorted_keys = []
        elif fresh:
            for k in fresh:
                bisect.insort(keys, k)
            self.unsorted_keys = []
        i = 0 if lo is None else bisect.bisect_left(keys, lo)
        j = len(keys) if hi is None else bisect.bisect_left(keys, hi)
        own = keys[i:j]
        if reverse:
            own.reverse()
        return own

    cdef int validate(self, list deferred) except -1:
        """Called under the writer lock: ConflictError if a commit after our snapshot
        wrote a key we read or a key inside a range we scanned. The commits are those in
        db.recent and, if not None, `deferred`: other opens' records [(seq, payload)] that
        commit_ops read for this commit (Engine.read_published) and kept out of db.recent (no
        other transaction is open)."""
        cdef uint64_t start = self.p.seq
        cdef uint64_t now
        if self.min_expires:
            now = self.db.now_ms()
            if self.min_expires <= now:
                self.db.conflicts += 1
                raise ConflictError(f"transaction conflict: a key this transaction read expired before it "
                                    f"committed; retry it")
        self.check_commits(self.db.recent, start)
        if deferred is not None and (self.reads or self.ranges):
            for seq, payload in deferred:
                if seq > start:
                    k = key_read_or_scanned(payload, self.reads, self.ranges)
                    if k is not None:
                        self.check_commits([(seq, [k])], start)   # raises, naming how it conflicts
        return 0

    cdef int check_commits(self, list commits, uint64_t start) except -1:
        """validate() over commits [(seq, keys)]."""
        for seq, keys in commits:
            if seq <= start:
                continue
            if keys is None:
                # commits of another process this open did not replay one by one (it rebuilt its
                # view on that process's checkpoint): any key may have changed
                if self.reads or self.ranges:
                    self.db.conflicts += 1
                    raise ConflictError(f"transaction conflict: commits up to {seq}, made by another process "
                                        f"after this transaction began (at {start}), may have changed what it "
                                        "read; retry it")
                continue
            for k in keys:
                if k in self.reads:
                    self.db.conflicts += 1
                    raise ConflictError(f"transaction conflict: key {k[:64]!r} was read by this transaction and "
                                        f"changed by commit {seq} after it began (at {start}); retry it")
                for lo, hi in self.ranges:
                    if in_range(k, lo, hi):
                        self.db.conflicts += 1
                        raise ConflictError(f"transaction conflict: key {k[:64]!r}, inside a range this "
                                            f"transaction scanned, was changed by commit {seq} after it began "
                                            f"(at {start}); retry it")
        return 0

    def commit(self):
        self.check()
        try:
            if self.writes:
                self.commit_writes(None)
        finally:
            self._finish()

    def _commit_deferring_sync(self):
        """commit(), except that with sync="full" it returns before the fsync: the commit is
        applied and visible, and `db._wait_durable(token)` with the token returned waits until
        it is durable (None: nothing to wait for). For a server that acknowledges a group of
        commands only after its fsync while it runs the next group (group commit pipelining)."""
        self.check()
        cdef list sync_out = []
        try:
            if self.writes:
                self.commit_writes(sync_out)
        finally:
            self._finish()
        return sync_out[0] if sync_out else None

    cdef int commit_writes(self, list sync_out) except -1:
        """Commit the buffered writes. Puts only, none with a ttl (a bulk insert's usual shape):
        as the sorted keys and their values, two lists, like put_many, so that a large commit
        makes no tuple per key (tuples the garbage collector would keep walking); otherwise as
        sorted ops."""
        cdef dict writes = self.writes
        cdef list keys, values
        if not self.write_expires:
            keys = sorted(writes)
            values = [writes[k] for k in keys]
            if None not in values:
                self.db.commit_ops(keys, self, None, True, True, sync_out, values)
                return 0
        self.db.commit_ops(self.sorted_ops(), self, None, True, True, sync_out)
        return 0

    cdef list sorted_ops(self):
        writes = self.writes
        exp = self.write_expires
        if exp:
            return [(k, writes[k], exp.get(k, 0) if writes[k] is not None else 0) for k in sorted(writes)]
        return [(k, writes[k], 0) for k in sorted(writes)]   # no (key, value) pairs to sort

    def rollback(self):
        if not self.done:
            self._finish()

    cdef _finish(self):
        self.done = True
        db = self.db
        n = db.txn_starts.get(self.p.seq, 0) - 1
        if n <= 0:
            db.txn_starts.pop(self.p.seq, None)
        else:
            db.txn_starts[self.p.seq] = n
        if db.txn_starts:
            oldest = min(db.txn_starts)
            db.recent = [(s, k) for s, k in db.recent if s > oldest]
        else:
            db.recent = []
        self.p.release()
        self.writes = None
        self.write_expires = None
        self.reads = None

    def __enter__(self):
        self.check()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.done:
            return False
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False

    def __dealloc__(self):
        if not self.done and self.db is not None:
            try:
                self._finish()
            except BaseException:
                pass


def _merge(base, list own, bint reverse, Transaction txn):
    """Merge a cursor with the sorted keys this transaction wrote (their values, or None
    for deletes, read from txn.writes as they are reached); writes win, deletes hide.
    Expiries of the entries read from the cursor are noted in the transaction."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t n = len(own)
    cdef dict writes = txn.writes
    try:
        for k, v in base:
            if txn.writes is not None:
                txn.note_expires(base.last_expires)
            while i < n and ((own[i] < k) if not reverse else (own[i] > k)):
                w = writes.get(own[i])
                if w is not None:
                    yield (own[i], w)
                i += 1
            if i < n and own[i] == k:
                w = writes.get(own[i])
                if w is not None:
                    yield (own[i], w)
                i += 1
                continue
            yield (k, v)
        while i < n:
            w = writes.get(own[i])
            if w is not None:
                yield (own[i], w)
            i += 1
    finally:
        base.finish()
