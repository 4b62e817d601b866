"""The primary's side of replication: the backlog of committed log records, one link per
connected replica, and WAIT.

A replica connects as a client and sends KVSYNC <replid> <seq> (replica.py). From then
on the connection carries the stream (stream.py) one way and REPLCONF ACK <seq>
commands the other. What the replica gets:

* continue (mode C): when <replid> is this primary's replication id and the backlog
  still holds every record after <seq>, the records from seq + 1 on;
* full (mode F): otherwise, a snapshot of the newest version (db.snapshot(), sent in
  SNAPSHOT frames from a task that yields to clients between frames), END, then the
  records after the snapshot's seq from the backlog.

The backlog starts when the first replica connects: the database's commit listener
then appends (seq, ops) of every commit, in commit order, to `pending` (on the thread
that commits, under the writer lock); pump(), on the loop after each command group
and each cron tick, encodes them into RECORD frames, keeps the newest
repl-backlog-size bytes of frames, and writes each online link the frames it lacks. A
link whose next record has left the backlog gets a FAIL frame and is closed; its
replica reconnects and syncs in full.
"""
import asyncio
import collections
import logging
import os
import time

from ..commands.registry import NO_REPLY
from . import stream

log = logging.getLogger("kvdb.server")

SNAPSHOT_FRAME_BYTES = 256 * 1024      # keys and values per SNAPSHOT frame
SNAPSHOT_BUFFER_BYTES = 8 << 20        # the snapshot task waits while the link has more unsent
PING_SECONDS = 1.0                     # a PING frame to every online link this often


def new_replid():
    return os.urandom(20).hex()


class Backlog:
    """The newest RECORD frames, at most `limit` bytes (always the newest one)."""

    def __init__(self, start_seq, limit):
        self.frames = collections.deque()  # (seq, frame bytes), seqs consecutive
        self.start = start_seq             # every record after this seq is held (or was trimmed)
        self.size = 0                      # bytes of the frames held
        self.limit = limit                 # repl-backlog-size

    def append(self, seq, data):
        self.frames.append((seq, data))
        self.size += len(data)
        while self.size > self.limit and len(self.frames) > 1:
            old_seq, old = self.frames.popleft()
            self.size -= len(old)
            self.start = old_seq

    def holds_after(self, seq):
        """Whether every record after `seq` (up to the newest) is here."""
        return seq >= self.start

    def frames_after(self, seq):
        """The frames of the records after seq, oldest first (holds_after(seq) must be true)."""
        if not self.frames or seq >= self.frames[-1][0]:
            return []
        out = []
        for s, data in reversed(self.frames):
            if s <= seq:
                break
            out.append(data)
        out.reverse()
        return out

    @property
    def first_seq(self):
        return self.start + 1


class Link:
    """One connected replica, seen from the primary."""

    def __init__(self, client, port, ip):
        self.client = client            # the replica's Client connection
        self.port = port                # REPLCONF listening-port (0 if not sent)
        self.ip = ip                    # REPLCONF ip-address, else the connection's peer address
        self.state = "wait_bgsave"      # wait_bgsave, send_bulk, online (Redis's words for INFO); records
                                        # go out only once online, after the stream's header
        self.next_seq = 0               # the next record's seq to send once online
        self.ack_seq = 0                # the newest seq the replica says it applied
        self.ack_time = time.monotonic()  # when it last acknowledged
        self.task = None                # the snapshot task of a full sync


class Waiter:
    __slots__ = ("client", "target", "wanted", "timer", "blocked")

    def __init__(self, client, target, wanted):
        self.client = client            # the client blocked in WAIT
        self.target = target            # the seq its writes are covered by
        self.wanted = wanted            # replicas it asked for
        self.timer = None               # asyncio TimerHandle, None without a timeout
        self.blocked = None             # the blocking.Waiter that parks the client for this WAIT


