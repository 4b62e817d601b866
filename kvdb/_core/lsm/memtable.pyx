# The memtable skiplist (see memtable.pxd).

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, malloc, free, realloc
from libc.string cimport memcpy, memset

from kvdb._core.coding cimport crc32c
from kvdb._core.lsm.merge cimport Source, ENTRY_PUT, ENTRY_DELETE


cdef extern from *:
    """
    /* 8 key bytes as a big-endian integer: comparing two of them orders like memcmp. */
    static inline uint64_t kvdb_load_be64(const unsigned char *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return __builtin_bswap64(v);   /* the formats already assume a little-endian host */
    }
    """
    uint64_t kvdb_load_be64(const unsigned char *p) noexcept nogil


cdef inline int key_cmp(const unsigned char *a, Py_ssize_t alen,
                        const unsigned char *b, Py_ssize_t blen) noexcept nogil:
    """Sign of a - b in byte order, shorter first on a common prefix. Inline 8-byte steps
    instead of a memcmp call: the skiplist descent compares about 20 short keys per insert."""
    cdef Py_ssize_t n = alen if alen < blen else blen
    cdef Py_ssize_t i = 0
    cdef uint64_t x, y
    while i + 8 <= n:
        x = kvdb_load_be64(a + i)
        y = kvdb_load_be64(b + i)
        if x != y:
            return -1 if x < y else 1
        i += 8
    while i < n:
        if a[i] != b[i]:
            return -1 if a[i] < b[i] else 1
        i += 1
    return (alen > blen) - (alen < blen)


cdef inline int node_cmp(MemNode *node, const unsigned char *k, Py_ssize_t klen, uint64_t seq) noexcept nogil:
    """Sign of node - (k, seq) in internal order (key ascending, seq descending)."""
    cdef int r = key_cmp(node.key, node.klen, k, klen)
    if r:
        return r
    return (node.seq < seq) - (node.seq > seq)


