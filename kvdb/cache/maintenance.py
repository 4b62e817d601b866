"""Removing entries in bulk: cull (expired first, then by eviction policy), expire, evict(tag),
clear, check; and the bookkeeping behind them (access flushes, the O index rebuild, counters).

Removal scans find candidates on a snapshot (db.scan, outside the transaction) and the write then
reads each candidate's entry inside its transaction, so a write conflicts only with writes of the
same entries, not with every insert into a scanned index range. Bulk calls work in batches
(BATCH entries per transaction), as diskcache's do: other writes may land between batches.
"""
import os
import time
import warnings

import contextlib
import heapq

from kvdb.cache.entries import (ORDER_NONE, ORDER_STORE_TIME,
                                initial_order, raise_order, remove, true_order)
from kvdb.cache.keys import ekey_problem
from kvdb.cache.layout import (ENTRY, EXPIRY, EXPIRY_EKEY_AT, ORDER, ORDER_EKEY_AT, ORDER_VALUE, ROWID,
                               ROWID_EKEY_AT, SHARD, TAG, U64, U64_PAIR, expiry_key, order_key,
                               rowid_key, sortable_float, tag_prefix)
from kvdb.cache.records import (expire_time_of, indexed_order_of, record_problem, rowid_of, store_time_of,
                                tag_fields, with_indexed_order)
from kvdb.cache.writer import SHARD_VALUE, ZERO_SHARD, pid_of_shard, run_write

BATCH = 100                 # entries removed per transaction by clear/expire/evict
CULL_BATCH = 10             # entries evicted per transaction by cull()
OTHERS_REFRESH = 0.5        # seconds between re-reads of the other opens' counters (set's cull check)
EXPIRY_REFRESH = 1.0        # seconds between re-reads of the soonest expiry (other opens' entries)
BASE_SHARD = SHARD + bytes(12)   # counters folded from closed opens (pid 0)