class Primary:
    def __init__(self, server):
        self.server = server            # app.Server
        self.replid = new_replid()      # names this primary's history (a new one per start/promotion)
        self.backlog = None             # Backlog, from the first replica's connection on
        self.pending = collections.deque()  # (seq, ops) committed, not yet in the backlog (commit listener)
        self.links = {}                 # Client -> Link
        self.waiters = []               # WAIT clients
        self.last_ping = 0.0            # monotonic time of the last PING round
        self.previous = None            # (replid, seq, own seq) after a promotion: this node held its
                                        # old primary's version `seq` as its own version `own seq`

    # -- the backlog -----------------------------------------------------------------

    def remember_previous(self, replid, seq, own_seq):
        self.previous = (replid, seq, own_seq)

    def forget_previous(self):
        self.previous = None

    def start_backlog(self):
        if self.backlog is not None:
            return
        db = self.server.db
        self.pending = collections.deque()
        self.backlog = Backlog(db.seq, self.server.config["repl-backlog-size"])
        db._set_commit_listener(self._committed)

    def stop_backlog(self):
        """No more records are kept (the node becomes a replica, or its database is replaced)."""
        if self.server.db is not None:
            self.server.db._set_commit_listener(None)
        self.backlog = None
        self.pending = collections.deque()

    def _committed(self, seq, ops):
        # the database's commit listener: under its writer lock, on the committing thread
        self.pending.append((seq, ops))

    def pump(self):
        """Loop thread: new commits into the backlog, and to every online link."""
        pending = self.pending
        while pending:
            seq, ops = pending.popleft()        # appended on the committing thread: one at a time
            if self.backlog is None:
                continue
            try:
                data = stream.record_frame(seq, ops)
            except (OverflowError, ValueError):
                # a commit past the stream's frame limit: no replica can follow this history
                self.close_all(f"commit {seq} is too large to replicate (over {stream.MAX_FRAME} bytes)")
                self.stop_backlog()
                self.replid = new_replid()
                return
            self.backlog.append(seq, data)
        for link in list(self.links.values()):
            if link.state == "online":
                self.send_records(link)

    def send_records(self, link):
        backlog = self.backlog
        if backlog is None or not backlog.holds_after(link.next_seq - 1):
            self.drop(link, "its next record left the backlog (raise repl-backlog-size); it will sync in full")
            return
        frames = backlog.frames_after(link.next_seq - 1)
        if frames:
            t = link.client.transport
            if t is None:
                return
            t.write(b"".join(frames))
            link.next_seq += len(frames)
            self.server.stats.net_output_bytes += sum(map(len, frames))
            self.server.check_output_limit(link.client)

    def drop(self, link, why, tell=True):
        log.warning("replica %s:%s: %s", link.ip, link.port, why)
        c = link.client
        self.links.pop(c, None)
        if link.task is not None:
            link.task.cancel()
        c.closing = True
        if c.transport is not None:
            if tell:
                c.transport.write(stream.fail_frame(why))
            c.transport.close()          # after the FAIL frame goes out

    def close_all(self, why):
        for link in list(self.links.values()):
            self.drop(link, why)

    def cron(self):
        self.pump()
        now = time.monotonic()
        timeout = self.server.config["repl-timeout"]
        for link in list(self.links.values()):
            if link.state == "online" and now - link.ack_time > timeout:
                self.drop(link, f"no acknowledgement for {timeout} s (repl-timeout)")
        if self.links and now - self.last_ping >= PING_SECONDS:
            self.last_ping = now
            frame = stream.ping_frame(self.server.db.seq, int(time.time() * 1000))
            for link in self.links.values():
                if link.state == "online" and link.client.transport is not None:
                    link.client.transport.write(frame)

    # -- KVSYNC -------------------------------------------------------------------------

    def sync(self, c, replid, seq):
        """KVSYNC from client c: c becomes a link; replies NO_REPLY (the stream follows)."""
        self.start_backlog()
        self.pump()
        conf = getattr(c, "replconf", {})
        link = Link(c, conf.get("listening-port", 0), conf.get("ip-address") or c.host)
        c.replica_link = link
        self.links[c] = link
        db = self.server.db
        prev = self.previous
        if prev is not None and replid == prev[0] and seq == prev[1] and self.backlog.holds_after(prev[2]):
            # a fellow replica of this node's old primary, at the version this node was promoted
            # at: it continues from this node's own seq for that version (Redis's replid2)
            replid, seq = self.replid, prev[2]
            log.info("replica %s:%s was at %s seq %d, which is this node's seq %d", link.ip, link.port,
                     prev[0], prev[1], seq)
        if replid == self.replid and seq <= db.seq and self.backlog.holds_after(seq):
            link.state = "wait_bgsave"          # online once _start_continue wrote the header
            link.next_seq = seq + 1
            link.ack_seq = seq
            log.info("replica %s:%s continues after seq %d", link.ip, link.port, seq)
            self.server.loop.call_soon(self._start_continue, link, seq)
        else:
            log.info("replica %s:%s syncs in full (asked for %s after seq %d)", link.ip, link.port, replid, seq)
            link.task = self.server.loop.create_task(self._full_sync(link))
        return NO_REPLY

    def _start_continue(self, link, seq):
        # after this command group's replies (none are due on this connection) went out
        t = link.client.transport
        if t is None or self.links.get(link.client) is not link:
            return
        t.write(stream.encode_header(stream.MODE_CONTINUE, self.replid, seq))
        link.state = "online"
        link.ack_time = time.monotonic()
        self.pump()
        if self.links.get(link.client) is link:
            self.send_records(link)

    async def _full_sync(self, link):
        try:
            await self._send_snapshot(link)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - reading the snapshot failed (a damaged page, ...)
            log.error("replica %s:%s: full sync failed", link.ip, link.port, exc_info=True)
            if self.links.get(link.client) is link:
                self.drop(link, f"the primary could not send its snapshot: {type(e).__name__}: {e}")

    async def _send_snapshot(self, link):
        c = link.client
        await asyncio.sleep(0)                 # after this command group's flush
        snap = self.server.db.snapshot()
        try:
            seq = snap.seq
            link.next_seq = seq + 1
            link.state = "send_bulk"
            t = c.transport
            if t is None:
                return
            t.write(stream.encode_header(stream.MODE_FULL, self.replid, seq))
            batch, size, count = [], 0, 0
            for op in snap._scan_expiry():
                if op[0].startswith(stream.REPLICATION_PREFIX):
                    continue
                batch.append(op)
                size += len(op[0]) + len(op[1]) + 16
                if size >= SNAPSHOT_FRAME_BYTES:
                    count += len(batch)
                    if not await self._send_snapshot_frame(link, batch):
                        return
                    batch, size = [], 0
            if batch:
                count += len(batch)
                if not await self._send_snapshot_frame(link, batch):
                    return
            t = c.transport
            if t is None:
                return
            t.write(stream.end_frame(seq, count))
            log.info("replica %s:%s: snapshot of %d keys at seq %d sent", link.ip, link.port, count, seq)
        finally:
            snap.close()
        link.task = None
        link.state = "online"
        link.ack_time = time.monotonic()
        self.pump()
        if self.links.get(c) is link:
            self.send_records(link)

    async def _send_snapshot_frame(self, link, batch):
        t = link.client.transport
        if t is None or self.links.get(link.client) is not link:
            return False
        data = stream.frame(stream.SNAPSHOT, stream.encode_ops(batch))
        t.write(data)
        self.server.stats.net_output_bytes += len(data)
        while t.get_write_buffer_size() > SNAPSHOT_BUFFER_BYTES:
            await asyncio.sleep(0.002)
            if link.client.transport is None:
                return False
        await asyncio.sleep(0)
        return True

    # -- acknowledgements and WAIT ----------------------------------------------------------

    def ack(self, c, seq):
        link = self.links.get(c)
        if link is None:
            return
        if seq > link.ack_seq:
            link.ack_seq = seq
        link.ack_time = time.monotonic()
        if self.waiters:
            self.check_waiters()

    def acked(self, target):
        return sum(1 for link in self.links.values() if link.state == "online" and link.ack_seq >= target)

    def wait(self, c, wanted, timeout, may_block):
        """WAIT: the number of replicas that applied every commit so far, once `wanted` did or
        `timeout` seconds passed (0: no limit)."""
        self.pump()
        target = self.server.db.seq
        count = self.acked(target)
        if count >= wanted or not may_block:
            return count
        w = Waiter(c, target, wanted)
        self.waiters.append(w)
        if timeout > 0:
            w.timer = self.server.loop.call_later(timeout, self._wait_over, w)
        # parked like a blocking command (no keys): CLIENT UNBLOCK and disconnects apply
        reply = self.server.blocking.block(c, c.db, [], 0, lambda: None, 0)
        w.blocked = self.server.blocking.by_client.get(c)
        return reply

    def check_waiters(self):
        for w in list(self.waiters):
            count = self.acked(w.target)
            if count >= w.wanted or w.blocked is None or w.blocked.done:
                self._finish(w, count)

    def _wait_over(self, w):
        w.timer = None
        self._finish(w, self.acked(w.target))

    def _finish(self, w, count):
        if w in self.waiters:
            self.waiters.remove(w)
        if w.timer is not None:
            w.timer.cancel()
        if w.blocked is not None and not w.blocked.done:   # not ended meanwhile (CLIENT UNBLOCK)
            self.server.blocking.unblock(w.client, count)

    def client_gone(self, c):
        link = self.links.pop(c, None)
        if link is not None:
            log.info("replica %s:%s disconnected", link.ip, link.port)
            if link.task is not None:
                link.task.cancel()
        for w in [w for w in self.waiters if w.client is c]:
            self.waiters.remove(w)
            if w.timer is not None:
                w.timer.cancel()

    # -- INFO and ROLE ---------------------------------------------------------------------------

    def info_links(self):
        now = time.monotonic()
        return [(f"slave{i}", f"ip={link.ip},port={link.port},state={link.state},offset={link.ack_seq},"
                              f"lag={int(now - link.ack_time)}")
                for i, link in enumerate(self.links.values())]

    def role_links(self):
        return [[link.ip.encode(), str(link.port).encode(), str(link.ack_seq).encode()]
                for link in self.links.values() if link.state == "online"]
