"""Random members of a set (SPOP, SRANDMEMBER) without reading the whole set.

Set members are records ordered by their bytes (setstore.py), with no index of
positions, so a uniformly random rank cannot be looked up. Instead:

* A set of at most EXACT_LIMIT members is read whole and sampled exactly.
* A larger set is split into its *edges*, the EDGE smallest and EDGE largest members,
  kept in a list and sampled exactly (each with probability 1/count), and its *core*
  between them, sampled by seeks:

  1. Code space. Every core member starts with the common prefix of the two edge
     members around the core. The bytes after it that the edge members use form an
     alphabet; a member maps to a number of `digits` digits in base len(alphabet)+1
     (digit 0 is "the member ends here"; a byte outside the alphabet rounds down to
     the alphabet's largest byte below it; `digits` gives about 2**12 codes per
     member). The map keeps byte order (not strictly), so codes tile the core's
     range (lo, hi].
  2. A pick draws a code s uniformly in (lo, hi], seeks to the first member at or after
     the smallest key of that code (the landing member), and walks j members on, j
     uniform below WINDOW, wrapping from the core's end to its start. The chance to
     reach a member m this way is G(m) = (code(m) - code(the WINDOW-th member before
     m)) / WINDOW: the landing chances of the WINDOW members up to m, averaged.
  3. Correction. The pick is accepted with probability min(1, c / G); otherwise a new
     code is drawn (at most MAX_TRIES draws, then the draw of the smallest G is taken).
     Every member whose G is at least c is then equally likely; members of denser
     regions (G < c), or differing from their neighbours only beyond `digits` bytes or
     in bytes outside the alphabet, come out less often, G / c times as often. The threshold c starts at ACCEPT times the mean
     code distance between core members and adapts to the set: accepted draws are
     about uniform over the members, so their G values (weighted by c / G where G < c)
     sample how G is spread over the members, and c moves to the LOW_QUANTILE of that
     spread (within ACCEPT_RANGE mean distances). So about 95% of the members are
     equally likely, at the price of more draws where density varies more.
  4. After an accepted pick, with probability TAIL_P, the walk goes on a geometric
     number of members. That keeps a uniform pick uniform, and lets every member come
     out, even one that no seek lands near.

  One forward scan serves a draw: it starts about as far before s as the members
  needed for G (WINDOW - j of them, by the mean code distance, times REACH), so it
  reads them as well as those after the landing member; a backward scan is added only
  where the core is sparser than that.

Redis's own random members are not uniform either (a random hash bucket, then a random
entry of its chain). What a Sampler learns (edges, alphabet, code range) is kept per set
version in a small cache for the next commands: SADD forgets it (new members may fall
among the edges), and edge members are checked with a get before being returned, since
SREM and SPOP may have removed them.

SPOP without a count does not sample each pop: pop_member() keeps, per set of up to
POOL_SET_MAX members, a shuffled uniformly random subset of half of it, chosen in
one scan by selection sampling, and pops from it (see pop_member for why a run of pops
stays uniform). fastsample.pyx is that scan's loop in C.
"""
import collections
import itertools
import math
import random

from .setstore import members, members_reverse

from .fastsample import select as _select, shuffle as _shuffle

__all__ = ["Sampler", "forget", "forget_all", "pop_member", "EXACT_LIMIT"]

EXACT_LIMIT = 128     # sets of at most this many members are read whole and sampled exactly
EDGE = 32             # larger sets: members at each end kept in a list and sampled exactly
WINDOW = 16           # a draw walks up to WINDOW members on from where it lands
TAIL_P = 0.125        # probability of a further geometric walk after an accepted draw
MAX_DIGITS = 24       # most symbols of a member (after the common prefix) a code resolves
ACCEPT = 0.5          # first acceptance threshold, in mean code distances between core members
ACCEPT_RANGE = (0.2, 1.0)  # ... and the range it adapts in
LOW_QUANTILE = 0.05   # the threshold goes to this quantile of G over the members
LEARN_EVERY = 16      # accepted draws between adaptations (over the last 4 times as many)
REACH = 1.25          # a draw's scan starts this much farther back than the members it needs
BINARY_ALPHABET = 64  # an alphabet this large is taken as binary: every byte in its range
STREAM_RATIO = 64     # counts above 1/STREAM_RATIO of the set are sampled in one pass by rank
MAX_TRIES = 16        # draws before a pick takes the rejected one of the smallest G
CACHE_SETS = 64       # shapes kept (per set version)
CACHE_USES = 2000     # picks a shape serves before it is learned again
POOL_SET_MAX = 1 << 18   # SPOP from a set of up to this many members takes a pooled member
POOL_RATIO = 2        # a pool holds 1/POOL_RATIO of its set (a pop reads POOL_RATIO records, amortized)
POOL_BYTES = 8 << 20  # ... and at most this many bytes of members (else the set uses a Sampler),
POOL_OVERHEAD = 48    # counting this many for each member's Python object and list slot
POOL_SETS = 4         # pools kept (per set version)


