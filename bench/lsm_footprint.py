#!/usr/bin/env python3
"""Disk footprint after fillrandom and a full compaction: kvdb-lsm against RocksDB (rocksdict)
and LevelDB (plyvel), the issue's "footprint <= 1.1x plyvel" target.

Each engine gets the db_bench data set (16-byte keys, 100-byte values that compress to about
half), written in the fillrandom order with one put per key, then a full compaction
(kvdb: db.compact(); RocksDB and LevelDB: compact_range over everything), then it is closed and
its directory measured (bytes allocated on disk, as `du`). Ratios are kvdb-lsm / peer.

    python bench/lsm_footprint.py [--num 1000000] [--engines kvdb-lsm,rocksdict,plyvel] [--dir TMP]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from dbbench.data import Dataset  # noqa: E402


def allocated(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


def run_engine(name, path, keys, values):
    t0 = time.perf_counter()
    if name == "kvdb-lsm":
        import kvdb

        db = kvdb.open(path, engine="lsm", sync="off", cache_size=256 << 20)
        put = db.put
        for k, v in zip(keys, values):
            put(k, v)
        fill = time.perf_counter() - t0
        db.compact()
        wa = db.stats()
        db.close()
        extra = f"flushed {wa['lsm_bytes_flushed'] / 2**20:.0f} MiB, compacted {wa['lsm_bytes_compacted'] / 2**20:.0f} MiB"
    elif name == "rocksdict":
        from rocksdict import Options, Rdict

        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        db = Rdict(path, opts)
        for k, v in zip(keys, values):
            db[k] = v
        fill = time.perf_counter() - t0
        db.compact_range(None, None)
        db.close()
        extra = ""
    elif name == "plyvel":
        import plyvel

        db = plyvel.DB(path, create_if_missing=True)
        put = db.put
        for k, v in zip(keys, values):
            put(k, v)
        fill = time.perf_counter() - t0
        db.compact_range()
        db.close()
        extra = ""
    else:
        raise SystemExit(f"unknown engine {name!r}")
    return allocated(path), len(keys) / fill, extra


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num", type=int, default=1_000_000)
    ap.add_argument("--engines", default="kvdb-lsm,rocksdict,plyvel")
    ap.add_argument("--dir", default=None, help="where the databases go (default: a temporary directory)")
    ap.add_argument("--seed", type=int, default=301)
    args = ap.parse_args()
    data = Dataset(args.num, args.seed)
    keys = data.shuffled("fillrandom")
    values = data.values(len(keys))
    live = sum(len(k) + len(v) for k, v in zip(keys, values))
    base = tempfile.mkdtemp(prefix="lsm-footprint-", dir=args.dir)
    sizes = {}
    try:
        print(f"footprint after fillrandom (num={args.num:,}) and a full compaction; live data {live / 2**20:.1f} MiB")
        print(f"{'engine':<10} {'MiB on disk':>12} {'space amp':>10} {'fill ops/s':>11}")
        for name in args.engines.split(","):
            path = os.path.join(base, name)
            size, rate, extra = run_engine(name, path, keys, values)
            sizes[name] = size
            print(f"{name:<10} {size / 2**20:>12.1f} {size / live:>9.2f}x {rate:>11,.0f}  {extra}")
            shutil.rmtree(path, ignore_errors=True)
        if "kvdb-lsm" in sizes:
            for peer, size in sizes.items():
                if peer != "kvdb-lsm":
                    print(f"kvdb-lsm / {peer} footprint: {sizes['kvdb-lsm'] / size:.2f}x")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
