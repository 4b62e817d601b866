"""Cache: a disk cache on a kvdb B+Tree database, call for call compatible with diskcache.Cache.

    from kvdb.cache import Cache          # instead of: from diskcache import Cache
    cache = Cache("/tmp/mycache")
    cache.set("key", "value", expire=60, tag="group")
    cache.get("key")                     # -> "value"

The calls, their arguments, return values and errors are diskcache 5.6's (docs/cache.md says
what differs). The key layout in the database is docs/format/cache.md. This module holds the
open, the settings and the single-entry calls; cull/expire/evict/clear/check are in
maintenance.py, the queue in queue.py, memoize in memo.py, transact in transact.py.
"""
import os
import tempfile
import threading
import time
import weakref

import kvdb
from kvdb.errors import ConflictError, CorruptionError
from kvdb.cache.access import AccessLog
from kvdb.cache.constants import CLOSE_TIMEOUT, ENOVAL
from kvdb.cache.entries import ORDER_OF_FIELD, raise_order, remove, store
from kvdb.cache.keys import _TEXT_PREFIX, MAX_ENCODED_KEY, entry_key, key_of
from kvdb.cache.layout import (CACHE_FORMAT_VERSION, ENTRY, LOCK_KEY, ROWID, ROWID_EKEY_AT, SETTING, SHARD,
                               VERSION_KEY, expiry_key)
from kvdb.cache.maintenance import Maintenance
from kvdb.cache.memo import memoize
from kvdb.cache.queue import Queue
from kvdb.cache.records import (F64, HAS_EXPIRE, HAS_TAG, HEADER_SIZE, I64, MODE_FLOAT, MODE_INT, MODE_MASK,
                                MODE_STR, STORE_AT, decode_payload, encode_value, expire_time_of, file_value,
                                payload_at, tag_value, with_expire)
from kvdb.cache.settings import (DEFAULT_SETTINGS, EVICTION_POLICY, check_setting, decode_setting,
                                 encode_setting)
from kvdb.cache.transact import Transact
from kvdb.cache.values import Disk
from kvdb.cache.writer import SHARD_VALUE, ZERO_SHARD, Writer, run_write, shard_key_for_this_open

_MISSING = object()
_OPEN_CACHES = weakref.WeakSet()      # every Cache, so that a forked child drops their handles


def _forget_databases_after_fork():
    """In a forked child: every Cache reopens on its next call, as a new opener (its own shard),
    since kvdb handles opened by the parent raise ForkError in the child."""
    for cache in list(_OPEN_CACHES):
        cache._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_databases_after_fork)

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


