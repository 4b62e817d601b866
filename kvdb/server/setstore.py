"""Set storage on the engine: one ordered sub-record per member, so a set costs what
its members cost and every member operation is one engine lookup. The layout is
documented in docs/format/server-keys-set.md; in short:

    0x01 db "s" version member -> b""        (one record per member, empty value)

The key's meta record holds Coll(version, count, b""): count is the cardinality, so
SCARD reads no member record. Members are ordered by their bytes, which gives:

* membership: one get;
* SMEMBERS, SSCAN, and the members of a set algebra: one range scan, streamed;
* SUNION: a k-way merge of the sources' ordered scans (bounded memory);
* SINTER: a scan of the smallest source, each member probed in the others;
* random members (SPOP, SRANDMEMBER): seeks to random points of the member space
  (Sampler), never a copy of the whole set.

Everything here works on a Store and the prefix of one set's member records
(`coll.prefix(db, KIND)`); the commands (commands/sets.py) deal with keys, types,
counts and notifications.
"""
import heapq
import random

from .keyspace import MAX_NAME

__all__ = ["KIND", "EXACT_LIMIT", "contains", "members", "inter", "union", "diff", "Sampler"]

KIND = b"s"          # the sub-record kind of set members (keyspace.COLLECTION_KINDS)
EXACT_LIMIT = 64     # sets of at most this many members are sampled exactly, by reading them all
WINDOW = 16          # a random seek picks uniformly among the next WINDOW members from where it lands
SEEK_BYTES = 16      # bytes of a random seek key below the common prefix of the first and last member


def contains(store, prefix, member):
    """Whether member is in the set whose records start with prefix (one get). A member
    longer than any stored one is absent without a lookup (the engine refuses such keys)."""
    if len(member) > MAX_NAME:
        return False
    return store.get(prefix + member) is not None


def members(store, prefix, after=None, start=None):
    """The members in byte order: after `after` (exclusive) or from `start` (inclusive).
    A generator holding one scan open; writes to other prefixes while it runs do not
    disturb it (the scan reads the state of when it was opened)."""
    if after is not None:
        start = after + b"\x00"
    n = len(prefix)
    with store.scan(start=None if start is None else prefix + start, prefix=prefix) as it:
        for k, _ in it:
            yield k[n:]


def first_member(store, prefix, reverse=False):
    """The smallest (reverse: largest) member, or None for an empty set."""
    with store.scan(prefix=prefix, reverse=reverse) as it:
        for k, _ in it:
            return k[len(prefix):]
    return None


def inter(store, sources):
    """Members common to every source, in byte order. sources: [(prefix, count)] of
    existing sets. Streams the smallest and probes each member in the others, smallest
    first (Redis's order too), so the cost is O(smallest * sources) lookups."""
    by_prefix = {}
    for prefix, count in sources:
        by_prefix[prefix] = count
    ordered = sorted(by_prefix, key=by_prefix.get)
    smallest, others = ordered[0], ordered[1:]
    for m in members(store, smallest):
        for p in others:
            if store.get(p + m) is None:
                break
        else:
            yield m


def union(store, prefixes):
    """Members of any of the sets, in byte order, each once: a merge of their ordered
    scans, one open scan per source."""
    streams = [members(store, p) for p in dict.fromkeys(prefixes)]
    last = None
    for m in heapq.merge(*streams):
        if m != last:
            yield m
            last = m


def diff(store, first, others):
    """Members of the set `first` in none of `others` (prefixes), in byte order."""
    others = list(dict.fromkeys(others))
    if first in others:
        return
    for m in members(store, first):
        for p in others:
            if store.get(p + m) is not None:
                break
        else:
            yield m


class Sampler:
    """Random members of one set without reading the whole set.

    Small sets (count <= EXACT_LIMIT) are read whole and sampled exactly. For larger
    ones a pick seeks to a random key between the first and the last member and takes
    one of the next WINDOW members uniformly (continuing from the first member when it
    runs off the end). The seek key is the members' common prefix followed by a random
    SEEK_BYTES-byte number between those of the first and the last member, so members
    spread evenly over the byte space are picked about uniformly; members crowded
    together behind a gap are picked more often than others (Redis's own random
    members are not uniform either). Every member can be picked: the window after
    each landing point covers the members that follow it, wrapping around."""

    def __init__(self, store, prefix, count):
        self.store = store           # the Store to read
        self.prefix = prefix         # the set's member-record prefix
        self.count = count           # the set's cardinality (Coll.count)
        self.small = None            # all members, when count <= EXACT_LIMIT (read at first use)
        self.base = None             # prefix + the common prefix of the first and last member
        self.lo = self.hi = 0        # the range of the random number after base

    def _prepare(self):
        if self.count <= EXACT_LIMIT:
            if self.small is None:
                self.small = list(members(self.store, self.prefix))
            return
        if self.base is not None:
            return
        first = first_member(self.store, self.prefix) or b""
        last = first_member(self.store, self.prefix, reverse=True) or b""
        cp = 0
        while cp < len(first) and cp < len(last) and first[cp] == last[cp]:
            cp += 1
        self.base = self.prefix + first[:cp]
        self.lo = int.from_bytes(first[cp:cp + SEEK_BYTES].ljust(SEEK_BYTES, b"\x00"), "big")
        self.hi = int.from_bytes(last[cp:cp + SEEK_BYTES].ljust(SEEK_BYTES, b"\x00"), "big")

    def _cycle(self):
        """Members from a random seek point to the end, then from the first member up to
        the seek point: every member once, starting at a random place."""
        seek = self.base + random.randint(self.lo, self.hi).to_bytes(SEEK_BYTES, "big")
        n = len(self.prefix)
        with self.store.scan(start=seek, prefix=self.prefix) as it:
            for k, _ in it:
                yield k[n:]
        with self.store.scan(prefix=self.prefix, end=seek) as it:
            for k, _ in it:
                yield k[n:]

    def pick(self, exclude=None):
        """One random member not in `exclude` (a set of members), or None if none is left."""
        self._prepare()
        if self.small is not None:
            pool = self.small if not exclude else [m for m in self.small if m not in exclude]
            return random.choice(pool) if pool else None
        skip = random.randrange(WINDOW)
        found = None
        for m in self._cycle():
            if exclude and m in exclude:
                continue
            found = m
            if skip == 0:
                break
            skip -= 1
        return found

    def distinct(self, k):
        """k distinct random members (k < count), in random order. Large k (over a third
        of the set) streams the set once with selection sampling (exactly uniform);
        small k picks one at a time, skipping members already chosen."""
        self._prepare()
        if self.small is not None:
            return random.sample(self.small, k)
        if k * 3 > self.count:
            chosen = []
            left = self.count
            for m in members(self.store, self.prefix):
                if left <= 0:
                    break
                if random.randrange(left) < k - len(chosen):
                    chosen.append(m)
                    if len(chosen) == k:
                        break
                left -= 1
            random.shuffle(chosen)
            return chosen
        chosen = {}
        while len(chosen) < k:
            m = self.pick(chosen)
            if m is None:
                break
            chosen[m] = None
        return list(chosen)

    def repeated(self, k):
        """k random members, each picked independently (duplicates possible)."""
        self._prepare()
        if self.small is not None:
            return random.choices(self.small, k=k) if self.small else []
        return [self.pick() for _ in range(k)]
