"""The replica's side of replication: a task that connects to the primary, syncs, and
applies its log in commit order, reconnecting until REPLICAOF NO ONE.

One session (docs/format/replication.md, "Handshake"):
  1. AUTH (masterauth / masteruser), REPLCONF listening-port, REPLCONF ip-address
     (replica-announce-ip), REPLCONF node-id (refused when the primary is this server);
  2. KVSYNC <replid> <seq> from the position record (POSITION_KEY), or `? 0` without one;
  3. the header: mode C continues after <seq>; mode F sends a snapshot first, which is
     written into a new database beside the data directory and swapped in whole once its
     END frame checks out (the replica serves its old data until then);
  4. RECORD frames: the records of one read are applied as one commit together with the
     new position record, so the position always names exactly the records applied (R2);
     then REPLCONF ACK <seq>. A record that does not follow the position (R1) ends the
     session and the next one syncs in full.

A session that fails (connection refused, timeout, a bad frame, an error reply) is
retried after RETRY_SECONDS; INFO replication shows master_link_status and the last error.
"""
import asyncio
import logging
import os
import shutil
import time

import kvdb

from . import stream

log = logging.getLogger("kvdb.server")

RETRY_SECONDS = 1.0             # between sessions
CONNECT_TIMEOUT = 5.0           # seconds to connect and finish the handshake
APPLY_BYTES = 4 << 20           # ops of at most about this size per replica commit


class ReplicationError(Exception):
    """The primary refused the session, or is not a kvdb primary."""


def _op_key(op):
    return op[0]


def _command(*words):
    parts = [f"*{len(words)}\r\n".encode()]
    for w in words:
        b = w if isinstance(w, bytes) else str(w).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


