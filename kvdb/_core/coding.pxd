# Byte coding shared by every on-disk format: little-endian fixed-width
# integers, LEB128 varints and CRC-32C. Everything here is pure C and nogil.
#
# Decoders take an explicit end pointer and return NULL (varints) when the
# input is truncated, so no format reader can run past its buffer.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef extern from "crc32c.h" nogil:
    uint32_t kvdb_crc32c(uint32_t crc, const void *buf, size_t n)

cdef enum:
    VARINT64_MAX_LEN = 10   # bytes a 64-bit varint can take

cdef inline void put_u16(unsigned char *p, uint16_t v) noexcept nogil:
    p[0] = v & 0xff
    p[1] = (v >> 8) & 0xff

cdef inline uint16_t get_u16(const unsigned char *p) noexcept nogil:
    return <uint16_t>(p[0] | (<uint16_t>p[1] << 8))

cdef inline void put_u32(unsigned char *p, uint32_t v) noexcept nogil:
    memcpy(p, &v, 4)          # x86-64 and aarch64 Linux are little-endian

cdef inline uint32_t get_u32(const unsigned char *p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v

cdef inline void put_u64(unsigned char *p, uint64_t v) noexcept nogil:
    memcpy(p, &v, 8)

cdef inline uint64_t get_u64(const unsigned char *p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v

cdef inline int varint_len(uint64_t v) noexcept nogil:
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n

cdef inline unsigned char *put_varint(unsigned char *p, uint64_t v) noexcept nogil:
    while v >= 0x80:
        p[0] = <unsigned char>((v & 0x7f) | 0x80)
        v >>= 7
        p += 1
    p[0] = <unsigned char>v
    return p + 1

cdef inline const unsigned char *get_varint(const unsigned char *p, const unsigned char *end,
                                            uint64_t *out) noexcept nogil:
    cdef uint64_t result = 0
    cdef int shift = 0
    cdef unsigned char b
    while p < end and shift <= 63:
        b = p[0]
        p += 1
        result |= (<uint64_t>(b & 0x7f)) << shift
        if b < 0x80:
            out[0] = result
            return p
        shift += 7
    return NULL

cdef inline uint32_t crc32c(const void *buf, size_t n) noexcept nogil:
    return kvdb_crc32c(0, buf, n)

cdef inline uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t n) noexcept nogil:
    return kvdb_crc32c(crc, buf, n)