_DIGIT_CHARS = b"0123456789abcdefghijklmnopqrstuvwxyz"   # int(text, k) reads codes in bases up to 36


class Shape:
    """What a Sampler learns of a large set: its edges and its code space."""
    __slots__ = ("edge", "lo_key", "hi_key", "base", "cp", "alpha", "k", "digits", "to_digit", "to_char",
                 "to_symbol", "scale", "lo", "hi", "uses", "accept", "seen")

    def __init__(self, prefix, head, tail, count):
        self.edge = head + tail            # the EDGE smallest then the EDGE largest members
        self.uses = 0                      # picks served (the cache relearns after CACHE_USES)
        self.accept = ACCEPT               # the acceptance threshold, in mean code distances
        self.seen = []                     # (G / mean, weight) of recent accepted draws
        lo_m, hi_m = head[-1], tail[-1]
        self.lo_key = prefix + lo_m + b"\x00"   # the core's first possible record key
        self.hi_key = prefix + hi_m             # the core ends before this record key
        cp = 0
        while cp < len(lo_m) and cp < len(hi_m) and lo_m[cp] == hi_m[cp]:
            cp += 1
        self.cp = cp                       # length of the core members' common prefix
        self.base = prefix + lo_m[:cp]     # the record-key prefix of every core member
        common = lo_m[:cp]
        symbols = sorted(set(b"".join(m[cp:] for m in self.edge if m[:cp] == common))) or [0]
        if len(symbols) > BINARY_ALPHABET:
            symbols = list(range(symbols[0], symbols[-1] + 1))
            if len(symbols) >= 255:        # (nearly) every byte: codes are the bytes themselves
                symbols = list(range(256))
        self.alpha = bytes(symbols)        # the alphabet after the common prefix, ascending
        # The code's base: digit 0 means "the member ends", except with every byte in the
        # alphabet, where a digit is the byte (and an end reads as byte 0).
        self.k = k = 256 if len(symbols) == 256 else len(symbols) + 1
        marks = bytearray(256)
        for b in symbols:
            marks[b] = 1
        # byte -> its digit (the number of symbols at or below it), as a translate table
        self.to_digit = bytes(range(256)) if k == 256 else bytes(itertools.accumulate(marks))
        # byte -> the character of its digit, for int(text, k) when k <= 36
        self.to_char = self.to_digit.translate(bytes.maketrans(bytes(range(37)), _DIGIT_CHARS + b"?")) \
            if k <= 36 else None
        # digit -> its symbol (digit 0 has none: it ends the key)
        self.to_symbol = bytes.maketrans(bytes(range(1, k)), self.alpha) if k < 256 else None
        # Symbols a code resolves: enough for about 2**12 codes per member between the ends.
        self.digits = min(MAX_DIGITS, max(4, math.ceil(math.log(count * (1 << 12)) / math.log(k))))
        self.scale = [k ** i for i in range(self.digits + 1)]   # k ** i, to pad short members
        self.lo = self.code(lo_m)          # the code of the edge member before the core
        self.hi = max(self.code(hi_m), self.lo + 1)     # ... and of the one after it

    def code(self, m):
        """m's position in code space (see the module doc)."""
        text = m[self.cp:self.cp + self.digits]
        if self.k == 256:
            return int.from_bytes(text.ljust(self.digits, b"\x00"), "big")
        if self.to_char is not None:
            v = int(text.translate(self.to_char), self.k) if text else 0
        else:
            v = 0
            k = self.k
            for d in text.translate(self.to_digit):
                v = v * k + d
        return v * self.scale[self.digits - len(text)]

    def seek_key(self, v):
        """The smallest record key whose member's code is at least v."""
        k = self.k
        if k == 256:
            return self.base + v.to_bytes(self.digits, "big")
        out = bytearray(self.digits)
        for i in range(self.digits - 1, -1, -1):
            v, out[i] = divmod(v, k)
        end = out.find(0)
        if end >= 0:
            # A code that ends here but has digits after: the next key up is this one with
            # the smallest symbol appended.
            rounded = len(out.rstrip(b"\x00")) > end
            del out[end:]
            if rounded:
                out.append(1)
        return self.base + bytes(out).translate(self.to_symbol)


