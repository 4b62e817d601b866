"""Child process used by the multi-process tests (run as a script, never collected).

    child_writer.py lockprobe PATH
        try to open PATH; print "LOCKED <pid> <path>" or "OPENED".
    child_writer.py commits PATH MAX_COMMITS CHECKPOINT_SIZE [SYNC]
        commit transactions forever (or MAX_COMMITS of them) with the
        layout described in commit_txn(); print "C <n>" after each commit
        returns (acknowledged). On a kvdb.Error print "E <class>", then retry
        the same transaction ("E2 <class>", or "W2 ok" and "C <n>") and read
        ("R <counter>" or "RE <class>"), and exit 0. Any other exception: "X <repr>", exit 3
        ("OPENX <repr>", exit 6, if open() raised it; "OPENFAIL ...", exit 4, for a kvdb.Error).
    child_writer.py openprobe PATH
        open PATH and put one key; the exit code says what happened (0 ok, 4 a
        kvdb.Error, 6 any other exception), as output may be failing too.
    child_writer.py walwriter PATH N
        commit N transactions with a large checkpoint_size, print "DONE" and
        _exit without closing, so the records stay in the WAL.

Output is written with os.write in a retry loop, so that injected write
failures (fiu) can delay a line but never garble it.
"""
import os
import random
import sys
import traceback

import kvdb


def out(line, fd=1):
    data = (line + "\n").encode()
    for _ in range(1000):
        try:
            n = os.write(fd, data)
        except OSError:
            continue
        data = data[n:]
        if not data:
            return
    os._exit(5)


def log_size(n):
    return random.Random(n * 7919).choice([10, 100, 1000, 3000, 9000])


def log_value(n):
    return random.Random(n).randbytes(log_size(n))


def commit_txn(db, n):
    """Transaction n: counter=n, tag:0..3 = n (some big), log:n, tmp:n replacing tmp:n-1."""
    with db.transaction() as tx:
        tx.put(b"counter", b"%d" % n)
        for j in range(4):
            pad = b"." * (2500 if (n + j) % 3 == 0 else 0)
            tx.put(b"tag:%d" % j, b"%d|" % n + pad)
        tx.put(b"log:%08d" % n, log_value(n))
        if n > 0:
            tx.delete(b"tmp:%d" % (n - 1))
        tx.put(b"tmp:%d" % n, b"%d" % n)


def read_counter(db):
    c = db.get(b"counter")
    return -1 if c is None else int(c)


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode in ("lockprobe", "exclusiveprobe"):
        try:
            db = kvdb.open(path, _exclusive=mode == "exclusiveprobe")
        except kvdb.LockedError as e:
            out(f"LOCKED {e.pid} {e.path} {str(e)!r}")
            return
        out("OPENED")
        db.close()
        return
    if mode == "openprobe":
        # Exit code only (stdout may be failing too): 0 opened and wrote, 4 kvdb.Error, 6 other.
        try:
            with kvdb.open(path, sync="full") as db:
                db.put(b"probe", b"1")
        except kvdb.Error:
            os._exit(4)
        except BaseException:  # noqa: BLE001
            os._exit(6)
        os._exit(0)
    if mode == "walwriter":
        n = int(sys.argv[3])
        db = kvdb.open(path, sync="full", checkpoint_size=1 << 30)
        for i in range(n):
            with db.transaction() as tx:
                tx.put(b"w:%04d" % i, random.Random(i).randbytes(3000))
                tx.put(b"m:%04d" % i, b"%d" % i)
        out("DONE")
        os._exit(0)
    if mode == "commits":
        max_commits, ckpt = int(sys.argv[3]), int(sys.argv[4])
        sync = sys.argv[5] if len(sys.argv) > 5 else "full"
        engine = sys.argv[6] if len(sys.argv) > 6 else "btree"
        # lsm: small memtables and tables, so kills land in flushes and compactions too
        extra = dict(memtable_size=32 << 10, sstable_size=32 << 10, level1_size=128 << 10) if engine == "lsm" else {}
        try:
            db = kvdb.open(path, engine=engine, sync=sync, checkpoint_size=ckpt, page_size=1024,
                           cache_size=256 << 10, **extra)
            n = read_counter(db) + 1
        except kvdb.Error as e:
            out(f"OPENFAIL {type(e).__name__} {e}")
            os._exit(4)
        except Exception as e:  # noqa: BLE001 - reported to the parent
            out(f"OPENX {e!r}")
            out(traceback.format_exc(), fd=2)
            os._exit(6)
        out("READY")
        try:
            for _ in range(max_commits):
                try:
                    commit_txn(db, n)
                except kvdb.Error as e:
                    out(f"E {type(e).__name__} {e}")
                    try:
                        commit_txn(db, n)  # the same transaction again: idempotent
                        out("W2 ok")
                        out(f"C {n}")
                    except kvdb.Error as e2:
                        out(f"E2 {type(e2).__name__}")
                    try:
                        out(f"R {read_counter(db)}")
                    except kvdb.Error as e3:
                        out(f"RE {type(e3).__name__}")
                    os._exit(0)
                out(f"C {n}")
                n += 1
            try:
                db.close()
                out("END")
            except kvdb.Error as e:
                out(f"CE {type(e).__name__} {e}")
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            out(f"X {e!r}")
            out(traceback.format_exc(), fd=2)
            os._exit(3)
        os._exit(0)
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
