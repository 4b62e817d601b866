# cython: language_level=3, boundscheck=False, wraparound=False
"""encode_replies(replies, proto): the RESP bytes of a client's replies, as
kvdb.server.protocol.resp.encode_replies makes them, byte for byte, written into one C
buffer. The replies of the hot commands (bulk strings, nulls, 64-bit integers,
+OK, and arrays of those: GET, LPUSH, LPOP, LRANGE, SADD, SPOP, ...) are encoded
here with a memcpy per bulk string and no Python object per header; any other
reply (maps, sets, doubles, pushes, errors, other simple strings, big integers,
booleans) is handed to resp.encode_reply, whose bytes are copied in, so the
output never differs from the general encoder's. client.Client.flush uses it when
the extension is built."""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

from kvdb.server.protocol.resp import OK, encode_reply


cdef struct Buf:
    char *data          # malloc'ed bytes written so far
    Py_ssize_t len      # bytes written
    Py_ssize_t cap      # bytes allocated


cdef int reserve(Buf *b, Py_ssize_t n) except -1:
    """Room for n more bytes."""
    cdef Py_ssize_t cap
    cdef char *data
    if b.len + n <= b.cap:
        return 0
    cap = b.cap * 2
    if cap < b.len + n:
        cap = b.len + n + 256
    data = <char *>realloc(b.data, cap)
    if data == NULL:
        raise MemoryError()
    b.data = data
    b.cap = cap
    return 0


cdef inline int put(Buf *b, const char *s, Py_ssize_t n) except -1:
    reserve(b, n)
    memcpy(b.data + b.len, s, n)
    b.len += n
    return 0


cdef int put_line(Buf *b, char kind, long long v) except -1:
    """kind, v in decimal (as str(v)), CRLF: a header or an integer reply."""
    reserve(b, 24)
    put_line_reserved(b, kind, v)
    return 0


cdef inline void put_line_reserved(Buf *b, char kind, long long v):
    """put_line when 24 bytes are reserved."""
    cdef char tmp[24]
    cdef int i = 24
    cdef unsigned long long u = <unsigned long long>(-(v + 1)) + 1 if v < 0 else <unsigned long long>v
    if u == 0:
        i -= 1
        tmp[i] = c'0'
    while u:
        i -= 1
        tmp[i] = <char>(c'0' + u % 10)
        u //= 10
    if v < 0:
        i -= 1
        tmp[i] = c'-'
    b.data[b.len] = kind
    memcpy(b.data + b.len + 1, tmp + i, 24 - i)
    b.len += 25 - i
    b.data[b.len] = c'\r'
    b.data[b.len + 1] = c'\n'
    b.len += 2


cdef int encode(Buf *b, object v, int proto) except -1:
    cdef type t = type(v)
    cdef long long n
    cdef int overflow
    if t is bytes:
        n = PyBytes_GET_SIZE(v)
        reserve(b, n + 26)
        put_line_reserved(b, c'$', n)
        memcpy(b.data + b.len, PyBytes_AS_STRING(v), n)
        b.len += n
        b.data[b.len] = c'\r'
        b.data[b.len + 1] = c'\n'
        b.len += 2
    elif v is None:
        if proto >= 3:
            put(b, b"_\r\n", 3)
        else:
            put(b, b"$-1\r\n", 5)
    elif t is int:
        n = PyLong_AsLongLongAndOverflow(v, &overflow)
        if overflow:
            return encode_other(b, v, proto)
        put_line(b, c':', n)
    elif t is list or t is tuple:
        put_line(b, c'*', len(v))
        for item in v:
            encode(b, item, proto)
    elif v is OK:
        put(b, b"+OK\r\n", 5)
    else:
        return encode_other(b, v, proto)
    return 0


cdef int encode_other(Buf *b, object v, int proto) except -1:
    cdef bytes raw = encode_reply(v, proto)
    put(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
    return 0


def encode_replies(list replies, int proto=2):
    """The concatenated RESP bytes of several replies (one write per pipelined batch);
    the same bytes as kvdb.server.protocol.resp.encode_replies."""
    cdef Buf b
    b.len = 0
    b.cap = 512
    b.data = <char *>malloc(b.cap)
    if b.data == NULL:
        raise MemoryError()
    try:
        for v in replies:
            encode(&b, v, proto)
        return PyBytes_FromStringAndSize(b.data, b.len)
    finally:
        free(b.data)
