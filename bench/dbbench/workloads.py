"""The timed workloads. Each takes a Context and returns a result dict
{"ops", "seconds", "ops_per_sec", ...}; NotSupported means n/a.

Fill workloads (fillbatch, fillrandom) each build a fresh database, which then
becomes the "base": overwrite, the reads and deleterandom run on it after a
close and reopen (the reopen is not timed). overwrite and deleterandom close
the base when they finish (untimed, recorded as close_seconds, like the fills)
so that work an engine defers to close counts in their I/O; the next workload
reopens it. If no fill workload was asked for,
the base is filled untimed with sequential write batches. fillsync and
fillsync-threads use their own fresh databases with sync on.

Only the loop is timed: opening, closing (reported separately as
close_seconds for fills) and building the key lists are not.

For the I/O table every result also carries, where it applies:
  user_bytes    key + value bytes the workload wrote (key bytes for deletes)
  commits       commits it made (transactions / write batches / single puts)
  fsyncs        the engine's own count of fsyncs during it (kvdb only; else absent),
                and fsyncs_per_commit (for fillsync-threads: of the threaded run)
  disk_bytes    space the database directory takes on disk at the end
                (allocated blocks; disk_apparent_bytes: file sizes), measured
                after the close for fills, with the database open otherwise
  live_bytes    key + value bytes of the entries live at the end
The worker adds "io", the /proc/self/io deltas around the whole workload.

With ctx.series > 0 (the --scale run), fillrandom also records throughput
against data size: after each of `series` equal chunks of puts, the chunk's
put rate and the rate of SERIES_READS random gets of the keys loaded so far
(those gets are not part of fillrandom's timed seconds).
"""
import contextlib
import gc
import os
import random
import shutil
import threading
import time

from .adapters import NotSupported
from .data import KEY_SIZE, VALUE_SIZE
from .diskio import dir_size, rss_anon

BATCH = 1000  # puts per transaction in fillbatch
SEEK_NEXT = 10  # entries read after each seek in seekrandom
ENTRY = KEY_SIZE + VALUE_SIZE
SERIES_READS = 10_000

ORDER = [
    "fillbatch",
    "fillrandom",
    "overwrite",
    "readrandom",
    "readmissing",
    "readseq",
    "seekrandom",
    "deleterandom",
    "fillsync",
    "fillsync-threads",
]


class Context:
    """What the workloads of one worker process share: the adapter class,
    the dataset, the counts and the base database."""

    def __init__(self, adapter_cls, workdir, data, reads, writes, sync_num, threads, cache_bytes, series=0):
        self.adapter_cls = adapter_cls
        self.workdir = workdir
        self.data = data
        self.reads, self.writes, self.sync_num = reads, writes, sync_num
        self.threads = threads
        self.cache_bytes = cache_bytes
        self.series = series
        self.anon_at_close = 0  # bytes: largest RssAnon sampled before a close since the last take
        self.base_path = None  # closed, filled database for the read phases
        self.base = None  # the base, open
        self.live = 0  # number of keys in the base

    def open(self, path, sync):
        return self.adapter_cls(path, sync=sync, cache_bytes=self.cache_bytes)

    @contextlib.contextmanager
    def fresh(self, name, sync, result):
        """A new database in its own directory; closed (close time recorded) on exit."""
        path = os.path.join(self.workdir, name)
        shutil.rmtree(path, ignore_errors=True)
        db = self.open(path, sync)
        try:
            yield db, path
        finally:
            self.note_anon()
            t0 = time.perf_counter()
            db.close()
            result["close_seconds"] = round(time.perf_counter() - t0, 6)

    def set_base(self, path):
        """Make the database at path (closed, all num keys) the base."""
        self.close_base()
        if self.base_path and self.base_path != path:
            shutil.rmtree(self.base_path, ignore_errors=True)
        self.base_path = path
        self.live = self.data.num

    def base_db(self):
        """The base database, open with sync off; filled untimed if no fill ran."""
        if self.base is None:
            if self.base_path is None:
                fill_batches(self, "prepfill")
            self.base = self.open(self.base_path, sync=False)
        return self.base

    def close_base(self):
        if self.base is not None:
            db, self.base = self.base, None
            self.note_anon()
            db.close()

    def note_anon(self):
        """Sample the anonymous memory just before a database closes (the worker reports the
        larger of it and the memory when the workload ends: rss_anon_bytes)."""
        self.anon_at_close = max(self.anon_at_close, rss_anon() or 0)

    def take_anon_at_close(self):
        value, self.anon_at_close = self.anon_at_close, 0
        return value

    def finish(self):
        with contextlib.suppress(Exception):
            self.close_base()


def fsyncs(db):
    """The engine's fsync counter, or None when it has none."""
    try:
        return db.fsyncs()
    except Exception:
        return None


