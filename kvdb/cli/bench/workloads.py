"""The timed workloads. Each takes a Context and returns a result dict
{"ops", "seconds", "ops_per_sec", ...}; NotSupported means n/a.

Fill workloads (fillbatch, fillrandom) each build a fresh database, which then
becomes the "base": overwrite, the reads and deleterandom run on it after a
close and reopen (the reopen is not timed). If no fill workload was asked for,
the base is filled untimed with sequential write batches. fillsync and
fillsync-threads use their own fresh databases with sync on.

Only the loop is timed: opening, closing (reported separately as
close_seconds for fills) and building the key lists are not.
"""
import contextlib
import gc
import os
import shutil
import threading
import time

from bench_adapters import NotSupported

BATCH = 1000  # puts per transaction in fillbatch
SEEK_NEXT = 10  # entries read after each seek in seekrandom

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

    def __init__(self, adapter_cls, workdir, data, reads, writes, sync_num, threads, cache_bytes):
        self.adapter_cls = adapter_cls
        self.workdir = workdir
        self.data = data
        self.reads, self.writes, self.sync_num = reads, writes, sync_num
        self.threads = threads
        self.cache_bytes = cache_bytes
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
            db.close()

    def finish(self):
        with contextlib.suppress(Exception):
            self.close_base()


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

        secs, _ = timed(body)
    ctx.set_base(path)
    return result(len(keys), secs, batch=BATCH, **out)


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
        secs, _ = timed(lambda: put_loop(db.put, keys, vals))
    ctx.set_base(path)
    return result(len(keys), secs, **out)


def overwrite(ctx):
    db = ctx.base_db()
    keys = ctx.data.sampled("overwrite", ctx.writes)
    vals = ctx.data.values(len(keys), offset=1)  # new values for the same keys
    secs, _ = timed(lambda: put_loop(db.put, keys, vals))
    return result(len(keys), secs)


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
    return result(len(keys), secs, found=found, expected_found=len(keys) if ctx.live == ctx.data.num else None)


def readmissing(ctx):
    db = ctx.base_db()
    keys = ctx.data.missing("readmissing", ctx.reads)
    secs, found = timed(lambda: _count_found(db.get, keys))
    return result(len(keys), secs, found=found, expected_found=0)


def readseq(ctx):
    db = ctx.base_db()
    if not db.scans:
        raise NotSupported(f"{db.name} has no ordered scan")
    secs, entries = timed(db.scan_all)
    return result(entries, secs, entries=entries, expected_entries=ctx.live)


def seekrandom(ctx):
    db = ctx.base_db()
    if not db.scans:
        raise NotSupported(f"{db.name} has no ordered scan")
    keys = ctx.data.sampled("seekrandom", ctx.reads)
    seek = db.seek_next

    def body():
        return sum(seek(k, SEEK_NEXT) for k in keys)

    secs, entries = timed(body)
    return result(len(keys), secs, entries=entries, next=SEEK_NEXT)


def deleterandom(ctx):
    db = ctx.base_db()
    keys = ctx.data.shuffled("deleterandom", min(ctx.writes, ctx.data.num))  # each one exists
    delete = db.delete

    def body():
        for k in keys:
            delete(k)

    secs, _ = timed(body)
    ctx.live -= len(keys)
    return result(len(keys), secs)


def fillsync(ctx):
    keys = ctx.data.shuffled("fillsync", ctx.sync_num)
    vals = ctx.data.values(len(keys))
    out = {}
    with ctx.fresh("fillsync", True, out) as (db, path):
        secs, _ = timed(lambda: put_loop(db.put, keys, vals))
    shutil.rmtree(path, ignore_errors=True)
    return result(len(keys), secs, **out)


def _threaded_fill(ctx, name, keys, vals, nthreads):
    """nthreads threads share one sync=full database; thread t puts keys[t::nthreads]."""
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
        start.wait()
        t0 = time.perf_counter()
        for w in workers:
            w.join()
        secs = time.perf_counter() - t0
    shutil.rmtree(path, ignore_errors=True)
    if errors:
        raise errors[0]
    return secs


def fillsync_threads(ctx):
    if not ctx.adapter_cls.threads:
        raise NotSupported("fillsync-threads runs for kvdb engines only")
    keys = ctx.data.shuffled("fillsync-threads", ctx.sync_num)
    vals = ctx.data.values(len(keys))
    secs1 = _threaded_fill(ctx, "fillsync-t1", keys, vals, 1)
    secsn = _threaded_fill(ctx, f"fillsync-t{ctx.threads}", keys, vals, ctx.threads)
    r = result(len(keys), secsn, threads=ctx.threads)
    r["ops_per_sec_1thread"] = len(keys) / secs1 if secs1 > 0 else 0.0
    r["scaling"] = r["ops_per_sec"] / r["ops_per_sec_1thread"] if r["ops_per_sec_1thread"] else None
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
