# Handle: what a database, a snapshot, a transaction and a namespace have in common (included
# into database.pyx). Each kind gives a few primitives on stored keys (raw_get, raw_put,
# raw_delete, raw_discard, raw_scan, raw_put_many (raw_put_pairs), raw_len); the mapping API users call
# (collections.abc.MutableMapping's methods, lazy views, scans with limits, cursors, batches) is
# written here once, over those primitives and the handle's codecs (codecs.pxi).

from itertools import chain as _chain
from collections.abc import (ItemsView as _ItemsView, KeysView as _KeysView, Mapping as _Mapping,
                             MutableMapping as _MutableMapping, ValuesView as _ValuesView)

_MISSING = object()              # "no default given" for pop()
CLEAR_BATCH = 10000              # keys one commit of a database's clear() deletes
SCAN_ITEMS = 0                   # what an Iterator yields: (key, value) pairs,
SCAN_KEYS = 1                    # keys only,
SCAN_VALUES = 2                  # values only


cdef class Handle:
    """The mapping API over one kind of handle's primitives (see the file's comment)."""
    cdef Codec kc                # key codec, None for raw bytes; constant
    cdef Codec vc                # value codec, None for raw bytes; constant

    # -- primitives: stored keys (encoded, without the handle's namespace prefix) --------

    cdef int ready(self) except -1:
        """Raise if the handle cannot be used (closed, finished)."""
        raise NotImplementedError

    cdef object raw_get(self, bytes k):
        raise NotImplementedError

    cdef int raw_put(self, bytes k, bytes v, object ttl) except -1:
        raise NotImplementedError

    cdef bint raw_delete(self, bytes k) except -1:
        raise NotImplementedError

    cdef int raw_discard(self, bytes k) except -1:
        raise NotImplementedError

    cdef object raw_scan(self, object lo, object hi, bint reverse):
        """An Iterator of stored (key, value) in [lo, hi)."""
        raise NotImplementedError

    cdef int raw_put_many(self, list ops) except -1:
        """Store [(key, value, 0)] atomically."""
        raise NotImplementedError

    cdef int raw_put_pairs(self, list keys, list values) except -1:
        """raw_put_many of keys[i] -> values[i]; a handle that can commit them without a tuple
        per key (the database) does."""
        return self.raw_put_many(pairs_as_ops(keys, values))

    cdef object raw_len(self):
        raise NotImplementedError

    cdef object raw_ttl(self, bytes k):
        """Seconds until k expires, None if it has no expiry; KeyError if absent."""
        raise NotImplementedError

    cdef object raw_cursor_source(self):
        """What a Cursor reads: (a handle over a fixed version, the Snapshot the cursor must
        close with itself or None); see cursor.pxi."""
        raise NotImplementedError

    cdef object ns_len(self, bytes prefix, bytes record):
        """Keys of the namespace with this prefix and record, as this handle sees them."""
        return decode_count(self.raw_get(record), record)

    # -- codecs ----------------------------------------------------------------------------

    @property
    def key_codec(self):
        """The name of this handle's key codec: "bytes", "str" or "int"."""
        return codec_name(self.kc)

    @property
    def value_codec(self):
        """The name of this handle's value codec: "bytes", "str", "msgpack", "json" or "pickle"."""
        return codec_name(self.vc)

    cdef int require_bytes(self, str what) except -1:
        """TypeError unless this handle has no codecs: the document layer reads and writes the
        stored bytes of its keys through the handle it is given."""
        if self.kc is not None or self.vc is not None:
            raise TypeError(f"{what} need a handle with keys=\"bytes\" and values=\"bytes\", not keys="
                            f"{self.key_codec!r}, values={self.value_codec!r}: open the database without codecs "
                            "and give codecs to a namespace (db.namespace(name, keys=..., values=...))")
        return 0

    # -- reads -----------------------------------------------------------------------------

    def get(self, key, default=None):
        self.ready()
        v = self.raw_get(enc_key(self.kc, key))
        return default if v is None else dec_value(self.vc, v)

    def __getitem__(self, key):
        self.ready()
        v = self.raw_get(enc_key(self.kc, key))
        if v is None:
            raise KeyError(key)
        return dec_value(self.vc, v)

    def __contains__(self, key):
        self.ready()
        return self.raw_get(enc_key(self.kc, key)) is not None

    def __len__(self):
        self.ready()
        return self.raw_len()

    def __bool__(self):
        """Whether any key is present: one step of a scan, not a count."""
        self.ready()
        it = self.raw_scan(None, None, False)
        try:
            for _ in it:
                return True
            return False
        finally:
            it.close()

    def scan(self, start=None, end=None, prefix=None, bint reverse=False, limit=None, bint keys_only=False,
             bint values_only=False):
        """Iterate (key, value) in key order from `start` (inclusive) to `end` (exclusive), or
        over the keys starting with `prefix`, reading one consistent version; descending with
        reverse=True. `limit` stops after that many items; keys_only=True yields keys alone,
        values_only=True values alone. Close the iterator (or use `with`) if you stop early."""
        cdef Py_ssize_t n = -1
        cdef Iterator it
        self.ready()
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
            if limit < 0:
                raise ValueError(f"limit must be >= 0, not {limit}")
            n = limit
        if keys_only and values_only:
            raise ValueError("keys_only and values_only exclude each other")
        lo, hi = self.bounds(start, end, prefix)
        it = self.raw_scan(lo, hi, reverse)
        it.shape(self.kc, self.vc, SCAN_KEYS if keys_only else SCAN_VALUES if values_only else SCAN_ITEMS, n)
        return it

    cdef tuple bounds(self, start, end, prefix):
        """[lo, hi) in stored keys for the caller's start, end and prefix."""
        lo = enc_key(self.kc, start) if start is not None else None
        hi = enc_key(self.kc, end) if end is not None else None
        if prefix is not None:
            if self.kc is None:
                p = prefix
            elif self.kc.name == "str" and isinstance(prefix, str):
                p = self.kc.encode(prefix)
            else:
                raise TypeError(f"prefix must be {'str' if self.kc.name == 'str' else 'bytes'} with keys="
                                f"{self.kc.name!r}" + (" (int keys have no prefixes; use start and end)"
                                                       if self.kc.name == "int" else ""))
            lo, hi = scan_bounds(lo, hi, p)
        return lo, hi

    def __iter__(self):
        return self.scan(keys_only=True)

    def __reversed__(self):
        return self.scan(reverse=True, keys_only=True)

    def ttl(self, key):
        """Seconds until `key` expires (a float), or None if it has no expiry. KeyError if the
        key is absent or already expired."""
        self.ready()
        try:
            return self.raw_ttl(enc_key(self.kc, key))
        except KeyError:
            raise KeyError(key) from None

    def namespace(self, name, keys=None, values=None):
        """The namespace `name` (str or bytes, 1..254 bytes) of this handle: a handle with the
        whole API over a key space of its own, with its own codecs (keys=, values= as kvdb.open
        takes them). Of a transaction, it reads and writes inside the transaction."""
        self.ready()
        return Namespace(self, name, keys, values)

    def keys(self):
        """A live view of the keys (collections.abc.KeysView): iterating it scans; nothing is
        read before."""
        return HandleKeys(self)

    def values(self):
        """A live view of the values (collections.abc.ValuesView)."""
        return HandleValues(self)

    def items(self):
        """A live view of the (key, value) pairs (collections.abc.ItemsView)."""
        return HandleItems(self)

    def cursor(self):
        """A Cursor over this handle's keys (seek, seek_first, seek_last, next, prev, key,
        value, valid), reading the version of the moment it was made (a snapshot, a
        transaction's own view); unpositioned until the first seek."""
        self.ready()
        return Cursor(self)

    # -- writes ----------------------------------------------------------------------------

    def put(self, key, value, ttl=None):
        """Store value under key. With `ttl` (seconds, int or float > 0) the key expires that
        long from now; without it any earlier expiry of the key is cleared."""
        self.ready()
        self.raw_put(enc_key(self.kc, key), enc_value(self.vc, value), ttl)

    def __setitem__(self, key, value):
        self.ready()
        self.raw_put(enc_key(self.kc, key), enc_value(self.vc, value), None)

    def delete(self, key):
        """Delete key; True if it was present."""
        self.ready()
        return self.raw_delete(enc_key(self.kc, key))

    def discard(self, key):
        """Delete key if it is present; returns None."""
        self.ready()
        self.raw_discard(enc_key(self.kc, key))

    def __delitem__(self, key):
        self.ready()
        if not self.raw_delete(enc_key(self.kc, key)):
            raise KeyError(key)

    def put_many(self, pairs):
        """Store every (key, value) of the iterable `pairs` in one commit (a later pair with the
        same key wins). Everything is encoded and checked before anything is written: a bad
        pair raises and stores nothing."""
        self.ready()
        cdef Codec kc = self.kc, vc = self.vc
        cdef list ops
        if isinstance(pairs, _Mapping):
            pairs = pairs.items()
        cdef list keys, values
        if kc is None and vc is None:    # the fast path: two lists, no tuple per key
            keys = []
            values = []
            for k, v in pairs:
                keys.append(as_key(k))
                values.append(as_value(v))
            if keys:
                self.raw_put_pairs(keys, values)
            return len(keys)
        ops = [(enc_key(kc, k), enc_value(vc, v), 0) for k, v in pairs]
        if ops:
            self.raw_put_many(ops)
        return len(ops)

    def update(self, other=(), **kwargs):
        """MutableMapping.update: from a mapping, an object with keys(), or an iterable of
        pairs, then the keywords (str keys); in one commit (put_many)."""
        self.ready()
        if isinstance(other, _Mapping):
            pairs = other.items()
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]
        else:
            pairs = other
        if kwargs:
            pairs = _chain(pairs, kwargs.items())
        self.put_many(pairs)

    def pop(self, key, default=_MISSING):
        """Remove key and return its value; `default` (or KeyError) if absent. Atomic: the read
        and the delete are one transaction."""
        self.ready()
        k = enc_key(self.kc, key)
        v = self.read_and_delete(k)
        if v is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return dec_value(self.vc, v)

    def popitem(self):
        """Remove and return the (key, value) with the smallest key; KeyError if empty."""
        self.ready()
        while True:
            it = self.raw_scan(None, None, False)
            try:
                item = next(iter(it), None)
            finally:
                it.close()
            if item is None:
                raise KeyError("popitem(): the mapping is empty")
            v = self.read_and_delete(item[0])
            if v is not None:        # else another writer took it first: take the next one
                return dec_key(self.kc, item[0]), dec_value(self.vc, v)

    def setdefault(self, key, default=None):
        """The value of key; if absent, store `default` first and return it. Atomic."""
        self.ready()
        k = enc_key(self.kc, key)
        stored = enc_value(self.vc, default)
        v = self.read_or_put(k, stored)
        return default if v is None else dec_value(self.vc, v)

    def clear(self):
        """Delete every key of this handle (a database: in commits of CLEAR_BATCH keys, so a
        reader may see part of it done; a transaction or a namespace of one: atomically)."""
        self.ready()
        self.raw_clear()

    cdef object read_and_delete(self, bytes k):
        """The stored value of k, deleting it atomically (None if absent)."""
        raise NotImplementedError

    cdef object read_or_put(self, bytes k, bytes v):
        """The stored value of k, or None after storing v under it, atomically."""
        raise NotImplementedError

    cdef int raw_clear(self) except -1:
        cdef list batch
        while True:
            it = self.raw_scan(None, None, False)
            try:
                batch = []
                for k, _ in it:
                    batch.append(k)
                    if len(batch) >= CLEAR_BATCH:
                        break
            finally:
                it.close()
            if not batch:
                return 0
            self.raw_delete_many(batch)

    cdef int raw_delete_many(self, list keys) except -1:
        for k in keys:
            self.raw_discard(k)
        return 0


class HandleKeys(_KeysView):
    """db.keys(): a KeysView whose iteration scans the handle."""
    __slots__ = ()

    def __iter__(self):
        return self._mapping.scan(keys_only=True)

    def __reversed__(self):
        return self._mapping.scan(reverse=True, keys_only=True)


class HandleValues(_ValuesView):
    """db.values(): a ValuesView whose iteration scans the handle."""
    __slots__ = ()

    def __iter__(self):
        return self._mapping.scan(values_only=True)

    def __contains__(self, value):
        with self._mapping.scan(values_only=True) as it:
            for v in it:
                if v is value or v == value:
                    return True
        return False


class HandleItems(_ItemsView):
    """db.items(): an ItemsView whose iteration scans the handle."""
    __slots__ = ()

    def __iter__(self):
        return self._mapping.scan()

    def __contains__(self, item):
        key, value = item
        try:
            v = self._mapping[key]
        except (KeyError, TypeError, ValueError):
            return False
        return v is value or v == value
