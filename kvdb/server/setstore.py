"""Set storage on the engine: one ordered sub-record per member, so a set costs what
its members cost and every member operation is one engine lookup. The layout is
documented in docs/format/server-keys.md (Sets); in short:

    0x01 db "s" version member -> b""        (one record per member, empty value)

The key's meta record holds Coll(version, count, b""): count is the cardinality, so
SCARD reads no member record. Members are ordered by their bytes, which gives:

* membership: one get;
* SMEMBERS, SSCAN, and the members of a set algebra: one range scan, streamed;
* SUNION: a k-way merge of the sources' ordered scans (bounded memory);
* SINTER: a scan of the smallest source, each member probed in the others;
* random members (SPOP, SRANDMEMBER): seeks to random points of the member space
  (setsample.py), never a copy of the whole set.

Everything here works on a Store and the prefix of one set's member records
(`coll.prefix(db, KIND)`); the commands (commands/sets.py) deal with keys, types,
counts and notifications.
"""
import heapq

from .keyspace import MAX_NAME

__all__ = ["KIND", "contains", "members", "members_reverse", "inter", "union", "diff"]

KIND = b"s"          # the sub-record kind of set members (keyspace.COLLECTION_KINDS)


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


def members_reverse(store, prefix):
    """The members in descending byte order (a generator holding one scan open)."""
    n = len(prefix)
    with store.scan(prefix=prefix, reverse=True) as it:
        for k, _ in it:
            yield k[n:]


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