def io_fields(r, path, live_entries, user_bytes=None, commits=None, fsyncs_before=None, fsyncs_after=None):
    """Add the I/O table's fields to result r (see the module docstring)."""
    r["disk_bytes"], r["disk_apparent_bytes"] = dir_size(path)
    r["live_bytes"] = live_entries * ENTRY
    if user_bytes is not None:
        r["user_bytes"] = user_bytes
    if commits is not None:
        r["commits"] = commits
    if fsyncs_before is not None and fsyncs_after is not None:
        r["fsyncs"] = fsyncs_after - fsyncs_before
        if commits:
            r["fsyncs_per_commit"] = r["fsyncs"] / commits
    return r


def timed(body):
    """Run body() once; return (seconds, body's return value)."""
    gc.collect()
    t0 = time.perf_counter()
    out = body()
    return time.perf_counter() - t0, out


def result(ops, seconds, **extra):
    r = {"ops": ops, "seconds": round(seconds, 6), "ops_per_sec": ops / seconds if seconds > 0 else 0.0}
    r.update(extra)
    return r


def fill_batches(ctx, name):
    keys = ctx.data.keys
    vals = ctx.data.values(len(keys))
    out = {}
    with ctx.fresh(name, False, out) as (db, path):
        write_batch = db.write_batch

        def body():
            for s in range(0, len(keys), BATCH):
                write_batch(zip(keys[s : s + BATCH], vals[s : s + BATCH]))

        f0 = fsyncs(db)
        secs, _ = timed(body)
        f1 = fsyncs(db)
    ctx.set_base(path)
    r = result(len(keys), secs, batch=BATCH, **out)
    return io_fields(r, path, len(keys), len(keys) * ENTRY, -(-len(keys) // BATCH), f0, f1)


def put_loop(put, keys, vals):
    for k, v in zip(keys, vals):
        put(k, v)


def fillbatch(ctx):
    return fill_batches(ctx, "fillbatch")


def fillrandom(ctx):
    keys = ctx.data.shuffled("fillrandom")
    vals = ctx.data.values(len(keys))
    out = {}
    with ctx.fresh("fillrandom", False, out) as (db, path):
        f0 = fsyncs(db)
        if ctx.series:
            secs, out["series"] = _fill_series(ctx, db, keys, vals)
        else:
            secs, _ = timed(lambda: put_loop(db.put, keys, vals))
        f1 = fsyncs(db)
    ctx.set_base(path)
    r = result(len(keys), secs, **out)
    return io_fields(r, path, len(keys), len(keys) * ENTRY, len(keys), f0, f1)


def _fill_series(ctx, db, keys, vals):
    """fillrandom in ctx.series chunks: (total put seconds, [{keys, fill_ops_per_sec, read_ops_per_sec}])."""
    n = len(keys)
    points = max(1, min(ctx.series, n))
    rng = random.Random(f"{ctx.data.seed}:series")
    total, series = 0.0, []
    gc.collect()
    for i in range(points):
        lo, hi = n * i // points, n * (i + 1) // points
        t0 = time.perf_counter()
        put_loop(db.put, keys[lo:hi], vals[lo:hi])
        secs = time.perf_counter() - t0
        total += secs
        sample = rng.choices(keys[:hi], k=min(SERIES_READS, hi))
        t0 = time.perf_counter()
        found = _count_found(db.get, sample)
        rsecs = time.perf_counter() - t0
        series.append({"keys": hi, "fill_ops_per_sec": (hi - lo) / secs if secs > 0 else None,
                       "read_ops_per_sec": len(sample) / rsecs if rsecs > 0 else None,
                       "read_found": found, "read_ops": len(sample)})
    return total, series


def overwrite(ctx):
    db = ctx.base_db()
    keys = ctx.data.sampled("overwrite", ctx.writes)
    vals = ctx.data.values(len(keys), offset=1)  # new values for the same keys
    f0 = fsyncs(db)
    secs, _ = timed(lambda: put_loop(db.put, keys, vals))
    f1 = fsyncs(db)
    r = result(len(keys), secs, close_seconds=_close_base(ctx))
    return io_fields(r, ctx.base_path, ctx.live, len(keys) * ENTRY, len(keys), f0, f1)


def _close_base(ctx):
    """Close the base after a write workload (untimed; the next workload reopens it), so
    that what an engine defers to close (a checkpoint, a flush) counts in this workload's
    I/O, as it does for the fills. Returns the seconds the close took."""
    t0 = time.perf_counter()
    ctx.close_base()
    return round(time.perf_counter() - t0, 6)


def _count_found(get, keys):
    found = 0
    for k in keys:
        if get(k) is not None:
            found += 1
    return found


def readrandom(ctx):
    db = ctx.base_db()
    keys = ctx.data.sampled("readrandom", ctx.reads)
    secs, found = timed(lambda: _count_found(db.get, keys))
    r = result(len(keys), secs, found=found, expected_found=len(keys) if ctx.live == ctx.data.num else None)
    return io_fields(r, ctx.base_path, ctx.live)


def readmissing(ctx):
    db = ctx.base_db()
    keys = ctx.data.missing("readmissing", ctx.reads)
    secs, found = timed(lambda: _count_found(db.get, keys))
    return io_fields(result(len(keys), secs, found=found, expected_found=0), ctx.base_path, ctx.live)


def readseq(ctx):
    db = ctx.base_db()
    if not db.scans:
        raise NotSupported(f"{db.name} has no ordered scan")
    secs, entries = timed(db.scan_all)
    return io_fields(result(entries, secs, entries=entries, expected_entries=ctx.live), ctx.base_path, ctx.live)


def seekrandom(ctx):
    db = ctx.base_db()
    if not db.scans:
        raise NotSupported(f"{db.name} has no ordered scan")
    keys = ctx.data.sampled("seekrandom", ctx.reads)
    seek = db.seek_next

    def body():
        return sum(seek(k, SEEK_NEXT) for k in keys)

    secs, entries = timed(body)
    return io_fields(result(len(keys), secs, entries=entries, next=SEEK_NEXT), ctx.base_path, ctx.live)


def deleterandom(ctx):
    db = ctx.base_db()
    keys = ctx.data.shuffled("deleterandom", min(ctx.writes, ctx.data.num))  # each one exists
    delete = db.delete

    def body():
        for k in keys:
            delete(k)

    f0 = fsyncs(db)
    secs, _ = timed(body)
    f1 = fsyncs(db)
    ctx.live -= len(keys)
    r = result(len(keys), secs, close_seconds=_close_base(ctx))
    return io_fields(r, ctx.base_path, ctx.live, len(keys) * KEY_SIZE, len(keys), f0, f1)


def fillsync(ctx):
    keys = ctx.data.shuffled("fillsync", ctx.sync_num)
    vals = ctx.data.values(len(keys))
    out = {}
    with ctx.fresh("fillsync", True, out) as (db, path):
        f0 = fsyncs(db)
        secs, _ = timed(lambda: put_loop(db.put, keys, vals))
        f1 = fsyncs(db)
    r = io_fields(result(len(keys), secs, **out), path, len(keys), len(keys) * ENTRY, len(keys), f0, f1)
    shutil.rmtree(path, ignore_errors=True)
    return r


def _threaded_fill(ctx, name, keys, vals, nthreads, r):
    """nthreads threads share one sync=full database; thread t puts keys[t::nthreads].
    Returns the seconds; adds the I/O fields to r."""
    out = {}
    errors = []
    with ctx.fresh(name, True, out) as (db, path):
        start = threading.Barrier(nthreads + 1)

        def work(t):
            put = db.put
            mine = list(zip(keys[t::nthreads], vals[t::nthreads]))
            start.wait()
            try:
                for k, v in mine:
                    put(k, v)
            except BaseException as e:  # reported, then re-raised in the main thread
                errors.append(e)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(nthreads)]
        for w in workers:
            w.start()
        f0 = fsyncs(db)
        start.wait()
        t0 = time.perf_counter()
        for w in workers:
            w.join()
        secs = time.perf_counter() - t0
        f1 = fsyncs(db)
    io_fields(r, path, len(keys), len(keys) * ENTRY, len(keys), f0, f1)
    shutil.rmtree(path, ignore_errors=True)
    if errors:
        raise errors[0]
    return secs


def fillsync_threads(ctx):
    if not ctx.adapter_cls.threads:
        raise NotSupported("fillsync-threads runs for kvdb engines only")
    keys = ctx.data.shuffled("fillsync-threads", ctx.sync_num)
    vals = ctx.data.values(len(keys))
    one = {}
    secs1 = _threaded_fill(ctx, "fillsync-t1", keys, vals, 1, one)
    r = {}
    secsn = _threaded_fill(ctx, f"fillsync-t{ctx.threads}", keys, vals, ctx.threads, r)
    r.update(result(len(keys), secsn, threads=ctx.threads))
    r["ops_per_sec_1thread"] = len(keys) / secs1 if secs1 > 0 else 0.0
    r["scaling"] = r["ops_per_sec"] / r["ops_per_sec_1thread"] if r["ops_per_sec_1thread"] else None
    if "fsyncs" in one:
        r["fsyncs_1thread"] = one["fsyncs"]
        r["fsyncs_per_commit_1thread"] = one.get("fsyncs_per_commit")
    # The I/O deltas cover both runs, so the user bytes do too; fsyncs_per_commit
    # stays the one of the threaded run (below 1 when commits share an fsync).
    r["user_bytes"] = one["user_bytes"] + r["user_bytes"]
    r["commits"] = one["commits"] + r["commits"]
    return r


WORKLOADS = {
    "fillbatch": fillbatch,
    "fillrandom": fillrandom,
    "overwrite": overwrite,
    "readrandom": readrandom,
    "readmissing": readmissing,
    "readseq": readseq,
    "seekrandom": seekrandom,
    "deleterandom": deleterandom,
    "fillsync": fillsync,
    "fillsync-threads": fillsync_threads,
}
assert list(WORKLOADS) == ORDER

__all__ = ["ORDER", "WORKLOADS", "Context", "NotSupported"]
