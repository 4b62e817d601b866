# The B+Tree engine: the Engine contract (kvdb/_core/engine.pxd) over a copy-on-write B+Tree
# (tree.pxd) in one page file (pager.pxd) and one log file. Formats: docs/format/pages.md,
# docs/format/wal.md.

from libc.stdint cimport uint32_t, uint64_t
from kvdb._core.engine cimport Engine
from kvdb._core.btree.pager cimport Pager
from kvdb._core.btree.tree cimport BTree
from kvdb._core.btree.shared cimport SharedMemory
from kvdb._core.file cimport File


cdef class BTreeEngine(Engine):
    cdef Pager pager                     # the data file's pages; constant
    cdef BTree tree                      # contents guarded by the writer lock
    cdef uint32_t page_size              # bytes per page asked for at creation; constant
    cdef Py_ssize_t cache_size           # bytes of clean pages kept in memory; constant
    cdef uint64_t checkpoint_size        # log bytes that trigger a checkpoint; constant
    cdef bint map_reads                  # read_path="mmap": pagers read clean pages from a map; constant
    cdef uint64_t log_covered            # log offset up to which this open's last checkpoint holds the
                                         # commits (a log recycled since starts again below it); writer lock
    cdef Py_ssize_t dirty_limit          # dirty pages after a commit that are written ahead of the
                                         # checkpoint (half of them, P7), or else trigger one; constant
    cdef bint spill_lock                 # this open holds the checkpoint lock for the pages it wrote
                                         # ahead (P7) until a checkpoint takes them; writer lock
    cdef object recovery                 # what recovery at open dropped (a torn tail, W2), or None; constant
    # Several opens (processes) of one database (docs/format/shm.md). All under the writer lock.
    cdef SharedMemory shm                # data.kvdb-shm, or None: alone by construction (the simulated
                                         # file system) or a read-only open that cannot write it
    cdef File data                       # the data file, shared by the current and earlier views; constant
    cdef uint64_t base_gen               # generation of the meta the current view (pager, tree) stands on
    cdef list old_views                  # [(weakref to a BTree, its base generation)]: earlier views
                                         # that pins still read
    cdef list gen_log                    # [(seq, gen)]: from commit seq on, new pins read generation gen
                                         # (trimmed to what the oldest live pin needs)
    cdef bint holding                    # this open holds the commit mutex
    cdef uint64_t seen_pub               # the shm's publication count this open has caught up with
    cdef public uint64_t rebases, caught_up   # views rebuilt after others' checkpoints; commits of others applied
    cdef public uint64_t rebases_locked       # of those rebases, the ones done holding the commit mutex

    cdef int checkpoint_locked(self, bint mirror) except -1
    cdef bint checkpoint_due(self)
    cdef int checkpoint_beside_commits(self, bint forced) except -1   # forced: even if not due (P7 hand-over)
    cdef int publish_checkpoint(self, uint64_t seq) except -1
    cdef int lock_checkpoints(self) except -1
    cdef int unlock_checkpoints(self) except -1
    cdef int spill(self) except -1
    cdef bint may_spill(self) except -1
    cdef int open_view(self, File data, str data_path, bint shared) except -1
    cdef int lock_shared_log(self) except -1
    cdef int lock_shared_log_current(self) except -1   # the commit mutex, on a rebased view
    cdef int unlock_shared_log(self) except -1
    cdef bint rebase_due(self) except -1
    cdef bint outdated(self, uint64_t gen, uint32_t salt, uint64_t base)
    cdef int repair(self) except -1
    cdef list published_records(self, uint64_t commit_seq, uint64_t log_end, uint32_t salt, uint64_t base,
                                uint64_t after, bint decode)
    cdef list apply_records(self, BTree tree, list records)
    cdef list rebase(self, uint64_t commit_seq, uint64_t log_end, uint32_t salt, uint64_t base)
    cdef uint64_t oldest_view_gen(self)
    cdef int set_base_gen(self, uint64_t gen) except -1
    cdef int publish(self, uint64_t seq) except -1
