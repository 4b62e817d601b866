"""Cache.transact(): a block of cache calls that commits atomically, serialised with all writes.

kvdb transactions are optimistic, and the body of a `with` block cannot be run again after a
conflict, so a block takes the cache's lock first: it commits LOCK_KEY (docs/format/cache.md, C6)
naming its process, thread and open, then runs its calls in one kvdb transaction begun after
that commit, and that transaction's commit deletes LOCK_KEY with the block's writes. Every other
write reads LOCK_KEY inside its own transaction and waits while another holder's lock is there,
so no write can commit between the lock and the block's commit: the block never conflicts, as
diskcache's (an SQLite write transaction) never does. Reads go on meanwhile and see the state
before the block; calls inside the block see its own writes. A holder whose process died no
longer holds the lock (its pid is checked). Blocks nest; a block belongs to one thread.
"""
import contextlib
import os
import struct
import threading
import time

from kvdb.errors import ConflictError
from kvdb.cache.constants import Timeout
from kvdb.cache.layout import LOCK_KEY
from kvdb.cache.writer import Writer

_LOCK_VALUE = struct.Struct(">IQ8s")     # pid, thread ident, opener id (the shard key's random part)


class Transact:
    """Mixed into Cache: transact() and the lock test every write makes."""

    def _lock_value(self):
        return _LOCK_VALUE.pack(os.getpid() & 0xFFFFFFFF, threading.get_ident() & (2 ** 64 - 1), self._shard_key[-8:])

    def _lock_is_live(self, raw):
        """True if the lock `raw` is held by a live holder other than this thread's block."""
        pid, _, _ = _LOCK_VALUE.unpack(raw)
        if raw == self._lock_value():
            return False
        if pid == os.getpid() & 0xFFFFFFFF:
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except (PermissionError, OverflowError):
            return True
        return True

    @contextlib.contextmanager
    def transact(self, retry=False):
        """Context manager: the calls in the block commit together, and no other write (of any
        thread or process) lands between them. Nested blocks join the outer one."""
        local = self._local
        if getattr(local, "writer", None) is not None:
            yield
            return
        self._reopen()
        self._take_lock()
        writer = Writer(self._db.transaction())
        local.writer = writer
        self._blocks += 1
        self._db_get = self._block_aware_get
        try:
            yield
        except BaseException:
            self._end_block(local)
            writer.tx.rollback()
            self._drop_lock()
            raise
        self._end_block(local)
        tx = writer.tx
        try:
            writer.hits, writer.misses = self._hits, self._misses
            tx.discard(LOCK_KEY)
            writer.commit(self)
        except BaseException:
            tx.rollback()
            self._drop_lock()
            raise
        if writer.min_expire is not None and writer.min_expire < self._next_expiry:
            self._next_expiry = writer.min_expire

    def _end_block(self, local):
        local.writer = None
        self._blocks -= 1
        if not self._blocks and self._db is not None:
            self._db_get = self._db.get

    def _block_aware_get(self, ekey):
        writer = getattr(self._local, "writer", None)
        if writer is not None:
            return writer.tx.get(ekey)
        return self._db.get(ekey)

    def _take_lock(self):
        deadline = time.monotonic() + self._timeout
        mine = self._lock_value()
        while True:
            try:
                with self._db.transaction() as tx:
                    raw = tx.get(LOCK_KEY)
                    if raw is None or not self._lock_is_live(raw):
                        tx.put(LOCK_KEY, mine)
                        return
            except ConflictError:
                pass
            if time.monotonic() > deadline:
                raise Timeout(f"transact() waited {self._timeout} s for the cache lock held by another block")
            time.sleep(0.001)

    def _drop_lock(self):
        mine = self._lock_value()
        while True:
            try:
                with self._db.transaction() as tx:
                    if tx.get(LOCK_KEY) == mine:
                        tx.discard(LOCK_KEY)
                return
            except ConflictError:
                continue
