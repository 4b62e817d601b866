# Flush and compaction merge without the GIL (see table_merge.pxd): the inputs
# are walked in C (memtable skiplists, table blocks read with pread, checked
# and lz4-decoded here), merged in internal order, filtered by invariant L2
# and fed to the C table builder. Only reads through a non-OS File (the crash
# tests' simulated file system) take the GIL back, one block window at a time.

import time

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.errno cimport errno, EINTR
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset, strerror
from posix.unistd cimport pread as c_pread

from kvdb._core.coding cimport crc32c, get_u32, get_u64, get_varint
from kvdb._core.file cimport File, OsFile
from kvdb._core.lsm.lz4block cimport lz4_decompress
from kvdb._core.lsm.memtable cimport Memtable, MemNode
from kvdb._core.lsm.merge cimport ENTRY_PUT, ENTRY_DELETE, key_cmp
from kvdb._core.lsm.sstable cimport (Table, entry_header, SST_DELETE, SST_PUT, SST_PUT_EXPIRES, TRAILER_SIZE, BLOCK_RAW, BLOCK_LZ4,
                                 BLOCK_TRAILER_SIZE)
from kvdb._core.lsm.sstable_builder cimport (Buf, buf_reserve, buf_append, buf_free, builder_reset, builder_free,
                                         builder_size, builder_add, builder_finish)

from kvdb.errors import CorruptionError


cdef inline int entry_cmp(Cursor *a, Cursor *b) noexcept nogil:
    """Internal order of the two current entries: user key ascending, then seq descending."""
    cdef int r = key_cmp(a.key, a.klen, b.key, b.klen)
    if r:
        return r
    return (a.seq < b.seq) - (a.seq > b.seq)


