# cython: language_level=3, boundscheck=False, wraparound=False
"""The server's hottest commands without Python frames, run from C when nothing
about the connection or the key needs the general path:

* strings: GET, plain SET (`SET key value`), INCR, DECR, MSET;
* hashes (fastlane_hashes.pxi): HSET;
* lists (fastlane_lists.pxi): LPUSH, RPUSH, LPOP and RPOP without a count, LLEN,
  LINDEX, LRANGE;
* sets (fastlane_sets.pxi): SADD, SREM, SISMEMBER, SCARD, SPOP without a count (its
  random member comes from setsample.pop_member, as in the general path).

FastLane.run_batch(client, max_commands, max_bytes) runs the client's pending
commands from the front for as long as they are fast ones, and stops at the first
it does not handle, leaving it for the general path. It handles a command only
when the general path (Server.execute -> Server.call -> the command's handler)
would do exactly the same thing:

* the connection is in no MULTI, authenticated, subscribed to nothing, and its
  user is unrestricted (so no ACL check or audit applies);
* the key's name fits a meta record key (longer names, kept through their digest,
  take the general path);
* reads (GET, LLEN, LINDEX, LRANGE, SISMEMBER, SCARD): GET takes any key; the
  others a key that is absent or has no expiry;
* writes: the server does not gate writes (a read-only replica's READONLY and
  min-replicas-to-write's NOREPLICAS come from the general path), the key is absent, or of the command's type without expiry (no expiry
  to check or index entry to move), nobody WATCHes anything, keyspace
  notifications are off, and no client is blocked on the key (so the general
  path's key_changed would do nothing); a pop or SREM that would empty its key,
  INCR/DECR of a non-integer or past the 64-bit range, a member past the name
  limit, an element past the engine's value limit and a list end out of room are
  left to the general path, which deletes the key or replies the error;
* a key of another type is left to the general path (its WRONGTYPE reply), and so
  is a meta record that does not decode as the general path expects.

Every check that can send a command to the general path runs before its first
write, so a command is run by one path alone. Its effects are the general path's:
the same reply, the same records written through the group's transaction (new
collections take their version from Keyspace.new_version, as the general path
does), the same key counter, the same statistics (commands processed,
per-command calls and µs, keyspace hits and misses) and the same slow-log entry
when the command was slow. Per-command statistics are added once per batch (the
counts and µs are the sums of the commands run). Within a batch the last meta
record read is kept with the batch's changes and written once, when a command
reads another key or the batch ends (meta_get / meta_put / meta_flush), so a
pipeline of pushes to one list reads and writes its meta record once; the general
path then reads it back from the transaction like any other write.

Around the batch, the same module does the per-client glue of the command loop
from C when the fast lane is on: data_received (Client.data_received),
run_clients (Server.run_group's loop over the ready clients, Client.run's common
case) and flush_clients (Client.flush, replies encoded by fastreply.pyx). Each
keeps the Python version's steps; KVDB_SERVER_FASTLANE=0 runs the Python ones.

tests/server/test_server_commands.py, tests/server/test_server_lists.py and
tests/server/test_server_sets.py run their cases through both paths;
tests/server/test_server_fastlane_types.py runs random pipelines from several clients
through a server of each kind and compares every byte sent, every record, the
counters, statistics and slow log.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from kvdb.server.protocol.resp cimport RequestParser

import logging
import time
from types import MethodType

import kvdb
from kvdb.server.protocol.resp import OK, ErrorReply

from .. import setsample
from ..client import COMMANDS_PER_TURN as _PER_TURN, OUTPUT_PER_TURN as _OUT_PER_TURN
from ..keyspace import LONG_FIELDS, LONG_META, MAX_NAME
from .fastreply import encode_replies

log = logging.getLogger("kvdb.server")

cdef bytes ZERO8 = bytes(8)
cdef bytes STRING_HEADER = b"s" + bytes(8)      # type "s", no expiry
cdef object WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
cdef object PASS = object()      # a command function's answer: leave this command to the general path
cdef long long INT64_MAX = 9223372036854775807
cdef long long INT64_MIN = -INT64_MAX - 1
cdef Py_ssize_t C_LONG_META = LONG_META
cdef Py_ssize_t C_MAX_NAME = MAX_NAME
cdef Py_ssize_t C_LONG_FIELDS = LONG_FIELDS
cdef Py_ssize_t C_MAX_KEY = kvdb.MAX_KEY_SIZE
cdef Py_ssize_t C_MAX_VALUE = kvdb.MAX_VALUE_SIZE
cdef uint64_t POOL_SET_MAX = setsample.POOL_SET_MAX
cdef Py_ssize_t COMMANDS_PER_TURN = _PER_TURN
cdef Py_ssize_t OUTPUT_PER_TURN = _OUT_PER_TURN

# Command kinds (index into the per-batch statistics).
cdef enum:
    KIND_GET = 1
    KIND_SET = 2
    KIND_INCR = 3
    KIND_DECR = 4
    KIND_LPUSH = 5
    KIND_RPUSH = 6
    KIND_LPOP = 7
    KIND_RPOP = 8
    KIND_LLEN = 9
    KIND_LINDEX = 10
    KIND_LRANGE = 11
    KIND_SADD = 12
    KIND_SREM = 13
    KIND_SISMEMBER = 14
    KIND_SCARD = 15
    KIND_SPOP = 16
    KIND_HSET = 17
    KIND_MSET = 18
    NKINDS = 19

# name, kind, arity (Redis's: n exact, -n at least), writes
KIND_TABLE = (
    ("get", KIND_GET, 2, False), ("set", KIND_SET, 3, True), ("incr", KIND_INCR, 2, True),
    ("decr", KIND_DECR, 2, True),
    ("lpush", KIND_LPUSH, -3, True), ("rpush", KIND_RPUSH, -3, True), ("lpop", KIND_LPOP, 2, True),
    ("rpop", KIND_RPOP, 2, True), ("llen", KIND_LLEN, 2, False), ("lindex", KIND_LINDEX, 3, False),
    ("lrange", KIND_LRANGE, 4, False),
    ("sadd", KIND_SADD, -3, True), ("srem", KIND_SREM, -3, True), ("sismember", KIND_SISMEMBER, 3, False),
    ("scard", KIND_SCARD, 2, False), ("spop", KIND_SPOP, 2, True),
    ("hset", KIND_HSET, -4, True), ("mset", KIND_MSET, -3, True),
)


cdef inline bint parse_int64(const unsigned char *p, Py_ssize_t n, long long *out):
    """Redis's string2ll: optional '-', digits, no leading zeros, no '+', no spaces."""
    cdef Py_ssize_t i = 0
    cdef bint neg = False
    cdef unsigned long long v = 0, limit
    if n == 0 or n > 20:
        return False
    if p[0] == c'-':
        neg = True
        i = 1
        if n == 1:
            return False
    if p[i] == c'0' and n > i + 1:
        return False
    if neg and p[i] == c'0':
        return False
    limit = <unsigned long long>INT64_MAX + (1 if neg else 0)
    while i < n:
        if p[i] < c'0' or p[i] > c'9':
            return False
        if v > (limit - (p[i] - c'0')) // 10:
            return False
        v = v * 10 + (p[i] - c'0')
        i += 1
    out[0] = -<long long>v if neg else <long long>v
    return True


