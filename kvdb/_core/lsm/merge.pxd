# Sources of versioned entries and the merge that turns them into what one
# snapshot sees (the LSM engine's read path). Glossary:
#   entry    (user key, seq, kind, expires, value): one version of a key
#   kind     ENTRY_DELETE (a tombstone) or ENTRY_PUT
#   seq      the commit that wrote the version; a snapshot at seq S sees, per
#            key, the version with the highest seq <= S
#   expires  wall-clock ms after which a put reads as absent (0 = never)
# Every source yields its entries in internal order: user key ascending, then
# seq descending; backwards it yields exactly the reverse.

from libc.stdint cimport uint8_t, uint64_t
from kvdb._core.engine cimport EngineCursor

cdef enum:
    ENTRY_DELETE = 0
    ENTRY_PUT = 1

cdef class Source:
    # The current entry; meaningful only while `valid`. Guarded by the GIL.
    cdef public bint valid
    cdef public bytes key
    cdef public uint64_t seq
    cdef public int kind
    cdef public uint64_t expires
    cdef public object value         # bytes (None for a tombstone)

    cdef int seek(self, bytes key, bint reverse) except -1
    cdef int step(self, bint reverse) except -1


cdef class MergeCursor(EngineCursor):
    # Fields are set once at construction, then advanced by next_item().
    cdef list sources                # [Source]
    cdef uint64_t snap_seq           # versions with a higher seq are invisible
    cdef uint64_t now                # wall-clock ms; puts expiring at or before it are skipped (0: none)
    cdef bytes lo                    # inclusive lower bound or None
    cdef bytes hi                    # exclusive upper bound or None
    cdef bint reverse
    cdef bint started
    cdef bint done
    cdef object pin                  # keeps the snapshot and the version's files alive

    cdef object next_visible(self, bint with_expired)
    cdef object next_item(self)