cdef class TableMerger:
    """Merges runs (each a Memtable, or a list of Tables with disjoint ranges in key order) into
    tables: next_table() builds the next one without the GIL, write_to() stores it."""

    def __cinit__(self):
        memset(&self.builder, 0, sizeof(self.builder))
        memset(&self.cur_key, 0, sizeof(Buf))
        self.err_input = -1

    def __init__(self, list runs, list snaps, bint drop_tombstones, list deeper, Py_ssize_t target_size):
        """snaps: live snapshot seqs (ascending); deeper: for each level below the output, the
        (smallest, largest) user keys of its files in key order (tombstones that no snapshot
        needs are dropped only for keys outside all of them, with drop_tombstones)."""
        cdef Py_ssize_t i, j, nin = 0, k
        cdef Cursor *c
        cdef TableInput *inp
        cdef Table t
        cdef File f
        self.keep = []
        self.paths = []
        self.windows = []
        self.target_size = target_size
        self.drop_tombstones = drop_tombstones
        builder_reset(&self.builder)
        for run in runs:
            if not isinstance(run, Memtable):
                nin += len(run)
        self.cursors = <Cursor *>calloc(len(runs) + 1, sizeof(Cursor))
        self.inputs = <TableInput *>calloc(nin + 1, sizeof(TableInput))
        self.snaps = <uint64_t *>malloc((len(snaps) + 1) * sizeof(uint64_t))
        k = sum([len(level) for level in deeper])
        self.deeper = <KeyRange *>calloc(k + 1, sizeof(KeyRange))
        self.deeper_start = <Py_ssize_t *>calloc(len(deeper) + 1, sizeof(Py_ssize_t))
        if self.cursors == NULL or self.inputs == NULL or self.snaps == NULL or self.deeper == NULL \
                or self.deeper_start == NULL:
            raise MemoryError()
        for i in range(len(snaps)):
            self.snaps[i] = snaps[i]
        self.nsnaps = len(snaps)
        k = 0
        for i in range(len(deeper)):
            self.deeper_start[i] = k
            for lo, hi in deeper[i]:
                self.keep.append(lo)
                self.keep.append(hi)
                self.deeper[k].lo = <const unsigned char *>PyBytes_AS_STRING(lo)
                self.deeper[k].lolen = PyBytes_GET_SIZE(lo)
                self.deeper[k].hi = <const unsigned char *>PyBytes_AS_STRING(hi)
                self.deeper[k].hilen = PyBytes_GET_SIZE(hi)
                k += 1
        self.deeper_start[len(deeper)] = k
        self.ndeeper_levels = len(deeper)
        for run in runs:
            c = &self.cursors[self.ncursors]
            self.ncursors += 1
            c.b = -1
            if isinstance(run, Memtable):
                self.keep.append(run)
                c.is_mem = True
                c.node = (<Memtable>run).head      # the sentinel: the first advance() moves to the first entry
                continue
            c.first = self.ninputs
            c.count = len(run)
            c.t = c.first
            for t in run:
                f = t.open_file()                  # kept open by `keep` for the merge
                inp = &self.inputs[self.ninputs]
                self.ninputs += 1
                self.keep.append(t)
                self.keep.append(f)
                self.paths.append(t.path)
                inp.file = <void *>f
                inp.fd = (<OsFile>f).fd if isinstance(f, OsFile) else -1
                inp.nblocks = len(t.index_offs)
                inp.offs = <uint64_t *>malloc((inp.nblocks + 1) * sizeof(uint64_t))
                inp.sizes = <uint32_t *>malloc((inp.nblocks + 1) * sizeof(uint32_t))
                if inp.offs == NULL or inp.sizes == NULL:
                    raise MemoryError()
                for j in range(inp.nblocks):
                    inp.offs[j] = t.index_offs[j]
                    inp.sizes[j] = t.index_sizes[j]
                inp.data_end = t.data_end

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.cursors != NULL:
            for i in range(self.ncursors):
                buf_free(&self.cursors[i].window)
                buf_free(&self.cursors[i].raw)
                buf_free(&self.cursors[i].ikey)
            free(self.cursors)
        if self.inputs != NULL:
            for i in range(self.ninputs):
                free(self.inputs[i].offs)
                free(self.inputs[i].sizes)
            free(self.inputs)
        free(self.snaps)
        free(self.deeper)
        free(self.deeper_start)
        buf_free(&self.cur_key)
        builder_free(&self.builder)

    # -- reading inputs (nogil) -------------------------------------------------------

    cdef int read_at(self, Py_ssize_t ti, unsigned char *buf, Py_ssize_t n, uint64_t off,
                     Py_ssize_t *got) noexcept nogil:
        cdef int fd = self.inputs[ti].fd
        cdef Py_ssize_t done = 0, r
        cdef int e
        if fd >= 0:
            while done < n:
                r = c_pread(fd, buf + done, n - done, off + done)
                if r < 0:
                    e = errno
                    if e == EINTR:
                        continue
                    with gil:
                        self.error = OSError(e, strerror(e).decode(), self.paths[ti])
                    self.err = MERGE_ERR_IO
                    return -1
                if r == 0:
                    break
                done += r
            got[0] = done
            return 0
        with gil:
            try:
                got[0] = (<File>self.inputs[ti].file).pread(buf, n, off)
            except BaseException as exc:
                self.error = exc
                self.err = MERGE_ERR_IO
                return -1
        return 0

    cdef int fail(self, Cursor *c, int err) noexcept nogil:
        self.err = err
        self.err_input = c.t
        self.err_offset = self.inputs[c.t].offs[c.b]
        return -1

    cdef int load_block(self, Cursor *c) noexcept nogil:
        """Read, check and decode block c.b of table c.t; position before its first entry."""
        cdef TableInput *inp = &self.inputs[c.t]
        cdef uint64_t off = inp.offs[c.b], ulen
        cdef Py_ssize_t size = inp.sizes[c.b], need = size + BLOCK_TRAILER_SIZE, wlen, got, blen
        cdef const unsigned char *d
        cdef const unsigned char *q
        cdef const unsigned char *blk
        cdef uint32_t nrest
        if c.window.n == 0 or off < c.win_off or off + need > c.win_off + c.window.n:
            wlen = MERGE_READAHEAD
            if off + wlen > inp.data_end:
                wlen = inp.data_end - off if inp.data_end > off else 0
            if wlen < need:
                wlen = need
            c.window.n = 0
            if buf_reserve(&c.window, wlen) < 0:
                self.err = MERGE_ERR_NOMEM
                return -1
            if self.read_at(c.t, c.window.p, wlen, off, &got) < 0:
                self.err_input = c.t
                self.err_offset = off
                return -1
            if got < need:
                return self.fail(c, MERGE_ERR_SHORT)
            c.window.n = got
            c.win_off = off
        d = c.window.p + (off - c.win_off)
        if get_u32(d + size + 1) != crc32c(d, size + 1):
            return self.fail(c, MERGE_ERR_CHECKSUM)
        if d[size] == BLOCK_RAW:
            blk = d
            blen = size
        elif d[size] == BLOCK_LZ4:
            q = get_varint(d, d + size, &ulen)
            if q == NULL or ulen > (<uint64_t>1 << 31):
                return self.fail(c, MERGE_ERR_LZ4)
            c.raw.n = 0
            if buf_reserve(&c.raw, <Py_ssize_t>ulen + 1) < 0:
                self.err = MERGE_ERR_NOMEM
                return -1
            if lz4_decompress(q, d + size - q, c.raw.p, ulen) != <Py_ssize_t>ulen:
                return self.fail(c, MERGE_ERR_LZ4)
            blk = c.raw.p
            blen = ulen
        else:
            return self.fail(c, MERGE_ERR_TYPE)
        if blen < 4:
            return self.fail(c, MERGE_ERR_BLOCK)
        nrest = get_u32(blk + blen - 4)
        if nrest == 0 or <uint64_t>nrest * 4 + 4 > <uint64_t>blen:
            return self.fail(c, MERGE_ERR_BLOCK)
        c.p = blk
        c.end = blk + blen - 4 - 4 * <Py_ssize_t>nrest
        c.ikey.n = 0
        return 0

    cdef int advance(self, Cursor *c) noexcept nogil:
        """Move c to its next entry (c.valid False at the end)."""
        cdef uint64_t shared, unshared, vlen, trailer
        cdef const unsigned char *p
        cdef int sk
        if c.is_mem:
            if c.node != NULL:
                c.node = c.node.next[0]
            if c.node == NULL:
                c.valid = False
                return 0
            c.valid = True
            c.key = c.node.key
            c.klen = c.node.klen
            c.seq = c.node.seq
            c.kind = c.node.kind
            c.expires = c.node.expires
            c.val = c.node.value
            c.vlen = c.node.vlen if c.node.kind == ENTRY_PUT else 0
            return 0
        while c.p == NULL or c.p >= c.end:
            c.b += 1
            while c.t < c.first + c.count and c.b >= self.inputs[c.t].nblocks:
                c.t += 1
                c.b = 0
                c.window.n = 0
            if c.t >= c.first + c.count:
                c.valid = False
                return 0
            if self.load_block(c) < 0:
                return -1
        p = entry_header(c.p, c.end, c.ikey.n, &shared, &unshared, &vlen)
        if p == NULL:
            return self.fail(c, MERGE_ERR_BLOCK)
        c.ikey.n = shared
        if buf_append(&c.ikey, p, unshared) < 0:
            self.err = MERGE_ERR_NOMEM
            return -1
        p += unshared
        c.p = p + vlen
        trailer = get_u64(c.ikey.p + c.ikey.n - TRAILER_SIZE)
        sk = trailer & 0xff
        c.valid = True
        c.key = c.ikey.p
        c.klen = c.ikey.n - TRAILER_SIZE
        c.seq = trailer >> 8
        c.val = p
        c.vlen = vlen
        c.expires = 0
        if sk == SST_DELETE:
            c.kind = ENTRY_DELETE
            c.vlen = 0
        elif sk == SST_PUT:
            c.kind = ENTRY_PUT
        elif sk == SST_PUT_EXPIRES and vlen >= 8:
            c.kind = ENTRY_PUT
            c.expires = get_u64(p)
            c.val = p + 8
            c.vlen = vlen - 8
        else:
            return self.fail(c, MERGE_ERR_BLOCK)
        return 0

    # -- the merge (nogil) ----------------------------------------------------------------

    cdef bint is_base(self, const unsigned char *key, Py_ssize_t klen) noexcept nogil:
        """No file of a deeper level has a key range holding key."""
        cdef Py_ssize_t level, lo, hi, mid
        for level in range(self.ndeeper_levels):
            lo = self.deeper_start[level]
            hi = self.deeper_start[level + 1]
            while lo < hi:                        # the first file whose largest key is >= key
                mid = (lo + hi) >> 1
                if key_cmp(self.deeper[mid].hi, self.deeper[mid].hilen, key, klen) < 0:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < self.deeper_start[level + 1] and \
                    key_cmp(self.deeper[lo].lo, self.deeper[lo].lolen, key, klen) <= 0:
                return False
        return True

    cdef int run(self) noexcept nogil:
        """Merge until an output table is complete in the builder (1), the inputs are exhausted
        with nothing to write (0), or an error (-1, details in err/err_input/err_offset/error).

        L2, per user key (its versions arrive newest first): the versions falling in one
        snapshot stripe (the same smallest snapshot >= seq) are all hidden behind the newest of
        them, which is kept; with drop_tombstones, a tombstone in stripe 0 (every snapshot sees
        it) whose key no deeper level may hold is dropped with every older version."""
        cdef Py_ssize_t i, lo, hi, mid
        cdef Cursor *best
        cdef Cursor *c
        cdef bint new_key
        if not self.started:
            self.started = True
            for i in range(self.ncursors):
                if self.advance(&self.cursors[i]) < 0:
                    return -1
        while True:
            best = NULL
            for i in range(self.ncursors):
                c = &self.cursors[i]
                if c.valid and (best == NULL or entry_cmp(c, best) < 0):
                    best = c
            if best == NULL:
                break
            new_key = not self.have_cur or key_cmp(best.key, best.klen, self.cur_key.p, self.cur_key.n) != 0
            if new_key:
                if self.builder.entries and builder_size(&self.builder) >= self.target_size:
                    break                         # cut here: all versions of a key stay in one table
                self.cur_key.n = 0
                if buf_append(&self.cur_key, best.key, best.klen) < 0:
                    self.err = MERGE_ERR_NOMEM
                    return -1
                self.have_cur = True
                self.last_stripe = -1
                self.dropping = False
            self.entries_in += 1
            if self.dropping:
                self.dropped += 1
            else:
                lo = 0
                hi = self.nsnaps
                while lo < hi:                    # the smallest snapshot >= seq
                    mid = (lo + hi) >> 1
                    if self.snaps[mid] < best.seq:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo == self.last_stripe:
                    self.dropped += 1             # shadowed by a newer version every reader of the stripe sees
                elif best.kind == ENTRY_DELETE and lo == 0 and self.drop_tombstones \
                        and self.is_base(best.key, best.klen):
                    self.dropping = True
                    self.dropped += 1
                else:
                    self.last_stripe = lo
                    if builder_add(&self.builder, best.key, best.klen, best.seq, best.kind, best.expires,
                                   best.val, best.vlen) < 0:
                        self.err = MERGE_ERR_NOMEM
                        return -1
                    self.entries_out += 1
            if self.advance(best) < 0:
                return -1
        if self.builder.entries == 0:
            return 0
        if builder_finish(&self.builder) < 0:
            self.err = MERGE_ERR_NOMEM
            return -1
        return 1

    # -- Python side ------------------------------------------------------------------

    def next_table(self):
        """Build the next output table with the GIL released; False when the inputs are done."""
        cdef int r
        builder_reset(&self.builder)
        t0 = time.monotonic()
        with nogil:
            r = self.run()
        t1 = time.monotonic()
        self.windows.append((t0, t1))
        self.build_seconds += t1 - t0
        if r < 0:
            raise self.make_error()
        return r == 1

    cdef object make_error(self):
        if self.err == MERGE_ERR_IO:
            return self.error
        if self.err == MERGE_ERR_NOMEM or self.err_input < 0:
            return MemoryError()
        path = self.paths[self.err_input]
        off = self.err_offset
        what = {
            MERGE_ERR_SHORT: f"block at offset {off} is cut short by the end of the file",
            MERGE_ERR_CHECKSUM: f"block checksum mismatch at offset {off}",
            MERGE_ERR_TYPE: f"block at offset {off} has an unknown type",
            MERGE_ERR_LZ4: f"compressed block at offset {off} does not decompress",
            MERGE_ERR_BLOCK: f"block at offset {off} has a malformed entry",
        }.get(self.err, f"block at offset {off} is unreadable")
        return CorruptionError(f"{path}: {what}", path=path, offset=off)

    def write_to(self, File f):
        """Write the table built by the last next_table() to f (from offset 0) and fsync it."""
        f.pwrite(self.builder.out.p, self.builder.out.n, 0)
        f.sync()
        return self.builder.out.n

    @property
    def size(self):
        return self.builder.out.n

    @property
    def entries(self):
        return self.builder.entries

    @property
    def min_seq(self):
        return self.builder.min_seq

    @property
    def max_seq(self):
        return self.builder.max_seq

    @property
    def smallest(self):
        return PyBytes_FromStringAndSize(<char *>self.builder.smallest.p, self.builder.smallest.n)

    @property
    def largest(self):
        return PyBytes_FromStringAndSize(<char *>self.builder.prev_user.p, self.builder.prev_user.n)