cdef inline bint parse_arg(object arg, long long *out):
    """An integer argument as commands.registry.int_arg reads it (False: not one)."""
    cdef bytes b = <bytes>arg
    return parse_int64(<const unsigned char *>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), out)


cdef inline double now_us():
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3


cdef inline double monotonic():
    """time.monotonic() (CLOCK_MONOTONIC in seconds)."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec / 1e9


cdef inline uint64_t be64(const unsigned char *p):
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | p[i]
    return v


cdef inline void put_be64(unsigned char *p, uint64_t v):
    cdef int i
    for i in range(7, -1, -1):
        p[i] = v & 0xff
        v >>= 8


cdef inline bytes new_bytes(Py_ssize_t n):
    """A new bytes object of n bytes to fill in (its buffer is writable until shared)."""
    return PyBytes_FromStringAndSize(NULL, n)


cdef inline unsigned char *wbuf(bytes b):
    return <unsigned char *>PyBytes_AS_STRING(b)


cdef inline const unsigned char *rbuf(bytes b):
    return <const unsigned char *>PyBytes_AS_STRING(b)


cdef inline bytes sub_prefix(int db, unsigned char kind, const unsigned char *version):
    """0x01 db kind version(8): a collection's sub-record prefix (keyspace.sub_prefix)."""
    cdef bytes out = new_bytes(11)
    cdef unsigned char *p = wbuf(out)
    p[0] = 1
    p[1] = <unsigned char>db
    p[2] = kind
    memcpy(p + 3, version, 8)
    return out


