"""Deque and Index: diskcache's persistent deque and ordered mapping, on a kvdb Cache.

    from kvdb.cache.persistent import Deque, Index

    jobs = Deque(directory="/tmp/jobs")      # a deque that outlives the process
    jobs.append({"id": 1}); jobs.popleft()
    users = Index("/tmp/users")              # a dict that outlives the process, in insertion order
    users["ada"] = {"age": 36}; users.popitem(last=False)

Both keep everything in one Cache opened with eviction_policy="none" (nothing is culled) and take
that Cache's serialization rules for keys and values. Several Deque or Index objects, in one
process or several, may work on one directory: every single call is atomic, and transact() makes a
block of calls atomic.

Deque stores its items under the integer keys of Cache's queue calls: push/pull/peek with
side="back" or side="front" give the ends, and the keys in sort order (Cache.iterkeys) are the
deque's order, so indexing walks the keys from the nearer end. Index stores its items as ordinary
keys and takes its order from the Cache's iteration order, which is insertion order (setting an
existing key keeps its place); popitem and peekitem use Cache.peekitem.
"""
import collections
import contextlib
import operator
import os
import tempfile
from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, Sequence, ValuesView

from kvdb.cache.core import Cache
from kvdb.cache.memo import memoize

__all__ = ["Deque", "Index"]

_MISSING = object()


def _open_cache(directory):
    """A Cache in `directory` (None: a new temporary one) that never evicts."""
    if directory is None:
        directory = tempfile.mkdtemp(prefix="kvdb-persistent-")
    elif not isinstance(directory, (str, bytes, os.PathLike)):
        raise TypeError(f"directory must be a str, bytes or os.PathLike path, not {type(directory).__name__}")
    return Cache(os.fsdecode(directory), eviction_policy="none")


def _check_maxlen(maxlen):
    if maxlen is None:
        return float("inf")
    if maxlen == float("inf"):
        return maxlen
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 0:
        raise ValueError(f"maxlen must be None or an int >= 0, not {maxlen!r}")
    return maxlen


def _check_index(index):
    if not isinstance(index, int):
        raise TypeError(f"deque indices must be integers, not {type(index).__name__}")


