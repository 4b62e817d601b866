"""Streams on the server's key layout: entries, consumer groups, consumers and
pending-entry lists as sub-records of a stream's version. The layout is
documented in docs/format/server-keys.md (Streams); in short (each line a kind
under sub_prefix(db, kind, version)):

    t  ms(8) seq(8)                                 -> entry: node(8), then (u32 len, bytes) per
                                                       field and value
    c  group                                        -> group: last-delivered id, entries-read,
                                                       consumer count, pending count
    o  len(group)(4) group consumer                 -> consumer: seen-time, active-time, pending
    o  FF FF FF FF node(8)                          -> a closed node's figures (NodeInfo, streamnodes)
    p  len(group)(4) group 0x00 ms(8) seq(8)        -> pending entry (group PEL): delivery time,
                                                       delivery count, consumer name
    p  len(group)(4) group 0x01 len(consumer)(4) consumer ms(8) seq(8) -> b""  (consumer's PEL)

The stream's meta record (Coll) counts live entries; Coll.extra holds the last
generated id, the recorded first id, the largest deleted id, the entries ever
added, the number of groups and the bookkeeping of Redis's radix-tree nodes
(StreamMeta). A command touches only the records it needs: XADD is two puts,
XRANGE one bounded range scan, XACK a get and two deletes per id, a consumer's
PEL is a range of its own.

A Stream is one command's handle on a key: entries and trimming here, groups,
consumers and PELs in streamgroups.GroupRecords, ids in streamids. The groups and
consumers a command reads are cached, changed in place, and written back once by
save() with the meta record.
"""
import struct

from . import streamnodes
from .keyspace import TYPE_STREAM
# Re-exported: the commands import ids, groups and records from here.
from .streamgroups import (INVALID_ENTRIES_READ, SCAN_BATCH, Consumer, Group, GroupRecords, Nack,  # noqa: F401
                           check_group_names)
from .streamids import (INVALID_ID, MAX_ID, ZERO_ID, decr_id, format_id, incr_id, parse_id,  # noqa: F401
                        parse_interval)

__all__ = ["Stream", "StreamMeta", "NodeInfo", "NODE_RECORDS", "Group", "Consumer", "Nack", "MAX_ID", "ZERO_ID", "INVALID_ENTRIES_READ",
           "INVALID_ID", "format_id", "parse_id", "parse_interval", "incr_id", "decr_id", "encode_fields",
           "decode_fields", "entry_node", "check_group_names"]

_U32 = struct.Struct(">I")
_ID = struct.Struct(">QQ")
_META = struct.Struct(">11Q")     # last, first, max-deleted (ms, seq each), entries-added, groups, head, nodes
_NODEINFO = struct.Struct(">9Q")  # node, fill, live, size, master (ms, seq), digest, last (ms, seq)
NODE_RECORDS = b"\xff\xff\xff\xff"  # o-kind prefix of node records: no group name is 2^32 - 1 bytes long  # last, first, max-deleted (ms, seq each), entries-added, groups, head/tail nodes
_NODE = struct.Struct(">Q")


# -- values --------------------------------------------------------------------------------

def encode_fields(node, items):
    """An entry's value: its node (u64 big-endian), then each field and value as a u32
    big-endian length and its bytes."""
    return _NODE.pack(node) + b"".join(_U32.pack(len(x)) + x for x in items)


def entry_node(raw):
    return _NODE.unpack_from(raw)[0]


def decode_fields(raw):
    """The fields and values of an entry's value (after its node number)."""
    out = []
    pos, end = 8, len(raw)
    unpack = _U32.unpack_from
    while pos < end:
        n = unpack(raw, pos)[0] + pos + 4
        out.append(raw[pos + 4:n])
        pos = n
    return out


