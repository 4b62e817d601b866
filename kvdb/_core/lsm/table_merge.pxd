# The merge that flushes and compactions run without the GIL (bodies in
# table_merge.pyx): memtables and runs of tables are read in C, merged in
# internal order, filtered by invariant L2 (lsm.pyx) and fed to the C table
# builder, one output table per call of TableMerger.next_table().

from libc.stdint cimport uint32_t, uint64_t
from kvdb._core.lsm.sstable_builder cimport Buf, Builder
from kvdb._core.lsm.memtable cimport MemNode

cdef enum:
    MERGE_READAHEAD = 256 * 1024         # bytes read at once from an input table
    MERGE_OK = 0
    MERGE_ERR_NOMEM = 1
    MERGE_ERR_IO = 2                     # the exception is in TableMerger.error
    MERGE_ERR_SHORT = 3                  # a block runs past the end of the file
    MERGE_ERR_CHECKSUM = 4
    MERGE_ERR_TYPE = 5                   # unknown block type
    MERGE_ERR_LZ4 = 6                    # a compressed block does not decompress
    MERGE_ERR_BLOCK = 7                  # a malformed entry or restart array

cdef struct TableInput:
    # One input table; constant during the merge (its File is kept alive by TableMerger.keep).
    int fd                               # OsFile descriptor, or -1: read through `file` with the GIL
    void *file                           # the File (borrowed)
    uint64_t *offs                       # data block offsets (malloc'd)
    uint32_t *sizes                      # data block payload sizes (malloc'd)
    Py_ssize_t nblocks
    uint64_t data_end                    # end of the last data block

cdef struct Cursor:
    # One sorted input: a memtable, or a run of tables with disjoint key ranges in key order.
    # Owned by the merging thread.
    MemNode *node                        # memtable input: the current node (NULL at the end)
    bint is_mem
    Py_ssize_t first, count              # its tables: inputs[first : first + count]
    Py_ssize_t t                         # current table (index into inputs)
    Py_ssize_t b                         # current data block of that table (-1 none)
    Buf window                           # readahead: file bytes [win_off, win_off + window.n) of table t
    uint64_t win_off
    Buf raw                              # the current block, decompressed
    const unsigned char *p               # next entry in the current block
    const unsigned char *end             # end of the block's entries
    Buf ikey                             # the current internal key
    # the current entry (valid until the cursor moves)
    bint valid
    const unsigned char *key
    Py_ssize_t klen
    uint64_t seq
    int kind                             # ENTRY_PUT / ENTRY_DELETE
    uint64_t expires
    const unsigned char *val
    Py_ssize_t vlen

cdef struct KeyRange:
    const unsigned char *lo              # smallest user key (bytes kept alive by TableMerger.keep)
    Py_ssize_t lolen
    const unsigned char *hi              # largest user key
    Py_ssize_t hilen

cdef class TableMerger:
    # Owned by the one flush or compaction using it (under the engine's `maint` lock).
    cdef Cursor *cursors
    cdef Py_ssize_t ncursors
    cdef TableInput *inputs
    cdef Py_ssize_t ninputs
    cdef list keep                       # Python objects the C pointers point into
    cdef list paths                      # path of each input table (errors)
    cdef uint64_t *snaps                 # live snapshot seqs, ascending
    cdef Py_ssize_t nsnaps
    cdef bint drop_tombstones            # a tombstone every snapshot sees may go if no deeper level holds the key
    cdef KeyRange *deeper                # file ranges of the levels below the output, per level by key
    cdef Py_ssize_t *deeper_start        # level i's files: deeper[deeper_start[i] : deeper_start[i + 1]]
    cdef Py_ssize_t ndeeper_levels
    cdef Py_ssize_t target_size          # cut an output table at a key boundary past this many bytes
    cdef Builder builder
    cdef Buf cur_key                     # the user key whose versions are being merged
    cdef bint have_cur
    cdef Py_ssize_t last_stripe          # snapshot stripe of the last version seen of cur_key
    cdef bint dropping                   # cur_key's remaining versions are dropped (tombstone dropped)
    cdef bint started
    cdef int err                         # MERGE_ERR_*
    cdef Py_ssize_t err_input            # the input table of the error (-1: none)
    cdef uint64_t err_offset
    cdef object error                    # exception raised by a read through a File
    cdef readonly uint64_t entries_in, entries_out, dropped
    cdef readonly double build_seconds   # wall time spent merging and building (GIL released)
    cdef readonly list windows           # [(start, end)] monotonic times of each GIL-free build

    cdef int read_at(self, Py_ssize_t ti, unsigned char *buf, Py_ssize_t n, uint64_t off, Py_ssize_t *got) noexcept nogil
    cdef int fail(self, Cursor *c, int err) noexcept nogil
    cdef int load_block(self, Cursor *c) noexcept nogil
    cdef int advance(self, Cursor *c) noexcept nogil
    cdef bint is_base(self, const unsigned char *key, Py_ssize_t klen) noexcept nogil
    cdef int run(self) noexcept nogil
    cdef object make_error(self)
