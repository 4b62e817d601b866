# The write-ahead log (see wal.pxd for the format and invariants).

cimport cython

import logging
import os
import threading

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from kvdb._core.untracked cimport untracked

from kvdb._core.coding cimport (crc32c, get_u32, get_u64, put_u32, put_u64, get_varint, put_varint,
                                varint_len)
from kvdb._core.file cimport File

from kvdb.errors import CorruptionError

WAL_MAGIC = b"kvdb-wal"
_log = logging.getLogger("kvdb")


cdef inline Py_ssize_t entry_size(bytes key, object value, uint64_t expires) noexcept:
    """Bytes of one operation's entry in a payload (value None: a delete)."""
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), vlen
    cdef Py_ssize_t size = 1 + varint_len(klen) + klen
    if value is not None:
        vlen = PyBytes_GET_SIZE(<bytes>value)
        size += varint_len(vlen) + vlen + (8 if expires else 0)
    return size


cdef inline unsigned char *encode_entry(unsigned char *p, bytes key, object value, uint64_t expires) noexcept:
    """Write one operation's entry (entry_size bytes) at p; returns its end."""
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), vlen
    if value is None:
        p[0] = WAL_OP_DELETE
    else:
        p[0] = WAL_OP_PUT_EXPIRES if expires else WAL_OP_PUT
    p = put_varint(p + 1, klen)
    memcpy(p, PyBytes_AS_STRING(key), klen)
    p += klen
    if value is not None:
        if expires:
            put_u64(p, expires)
            p += 8
        vlen = PyBytes_GET_SIZE(<bytes>value)
        p = put_varint(p, vlen)
        memcpy(p, PyBytes_AS_STRING(<bytes>value), vlen)
        p += vlen
    return p


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t ops_size(list ops) except -1:
    """Bytes of the payload for [(key, value-or-None, expires)] (expires: wall-clock ms, 0 =
    never); the callers build the ops, with bytes keys and values."""
    cdef Py_ssize_t size = 0, i
    cdef tuple op
    for i in range(len(ops)):
        op = ops[i]
        if len(op) != 3:
            raise ValueError("an operation is (key, value-or-None, expires)")
        size += entry_size(<bytes>op[0], op[1], op[2] if op[1] is not None else 0)
    return size


@cython.boundscheck(False)
@cython.wraparound(False)
cdef unsigned char *encode_ops_into(list ops, unsigned char *p) except NULL:
    """Write the payload of ops (ops_size(ops) bytes) at p; returns its end."""
    cdef Py_ssize_t i
    cdef tuple op
    for i in range(len(ops)):
        op = ops[i]
        p = encode_entry(p, <bytes>op[0], op[1], op[2] if op[1] is not None else 0)
    return p


cdef Py_ssize_t pairs_size(list keys, list values) except -1:
    """ops_size() of puts without expiry, keys[i] -> values[i] (put_many: no tuple per key)."""
    cdef Py_ssize_t size = 0, i
    if len(keys) != len(values):
        raise ValueError("as many values as keys")
    for i in range(len(keys)):
        size += entry_size(<bytes>keys[i], values[i], 0)
    return size


@cython.boundscheck(False)
@cython.wraparound(False)
cdef unsigned char *encode_pairs_into(list keys, list values, unsigned char *p) except NULL:
    """encode_ops_into() of puts without expiry, keys[i] -> values[i]: the same payload."""
    cdef Py_ssize_t i
    for i in range(len(keys)):
        p = encode_entry(p, <bytes>keys[i], values[i], 0)
    return p


cdef list pairs_as_ops(list keys, list values):
    """[(key, value, 0)] of keys[i] -> values[i]: the ops a put_many's two lists stand for."""
    return [(keys[i], values[i], 0) for i in range(len(keys))]


def encode_ops(list ops):
    """The payload of ops as bytes (what decode_ops reads back): the replication stream's
    records carry it (docs/format/replication.md)."""
    cdef Py_ssize_t n = ops_size(ops)
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    if encode_ops_into(ops, p) != p + n:
        raise AssertionError("encode_ops: payload size mismatch")
    return out


