/* Atomic loads and stores on the shared-memory file (data.kvdb-shm), which other processes
   read and write at the same time: acquire/release order, so a reader that sees a published
   seq also sees the fields written before it. */
#ifndef KVDB_SHM_ATOMIC_H
#define KVDB_SHM_ATOMIC_H
#include <stdint.h>
static inline uint64_t shm_load(const volatile uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void shm_store(volatile uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void shm_max(volatile uint64_t *p, uint64_t v) {
    uint64_t cur = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {}
}
#endif