cdef class Memtable:
    def __cinit__(self, uint64_t log_number=0, Py_ssize_t expected_bytes=0):
        """expected_bytes: the arena size at which the memtable will be switched (sizes the key
        filter: about a bit per 8 bytes, so 16 MiB of 100-byte entries get 13 bits per key);
        0: no filter (nothing asks newest_kind: the engine keeps no count of keys)."""
        memset(&self.arena, 0, sizeof(Arena))
        cdef uint64_t bits = MEM_FILTER_MIN_BITS
        if expected_bytes > 0:
            while bits < MEM_FILTER_MAX_BITS and bits < <uint64_t>expected_bytes // 8:
                bits <<= 1
            self.filter = <uint64_t *>calloc(bits // 64, sizeof(uint64_t))
            if self.filter == NULL:
                raise MemoryError()
            self.filter_mask = bits - 1
        self.rnd = 0x9E3779B97F4A7C15
        self.height = 1
        self.log_number = log_number
        self.head = <MemNode *>malloc(sizeof(MemNode))
        if self.head == NULL:
            raise MemoryError()
        memset(self.head, 0, sizeof(MemNode))
        self.head.height = MEM_MAX_HEIGHT
        cdef int i
        for i in range(MEM_MAX_HEIGHT):
            self.tail[i] = self.head

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.arena.nblocks):
            free(self.arena.blocks[i])
        free(self.arena.blocks)
        free(self.head)
        free(self.filter)

    @property
    def memory(self):
        """Bytes of entries in the arena (the flush trigger compares this)."""
        return self.arena.used

    cdef MemNode *alloc_node(self, int height, Py_ssize_t klen, Py_ssize_t vlen) except NULL:
        cdef Py_ssize_t size = sizeof(MemNode) - (MEM_MAX_HEIGHT - height) * sizeof(MemNode *) + klen + vlen
        cdef char *block
        cdef MemNode *node
        size = (size + 7) & ~7
        if size > self.arena.left:
            if self.arena.nblocks == self.arena.cap_blocks:
                self.arena.cap_blocks = self.arena.cap_blocks * 2 + 16
                blocks = <char **>realloc(self.arena.blocks, self.arena.cap_blocks * sizeof(char *))
                if blocks == NULL:
                    raise MemoryError()
                self.arena.blocks = blocks
            if size > ARENA_BLOCK // 4:
                block = <char *>malloc(size)          # a big entry: its own block, the current one stays
                if block == NULL:
                    raise MemoryError()
                self.arena.blocks[self.arena.nblocks] = block
                self.arena.nblocks += 1
                self.arena.used += size
                node = <MemNode *>block
                node.height = height
                return node
            block = <char *>malloc(ARENA_BLOCK)
            if block == NULL:
                raise MemoryError()
            self.arena.blocks[self.arena.nblocks] = block
            self.arena.nblocks += 1
            self.arena.ptr = block
            self.arena.left = ARENA_BLOCK
        node = <MemNode *>self.arena.ptr
        self.arena.used += size
        self.arena.ptr += size
        self.arena.left -= size
        node.height = height
        return node

    cdef MemNode *find_ge(self, const unsigned char *k, Py_ssize_t klen, uint64_t seq, MemNode **prev):
        """First node >= (k, seq); fills prev[level] with the last node < it per level."""
        cdef MemNode *x = self.head
        cdef MemNode *nxt
        cdef MemNode *bigger = NULL      # a node already found >= (k, seq): not compared again
        cdef int level = self.height - 1
        while True:
            nxt = x.next[level]
            if nxt != NULL and nxt != bigger and node_cmp(nxt, k, klen, seq) < 0:
                x = nxt
                continue
            bigger = nxt
            if prev != NULL:
                prev[level] = x
            if level == 0:
                return nxt
            level -= 1

    cdef MemNode *find_lt_key(self, const unsigned char *k, Py_ssize_t klen):
        """Last node whose user key is < k (NULL if none)."""
        cdef MemNode *x = self.head
        cdef MemNode *nxt
        cdef int level = self.height - 1
        while True:
            nxt = x.next[level]
            if nxt != NULL and key_cmp(nxt.key, nxt.klen, k, klen) < 0:
                x = nxt
                continue
            if level == 0:
                return NULL if x == self.head else x
            level -= 1

    cdef MemNode *find_last(self):
        cdef MemNode *x = self.head
        cdef int level = self.height - 1
        while True:
            if x.next[level] != NULL:
                x = x.next[level]
                continue
            if level == 0:
                return NULL if x == self.head else x
            level -= 1

    cdef MemNode *find_before(self, MemNode *node):
        """The node just before `node` in internal order (NULL if it is the first)."""
        cdef MemNode *x = self.head
        cdef MemNode *nxt
        cdef int level = self.height - 1
        while True:
            nxt = x.next[level]
            if nxt != NULL and node_cmp(nxt, node.key, node.klen, node.seq) < 0:
                x = nxt
                continue
            if level == 0:
                return NULL if x == self.head else x
            level -= 1

    cdef int add(self, uint64_t seq, int kind, bytes key, object value, uint64_t expires) except -1:
        """Link a new entry (the caller holds the writer lock; seqs of one key only grow).
        Returns what this memtable held for the key before: MEM_ABSENT, or MEM_PUT / MEM_DELETE
        for its newest older version (found by the same descent, so knowing it costs nothing)."""
        cdef const unsigned char *k = <const unsigned char *>PyBytes_AS_STRING(key)
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
        cdef Py_ssize_t vlen = 0 if value is None else PyBytes_GET_SIZE(value)
        cdef MemNode *prev[MEM_MAX_HEIGHT]
        cdef MemNode *node
        cdef int h = 1, i
        if klen > 0xFFFFFFFF or vlen > 0xFFFFFFFF:
            raise ValueError("entry too large for the memtable")
        while h < MEM_MAX_HEIGHT:
            self.rnd ^= self.rnd << 13
            self.rnd ^= self.rnd >> 7
            self.rnd ^= self.rnd << 17
            if self.rnd % MEM_BRANCHING:
                break
            h += 1
        cdef int before = MEM_ABSENT
        cdef uint32_t fh
        cdef uint64_t b1, b2
        if self.filter != NULL:
            fh = crc32c(k, klen)
            b1 = fh & self.filter_mask
            b2 = ((fh >> 17) | (fh << 15)) & self.filter_mask
            self.filter[b1 >> 6] |= (<uint64_t>1) << (b1 & 63)
            self.filter[b2 >> 6] |= (<uint64_t>1) << (b2 & 63)
        if self.tail[0] != self.head and node_cmp(self.tail[0], k, klen, seq) < 0:
            # an append (keys written in order): the last node of each level precedes it, and
            # holds a smaller key (an older version of this key would sort after it)
            for i in range(self.height):
                prev[i] = self.tail[i]
        else:
            node = self.find_ge(k, klen, seq, prev)
            if node != NULL and key_cmp(node.key, node.klen, k, klen) == 0:
                before = MEM_DELETE if node.kind == ENTRY_DELETE else MEM_PUT
        if h > self.height:
            for i in range(self.height, h):
                prev[i] = self.head
            self.height = h
        node = self.alloc_node(h, klen, vlen)
        node.seq = seq
        node.kind = kind
        node.expires = expires
        node.klen = <uint32_t>klen
        node.vlen = <uint32_t>vlen
        node.key = (<unsigned char *>node) + sizeof(MemNode) - (MEM_MAX_HEIGHT - h) * sizeof(MemNode *)
        node.value = node.key + klen
        memcpy(node.key, k, klen)
        if vlen:
            memcpy(node.value, PyBytes_AS_STRING(value), vlen)
        for i in range(h):
            node.next[i] = prev[i].next[i]
            prev[i].next[i] = node
            if node.next[i] == NULL:
                self.tail[i] = node
        self.count += 1
        if expires:
            self.expiring += 1
        if self.min_seq == 0 or seq < self.min_seq:
            self.min_seq = seq
        if seq > self.max_seq:
            self.max_seq = seq
        return before

    cdef bint past_end(self, const unsigned char *k, Py_ssize_t klen) noexcept:
        """k sorts after every key here (or it is empty)."""
        return self.tail[0] == self.head or key_cmp(self.tail[0].key, self.tail[0].klen, k, klen) < 0

    cdef int newest_kind(self, const unsigned char *k, Py_ssize_t klen, uint32_t h) noexcept:
        """MEM_PUT / MEM_DELETE for the key's newest version here, MEM_ABSENT if it has none;
        h is crc32c(k): the key filter answers most absent keys without a descent."""
        cdef uint64_t b1 = h & self.filter_mask, b2 = ((h >> 17) | (h << 15)) & self.filter_mask
        if self.filter != NULL and (not (self.filter[b1 >> 6] >> (b1 & 63)) & 1
                                    or not (self.filter[b2 >> 6] >> (b2 & 63)) & 1):
            return MEM_ABSENT
        cdef MemNode *node = self.find_ge(k, klen, <uint64_t>-1, NULL)
        if node == NULL or key_cmp(node.key, node.klen, k, klen) != 0:
            return MEM_ABSENT
        return MEM_DELETE if node.kind == ENTRY_DELETE else MEM_PUT

    cpdef object get(self, bytes key, uint64_t snap_seq):
        """(kind, value, expires) of the newest version of key with seq <= snap_seq, else None."""
        cdef const unsigned char *k = <const unsigned char *>PyBytes_AS_STRING(key)
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
        cdef MemNode *node = self.find_ge(k, klen, snap_seq, NULL)
        if node == NULL or key_cmp(node.key, node.klen, k, klen) != 0:
            return None
        if node.kind == ENTRY_DELETE:
            return (ENTRY_DELETE, None, 0)
        return (ENTRY_PUT, PyBytes_FromStringAndSize(<const char *>node.value, node.vlen), node.expires)

    def put(self, uint64_t seq, bytes key, bytes value, uint64_t expires=0):
        self.add(seq, ENTRY_PUT, key, value, expires)

    def delete(self, uint64_t seq, bytes key):
        self.add(seq, ENTRY_DELETE, key, None, 0)

    def source(self):
        cdef MemSource s = MemSource.__new__(MemSource)
        s.mem = self
        s.node = NULL
        s.valid = False
        return s

    def entries(self):
        """Every entry in internal order as (key, seq, kind, expires, value) (for flushes)."""
        cdef MemNode *x = self.head.next[0]
        out = []
        while x != NULL:
            out.append((PyBytes_FromStringAndSize(<const char *>x.key, x.klen), x.seq, x.kind, x.expires,
                        PyBytes_FromStringAndSize(<const char *>x.value, x.vlen) if x.kind == ENTRY_PUT else None))
            x = x.next[0]
        return out


cdef class MemSource(Source):
    """A Source over one memtable."""

    cdef int load(self) except -1:
        cdef MemNode *n = self.node
        if n == NULL:
            self.valid = False
            return 0
        self.valid = True                # key and val point into the arena `mem` keeps alive
        self.key = n.key
        self.klen = n.klen
        self.seq = n.seq
        self.kind = n.kind
        self.expires = n.expires
        self.val = n.value
        self.vlen = n.vlen
        return 0

    cdef int seek(self, bytes key, bint reverse) except -1:
        if not reverse:
            if key is None:
                self.node = self.mem.head.next[0]
            else:
                self.node = self.mem.find_ge(<const unsigned char *>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key),
                                             0xFFFFFFFFFFFFFFFF, NULL)
        elif key is None:
            self.node = self.mem.find_last()
        else:
            self.node = self.mem.find_lt_key(<const unsigned char *>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
        return self.load()

    cdef int step(self, bint reverse) except -1:
        if self.node == NULL:
            return 0
        self.node = self.mem.find_before(self.node) if reverse else self.node.next[0]
        return self.load()
