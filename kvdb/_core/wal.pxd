# The write-ahead log: one record per committed transaction. The B+Tree recycles its one log
# file after each checkpoint; the LSM starts a new file per memtable and deletes a file once
# its memtable is flushed. Format: docs/format/wal.md.
#
# File header (WAL_HEADER_SIZE bytes):
#   OFFSET SIZE
#   0      8    magic b"kvdb-wal"
#   8      4    format version (WAL_VERSION)
#   12     4    salt: random per generation; records carry it, so records left
#               over from an earlier generation never pass as current
#   16     8    base seq: the checkpoint this generation starts after
#   24     4    reserved (0)
#   28     4    crc32c of bytes [0, 28)
# Record (WAL_RECORD_HEADER_SIZE bytes, then the payload):
#   0      4    crc32c of bytes [4, WAL_RECORD_HEADER_SIZE + length)
#   4      4    length of the payload
#   8      8    seq: the commit's sequence number (base seq + 1, + 2, ...)
#   16     8    synced: the highest seq known durable when this record was written
#   24     4    salt (as in the header)
# Payload: ops until its end, each
#   op u8 (WAL_OP_PUT | WAL_OP_DELETE | WAL_OP_PUT_EXPIRES), klen varint, key,
#   [expires u64 (WAL_OP_PUT_EXPIRES: wall-clock ms)], [vlen varint, value] (puts)
#
# Invariants:
#   W1. Records are appended in seq order with no gaps; a commit is acknowledged
#       only after its record is written (and, with sync="full", fsynced).
#   W2. Recovery replays records after the meta's seq and stops at the first
#       record that fails its checks. If a later valid record claims, through
#       its `synced` field, that the failed record had been fsynced, the log is
#       damaged in the middle: CorruptionError, never a silent drop. A damaged
#       header is harmless only while no record in the file (checked with its
#       own salt and CRC) holds a commit past the meta; otherwise
#       CorruptionError naming the log. A dropped torn tail is reported
#       (recover()'s note, db.stats()["recovery"], a warning on the "kvdb" logger).
#   W3. The log is recycled (new salt, base seq = the checkpoint's seq) only
#       after the checkpoint's meta page is durable. At open (and for a new
#       file) reset() first cuts the file back to its header and fsyncs, so a
#       record past the meta is never a leftover of an earlier run.

from libc.stdint cimport uint32_t, uint64_t
from kvdb._core.file cimport File

cdef enum:
    WAL_HEADER_SIZE = 8 + 4 + 4 + 8 + 4 + 4
    WAL_VERSION = 2              # 2: WAL_OP_PUT_EXPIRES
    WAL_RECORD_HEADER_SIZE = 4 + 4 + 8 + 8 + 4
    WAL_OP_PUT = 1
    WAL_OP_DELETE = 2
    WAL_OP_PUT_EXPIRES = 3       # a put whose key expires at a wall-clock time
    WAL_BUFFER_KEEP = 16 << 20   # record buffers up to this size are kept between commits

# The payload size of [(key, value-or-None, expires)], and the payload written at p (returns its end).
cdef Py_ssize_t ops_size(list ops) except -1
cdef unsigned char *encode_ops_into(list ops, unsigned char *p) except NULL
cdef Py_ssize_t pairs_size(list keys, list values) except -1
cdef unsigned char *encode_pairs_into(list keys, list values, unsigned char *p) except NULL
cdef list pairs_as_ops(list keys, list values)
cdef object undecodable(str path, uint64_t seq)   # the CorruptionError of a whole record that does not decode
cdef list decode_checked(bytes payload)              # the ops of a payload read_after() checked
cdef tuple keys_of_checked(uint64_t seq, bytes payload)   # (seq, [keys]) of one, untracked
cdef object key_read_or_scanned(bytes payload, set reads, list ranges)   # its first key in reads or ranges, or None

cdef enum:                  # what Wal.read_at keeps of each record
    READ_PAYLOADS = 0       # every record's payload (read_records)
    READ_DECODED = 1        # the records after `after`, decoded
    READ_CHECKED = 2        # the records after `after`, payloads checked to decode

cdef class Wal:
    # Guarded by the database's writer lock unless noted.
    cdef File file               # constant
    cdef readonly str path       # constant
    cdef uint32_t salt           # current generation's salt
    cdef readonly uint64_t base_seq       # checkpoint the generation starts after
    cdef readonly uint64_t write_off      # where the next record goes
    cdef readonly uint64_t written_seq    # last seq written to the file (guarded by the writer lock)
    cdef readonly uint64_t synced_seq     # last seq known durable (guarded by `cond`)
    cdef bint sync_running       # a group-commit leader is in fsync (guarded by `cond`)
    cdef object cond             # threading.Condition for group commit
    cdef bytearray buf           # the record being written: header, then the payload encoded in place
    cdef public uint64_t fsyncs, bytes_written
    cdef public object peer_synced       # None, or a callable: the highest seq another open has fsynced
    cdef public object note_synced       # None, or a callable(seq) telling other opens what is now durable

    cdef int append_ops(self, list ops, Py_ssize_t length, uint64_t seq, list values=*) except -1
    cdef Py_ssize_t _valid_at(self, const unsigned char *d, Py_ssize_t n, Py_ssize_t off, uint64_t expect)
    cdef list read_after(self, uint32_t salt, uint64_t start, uint64_t end, uint64_t expect,
                         uint64_t after, bint decode, uint64_t *last)   # records after seq `after`:
                                                  # [(seq, ops)], or [(seq, payload)] checked to decode
    cdef object read_at(self, uint32_t salt, uint64_t start, uint64_t end, uint64_t expect, int mode,
                        uint64_t after, uint64_t *last)
