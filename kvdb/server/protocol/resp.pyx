# cython: boundscheck=False, wraparound=False
"""The RESP wire protocol: RequestParser (incremental, pipelined, bounded) and
encode_reply (RESP2 and RESP3). Grammar and limits: docs/format/resp.md."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from libc.string cimport memchr

DEFAULT_MAX_BULK_LEN = 512 * 1024 * 1024     # Redis's proto-max-bulk-len default
DEFAULT_MAX_MULTIBULK_LEN = 1024 * 1024      # Redis's cap on argc
DEFAULT_MAX_INLINE_LEN = 64 * 1024           # Redis's PROTO_INLINE_MAX_SIZE


class Status(str):
    """A simple-string reply (+OK): short, no CR or LF."""
    __slots__ = ()


class ErrorReply(str):
    """An error reply (-ERR ...). The text starts with its code word (ERR, WRONGTYPE, ...)."""
    __slots__ = ()


class Push(list):
    """Out-of-band data (pub/sub messages): a RESP3 push (>), an array under RESP2."""
    __slots__ = ()


class _NullArray:
    """The null array (*-1 under RESP2, _ under RESP3): EXEC aborted by WATCH."""
    __slots__ = ()

    def __repr__(self):
        return "NULL_ARRAY"


NULL_ARRAY = _NullArray()
OK = Status("OK")
QUEUED = Status("QUEUED")
PONG = Status("PONG")


cdef class RequestParser:
    """Turns the bytes a client sends into commands (lists of bytes arguments).

    feed(data) returns every command completed by data, in order. A malformed
    frame sets .error to the -ERR text Redis would send; the commands completed
    before it are still returned, and the parser accepts nothing more (the
    server replies with the error and closes the connection). Memory is bounded
    by the limits: a bulk longer than max_bulk_len, an argc above
    max_multibulk_len, or an inline line longer than max_inline_len is an error
    as soon as its header is seen, not after the bytes arrive.
    """

    def __init__(self, Py_ssize_t max_bulk_len=DEFAULT_MAX_BULK_LEN,
                 Py_ssize_t max_multibulk_len=DEFAULT_MAX_MULTIBULK_LEN,
                 Py_ssize_t max_inline_len=DEFAULT_MAX_INLINE_LEN):
        self.buf = bytearray()
        self.pos = 0
        self.args = None
        self.argc_left = 0
        self.bulk_len = -1
        self.max_bulk_len = max_bulk_len
        self.max_multibulk_len = max_multibulk_len
        self.max_inline_len = max_inline_len
        self.error = None

    @property
    def pending(self):
        """Bytes received and not yet part of a completed command (the query buffer)."""
        cdef Py_ssize_t n = PyByteArray_GET_SIZE(self.buf) - self.pos
        if self.args is not None:
            for a in self.args:
                n += len(<bytes>a)
        return n

    @property
    def in_frame(self):
        """True while part of a command has arrived and the rest has not."""
        return self.args is not None or PyByteArray_GET_SIZE(self.buf) > self.pos

    cpdef list feed(self, bytes data):
        cdef list out = []
        if self.error is not None:
            return out
        if self.pos and self.pos == PyByteArray_GET_SIZE(self.buf):
            self.buf = bytearray(data)
            self.pos = 0
        else:
            if self.pos > 4096 and self.pos * 2 > PyByteArray_GET_SIZE(self.buf):
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += data
        while True:
            cmd = self.parse_one()
            if cmd is None:
                break
            if len(<list>cmd):
                out.append(cmd)
        if self.pos == PyByteArray_GET_SIZE(self.buf):
            self.buf = bytearray()
            self.pos = 0
        return out

    cdef Py_ssize_t find_crlf(self, Py_ssize_t start):
        """Offset of the next '\\r' at or after start that is followed by '\\n' (or may be,
        once more bytes come); -1 if none yet."""
        cdef const char *base = PyByteArray_AS_STRING(self.buf)
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self.buf)
        cdef const char *hit
        if start >= size:
            return -1
        hit = <const char *>memchr(base + start, c'\r', size - start)
        if hit == NULL:
            return -1
        return hit - base

    cdef int read_count(self, Py_ssize_t line_end, long long *out) except -2:
        """Parses the decimal integer in buf[pos+1:line_end]; 0 on success, -1 if it is not
        a well-formed integer."""
        cdef const char *p = PyByteArray_AS_STRING(self.buf) + self.pos + 1
        cdef const char *end = PyByteArray_AS_STRING(self.buf) + line_end
        cdef long long v = 0
        cdef bint neg = False
        if p < end and p[0] == c'-':
            neg = True
            p += 1
        if p == end or end - p > 18:
            return -1
        while p < end:
            if p[0] < c'0' or p[0] > c'9':
                return -1
            v = v * 10 + (p[0] - c'0')
            p += 1
        out[0] = -v if neg else v
        return 0

    cdef object parse_one(self):
        """One command, [] for a frame that carries none (empty line, *0), or None
        when more bytes are needed or after an error."""
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self.buf)
        cdef Py_ssize_t eol
        cdef long long count
        cdef const char *base
        if self.args is None:
            if self.pos >= size:
                return None
            base = PyByteArray_AS_STRING(self.buf)
            if base[self.pos] != c'*':
                return self.parse_inline()
            eol = self.find_crlf(self.pos)
            if eol < 0 or eol + 1 >= size:
                if size - self.pos > DEFAULT_MAX_INLINE_LEN:
                    self.error = "ERR Protocol error: too big mbulk count string"
                return None
            if self.read_count(eol, &count) < 0 or count > self.max_multibulk_len:
                self.error = "ERR Protocol error: invalid multibulk length"
                return None
            self.pos = eol + 2
            if count <= 0:
                return []
            self.args = []
            self.argc_left = count
            self.bulk_len = -1
        while self.argc_left > 0:
            size = PyByteArray_GET_SIZE(self.buf)
            base = PyByteArray_AS_STRING(self.buf)
            if self.bulk_len < 0:
                if self.pos >= size:
                    return None
                eol = self.find_crlf(self.pos)
                if eol < 0 or eol + 1 >= size:
                    if size - self.pos > DEFAULT_MAX_INLINE_LEN:
                        self.error = "ERR Protocol error: too big bulk count string"
                    elif base[self.pos] != c'$':
                        self.error = ("ERR Protocol error: expected '$', got '%s'"
                                      % chr(<unsigned char>base[self.pos]))
                    return None
                if base[self.pos] != c'$':
                    self.error = "ERR Protocol error: expected '$', got '%s'" % chr(<unsigned char>base[self.pos])
                    return None
                if self.read_count(eol, &count) < 0 or count < 0 or count > self.max_bulk_len:
                    self.error = "ERR Protocol error: invalid bulk length"
                    return None
                self.bulk_len = count
                self.pos = eol + 2
            if size - self.pos < self.bulk_len + 2:
                return None
            if base[self.pos + self.bulk_len] != c'\r' or base[self.pos + self.bulk_len + 1] != c'\n':
                self.error = "ERR Protocol error: bulk string not terminated by CRLF"
                return None
            self.args.append(PyBytes_FromStringAndSize(base + self.pos, self.bulk_len))
            self.pos += self.bulk_len + 2
            self.bulk_len = -1
            self.argc_left -= 1
        cmd = self.args
        self.args = None
        return cmd

    cdef object parse_inline(self):
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self.buf)
        cdef const char *base = PyByteArray_AS_STRING(self.buf)
        cdef const char *nl = <const char *>memchr(base + self.pos, c'\n', size - self.pos)
        cdef Py_ssize_t end
        if nl == NULL:
            if size - self.pos > self.max_inline_len:
                self.error = "ERR Protocol error: too big inline request"
            return None
        end = nl - base
        if end - self.pos > self.max_inline_len:
            self.error = "ERR Protocol error: too big inline request"
            return None
        line = PyBytes_FromStringAndSize(base + self.pos, end - self.pos)
        self.pos = end + 1
        if line.endswith(b"\r"):
            line = line[:len(line) - 1]
        args = split_inline(line)
        if args is None:
            self.error = "ERR Protocol error: unbalanced quotes in request"
            return None
        return args


cdef inline bint is_space(unsigned char c):
    return c == c' ' or c == c'\t' or c == c'\r' or c == c'\n' or c == c'\v' or c == c'\f'


cdef inline bint closes_word(const unsigned char *p, Py_ssize_t i, Py_ssize_t n):
    """After a closing quote at i - 1: the word must end here (end of line or a space)."""
    return i >= n or is_space(p[i])


cdef inline int hex_digit(unsigned char c):
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
    return -1


def split_inline(bytes line):
    """Words of an inline command as redis-cli quotes them: "..." with \\n \\r \\t \\b \\a
    \\\\ \\" \\xHH escapes, '...' with \\' only. None if a quote is unbalanced or a
    closing quote is not followed by a space."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(line)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(line), i = 0
    cdef unsigned char c, q
    cdef list words = []
    cdef bytearray cur
    cdef int h1, h2
    while True:
        while i < n and is_space(p[i]):
            i += 1
        if i >= n:
            return words
        cur = bytearray()
        q = 0
        while True:
            if q == c'"':
                if i >= n:
                    return None
                c = p[i]
                if c == c'\\' and i + 3 < n and p[i + 1] == c'x' and hex_digit(p[i + 2]) >= 0 \
                        and hex_digit(p[i + 3]) >= 0:
                    h1 = hex_digit(p[i + 2])
                    h2 = hex_digit(p[i + 3])
                    cur.append(h1 * 16 + h2)
                    i += 4
                elif c == c'\\' and i + 1 < n:
                    c = p[i + 1]
                    cur.append({c'n': 10, c'r': 13, c't': 9, c'b': 8, c'a': 7}.get(c, c))
                    i += 2
                elif c == c'"':
                    i += 1
                    if not closes_word(p, i, n):
                        return None
                    break
                else:
                    cur.append(c)
                    i += 1
            elif q == c"'":
                if i >= n:
                    return None
                c = p[i]
                if c == c'\\' and i + 1 < n and p[i + 1] == c"'":
                    cur.append(c"'")
                    i += 2
                elif c == c"'":
                    i += 1
                    if not closes_word(p, i, n):
                        return None
                    break
                else:
                    cur.append(c)
                    i += 1
            else:
                if i >= n:
                    break
                c = p[i]
                if is_space(c):
                    break
                if c == c'"' or c == c"'":
                    q = c
                else:
                    cur.append(c)
                i += 1
        words.append(bytes(cur))


