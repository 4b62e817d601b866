# The LSM's block cache (see blockcache.pxd): a chained hash table of raw blocks
# with CLOCK eviction, bounded by bytes.

from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc

cdef enum:
    FIRST_ENTRIES = 256                  # entries allocated at the first insert
    MAX_ENTRIES = 1 << 30                # int32 indexes


cdef inline Py_ssize_t bucket_of(uint64_t key, Py_ssize_t nbuckets) noexcept nogil:
    # Fibonacci hashing: block offsets share low bits, table numbers sit high
    return <Py_ssize_t>((key * <uint64_t>0x9E3779B97F4A7C15) >> 32) & (nbuckets - 1)


cdef class BlockCache:
    """Raw data blocks bounded by `capacity` bytes (see blockcache.pxd)."""

    def __cinit__(self):
        self.entries = NULL
        self.buckets = NULL
        self.free_head = -1

    def __init__(self, Py_ssize_t capacity):
        self.capacity = capacity
        self.used = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.entries != NULL:
            for i in range(self.nentries):
                if self.entries[i].block != NULL:
                    Py_DECREF(<object>self.entries[i].block)
        free(self.entries)
        free(self.buckets)

    cdef int32_t find(self, uint64_t key) noexcept:
        cdef int32_t i
        if self.nbuckets == 0:
            return -1
        i = self.buckets[bucket_of(key, self.nbuckets)]
        while i >= 0 and self.entries[i].key != key:
            i = self.entries[i].next
        return i

    cdef object get_block(self, uint64_t key):
        """The cached bytes of block `key`, or None (E2)."""
        cdef int32_t i = self.find(key)
        if i < 0:
            self.misses += 1
            return None
        self.hits += 1
        self.entries[i].ref = 1
        return <object>self.entries[i].block

    cdef int grow(self) except -1:
        """Double the entries (and the buckets, keeping at least one bucket per entry)."""
        cdef Py_ssize_t n = self.cap_entries * 2 if self.cap_entries else FIRST_ENTRIES
        cdef Py_ssize_t i, b
        cdef CacheEntry *e
        cdef int32_t *nb
        if n > MAX_ENTRIES:
            raise MemoryError("block cache: too many entries")
        e = <CacheEntry *>realloc(self.entries, n * sizeof(CacheEntry))
        if e == NULL:
            raise MemoryError()
        self.entries = e
        self.cap_entries = n
        nb = <int32_t *>malloc(n * sizeof(int32_t))
        if nb == NULL:
            raise MemoryError()
        free(self.buckets)
        self.buckets = nb
        self.nbuckets = n
        for b in range(n):
            nb[b] = -1
        for i in range(self.nentries):   # rehash the live entries; free ones keep their chain
            if self.entries[i].block != NULL:
                b = bucket_of(self.entries[i].key, n)
                self.entries[i].next = nb[b]
                nb[b] = <int32_t>i
        return 0

    cdef int unlink(self, int32_t i) except -1:
        """Drop entry i: out of its chain, its bytes released, onto the free list."""
        cdef Py_ssize_t b = bucket_of(self.entries[i].key, self.nbuckets)
        cdef int32_t j = self.buckets[b]
        cdef PyObject *block = self.entries[i].block
        if j == i:
            self.buckets[b] = self.entries[i].next
        else:
            while self.entries[j].next != i:
                j = self.entries[j].next
            self.entries[j].next = self.entries[i].next
        self.entries[i].block = NULL
        self.entries[i].next = self.free_head
        self.free_head = i
        self.count -= 1
        self.used -= PyBytes_GET_SIZE(<object>block) + BLOCK_CACHE_OVERHEAD
        Py_DECREF(<object>block)         # last: a finalizer may run, the table is consistent
        return 0

    cdef int evict_one(self) except -1:
        """CLOCK: move the hand past referenced entries (clearing their bit), evict the first
        unreferenced one. Two sweeps at most."""
        cdef CacheEntry *e
        while True:
            if self.hand >= self.nentries:
                self.hand = 0
            e = &self.entries[self.hand]
            self.hand += 1
            if e.block == NULL:
                continue
            if e.ref:
                e.ref = 0
                continue
            return self.unlink(<int32_t>(self.hand - 1))

    cdef int put_block(self, uint64_t key, bytes block) except -1:
        """Cache `block` under `key` (a key already cached keeps its block), evicting until
        the bytes fit the capacity (E1)."""
        cdef Py_ssize_t cost = PyBytes_GET_SIZE(block) + BLOCK_CACHE_OVERHEAD
        cdef int32_t i
        cdef Py_ssize_t b
        if cost > self.capacity or self.find(key) >= 0:
            return 0
        while self.used + cost > self.capacity and self.count:
            self.evict_one()
        if self.free_head < 0 and self.nentries == self.cap_entries:
            self.grow()
        if self.free_head >= 0:
            i = self.free_head
            self.free_head = self.entries[i].next
        else:
            i = <int32_t>self.nentries
            self.nentries += 1
        b = bucket_of(key, self.nbuckets)
        Py_INCREF(block)
        self.entries[i].key = key
        self.entries[i].block = <PyObject *>block
        self.entries[i].ref = 0
        self.entries[i].next = self.buckets[b]
        self.buckets[b] = i
        self.count += 1
        self.used += cost
        return 0

    # The Python face, for tests and reports.

    def lookup(self, uint64_t key):
        return self.get_block(key)

    def insert(self, uint64_t key, bytes block):
        self.put_block(key, block)

    def __len__(self):
        return self.count

    def drop_table(self, uint64_t number):
        """Drop every block of table `number` (the table is retired: its blocks would only take room)."""
        cdef Py_ssize_t i
        for i in range(self.nentries):
            if self.entries[i].block != NULL and (self.entries[i].key >> BLOCK_KEY_SHIFT) == number:
                self.unlink(<int32_t>i)
