"""ObjectId: the 12-byte document id generated when a document has no _id.

    OFFSET SIZE  FIELD
    0      4     seconds since the Unix epoch, big-endian (ids sort by creation time)
    4      5     random per process (re-drawn after fork)
    9      3     counter, big-endian, starting at a random value, wrapping at 2**24

The same layout as MongoDB's ObjectId, so ids from one process are unique and increase,
and ids from different processes differ in their random part.
"""
import binascii
import datetime
import os
import itertools
import time

OBJECTID_SIZE = 4 + 5 + 3  # time, process random, counter

_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))   # next() is atomic under the GIL
_process_random = os.urandom(5)
_pid = os.getpid()              # process that drew _process_random


def _next_tail():
    """The 8 bytes after the timestamp: process random + counter (thread-safe, fork-aware)."""
    global _process_random, _pid
    if os.getpid() != _pid:
        _pid = os.getpid()
        _process_random = os.urandom(5)
    return _process_random + (next(_counter) & 0xFFFFFF).to_bytes(3, "big")


def new_objectid():
    """A fresh ObjectId (the fast path of ObjectId())."""
    oid = object.__new__(ObjectId)
    oid._bytes = int(time.time()).to_bytes(4, "big") + _next_tail()
    return oid


class ObjectId:
    """A 12-byte id: ObjectId() makes a new one; ObjectId(hex24 | bytes12 | ObjectId) copies."""

    __slots__ = ("_bytes",)

    def __init__(self, oid=None):
        if oid is None:
            self._bytes = int(time.time()).to_bytes(4, "big") + _next_tail()
        elif isinstance(oid, ObjectId):
            self._bytes = oid._bytes
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
        return isinstance(other, ObjectId) and self._bytes == other._bytes

    def __ne__(self, other):
        return not self.__eq__(other)

    def __lt__(self, other):
        if not isinstance(other, ObjectId):
            return NotImplemented
        return self._bytes < other._bytes

    def __le__(self, other):
        if not isinstance(other, ObjectId):
            return NotImplemented
        return self._bytes <= other._bytes

    def __gt__(self, other):
        if not isinstance(other, ObjectId):
            return NotImplemented
        return self._bytes > other._bytes

    def __ge__(self, other):
        if not isinstance(other, ObjectId):
            return NotImplemented
        return self._bytes >= other._bytes

    def __hash__(self):
        return hash(self._bytes)

    def __reduce__(self):
        return (ObjectId, (self._bytes,))