def decode_ops(bytes payload):
    """[(key, value-or-None, expires)] of a payload; ValueError if malformed. The list and its
    tuples are not tracked by the cyclic garbage collector (kvdb/_core/untracked.pxd)."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(payload)
    return decode_ops_at(p, p + PyBytes_GET_SIZE(payload))


cdef object undecodable(str path, uint64_t seq):
    return CorruptionError(f"{path}: record for commit {seq} has a valid checksum but undecodable operations",
                           path=path)


cdef struct WalOp:
    unsigned char kind               # WAL_OP_PUT, WAL_OP_DELETE or WAL_OP_PUT_EXPIRES
    const unsigned char *key         # the key's bytes, in the payload
    uint64_t klen
    const unsigned char *value       # the value's bytes (NULL for a delete)
    uint64_t vlen
    uint64_t expires                 # wall-clock ms (0: none)


cdef const unsigned char *next_op(const unsigned char *p, const unsigned char *end, WalOp *op) noexcept nogil:
    """Parse the operation at p (p < end) into *op: where the next one starts, or NULL if it is
    malformed."""
    cdef uint64_t klen, vlen
    op.kind = p[0]
    p = get_varint(p + 1, end, &klen)
    if p == NULL or (op.kind != WAL_OP_PUT and op.kind != WAL_OP_DELETE and op.kind != WAL_OP_PUT_EXPIRES) \
            or klen > <uint64_t>(end - p):
        return NULL
    op.key, op.klen = p, klen
    p += klen
    op.value, op.vlen, op.expires = NULL, 0, 0
    if op.kind == WAL_OP_DELETE:
        return p
    if op.kind == WAL_OP_PUT_EXPIRES:
        if end - p < 8:
            return NULL
        op.expires = get_u64(p)
        p += 8
        if op.expires == 0:
            return NULL
    p = get_varint(p, end, &vlen)
    if p == NULL or vlen > <uint64_t>(end - p):
        return NULL
    op.value, op.vlen = p, vlen
    return p + vlen


cdef bint ops_well_formed(const unsigned char *p, const unsigned char *end) noexcept nogil:
    """Whether decode_ops_at(p, end) would succeed, without making an object."""
    cdef WalOp op
    while p < end:
        p = next_op(p, end, &op)
        if p == NULL:
            return False
    return True


cdef list decode_ops_at(const unsigned char *p, const unsigned char *end):
    """decode_ops of the payload in [p, end). The list and its tuples are untracked by the
    cyclic collector (kvdb/_core/untracked.pxd): a caller that adds anything to them other than
    bytes, ints, None or untracked containers must copy them first."""
    cdef WalOp op
    ops = []
    while p < end:
        p = next_op(p, end, &op)
        if p == NULL:
            raise ValueError("malformed operation")
        key = PyBytes_FromStringAndSize(<const char *>op.key, op.klen)
        if op.kind == WAL_OP_DELETE:
            ops.append(untracked((key, None, 0)))
        else:
            ops.append(untracked((key, PyBytes_FromStringAndSize(<const char *>op.value, op.vlen), op.expires)))
    return untracked(ops)


cdef list decode_checked(bytes payload):
    """decode_ops of a payload read_after() checked (it decodes)."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(payload)
    return decode_ops_at(p, p + PyBytes_GET_SIZE(payload))


cdef tuple keys_of_checked(uint64_t seq, bytes payload):
    """(seq, [key of each op]) of a payload read_after() checked, untracked: what
    Database.recent keeps of a commit, without decoding its values."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(payload)
    cdef const unsigned char *end = p + PyBytes_GET_SIZE(payload)
    cdef WalOp op
    keys = []
    while p < end:
        p = next_op(p, end, &op)
        keys.append(PyBytes_FromStringAndSize(<const char *>op.key, op.klen))
    return untracked((seq, untracked(keys)))


cdef object key_read_or_scanned(bytes payload, set reads, list ranges):
    """The first key the ops of a payload read_after() checked write that is in `reads` or
    inside a range of `ranges` [(lo, hi)] (None: unbounded); None if no key is. A transaction
    that read a few keys and scanned nothing (a cache write's) is checked without an object
    per key."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(payload)
    cdef const unsigned char *end = p + PyBytes_GET_SIZE(payload)
    cdef WalOp op
    cdef bint by_bytes = not ranges and len(reads) <= 8
    cdef bytes r
    while p < end:
        p = next_op(p, end, &op)
        if by_bytes:
            for r in reads:
                if <uint64_t>PyBytes_GET_SIZE(r) == op.klen and memcmp(PyBytes_AS_STRING(r), op.key, op.klen) == 0:
                    return r
            continue
        key = PyBytes_FromStringAndSize(<const char *>op.key, op.klen)
        if key in reads:
            return key
        for lo, hi in ranges:
            if (lo is None or key >= lo) and (hi is None or key < hi):
                return key
    return None


cdef Py_ssize_t _self_valid_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t off, uint64_t lo, uint64_t hi):
    """Payload length of a record at off that is valid under its own salt (any generation)
    with lo <= seq <= hi, else -1. The cheap field checks come before the CRC."""
    cdef Py_ssize_t length
    cdef uint64_t seq
    if off + WAL_RECORD_HEADER_SIZE > n:
        return -1
    seq = get_u64(d + off + 8)
    if seq < lo or seq > hi or get_u64(d + off + 16) >= seq:
        return -1
    length = get_u32(d + off + 4)
    if length > n - off - WAL_RECORD_HEADER_SIZE:
        return -1
    if get_u32(d + off) != crc32c(d + off + 4, WAL_RECORD_HEADER_SIZE - 4 + length):
        return -1
    return length