# Lists (liststore.py): positions and the meta record.
cdef uint64_t LIST_MIDDLE = <uint64_t>1 << 63            # head and tail of a new list
cdef uint64_t LIST_MAX_TAIL = 0xFFFFFFFFFFFFFFFF         # tail is exclusive, stored in 8 bytes
cdef Py_ssize_t LIST_META_SIZE = 9 + 16 + 16             # type expire_at | version count | head tail
cdef Py_ssize_t SET_META_SIZE = 9 + 16                   # type expire_at | version count | extra


cdef inline bytes position_key(bytes elem_prefix, uint64_t pos):
    """A list element's record key: its 11-byte prefix and the position (8 bytes BE)."""
    cdef bytes out = new_bytes(19)
    cdef unsigned char *p = wbuf(out)
    memcpy(p, rbuf(elem_prefix), 11)
    put_be64(p + 11, pos)
    return out


cdef inline bytes list_meta(const unsigned char *version, uint64_t head, uint64_t tail):
    """A list's meta record without expiry (keyspace.Entry.encode of liststore's Coll)."""
    cdef bytes out = new_bytes(LIST_META_SIZE)
    cdef unsigned char *p = wbuf(out)
    p[0] = c'L'
    memcpy(p + 1, rbuf(ZERO8), 8)
    memcpy(p + 9, version, 8)
    put_be64(p + 17, tail - head)
    put_be64(p + 25, head)
    put_be64(p + 33, tail)
    return out


