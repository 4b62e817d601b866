# cython: language_level=3, boundscheck=False, wraparound=False
"""GET, plain SET (`SET key value`), INCR and DECR without Python frames: the
server's hottest commands, run from C when nothing about the connection or the
key needs the general path.

FastLane.run_batch(client, max_commands, max_bytes) runs the client's pending
commands from the front for as long as they are fast ones, and stops at the first
it does not handle, leaving it for the general path. It handles a command only
when the general path (Server.execute -> Server.call -> commands.strings) would
do exactly the same thing:

* the connection is in no MULTI, authenticated, subscribed to nothing, and its
  user is unrestricted (so no ACL check or audit applies to GET/SET);
* GET: any key; the record is decoded as keyspace.get_string does;
* SET, INCR, DECR: the old record is absent, or a string without expiry (no
  expiry index entry to move, no hash fields to delete), nobody WATCHes anything
  and keyspace notifications are off (no side effect to run); INCR and DECR also
  need the old value to be a canonical integer and the result not to overflow,
  else the general path produces the error.

Its effects are the general path's: the same reply, the same record written
through the group's transaction, the same key counter, the same statistics
(commands processed, per-command calls and µs, keyspace hits and misses) and
the same slow-log entry when the command was slow. Per-command statistics are
added once per batch (the counts and µs are the sums of the commands run).
tests/test_server_commands.py runs every case through both paths.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from libc.string cimport memcmp
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import time

from kvdb._core.resp import OK, ErrorReply

cdef bytes ZERO8 = bytes(8)
cdef bytes STRING_HEADER = b"s" + bytes(8)      # type "s", no expiry
cdef object WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
cdef int KIND_GET = 1
cdef int KIND_SET = 2
cdef int KIND_INCR = 3
cdef int KIND_DECR = 4
cdef long long INT64_MAX = 9223372036854775807
cdef long long INT64_MIN = -9223372036854775807 - 1


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


cdef inline double now_us():
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3


cdef inline uint64_t be64(const unsigned char *p):
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | p[i]
    return v


cdef class FastLane:
    cdef object server          # app.Server
    cdef object ks              # keyspace.Keyspace
    cdef dict kinds             # command name as sent (any case) -> KIND_*
    cdef list db_prefixes       # db number -> b"\x01" + db + b"k"
    cdef list kind_names        # KIND_* -> command name (str), index 0 unused
    cdef list kind_bnames       # KIND_* -> command name (bytes), for CLIENT LIST's cmd=

    def __init__(self, server):
        self.server = server
        self.ks = server.ks
        self.kinds = {}
        for name, kind in ((b"get", KIND_GET), (b"set", KIND_SET), (b"incr", KIND_INCR), (b"decr", KIND_DECR)):
            for variant in (name, name.upper(), name.capitalize()):
                self.kinds[variant] = kind
        self.db_prefixes = [b"\x01" + bytes((d,)) + b"k" for d in range(256)]
        self.kind_names = [None, "get", "set", "incr", "decr"]
        self.kind_bnames = [None, b"get", b"set", b"incr", b"decr"]

    cpdef tuple run_batch(self, client, Py_ssize_t max_commands, Py_ssize_t max_bytes):
        """Runs up to max_commands fast commands from the front of client.pending, appending their
        replies to client.replies, until a command is not a fast one or the GET replies pass
        max_bytes. Returns (commands run, bulk reply bytes)."""
        pending = client.pending
        if not pending or max_commands <= 0:
            return (0, 0)
        # The connection's state cannot change while only GET/SET/INCR/DECR run: check it once.
        if client.multi is not None or not client.authenticated or client.channels or client.patterns \
                or not client.user.unrestricted:
            return (0, 0)
        server = self.server
        cdef bint may_write = not (server.watchers or server.config.values["notify-keyspace-events"])
        cdef double slow_us = server.slowlog_threshold
        ks = self.ks
        store = ks.store
        tx = store.tx
        getter = (tx if tx is not None else store.db).get
        putter = tx.put if tx is not None else None
        popleft = pending.popleft
        replies = client.replies
        cdef list keys = ks.keys
        cdef Py_ssize_t done = 0, out_bytes = 0, argc
        cdef long long calls[5]
        cdef double micros_sum[5]
        cdef long long hits = 0, misses = 0
        cdef int kind, last_kind = 0, db = client.db, i
        cdef bytes prefix = self.db_prefixes[db], key, meta
        cdef list args
        cdef object kind_obj, raw, reply
        cdef const unsigned char *p
        cdef bint expired
        cdef long long value
        cdef double start, micros
        for i in range(5):
            calls[i] = 0
            micros_sum[i] = 0
        while done < max_commands and out_bytes < max_bytes and pending:
            args = pending[0]
            if not args:
                break
            kind_obj = self.kinds.get(args[0])
            if kind_obj is None:
                break
            kind = kind_obj
            argc = len(args)
            if argc != (3 if kind == KIND_SET else 2):
                break
            if kind != KIND_GET and not may_write:
                break
            start = now_us()
            key = args[1]
            meta = prefix + key
            try:
                raw = getter(meta)
            except Exception:   # the general path turns the failure into an error reply
                break
            p = NULL
            expired = False
            if raw is not None:
                p = <const unsigned char *>PyBytes_AS_STRING(raw)
                if memcmp(p + 1, PyBytes_AS_STRING(ZERO8), 8) != 0:
                    if kind != KIND_GET:
                        break
                    expired = be64(p + 1) <= <uint64_t>(time.time() * 1000)
            if kind == KIND_GET:
                if raw is None or expired:
                    reply = None
                    misses += 1
                elif p[0] != c's':
                    reply = WRONGTYPE
                else:
                    reply = raw[9:]
                    out_bytes += PyBytes_GET_SIZE(raw) - 9
                    hits += 1
            elif kind == KIND_SET:
                if raw is not None and p[0] != c's':
                    break
                if putter is None:
                    tx = store.writer()
                    getter = tx.get
                    putter = tx.put
                try:
                    putter(meta, STRING_HEADER + <bytes>args[2])
                except Exception:
                    break
                if raw is None:
                    keys[db] += 1
                reply = OK
            else:
                if raw is None:
                    value = 0
                elif p[0] != c's' or not parse_int64(p + 9, PyBytes_GET_SIZE(raw) - 9, &value):
                    break
                if kind == KIND_INCR:
                    if value == INT64_MAX:
                        break
                    value += 1
                else:
                    if value == INT64_MIN:
                        break
                    value -= 1
                if putter is None:
                    tx = store.writer()
                    getter = tx.get
                    putter = tx.put
                try:
                    putter(meta, STRING_HEADER + str(value).encode())
                except Exception:
                    break
                if raw is None:
                    keys[db] += 1
                reply = value
            popleft()
            replies.append(reply)
            done += 1
            last_kind = kind
            micros = <double><long long>(now_us() - start)
            calls[kind] += 1
            micros_sum[kind] += micros
            if micros >= slow_us >= 0:
                server.slowlog.add(int(micros), args, client, server.config.values["slowlog-max-len"])
        if done:
            client.last_command = self.kind_bnames[last_kind]
            stats = server.stats
            stats.commands_processed += done
            if hits:
                stats.keyspace_hits += hits
            if misses:
                stats.keyspace_misses += misses
            for i in range(1, 5):
                if calls[i]:
                    stats.count(self.kind_names[i], int(micros_sum[i]), calls[i])
        return (done, out_bytes)
