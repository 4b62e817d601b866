# Manifest encoding, decoding and the atomic switch (see manifest.pxd).

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t, uint64_t

from kvdb._core.coding cimport crc32c, get_u32, put_u32, get_varint, put_varint
from kvdb._core.file cimport File, FS

from kvdb.errors import CorruptionError

MANIFEST_MAGIC = b"kvdb-man"
CURRENT = "CURRENT"


class FileMeta:
    """One table of a version: where it sits and what it covers."""
    __slots__ = ("level", "number", "size", "smallest", "largest", "min_seq", "max_seq", "entries", "table")

    def __init__(self, level, number, size, smallest, largest, min_seq, max_seq, entries):
        self.level = level          # LSM level, 0..NUM_LEVELS-1
        self.number = number        # file number: NNNNNN.sst
        self.size = size            # bytes
        self.smallest = smallest    # smallest user key
        self.largest = largest      # largest user key
        self.min_seq = min_seq
        self.max_seq = max_seq
        self.entries = entries
        self.table = None           # the open Table (the engine's table cache), not encoded

    def __repr__(self):
        return f"FileMeta(L{self.level} #{self.number} {self.size}B {self.smallest!r}..{self.largest!r})"


cdef bytes varint(uint64_t v):
    cdef unsigned char buf[10]
    cdef unsigned char *q = put_varint(buf, v)
    return PyBytes_FromStringAndSize(<char *>buf, q - buf)


def encode_edit(log_number=None, next_file=None, last_seq=None, added=(), deleted=(), live_keys=None):
    """Payload of one version edit."""
    if live_keys is not None and last_seq is None:
        raise ValueError("live_keys is the count at last_seq (M4)")
    parts = []
    if log_number is not None:
        parts += [bytes([EDIT_LOG_NUMBER]), varint(log_number)]
    if next_file is not None:
        parts += [bytes([EDIT_NEXT_FILE]), varint(next_file)]
    if last_seq is not None:
        parts += [bytes([EDIT_LAST_SEQ]), varint(last_seq)]
    if live_keys is not None:
        parts += [bytes([EDIT_LIVE_KEYS]), varint(live_keys)]
    for level, number in deleted:
        parts += [bytes([EDIT_DELETE_FILE]), varint(level), varint(number)]
    for f in added:
        parts += [bytes([EDIT_ADD_FILE]), varint(f.level), varint(f.number), varint(f.size),
                  varint(len(f.smallest)), f.smallest, varint(len(f.largest)), f.largest,
                  varint(f.min_seq), varint(f.max_seq), varint(f.entries)]
    return b"".join(parts)


def decode_edit(bytes payload):
    """dict with log_number/next_file/last_seq (when present), added [FileMeta], deleted
    [(level, number)]; ValueError if malformed."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(payload)
    cdef const unsigned char *end = p + PyBytes_GET_SIZE(payload)
    cdef uint64_t v[8]
    cdef uint64_t n
    cdef int tag, i
    edit = {"added": [], "deleted": []}
    while p < end:
        tag = p[0]
        p += 1
        if tag in (EDIT_LOG_NUMBER, EDIT_NEXT_FILE, EDIT_LAST_SEQ, EDIT_LIVE_KEYS):
            p = get_varint(p, end, &v[0])
            if p == NULL:
                raise ValueError("truncated field")
            edit[{EDIT_LOG_NUMBER: "log_number", EDIT_NEXT_FILE: "next_file", EDIT_LAST_SEQ: "last_seq",
                  EDIT_LIVE_KEYS: "live_keys"}[tag]] = v[0]
        elif tag == EDIT_DELETE_FILE:
            p = get_varint(p, end, &v[0])
            if p != NULL:
                p = get_varint(p, end, &v[1])
            if p == NULL or v[0] >= NUM_LEVELS:
                raise ValueError("bad delete-file field")
            edit["deleted"].append((v[0], v[1]))
        elif tag == EDIT_ADD_FILE:
            keys = []
            for i in range(3):
                p = get_varint(p, end, &v[i])
                if p == NULL:
                    raise ValueError("bad add-file field")
            for i in range(2):
                p = get_varint(p, end, &n)
                if p == NULL or n > <uint64_t>(end - p):
                    raise ValueError("bad add-file key")
                keys.append(PyBytes_FromStringAndSize(<const char *>p, n))
                p += n
            for i in range(3, 6):
                p = get_varint(p, end, &v[i])
                if p == NULL:
                    raise ValueError("bad add-file field")
            if v[0] >= NUM_LEVELS:
                raise ValueError("bad level")
            edit["added"].append(FileMeta(v[0], v[1], v[2], keys[0], keys[1], v[3], v[4], v[5]))
        else:
            raise ValueError(f"unknown tag {tag}")
    return edit


def manifest_name(uint64_t number):
    return "MANIFEST-%06d" % number


cdef class ManifestWriter:
    """Appends edits to the current manifest (the caller serialises calls)."""
    cdef File file
    cdef readonly str path
    cdef readonly uint64_t number
    cdef readonly uint64_t size

    def __init__(self, File file, str path, uint64_t number, uint64_t size):
        self.file = file
        self.path = path
        self.number = number
        self.size = size

    def append(self, bytes payload):
        """Write one record and fsync (M1)."""
        rec = bytearray(MANIFEST_RECORD_HEADER_SIZE + len(payload))
        cdef unsigned char *r = <unsigned char *>(<char *>rec)
        put_u32(r + 4, <uint32_t>len(payload))
        rec[MANIFEST_RECORD_HEADER_SIZE:] = payload
        put_u32(r, crc32c(r + 4, len(rec) - 4))
        self.file.write_at(self.size, bytes(rec))
        self.file.sync()
        self.size += len(rec)

    def close(self):
        self.file.close()


def create_manifest(FS fs, str dirpath, uint64_t number, bytes snapshot_edit):
    """Write MANIFEST-number holding one edit with the whole state, fsync it, and switch
    CURRENT to it atomically (write CURRENT.tmp, fsync, rename, fsync the directory).
    Returns the ManifestWriter for further edits."""
    import os
    name = manifest_name(number)
    path = os.path.join(dirpath, name)
    f = fs.open(path, True)
    header = bytearray(MANIFEST_HEADER_SIZE)
    header[0:8] = MANIFEST_MAGIC
    cdef unsigned char *h = <unsigned char *>(<char *>header)
    put_u32(h + 8, MANIFEST_VERSION)
    put_u32(h + 12, crc32c(h, 12))
    f.truncate(0)
    f.write_at(0, bytes(header))
    w = ManifestWriter(f, path, number, MANIFEST_HEADER_SIZE)
    w.append(snapshot_edit)                  # fsyncs
    tmp = os.path.join(dirpath, CURRENT + ".tmp")
    cf = fs.open(tmp, True)
    cf.truncate(0)
    cf.write_at(0, (name + "\n").encode())
    cf.sync()
    cf.close()
    fs.rename(tmp, os.path.join(dirpath, CURRENT))
    fs.sync_dir(dirpath)
    return w


def current_manifest(FS fs, str dirpath):
    """The path of the manifest CURRENT names, or None when there is no CURRENT; CorruptionError
    when CURRENT does not name an existing manifest."""
    import os
    cur = os.path.join(dirpath, CURRENT)
    if not fs.exists(cur):
        return None
    cf = fs.open_read(cur)
    text = cf.read_at(0, 256)
    cf.close()
    try:
        name = text.decode("ascii")
    except UnicodeDecodeError:
        name = ""
    if not name.endswith("\n") or not name.startswith("MANIFEST-") or not name[9:-1].isdigit():
        raise CorruptionError(f"{cur}: does not name a manifest ({text[:40]!r})", path=cur, offset=0)
    name = name[:-1]
    path = os.path.join(dirpath, name)
    if not fs.exists(path):
        raise CorruptionError(f"{cur}: names {name}, which does not exist", path=cur, offset=0)
    return path


def manifest_number(str path):
    """The number in a manifest's file name."""
    import os
    return int(os.path.basename(path)[9:])


