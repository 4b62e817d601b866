"""One cache write: a kvdb transaction, its counter deltas, and the loop that retries it.

Every write of the cache (set, delete, incr, cull, ...) runs as `Writer` callbacks inside one
optimistic kvdb transaction. A conflict with another process or thread (kvdb.ConflictError) runs
the callback again on a fresh transaction, until the cache's timeout passes (then Timeout).
Inside a transact() block the callbacks share the block's transaction instead and nothing
commits until the block ends (kvdb/cache/transact.py).

Counters (docs/format/cache.md, C5): each Cache instance keeps its entry count, stored bytes,
hits and misses in its own shard key (META "n:" + opener id), so concurrent writers of different
processes never conflict on a shared counter; len() and volume() add the shards up.
"""
import os
import struct
import time

from kvdb.errors import ConflictError
from kvdb.cache.constants import Timeout
from kvdb.cache.layout import LOCK_KEY, SHARD

SHARD_VALUE = struct.Struct(">qqqq")     # count, size (bytes), hits, misses
ZERO_SHARD = (0, 0, 0, 0)


class LockedByOther(Exception):
    """Raised inside a write whose transaction found a transact() lock held by someone else."""


class Writer:
    """The state of one write attempt: its transaction and what it changes in the counters."""
    __slots__ = ("tx", "count", "size", "hits", "misses", "min_expire", "shard")

    def __init__(self, tx):
        self.tx = tx                # the kvdb transaction every read and write goes through
        self.count = 0              # entries added minus entries removed
        self.size = 0               # bytes added minus bytes removed (keys and records)
        self.hits = 0               # statistics flushed with this write
        self.misses = 0
        self.min_expire = None      # the soonest expire_time this write stored, for cull's hint
        self.shard = None           # the shard's values after this write, once finish() ran

    def finish(self, shard_key):
        """Write the counter deltas into the shard (read in this transaction, so threads sharing
        one Cache serialise on it)."""
        if self.count or self.size or self.hits or self.misses:
            raw = self.tx.get(shard_key)
            count, size, hits, misses = ZERO_SHARD if raw is None else SHARD_VALUE.unpack(raw)
            self.shard = (count + self.count, size + self.size, hits + self.hits, misses + self.misses)
            self.tx.put(shard_key, SHARD_VALUE.pack(*self.shard))


def shard_key_for_this_open():
    """A fresh shard key: the pid (so a dead opener's shard can be folded) and 8 random bytes."""
    return SHARD + struct.pack(">I", os.getpid() & 0xFFFFFFFF) + os.urandom(8)


def pid_of_shard(key):
    return struct.unpack_from(">I", key, len(SHARD))[0]


def run_write(cache, op, args):
    """Run `op(writer, *args)` in a transaction and commit it, retrying conflicts; inside a
    transact() block, run it in the block's writer. Returns what `op` returned."""
    block = getattr(cache._local, "writer", None)
    if block is not None:
        return op(block, *args)
    deadline = None
    db = cache._db
    while True:
        writer = Writer(db.transaction())
        tx = writer.tx
        try:
            lock = tx.get(LOCK_KEY)
            if lock is not None and cache._lock_is_live(lock):
                raise LockedByOther
            cache._stats_into(writer)
            result = op(writer, *args)
            writer.finish(cache._shard_key)
            tx.commit()
        except (ConflictError, LockedByOther) as exc:
            tx.rollback()
            now = time.monotonic()
            if deadline is None:
                deadline = now + cache._timeout
            elif now > deadline:
                raise Timeout(f"cache write gave up after {cache._timeout} s: {exc or 'a transact() block held the lock'}") from None
            if isinstance(exc, LockedByOther):
                time.sleep(0.001)
            continue
        except BaseException:
            tx.rollback()
            raise
        cache._committed(writer)
        return result
