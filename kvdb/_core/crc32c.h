/* CRC-32C (Castagnoli, polynomial 0x82F63B78, reflected), the checksum of
 * every page, WAL record and file header kvdb writes.
 *
 * On x86-64 with SSE4.2 the crc32 instruction does 8 bytes per step; elsewhere
 * a byte-at-a-time table (built on first use) is the portable fallback. The
 * function is pure C, safe to call without the GIL.
 */
#ifndef KVDB_CRC32C_H
#define KVDB_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t kvdb_crc32c_table[256];
static int kvdb_crc32c_table_ready = 0;

static void kvdb_crc32c_init_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        kvdb_crc32c_table[i] = c;
    }
    kvdb_crc32c_table_ready = 1;
}

static uint32_t kvdb_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n) {
    if (!kvdb_crc32c_table_ready) kvdb_crc32c_init_table();
    crc = ~crc;
    while (n--) crc = kvdb_crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
__attribute__((target("sse4.2")))
static uint32_t kvdb_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8; n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}
static int kvdb_crc32c_has_hw = -1;
static uint32_t kvdb_crc32c(uint32_t crc, const void *buf, size_t n) {
    if (kvdb_crc32c_has_hw < 0) {
        __builtin_cpu_init();
        kvdb_crc32c_has_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    if (kvdb_crc32c_has_hw) return kvdb_crc32c_hw(crc, (const unsigned char *)buf, n);
    return kvdb_crc32c_sw(crc, (const unsigned char *)buf, n);
}
#else
static uint32_t kvdb_crc32c(uint32_t crc, const void *buf, size_t n) {
    return kvdb_crc32c_sw(crc, (const unsigned char *)buf, n);
}
#endif

#endif /* KVDB_CRC32C_H */
