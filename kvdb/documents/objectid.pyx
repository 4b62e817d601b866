# cython: language_level=3
"""ObjectId: the 12-byte document id generated when a document has no _id.

    OFFSET SIZE  FIELD
    0      4     seconds since the Unix epoch, big-endian (ids sort by creation time)
    4      5     random per process (re-drawn after fork)
    9      3     counter, big-endian, starting at a random value, wrapping at 2**24

The same layout as MongoDB's ObjectId, so ids from one process are unique and increase,
and ids from different processes differ in their random part.

An extension type without cyclic garbage collection (it holds only its bytes, so it can be in
no cycle): a bulk insert makes one per document, and tracked objects would have the collector
walk every object of the program again and again while it runs.

One generator serves ObjectId(), new_objectid() and insert_many's encoder (fastinsert.pyx), so
their ids share the counter. The GIL guards its state. A forked child draws new random bytes
before its first id: pthread_atfork marks every child, so two processes forked from one parent
(multiprocessing, os.fork, a C library's fork) never share them, without a getpid() system call
per id.
"""
import binascii
import datetime
import os

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t
from libc.string cimport memcpy
from libc.time cimport time

OBJECTID_SIZE = 4 + 5 + 3  # time, process random, counter


cdef extern from "<pthread.h>" nogil:
    int pthread_atfork(void (*prepare)() noexcept, void (*parent)() noexcept, void (*child)() noexcept)


cdef unsigned char process_random[5]   # bytes 4..8 of every id this process makes
cdef uint32_t counter = 0              # the next id's counter (its low 24 bits are used)
cdef bint reseed_due = True            # process_random is not yet drawn in this process


cdef void forked_child() noexcept nogil:
    # Runs in the child right after fork(): only flag it (async-signal-safe); the next id draws.
    global reseed_due
    reseed_due = True


cdef int reseed() except -1:
    """Draw this process's random bytes (and, the first time, the counter's random start)."""
    global counter, reseed_due
    cdef bytes drawn = os.urandom(8)
    cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(drawn)
    memcpy(process_random, d, 5)
    if counter == 0:
        counter = (<uint32_t>d[5] << 16) | (<uint32_t>d[6] << 8) | d[7]
    reseed_due = False
    return 0


cdef bytes new_id_bytes():
    """The 12 bytes of a fresh ObjectId."""
    global counter
    if reseed_due:
        reseed()
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 12)
    cdef unsigned char *b = <unsigned char *>PyBytes_AS_STRING(out)
    cdef uint32_t seconds = <uint32_t>time(NULL)
    cdef uint32_t n = counter & 0xFFFFFF
    counter = n + 1
    b[0] = seconds >> 24
    b[1] = (seconds >> 16) & 0xFF
    b[2] = (seconds >> 8) & 0xFF
    b[3] = seconds & 0xFF
    memcpy(b + 4, process_random, 5)
    b[9] = n >> 16
    b[10] = (n >> 8) & 0xFF
    b[11] = n & 0xFF
    return out


def new_id():
    """The 12 bytes of a fresh ObjectId."""
    return new_id_bytes()


cdef ObjectId objectid_of(bytes data):
    """The ObjectId of 12 bytes known to be one (decoded documents, keys, new ids)."""
    cdef ObjectId oid = ObjectId.__new__(ObjectId)
    oid._bytes = data
    return oid


def new_objectid():
    """A fresh ObjectId (the fast path of ObjectId())."""
    return objectid_of(new_id_bytes())


def objectid_from_bytes(bytes data):
    """objectid_of for Python callers (codec's msgpack ext hook): 12 bytes known to be an id."""
    return objectid_of(data)


@cython.no_gc
cdef class ObjectId:
    """A 12-byte id: ObjectId() makes a new one; ObjectId(hex24 | bytes12 | ObjectId) copies."""

    def __init__(self, oid=None):
        if oid is None:
            self._bytes = new_id_bytes()
        elif isinstance(oid, ObjectId):
            self._bytes = (<ObjectId>oid)._bytes
        elif isinstance(oid, (bytes, bytearray)) and len(oid) == OBJECTID_SIZE:
            self._bytes = bytes(oid)
        elif isinstance(oid, str) and len(oid) == 2 * OBJECTID_SIZE:
            try:
                self._bytes = binascii.unhexlify(oid)
            except (binascii.Error, ValueError):
                raise ValueError(f"{oid!r} is not a valid ObjectId: expected 24 hex digits") from None
        else:
            raise ValueError(f"{oid!r} is not a valid ObjectId: expected 24 hex digits or 12 bytes")

    @classmethod
    def from_datetime(cls, when):
        """The smallest ObjectId of second `when` (for range queries on creation time)."""
        if when.tzinfo is not None:
            when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        seconds = int((when - datetime.datetime(1970, 1, 1)).total_seconds())
        return cls(seconds.to_bytes(4, "big") + bytes(8))

    @classmethod
    def is_valid(cls, oid):
        try:
            cls(oid)
            return True
        except (ValueError, TypeError):
            return False

    @property
    def binary(self):
        return self._bytes

    @property
    def generation_time(self):
        """The creation second as an aware UTC datetime."""
        seconds = int.from_bytes(self._bytes[:4], "big")
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)

    def __str__(self):
        return self._bytes.hex()

    def __repr__(self):
        return f"ObjectId('{self._bytes.hex()}')"

    def __eq__(self, other):
        return isinstance(other, ObjectId) and self._bytes == (<ObjectId>other)._bytes

    def __ne__(self, other):
        return not (isinstance(other, ObjectId) and self._bytes == (<ObjectId>other)._bytes)

    def __lt__(self, other):
        if not isinstance(other, ObjectId):
            return NotImplemented
        return self._bytes < (<ObjectId>other)._bytes

    def __le__(self, other):
        if not isinstance(other, ObjectId):
            return NotImplemented
        return self._bytes <= (<ObjectId>other)._bytes

    def __gt__(self, other):
        if not isinstance(other, ObjectId):
            return NotImplemented
        return self._bytes > (<ObjectId>other)._bytes

    def __ge__(self, other):
        if not isinstance(other, ObjectId):
            return NotImplemented
        return self._bytes >= (<ObjectId>other)._bytes

    def __hash__(self):
        return hash(self._bytes)

    def __reduce__(self):
        return (ObjectId, (self._bytes,))


if pthread_atfork(NULL, NULL, forked_child) != 0:
    raise OSError("pthread_atfork failed: ObjectIds could repeat across forked processes")