cdef class Wal:
    def __init__(self, File file, str path):
        self.file = file
        self.path = path
        self.cond = threading.Condition(threading.Lock())
        self.buf = bytearray()
        self.fsyncs = 0
        self.bytes_written = 0
        self.sync_running = False

    # -- recovery --------------------------------------------------------

    def recover(self, uint64_t meta_seq, bint recycled=True):
        """(records, note): the records [(seq, payload)] to replay after meta_seq (W2), and a
        note {"log", "offset", "dropped": "torn tail", "first_lost_seq"} when recovery dropped
        a torn tail, else None. Leaves the log positioned for reset(); the caller checkpoints
        and resets after replay. `recycled`: the file is reused in place, so bytes of older
        generations may follow the header (the B+Tree's log); False for a file that only ever
        holds one generation (the LSM's logs), where any byte after a damaged header is a
        record the damage may have hidden."""
        data = self.file.read_at(0, self.file.size())
        cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = len(data), off, length, probe
        cdef uint64_t seq, expect, hi
        cdef bint header_ok = (n >= WAL_HEADER_SIZE and data[0:8] == WAL_MAGIC
                               and get_u32(d + 28) == crc32c(d, 28))
        note = None
        if header_ok:
            if get_u32(d + 8) == 1:
                raise CorruptionError(f"{self.path}: log version 1 (written before keys could expire) is no "
                                      f"longer read; this kvdb reads version {WAL_VERSION}", path=self.path, offset=8)
            if get_u32(d + 8) != WAL_VERSION:
                raise CorruptionError(f"{self.path}: unsupported log version {get_u32(d + 8)}", path=self.path,
                                      offset=8)
            self.salt = get_u32(d + 12)
            self.base_seq = get_u64(d + 16)
            if self.base_seq > meta_seq:
                raise CorruptionError(
                    f"{self.path}: the log starts after commit {self.base_seq} but the data file (B+Tree meta "
                    f"page; LSM manifest and earlier logs) holds only up to commit {meta_seq}; commits "
                    f"{meta_seq + 1}..{self.base_seq} are missing (a damaged meta page, manifest record or log?)",
                    path=self.path, offset=16)
        else:
            # A damaged header (bad magic or CRC, zeroed, torn): no salt to scan with. Whether it
            # hid commits is decided by the witness probe below.
            self.salt = 0
            self.base_seq = meta_seq
        records = []
        off = WAL_HEADER_SIZE
        expect = self.base_seq + 1
        while self.salt or header_ok:
            length = self._valid_at(d, n, off, expect)
            if length < 0:
                break
            seq = get_u64(d + off + 8)
            if seq > meta_seq:
                records.append((seq, data[off + WAL_RECORD_HEADER_SIZE:off + WAL_RECORD_HEADER_SIZE + length]))
            off += WAL_RECORD_HEADER_SIZE + length
            expect += 1
        if expect <= meta_seq:
            expect = meta_seq + 1        # the first commit the data file does not hold
        if not header_ok:
            # W2, damaged header: every record past the meta is written after a durable reset
            # (W3: the header it follows was fsynced and the file cut back at open), so a crash
            # never leaves one behind a torn header. A record valid under its own salt and CRC
            # (any generation) with a commit past the meta means the damage hid commits. No
            # record's seq is above meta_seq + (records that fit in the file).
            hi = meta_seq + <uint64_t>(n // WAL_RECORD_HEADER_SIZE) + 1
            for probe in range(off, n - WAL_RECORD_HEADER_SIZE + 1):
                length = _self_valid_at(d, n, probe, expect, hi)
                if length >= 0:
                    seq = get_u64(d + probe + 8)
                    hidden = ("the records after it are intact; only the header is damaged" if seq == expect
                              else f"commit {expect} was lost with the damaged bytes" if seq == expect + 1
                              else f"commits {expect}..{seq - 1} were lost with the damaged bytes")
                    raise CorruptionError(
                        f"{self.path}: log header at offset 0 is damaged, but the log holds commit {seq} at "
                        f"offset {probe}, after the last checkpointed commit {meta_seq}: {hidden}",
                        path=self.path, offset=0)
            if not recycled and n > WAL_HEADER_SIZE:
                # A log of one generation had its header durable before its first record (the
                # LSM: M3), and the file only grows by records: bytes after a damaged header were
                # written by commits, even where no record head is left whole (a record longer
                # than the damage, or every record zeroed with the header) to say which.
                raise CorruptionError(
                    f"{self.path}: log header at offset 0 is damaged and {n - WAL_HEADER_SIZE} bytes of "
                    f"records follow it, none of them whole: commits after {meta_seq} may be lost with "
                    "the damaged bytes", path=self.path, offset=0)
        # W2: a torn tail is expected after a crash; a valid later record that saw
        # the failed one as durable means the middle of the log is damaged.
        cdef bint later = False
        for probe in range(off + 1, n - WAL_RECORD_HEADER_SIZE + 1):
            if get_u32(d + probe + 24) != self.salt or not self.salt and not header_ok:
                continue
            length = self._valid_at(d, n, probe, 0)
            if length >= 0 and get_u64(d + probe + 8) >= expect:
                if get_u64(d + probe + 16) >= expect:
                    raise CorruptionError(
                        f"{self.path}: log record for commit {expect} at offset {off} is damaged, but commit "
                        f"{get_u64(d + probe + 8)} at offset {probe} was written after it was durable",
                        path=self.path, offset=off)
                later = True
        if later or self._torn_at(data, off, expect):
            note = {"log": self.path, "offset": off, "dropped": "torn tail", "first_lost_seq": expect}
            _log.warning("%s: recovery dropped a torn tail: the record at offset %d (commit %d and any after it) "
                         "is incomplete or damaged; commits up to %d were recovered (W2 allows this only for "
                         "commits not yet durable)", self.path, off, expect, expect - 1)
        self.write_off = off
        self.written_seq = expect - 1
        self.synced_seq = expect - 1
        return records, note

    def _torn_at(self, bytes data, Py_ssize_t off, uint64_t expect):
        """Whether the bytes where the scan stopped belong to this generation: a record head
        carrying its salt or the expected seq, or a record head of zeros (a write whose data
        never landed, or a zeroed record). Records of an older generation (B+Tree) carry other
        salts and seqs, and a head's seq and synced fields hold at most 7 zero bytes in a row,
        so only a value with a run of 28 zero bytes could pass for one."""
        cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = len(data)
        if off + WAL_RECORD_HEADER_SIZE > n:
            return False
        if (self.salt and get_u32(d + off + 24) == self.salt) or get_u64(d + off + 8) == expect:
            return True
        return data.count(0, off, off + WAL_RECORD_HEADER_SIZE) == WAL_RECORD_HEADER_SIZE

    cdef Py_ssize_t _valid_at(self, const unsigned char *d, Py_ssize_t n, Py_ssize_t off, uint64_t expect):
        """Payload length of a valid record at off (seq == expect unless expect is 0), else -1."""
        cdef Py_ssize_t length
        if off + WAL_RECORD_HEADER_SIZE > n:
            return -1
        length = get_u32(d + off + 4)
        if length > n - off - WAL_RECORD_HEADER_SIZE:
            return -1
        if get_u32(d + off + 24) != self.salt:
            return -1
        if expect and get_u64(d + off + 8) != expect:
            return -1
        if get_u32(d + off) != crc32c(d + off + 4, WAL_RECORD_HEADER_SIZE - 4 + length):
            return -1
        return length

    def reset(self, uint64_t base_seq, bint fresh=False):
        """Start a new generation after a durable checkpoint at base_seq (W3). With `fresh` (at
        open, and for a new LSM file) the file is first cut back to its header, durably, so no
        record of an earlier run (a torn tail's leftovers) can follow the new header."""
        if fresh and self.file.size() > WAL_HEADER_SIZE:
            self.file.truncate(WAL_HEADER_SIZE)
            self.file.sync()
            self.fsyncs += 1
        header = bytearray(WAL_HEADER_SIZE)
        header[0:8] = WAL_MAGIC
        cdef unsigned char *h = <unsigned char *>(<char *>header)
        salt = int.from_bytes(os.urandom(4), "little")
        if salt == self.salt:
            salt ^= 1
        put_u32(h + 8, WAL_VERSION)
        put_u32(h + 12, salt)
        put_u64(h + 16, base_seq)
        put_u32(h + 28, crc32c(h, 28))
        self.file.write_at(0, bytes(header))
        self.file.sync()
        self.fsyncs += 1
        self.salt = salt
        self.base_seq = base_seq
        self.write_off = WAL_HEADER_SIZE
        with self.cond:
            self.written_seq = base_seq
            if base_seq > self.synced_seq:
                self.synced_seq = base_seq
            self.cond.notify_all()

    # -- several opens of one log (the B+Tree's processes) -------------------

    def read_header(self):
        """(salt, base_seq) of the header now in the file; None if it is not a valid header."""
        data = self.file.read_at(0, WAL_HEADER_SIZE)
        cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
        if len(data) < WAL_HEADER_SIZE or data[0:8] != WAL_MAGIC or get_u32(d + 28) != crc32c(d, 28) \
                or get_u32(d + 8) != WAL_VERSION:
            return None
        return get_u32(d + 12), get_u64(d + 16)

    def read_records(self, uint32_t salt, uint64_t start, uint64_t end, uint64_t expect):
        """The records [(seq, payload)] in bytes [start, end) of the file, which another open
        appended under `salt`, the first with seq `expect`; None if one is not valid there (the
        log was recycled meanwhile: the caller looks again). end 0: as far as records are valid
        (repairing after an open that died mid-commit); then returns (records, end)."""
        cdef uint64_t last
        return self.read_at(salt, start, end, expect, READ_PAYLOADS, 0, &last)

    cdef list read_after(self, uint32_t salt, uint64_t start, uint64_t end, uint64_t expect,
                         uint64_t after, bint decode, uint64_t *last):
        """read_records(salt, start, end, expect) (end not 0), keeping the records after seq
        `after`: what catching up with other opens applies. With `decode`, [(seq, ops)] decoded
        straight from the read buffer; else [(seq, payload)], each payload checked to decode
        (decode_checked) but not decoded, so that a commit holding the commit mutex makes no
        object per operation (keys_of_checked, key_read_or_scanned). `last` gets the seq of the
        last valid record (expect - 1 if none). CorruptionError if a record whose checksum is
        valid does not decode."""
        return self.read_at(salt, start, end, expect, READ_DECODED if decode else READ_CHECKED, after, last)

    cdef object read_at(self, uint32_t salt, uint64_t start, uint64_t end, uint64_t expect, int mode,
                        uint64_t after, uint64_t *last):
        cdef bint scan = end == 0
        cdef uint64_t stop = end if not scan else self.file.size()
        last[0] = expect - 1
        if stop < start:
            return None
        # Read straight into a bytes object: catching up with other opens does this per look.
        cdef Py_ssize_t want = stop - start, got
        data = PyBytes_FromStringAndSize(NULL, want)
        got = self.file.pread(<unsigned char *>PyBytes_AS_STRING(data), want, start) if want else 0
        if got < want:
            data = data[:got]
        cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
        cdef const unsigned char *payload
        cdef Py_ssize_t n = len(data), off = 0, length
        cdef uint32_t saved = self.salt
        records = []
        self.salt = salt
        try:
            while off < n:
                length = self._valid_at(d, n, off, expect)
                if length < 0:
                    if scan:
                        break
                    return None
                payload = d + off + WAL_RECORD_HEADER_SIZE
                if mode == READ_PAYLOADS:
                    records.append((expect, data[off + WAL_RECORD_HEADER_SIZE:off + WAL_RECORD_HEADER_SIZE + length]))
                elif expect <= after:
                    pass
                elif mode == READ_DECODED:
                    try:
                        records.append(untracked((expect, decode_ops_at(payload, payload + length))))
                    except ValueError:
                        raise undecodable(self.path, expect) from None
                else:
                    if not ops_well_formed(payload, payload + length):
                        raise undecodable(self.path, expect)
                    records.append(untracked((expect, PyBytes_FromStringAndSize(<const char *>payload, length))))
                last[0] = expect
                off += WAL_RECORD_HEADER_SIZE + length
                expect += 1
        finally:
            self.salt = saved
        if scan:
            return records, start + off
        return records

    def adopt(self, uint32_t salt, uint64_t base_seq, uint64_t write_off, uint64_t written_seq):
        """Take the log's state as another open left it (its generation, where the next record goes)."""
        self.salt = salt
        self.base_seq = base_seq
        self.write_off = write_off
        self.written_seq = written_seq          # the writer lock guards it, as in append_ops
        if self.peer_synced is not None:
            peer = self.peer_synced()
            if peer > self.synced_seq:          # another open's fsync covered more: tell waiters
                with self.cond:
                    if peer > self.synced_seq:
                        self.synced_seq = min(peer, written_seq)
                    self.cond.notify_all()

    def shrink(self):
        """Cut the file back to its header (clean close): every record is checkpointed and
        stale, so this frees the space without changing what recovery would find."""
        if self.write_off == WAL_HEADER_SIZE and self.file.size() > WAL_HEADER_SIZE:
            self.file.truncate(WAL_HEADER_SIZE)
            self.file.sync()
            self.fsyncs += 1

    # -- appending -------------------------------------------------------

    cdef int append_ops(self, list ops, Py_ssize_t length, uint64_t seq, list values=None) except -1:
        """Write one record of ops (their payload is `length` bytes, from ops_size) to the OS
        (W1); with `values`, of the puts keys `ops` -> `values` (pairs_size). The payload is
        encoded straight into the record buffer, which is kept between commits: no allocation
        and no copy per commit. The caller holds the writer lock."""
        cdef Py_ssize_t total = WAL_RECORD_HEADER_SIZE + length
        cdef unsigned char *end
        if length > 0xFFFFFFFF:
            raise ValueError("transaction too large for one log record (4 GiB)")
        if <Py_ssize_t>len(self.buf) < total:
            self.buf = bytearray(max(total, 2 * len(self.buf), 4096))
        cdef unsigned char *b = <unsigned char *>(<char *>self.buf)
        if values is None:
            end = encode_ops_into(ops, b + WAL_RECORD_HEADER_SIZE)
        else:
            end = encode_pairs_into(ops, values, b + WAL_RECORD_HEADER_SIZE)
        if end != b + total:
            raise AssertionError("ops_size disagrees with the encoded payload")
        put_u32(b + 4, <uint32_t>length)
        put_u64(b + 8, seq)
        put_u64(b + 16, self.synced_seq)
        put_u32(b + 24, self.salt)
        put_u32(b, crc32c(b + 4, total - 4))
        self.file.pwrite(b, total, self.write_off)
        self.write_off += total
        self.bytes_written += total
        self.written_seq = seq
        if len(self.buf) > WAL_BUFFER_KEEP:
            self.buf = bytearray()       # a huge transaction's buffer is not kept
        return 0

    def sync_to(self, uint64_t seq):
        """Return once every record up to seq is durable. Concurrent callers share
        one fsync: the first becomes the leader, the rest wait for its result."""
        cond = self.cond
        with cond:
            while self.synced_seq < seq:
                if self.peer_synced is not None and self.peer_synced() >= seq:
                    self.synced_seq = seq    # another open's fsync covered it
                    break
                if self.sync_running:
                    cond.wait()
                    continue
                self.sync_running = True
                cond.release()
                try:
                    target = self.written_seq
                    self.file.sync()
                finally:
                    cond.acquire()
                    self.sync_running = False
                    cond.notify_all()
                self.fsyncs += 1
                if target > self.synced_seq:
                    self.synced_seq = target
                if self.note_synced is not None:
                    self.note_synced(target)

    def mark_synced(self, uint64_t seq):
        with self.cond:
            if seq > self.synced_seq:
                self.synced_seq = seq
            if self.note_synced is not None:
                self.note_synced(seq)
            self.cond.notify_all()

    def close(self):
        self.file.close()