class Follower:
    def __init__(self, server, host, port):
        self.server = server            # app.Server
        self.host = host                # the primary's address
        self.port = port                # ... and port
        self.state = "connect"          # connect, connecting, sync, connected (ROLE's words)
        self.task = None                # the asyncio task running sessions
        self.stopped = False            # REPLICAOF NO ONE / another primary / shutdown
        self.writer = None              # the session's StreamWriter
        self.last_io = time.monotonic()  # when the primary last sent something
        self.link_down_since = time.monotonic()
        self.error = ""                 # why the last session ended ("" while up)
        self.replid, self.seq = self.position()
        self.force_full = False         # the last session saw the log diverge: ask for a full sync
        self.applying = False           # committing its primary's records (not a client's write)
        self.full_syncs = 0             # sessions that synced in full
        self.partial_syncs = 0          # sessions that continued

    def position(self):
        pos = stream.decode_position(self.server.db.get(stream.POSITION_KEY))
        return pos if pos is not None else ("?", 0)

    def start(self):
        self.task = self.server.loop.create_task(self.run())

    def stop(self):
        self.stopped = True
        if self.writer is not None:
            self.writer.close()
        if self.task is not None:
            self.task.cancel()

    async def run(self):
        try:
            while not self.stopped:
                try:
                    await self.session()
                except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
                    self.link_lost(f"connection to the primary {self.host}:{self.port} lost: "
                                   f"{type(e).__name__}: {e}")
                except stream.StreamError as e:
                    self.force_full = True       # R3: bytes that do not check out: start over in full
                    self.link_lost(str(e))
                except (ReplicationError, kvdb.Error) as e:
                    self.link_lost(str(e))
                except Exception as e:  # noqa: BLE001 - a bug must not stop the replica for good
                    log.error("replication: session failed", exc_info=True)
                    self.link_lost(f"internal error: {type(e).__name__}: {e}")
                if not self.stopped:
                    await asyncio.sleep(RETRY_SECONDS)
        except asyncio.CancelledError:
            pass
        finally:
            if self.writer is not None:
                self.writer.close()
                self.writer = None

    def link_lost(self, why):
        if self.state == "connected":
            self.link_down_since = time.monotonic()
        self.state = "connect"
        if why != self.error:
            log.warning("replication: %s", why)
        self.error = why

    # -- one session --------------------------------------------------------------------

    async def session(self):
        cfg = self.server.config
        self.state = "connecting"
        ssl = self.server.replication.client_ssl_context()
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port, ssl=ssl),
                                                CONNECT_TIMEOUT)
        self.writer = writer
        try:
            if cfg["masterauth"]:
                words = ["AUTH", cfg["masteruser"], cfg["masterauth"]] if cfg["masteruser"] else \
                    ["AUTH", cfg["masterauth"]]
                await self.ask(reader, writer, *words, what="AUTH (masterauth)")
            port = cfg["replica-announce-port"] or self.server.port or 0
            await self.ask(reader, writer, "REPLCONF", "listening-port", port, what="REPLCONF")
            if cfg["replica-announce-ip"]:
                await self.ask(reader, writer, "REPLCONF", "ip-address", cfg["replica-announce-ip"], what="REPLCONF")
            await self.ask(reader, writer, "REPLCONF", "node-id", self.server.replication.node_id,
                           what="REPLCONF node-id", kvdb_only=True)
            self.replid, self.seq = self.position()
            if self.force_full:
                self.replid, self.seq = "?", 0
            writer.write(_command("KVSYNC", self.replid, self.seq))
            first = await asyncio.wait_for(reader.readexactly(1), CONNECT_TIMEOUT)
            if first == b"-":
                line = await reader.readline()
                raise ReplicationError(f"the primary {self.host}:{self.port} refused KVSYNC: "
                                       f"{line.decode('utf-8', 'replace').strip()}")
            head = first + await asyncio.wait_for(reader.readexactly(stream.HEADER_SIZE - 1), CONNECT_TIMEOUT)
            mode, replid, seq = stream.decode_header(head)
            self.state = "sync"
            self.last_io = time.monotonic()
            frames = stream.FrameReader()
            if mode == stream.MODE_FULL:
                await self.full_sync(reader, frames, replid, seq)
                self.full_syncs += 1
                self.force_full = False
            else:
                if self.replid == "?":
                    raise ReplicationError("the primary continues a history this replica did not ask for")
                if (replid, seq) != (self.replid, self.seq):
                    # a promoted fellow replica: our version (old replid, seq) is its (replid, seq);
                    # the next commit writes the new position
                    log.info("replication: %s seq %d continues as %s seq %d", self.replid, self.seq, replid, seq)
                    self.replid, self.seq = replid, seq
                self.partial_syncs += 1
                log.info("replication: continuing from %s:%d after seq %d", self.host, self.port, seq)
            self.state = "connected"
            self.error = ""
            self.send_ack()
            await self.follow(reader, frames)
        finally:
            writer.close()
            self.writer = None

    async def ask(self, reader, writer, *words, what, kvdb_only=False):
        writer.write(_command(*words))
        line = await asyncio.wait_for(reader.readline(), CONNECT_TIMEOUT)
        if not line:
            raise EOFError("the primary closed the connection")
        if line.startswith(b"-"):
            text = line[1:].decode("utf-8", "replace").strip()
            if kvdb_only and "REPLCONF" in text.upper() and "node-id" in text:
                raise ReplicationError(f"{self.host}:{self.port} is not a kvdb server (it answered {what} "
                                       f"with: {text}); a kvdb replica follows a kvdb primary")
            raise ReplicationError(f"the primary {self.host}:{self.port} refused {what}: {text}")
        if not line.startswith(b"+"):
            raise ReplicationError(f"unexpected reply to {what} from {self.host}:{self.port}: {line[:80]!r}")

    async def read_frames(self, reader, frames):
        timeout = self.server.config["repl-timeout"]
        data = await asyncio.wait_for(reader.read(1 << 20), timeout)
        if not data:
            raise EOFError("the primary closed the connection")
        self.last_io = time.monotonic()
        return frames.feed(data)

    # -- full sync ------------------------------------------------------------------------

    async def full_sync(self, reader, frames, replid, seq):
        server = self.server
        data_dir = os.path.abspath(server.config["dir"])
        tmp = f"{data_dir}.sync-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("replication: full sync from %s:%d at seq %d into %s", self.host, self.port, seq, tmp)
        options = server.config.database_options()
        options["sync"] = "normal"       # the copy is made durable once, by its checkpoint
        out = kvdb.open(tmp, **options)
        done = False
        leftover = []                    # frames after END in the same read: records, applied after the swap
        try:
            count = 0
            while not done:
                for type_, payload in await self.read_frames(reader, frames):
                    if done:
                        leftover.append((type_, payload))
                    elif type_ == stream.SNAPSHOT:
                        ops = [op for op in stream.decode_snapshot(payload)
                               if not op[0].startswith(stream.REPLICATION_PREFIX)]
                        out._commit_log_ops(ops)
                        count += len(ops)
                    elif type_ == stream.END:
                        end_seq, sent = stream.decode_pair(payload, "END")
                        if end_seq != seq or sent != count:
                            raise stream.StreamError(f"snapshot END says {sent} keys at seq {end_seq}; "
                                                     f"received {count} keys of seq {seq}")
                        done = True
                    elif type_ == stream.FAIL:
                        raise ReplicationError(f"the primary ended the sync: {payload.decode('utf-8', 'replace')}")
                    elif type_ == stream.PING:
                        pass
                    else:
                        raise stream.StreamError(f"frame {type_!r} inside a snapshot")
                await asyncio.sleep(0)
            out._commit_log_ops([(stream.POSITION_KEY, stream.encode_position(replid, seq), 0)])
            out.checkpoint()
        finally:
            out.close()
            if not done:
                shutil.rmtree(tmp, ignore_errors=True)
        await server.settle_durable()
        server.replace_database(tmp)      # right after: no command group runs in between
        self.replid, self.seq = replid, seq
        if leftover:
            await self.apply(leftover)
        log.info("replication: full sync done: %d keys at seq %d", count, seq)

    # -- following the log ----------------------------------------------------------------

    async def follow(self, reader, frames):
        while not self.stopped:
            got = await self.read_frames(reader, frames)
            if got:
                await self.apply(got)
                self.send_ack()

    async def apply(self, got):
        records = []                    # the ops of each record not yet committed
        size = 0
        seq = self.seq
        for type_, payload in got:
            if type_ == stream.RECORD:
                rseq, ops = stream.decode_record(payload)
                if rseq != seq + 1:
                    self.force_full = True
                    raise ReplicationError(f"record {rseq} does not follow the applied seq {seq}: "
                                           "the replica syncs in full")
                seq = rseq
                records.append(ops)
                size += len(payload)
                if size >= APPLY_BYTES:
                    await self.commit(records, seq)
                    records, size = [], 0
            elif type_ == stream.PING:
                stream.decode_pair(payload, "PING")   # checked (R3); nothing else to do with it
            elif type_ == stream.FAIL:
                raise ReplicationError(f"the primary ended the stream: {payload.decode('utf-8', 'replace')}")
            else:
                raise stream.StreamError(f"frame {type_!r} where records are expected")
        if seq != self.seq:
            await self.commit(records, seq)

    async def commit(self, records, seq):
        """One replica commit of the records' ops (a key's last op wins), sorted by key, without
        the primary's own replication records, and with this replica's new position (R2)."""
        batch = {}
        for ops in records:
            batch.update(zip(map(_op_key, ops), ops))
        if batch and max(batch) >= stream.REPLICATION_PREFIX:   # the primary is itself a replica
            for key in [k for k in batch if k.startswith(stream.REPLICATION_PREFIX)]:
                del batch[key]
        batch[stream.POSITION_KEY] = (stream.POSITION_KEY, stream.encode_position(self.replid, seq), 0)
        self.applying = True
        try:
            self.server.apply_replicated(sorted(batch.values(), key=_op_key))
        finally:
            self.applying = False
        self.seq = seq

    def send_ack(self):
        if self.writer is not None:
            self.writer.write(_command("REPLCONF", "ACK", self.seq))
