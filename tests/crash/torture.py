"""The corruption torture harness (tests/crash/test_torture.py runs it).

For each engine it builds one database that holds what damage can reach: overflow values
(B+Tree), compressed tables in several levels (LSM), keys with expiries, a freelist, and a log
full of commits made after the last checkpoint or flush. Then each trial copies it, damages
one region of one kind, and a worker process opens the copy and reads everything back:
verify(), a scan, a get of every key, and the recovery note in stats().

Regions: the B+Tree's file header, each meta page, a branch, leaf, overflow and freelist page;
the LSM's CURRENT, manifest records, and each table's data, index and filter blocks and footer;
on both engines the log's header (and its first sector), first, middle and last record.

Damage: "flip" flips 1-3 random bits, "zero" zeroes a run of bytes, "forge" changes bytes and
recomputes the checksum that covers them (page, block, footer or log record), so only the
decoder's own checks stand between the damage and the reader.

Outcomes of a trial:
  error      kvdb.Error (CorruptionError, IOFailureError, ...): a clean refusal
  intact     every acknowledged commit reads back exactly
  torn_tail  the last commit is missing and the database said so (stats()["recovery"])
  forged     wrong data after a forged checksum: undetectable by design (no end-to-end record
             checksum), counted but not a failure
  wrong      wrong data or lost commits without an error: a failure
  foreign    an exception that is not a kvdb.Error: a failure
  crash      the worker died (a signal): a failure
  hang       no answer within HANG_SECONDS: a failure

The worker is `python -m tests.crash.torture worker`: one JSON trial per stdin line, one JSON
result per stdout line, so a crash or hang costs one trial, not the run.
"""
import json
import os
import random
import select
import shutil
import subprocess
import sys
import time

HANG_SECONDS = 30
REPORTS = []                # the tables of this run, printed at the end by tests/conftest.py
FAILURES = ("wrong", "foreign", "crash", "hang")
OUTCOMES = ("error", "intact", "torn_tail", "forged") + FAILURES
KINDS = ("flip", "zero", "forge")
PAGE_TYPES = {1: "branch", 2: "leaf", 3: "overflow", 4: "freelist", 5: "meta"}
LOG_HEADER_SIZE = 32        # wal.pxd WAL_HEADER_SIZE (the primary header)
LOG_RECORD_HEADER_SIZE = 28  # wal.pxd WAL_RECORD_HEADER_SIZE
MANIFEST_HEADER_SIZE = 16   # manifest.pxd
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def crc32c(data):
    from kvdb._core.coding import crc32c_of
    return crc32c_of(bytes(data))


# -- building --------------------------------------------------------------------------------