class Deque(Sequence):
    """A persistent double-ended queue (diskcache.Deque): append and pop at both ends, indexing,
    rotation, and an optional maxlen past which the far end's items are dropped."""

    def __init__(self, iterable=(), directory=None, maxlen=None):
        self._maxlen = _check_maxlen(maxlen)  # the most items kept (inf: no bound)
        self._cache = _open_cache(directory)  # the Cache that holds the items
        self.extend(iterable)

    @classmethod
    def fromcache(cls, cache, iterable=(), maxlen=None):
        """A Deque on an open Cache (which it shares: deque.cache is cache), extended by iterable."""
        self = cls.__new__(cls)
        self._maxlen = _check_maxlen(maxlen)
        self._cache = cache
        self.extend(iterable)
        return self

    @property
    def cache(self):
        """The Cache that holds the items."""
        return self._cache

    @property
    def directory(self):
        """The directory the items are stored in."""
        return self._cache.directory

    @property
    def maxlen(self):
        """The most items kept (inf without a bound); setting it drops items from the front."""
        return self._maxlen

    @maxlen.setter
    def maxlen(self, value):
        value = _check_maxlen(value)
        self._maxlen = value
        with self.transact():
            for _ in range(max(0, len(self._cache) - value)):
                self._pull("front")

    # -- the ends -------------------------------------------------------------------------------

    def _pull(self, side):
        _, value = self._cache.pull(default=(None, _MISSING), side=side, retry=True)
        return value

    def _push(self, value, side):
        with self.transact():
            # how many items must go once this one is in (len() counts an enclosing block's writes)
            excess = len(self._cache) + 1 - self._maxlen
            self._cache.push(value, side=side, retry=True)
            for _ in range(max(0, excess)):
                self._pull("front" if side == "back" else "back")

    def append(self, value):
        """Add value at the back (dropping the front item when at maxlen)."""
        self._push(value, "back")

    def appendleft(self, value):
        """Add value at the front (dropping the back item when at maxlen)."""
        self._push(value, "front")

    def extend(self, iterable):
        """append() each value of iterable."""
        for value in iterable:
            self.append(value)

    def extendleft(self, iterable):
        """appendleft() each value of iterable (so they end up reversed at the front)."""
        for value in iterable:
            self.appendleft(value)

    def __iadd__(self, iterable):
        self.extend(iterable)
        return self

    def pop(self):
        """Remove and return the back item (IndexError if empty)."""
        value = self._pull("back")
        if value is _MISSING:
            raise IndexError("pop from an empty deque")
        return value

    def popleft(self):
        """Remove and return the front item (IndexError if empty)."""
        value = self._pull("front")
        if value is _MISSING:
            raise IndexError("pop from an empty deque")
        return value

    def _peek(self, side):
        _, value = self._cache.peek(default=(None, _MISSING), side=side, retry=True)
        if value is _MISSING:
            raise IndexError("peek from an empty deque")
        return value

    def peek(self):
        """The back item, left in place (IndexError if empty)."""
        return self._peek("back")

    def peekleft(self):
        """The front item, left in place (IndexError if empty)."""
        return self._peek("front")

    # -- by position ----------------------------------------------------------------------------

    def _keys(self, reverse=False):
        """The Cache keys of the items, front to back (back to front if reverse)."""
        return self._cache.iterkeys(reverse=reverse)

    def _key_at(self, index):
        """The Cache key of the item at index (negative counts from the back), found by walking
        the keys from the nearer end; IndexError if none."""
        _check_index(index)
        length = len(self._cache)
        if not -length <= index < length:
            raise IndexError("deque index out of range")
        if index >= 0 and index > length // 2:
            index -= length
        elif index < 0 and -index - 1 > length // 2:
            index += length
        reverse = index < 0
        steps = -index - 1 if reverse else index
        for position, key in enumerate(self._keys(reverse)):
            if position == steps:
                return key
        raise IndexError("deque index out of range")

    def __getitem__(self, index):
        """The item at index (negative counts from the back)."""
        _check_index(index)
        with self.transact():
            return self._cache[self._key_at(index)]

    def __setitem__(self, index, value):
        """Replace the item at index."""
        _check_index(index)
        with self.transact():
            self._cache[self._key_at(index)] = value

    def __delitem__(self, index):
        """Remove the item at index."""
        _check_index(index)
        with self.transact():
            del self._cache[self._key_at(index)]

    def __len__(self):
        return len(self._cache)

    def _values(self, reverse):
        for key in self._keys(reverse):
            value = self._cache.get(key, default=_MISSING, retry=True)
            if value is not _MISSING:  # removed by another handle since the keys were read
                yield value

    def __iter__(self):
        """The items, front to back."""
        return self._values(False)

    def __reversed__(self):
        """The items, back to front."""
        return self._values(True)

    def count(self, value):
        """How many items equal value."""
        return sum(1 for item in self if item == value)

    def remove(self, value):
        """Remove the first item equal to value (ValueError if none)."""
        with self.transact():
            for key in list(self._keys()):
                item = self._cache.get(key, default=_MISSING, retry=True)
                if item is not _MISSING and item == value:
                    del self._cache[key]
                    return
        raise ValueError("deque.remove(value): value not in deque")

    def reverse(self):
        """Reverse the items in place (each key gets the value of its mirror key)."""
        with self.transact():
            keys = list(self._keys())
            values = [self._cache[key] for key in keys]
            for key, value in zip(keys, reversed(values)):
                self._cache[key] = value

    def rotate(self, steps=1):
        """Rotate right by steps (left if negative): the back item moves to the front."""
        if not isinstance(steps, int):
            raise TypeError(f"integer argument expected, got {type(steps).__name__}")
        with self.transact():
            length = len(self._cache)
            if not length:
                return
            steps %= length
            if steps <= length // 2:
                for _ in range(steps):
                    self._cache.push(self._pull("back"), side="front", retry=True)
            else:
                for _ in range(length - steps):
                    self._cache.push(self._pull("front"), side="back", retry=True)

    def clear(self):
        """Remove every item."""
        self._cache.clear(retry=True)

    def copy(self):
        """A Deque on the same Cache with the same maxlen."""
        return type(self).fromcache(self._cache, maxlen=self._maxlen)

    # -- comparison, pickling, transactions -----------------------------------------------------

    def _compare(self, that, op):
        if not isinstance(that, Sequence):
            return NotImplemented
        return op(list(self), list(that))

    def __eq__(self, that):
        if isinstance(that, Sequence) and len(self) != len(that):
            return False
        return self._compare(that, operator.eq)

    def __ne__(self, that):
        result = self.__eq__(that)
        return result if result is NotImplemented else not result

    def __lt__(self, that):
        return self._compare(that, operator.lt)

    def __le__(self, that):
        return self._compare(that, operator.le)

    def __gt__(self, that):
        return self._compare(that, operator.gt)

    def __ge__(self, that):
        return self._compare(that, operator.ge)

    __hash__ = None

    def __repr__(self):
        return f"{type(self).__name__}(directory={self.directory!r})"

    def __getstate__(self):
        return self.directory, self._maxlen

    def __setstate__(self, state):
        directory, maxlen = state
        self.__init__(directory=directory, maxlen=None if maxlen == float("inf") else maxlen)

    @contextlib.contextmanager
    def transact(self):
        """Make the calls inside the block one atomic change of the deque (nestable)."""
        with self._cache.transact(retry=True):
            yield


