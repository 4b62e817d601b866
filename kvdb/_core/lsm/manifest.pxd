# The manifest: a log of version edits describing which SSTables make up each
# level of the LSM tree. Format: docs/format/manifest.md.
#
# MANIFEST-NNNNNN:
#   header   magic b"kvdb-man" (8), version u32 (MANIFEST_VERSION), crc32c of [0, 12) u32
#   record*  crc u32 (crc32c of length + payload), length u32, payload = one edit
# Edit payload: fields until its end, each a tag byte then:
#   EDIT_LOG_NUMBER  varint     WAL files below this number are no longer needed
#   EDIT_NEXT_FILE   varint     the next file number to hand out
#   EDIT_LAST_SEQ    varint     every commit up to this seq is in the tables
#   EDIT_ADD_FILE    level varint, number varint, size varint, smallest (varint len + bytes),
#                    largest (varint len + bytes), min_seq varint, max_seq varint, entries varint
#   EDIT_DELETE_FILE level varint, number varint
#   EDIT_LIVE_KEYS   varint     keys stored at last_seq (expired or not; L4 in tree.pyx): with
#                               last_seq, from version 2 on, while the engine counts (M4)
# CURRENT holds "MANIFEST-NNNNNN\n": the manifest in use. A new manifest is
# written whole (one edit with the full state), fsynced, and made current by
# writing CURRENT.tmp, fsync, rename over CURRENT, fsync of the directory.
#
# Invariants:
#   M1. An edit is appended and fsynced before the change it describes is used
#       (before WAL files it makes obsolete are deleted, before compaction inputs
#       are deleted).
#   M2. Recovery applies every whole record; a record cut short at the end of
#       the file is a torn append (its change never took effect) and is ignored;
#       a damaged record with more bytes after it is CorruptionError.
#   M3. Every new log file is announced by an edit (at least next_file), appended
#       after the log's header is durable and before any commit goes into it: a
#       read-only open following the writer watches the manifest's size, lists
#       the directory when it grows, and so never misses a log.
#   M4. While the engine keeps the count of keys (key_count="exact", the
#       default), every edit that sets last_seq also sets live_keys, the number
#       of keys stored at last_seq (version 2 on): recovery starts its count
#       there. An edit without it means "not counted": an open for writing with
#       key_count="exact" counts once with a scan.

cdef enum:
    MANIFEST_HEADER_SIZE = 8 + 4 + 4
    MANIFEST_VERSION = 2                 # what this code writes
    MANIFEST_OLDEST_VERSION = 1          # the oldest it reads: version 1 has no EDIT_LIVE_KEYS, and an
                                         # open counts the keys once with a scan (tree.pyx load())
    MANIFEST_RECORD_HEADER_SIZE = 4 + 4
    EDIT_LOG_NUMBER = 1
    EDIT_NEXT_FILE = 2
    EDIT_LAST_SEQ = 3
    EDIT_ADD_FILE = 4
    EDIT_DELETE_FILE = 5
    EDIT_LIVE_KEYS = 6
    NUM_LEVELS = 7
