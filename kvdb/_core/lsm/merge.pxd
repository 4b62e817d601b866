# Sources of versioned entries and the merge that turns them into what one
# snapshot sees (the LSM engine's read path). Glossary:
#   entry    (user key, seq, kind, expires, value): one version of a key
#   kind     ENTRY_DELETE (a tombstone) or ENTRY_PUT
#   seq      the commit that wrote the version; a snapshot at seq S sees, per
#            key, the version with the highest seq <= S
#   expires  wall-clock ms after which a put reads as absent (0 = never)
# Every source yields its entries in internal order: user key ascending, then
# seq descending; backwards it yields exactly the reverse.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.ref cimport PyObject
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcmp
from kvdb._core.engine cimport EngineCursor

cdef enum:
    ENTRY_DELETE = 0
    ENTRY_PUT = 1


cdef inline int key_cmp(const unsigned char *a, Py_ssize_t alen, const unsigned char *b,
                        Py_ssize_t blen) noexcept nogil:
    """Sign of a - b for user keys: bytewise, shorter first on a common prefix (as Python
    compares bytes). The memtable's skiplist keeps its own 8-byte-step variant."""
    cdef int r = memcmp(a, b, alen if alen < blen else blen)
    if r:
        return r
    return (alen > blen) - (alen < blen)


cdef inline int bytes_cmp(bytes a, const unsigned char *k, Py_ssize_t klen) noexcept:
    """key_cmp() of a bytes object against k[:klen]."""
    return key_cmp(<const unsigned char *>PyBytes_AS_STRING(a), PyBytes_GET_SIZE(a), k, klen)

cdef class Source:
    # The current entry; meaningful only while `valid`. Its key and val point into memory the
    # source keeps alive (a memtable's arena, a loaded block, the source's key buffer) and stay
    # valid until the source moves (seek or step): a reader that needs them longer copies them.
    # Guarded by the GIL; owned by one cursor.
    cdef bint valid
    cdef const unsigned char *key    # the user key, klen bytes
    cdef Py_ssize_t klen
    cdef uint64_t seq
    cdef int kind                    # ENTRY_PUT / ENTRY_DELETE
    cdef uint64_t expires
    cdef const unsigned char *val    # the value, vlen bytes (a put only)
    cdef Py_ssize_t vlen

    cdef int seek(self, bytes key, bint reverse) except -1
    cdef int step(self, bint reverse) except -1


cdef struct KeyBuf:
    # A growable copy of one key, owned by a MergeCursor (malloc'd, freed at dealloc).
    unsigned char *p
    Py_ssize_t n
    Py_ssize_t cap


cdef class MergeCursor(EngineCursor):
    # Fields are set once at construction, then advanced by next_visible() under the GIL. Each
    # step compares the sources' current entries in place (memcmp on their C pointers) and makes
    # Python objects only for what it returns.
    cdef list sources                # [Source]: keeps them alive for `srcs`
    cdef PyObject **srcs             # borrowed pointers to the sources, in `sources` order (malloc'd)
    cdef Py_ssize_t nsrcs
    cdef uint64_t snap_seq           # versions with a higher seq are invisible
    cdef uint64_t now                # wall-clock ms; puts expiring at or before it are skipped (0: none)
    cdef bytes lo                    # inclusive lower bound or None
    cdef bytes hi                    # exclusive upper bound or None
    cdef bint reverse
    cdef bint started
    cdef bint done
    cdef object pin                  # keeps the snapshot and the version's files alive
    cdef KeyBuf cur                  # the user key being merged (copied: the sources move under it)
    cdef bytes out_key               # what next_visible() found last: the key,
    cdef object out_value            # its value (bytes),
    cdef uint64_t out_expires        # and its expiry (wall-clock ms, 0 = never)

    cdef int keep_key(self, const unsigned char *k, Py_ssize_t n) except -1
    cdef int next_visible(self, bint with_expired) except -1
    cdef object next_item(self)