class NodeInfo:
    """What Redis would know of one of its radix-tree nodes (a listpack), see streamnodes."""
    __slots__ = ("node", "fill", "live", "size", "master", "digest", "last")

    def __init__(self, node=0, fill=0, live=0, size=0, master=ZERO_ID, digest=0, last=ZERO_ID):
        self.node = node                   # its number (entries record it); 0: none yet
        self.fill = fill                   # entries ever appended to it (deleted ones too)
        self.live = live                   # its live entries (kept for the tail node only)
        self.size = size                   # its listpack bytes, less the count elements
        self.master = master               # id of its first entry (Redis's node key)
        self.digest = digest               # streamnodes.fields_digest of its master entry's fields
        self.last = last                   # id of the last entry appended to it (deleted or not)

    def encode(self):
        return _NODEINFO.pack(self.node, self.fill, self.live, self.size, *self.master, self.digest, *self.last)

    @classmethod
    def decode(cls, raw, offset=0):
        v = _NODEINFO.unpack_from(raw, offset)
        return cls(v[0], v[1], v[2], v[3], (v[4], v[5]), v[6], (v[7], v[8]))


class StreamMeta:
    """Coll.extra of a stream (160 bytes, docs/format/server-keys.md (Streams))."""
    __slots__ = ("last", "first", "max_deleted", "entries_added", "groups", "head_node", "head_live", "nodes",
                 "tail")

    def __init__(self, last=ZERO_ID, first=ZERO_ID, max_deleted=ZERO_ID, entries_added=0, groups=0, head_node=0,
                 head_live=0, nodes=0, tail=None):
        self.last = last                   # the last id generated (XADD, XSETID): new ids must exceed it
        self.first = first                 # Redis's recorded first id: the first live entry, 0-0 when empty
        self.max_deleted = max_deleted     # the largest id XDEL removed (or XSETID MAXDELETEDID set)
        self.entries_added = entries_added  # entries ever added (XADD count, or XSETID ENTRIESADDED)
        self.groups = groups               # number of consumer groups (c records)
        # Redis packs entries in radix-tree nodes and '~' trimming removes whole nodes only:
        # each entry records the node Redis would have put it in (streamnodes).
        self.head_node = head_node         # node of the first live entry (valid when head_live > 0)
        self.head_live = head_live         # live entries in the head node; 0: not known, count it again
        self.nodes = nodes                 # nodes with live entries (XINFO radix-tree-keys)
        self.tail = tail or NodeInfo()     # the node the last entry went to (closed nodes: node records)

    def encode(self):
        return _META.pack(*self.last, *self.first, *self.max_deleted, self.entries_added, self.groups,
                          self.head_node, self.head_live, self.nodes) + self.tail.encode()

    @classmethod
    def decode(cls, raw):
        if not raw:
            return cls()
        v = _META.unpack_from(raw)
        return cls((v[0], v[1]), (v[2], v[3]), (v[4], v[5]), v[6], v[7], v[8], v[9], v[10],
                   NodeInfo.decode(raw, _META.size))