# -- replies -------------------------------------------------------------------

cdef bytes CRLF = b"\r\n"


cdef str format_double(double d):
    if d != d:
        return "nan"
    if d == float("inf"):
        return "inf"
    if d == float("-inf"):
        return "-inf"
    r = repr(d)
    if r.endswith(".0"):
        r = r[:len(r) - 2]
    return r


cdef void put_header(bytearray out, bytes kind, Py_ssize_t n):
    out += kind
    out += str(n).encode()
    out += CRLF


cdef int encode_into(bytearray out, object v, int proto) except -1:
    cdef type t = type(v)
    if t is bytes:
        put_header(out, b"$", PyBytes_GET_SIZE(v))
        out += <bytes>v
        out += CRLF
    elif v is None:
        out += b"_\r\n" if proto >= 3 else b"$-1\r\n"
    elif t is Status:
        out += b"+"
        out += (<str>v).encode()
        out += CRLF
    elif t is ErrorReply:
        out += b"-"
        out += (<str>v).replace("\r", " ").replace("\n", " ").encode()
        out += CRLF
    elif t is bool:
        if proto >= 3:
            out += b"#t\r\n" if v else b"#f\r\n"
        else:
            out += b":1\r\n" if v else b":0\r\n"
    elif t is int:
        if -(1 << 63) <= v < (1 << 63):
            out += b":"
            out += str(v).encode()
            out += CRLF
        elif proto >= 3:
            out += b"("
            out += str(v).encode()
            out += CRLF
        else:
            encode_into(out, str(v).encode(), proto)
    elif t is list or t is tuple or t is Push:
        if t is Push and proto >= 3:
            put_header(out, b">", len(v))
        else:
            put_header(out, b"*", len(v))
        for item in v:
            encode_into(out, item, proto)
    elif t is dict:
        put_header(out, b"%" if proto >= 3 else b"*", len(v) if proto >= 3 else 2 * len(v))
        for key, item in (<dict>v).items():
            encode_into(out, key, proto)
            encode_into(out, item, proto)
    elif t is float:
        if proto >= 3:
            out += b","
            out += format_double(v).encode()
            out += CRLF
        else:
            encode_into(out, format_double(v).encode(), proto)
    elif t is str:
        encode_into(out, (<str>v).encode(), proto)
    elif t is set or t is frozenset:
        put_header(out, b"~" if proto >= 3 else b"*", len(v))
        for item in v:
            encode_into(out, item, proto)
    elif v is NULL_ARRAY:
        out += b"_\r\n" if proto >= 3 else b"*-1\r\n"
    elif t is bytearray or t is memoryview:
        encode_into(out, bytes(v), proto)
    elif isinstance(v, ErrorReply):
        encode_into(out, ErrorReply(v), proto)
    elif isinstance(v, str):
        encode_into(out, str(v), proto)
    else:
        raise TypeError(f"cannot encode a {t.__name__} as a RESP reply")
    return 0


def encode_reply(object v, int proto=2):
    """The RESP bytes of one reply. Python types map to RESP types: bytes and str
    bulk strings, Status simple strings, ErrorReply errors, int integers, bool
    booleans, float doubles, None null, list/tuple arrays, dict maps, set sets,
    Push pushes, NULL_ARRAY the null array. RESP2 flattens maps, sends sets as
    arrays, booleans as 1/0 and doubles as bulk strings."""
    cdef bytearray out = bytearray()
    encode_into(out, v, proto)
    return bytes(out)


def encode_replies(list replies, int proto=2):
    """The concatenated RESP bytes of several replies (one write per pipelined batch)."""
    cdef bytearray out = bytearray()
    for v in replies:
        encode_into(out, v, proto)
    return bytes(out)
