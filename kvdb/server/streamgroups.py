"""Consumer groups of a stream: group, consumer and pending-entry records (layout in
docs/format/server-keys.md (Streams)) and GroupRecords, the part of streamstore.Stream that
reads and writes them. Groups and consumers read by a command are cached on the Stream,
changed in place and written back by Stream.flush()/save()."""
import struct

from .commands.registry import CommandError
from .keyspace import MAX_NAME, check_name
from .streamids import MAX_ID, ZERO_ID

__all__ = ["Group", "Consumer", "Nack", "GroupRecords", "check_group_names", "INVALID_ENTRIES_READ"]

_U32 = struct.Struct(">I")
_ID = struct.Struct(">QQ")
_GROUP = struct.Struct(">QQqQQ")     # last-delivered ms, seq, entries-read (-1: unknown), consumers, pending
_CONSUMER = struct.Struct(">QqQ")    # seen-time, active-time (-1: never), pending
_NACK = struct.Struct(">QQ")         # delivery time, delivery count (then the consumer name)
INVALID_ENTRIES_READ = -1
SCAN_BATCH = 512   # keys collected per scan when deleting a range


class Group:
    """A consumer group (c record)."""
    __slots__ = ("name", "last_id", "entries_read", "consumers", "pending")

    def __init__(self, name, last_id, entries_read, consumers=0, pending=0):
        self.name = name                   # the group's name
        self.last_id = last_id             # last-delivered id: '>' reads entries after it
        self.entries_read = entries_read   # logical read counter, -1 when unknown (lag)
        self.consumers = consumers         # number of consumers (o records of the group)
        self.pending = pending             # entries in the group's PEL

    def encode(self):
        return _GROUP.pack(*self.last_id, self.entries_read, self.consumers, self.pending)


class Consumer:
    """A consumer of a group (o record)."""
    __slots__ = ("group", "name", "seen_time", "active_time", "pending")

    def __init__(self, group, name, seen_time, active_time=-1, pending=0):
        self.group = group                 # its group's name
        self.name = name                   # the consumer's name
        self.seen_time = seen_time         # ms: its last attempted interaction (read, claim)
        self.active_time = active_time     # ms: its last successful interaction, -1 never
        self.pending = pending             # entries in its PEL

    def encode(self):
        return _CONSUMER.pack(self.seen_time, self.active_time, self.pending)


class Nack:
    """A pending entry of a group's PEL (p record): delivered, not yet acknowledged."""
    __slots__ = ("id", "consumer", "delivery_time", "delivery_count")

    def __init__(self, id_, consumer, delivery_time, delivery_count):
        self.id = id_                          # the entry's id
        self.consumer = consumer               # the owning consumer's name
        self.delivery_time = delivery_time     # ms of the last delivery (idle time = now - it)
        self.delivery_count = delivery_count   # times delivered

    def encode(self):
        return _NACK.pack(self.delivery_time, self.delivery_count) + self.consumer


def check_group_names(group, consumer=None):
    """Group and consumer names are parts of sub-record keys: refuse names too long to store."""
    check_name(group, "consumer group name")
    if consumer is not None and len(group) + len(consumer) > MAX_NAME:
        raise CommandError(f"ERR consumer group name and consumer name are {len(group) + len(consumer)} bytes, "
                           f"kvdb's server stores them up to {MAX_NAME} bytes together")