class Stream(GroupRecords):
    """One command's handle on a stream key (see the module docstring)."""

    def __init__(self, ks, db, key, e):
        self.ks = ks                       # the Keyspace
        self.store = ks.store              # its Store (the group's transaction)
        self.db = db                       # logical database
        self.key = key                     # the Redis key
        self.e = e                         # the meta Entry (body: Coll)
        self.meta = StreamMeta.decode(e.body.extra)
        coll = e.body
        self._t = coll.prefix(db, b"t")    # entry records
        self._c = coll.prefix(db, b"c")    # group records
        self._o = coll.prefix(db, b"o")    # consumer records
        self._p = coll.prefix(db, b"p")    # PEL records and consumer PEL index
        self._groups = {}                  # name -> Group, or None when known absent
        self._consumers = {}               # (group, name) -> Consumer, or None when known absent
        self._dirty_groups = set()         # group names to write back
        self._dirty_consumers = set()      # (group, name) to write back
        self.changed = False               # something to save

    @classmethod
    def open(cls, ks, db, key, write=False, create=False):
        """The stream at key or None; WrongType for another type. write: for a writer
        (expired keys are removed first); create: an empty stream when absent."""
        if write:
            e = ks.collection_for_write(db, key, TYPE_STREAM, create=create, extra=StreamMeta().encode())
        else:
            e = ks.collection(db, key, TYPE_STREAM)[0]
        return None if e is None else cls(ks, db, key, e)

    @property
    def length(self):
        return self.e.body.count

    def flush(self):
        """Writes changed group and consumer records (before scans that must see them)."""
        for name in self._dirty_groups:
            g = self._groups.get(name)
            if g is not None:
                self.store.put(self._c + name, g.encode())
        self._dirty_groups.clear()
        for gc in self._dirty_consumers:
            c = self._consumers.get(gc)
            if c is not None:
                self.store.put(self._okey(gc[0], gc[1]), c.encode())
        self._dirty_consumers.clear()

    def save(self, force=False):
        """Writes back everything changed, with the meta record (an empty stream stays)."""
        if not (self.changed or force):
            return
        self.flush()
        self.e.body.extra = self.meta.encode()
        self.ks.save(self.db, self.key, self.e, keep_empty=True)
        self.changed = False

    # -- entries ---------------------------------------------------------------------------

    def _ekey(self, id_):
        return self._t + _ID.pack(*id_)

    def get_entry(self, id_):
        """The fields and values of entry id_, or None."""
        raw = self.store.get(self._ekey(id_))
        return None if raw is None else decode_fields(raw)

    def _nkey(self, node):
        return self._o + NODE_RECORDS + _NODE.pack(node)

    def node_info(self, node):
        """The figures of `node`: the tail's from the meta record, a closed node's from its record."""
        if node == self.meta.tail.node:
            return self.meta.tail
        raw = self.store.get(self._nkey(node))
        return None if raw is None else NodeInfo.decode(raw)

    def _reopen_last_node(self):
        """XDEL emptied the tail node: Redis appends to its last remaining node again. Makes
        that node (the last live entry's) the tail, with its live entries counted (a
        reverse scan of at most one node)."""
        node, live = None, 0
        with self.store.scan(prefix=self._t, reverse=True) as it:
            for _, v in it:
                n = entry_node(v)
                if node is None:
                    node = n
                elif n != node:
                    break
                live += 1
        info = None if node is None else self.node_info(node)
        if info is not None:
            info.live = live
            self.store.delete(self._nkey(node))
            self.meta.tail = info

    def append(self, id_, items, node_entries, node_bytes):
        """Adds entry id_ (above every id in the stream) to the tail node, or to a new node
        when the tail is full as Redis counts it: node_entries entries appended (0: no
        limit) or node_bytes listpack bytes (see streamnodes)."""
        m = self.meta
        was_empty = self.e.body.count == 0
        fields, values = items[0::2], items[1::2]
        if m.tail.live == 0 and not was_empty:
            self._reopen_last_node()
        tail = m.tail
        new = tail.live == 0
        if not new:
            size = tail.size + streamnodes.counts_size(tail.live, tail.fill - tail.live)
            new = size + sum(map(len, items)) >= node_bytes or (node_entries > 0 and tail.fill >= node_entries)
        digest = streamnodes.fields_digest(fields)
        if new:
            if tail.live:                  # close it: its figures go to its node record
                closed = NodeInfo(tail.node, tail.fill, 0, tail.size, tail.master, tail.digest, tail.last)
                self.store.put(self._nkey(tail.node), closed.encode())
            m.tail = tail = NodeInfo(tail.node + 1, 0, 0, streamnodes.master_size(fields), id_, digest)
            m.nodes += 1
        tail.size += streamnodes.entry_size(id_, tail.master, fields, values, digest == tail.digest)
        tail.last = id_
        self.store.put(self._ekey(id_), encode_fields(tail.node, items))
        tail.fill += 1
        tail.live += 1
        if was_empty:
            m.head_node, m.head_live = tail.node, 1
        elif m.head_live and m.head_node == tail.node:
            m.head_live += 1
        self.e.body.count += 1
        m.entries_added += 1
        m.last = id_
        if was_empty:
            m.first = id_
        self.changed = True

    def _dropped(self, node):
        """Bookkeeping for a deleted entry of `node`."""
        m = self.meta
        self.e.body.count -= 1
        if node == m.tail.node and m.tail.live:
            m.tail.live -= 1
        if node == m.head_node and m.head_live:
            m.head_live -= 1               # 0: the head node is gone, found again on demand
        self.changed = True

    def entries(self, start, end, count=0, rev=False):
        """[(id, fields)] with start <= id <= end, ascending (descending if rev), at most
        count (0: all)."""
        return self._scan_entries(start, end, count, rev, lambda ident, fields: (ident, fields))

    def entry_replies(self, start, end, count=0, rev=False):
        """As entries(), formatted for a reply: [[b"ms-seq", [field, value, ...]], ...]."""
        return self._scan_entries(start, end, count, rev, lambda ident, fields: [b"%d-%d" % ident, fields])

    def _scan_entries(self, start, end, count, rev, make):
        """make(id, fields) for each entry of entries(start, end, count, rev)."""
        if self.e.body.count == 0 or start > end:
            return []
        if not rev and start < self.meta.first:
            start = self.meta.first        # skip the deleted head without walking it
        if start > end:
            return []
        out = []
        add = out.append
        t = len(self._t)
        unpack = _ID.unpack_from
        limit = count or -1
        with self.store.scan(start=self._ekey(start), end=self._ekey(end) + b"\x00", reverse=rev) as it:
            for k, v in it:
                add(make(unpack(k, t), decode_fields(v)))
                if len(out) == limit:
                    break
        return out

    def last_valid_id(self):
        """The id of the last live entry, or None."""
        found = self.entries(ZERO_ID, MAX_ID, 1, rev=True)
        return found[0][0] if found else None

    def _refresh_first(self):
        """Sets first-id from the first entry record; returns that entry's node (None if empty)."""
        self.meta.first = ZERO_ID
        if self.e.body.count == 0:
            return None
        with self.store.scan(prefix=self._t) as it:
            for k, v in it:
                self.meta.first = _ID.unpack_from(k, len(self._t))
                return entry_node(v)
        return None

    def _node_gone(self, node):
        """Node has no live entry left (Redis frees it)."""
        self.meta.nodes -= 1
        if node != self.meta.tail.node:
            self.store.delete(self._nkey(node))

    def _node_alive(self, id_, node):
        """Whether node still has a live entry after entry id_ (of that node) was deleted:
        its entries are contiguous, so the neighbours tell."""
        m = self.meta
        if (node == m.head_node and m.head_live) or (node == m.tail.node and m.tail.live):
            return True
        k = self._ekey(id_)
        with self.store.scan(start=k, prefix=self._t) as it:
            for _, v in it:
                if entry_node(v) == node:
                    return True
                break
        with self.store.scan(start=self._t, end=k, reverse=True) as it:
            for _, v in it:
                return entry_node(v) == node
        return False

    def delete_entries(self, ids):
        """XDEL: deletes the given ids that exist; returns how many."""
        deleted = 0
        first_hit = False
        m = self.meta
        for id_ in ids:
            k = self._ekey(id_)
            raw = self.store.get(k)
            if raw is None:
                continue
            self.store.delete(k)
            node = entry_node(raw)
            self._dropped(node)
            if not self._node_alive(id_, node):
                self._node_gone(node)
            deleted += 1
            if id_ == m.first:
                first_hit = True
            if id_ > m.max_deleted:
                m.max_deleted = id_
        if deleted:
            if self.e.body.count == 0:
                m.first = ZERO_ID
            elif first_hit:
                self._refresh_first()
        return deleted

    def _delete_head(self, limit, below=None):
        """Deletes up to `limit` entries from the head (None: no limit), stopping at the first
        id >= below. Returns how many."""
        deleted = 0
        start = self._ekey(self.meta.first)
        t = len(self._t)
        removed, last_node = [], None
        while limit is None or deleted < limit:
            want = SCAN_BATCH if limit is None else min(SCAN_BATCH, limit - deleted)
            batch = []
            stop = False
            with self.store.scan(start=start, prefix=self._t) as it:
                for k, v in it:
                    if below is not None and _ID.unpack_from(k, t) >= below:
                        stop = True
                        break
                    batch.append((k, entry_node(v)))
                    if len(batch) >= want:
                        break
            for k, node in batch:
                self.store.delete(k)
                self._dropped(node)
                if node != last_node:
                    removed.append(node)
                    last_node = node
            deleted += len(batch)
            if stop or len(batch) < want:
                break
            start = batch[-1][0] + b"\x00"
        if deleted:
            if self._refresh_first() == last_node:
                removed.pop()              # the last node touched keeps live entries
            for node in removed:
                self._node_gone(node)
        return deleted

    def _scan_head_node(self):
        """(node, ids) of the first live entry's node."""
        t = len(self._t)
        node, ids = None, []
        with self.store.scan(start=self._ekey(self.meta.first), prefix=self._t) as it:
            for k, v in it:
                n = entry_node(v)
                if node is None:
                    node = n
                elif n != node:
                    break
                ids.append(_ID.unpack_from(k, t))
        return node, ids

    def head_node(self):
        """(node, live entries) of the first node (the stream must not be empty)."""
        m = self.meta
        if not m.head_live:
            node, ids = self._scan_head_node()
            m.head_node, m.head_live = node, len(ids)
            self.changed = True
        return m.head_node, m.head_live

    def node_estimate(self):
        """How many radix-tree nodes Redis would hold the live entries in."""
        return self.meta.nodes

    def trim(self, strategy, threshold, approx, limit):
        """XTRIM/XADD trimming: strategy "maxlen" (threshold: length) or "minid" (threshold:
        id). Exact trimming removes every entry over the threshold. Approximate trimming (~)
        removes whole nodes from the head, as Redis does, and stops before removing more than
        `limit` entries (0: no limit). Returns entries removed."""
        if self.e.body.count == 0:
            return 0
        if not approx:
            if strategy == "maxlen":
                excess = self.e.body.count - threshold
                return self._delete_head(excess) if excess > 0 else 0
            return self._delete_head(None, below=threshold)
        deleted = 0
        while self.e.body.count:
            if strategy == "maxlen":
                _, live = self.head_node()
                removable = self.e.body.count - live >= threshold
            else:
                if self.meta.first >= threshold:
                    break
                node, live = self.head_node()
                info = self.node_info(node)
                # Redis compares the node's last entry, deleted or not
                removable = info is not None and info.last < threshold
            if not removable or (limit and deleted + live > limit):
                break
            deleted += self._delete_head(live)
        return deleted

    # -- lag (Redis's logical read counters) ------------------------------------------------

    def range_has_tombstones(self, start, end=MAX_ID):
        m = self.meta
        if self.e.body.count == 0 or m.max_deleted == ZERO_ID:
            return False
        if m.first > m.max_deleted:
            return False
        return start <= m.max_deleted <= end

    def estimate_entries_read(self, id_):
        """The logical counter of id_ (entries added up to it), or -1 when unknown."""
        m = self.meta
        if not m.entries_added:
            return 0
        if self.e.body.count == 0 and id_ <= m.last:
            return m.entries_added
        if id_ == m.last:
            return m.entries_added
        if id_ > m.last:
            return INVALID_ENTRIES_READ
        if m.max_deleted == ZERO_ID or m.max_deleted < m.first:
            if id_ < m.first:
                return m.entries_added - self.e.body.count
            if id_ == m.first:
                return m.entries_added - self.e.body.count + 1
        return INVALID_ENTRIES_READ

    def group_lag(self, g):
        """XINFO's lag of group g, or None when it cannot be known."""
        m = self.meta
        if not m.entries_added:
            return 0
        if g.entries_read != INVALID_ENTRIES_READ and not self.range_has_tombstones(g.last_id):
            return m.entries_added - g.entries_read
        read = self.estimate_entries_read(g.last_id)
        return None if read == INVALID_ENTRIES_READ else m.entries_added - read

    def advance_group(self, g, id_):
        """A '>' read delivered id_ past g's last-delivered id: move the cursor and its counter."""
        if id_ <= g.last_id:
            return
        if g.entries_read != INVALID_ENTRIES_READ and not self.range_has_tombstones(id_):
            g.entries_read += 1
        elif self.meta.entries_added:
            g.entries_read = self.estimate_entries_read(id_)
        g.last_id = id_
        self.touch_group(g)