_shapes = collections.OrderedDict()     # member-record prefix -> Shape (most recent last)
_pools = collections.OrderedDict()      # member-record prefix -> pop pool (a list), or None: no pool


def forget(prefix):
    """Drops what was learned of a set (call after adding members to it)."""
    _shapes.pop(prefix, None)
    _pools.pop(prefix, None)


def forget_all():
    """Drops every set's shape and pool (after a command group failed to commit, its pops
    were not applied, so a pool no longer holds a random part of its set)."""
    _shapes.clear()
    _pools.clear()


# -- SPOP's pool -----------------------------------------------------------------------

def pop_member(store, prefix, count):
    """A uniformly random member of a set of `count` members, for SPOP to remove.

    A set of up to POOL_SET_MAX members keeps a *pool*: a uniformly random subset of
    max(count / POOL_RATIO, min(count, EXACT_LIMIT)) of its members, chosen in one scan by
    selection sampling and shuffled. Each pop takes the next member of the pool, so a
    run of pops is a uniformly random sequence of distinct members, as independent
    uniform pops are, at one scan of the set per count / POOL_RATIO pops (about POOL_RATIO
    records read per pop) instead of a Sampler's draws per pop.
    Removals by anything else (SREM, SMOVE, SPOP with a count) keep the pool a uniform
    random subset of what is left (they do not depend on what the pool holds), so a
    pooled member is only checked to still exist; additions forget the pool (forget()).
    Larger sets, and sets whose pool would pass POOL_BYTES, use Sampler.pick()."""
    if count <= POOL_SET_MAX:
        pool = _pools.get(prefix, False)
        if pool is not None:
            while pool:
                m = pool.pop()
                if store.get(prefix + m) is not None:
                    return m
            pool = _fill_pool(store, prefix, count)
            _pools.pop(prefix, None)
            _pools[prefix] = pool       # the most recent last
            if len(_pools) > POOL_SETS:
                _pools.popitem(last=False)
            if pool:
                return pool.pop()
    return Sampler(store, prefix, count).pick()