def value_for(rng, i):
    """Values of mixed size: mostly small, some spilling to overflow pages (B+Tree) or making
    large blocks (LSM); half their bytes repeat, so LSM blocks compress."""
    n = rng.choice((20, 60, 100, 300)) if i % 17 else rng.choice((5000, 9000, 20000))
    head = bytes(rng.getrandbits(8) for _ in range(min(n // 2, 64)))
    return (head * (n // max(len(head), 1) + 1))[:n // 2] + b"%d" % i * (n // 2 // len(b"%d" % i) + 1)


def build(path, engine, seed=1):
    """Create the database at path; returns (final, before_last): the state every acknowledged
    commit makes, and the state before the last commit."""
    import kvdb
    rng = random.Random(seed)
    opts = dict(engine=engine, sync="full")
    if engine == "lsm":
        opts.update(memtable_size=64 << 10, sstable_size=64 << 10, level1_size=256 << 10)
    db = kvdb.open(path, **opts)
    model = {}
    for batch in range(30):
        with db.transaction() as tx:
            for j in range(50):
                i = batch * 50 + j
                k = b"key%06d" % i
                v = value_for(rng, i)
                tx.put(k, v, ttl=10 ** 7 if i % 5 == 0 else None)
                model[k] = v
    for i in range(0, 1500, 7):             # free pages (B+Tree freelist) and tombstones (LSM)
        db.delete(b"key%06d" % i)
        del model[b"key%06d" % i]
    db.checkpoint()
    db.compact()
    for i in range(1, 1500, 11):
        k = b"key%06d" % i
        if k in model:
            db.delete(k)
            del model[k]
    db.checkpoint()
    before_last = dict(model)
    for n in range(120):                    # only in the log: no checkpoint or flush after these
        before_last = dict(model)
        with db.transaction() as tx:
            for j in range(3):
                k = b"log%04d-%d" % (n, j)
                v = value_for(rng, n * 3 + j)
                tx.put(k, v)
                model[k] = v
            victim = b"key%06d" % rng.randrange(1500)
            if victim in model:
                tx.delete(victim)
                del model[victim]
    del db, tx                              # dropped without a close: the log keeps the commits
    wait_released(path)
    return model, before_last


def wait_released(path, seconds=10):
    """Wait until no open holds the dropped database: its background thread may be finishing a
    step (a flush) that holds it, and a copy taken meanwhile could be torn.
    Every open holds byte 0 of LOCK with an open-file-description lock (kvdb/_core/file.pyx,
    DbLock), which flock cannot see; F_OFD_GETLK asks whether a write lock on that byte could be
    placed, from a descriptor of our own (so this process's opens count too), and writes nothing."""
    import fcntl
    import gc
    import struct
    flock = "hhqqi4x"  # struct flock on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid
    probe = struct.pack(flock, fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
    deadline = time.monotonic() + seconds
    while True:
        gc.collect()
        try:
            fd = os.open(os.path.join(path, "LOCK"), os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            held = struct.unpack(flock, fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe))[0] != fcntl.F_UNLCK
        finally:
            os.close(fd)
        if not held:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} is still open after {seconds} s")
        time.sleep(0.01)


def save_model(path, final, before_last):
    with open(path, "w") as f:
        json.dump({"final": {k.hex(): v.hex() for k, v in final.items()},
                   "before_last": {k.hex(): v.hex() for k, v in before_last.items()}}, f)


# -- regions ---------------------------------------------------------------------------------


def log_records(data):
    """[(offset, length)] of the valid records in a log's bytes, found by their checksums (the
    first is searched for after the header, so a second header copy does not mislead it)."""
    out = []
    off = LOG_HEADER_SIZE
    found = False
    while off + LOG_RECORD_HEADER_SIZE <= len(data):
        n = int.from_bytes(data[off + 4:off + 8], "little")
        end = off + LOG_RECORD_HEADER_SIZE + n
        if n and end <= len(data) and int.from_bytes(data[off:off + 4], "little") == crc32c(data[off + 4:end]):
            out.append((off, end - off))
            off = end
            found = True
        elif found:
            break
        else:
            off += 4
            if off > 16384:
                break
    return out


def active_log(path):
    names = sorted(n for n in os.listdir(path) if n.startswith("wal-") and n.endswith(".log"))
    return names[-1]


def regions(path, engine):
    """{region name: [(file, offset, length, unit)]}: where each kind of region lies in the
    pristine database; unit = (unit_offset, unit_length, crc_at, crc_from) for forging the
    checksum that covers it, or None."""
    out = {}
    log = active_log(path)
    data = open(os.path.join(path, log), "rb").read()
    out["log header"] = [(log, 0, LOG_HEADER_SIZE, (0, LOG_HEADER_SIZE, 28, 0, 28))]
    out["log first sector"] = [(log, 0, 512, None)]
    recs = log_records(data)
    if recs:
        def rec_unit(off, n):
            return (off, n, 0, 4, n)                # crc at off+0 covers [off+4, off+n)
        first, mid, last = recs[0], recs[len(recs) // 2], recs[-1]
        out["log first record"] = [(log, first[0], first[1], rec_unit(*first))]
        out["log middle record"] = [(log, mid[0], mid[1], rec_unit(*mid))]
        out["log last record"] = [(log, last[0], last[1], rec_unit(*last))]
    if engine == "btree":
        raw = open(os.path.join(path, "data.kvdb"), "rb").read()
        ps = int.from_bytes(raw[12:16], "little")
        out["file header"] = [("data.kvdb", 0, 20, (0, 20, 16, 0, 16))]
        for pgno in range(1, len(raw) // ps):
            page = raw[pgno * ps:(pgno + 1) * ps]
            if int.from_bytes(page[0:4], "little") != crc32c(page[4:]):
                continue
            kind = PAGE_TYPES.get(page[4])
            if kind == "meta":
                kind = f"meta page {pgno}"
            if kind:
                out.setdefault(kind, []).append(("data.kvdb", pgno * ps, ps, (pgno * ps, ps, 0, 4, ps)))
    else:
        from kvdb.cli import sstscan
        out["CURRENT"] = [("CURRENT", 0, os.path.getsize(os.path.join(path, "CURRENT")), None)]
        current = open(os.path.join(path, "CURRENT")).read().strip()
        mdata = open(os.path.join(path, current), "rb").read()
        mrecs = []
        off = MANIFEST_HEADER_SIZE
        while off + 8 <= len(mdata):
            n = int.from_bytes(mdata[off + 4:off + 8], "little")
            mrecs.append((off, 8 + n))
            off += 8 + n
        out["manifest header"] = [(current, 0, MANIFEST_HEADER_SIZE, (0, MANIFEST_HEADER_SIZE, 12, 0, 12))]
        if mrecs:
            for name, (o, n) in (("manifest first record", mrecs[0]), ("manifest last record", mrecs[-1])):
                out[name] = [(current, o, n, (o, n, 0, 4, n))]
        for table in sorted(n for n in os.listdir(path) if n.endswith(".sst")):
            full = os.path.join(path, table)
            size = os.path.getsize(full)
            res = sstscan.TableScan(table, size)
            with open(full, "rb") as f:
                fd = f.fileno()
                handles = sstscan._footer(fd, size, res)
                (ioff, isize), (foff, fsize), _ = handles
                index = sstscan._block(fd, ioff, isize, res)
                data_handles = [sstscan._handle(v) for v in sstscan._values(index)]
            trailer = sstscan.BLOCK_TRAILER_SIZE

            def block(o, n):
                return (table, o, n + trailer, (o, n + trailer, n + 1, 0, n + 1))
            out.setdefault("sst data block", []).extend(block(o, n) for o, n in data_handles)
            out.setdefault("sst index block", []).append(block(ioff, isize))
            out.setdefault("sst filter block", []).append(block(foff, fsize))
            fat = size - sstscan.FOOTER_SIZE
            out.setdefault("sst footer", []).append(
                (table, fat, sstscan.FOOTER_SIZE, (fat, sstscan.FOOTER_SIZE, sstscan.FOOTER_CRC_SPAN, 0,
                                                   sstscan.FOOTER_CRC_SPAN)))
    return out


# -- damage ----------------------------------------------------------------------------------


def damage(path, target, kind, rng):
    """Apply one damage of `kind` to region target = (file, offset, length, unit) in path;
    returns a short description. `forge` falls back to `flip` where no checksum covers it."""
    name, off, length, unit = target
    full = os.path.join(path, name)
    with open(full, "r+b") as f:
        f.seek(0)
        data = bytearray(f.read())
        if kind == "zero":
            n = length if length <= 512 else rng.choice((8, 64, 512))
            at = off if n == length else off + rng.randrange(max(1, length - n))
            data[at:at + n] = bytes(n)
            what = f"zeroed {n} bytes at {at}"
        else:
            at = off + rng.randrange(length)
            if kind == "forge" and unit is not None:
                uoff, ulen, crc_at, cfrom, cto = unit
                # change bytes outside the checksum field itself, then re-seal
                choices = [p for p in range(uoff, uoff + ulen) if not uoff + crc_at <= p < uoff + crc_at + 4]
                at = rng.choice(choices)
                data[at] = (data[at] + 1 + rng.randrange(255)) & 0xFF
                crc = crc32c(data[uoff + cfrom:uoff + cto])
                data[uoff + crc_at:uoff + crc_at + 4] = crc.to_bytes(4, "little")
                what = f"forged byte {at} and its checksum"
            else:
                for _ in range(rng.randint(1, 3)):
                    p = off + rng.randrange(length)
                    data[p] ^= 1 << rng.randrange(8)
                what = f"flipped bits near {at}"
        f.seek(0)
        f.write(data)
    return f"{name}: {what}"


# -- the worker ------------------------------------------------------------------------------


def check(path, expect):
    """Open and read everything; the trial's outcome."""
    import kvdb
    try:
        db = kvdb.open(path)
        try:
            db.verify()             # damage verify() reports is not silent, whatever reads return
            got = dict(db.scan())
            for k in list(expect["final"]) + list(expect["before_last"]):
                v = db.get(bytes.fromhex(k))
                kb = bytes.fromhex(k)
                if (v is None) != (kb not in got) or (v is not None and v != got[kb]):
                    return "wrong", f"get({kb!r}) disagrees with scan"
            note = db.stats().get("recovery")
        finally:
            db.close()
    except kvdb.Error as e:
        return "error", f"{type(e).__name__}: {e}"[:200]
    except Exception as e:  # noqa: BLE001 - what the suite is for
        return "foreign", f"{type(e).__name__}: {e}"[:200]
    final = {bytes.fromhex(k): bytes.fromhex(v) for k, v in expect["final"].items()}
    if got == final:
        return "intact", ""
    before = {bytes.fromhex(k): bytes.fromhex(v) for k, v in expect["before_last"].items()}
    if got == before and note:
        return "torn_tail", str(note)[:200]
    missing = len(set(final) - set(got))
    changed = sum(1 for k in final if k in got and got[k] != final[k])
    return "wrong", f"{missing} keys missing, {changed} changed, {len(set(got) - set(final))} extra; note {note!r}"


def worker():
    expect_cache = {}
    for line in sys.stdin:
        trial = json.loads(line)
        if trial["expect"] not in expect_cache:
            with open(trial["expect"]) as f:
                expect_cache[trial["expect"]] = json.load(f)
        outcome, detail = check(trial["dir"], expect_cache[trial["expect"]])
        sys.stdout.write(json.dumps({"outcome": outcome, "detail": detail}) + "\n")
        sys.stdout.flush()


# -- the parent ------------------------------------------------------------------------------


class Workers:
    """One worker process, restarted after a crash or a hang."""

    def __init__(self):
        self.proc = None

    def start(self):
        env = dict(os.environ, PYTHONFAULTHANDLER="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.crash.torture", "worker"], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1)

    def run(self, trial):
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps(trial) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], HANG_SECONDS)
        if not ready:
            self.stop()
            return "hang", f"no answer in {HANG_SECONDS} s"
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            return "crash", f"worker exited with {code}"
        r = json.loads(line)
        return r["outcome"], r["detail"]

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def run_trials(base, engine, per_cell, seed=0, log=None):
    """Build, then damage every region with every kind `per_cell` times. Returns
    (table {(region, kind): {outcome: count}}, [failure descriptions])."""
    rng = random.Random(seed)
    pristine = os.path.join(base, f"{engine}-pristine")
    final, before_last = build(pristine, engine)
    expect = os.path.join(base, f"{engine}-expect.json")
    save_model(expect, final, before_last)
    where = regions(pristine, engine)
    table, failures = {}, []
    workers = Workers()
    trial_dir = os.path.join(base, f"{engine}-trial")
    try:
        for region in sorted(where):
            for kind in KINDS:
                for _ in range(per_cell):
                    shutil.rmtree(trial_dir, ignore_errors=True)
                    shutil.copytree(pristine, trial_dir)
                    what = damage(trial_dir, rng.choice(where[region]), kind, rng)
                    outcome, detail = workers.run({"dir": trial_dir, "expect": expect})
                    if outcome == "wrong" and kind == "forge":
                        outcome = "forged"
                    table.setdefault((region, kind), {}).setdefault(outcome, 0)
                    table[(region, kind)][outcome] += 1
                    if outcome in FAILURES:
                        failures.append(f"{engine} {region} {kind}: {what} -> {outcome}: {detail}")
    finally:
        workers.stop()
        shutil.rmtree(trial_dir, ignore_errors=True)
    return table, failures


def format_table(engine, table):
    lines = [f"corruption torture, {engine}: trials by region and damage",
             f"{'region':24} {'damage':6} " + " ".join(f"{o:>9}" for o in OUTCOMES)]
    totals = {o: 0 for o in OUTCOMES}
    for (region, kind), counts in sorted(table.items()):
        lines.append(f"{region:24} {kind:6} " + " ".join(f"{counts.get(o, 0):9d}" for o in OUTCOMES))
        for o in OUTCOMES:
            totals[o] += counts.get(o, 0)
    lines.append(f"{'total':31} " + " ".join(f"{totals[o]:9d}" for o in OUTCOMES))
    return "\n".join(lines)


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    worker()
