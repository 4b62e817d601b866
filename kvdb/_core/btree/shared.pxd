# The B+Tree's shared-memory file, data.kvdb-shm: what the processes that have one database
# open share (docs/format/shm.md). It is mapped by every open of the database, rebuilt by the
# first one, and never fsynced: it describes the files, the files do not depend on it.
#
# Header (SHM_HEADER_SIZE bytes, host byte order; offsets fixed by ShmHeader below):
#   magic "kvdb-shm", version, slot count; the publication seqlock `pub` and what it guards
#   (commit_seq, log_end, log_salt, log_base, ckpt_gen); synced_seq; recovered; the commit mutex.
# Slots (SHM_SLOT_SIZE bytes each, after the header): one per open, held by an open-file-description
# lock on byte SHM_SLOT_LOCK_BASE + index of the file (the kernel drops it when the process dies):
#   base_gen (the oldest meta generation whose pages the open may still read), pid, seq.
#
# Invariants (tests name them by number; docs/format/shm.md):
#   O1. A commit's record is whole in the log before commit_seq and log_end say so; they, the log's
#       salt and base and ckpt_gen change only under the commit mutex, inside an odd `pub`, and
#       ckpt_gen only after the meta page of that generation is durable.
#   O2. An open registers its slot's base_gen before it reads a meta page, never above the
#       generation of a meta whose pages it may still read (its live pins' and earlier views' included);
#       a page freed by the checkpoint of generation g is reused only when every live slot's
#       base_gen is at least g (P5 in pager.pxd).
#   O3. An open that dies holding the commit mutex leaves it to the next taker (a robust mutex:
#       EOWNERDEAD), which publishes what the files hold (the meta pages, the log's header and
#       whole records) before going on; a slot whose lock byte is free is a dead open's.
#   O4. One open at a time checkpoints the data file: it holds the checkpoint lock (an exclusive
#       open-file-description lock on byte SHM_CHECKPOINT_LOCK) from before it chooses the pages
#       it writes until its meta is durable and published. An open never waits for it while
#       holding the commit mutex. An open that writes dirty pages ahead of its checkpoint (P7 in
#       pager.pxd) takes it without waiting and keeps it until a checkpoint has taken them.

from libc.stdint cimport uint32_t, uint64_t

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass

cdef enum:
    SHM_VERSION = 2                  # 2: the checkpoint lock (O4); an open of version 1 would not take it
    SHM_SLOTS = 60                   # opens at once: (SHM_SLOT_LOCK_BASE - SHM_HEADER_SIZE) // SHM_SLOT_SIZE,
                                     # so that the slots end inside the one mapped page
    SHM_SLOT_SIZE = 64
    SHM_HEADER_SIZE = 256
    SHM_SLOT_LOCK_BASE = 4096        # slot i is held by a lock on this byte + i of the file
    SHM_CHECKPOINT_LOCK = 4096 + 60  # the checkpoint lock's byte (O4): just past the slots' bytes

cdef struct ShmHeader:
    char magic[8]                    # b"kvdb-shm"
    uint32_t version                 # SHM_VERSION
    uint32_t slots                   # SHM_SLOTS
    uint64_t pub                     # seqlock over the five fields below: odd while they change
    uint64_t commit_seq              # the last commit whose record is in the log (O1)
    uint64_t log_end                 # log offset just past that record
    uint64_t log_salt                # salt of the log's current generation
    uint64_t log_base                # base seq of the log's current generation (its header)
    uint64_t ckpt_gen                # generation of the durable meta page (O1)
    uint64_t synced_seq              # highest seq known fsynced in the log (atomic maximum)
    uint64_t recovered               # 1 once a writable open ran recovery (checkpoint, fresh log)
    char pad[48]
    pthread_mutex_t mutex            # the commit mutex: process-shared, robust (O3); at offset 128

cdef struct ShmSlot:
    uint64_t base_gen                # oldest meta generation this open may still read pages of (O2)
    uint64_t seq                     # the last commit this open has applied
    uint64_t pid                     # the process (for stats and messages)
    uint64_t used                    # 1 while claimed
    char pad[32]


cdef class SharedMemory:
    cdef int fd                      # the open shm file; -1 once closed
    cdef readonly str path           # constant
    cdef ShmHeader *hdr              # the mapping (header, then SHM_SLOTS slots)
    cdef ShmSlot *slots              # hdr's slot array
    cdef Py_ssize_t size             # bytes mapped
    cdef readonly int slot           # this open's slot index, -1 before claim_slot
    cdef readonly bint owner_died    # the last lock() found the mutex's holder dead (O3)
    cdef int cpus                    # CPUs this process may run on (lock(): spin only while the opens
                                     # are at most SPIN_OPENS_PER_CPU per CPU); constant

    cdef int lock(self) except -1    # take the commit mutex (waits with the GIL released)
    cdef int unlock(self) except -1
    cdef int lock_checkpoints(self) except -1    # take the checkpoint lock (O4; waits with the GIL released)
    cdef int unlock_checkpoints(self) except -1
    cdef bint try_lock_checkpoints(self) except -1   # take it if no other open holds it (never waits)
    cdef uint64_t commit_seq(self) noexcept nogil
    cdef uint64_t pub_now(self) noexcept nogil   # the seqlock: changes with every publication
    cdef tuple published(self)       # (commit_seq, log_end, log_salt, log_base, ckpt_gen, pub), consistent
    cdef uint64_t publish(self, uint64_t commit_seq, uint64_t log_end, uint64_t log_salt, uint64_t log_base,
                          uint64_t ckpt_gen) except 0     # commit mutex held; returns the new `pub`
    cdef int set_base(self, uint64_t gen, uint64_t seq) except -1
    cdef uint64_t min_base(self, uint64_t limit) except? 0