def _fill_pool(store, prefix, count):
    """A shuffled, uniformly random subset of the set's members (see pop_member), or None
    when its members are too long to keep that many."""
    need = count if count <= EXACT_LIMIT else max(EXACT_LIMIT, count // POOL_RATIO)
    with store.scan(prefix=prefix) as it:
        out = _select(it, len(prefix), count, need, POOL_BYTES, POOL_OVERHEAD)   # _select_py, in C
    if out is not None:
        _shuffle(out)
    return out


# The reference the C loop (fastsample.select) is held to by tests/server/test_server_sets.py.
def _select_py(it, skip, count, need, max_bytes, overhead):
    """Knuth's selection sampling over the member records of `it`: each member is taken
    with probability need / left, giving a uniformly random subset of `need` members
    (None when they, counted with `overhead` bytes each, pass max_bytes). fastsample.select
    is the same loop in C."""
    left = count
    size = 0
    out = []
    rand = random.random
    for k, _ in it:
        if rand() * left < need:
            out.append(k[skip:])
            size += len(k) - skip + overhead
            if size > max_bytes:
                return None
            need -= 1
            if need == 0:
                break
        left -= 1
    return out


class Sampler:
    """Random members of one set, for one command (see the module doc)."""

    def __init__(self, store, prefix, count):
        self.store = store           # the Store to read
        self.prefix = prefix         # the set's member-record prefix
        self.count = count           # the set's cardinality (Coll.count)
        self.small = None            # all members, when count <= EXACT_LIMIT (read at first use)
        self.shape = None            # the set's Shape otherwise
        self.mean = 0.0              # the mean code distance between core members
        self.c = 0.0                 # the acceptance threshold on G

    def _prepare(self):
        if self.small is not None or self.shape is not None:
            return
        if self.count <= EXACT_LIMIT:
            self.small = list(members(self.store, self.prefix))
            return
        shape = _shapes.get(self.prefix)
        if shape is None or shape.uses >= CACHE_USES or len(shape.edge) * 2 > self.count:
            head = list(itertools.islice(members(self.store, self.prefix), EDGE))
            tail = list(itertools.islice(members_reverse(self.store, self.prefix), EDGE))
            shape = Shape(self.prefix, head, tail, self.count)
            _shapes[self.prefix] = shape
            if len(_shapes) > CACHE_SETS:
                _shapes.popitem(last=False)
        else:
            _shapes.move_to_end(self.prefix)
        self.shape = shape
        mean = (shape.hi - shape.lo) / max(1, self.count - len(shape.edge))
        self.mean = mean
        self.c = shape.accept * mean

    # -- walking the core ---------------------------------------------------------------

    def _cycle(self, start, seek, wrapped=False):
        """Record keys of core members from `start` on, wrapping once from the core's end
        to its start and stopping at `seek`: (key, wrapped)."""
        if not wrapped:
            with self.store.scan(start=start, end=self.shape.hi_key) as it:
                for k, _ in it:
                    yield k, False
            start = self.shape.lo_key
        with self.store.scan(start=start, end=seek) as it:
            for k, _ in it:
                yield k, True

    def _before(self, key):
        """Record keys of core members before `key`, descending, wrapping from the core's
        start to its end: (key, wrapped)."""
        shape = self.shape
        with self.store.scan(start=shape.lo_key, end=key, reverse=True) as it:
            for k, _ in it:
                yield k, False
        with self.store.scan(start=key, end=shape.hi_key, reverse=True) as it:
            for k, _ in it:
                yield k, True

    def _code(self, key, wrapped, shift):
        return self.shape.code(key[len(self.prefix):]) + (shift if wrapped else 0)

    def _draw(self, exclude):
        """(member, None) from an accepted draw in the core, (member, G) from a rejected
        one, (None, None) when the core has no member left."""
        shape = self.shape
        n = len(self.prefix)
        span = shape.hi - shape.lo
        s = shape.lo + 1 + random.randrange(span)
        seek = shape.seek_key(s)
        j = random.randrange(WINDOW)
        early = s - int((WINDOW + 1 - j) * self.mean * REACH)   # about WINDOW - j members back
        before = []                  # record keys read before the seek, ascending
        walked = []                  # (record key, wrapped) from the seek on, excluded ones too
        out = None                   # the walk's current member: (record key, wrapped)
        # One scan from a little before the seek: the members before it (for G), then the
        # landing member and the walk. The loop runs a second time only to wrap around.
        start, end, wrapped = (shape.seek_key(early) if early > shape.lo else seek), shape.hi_key, False
        while True:
            crowded = False
            with self.store.scan(start=start, end=end) as it:
                for k, _ in it:
                    if not wrapped and k < seek:
                        before.append(k)
                        if len(before) > 8 * WINDOW:   # far more crowded than the mean here
                            crowded = True
                            break
                        continue
                    walked.append((k, wrapped))
                    if exclude and k[n:] in exclude:
                        continue
                    out = walked[-1]
                    if j == 0:
                        break
                    j -= 1
                else:
                    if not wrapped:  # ran off the core's end: go on from its start
                        start, end, wrapped = shape.lo_key, seek, True
                        continue
            if crowded:              # read from the seek itself, and the members before it backwards
                before.clear()
                start = seek
                continue
            break
        if out is None:
            return None, None
        # G needs the WINDOW-th member before out.
        if len(walked) > WINDOW:
            lo = self._code(*walked[-1 - WINDOW], span)
        elif len(before) + len(walked) > WINDOW:
            lo = self._code(before[len(before) + len(walked) - 1 - WINDOW], False, 0)
        else:
            need = WINDOW + 1 - len(walked) - len(before)
            back = list(itertools.islice(self._before(before[0] if before else seek), need))
            if back:
                lo = self._code(*back[-1], -span)
            else:                    # a core of at most WINDOW members: G is a guess
                lo = self._code(before[0], False, 0) if before else self._code(*walked[0], span)
        g = (self._code(*out, span) - lo) / WINDOW
        if g > self.c and random.random() * g >= self.c:
            return out[0][n:], g
        self._learn(g)
        if random.random() < TAIL_P:
            # A further geometric walk: it keeps a uniform pick uniform, and reaches the
            # members that no seek lands near.
            steps = int(random.expovariate(1.0 / WINDOW))
            if steps:
                for item in self._cycle(out[0] + b"\x00", seek, out[1]):
                    if not (exclude and item[0][n:] in exclude):
                        out = item
                        steps -= 1
                        if steps == 0:
                            break
        return out[0][n:], None

    def _learn(self, g):
        """Adapts the acceptance threshold to the set (see the module doc): accepted draws
        are about uniform over the members, so their G values, each weighted by how much
        the threshold held it back, show how G is spread over the members. The threshold
        goes to its LOW_QUANTILE, within ACCEPT_RANGE mean distances."""
        shape = self.shape
        shape.seen.append((g / self.mean, max(1.0, self.c / g) if g > 0 else 1.0 / ACCEPT_RANGE[0]))
        if len(shape.seen) < LEARN_EVERY * 4:
            return
        seen = sorted(shape.seen)
        del shape.seen[:LEARN_EVERY]
        total = sum(w for _, w in seen)
        below = 0.0
        for ratio, w in seen:
            below += w
            if below >= LOW_QUANTILE * total:
                break
        shape.accept = min(ACCEPT_RANGE[1], max(ACCEPT_RANGE[0], ratio))
        self.c = shape.accept * self.mean

    # -- picks --------------------------------------------------------------------------

    def _edge_pick(self, exclude):
        """A random edge member that still exists and is not excluded, or None."""
        edge = self.shape.edge
        while edge:
            i = random.randrange(len(edge))
            m = edge[i]
            if exclude and m in exclude:
                pool = [x for x in edge if x not in exclude]
                if not pool:
                    return None
                m = random.choice(pool)
                i = edge.index(m)
            if self.store.get(self.prefix + m) is not None:
                return m
            edge[i] = edge[-1]       # removed since the shape was learned
            edge.pop()
        return None

    def pick(self, exclude=None):
        """One random member not in `exclude` (a set or dict of members), or None if none
        is left."""
        self._prepare()
        if self.small is not None:
            pool = self.small if not exclude else [m for m in self.small if m not in exclude]
            return random.choice(pool) if pool else None
        shape = self.shape
        shape.uses += 1
        if random.randrange(self.count) < len(shape.edge):
            m = self._edge_pick(exclude)
            if m is not None:
                return m
        fallback, least = None, None
        for _ in range(MAX_TRIES):
            m, g = self._draw(exclude)
            if m is None:
                return self._edge_pick(exclude)    # the core is used up
            if g is None:
                return m
            if least is None or g < least:     # a rejected draw from the least crowded-out spot
                fallback, least = m, g
        return fallback

    def distinct(self, k):
        """k distinct random members (k < count), in random order. When k is more than
        1/STREAM_RATIO of the set, one pass over the set takes k random ranks (exactly
        uniform, cheaper than k picks); otherwise k picks, each skipping the members
        already chosen."""
        self._prepare()
        if self.small is not None:
            return random.sample(self.small, k)
        if k * STREAM_RATIO > self.count:
            return self._by_rank(sorted(random.sample(range(self.count), k)))
        chosen = {}
        while len(chosen) < k:
            m = self.pick(chosen)
            if m is None:
                break
            chosen[m] = None
        return list(chosen)

    def repeated(self, k):
        """k random members, each picked independently (duplicates possible), in random
        order: by ranks in one pass over the set when k is more than 1/STREAM_RATIO of
        it, else k picks."""
        self._prepare()
        if self.small is not None:
            return random.choices(self.small, k=k) if self.small else []
        if k * STREAM_RATIO > self.count:
            return self._by_rank(sorted(random.randrange(self.count) for _ in range(k)))
        return [self.pick() for _ in range(k)]

    def _by_rank(self, ranks):
        """The members at these ascending ranks (repeats allowed), shuffled: one scan."""
        out = []
        i = 0
        for rank, m in enumerate(members(self.store, self.prefix)):
            while i < len(ranks) and ranks[i] == rank:
                out.append(m)
                i += 1
            if i == len(ranks):
                break
        random.shuffle(out)
        return out
