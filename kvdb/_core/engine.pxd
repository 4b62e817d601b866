# The contract between the database (database.pyx: log, commit path, pins, transactions,
# expiry, the background thread) and a storage engine, after bbolt's freelist: one interface,
# one implementation per engine (btree/engine.pyx, lsm/engine.pyx), no `if engine` branches
# above it. The Database calls only what is declared here.
#
# Locks: every method that changes state runs under the database's writer lock (`lock`) unless
# it says otherwise; reads run without it, retrying when the database's write generation moved
# (see database.pyx) or through a Pin, whose version the engine keeps unchanged.

from libc.stdint cimport uint32_t, uint64_t
from kvdb._core.file cimport FS
from kvdb._core.wal cimport Wal


cdef class Pin:
    """Keeps one committed version readable: an engine neither changes nor reuses what it
    reaches. Reads through it judge expiries at `now_ms`."""
    cdef dict pins                       # the database's live pins, seq -> count (the same dict; GIL)
    cdef readonly uint64_t seq           # the committed version pinned
    cdef readonly uint32_t root          # B+Tree: root page of that version (0: empty); LSM: unused
    cdef readonly uint64_t entries       # keys in that version, when `counted`
    cdef readonly uint64_t expiring      # B+Tree: keys with an expiry in that version (some may be expired)
    cdef readonly bint counted           # `entries` is the exact count of the keys stored in that version
                                         # (len(): a key whose expiry has passed counts until it is deleted)
    cdef readonly uint64_t now_ms        # wall-clock ms at which the pin was taken
    cdef object view                     # the engine's handle of what the version is read through: B+Tree,
                                         # the tree (and pager) another process's checkpoint may have
                                         # replaced; LSM read-only open, the version it follows
    cdef bint released                   # release() ran

    cdef Pin copy(self)


cdef class EngineCursor:
    """An ordered cursor over one version, as an engine's cursor() returns it. Subclasses also
    give next_key_expires() (the expiry sweep)."""
    cdef public uint64_t last_expires    # expiry of the entry returned last (0 = none)
    cdef public uint64_t min_expires     # smallest non-zero expiry among the entries returned (0 = none)

    cdef object next_item(self)          # the next live (key, value), or None at the end
    cpdef int finish(self) except -1     # stop early: drop the pages or sources and the pin


cdef class Engine:
    # Set by the database at open, before recover(); constant after.
    cdef FS fs                           # the file system every file goes through
    cdef readonly str path               # the database directory
    cdef object lock                     # the database's writer lock (the same object)
    cdef dict pins                       # the database's live pins, seq -> count (the same dict; GIL)
    cdef object wake                     # the database's threading.Event that wakes the background thread
    cdef object host                     # weakref.ref to the Database: failure state, for maintenance
    cdef public object thread            # the database's background thread (set after open)
    cdef readonly bint first_open        # no other open held the database when this one took LOCK: it
                                         # set up what opens share (constant)
    cdef readonly bint detached          # a read-only open that cannot write LOCK (read-only media, no
                                         # permission): it reads the files alone; writers are kept out
    cdef readonly bint read_only         # opened for reading: recover() replays the log in memory and the
                                         # engine never writes a file (its files are opened O_RDONLY)
    # Set by the engine.
    cdef uint64_t seq                    # the last commit applied (writer lock)
    cdef public uint64_t write_gen       # odd while a commit or checkpoint changes what unpinned readers
                                         # see: they retry (changed under the writer lock)
    cdef Wal wal                         # the log taking commits: appended under `lock`, fsynced by group commit
    cdef readonly bint blind_deletes     # a delete needs no read first (LSM tombstones); constant
    cdef public object maint             # held by background maintenance; close waits for it; constant
    cdef object __weakref__

    # opening: open or create the files and replay the log; returns the last committed seq
    cdef object recover(self)
    # reads: a pinned version, or the newest one (`seq`, no pin: the caller retries)
    cdef int fill_pin(self, Pin p) except -1
    cdef object get(self, Pin p, bytes key)
    cdef object get_entry(self, Pin p, bytes key)
    cdef object get_newest(self, uint64_t seq, bytes key, uint64_t now)
    cdef object entry_newest(self, uint64_t seq, bytes key)
    cdef object cursor(self, Pin p, object keep, object lo, object hi, bint reverse, uint64_t now)
    cdef bint has_expiring(self)
    cdef object live_count(self)
    # other processes (several opens of one database)
    cdef bint stale(self)                # others committed since this open last caught up (no lock; cheap)
    cdef list catch_up(self)             # writer lock held, write_gen odd: apply others' commits;
                                         # returns [(seq, keys)], keys None when not known (validation
                                         # then treats every key as changed)
    cdef list read_published(self)       # writer lock held: others' commits checked, not decoded or
                                         # applied, [(seq, payload)]; None: catch_up() must apply them
                                         # now (a rebase)
    cdef int apply_published(self, list records) except -1   # writer lock held, write_gen odd: apply them
    cdef int begin_commit(self) except -1    # writer lock held: take the lock commits of every process share
    cdef int end_commit(self) except -1      # publish what this commit appended and let that lock go
    # the commit path
    cdef int before_commit(self) except -1
    cdef int apply(self, list ops, uint64_t seq) except -1
    cdef int apply_pairs(self, list keys, list values, uint64_t seq) except -1   # puts keys[i] -> values[i]
    cdef int published(self) except -1
    cdef uint64_t max_live(self)
    cdef uint64_t min_live(self)
    cdef int committed(self) except -1
    # maintenance
    cdef int checkpoint(self) except -1
    cdef int compact(self, object lo, object hi) except -1
    cdef int maintain(self) except -1
    cdef object verify(self)
    cdef bint backup(self, Pin p, str dest) except -1
    cdef dict stats(self)
    cdef dict creation_options(self)
    cdef int prepare_close(self) except -1
    cdef int close_locked(self, bint last) except -1     # `last`: no other open of the database remains
    cdef int release(self) except -1
    cdef int forget(self) except -1      # after fork(), in the child: drop inherited descriptors that
                                         # hold shared state (locks), without changing that state