class Maintenance:
    """Mixed into Cache: bulk removal and the bookkeeping it needs."""

    # -- after an insert: diskcache's cull inside set/add/incr/push ------------------------------

    def _after_insert(self, now):
        if not self.cull_limit:
            return
        if now >= self._next_expiry or (self._order_kind != ORDER_NONE
                                        and self._volume_estimate() >= self.size_limit):
            self._cull_step(now, self.cull_limit)
        elif time.monotonic() - self._expiry_at > EXPIRY_REFRESH:
            self._refresh_expiry()

    def _volume_estimate(self):
        """This open's stored bytes (exact) plus the others' as last summed (at most
        OTHERS_REFRESH old, re-summed when the estimate reaches the limit)."""
        if time.monotonic() - self._others_at > OTHERS_REFRESH:
            self._shards()
        estimate = self._own[1] + self._others[1]
        if estimate >= self.size_limit and self._others_at != time.monotonic():
            self._shards()
            estimate = self._own[1] + self._others[1]
        return estimate

    def _refresh_expiry(self):
        with self._db.scan(prefix=EXPIRY) as it:
            first = next(it, None)
        self._next_expiry = float("inf") if first is None else _expiry_of_key(first[0])
        self._expiry_at = time.monotonic()

    def _cull_step(self, now, limit):
        """Remove up to `limit` expired entries, soonest expiry first; then, if the volume is at
        or over size_limit, evict the rest of `limit` in the policy's order. Returns the count."""
        self._flush_access()
        removed = run_write(self, self._cull_op, (now, limit))
        self._refresh_expiry()
        return removed

    def _cull_op(self, w, now, limit):
        removed = self._remove_expired(w, now, limit)
        if removed < limit and self._order_kind != ORDER_NONE:
            if self._own[1] + self._others[1] + w.size >= self.size_limit:
                removed += self._evict_in_order(w, limit - removed)
        return removed

    def _remove_expired(self, w, now, limit):
        tx = w.tx
        end = EXPIRY + U64.pack(sortable_float(now) + 1)
        removed = 0
        with self._candidates(w, start=EXPIRY, end=end) as it:
            for k, _ in it:
                if removed >= limit:
                    break
                ekey = k[EXPIRY_EKEY_AT:]
                record = tx.get(ekey)
                if record is None or expire_time_of(record) is None or expiry_key(expire_time_of(record), rowid_of(record), ekey) != k:
                    continue
                remove(w, self._order_kind, ekey, record)
                removed += 1
        return removed

    def _evict_in_order(self, w, limit, under=None):
        """Evict up to `limit` entries by true order (C4: O keys may lag); with `under`, stop as
        soon as the volume is below it. Lagging O keys passed on the way are moved up."""
        tx = w.tx
        kind = self._order_kind
        heap = []               # (true order, rowid, ekey, record, O key), the smallest `limit`
        passed = []             # every valid candidate scanned
        with self._candidates(w, prefix=ORDER) as it:
            for k, _ in it:
                if len(heap) >= limit and k[1:ORDER_EKEY_AT] > U64_PAIR.pack(*_largest(heap)[:2]):
                    break       # no entry further on can be evicted before those found
                ekey = k[ORDER_EKEY_AT:]
                record = tx.get(ekey)
                if record is None:
                    continue
                rowid = rowid_of(record)
                if order_key(indexed_order_of(record), rowid, ekey) != k:
                    continue    # the snapshot's O key is not the entry's any more
                order = true_order(tx, kind, ekey, record)
                if order is None:
                    continue
                candidate = (order, rowid, ekey, record, k)
                passed.append(candidate)
                heapq.heappush(heap, (-order, -rowid, ekey, record, k))
                if len(heap) > limit:
                    heapq.heappop(heap)
        chosen = sorted(((-o, -r, e, rec, k) for o, r, e, rec, k in heap))
        removed = 0
        evicted = set()
        for order, rowid, ekey, record, k in chosen:
            if under is not None and self._own[1] + self._others[1] + w.size < under:
                break
            remove(w, kind, ekey, record)
            evicted.add(ekey)
            removed += 1
        for order, rowid, ekey, record, k in passed:
            if ekey not in evicted and order != indexed_order_of(record):
                tx.discard(k)
                tx.put(order_key(order, rowid, ekey), b"")
                tx.put(ekey, with_indexed_order(record, order))
        return removed

    def _candidates(self, w, **bounds):
        """An iterator (in a `with`) over the index range `bounds` for a removal by writer `w`:
        the database's newest snapshot, outside w's read set; inside a transact() block, the
        block's own view (which sees its writes), read in full first since the removal changes it."""
        if self._blocks and getattr(self._local, "writer", None) is w:
            with w.tx.scan(**bounds) as it:
                return contextlib.nullcontext(iter(list(it)))
        return self._db.scan(**bounds)

    # -- the bulk calls ------------------------------------------------------------------------------

    def cull(self, retry=False):
        """Remove every expired entry, then evict in the policy's order until the volume is under
        size_limit. Returns the count removed."""
        self._reopen()
        now = time.time()
        count = self.expire(now)
        if self._order_kind == ORDER_NONE:
            return count
        self._flush_access()
        while self._shards()[1] >= self.size_limit:
            removed = run_write(self, lambda w: self._evict_in_order(w, CULL_BATCH, self.size_limit), ())
            if not removed:
                break
            count += removed
        return count

    def expire(self, now=None, retry=False):
        """Remove entries expired at `now` (default time.time()). Returns the count."""
        self._reopen()
        if now is None:
            now = time.time()
        count = 0
        while True:
            removed = run_write(self, self._remove_expired, (now, BATCH))
            count += removed
            if removed < BATCH:
                break
        self._refresh_expiry()
        return count

    def evict(self, tag, retry=False):
        """Remove every entry tagged `tag`, expired or not. Returns the count."""
        from kvdb.cache.keys import encode_tag
        self._reopen()
        prefix = tag_prefix(encode_tag(tag))
        return self._remove_by_prefix(prefix, len(prefix))

    def clear(self, retry=False):
        """Remove every entry. Returns the count."""
        self._reopen()
        self._access.take()
        return self._remove_by_prefix(ROWID, ROWID_EKEY_AT)

    def _remove_by_prefix(self, prefix, ekey_at):
        count = 0
        while True:
            with self._view()[0].scan(prefix=prefix) as it:
                batch = [k[ekey_at:] for _, (k, _value) in zip(range(BATCH), it)]
            if not batch:
                return count
            count += run_write(self, self._remove_all_op, (batch,))
            if len(batch) < BATCH:
                return count

    def _remove_all_op(self, w, ekeys):
        removed = 0
        for ekey in ekeys:
            record = w.tx.get(ekey)
            if record is not None:
                remove(w, self._order_kind, ekey, record)
                removed += 1
        return removed

    # -- LRU/LFU access notes ----------------------------------------------------------------------

    def _flush_access(self, timeout=None):
        if self._db is None or not self._access.pending:
            return
        pending = self._access.take()
        if self._track_access:
            run_write(self, self._access_op, (pending,), timeout)

    def _access_op(self, w, pending):
        tx = w.tx
        kind = self._order_kind
        for ekey, (stamp, last, hits) in pending.items():
            record = tx.get(ekey)
            if record is None or record[10:18] != stamp:
                continue                    # removed or replaced since it was read
            raise_order(w, kind, ekey, last, hits)

    def _rebuild_order(self, previous_kind):
        """Rebuild the O index (and P keys) for self._order_kind: an LRU entry's access time
        starts at its store time, an LFU entry's count at 0 (what diskcache's columns hold for a
        policy that did not update them)."""
        run_write(self, self._rebuild_op, ())

    def _rebuild_op(self, w):
        tx = w.tx
        for prefix in (ORDER, ORDER_VALUE):
            with self._db.scan(prefix=prefix) as it:
                stale = [k for k, _ in it]
            for k in stale:
                tx.discard(k)
        if self._order_kind == ORDER_NONE:
            return
        with self._db.scan(prefix=ENTRY) as it:
            for ekey, record in it:
                order = initial_order(self._order_kind, store_time_of(record))
                tx.put(order_key(order, rowid_of(record), ekey), b"")
                tx.put(ekey, with_indexed_order(record, order))
                if self._order_kind != ORDER_STORE_TIME:
                    tx.put(ORDER_VALUE + ekey, U64.pack(order))

    # -- counters -----------------------------------------------------------------------------------

    def _fold_shard(self, timeout=None):
        """Add this open's counters, and those of opens whose process is gone, to the base shard."""
        run_write(self, self._fold_op, (), timeout)

    def _fold_op(self, w):
        tx = w.tx
        with self._db.scan(prefix=SHARD) as it:
            shards = [k for k, _ in it]
        folded = [k for k in shards if k == self._shard_key or (k != BASE_SHARD and not _pid_alive(pid_of_shard(k)))]
        if not folded:
            return
        raw = tx.get(BASE_SHARD)
        total = list(ZERO_SHARD if raw is None else SHARD_VALUE.unpack(raw))
        for k in folded:
            raw = tx.get(k)
            if raw is None:
                continue
            for i, v in enumerate(SHARD_VALUE.unpack(raw)):
                total[i] += v
            tx.discard(k)
        tx.put(BASE_SHARD, SHARD_VALUE.pack(*total))

    # -- check ---------------------------------------------------------------------------------------

    def check(self, fix=False, retry=False):
        """Verify the invariants of docs/format/cache.md (C1-C5); with fix=True rebuild every
        index and the counters from the entries. Returns the list of warnings (each also issued
        with warnings.warn)."""
        self._reopen()
        self._flush_access()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            problems = self._find_problems()
            for problem in problems:
                warnings.warn(problem)
            if fix and problems:
                run_write(self, self._fix_op, ())
        return caught

    def _find_problems(self):
        problems = []
        expected = set()
        count = size = 0
        snapshot = self._db.snapshot()
        try:
            with snapshot.scan(prefix=ENTRY) as it:
                for ekey, record in it:
                    count += 1
                    size += len(ekey) + len(record)
                    problem = ekey_problem(ekey) or record_problem(record)
                    if problem is not None:
                        problems.append(f"C1: entry {ekey[:40]!r}: {problem}")
                        continue
                    expected.update(self._index_keys(snapshot, ekey, record, problems))
            found = set()
            for prefix in (ROWID, ORDER, ORDER_VALUE, EXPIRY, TAG):
                with snapshot.scan(prefix=prefix) as it:
                    found.update(k for k, _ in it)
            for k in sorted(expected - found):
                problems.append(f"C2: index key {k[:60]!r} of an entry is missing")
            for k in sorted(found - expected):
                problems.append(f"C3: index key {k[:60]!r} names no entry or not its current fields")
            totals = [0, 0]
            with snapshot.scan(prefix=SHARD) as it:
                for _, v in it:
                    values = SHARD_VALUE.unpack(v)
                    totals[0] += values[0]
                    totals[1] += values[1]
            if totals != [count, size]:
                problems.append(f"C5: counters say {totals[0]} entries of {totals[1]} bytes, "
                                f"the entries are {count} of {size} bytes")
        finally:
            snapshot.close()
        return problems

    def _index_keys(self, snapshot, ekey, record, problems):
        rowid = rowid_of(record)
        keys = [rowid_key(rowid, ekey)]
        if self._order_kind != ORDER_NONE:
            indexed = indexed_order_of(record)
            keys.append(order_key(indexed, rowid, ekey))
            if self._order_kind == ORDER_STORE_TIME:
                order = sortable_float(store_time_of(record))
            else:
                keys.append(ORDER_VALUE + ekey)
                raw = snapshot.get(ORDER_VALUE + ekey)
                order = None if raw is None else U64.unpack(raw)[0]
            if order is not None and indexed > order:
                problems.append(f"C4: entry {ekey[:40]!r} has its O key above its true order")
        expire_time = expire_time_of(record)
        if expire_time is not None:
            keys.append(expiry_key(expire_time, rowid, ekey))
        etag = tag_fields(record)[1]
        if etag is not None:
            keys.append(tag_prefix(etag) + ekey)
        return keys

    def _fix_op(self, w):
        tx = w.tx
        with self._db.scan(prefix=ORDER_VALUE) as it:
            keep = {k: v for k, v in it}        # LRU/LFU orders survive the rebuild
        for prefix in (ROWID, ORDER, ORDER_VALUE, EXPIRY, TAG):
            with self._db.scan(prefix=prefix) as it:
                stale = [k for k, _ in it]
            for k in stale:
                tx.discard(k)
        with self._db.scan(prefix=SHARD) as it:
            shards = [k for k, _ in it]
        count = size = 0
        with self._db.scan(prefix=ENTRY) as it:
            for ekey, record in it:
                if ekey_problem(ekey) or record_problem(record):
                    tx.discard(ekey)            # C1: what cannot be read cannot be served
                    continue
                count += 1
                size += len(ekey) + len(record)
                rowid = rowid_of(record)
                tx.put(rowid_key(rowid, ekey), bytes((record[1],)))
                if self._order_kind != ORDER_NONE:
                    raw = keep.get(ORDER_VALUE + ekey)
                    if self._order_kind == ORDER_STORE_TIME or raw is None:
                        order = initial_order(self._order_kind, store_time_of(record))
                    else:
                        order = U64.unpack(raw)[0]
                    tx.put(order_key(order, rowid, ekey), b"")
                    if order != indexed_order_of(record):
                        tx.put(ekey, with_indexed_order(record, order))
                    if self._order_kind != ORDER_STORE_TIME:
                        tx.put(ORDER_VALUE + ekey, U64.pack(order))
                expire_time = expire_time_of(record)
                if expire_time is not None:
                    tx.put(expiry_key(expire_time, rowid, ekey), b"")
                etag = tag_fields(record)[1]
                if etag is not None:
                    tx.put(tag_prefix(etag) + ekey, b"")
        # The other opens' shards stay (they write them blindly); the base makes the total right.
        others = [0, 0]
        for k in shards:
            if k != BASE_SHARD and k != self._shard_key:
                raw = tx.get(k)
                if raw is not None:
                    values = SHARD_VALUE.unpack(raw)
                    others[0] += values[0]
                    others[1] += values[1]
        tx.put(BASE_SHARD, SHARD_VALUE.pack(count - others[0], size - others[1], 0, 0))
        tx.discard(self._shard_key)
        w.count = w.size = w.hits = w.misses = 0
        self._own = ZERO_SHARD


def _expiry_of_key(k):
    from kvdb.cache.layout import float_of_sortable
    return float_of_sortable(U64_PAIR.unpack_from(k, 1)[0])


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _largest(heap):
    """(order, rowid) of the largest candidate kept in the max-heap of negated pairs."""
    return -heap[0][0], -heap[0][1]
