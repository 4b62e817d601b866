# LZ4 block encoder and decoder (format in lz4block.pxd). Pure C, nogil.

from libc.stdint cimport uint16_t, uint32_t, uint64_t

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil
from libc.string cimport memcpy, memset

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize


cdef inline uint32_t read32(const unsigned char *p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint32_t hash4(uint32_t v, int shift) noexcept nogil:
    return (v * <uint32_t>2654435761U) >> shift


cdef inline uint64_t read64(const unsigned char *p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef Py_ssize_t lz4_bound(Py_ssize_t n) noexcept nogil:
    return n + n // 255 + 16


cdef inline unsigned char *put_length(unsigned char *op, Py_ssize_t r) noexcept nogil:
    """The bytes continuing a length whose nibble was 15 (r = length - 15)."""
    while r >= 255:
        op[0] = 255
        op += 1
        r -= 255
    op[0] = <unsigned char>r
    return op + 1


cdef inline unsigned char *put_literals(unsigned char *op, const unsigned char *lits,
                                        Py_ssize_t lit) noexcept nogil:
    """A sequence's token (literal-length nibble set, match nibble 0, at op), the literal
    length's continuation bytes and the literals; returns the end. The caller has checked
    the room."""
    cdef unsigned char *token = op
    op += 1
    if lit >= 15:
        token[0] = 15 << 4
        op = put_length(op, lit - 15)
    else:
        token[0] = <unsigned char>(lit << 4)
    memcpy(op, lits, lit)
    return op + lit


cdef inline Py_ssize_t match_length(const unsigned char *src, Py_ssize_t ip, Py_ssize_t ref,
                                    Py_ssize_t match_limit) noexcept nogil:
    """Bytes from ip equal to those from ref (at least LZ4_MIN_MATCH, known equal), ending
    before match_limit: 8 bytes at a time, then byte by byte."""
    cdef Py_ssize_t mlen = LZ4_MIN_MATCH
    cdef uint64_t diff
    while ip + mlen + 8 <= match_limit:
        diff = read64(src + ref + mlen) ^ read64(src + ip + mlen)
        if diff:
            return mlen + (__builtin_ctzll(diff) >> 3)
        mlen += 8
    while ip + mlen < match_limit and src[ref + mlen] == src[ip + mlen]:
        mlen += 1
    return mlen


cdef inline unsigned char *put_sequence(unsigned char *op, unsigned char *oend, const unsigned char *lits,
                                        Py_ssize_t lit, Py_ssize_t offset, Py_ssize_t mlen) noexcept nogil:
    """One sequence (literals, then a match of mlen at distance offset); NULL if it does not fit
    before oend."""
    if op + 1 + lit + lit // 255 + 1 + 2 + (mlen // 255) + 1 > oend:
        return NULL
    cdef unsigned char *token = op
    op = put_literals(op, lits, lit)
    op[0] = <unsigned char>(offset & 0xff)
    op[1] = <unsigned char>(offset >> 8)
    op += 2
    if mlen - LZ4_MIN_MATCH >= 15:
        token[0] |= 15
        op = put_length(op, mlen - LZ4_MIN_MATCH - 15)
    else:
        token[0] |= <unsigned char>(mlen - LZ4_MIN_MATCH)
    return op


cdef inline unsigned char *emit_match(const unsigned char *src, Py_ssize_t *ip, Py_ssize_t ref,
                                      Py_ssize_t anchor, Py_ssize_t match_limit, unsigned char *op,
                                      unsigned char *oend) noexcept nogil:
    """The match found at *ip (from ref): extended backwards over equal literals and forwards as
    far as it goes, written as one sequence with the literals from anchor; *ip moves past it.
    NULL if it does not fit before oend."""
    cdef Py_ssize_t i = ip[0], mlen
    while i > anchor and ref > 0 and src[i - 1] == src[ref - 1]:
        i -= 1
        ref -= 1
    mlen = match_length(src, i, ref, match_limit)
    ip[0] = i + mlen
    return put_sequence(op, oend, src + anchor, i - anchor, i - ref, mlen)


cdef Py_ssize_t lz4_compress(const unsigned char *src, Py_ssize_t n,
                             unsigned char *dst, Py_ssize_t cap) noexcept nogil:
    if n <= LZ4_SMALL_INPUT:
        return compress_small(src, n, dst, cap)
    return compress_wide(src, n, dst, cap)


cdef Py_ssize_t compress_small(const unsigned char *src, Py_ssize_t n,
                               unsigned char *dst, Py_ssize_t cap) noexcept nogil:
    """lz4_compress for inputs of at most 64 KiB (every table block): positions fit in 16 bits and
    every distance is in range, so the table holds plain positions (half the bytes to clear)
    and a candidate needs no range check. The search hashes the next position before comparing
    the current one, and after a match it first tries the position right after it."""
    cdef uint16_t table[1 << LZ4_HASH_LOG]       # last position whose 4 bytes had this hash (0 at first)
    cdef Py_ssize_t ip, fwd, anchor = 0, ref, searches
    cdef Py_ssize_t find_limit = n - LZ4_MATCH_FIND_LIMIT
    cdef Py_ssize_t match_limit = n - LZ4_LAST_LITERALS
    cdef unsigned char *op = dst
    cdef unsigned char *oend = dst + cap
    cdef uint32_t h, fh
    cdef bint found, done = False
    cdef int shift = 32 - LZ4_HASH_LOG
    while shift < 24 and (<Py_ssize_t>1 << (32 - shift)) > n:
        shift += 1                               # small inputs: a smaller table to clear (at least 256 slots)
    if n > LZ4_MATCH_FIND_LIMIT:
        memset(table, 0, sizeof(uint16_t) << (32 - shift))
        ip = 1                                   # position 0 is in the table (its entries start at 0)
        while not done:
            # search: ip, then further on, one more byte per 64 misses
            searches = 1 << 6
            fwd = ip
            if fwd >= find_limit:
                break
            fh = hash4(read32(src + fwd), shift)
            found = False
            while True:
                ip = fwd
                h = fh
                fwd = ip + (searches >> 6)
                searches += 1
                if fwd >= find_limit:
                    break
                ref = table[h]
                fh = hash4(read32(src + fwd), shift)
                table[h] = <uint16_t>ip
                if read32(src + ref) == read32(src + ip):
                    found = True
                    break
            if not found:
                break
            # encode the match, and each that starts right after the previous one
            while True:
                op = emit_match(src, &ip, ref, anchor, match_limit, op, oend)
                if op == NULL:
                    return 0
                anchor = ip
                if ip >= find_limit:
                    done = True
                    break
                table[hash4(read32(src + ip - 2), shift)] = <uint16_t>(ip - 2)
                h = hash4(read32(src + ip), shift)
                ref = table[h]
                table[h] = <uint16_t>ip
                if read32(src + ref) != read32(src + ip):
                    ip += 1
                    break
    cdef Py_ssize_t lit = n - anchor
    if op + 1 + lit + lit // 255 + 1 > oend:
        return 0
    op = put_literals(op, src + anchor, lit)
    return op - dst


cdef Py_ssize_t compress_wide(const unsigned char *src, Py_ssize_t n,
                              unsigned char *dst, Py_ssize_t cap) noexcept nogil:
    """lz4_compress for inputs over 64 KiB."""
    cdef uint32_t table[1 << LZ4_HASH_LOG]     # position + 1 of the last 4 bytes with this hash (0 = none)
    cdef Py_ssize_t ip = 0, anchor = 0, ref, lit, step_count = 0
    cdef Py_ssize_t find_limit = n - LZ4_MATCH_FIND_LIMIT
    cdef Py_ssize_t match_limit = n - LZ4_LAST_LITERALS
    cdef unsigned char *op = dst
    cdef unsigned char *oend = dst + cap
    cdef uint32_t h, seq
    cdef int shift = 32 - LZ4_HASH_LOG
    while shift < 22 and (<Py_ssize_t>1 << (32 - shift)) > n:
        shift += 1                               # small inputs: a smaller table to clear (at least 1024 slots)
    memset(table, 0, sizeof(uint32_t) << (32 - shift))
    if n > LZ4_MATCH_FIND_LIMIT:
        while ip < find_limit:
            seq = read32(src + ip)
            h = hash4(seq, shift)
            ref = <Py_ssize_t>table[h] - 1
            table[h] = <uint32_t>(ip + 1)
            if ref < 0 or ip - ref > LZ4_MAX_OFFSET or read32(src + ref) != seq:
                step_count += 1
                ip += 1 + (step_count >> 6)      # skip faster through data that does not compress
                continue
            step_count = 0
            op = emit_match(src, &ip, ref, anchor, match_limit, op, oend)
            if op == NULL:
                return 0
            anchor = ip
            if ip - 2 >= 0 and ip - 2 < find_limit:
                table[hash4(read32(src + ip - 2), shift)] = <uint32_t>(ip - 2 + 1)
    lit = n - anchor
    if op + 1 + lit + lit // 255 + 1 > oend:
        return 0
    op = put_literals(op, src + anchor, lit)
    return op - dst


cdef inline Py_ssize_t get_length(const unsigned char *src, Py_ssize_t n, Py_ssize_t *ip,
                                  Py_ssize_t nibble) noexcept nogil:
    """A length whose nibble is `nibble`, with its continuation bytes at src[*ip] when the
    nibble is 15 (advancing *ip); -1 if the block ends inside them."""
    cdef unsigned char b
    if nibble == 15:
        while True:
            if ip[0] >= n:
                return -1
            b = src[ip[0]]
            ip[0] += 1
            nibble += b
            if b != 255:
                break
    return nibble


cdef Py_ssize_t lz4_decompress(const unsigned char *src, Py_ssize_t n,
                               unsigned char *dst, Py_ssize_t cap) noexcept nogil:
    cdef Py_ssize_t ip = 0, op = 0, lit, mlen, off, i
    cdef unsigned char token
    while True:
        if ip >= n:
            return -1
        token = src[ip]
        ip += 1
        lit = get_length(src, n, &ip, token >> 4)
        if lit < 0 or lit > n - ip or lit > cap - op:
            return -1
        memcpy(dst + op, src + ip, lit)
        ip += lit
        op += lit
        if ip == n:
            return op                            # the last sequence has no match
        if n - ip < 2:
            return -1
        off = src[ip] | (<Py_ssize_t>src[ip + 1] << 8)
        ip += 2
        if off == 0 or off > op:
            return -1
        mlen = get_length(src, n, &ip, token & 15)
        if mlen < 0:
            return -1
        mlen += LZ4_MIN_MATCH
        if mlen > cap - op:
            return -1
        if off >= mlen:
            memcpy(dst + op, dst + op - off, mlen)
        else:
            for i in range(mlen):                # overlapping copy repeats the last `off` bytes
                dst[op + i] = dst[op - off + i]
        op += mlen


def compress(bytes data):
    """The LZ4 block of data (tests and tools)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t cap = lz4_bound(n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, cap)
    cdef const unsigned char *src = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef unsigned char *dst = <unsigned char *>PyBytes_AS_STRING(out)
    cdef Py_ssize_t got
    with nogil:
        got = lz4_compress(src, n, dst, cap)
    return out[:got]


def decompress(bytes data, Py_ssize_t size):
    """Undo compress(); ValueError if data is not a valid block of `size` bytes."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, size)
    cdef const unsigned char *src = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef unsigned char *dst = <unsigned char *>PyBytes_AS_STRING(out)
    cdef Py_ssize_t got
    with nogil:
        got = lz4_decompress(src, n, dst, size)
    if got != size:
        raise ValueError("malformed lz4 block")
    return out