cdef inline bytes set_meta(const unsigned char *version, uint64_t count, bytes extra):
    """A set's meta record without expiry (keyspace.Entry.encode of its Coll)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(extra)
    cdef bytes out = new_bytes(SET_META_SIZE + n)
    cdef unsigned char *p = wbuf(out)
    p[0] = c'S'
    memcpy(p + 1, rbuf(ZERO8), 8)
    memcpy(p + 9, version, 8)
    put_be64(p + 17, count)
    if n:
        memcpy(p + SET_META_SIZE, rbuf(extra), n)
    return out


cdef class FastLane:
    cdef object server          # app.Server
    cdef object ks              # keyspace.Keyspace
    cdef object store           # ks.store
    cdef object db_get          # the database's get: reads before the group's first write
    cdef dict config            # server.config.values (changed in place by CONFIG SET)
    cdef dict watchers          # server.watchers: (db, key) -> WATCHing clients
    cdef dict waiters           # server.blocking.waiters: (db, key) -> blocked clients
    cdef object stats           # server.stats
    cdef dict kinds             # command name as sent (any case) -> KIND_*
    cdef list db_prefixes       # db number -> b"\x01" + db + b"k"
    cdef list kind_names        # KIND_* -> command name (str), index 0 unused
    cdef list kind_bnames       # KIND_* -> command name (bytes), for CLIENT LIST's cmd=
    cdef int arity[NKINDS]      # KIND_* -> Redis arity
    cdef bint writes[NKINDS]    # KIND_* -> the command may write
    cdef object shapes          # setsample's cache of set shapes (SADD forgets a set's)
    cdef object pools           # setsample's SPOP pools (the same)
    cdef object forget          # setsample.forget
    cdef object pop_member      # setsample.pop_member
    cdef public bint writes_refused  # writes take the general path, which may refuse them (a read-only
                                     # replica: READONLY; min-replicas-to-write: NOREPLICAS)
    # During a batch:
    cdef object tx              # the group's transaction, or None before its first write
    cdef object get             # tx.get, or the database's get before the first write
    cdef object put             # tx.put, or None before the first write
    cdef object discard         # tx.discard, or None before the first write
    cdef bytes mkey             # the meta record key last read in this batch, or None
    cdef object mraw            # ... its value as the batch sees it (None: absent)
    cdef bint mdirty            # ... changed by the batch and not yet written (meta_flush)
    cdef long long hits         # keyspace hits of the batch so far
    cdef long long misses       # keyspace misses of the batch so far
    cdef Py_ssize_t out_bytes   # bulk reply bytes of the batch so far

    def __init__(self, server):
        self.server = server
        self.ks = server.ks
        self.store = self.ks.store
        self.db_get = self.store.db.get
        self.config = server.config.values
        self.watchers = server.watchers
        self.waiters = server.blocking.waiters
        self.stats = server.stats
        self.kinds = {}
        self.kind_names = [None] * NKINDS
        self.kind_bnames = [None] * NKINDS
        for name, kind, arity, writes in KIND_TABLE:
            b = name.encode()
            for variant in (b, b.upper(), b.capitalize()):
                self.kinds[variant] = kind
            self.kind_names[kind] = name
            self.kind_bnames[kind] = b
            self.arity[kind] = arity
            self.writes[kind] = writes
        self.db_prefixes = [b"\x01" + bytes((d,)) + b"k" for d in range(256)]
        self.shapes = setsample._shapes
        self.pools = setsample._pools
        self.forget = setsample.forget
        self.pop_member = setsample.pop_member

    def attach(self, client):
        """Client.__init__'s hook when the fast lane is on: the client's data_received is
        this module's, which does the Python method's steps from C."""
        client.data_received = MethodType(data_received, client)

    # -- the transaction -------------------------------------------------------------------

    cdef inline void bind(self, tx):
        self.tx = tx
        self.get = tx.get
        self.put = tx.put
        self.discard = tx.discard

    cdef inline int writing(self) except -1:
        """Before a command's first write: the group's transaction, begun if needed."""
        if self.put is None:
            self.bind(self.store.writer())
        return 0

    cdef inline int resync(self) except -1:
        """After Python code that may have begun the transaction (Keyspace.new_version)."""
        tx = self.store.tx
        if tx is not None and tx is not self.tx:
            self.bind(tx)
        return 0

    # -- meta records: consecutive commands on one key read and write it once ------------

    cdef object meta_get(self, bytes meta):
        """The meta record `meta` as this batch sees it. The last one read is kept, with the
        batch's changes to it (meta_put), until a command reads another or the batch ends:
        a pipeline of pushes to one list reads and writes its meta record once."""
        if self.mkey is not None and meta == self.mkey:
            return self.mraw
        self.meta_flush()
        raw = self.get(meta)
        self.mkey = meta
        self.mraw = raw
        return raw

    cdef inline int meta_put(self, bytes meta, bytes value) except -1:
        """Changes the meta record the command read with meta_get (written by meta_flush)."""
        self.mraw = value
        self.mdirty = True
        return 0

    cdef int meta_flush(self) except -1:
        """Writes the kept meta record if the batch changed it."""
        if self.mdirty:
            self.mdirty = False
            self.writing()
            self.put(self.mkey, self.mraw)
        return 0

    cdef bytes new_version(self):
        """Keyspace.new_version() (which may write the version clock), as 8 bytes."""
        cdef bytes out = new_bytes(8)
        put_be64(wbuf(out), <uint64_t>self.ks.new_version())
        self.resync()
        return out

    # -- the batch -----------------------------------------------------------------------

    def run_batch(self, client, Py_ssize_t max_commands, Py_ssize_t max_bytes):
        """Runs up to max_commands fast commands from the front of client.pending, appending their
        replies to client.replies, until a command is not a fast one or the bulk replies pass
        max_bytes. Returns (commands run, bulk reply bytes)."""
        cdef Py_ssize_t done = self.batch(client, max_commands, max_bytes)
        return (done, self.out_bytes)

    cdef Py_ssize_t batch(self, client, Py_ssize_t max_commands, Py_ssize_t max_bytes) except -1:
        """run_batch: returns the commands run; their bulk reply bytes are left in self.out_bytes."""
        self.out_bytes = 0
        pending = client.pending
        if not pending or max_commands <= 0:
            return 0
        first = pending[0]
        if not first or first[0] not in self.kinds:
            return 0                # not a fast command: spare the setup below
        # The connection's state cannot change while only fast commands run: check it once.
        if client.multi is not None or not client.authenticated or client.channels or client.patterns \
                or not client.user.unrestricted or client.blocked or client.closing:
            return 0
        server = self.server
        cdef bint may_write = not (self.writes_refused or self.watchers or self.config["notify-keyspace-events"])
        cdef dict waiters = self.waiters
        cdef double slow_us = server.slowlog_threshold
        tx = self.store.tx
        if tx is not None:
            self.bind(tx)
        else:
            self.tx = self.put = self.discard = None
            self.get = self.db_get
        self.hits = self.misses = 0
        self.mkey = self.mraw = None
        self.mdirty = False
        popleft = pending.popleft
        replies = client.replies
        cdef Py_ssize_t done = 0, argc
        cdef long long calls[NKINDS]
        cdef double micros_sum[NKINDS]
        cdef int kind, last_kind = 0, db = client.db, i, arity
        cdef bytes prefix = self.db_prefixes[db], key, meta
        cdef list args
        cdef object kind_obj, reply
        cdef double start, micros
        for i in range(NKINDS):
            calls[i] = 0
            micros_sum[i] = 0
        try:
            while done < max_commands and self.out_bytes < max_bytes and pending:
                args = pending[0]
                if not args:
                    break
                kind_obj = self.kinds.get(args[0])
                if kind_obj is None:
                    break
                kind = kind_obj
                argc = len(args)
                arity = self.arity[kind]
                if (argc != arity) if arity > 0 else (argc < -arity):
                    break
                key = <bytes>args[1]
                if self.writes[kind]:
                    if not may_write or (waiters and (db, key) in waiters):
                        break
                if PyBytes_GET_SIZE(key) > C_LONG_META:
                    break     # a long name's records are addressed by its digest: the general path
                start = now_us()
                meta = prefix + key
                try:
                    if kind <= KIND_DECR:
                        reply = self.string_command(kind, args, db, key, meta)
                    elif kind <= KIND_LRANGE:
                        reply = list_command(self, kind, args, db, key, meta)
                    elif kind <= KIND_SPOP:
                        reply = set_command(self, kind, args, db, key, meta)
                    elif kind == KIND_HSET:
                        reply = hash_set(self, args, db, key, meta)
                    else:
                        reply = self.mset(args, db, prefix)
                except Exception:   # a failed read, before any write: the general path replies the error
                    break
                if reply is PASS:
                    break
                popleft()
                replies.append(reply)
                done += 1
                last_kind = kind
                micros = <double><long long>(now_us() - start)
                calls[kind] += 1
                micros_sum[kind] += micros
                if micros >= slow_us >= 0:
                    server.slowlog.add(int(micros), args, client, self.config["slowlog-max-len"])
        finally:
            try:
                self.meta_flush()
            finally:
                self.mkey = self.mraw = None
                self.tx = self.get = self.put = self.discard = None
        if done:
            client.last_command = self.kind_bnames[last_kind]
            stats = self.stats
            stats.commands_processed += done
            if self.hits:
                stats.keyspace_hits += self.hits
            if self.misses:
                stats.keyspace_misses += self.misses
            per_command = stats.per_command
            for i in range(1, NKINDS):
                if calls[i]:
                    s = per_command.get(self.kind_names[i])
                    if s is None:
                        stats.count(self.kind_names[i], int(micros_sum[i]), calls[i])
                    else:   # Stats.count, inlined
                        s.calls += calls[i]
                        s.usec += int(micros_sum[i])
        return done

    # -- the group's clients, for Server.run_group and Server.flush_all ---------------------

    def run_clients(self, list ready, set to_flush):
        """Server.run_group's turn of each ready client (Client.run) from C: a client in the
        plain state (replies on, nothing deferred, its output being read) has its pending
        commands run by the fast lane, and Client._run goes on from the first it does not
        handle; any other client runs Client.run. Returns the clients with commands left."""
        cdef list again = []
        cdef Py_ssize_t done
        for c in ready:
            c.queued = False
            if c.reply_mode is None and c.drop_at is None and not c.reading_paused:
                done = self.batch(c, COMMANDS_PER_TURN, OUTPUT_PER_TURN)
                if not c.pending and c.protocol_error is None:
                    c.last_active = monotonic()
                elif c._run(done, OUTPUT_PER_TURN - self.out_bytes):
                    again.append(c)
            elif c.run():
                again.append(c)
            to_flush.add(c)
        return again

    def flush_clients(self, clients):
        """Client.flush of each client from C: replies encoded (fastreply) and written, the
        output limits checked; a client closing, without a transport or with a reply to
        drop runs Client.flush itself."""
        stats = self.stats
        limits = self.server.limits
        for c in clients:
            t = c.transport
            if t is None or c.drop_at is not None or c.closing:
                c.flush()
                continue
            replies = c.replies
            if not replies:
                continue
            try:
                data = encode_replies(replies, c.proto)
            except TypeError:
                c.flush()           # it logs the bug and sends an error for each reply
                continue
            replies.clear()
            stats.net_output_bytes += PyBytes_GET_SIZE(data)
            t.write(data)
            if t.get_write_buffer_size() or c.id in limits.soft_since:
                limits.check_output(c)

    cdef object write_failed(self, int kind, exc):
        """A write that failed after the command began writing (the engine refused it): the
        error reply the general path gives (app.Server.call)."""
        name = self.kind_names[kind]
        if isinstance(exc, kvdb.Error):
            log.error("%s failed: %s", name, exc)
            return ErrorReply(f"ERR {exc}")
        log.error("internal error in command %s", name, exc_info=exc)
        return ErrorReply(f"ERR internal error in '{name}': {type(exc).__name__}")

    # -- strings -------------------------------------------------------------------------

    cdef object string_command(self, int kind, list args, int db, bytes key, bytes meta):
        cdef object raw = self.meta_get(meta)
        cdef const unsigned char *p = NULL
        cdef bint expired = False
        cdef long long value
        if raw is not None:
            p = rbuf(<bytes>raw)
            if memcmp(p + 1, rbuf(ZERO8), 8) != 0:
                if kind != KIND_GET:
                    return PASS
                expired = be64(p + 1) <= <uint64_t>(time.time() * 1000)
        if kind == KIND_GET:
            if raw is None or expired:
                self.misses += 1
                return None
            if p[0] != c's':
                return WRONGTYPE
            self.out_bytes += PyBytes_GET_SIZE(raw) - 9
            self.hits += 1
            return raw[9:]
        if kind == KIND_SET:
            if raw is not None and p[0] != c's':
                return PASS
            value_bytes = STRING_HEADER + <bytes>args[2]
            if PyBytes_GET_SIZE(value_bytes) > C_MAX_VALUE:
                return PASS
            self.meta_put(meta, value_bytes)
            if raw is None:
                self.ks.keys[db] += 1
            return OK
        # INCR, DECR
        if raw is None:
            value = 0
        elif p[0] != c's' or not parse_int64(p + 9, PyBytes_GET_SIZE(raw) - 9, &value):
            return PASS
        if kind == KIND_INCR:
            if value == INT64_MAX:
                return PASS
            value += 1
        else:
            if value == INT64_MIN:
                return PASS
            value -= 1
        self.meta_put(meta, STRING_HEADER + str(value).encode())
        if raw is None:
            self.ks.keys[db] += 1
        return value

    cdef object mset(self, list args, int db, bytes prefix):
        """MSET key value [key value ...] (strings.mset: Keyspace.set_string of each pair, in order),
        when every key is absent or a string without expiry: the records are the plain SET's."""
        cdef Py_ssize_t argc = len(args), i
        cdef dict olds = {}
        cdef bytes key, meta
        if argc % 2 == 0:
            return PASS                      # an odd number of arguments: the general path's error
        waiters = self.waiters
        for i in range(1, argc, 2):
            key = <bytes>args[i]
            if PyBytes_GET_SIZE(key) > C_LONG_META or (waiters and (db, key) in waiters) or \
                    PyBytes_GET_SIZE(<bytes>args[i + 1]) + 9 > C_MAX_VALUE:
                return PASS
            meta = prefix + key
            if meta not in olds:
                raw = self.meta_get(meta)
                if raw is not None and (rbuf(<bytes>raw)[0] != c's' or
                                        memcmp(rbuf(<bytes>raw) + 1, rbuf(ZERO8), 8) != 0):
                    return PASS              # another type, or an expiry to drop from the index
                olds[meta] = raw
        self.meta_flush()
        self.mkey = self.mraw = None
        self.writing()
        try:
            for i in range(1, argc, 2):
                self.put(prefix + <bytes>args[i], STRING_HEADER + <bytes>args[i + 1])
        except Exception as e:
            return self.write_failed(KIND_MSET, e)
        for raw in olds.values():
            if raw is None:
                self.ks.keys[db] += 1
        return OK



