# cython: language_level=3, boundscheck=False, wraparound=False
"""GET, plain SET (`SET key value`), INCR and DECR without Python frames: the
server's hottest commands, run from C when nothing about the connection or the
key needs the general path.

FastLane.run(client, args) returns NOT_FAST unless it handled the command, and
it handles it only when the general path (Server.execute -> Server.call ->
commands.strings) would do exactly the same thing:

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
the same slow-log entry when the command was slow. tests/test_server_commands.py
runs every case through both paths.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from libc.string cimport memcmp
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import time

from kvdb._core.resp import OK, ErrorReply

NOT_FAST = object()

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

    def __init__(self, server):
        self.server = server
        self.ks = server.ks
        self.kinds = {}
        for name, kind in ((b"get", KIND_GET), (b"set", KIND_SET), (b"incr", KIND_INCR), (b"decr", KIND_DECR)):
            for variant in (name, name.upper(), name.capitalize()):
                self.kinds[variant] = kind
        self.db_prefixes = [b"\x01" + bytes((d,)) + b"k" for d in range(256)]

    cpdef object run(self, client, list args):
        cdef object kind_obj = self.kinds.get(args[0])
        if kind_obj is None:
            return NOT_FAST
        cdef int kind = kind_obj
        cdef Py_ssize_t argc = len(args)
        if argc != (3 if kind == KIND_SET else 2):
            return NOT_FAST
        if client.multi is not None or not client.authenticated or client.channels or client.patterns \
                or not client.user.unrestricted:
            return NOT_FAST
        server = self.server
        if kind != KIND_GET and (server.watchers or server.config.values["notify-keyspace-events"]):
            return NOT_FAST
        cdef double start = now_us()
        ks = self.ks
        store = ks.store
        tx = store.tx
        cdef int db = client.db
        cdef bytes key = args[1]
        cdef bytes meta = self.db_prefixes[db] + key
        raw = (tx if tx is not None else store.db).get(meta)
        cdef const unsigned char *p = NULL
        cdef bint expired = False
        cdef long long value
        if raw is not None:
            p = <const unsigned char *>PyBytes_AS_STRING(raw)
            if memcmp(p + 1, PyBytes_AS_STRING(ZERO8), 8) != 0:
                if kind != KIND_GET:
                    return NOT_FAST
                expired = be64(p + 1) <= <uint64_t>(time.time() * 1000)
        stats = server.stats
        if kind == KIND_GET:
            if raw is None or expired:
                reply = None
                stats.keyspace_misses += 1
            elif p[0] != c's':
                reply = WRONGTYPE
            else:
                reply = raw[9:]
                stats.keyspace_hits += 1
            name = "get"
        elif kind == KIND_SET:
            if raw is not None and p[0] != c's':
                return NOT_FAST
            store.writer().put(meta, STRING_HEADER + <bytes>args[2])
            if raw is None:
                ks.keys[db] += 1
            reply = OK
            name = "set"
        else:
            if raw is None:
                value = 0
            elif p[0] != c's' or not parse_int64(p + 9, PyBytes_GET_SIZE(raw) - 9, &value):
                return NOT_FAST
            if kind == KIND_INCR:
                if value == INT64_MAX:
                    return NOT_FAST
                value += 1
                name = "incr"
            else:
                if value == INT64_MIN:
                    return NOT_FAST
                value -= 1
                name = "decr"
            store.writer().put(meta, STRING_HEADER + str(value).encode())
            if raw is None:
                ks.keys[db] += 1
            reply = value
        client.last_command = name.encode()
        micros = int(now_us() - start)
        stats.commands_processed += 1
        stats.count(name, micros)
        if micros >= server.slowlog_threshold >= 0:
            server.slowlog.add(micros, args, client, server.config.values["slowlog-max-len"])
        return reply