class Cache(Maintenance, Queue, Transact):
    """A disk cache in one kvdb database, with diskcache.Cache's calls (docs/cache.md)."""

    def __init__(self, directory=None, timeout=60, disk=Disk, **settings):
        """Open (creating if missing) the cache in `directory` (None: a new temporary directory).

        timeout: seconds a write waits for a transact() block of another thread or process, or
        retries write conflicts, before raising Timeout. disk: Disk (the only serializer).
        settings: any of DEFAULT_SETTINGS; given ones are stored in the cache, others read from it.
        """
        for name, value in settings.items():
            check_setting(name, value)
        if not (isinstance(disk, type) and issubclass(disk, Disk)):
            raise ValueError(f"disk must be kvdb.cache.Disk (custom serializers are not supported), not {disk!r}")
        if directory is None:
            directory = tempfile.mkdtemp(prefix="kvdb-cache-")
        directory = os.path.expanduser(os.fspath(directory))
        self._directory = directory           # constant after construction
        self._timeout = timeout               # constant after construction
        self._local = threading.local()       # .writer: the thread's transact() block, if any
        self._lock = threading.Lock()         # held from writing this open's shard to its commit
        self._last_rowid = 0                  # rowids this open handed out are above it
        self._blocks = 0                      # transact() blocks running in this open's threads
        self._shard_key = shard_key_for_this_open()
        self._db = None
        self._open(settings)
        _OPEN_CACHES.add(self)
        self._disk = disk(directory, min_file_size=self.disk_min_file_size, pickle_protocol=self.disk_pickle_protocol)

    # -- opening -------------------------------------------------------------------------------

    def _open(self, settings):
        os.makedirs(self._directory, exist_ok=True)
        db = kvdb.open(self._directory, engine="btree", sync="normal")
        try:
            self._check_version(db)
            stored = self._stored_settings(db)
        except BaseException:
            db.close()
            raise
        self._db = db
        self._db_get = db.get                 # the hot path's bound method
        self._own = ZERO_SHARD                # this open's shard as last committed
        self._others = (0, 0)                 # the other shards' count and size when last summed
        self._others_at = 0.0                 # when (time.monotonic())
        self._next_expiry = float("inf")      # soonest expire_time known to be in the X index
        self._expiry_at = 0.0                 # when that was read (time.monotonic())
        self._hits = self._misses = 0         # statistics not yet in the shard
        self._access = AccessLog()
        merged = dict(DEFAULT_SETTINGS)
        merged.update(stored)
        merged.update(settings)
        for name, value in merged.items():
            setattr(self, name, value)
        self._apply_policy(stored.get("eviction_policy"))
        changed = {name: value for name, value in merged.items() if stored.get(name, _MISSING) != value}
        if changed:
            with db.transaction() as tx:
                for name, value in changed.items():
                    tx.put(SETTING + name.encode(), encode_setting(value))
        self._refresh_expiry()

    @staticmethod
    def _check_version(db):
        with db.transaction() as tx:
            raw = tx.get(VERSION_KEY)
            if raw is None:
                with db.scan() as it:
                    if next(it, None) is not None:
                        raise ValueError(f"{db!r} holds a kvdb database that is not a cache (no {VERSION_KEY!r} key)")
                tx.put(VERSION_KEY, str(CACHE_FORMAT_VERSION).encode())
                return
        if not raw.isdigit():
            raise CorruptionError(f"cache format version {raw[:32]!r} under {VERSION_KEY!r} is not a number")
        if int(raw) != CACHE_FORMAT_VERSION:
            raise ValueError(f"cache format version {int(raw)} is not supported: this kvdb reads version "
                             f"{CACHE_FORMAT_VERSION} (docs/format/cache.md)")

    @staticmethod
    def _stored_settings(db):
        stored = {}
        with db.scan(prefix=SETTING) as it:
            for k, v in it:
                name = k[len(SETTING):].decode()
                if name in DEFAULT_SETTINGS:
                    stored[name] = decode_setting(v)
        return stored

    def _apply_policy(self, previous):
        """Take self.eviction_policy into use, rebuilding the O index if it differs from the
        stored policy's."""
        self._order_kind = ORDER_OF_FIELD[EVICTION_POLICY[self.eviction_policy]]
        self._track_access = self._order_kind >= 2        # LRU, LFU: gets record accesses
        self._plain_get = not self._track_access and not self.statistics
        if previous is not None and previous != self.eviction_policy:
            self._rebuild_order(ORDER_OF_FIELD[EVICTION_POLICY[previous]])

    def _reopen(self):
        if self._db is None:
            self._open({})

    def _forget_after_fork(self):
        self._db = None                       # the parent's handle: not closed, not used
        self._db_get = self._reopening_get
        self._shard_key = shard_key_for_this_open()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._blocks = 0

    # -- properties and settings ---------------------------------------------------------------

    @property
    def directory(self):
        """Cache directory."""
        return self._directory

    @property
    def timeout(self):
        """Seconds a write waits for a transact() lock or retries conflicts."""
        return self._timeout

    @property
    def disk(self):
        """Disk used for serialization."""
        return self._disk

    def reset(self, key, value=ENOVAL, update=True):
        """Set setting `key` to `value` (stored in the cache unless update=False); without a
        value, reload it from the cache. Returns the setting's value."""
        self._reopen()
        name = key
        if value is ENOVAL:
            stored = self._stored_settings(self._db)
            value = stored.get(name, DEFAULT_SETTINGS.get(name))
            check_setting(name, value)
            previous = getattr(self, name, value)
        else:
            check_setting(name, value)
            previous = getattr(self, name, value)
            if update:
                with self._db.transaction() as tx:
                    tx.put(SETTING + name.encode(), encode_setting(value))
        setattr(self, name, value)
        if name.startswith("disk_") and hasattr(self, "_disk"):
            setattr(self._disk, name[len("disk_"):], value)
        if name in ("eviction_policy", "statistics"):
            self._flush_access()
            self._apply_policy(previous if name == "eviction_policy" else None)
        return value

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key, default=None, read=False, expire_time=False, tag=False, retry=False):
        """Value of `key`, or `default` if missing or expired; with expire_time/tag, a tuple
        (value, expire_time, tag) of the asked fields. read=True gives bytes values as a file."""
        if key.__class__ is str:            # the common key, encoded inline (keys.entry_key)
            ekey = _TEXT_PREFIX + key.encode("utf-8", "surrogatepass")
            if len(ekey) > MAX_ENCODED_KEY:
                ekey = entry_key(key)
        else:
            ekey = entry_key(key)
        record = self._db_get(ekey)
        if record is not None:
            flags = record[0]
            if not flags & HAS_EXPIRE or F64.unpack_from(record, 2)[0] > time.time():
                if self._plain_get and flags < HAS_TAG and not (read or expire_time or tag):
                    mode = flags & MODE_MASK
                    if mode == MODE_STR:
                        return record[HEADER_SIZE:].decode("utf-8", "surrogatepass")
                    return decode_payload(mode, record, HEADER_SIZE)
                return self._hit(key, record, read, expire_time, tag)
        elif self._plain_get and not (expire_time or tag):
            return default
        if self.statistics:
            self._misses += 1
        if expire_time and tag:
            return default, None, None
        if expire_time or tag:
            return default, None
        return default

    def _hit(self, key, record, read, expire_time, tag):
        if self.statistics:
            self._hits += 1
        if self._track_access:
            self._access.record(self, entry_key(key), record)
        mode = record[0] & MODE_MASK
        at = payload_at(record)
        value = file_value(mode, record, at) if read else decode_payload(mode, record, at)
        if expire_time and tag:
            return value, expire_time_of(record), tag_value(record)
        if expire_time:
            return value, expire_time_of(record)
        if tag:
            return value, tag_value(record)
        return value

    def read(self, key, retry=False):
        """The bytes value of `key` as a binary file object; KeyError if missing."""
        value = self.get(key, ENOVAL, read=True)
        if value is ENOVAL:
            raise KeyError(key)
        return value

    def __getitem__(self, key):
        value = self.get(key, ENOVAL)
        if value is ENOVAL:
            raise KeyError(key)
        return value

    def __contains__(self, key):
        self._reopen()
        record = self._db_get(entry_key(key))
        return record is not None and (not record[0] & HAS_EXPIRE or F64.unpack_from(record, 2)[0] > time.time())

    # -- writes --------------------------------------------------------------------------------

    def set(self, key, value, expire=None, read=False, tag=None, retry=False):
        """Store `value` under `key` (expire: seconds to live; tag: a label for evict()). True."""
        args = self._insert_args(key, value, expire, read, tag)
        run_write(self, self._set_op, args)
        self._after_insert(args[4])
        return True

    def _insert_args(self, key, value, expire, read, tag):
        """What set() and add() pass to their write: (ekey, key, mode, payload, now, expire_time,
        tag), the value encoded (and read from a file with read=True) before anything is written."""
        ekey = entry_key(key)
        if read:
            value = value.read()
        mode, payload = encode_value(value, self.disk_pickle_protocol)
        if self._db is None:
            self._reopen()
        now = time.time()
        return ekey, key, mode, payload, now, None if expire is None else now + expire, tag

    def _set_op(self, w, ekey, key, mode, payload, now, expire_time, tag):
        store(w, self._order_kind, self._new_rowid, ekey, key, mode, payload, now, expire_time, tag,
              w.tx.get(ekey))

    def __setitem__(self, key, value):
        self.set(key, value)

    def add(self, key, value, expire=None, read=False, tag=None, retry=False):
        """Store `value` only if `key` is missing (or expired); True if it was stored."""
        args = self._insert_args(key, value, expire, read, tag)
        added = run_write(self, self._add_op, args)
        if added:
            self._after_insert(args[4])
        return added

    def _add_op(self, w, ekey, key, mode, payload, now, expire_time, tag):
        old = w.tx.get(ekey)
        if old is not None and _live(old, now):
            return False
        store(w, self._order_kind, self._new_rowid, ekey, key, mode, payload, now, expire_time, tag, old)
        return True

    def incr(self, key, delta=1, default=0, retry=False):
        """Add `delta` to the number under `key` atomically and return the result; a missing key
        starts from `default` (KeyError if default is None). As in diskcache, an incr stores the
        value (store_time now) and counts as an access for LRU and LFU."""
        if key.__class__ is str:            # the common key, encoded inline (keys.entry_key)
            ekey = _TEXT_PREFIX + key.encode("utf-8", "surrogatepass")
            if len(ekey) > MAX_ENCODED_KEY:
                ekey = entry_key(key)
        else:
            ekey = entry_key(key)
        if self._db is None:
            self._reopen()
        now = time.time()
        if not self._blocks and not self._track_access:
            value = self._incr_in_place(ekey, delta, now)
            if value is not None:
                return value
        elif self._track_access and ekey in self._access.pending:
            self._flush_access()            # before incr changes the store time they are noted under
        result, inserted = run_write(self, self._incr_op, (ekey, key, delta, default, now))
        if inserted:
            self._after_insert(now)
        return result

    def _incr_in_place(self, ekey, delta, now):
        """incr's common case in one try, without the general write's bookkeeping: a live
        64-bit int entry, an int delta, no lock, no conflict, no index to touch. The result,
        or None when any of that does not hold (then the general path runs)."""
        if delta.__class__ is not int:
            return None
        tx = self._db.transaction()
        try:
            if tx.get(LOCK_KEY) is not None:
                return None
            old = tx.get(ekey)
            if old is None:
                return None
            flags = old[0]
            if flags & MODE_MASK != MODE_INT or (flags & HAS_EXPIRE and F64.unpack_from(old, 2)[0] <= now):
                return None
            at = HEADER_SIZE if flags < HAS_TAG else payload_at(old)
            value = I64.unpack_from(old, at)[0] + delta
            if not _INT64_MIN <= value <= _INT64_MAX:
                return None
            record = bytearray(old)
            I64.pack_into(record, at, value)
            F64.pack_into(record, STORE_AT, now)
            tx.put(ekey, record)
            tx.commit()
            return value
        except ConflictError:
            return None
        finally:
            tx.rollback()                   # nothing if it committed

    def _incr_op(self, w, ekey, key, delta, default, now):
        tx = w.tx
        old = tx.get(ekey)
        if old is None or (old[0] & HAS_EXPIRE and F64.unpack_from(old, 2)[0] <= now):
            if default is None:
                raise KeyError(key)
            value = default + delta
            mode, payload = encode_value(value, self.disk_pickle_protocol)
            store(w, self._order_kind, self._new_rowid, ekey, key, mode, payload, now, None, None, old)
            return value, True
        flags = old[0]
        at = HEADER_SIZE if flags < HAS_TAG else payload_at(old)
        mode = flags & MODE_MASK
        if mode == MODE_INT:
            value = I64.unpack_from(old, at)[0] + delta
        elif mode == MODE_FLOAT:
            value = F64.unpack_from(old, at)[0] + delta
        else:
            current = decode_payload(mode, old, at)
            raise TypeError(f"incr/decr need a stored 64-bit int or a float, not {type(current).__name__}")
        # the record with the new value and store time (key kind, expiry, rowid, order, tag kept);
        # both numeric modes take 8 bytes, so the record keeps its size
        record = bytearray(old)
        if value.__class__ is int and _INT64_MIN <= value <= _INT64_MAX:
            I64.pack_into(record, at, value)
            record[0] = (flags & ~MODE_MASK) | MODE_INT
        elif value.__class__ is float:
            F64.pack_into(record, at, value)
            record[0] = (flags & ~MODE_MASK) | MODE_FLOAT
        else:
            raise OverflowError(f"incr/decr result {value!r} is not a 64-bit int or a float")
        F64.pack_into(record, STORE_AT, now)
        tx.put(ekey, record)
        if self._track_access:
            raise_order(w, self._order_kind, ekey, now)
        return value, False

    def decr(self, key, delta=1, default=0, retry=False):
        """Subtract `delta` from the number under `key` atomically (see incr)."""
        return self.incr(key, -delta, default, retry)

    def delete(self, key, retry=False):
        """Remove `key`; True if it was there (an expired key is not, and stays for cull)."""
        if key.__class__ is str:            # the common key, encoded inline (keys.entry_key)
            ekey = _TEXT_PREFIX + key.encode("utf-8", "surrogatepass")
            if len(ekey) > MAX_ENCODED_KEY:
                ekey = entry_key(key)
        else:
            ekey = entry_key(key)
        if self._db is None:
            self._reopen()
        now = time.time()
        if not self._blocks:
            deleted = self._delete_in_place(ekey, now)
            if deleted is not None:
                return deleted
        return run_write(self, self._delete_op, (ekey, now))

    def _delete_in_place(self, ekey, now):
        """delete in one try, without the general write's retry loop: True or False, or None
        when a lock or a conflict needs the general path."""
        tx = self._db.transaction()
        try:
            if tx.get(LOCK_KEY) is not None:
                return None
            record = tx.get(ekey)
            if record is None or (record[0] & HAS_EXPIRE and F64.unpack_from(record, 2)[0] <= now):
                return False
            w = Writer(tx)
            remove(w, self._order_kind, ekey, record)
            w.commit(self)
            return True
        except ConflictError:
            return None
        finally:
            tx.rollback()                   # nothing if it committed

    def _delete_op(self, w, ekey, now):
        record = w.tx.get(ekey)
        if record is None or not _live(record, now):
            return False
        remove(w, self._order_kind, ekey, record)
        return True

    def __delitem__(self, key, retry=True):
        if not self.delete(key):
            raise KeyError(key)

    def pop(self, key, default=None, expire_time=False, tag=False, retry=False):
        """Remove `key` and return its value (default if missing), with expire_time/tag as get."""
        ekey = entry_key(key)
        self._reopen()
        record = run_write(self, self._pop_op, (ekey, time.time()))
        if record is None:
            value, exp, etag = default, None, None
        else:
            value = decode_payload(record[0] & MODE_MASK, record, payload_at(record))
            exp, etag = expire_time_of(record), tag_value(record)
        if expire_time and tag:
            return value, exp, etag
        if expire_time:
            return value, exp
        if tag:
            return value, etag
        return value

    def _pop_op(self, w, ekey, now):
        record = w.tx.get(ekey)
        if record is None or not _live(record, now):
            return None
        remove(w, self._order_kind, ekey, record)
        return record

    def touch(self, key, expire=None, retry=False):
        """Give a live `key` a new expiry (None: never); True if it was touched."""
        ekey = entry_key(key)
        self._reopen()
        now = time.time()
        expire_time = None if expire is None else now + expire
        return run_write(self, self._touch_op, (ekey, now, expire_time))

    def _touch_op(self, w, ekey, now, expire_time):
        tx = w.tx
        old = tx.get(ekey)
        if old is None or not _live(old, now):
            return False
        rowid = int.from_bytes(old[18:26], "big")
        previous = expire_time_of(old)
        if previous is not None:
            tx.discard(expiry_key(previous, rowid, ekey))
        if expire_time is not None:
            tx.put(expiry_key(expire_time, rowid, ekey), b"")
            w.min_expire = expire_time
        tx.put(ekey, with_expire(old, expire_time))
        return True

    # -- counters and bookkeeping ---------------------------------------------------------------

    def _new_rowid(self):
        # Unique enough without a lock: two threads taking the same rowid still get distinct R
        # keys, since the encoded key follows the rowid in every index key.
        rowid = max(time.time_ns(), self._last_rowid + 1)
        self._last_rowid = rowid
        return rowid

    def _view(self):
        """What this thread reads through: its transact() block's transaction (which sees the
        block's own writes) and writer, or the database and None."""
        if self._blocks:
            writer = getattr(self._local, "writer", None)
            if writer is not None:
                return writer.tx, writer
        return self._db, None

    def _shards(self):
        """(count, size, hits, misses) summed over every shard, with this open's pending stats
        (and, inside a transact() block, the block's own changes)."""
        self._reopen()
        total = [0, 0, self._hits, self._misses]
        own = ZERO_SHARD
        with self._db.scan(prefix=SHARD) as it:
            for k, v in it:
                values = SHARD_VALUE.unpack(v)
                if k == self._shard_key:
                    own = values
                for i in range(4):
                    total[i] += values[i]
        self._others = (total[0] - own[0], total[1] - own[1])
        self._others_at = time.monotonic()
        _, writer = self._view()
        if writer is not None:
            total[0] += writer.count
            total[1] += writer.size
        return total

    def __len__(self):
        """Count of entries, expired ones included (as diskcache counts)."""
        return self._shards()[0]

    def volume(self):
        """Bytes the entries take: each entry's encoded key and record (docs/cache.md)."""
        return self._shards()[1]

    def stats(self, enable=True, reset=False):
        """(hits, misses) counted while statistics were enabled; enables or disables counting,
        and with reset=True zeroes the counts after returning them."""
        self._reopen()
        total = self._shards()
        if reset:
            run_write(self, self._reset_stats_op, ())
        self.reset("statistics", 1 if enable else 0)
        return total[2], total[3]

    def _reset_stats_op(self, w):
        tx = w.tx
        with tx.scan(prefix=SHARD) as it:
            shards = list(it)
        for k, v in shards:
            count, size, _, _ = SHARD_VALUE.unpack(v)
            tx.put(k, SHARD_VALUE.pack(count, size, 0, 0))
        w.hits = w.misses = 0
        self._hits = self._misses = 0
        self._own = self._own[:2] + (0, 0)

    # -- iteration -------------------------------------------------------------------------------

    def iterkeys(self, reverse=False):
        """Keys in sort order (numbers, then str, then bytes and pickled keys), expired included."""
        self._reopen()
        with self._view()[0].scan(prefix=ENTRY, reverse=reverse) as it:
            for ekey, record in it:
                yield key_of(ekey, record[1])

    def __iter__(self):
        """Keys in insertion order (a replaced key keeps its place), expired ones included."""
        return self._iter_rowids(False)

    def __reversed__(self):
        return self._iter_rowids(True)

    def _iter_rowids(self, reverse):
        self._reopen()
        with self._view()[0].scan(prefix=ROWID, reverse=reverse) as it:
            for k, kind in it:
                yield key_of(k[ROWID_EKEY_AT:], kind[0])

    # -- life cycle --------------------------------------------------------------------------------

    def close(self):
        """Flush pending access and statistics, fold this open's counters and close the database.
        The cache reopens on its next use, as diskcache's does."""
        db = self._db
        if db is None:
            return
        try:
            self._flush_access(CLOSE_TIMEOUT)
            if self._hits or self._misses:
                run_write(self, lambda w: None, (), CLOSE_TIMEOUT)
            self._fold_shard(CLOSE_TIMEOUT)
            self._own = ZERO_SHARD
        finally:
            self._db = None
            self._db_get = self._reopening_get
            db.close()

    def _reopening_get(self, ekey):
        self._reopen()
        return self._db_get(ekey)

    def __enter__(self):
        self._reopen()
        return self

    def __exit__(self, *exception):
        self.close()

    def __getstate__(self):
        return self._directory, self._timeout, type(self._disk)

    def __setstate__(self, state):
        self.__init__(*state)

    def __repr__(self):
        return f"kvdb.cache.Cache({self._directory!r})"

    def create_tag_index(self):
        """Kept for diskcache's API: the tag index always exists (evict() is a prefix scan)."""
        self.reset("tag_index", 1)

    def drop_tag_index(self):
        """Kept for diskcache's API: the tag index always exists."""
        self.reset("tag_index", 0)

    memoize = memoize


def _live(record, now):
    return not record[0] & HAS_EXPIRE or F64.unpack_from(record, 2)[0] > now
