"""Deferred access bookkeeping for the least-recently-used and least-frequently-used policies.

diskcache updates an entry's access time or count inside every get. Here a hit only notes the
access in memory (AccessLog); the notes are written to the O and P keys in one transaction
(Maintenance._flush_access) when FLUSH_ENTRIES keys are pending, when the oldest note is
FLUSH_SECONDS old, before every cull (so eviction in this process always sees its own accesses),
on policy changes and on close(). What this changes, documented in docs/cache.md: another
process's cull sees this process's accesses only after they are flushed; a process that dies
loses its unflushed notes (those entries look less used than they were).
"""
import time

from kvdb.cache.records import STORE_AT

FLUSH_ENTRIES = 256         # pending keys that trigger a flush
FLUSH_SECONDS = 1.0         # age of the oldest pending note that triggers a flush


class AccessLog:
    """Accesses of entries not yet written: ekey -> [store_time bytes, last access, count]."""

    def __init__(self):
        self.pending = {}       # replaced (not mutated) by take(), so a flush sees a fixed dict
        self.since = 0.0        # time.monotonic() of the oldest pending note

    def record(self, cache, ekey, record):
        now = time.time()
        note = self.pending.get(ekey)
        stamp = record[STORE_AT:STORE_AT + 8]     # which version of the entry was read
        if note is None or note[0] != stamp:
            if not self.pending:
                self.since = time.monotonic()
            self.pending[ekey] = [stamp, now, 1]
        else:
            note[1] = now
            note[2] += 1
        if len(self.pending) >= FLUSH_ENTRIES or time.monotonic() - self.since > FLUSH_SECONDS:
            cache._flush_access()

    def take(self):
        pending, self.pending = self.pending, {}
        return pending
