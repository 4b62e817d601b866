# A read-only open of an LSM database following its primary (the one writable open, in
# another process or this one), after RocksDB's secondary instances: it reads the manifest's
# new edits and the log files' new records, never writes or deletes a file, and keeps the
# files its versions reach open (POSIX keeps an unlinked open file readable), so the
# primary's deletions never take a table or log from under it. Rules: follower.pyx, top.

from libc.stdint cimport uint32_t, uint64_t
from kvdb._core.file cimport File, FS
from kvdb._core.wal cimport Wal
from kvdb._core.lsm.memtable cimport Memtable
from kvdb._core.lsm.tree cimport LsmTree


cdef class LogTail:
    # One log file being followed; changed only by catch-up (the database's writer lock).
    cdef readonly uint64_t number        # wal-NNNNNN.log; constant
    cdef Wal wal                         # the file, opened read-only; constant
    cdef uint32_t salt                   # the generation its records carry (from its header); constant
    cdef uint64_t off                    # file offset after the last whole record read
    cdef uint64_t expect                 # seq of the next record in the file
    cdef uint64_t seen_size              # the file's size when it was last read (stale() compares)
    cdef Memtable mem                    # the records read from it past what the tables held


cdef class Follower:
    # Constant after open unless noted; the rest changes only in open()/catch_up(), under the
    # database's writer lock. stale() reads without a lock (GIL).
    cdef FS fs
    cdef str path                        # the database directory
    cdef LsmTree tree                    # whose `current` (and log_number, flushed_seq) it publishes
    cdef str man_path                    # the manifest being read (CURRENT names it), or None
    cdef File man_file                   # it, opened read-only (None: no manifest yet)
    cdef uint64_t man_off                # file offset after the last whole edit applied
    cdef uint64_t man_seen               # the manifest's size when it was last read (stale() compares)
    cdef dict files                      # table number -> FileMeta: the version the edits read so far make
    cdef dict tables                     # table number -> open Table of every table in `files`
    cdef list levels                     # the levels built from `files` (replaced whole, never changed)
    cdef bint levels_stale               # `files` changed since `levels` was built
    cdef uint64_t log_number             # manifest: logs below it are in the tables
    cdef uint64_t last_seq               # manifest: every commit up to it is in the tables
    cdef uint64_t next_file              # manifest: the next file number
    cdef object last_live                # manifest: keys stored at last_seq (M4), None if it says not
    cdef uint64_t live                   # keys stored at `seq`, when `counted` (L4 in tree.pyx)
    cdef bint counted                    # `live` is exact: from the manifest's last_live, then kept by
                                         # apply_record()
    cdef dict tails                      # log number -> LogTail, the logs at or above log_number read so far
    cdef list log_numbers                # the log files (>= log_number) the last directory listing found
    cdef object listed_at                # (man_path, man_off) when the directory was last listed
    cdef LogTail newest                  # the tail of the newest log (stale() watches its size), or None
    cdef Memtable empty                  # the memtable published when no log is followed; constant
    cdef readonly uint64_t seq           # the last commit applied
    cdef readonly object recovery        # a torn tail the open found in a log (Wal.recover's note), or None
    cdef bint opening                    # open() is running: logs are read with Wal.recover (W2 checks)

    cdef bint stale(self)
    cdef list catch_up(self)
    cdef int follow_manifest(self, list applied) except -1
    cdef bint read_edits(self) except -1
    cdef object follow_logs(self, list applied)
    cdef bint manifest_deleted(self) except -1
    cdef bint manifest_moved(self) except -1
    cdef int check_stop(self, LogTail tail, uint64_t size, str wpath) except -1
    cdef int apply_record(self, LogTail tail, uint64_t seq, bytes payload, str wpath, list applied) except -1
    cdef list current_levels(self)
    cdef int publish(self) except -1