def data_received(c, bytes data):
    """Client.data_received from C, the same steps (FastLane.attach binds it in place of the
    Python method): parse what arrived, queue the commands, note
    a protocol error or a query buffer past its limit, and schedule the client's turn
    (Server.schedule, inlined)."""
    if c.closing:
        return
    server = c.server
    server.stats.net_input_bytes += PyBytes_GET_SIZE(data)
    parser = <RequestParser>c.parser
    cdef list commands = parser.feed(data)
    if commands:
        c.pending.extend(commands)
        c.first_command_seen = True
    if parser.error is not None:
        c.protocol_error = parser.error
        if c.transport is not None:
            c.transport.pause_reading()
    elif parser.in_frame and parser.pending > server.query_buffer_limit(c):
        log.warning("closing client %s: query buffer of %d bytes passes client-query-buffer-limit",
                    c.addr, parser.pending)
        c.protocol_error = "ERR Protocol error: query buffer limit exceeded"
    if c.pending or c.protocol_error:
        if not c.queued and not c.blocked:
            c.queued = True
            server.ready.append(c)
        if not server.run_scheduled:
            server.run_scheduled = True
            server.loop.call_soon(server.run_group)


include "fastlane_lists.pxi"
include "fastlane_sets.pxi"
include "fastlane_hashes.pxi"