def read_manifest(FS fs, str dirpath):
    """(manifest number, [edit dicts], size) of the manifest CURRENT names, or None when
    there is no CURRENT. CorruptionError names the file and offset of any damage (M2)."""
    path = current_manifest(fs, dirpath)
    if path is None:
        return None
    f = fs.open_read(path)
    data = f.read_at(0, f.size())
    f.close()
    check_header(data, path)
    edits, off = read_edits(data[MANIFEST_HEADER_SIZE:], MANIFEST_HEADER_SIZE, path)
    if not edits:
        raise CorruptionError(f"{path}: manifest holds no complete edit", path=path, offset=MANIFEST_HEADER_SIZE)
    return manifest_number(path), edits, off


def check_header(bytes data, str path):
    """The version of the manifest header data starts with; CorruptionError unless it is valid
    and of a version this code reads."""
    cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
    if len(data) < MANIFEST_HEADER_SIZE or data[0:8] != MANIFEST_MAGIC or get_u32(d + 12) != crc32c(d, 12):
        raise CorruptionError(f"{path}: bad manifest header", path=path, offset=0)
    cdef uint32_t version = get_u32(d + 8)
    if version < MANIFEST_OLDEST_VERSION or version > MANIFEST_VERSION:
        raise CorruptionError(f"{path}: unsupported manifest version {version}", path=path, offset=8)
    return version


def read_edits(bytes data, uint64_t base, str path):
    """([edit dicts], end) of the whole records in data, the manifest's bytes from file offset
    `base` on; end is the file offset after the last whole record. A record cut short by the
    end of data, or failing its checksum as the last bytes of data, ends the scan (M2: a torn
    append, or one still being written); a damaged record with bytes after it, or one that does
    not decode, is CorruptionError naming the file and offset."""
    cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = len(data), off = 0, length
    edits = []
    while off < n:
        if off + MANIFEST_RECORD_HEADER_SIZE > n:
            break                                        # torn append
        length = get_u32(d + off + 4)
        if off + MANIFEST_RECORD_HEADER_SIZE + length > n:
            break                                        # torn append
        if get_u32(d + off) != crc32c(d + off + 4, 4 + length):
            if off + MANIFEST_RECORD_HEADER_SIZE + length == n:
                break                                    # the last record, torn in place
            raise CorruptionError(f"{path}: manifest record at offset {base + off} fails its checksum",
                                  path=path, offset=base + off)
        try:
            rec = off + MANIFEST_RECORD_HEADER_SIZE
            edits.append(decode_edit(data[rec:rec + length]))
        except ValueError as e:
            raise CorruptionError(f"{path}: manifest record at offset {base + off} does not decode: {e}",
                                  path=path, offset=base + off) from None
        off += MANIFEST_RECORD_HEADER_SIZE + length
    return edits, base + off