class Index(MutableMapping):
    """A persistent mapping in insertion order (diskcache.Index): a dict on disk, with popitem
    from either end, peekitem, queue calls (push/pull) and memoize."""

    def __init__(self, *args, **kwargs):
        """Index([directory], [mapping or pairs], **items): the first argument, if a str, bytes,
        path or None, is the directory (None or absent: a new temporary one)."""
        directory = None
        if args and (args[0] is None or isinstance(args[0], (str, bytes, os.PathLike))):
            directory, args = args[0], args[1:]
        self._cache = _open_cache(directory)  # the Cache that holds the items
        self.update(*args, **kwargs)

    @classmethod
    def fromcache(cls, cache, *args, **kwargs):
        """An Index on an open Cache (which it shares: index.cache is cache), updated with the items."""
        self = cls.__new__(cls)
        self._cache = cache
        self.update(*args, **kwargs)
        return self

    @property
    def cache(self):
        """The Cache that holds the items."""
        return self._cache

    @property
    def directory(self):
        """The directory the items are stored in."""
        return self._cache.directory

    def __getitem__(self, key):
        return self._cache[key]

    def __setitem__(self, key, value):
        self._cache[key] = value

    def __delitem__(self, key):
        del self._cache[key]

    def __contains__(self, key):
        return key in self._cache

    def __len__(self):
        return len(self._cache)

    def __iter__(self):
        """The keys in insertion order."""
        return iter(self._cache)

    def __reversed__(self):
        """The keys, last inserted first."""
        return reversed(self._cache)

    def setdefault(self, key, default=None):
        """key's value; if key is missing, store default first (atomic: add)."""
        while True:
            value = self._cache.get(key, default=_MISSING, retry=True)
            if value is not _MISSING:
                return value
            if self._cache.add(key, default, retry=True):
                return default

    def peekitem(self, last=True):
        """The (key, value) pair at the end (last=True) or the start; KeyError if empty."""
        return self._cache.peekitem(last, retry=True)

    def pop(self, key, default=_MISSING):
        """Remove key and return its value; missing: default, or KeyError without one."""
        value = self._cache.pop(key, default=_MISSING, retry=True)
        if value is _MISSING:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return value

    def popitem(self, last=True):
        """Remove and return the last (last=True: a stack) or first (a queue) pair; KeyError if empty."""
        with self.transact():
            key, value = self._cache.peekitem(last, retry=True)
            del self._cache[key]
        return key, value

    def push(self, value, prefix=None, side="back"):
        """Cache.push: store value under the next integer (or "prefix-integer") key at side; the key."""
        return self._cache.push(value, prefix=prefix, side=side, retry=True)

    def pull(self, prefix=None, default=(None, None), side="front"):
        """Cache.pull: remove and return the (key, value) at side of the queue, or default."""
        return self._cache.pull(prefix=prefix, default=default, side=side, retry=True)

    def clear(self):
        """Remove every item."""
        self._cache.clear(retry=True)

    def keys(self):
        """A set-like view of the keys."""
        return KeysView(self)

    def values(self):
        """A view of the values."""
        return ValuesView(self)

    def items(self):
        """A set-like view of the (key, value) pairs."""
        return ItemsView(self)

    def __eq__(self, other):
        """Order-sensitive against another Index or an OrderedDict, order-insensitive against any
        other mapping."""
        if not isinstance(other, Mapping):
            return NotImplemented
        if len(self) != len(other):
            return False
        if isinstance(other, (Index, collections.OrderedDict)):
            pairs = zip(self.items(), other.items())
            return all(a == b for a, b in pairs)
        return all(key in other and other[key] == value for key, value in self.items())

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def memoize(self, name=None, typed=False, ignore=()):
        """Cache.memoize's decorator storing results in this Index (no expiry, no tag)."""
        return memoize(self._cache, name, typed, None, None, ignore)

    def __repr__(self):
        return f"{type(self).__name__}({self.directory!r})"

    def __getstate__(self):
        return self.directory

    def __setstate__(self, state):
        self.__init__(state)

    @contextlib.contextmanager
    def transact(self):
        """Make the calls inside the block one atomic change of the index (nestable)."""
        with self._cache.transact(retry=True):
            yield