class GroupRecords:
    """Groups, consumers and PELs of a Stream (mixed into streamstore.Stream, which
    provides store, the record prefixes _c/_o/_p and the caches)."""

    # -- groups ------------------------------------------------------------------------------

    def group(self, name):
        """The group called name, or None."""
        if name in self._groups:
            return self._groups[name]
        if len(name) > MAX_NAME:
            return None                    # too long to have been stored (check_group_names)
        raw = self.store.get(self._c + name)
        g = None
        if raw is not None:
            v = _GROUP.unpack(raw)
            g = Group(name, (v[0], v[1]), v[2], v[3], v[4])
        self._groups[name] = g
        return g

    def touch_group(self, g):
        self._dirty_groups.add(g.name)
        self.changed = True

    def groups(self):
        """Every group, in name order."""
        self.flush()
        out = []
        c = len(self._c)
        with self.store.scan(prefix=self._c) as it:
            for k, v in it:
                name = k[c:]
                g = self._groups.get(name)
                if g is None:
                    x = _GROUP.unpack(v)
                    g = Group(name, (x[0], x[1]), x[2], x[3], x[4])
                    self._groups[name] = g
                out.append(g)
        return out

    def create_group(self, name, last_id, entries_read):
        """A new group, or None when one of that name exists."""
        check_group_names(name)
        if self.group(name) is not None:
            return None
        g = Group(name, last_id, entries_read)
        self._groups[name] = g
        self.touch_group(g)
        self.meta.groups += 1
        return g

    def destroy_group(self, g):
        """Deletes group g with its consumers and pending entries."""
        self.flush()
        gp = _U32.pack(len(g.name)) + g.name
        for prefix in (self._o + gp, self._p + gp + b"\x00", self._p + gp + b"\x01"):
            self._delete_prefix(prefix)
        self.store.delete(self._c + g.name)
        self._groups[g.name] = None
        self._dirty_groups.discard(g.name)
        for gc in [gc for gc in self._consumers if gc[0] == g.name]:
            del self._consumers[gc]
            self._dirty_consumers.discard(gc)
        self.meta.groups -= 1
        self.changed = True

    def _delete_prefix(self, prefix):
        while True:
            with self.store.scan(prefix=prefix) as it:
                keys = []
                for k, _ in it:
                    keys.append(k)
                    if len(keys) >= SCAN_BATCH:
                        break
            for k in keys:
                self.store.delete(k)
            if len(keys) < SCAN_BATCH:
                return

    # -- consumers ---------------------------------------------------------------------------

    def _okey(self, group, name):
        return self._o + _U32.pack(len(group)) + group + name

    def consumer(self, g, name):
        """Consumer name of group g, or None."""
        gc = (g.name, name)
        if gc in self._consumers:
            return self._consumers[gc]
        if len(g.name) + len(name) > MAX_NAME:
            return None
        raw = self.store.get(self._okey(g.name, name))
        c = None
        if raw is not None:
            v = _CONSUMER.unpack(raw)
            c = Consumer(g.name, name, v[0], v[1], v[2])
        self._consumers[gc] = c
        return c

    def touch_consumer(self, c):
        self._dirty_consumers.add((c.group, c.name))
        self.changed = True

    def create_consumer(self, g, name, now):
        """(consumer, created): consumer name of g, made (seen now, never active) if absent."""
        c = self.consumer(g, name)
        if c is not None:
            return c, False
        check_group_names(g.name, name)
        c = Consumer(g.name, name, now, -1, 0)
        self._consumers[(g.name, name)] = c
        self.touch_consumer(c)
        g.consumers += 1
        self.touch_group(g)
        return c, True

    def consumers(self, g):
        """Every consumer of g, in name order."""
        self.flush()
        prefix = self._o + _U32.pack(len(g.name)) + g.name
        n = len(prefix)
        out = []
        with self.store.scan(prefix=prefix) as it:
            for k, v in it:
                name = k[n:]
                c = self._consumers.get((g.name, name))
                if c is None:
                    x = _CONSUMER.unpack(v)
                    c = Consumer(g.name, name, x[0], x[1], x[2])
                    self._consumers[(g.name, name)] = c
                out.append(c)
        return out

    def delete_consumer(self, g, c):
        """Deletes consumer c of g and its pending entries; returns how many it had."""
        pending = 0
        while True:
            ids = self.consumer_pel(g, c.name, ZERO_ID, MAX_ID, SCAN_BATCH)
            for id_ in ids:
                self.store.delete(self._pkey(g.name, id_))
                self.store.delete(self._ckey(g.name, c.name, id_))
            pending += len(ids)
            if len(ids) < SCAN_BATCH:
                break
        g.pending -= pending
        g.consumers -= 1
        self.touch_group(g)
        self.store.delete(self._okey(g.name, c.name))
        self._consumers[(g.name, c.name)] = None
        self._dirty_consumers.discard((g.name, c.name))
        self.changed = True
        return pending

    # -- pending entries -----------------------------------------------------------------------

    def _pel_prefix(self, group):
        return self._p + _U32.pack(len(group)) + group + b"\x00"

    def _pkey(self, group, id_):
        return self._p + _U32.pack(len(group)) + group + b"\x00" + _ID.pack(*id_)

    def _cpel_prefix(self, group, consumer):
        return self._p + _U32.pack(len(group)) + group + b"\x01" + _U32.pack(len(consumer)) + consumer

    def _ckey(self, group, consumer, id_):
        return self._cpel_prefix(group, consumer) + _ID.pack(*id_)

    @staticmethod
    def _decode_nack(id_, raw):
        t, n = _NACK.unpack_from(raw)
        return Nack(id_, bytes(raw[16:]), t, n)

    def nack(self, g, id_):
        """The pending entry id_ of g, or None."""
        raw = self.store.get(self._pkey(g.name, id_))
        return None if raw is None else self._decode_nack(id_, raw)

    def pel(self, g, start=ZERO_ID, end=MAX_ID, count=0):
        """[Nack] of g's PEL with start <= id <= end, at most count (0: all)."""
        if start > end or g.pending == 0:
            return []
        prefix = self._pel_prefix(g.name)
        n = len(prefix)
        out = []
        with self.store.scan(start=prefix + _ID.pack(*start), end=prefix + _ID.pack(*end) + b"\x00") as it:
            for k, v in it:
                out.append(self._decode_nack(_ID.unpack_from(k, n), v))
                if count and len(out) >= count:
                    break
        return out

    def pel_edges(self, g):
        """(first, last) ids of g's PEL (it must not be empty)."""
        prefix = self._pel_prefix(g.name)
        n = len(prefix)
        with self.store.scan(prefix=prefix) as it:
            first = _ID.unpack_from(next(iter(it))[0], n)
        with self.store.scan(prefix=prefix, reverse=True) as it:
            last = _ID.unpack_from(next(iter(it))[0], n)
        return first, last

    def consumer_pel(self, g, name, start=ZERO_ID, end=MAX_ID, count=0):
        """[id] of consumer name's PEL with start <= id <= end, at most count (0: all)."""
        if start > end or len(g.name) + len(name) > MAX_NAME:
            return []
        prefix = self._cpel_prefix(g.name, name)
        n = len(prefix)
        out = []
        with self.store.scan(start=prefix + _ID.pack(*start), end=prefix + _ID.pack(*end) + b"\x00") as it:
            for k, _ in it:
                out.append(_ID.unpack_from(k, n))
                if count and len(out) >= count:
                    break
        return out

    def put_nack(self, g, nack):
        """Writes nack's delivery time and count (its owner unchanged)."""
        self.store.put(self._pkey(g.name, nack.id), nack.encode())
        self.changed = True

    def add_nack(self, g, c, id_, now):
        """Delivers id_ to consumer c: a new pending entry, or the existing one moved to c
        with its count reset to 1 (a '>' read after XGROUP SETID went back)."""
        old = self.nack(g, id_)
        if old is not None:
            self._unlink(g, old)
        else:
            g.pending += 1
            self.touch_group(g)
        nack = Nack(id_, c.name, now, 1)
        self._link(g, c, nack)
        return nack

    def assign_nack(self, g, nack, c):
        """Moves nack to consumer c (if another owns it) and writes it."""
        if nack.consumer != c.name:
            self._unlink(g, nack)
            nack.consumer = c.name
            self._link(g, c, nack)
        else:
            self.put_nack(g, nack)

    def force_nack(self, g, c, id_, now):
        """XCLAIM FORCE: a pending entry for id_ owned by c (count 1, delivered now)."""
        g.pending += 1
        self.touch_group(g)
        nack = Nack(id_, c.name, now, 1)
        self._link(g, c, nack)
        return nack

    def remove_nack(self, g, nack):
        """Acknowledges nack: gone from the group's and its consumer's PEL."""
        self._unlink(g, nack)
        self.store.delete(self._pkey(g.name, nack.id))
        g.pending -= 1
        self.touch_group(g)

    def _unlink(self, g, nack):
        self.store.delete(self._ckey(g.name, nack.consumer, nack.id))
        owner = self.consumer(g, nack.consumer)
        if owner is not None:
            owner.pending -= 1
            self.touch_consumer(owner)
        self.changed = True

    def _link(self, g, c, nack):
        self.store.put(self._pkey(g.name, nack.id), nack.encode())
        self.store.put(self._ckey(g.name, c.name, nack.id), b"")
        c.pending += 1
        self.touch_consumer(c)
