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
import itertools
import random

from .keyspace import MAX_NAME

__all__ = ["KIND", "EXACT_LIMIT", "contains", "members", "inter", "union", "diff", "Sampler"]

KIND = b"s"          # the sub-record kind of set members (keyspace.COLLECTION_KINDS)
EXACT_LIMIT = 128    # sets of at most this many members are sampled exactly, by reading them all
EDGE = 32            # larger sets: members at each end sampled exactly (Sampler)
WINDOW = 16          # a seek walks up to WINDOW members on from where it lands
TAIL_P = 0.125       # probability of a further geometric walk after a pick (reaches every member)
DIGITS = 16          # symbols of a member (after the common prefix) that a code resolves
ACCEPT = 0.5         # acceptance threshold, in mean code distances between members
BINARY_ALPHABET = 64  # an alphabet this large is taken to be binary: all bytes of its range
MAX_TRIES = 16       # draws before a pick takes the last one drawn


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

    A set of at most EXACT_LIMIT members is read whole and sampled exactly. A larger set
    keeps its EDGE smallest and EDGE largest members in a list (read by two short scans)
    and samples them exactly, each with probability 1/count; the *core* between them is
    sampled by seeks:

    1. Code space. Members of the core all start with the common prefix `cp` of the two
       edge members around it. The bytes after cp that the edge members use form an
       alphabet; a member maps to a DIGITS-digit number in base len(alphabet)+1 (digit 0
       is "the member ends here"; bytes outside the alphabet round down). The map keeps
       byte order (not strictly), so codes tile the core's range [lo, hi].
    2. A pick draws a code uniformly in (lo, hi], seeks to the smallest key with at
       least that code, and walks j members forward (j uniform below WINDOW, or with
       probability TAIL_P geometric beyond it), wrapping from the core's end to its
       start. A member's chance to be reached is then the code distance spanned by the
       WINDOW members up to it, divided by WINDOW (G).
    3. Correction. The pick is accepted with probability min(1, c / G), where c is
       ACCEPT times the mean code distance between members, else it is drawn again (at
       most MAX_TRIES times). Where members are no more crowded than 1/ACCEPT times the
       mean, this makes every member equally likely; members in denser regions, or
       that differ from their neighbours only beyond DIGITS bytes or in bytes outside
       the alphabet, are picked less often. Every member can be picked (the geometric
       walk reaches any member from any landing point). Redis's own random members are
       not uniform either."""

    def __init__(self, store, prefix, count):
        self.store = store           # the Store to read
        self.prefix = prefix         # the set's member-record prefix
        self.count = count           # the set's cardinality (Coll.count)
        self.small = None            # all members, when count <= EXACT_LIMIT (read at first use)
        self.edge = None             # the EDGE smallest then the EDGE largest members
        self.lo_key = self.hi_key = None  # the records bounding the core (exclusive)
        self.base = b""              # prefix + the core's common prefix
        self.cp = 0                  # length of that common prefix (in members)
        self.alpha = b""             # the alphabet after cp, ascending
        self.slot = None             # byte -> digit (0 for bytes below the alphabet)
        self.k = 2                   # the code's base: len(alpha) + 1
        self.lo = self.hi = 0        # codes of the edge members bounding the core
        self.c = 0                   # the acceptance threshold on G (see the class doc)

    def _prepare(self):
        if self.small is not None or self.edge is not None:
            return
        if self.count <= EXACT_LIMIT:
            self.small = list(members(self.store, self.prefix))
            return
        head = _take(members(self.store, self.prefix), EDGE)
        tail = _take(_members_reverse(self.store, self.prefix), EDGE)
        self.edge = head + tail
        lo_m, hi_m = head[-1], tail[-1]
        self.lo_key = self.prefix + lo_m + b"\x00"     # the first key after the head
        self.hi_key = self.prefix + hi_m                 # the core ends before it
        cp = 0
        while cp < len(lo_m) and cp < len(hi_m) and lo_m[cp] == hi_m[cp]:
            cp += 1
        self.cp = cp
        self.base = self.prefix + lo_m[:cp]
        common = lo_m[:cp]
        used = set(b"".join(m[cp:] for m in self.edge if m[:cp] == common)) or {0}
        symbols = sorted(used)
        if len(symbols) > BINARY_ALPHABET:      # binary members: every byte in their range
            symbols = list(range(symbols[0], symbols[-1] + 1))
        self.alpha = bytes(symbols)
        self.k = len(symbols) + 1
        marks = bytearray(256)
        for b in symbols:
            marks[b] = 1
        self.slot = list(itertools.accumulate(marks))   # byte -> symbols at or below it
        self.lo = self.code(lo_m)
        self.hi = max(self.code(hi_m), self.lo + 1)
        core = max(1, self.count - len(self.edge))
        self.c = ACCEPT * (self.hi - self.lo) / core

    def code(self, m):
        """m's position in code space (see the class doc)."""
        digits = m[self.cp:self.cp + DIGITS]
        v = 0
        k, slot = self.k, self.slot
        for b in digits:
            v = v * k + slot[b]
        return v * k ** (DIGITS - len(digits))

    def seek_key(self, v):
        """The smallest record key whose member's code is at least v."""
        k = self.k
        digits = []
        for _ in range(DIGITS):
            v, d = divmod(v, k)
            digits.append(d)
        digits.reverse()
        out = bytearray()
        for i, d in enumerate(digits):
            if d == 0:
                if any(digits[i + 1:]):
                    out.append(self.alpha[0])
                break
            out.append(self.alpha[d - 1])
        return self.base + bytes(out)

    def _forward(self, seek):
        """Core members from seek on, wrapping once: (member, wrapped)."""
        n = len(self.prefix)
        with self.store.scan(start=seek, end=self.hi_key) as it:
            for k, _ in it:
                yield k[n:], False
        with self.store.scan(start=self.lo_key, end=seek) as it:
            for k, _ in it:
                yield k[n:], True

    def _backward(self, seek):
        """Core members before seek, descending, wrapping once: (member, wrapped)."""
        n = len(self.prefix)
        with self.store.scan(start=self.lo_key, end=seek, reverse=True) as it:
            for k, _ in it:
                yield k[n:], False
        with self.store.scan(start=seek, end=self.hi_key, reverse=True) as it:
            for k, _ in it:
                yield k[n:], True

    def _core_pick(self, exclude):
        """(member, accepted) drawn from the core, or (None, True) if it has none left."""
        span = self.hi - self.lo
        seek = self.seek_key(self.lo + 1 + random.randrange(span))
        j = random.randrange(WINDOW)
        walked = []                    # (member, wrapped) from the seek on, excluded ones too
        out = None
        forward = self._forward(seek)
        for item in forward:
            walked.append(item)
            if exclude and item[0] in exclude:
                continue
            out = item
            if j == 0:
                break
            j -= 1
        if out is None:
            return None, True
        if len(walked) > WINDOW:
            m, wrapped = walked[-1 - WINDOW]
            lo = self.code(m) + (span if wrapped else 0)
        else:
            back = _take(self._backward(seek), WINDOW + 1 - len(walked))
            m, wrapped = back[-1] if back else walked[0]
            lo = self.code(m) - (span if wrapped and back else 0)
        # G: the code distance spanned by the WINDOW members up to out, per member
        hi = self.code(out[0]) + (span if out[1] else 0)
        g = (hi - lo) / WINDOW
        if g > self.c and random.random() * g >= self.c:
            return out[0], False
        if random.random() < TAIL_P:
            # A further geometric walk: it keeps a uniform pick uniform, and reaches the
            # members that no seek lands near (differing only beyond DIGITS symbols).
            steps = int(random.expovariate(1.0 / WINDOW))
            for item in forward:
                if steps == 0:
                    break
                if not (exclude and item[0] in exclude):
                    out = item
                    steps -= 1
        return out[0], True

    def pick(self, exclude=None):
        """One random member not in `exclude` (a set or dict of members), or None if none
        is left."""
        self._prepare()
        if self.small is not None:
            pool = self.small if not exclude else [m for m in self.small if m not in exclude]
            return random.choice(pool) if pool else None
        if random.randrange(self.count) < len(self.edge):
            pool = self.edge if not exclude else [m for m in self.edge if m not in exclude]
            if pool:
                return random.choice(pool)
        found = None
        for _ in range(MAX_TRIES):
            m, accepted = self._core_pick(exclude)
            if m is None:
                break
            found = m
            if accepted:
                return m
        if found is None:              # the core is used up: what is left is at the edges
            pool = [m for m in self.edge if not exclude or m not in exclude]
            return random.choice(pool) if pool else None
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


def _take(it, n):
    return list(itertools.islice(it, n))


def _members_reverse(store, prefix):
    n = len(prefix)
    with store.scan(prefix=prefix, reverse=True) as it:
        for k, _ in it:
            yield k[n:]
