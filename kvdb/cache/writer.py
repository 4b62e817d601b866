"""One cache write: a kvdb transaction, its counter deltas, and the loop that retries it.

Every write of the cache (set, delete, incr, cull, ...) runs as `Writer` callbacks inside one
optimistic kvdb transaction. A conflict with another process or thread (kvdb.ConflictError) runs
the callback again on a fresh transaction, until the cache's timeout passes (then Timeout).
Inside a transact() block the callbacks share the block's transaction instead and nothing
commits until the block ends (kvdb/cache/transact.py).

Counters (docs/format/cache.md, C5): each Cache instance keeps its entry count, stored bytes,
hits and misses in its own shard key (META "n:" + opener id), written only by that instance (a
blind put of the values it keeps in memory, under its lock), so concurrent writers of different
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
        self.count = self.size = 0  # entries and bytes (keys and records) added minus removed
        self.hits = self.misses = 0     # statistics flushed with this write
        self.min_expire = None      # the soonest expire_time this write stored, for cull's hint
        self.shard = None           # the shard's values after this write, once finish() ran

    def finish(self, cache):
        """Write the counter deltas into this open's shard: a blind put of the values this open
        keeps in memory (cache._own), since no one else writes its shard (C5). The caller holds
        cache._lock from here until the commit and the update of cache._own."""
        own = cache._own
        self.shard = (own[0] + self.count, own[1] + self.size, own[2] + self.hits, own[3] + self.misses)
        self.tx.put(cache._shard_key, SHARD_VALUE.pack(*self.shard))

    def commit(self, cache):
        """Commit, with the counters if anything changed them; cache._own follows the commit."""
        if self.count or self.size or self.hits or self.misses:
            with cache._lock:
                self.finish(cache)
                self.tx.commit()
                cache._own = self.shard
                cache._hits -= self.hits
                cache._misses -= self.misses
        else:
            self.tx.commit()


def shard_key_for_this_open():
    """A fresh shard key: the pid (so a dead opener's shard can be folded) and 8 random bytes."""
    return SHARD + struct.pack(">I", os.getpid() & 0xFFFFFFFF) + os.urandom(8)


def pid_of_shard(key):
    return struct.unpack_from(">I", key, len(SHARD))[0]


def run_write(cache, op, args, timeout=None):
    """Run `op(writer, *args)` in a transaction and commit it, retrying conflicts for up to
    `timeout` seconds (the cache's timeout if None); inside a transact() block, run it in the
    block's writer. Returns what `op` returned."""
    if cache._blocks:
        block = getattr(cache._local, "writer", None)
        if block is not None:
            return op(block, *args)
    deadline = None
    db = cache._db
    while True:
        tx = db.transaction()
        writer = Writer(tx)
        try:
            lock = tx.get(LOCK_KEY)
            if lock is not None and cache._lock_is_live(lock):
                raise LockedByOther
            if cache._hits or cache._misses:
                writer.hits, writer.misses = cache._hits, cache._misses
            result = op(writer, *args)
            writer.commit(cache)
        except (ConflictError, LockedByOther) as exc:
            tx.rollback()
            now = time.monotonic()
            if deadline is None:
                deadline = now + (cache._timeout if timeout is None else timeout)
            elif now > deadline:
                raise Timeout(f"cache write gave up after {cache._timeout} s: "
                              f"{exc or 'a transact() block held the lock'}") from None
            if isinstance(exc, LockedByOther):
                time.sleep(0.001)
            continue
        except BaseException:
            tx.rollback()
            raise
        if writer.min_expire is not None and writer.min_expire < cache._next_expiry:
            cache._next_expiry = writer.min_expire
        return result
