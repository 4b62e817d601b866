"""kvdb bench targets: every ratio the performance targets name, measured in one run and
printed as one table, each against its target (issue 18's acceptance).

    kvdb bench targets [--runs 3] [--num 1000000] [--scale-num 10000000] [--docs 100000]
                       [--requests 200000] [--parts kv,scale,documents,server,durable]
                       [--quick] [--dir D] [--out bench/results]

It runs the other suites with each engine's default settings (what a user who sets nothing
gets; kvdb's 64 MiB cache is smaller than its B+Tree file at 1M keys), prints each suite's own
tables as it finishes, then the table of targets:

  kv        db_bench at --num keys: kvdb-btree against py-lmdb, kvdb-lsm against rocksdict,
            plyvel and sqlite3 (readrandom, readseq, seekrandom, overwrite, deleterandom,
            fillrandom, and the B+Tree's file after fillrandom)
  scale     fillrandom and readrandom at --scale-num keys, 1 run (as `kvdb bench --scale`), and
            each worker's peak RSS and anonymous memory (the heap, without mapped file pages)
  documents insert_many and the finds against sqlite3 + JSON1 (`kvdb bench documents`)
  server    redis-benchmark SET, GET, HSET, MSET at -P 1 and -P 16 against redis-server with
            appendfsync everysec (`kvdb bench server`, kvdb --sync normal)
  durable   SET and INCR, kvdb --sync full against redis-server appendfsync always

Ratios are kvdb / peer, medians of --runs runs (the 10M part: 1 run), so above 1 kvdb is
faster; for the space row the ratio is kvdb's file / py-lmdb's, and lower is better.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from . import results

PARTS = ("kv", "scale", "documents", "server", "durable")
KV_WORKLOADS = "fillrandom,overwrite,readrandom,readseq,seekrandom,deleterandom"

# (part, label, kvdb engine or suite key, peer, workload, target, how the target reads)
# target None: reported, no target. For "space" a lower ratio is better.
TARGETS = [
    ("kv", "B+Tree readrandom", "kvdb-btree", "lmdb", "readrandom", 1.0, ">="),
    ("kv", "B+Tree readseq", "kvdb-btree", "lmdb", "readseq", 1.0, ">="),
    ("kv", "B+Tree seekrandom (seek+next10)", "kvdb-btree", "lmdb", "seekrandom", 1.0, ">="),
    ("kv", "B+Tree overwrite", "kvdb-btree", "lmdb", "overwrite", 1.0, ">="),
    ("kv", "B+Tree deleterandom", "kvdb-btree", "lmdb", "deleterandom", 1.0, ">="),
    ("kv", "B+Tree fillrandom", "kvdb-btree", "lmdb", "fillrandom", None, ">="),
    ("kv", "B+Tree file after fillrandom", "kvdb-btree", "lmdb", "space", 1.2, "<="),
    ("kv", "LSM readrandom", "kvdb-lsm", "rocksdict", "readrandom", 1.0, ">="),
    ("kv", "LSM seekrandom (seek+next10)", "kvdb-lsm", "plyvel", "seekrandom", 1.0, ">="),
    ("kv", "LSM readrandom", "kvdb-lsm", "sqlite3", "readrandom", 3.0, ">="),
    ("kv", "LSM fillrandom", "kvdb-lsm", "rocksdict", "fillrandom", None, ">="),
    ("scale", "B+Tree fillrandom", "kvdb-btree", "lmdb", "fillrandom", None, ">="),
    ("scale", "B+Tree readrandom", "kvdb-btree", "lmdb", "readrandom", 1.0, ">="),
    ("scale", "LSM fillrandom", "kvdb-lsm", "rocksdict", "fillrandom", None, ">="),
    ("scale", "LSM readrandom", "kvdb-lsm", "rocksdict", "readrandom", 1.0, ">="),
    ("documents", "insert_many", "kvdb", "sqlite3-json1", "insert_many", 1.0, ">="),
    ("documents", "find_id", "kvdb", "sqlite3-json1", "find_id", 1.0, ">="),
    ("documents", "find_eq (indexed)", "kvdb", "sqlite3-json1", "find_eq", 1.0, ">="),
    ("documents", "find_range (indexed)", "kvdb", "sqlite3-json1", "find_range", 1.0, ">="),
    ("server", "GET -P 16", "kvdb", "redis", ("GET", 16), 0.8, ">="),
    ("server", "SET -P 16", "kvdb", "redis", ("SET", 16), 0.8, ">="),
    ("server", "GET -P 1", "kvdb", "redis", ("GET", 1), 0.7, ">="),
    ("server", "SET -P 1", "kvdb", "redis", ("SET", 1), 0.7, ">="),
    ("server", "HSET -P 1", "kvdb", "redis", ("HSET", 1), 0.6, ">="),
    ("server", "HSET -P 16", "kvdb", "redis", ("HSET", 16), 0.6, ">="),
    ("server", "MSET -P 1", "kvdb", "redis", ("MSET", 1), 0.6, ">="),
    ("server", "MSET -P 16", "kvdb", "redis", ("MSET", 16), 0.6, ">="),
    ("durable", "SET -P 1", "kvdb", "redis", ("SET", 1), 1.5, ">="),
    ("durable", "INCR -P 1", "kvdb", "redis", ("INCR", 1), 1.5, ">="),
    ("durable", "SET -P 16", "kvdb", "redis", ("SET", 16), 1.5, ">="),
    ("durable", "INCR -P 16", "kvdb", "redis", ("INCR", 16), 1.5, ">="),
]

TITLES = {
    "kv": "key-value, {num:,} keys, each engine's default settings (kvdb-btree vs py-lmdb, kvdb-lsm vs "
          "rocksdict / plyvel / sqlite3)",
    "scale": "key-value, {scale_num:,} keys, defaults, 1 run",
    "documents": "documents, {docs:,} documents, sync=full (vs sqlite3 + JSON1)",
    "server": "server, redis-benchmark -c 50 -d 100 (kvdb --sync normal vs redis-server appendfsync everysec)",
    "durable": "server, durable (kvdb --sync full vs redis-server appendfsync always)",
}


def build_parser(prog):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per engine; medians are reported (default 3)")
    ap.add_argument("--num", type=int, default=1_000_000, help="keys of the kv part (default 1,000,000)")
    ap.add_argument("--scale-num", type=int, default=10_000_000,
                    help="keys of the scale part, 1 run (default 10,000,000)")
    ap.add_argument("--docs", type=int, default=100_000, help="documents of the documents part (default 100,000)")
    ap.add_argument("--requests", type=int, default=200_000,
                    help="requests per redis-benchmark test (default 200,000)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)} (default all)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 1 run, 20,000 keys, 200,000 at scale, 2,000 documents, 20,000 requests")
    ap.add_argument("--dir", default=None, help="where the databases go (default: the system temp dir)")
    ap.add_argument("--out", default=None, help="directory where the table of targets is saved (default: print only)")
    return ap


def parse_args(argv, prog):
    ap = build_parser(prog)
    args = ap.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    if args.quick:
        args.runs, args.num, args.scale_num, args.docs, args.requests = 1, 20_000, 200_000, 2_000, 20_000
    if args.runs < 1 or args.num < 1000 or args.scale_num < 1000 or args.docs < 20 or args.requests < 1000:
        ap.error("--runs must be at least 1, --num and --scale-num at least 1000, --docs at least 20, "
                 "--requests at least 1000")
    return args


def run_kv(args, num, runs, workloads, engines, workdir):
    """The db_bench summary ({engine: {workload: {median, ...}}}), its io_summary and runs, from
    the JSON the suite writes."""
    from . import runner
    out = os.path.join(workdir, f"kv-{num}.json")
    argv = ["--num", str(num), "--runs", str(runs), "--cache-mb", "0", "--engines", ",".join(engines),
            "--workloads", workloads, "--json", out, "--no-charts", "--quiet"]
    if args.dir:
        argv += ["--dir", args.dir]
    runner.main(argv, prog="kvdb bench targets (kv)")
    with open(out) as f:
        doc = json.load(f)
    return doc


def kv_value(doc, engine, workload):
    if workload == "space":
        # the directory after fillrandom, as db_bench's space amplification (same data for both)
        return ((doc.get("io_summary") or {}).get(engine) or {}).get("fillrandom", {}).get("space_amp")
    return ((doc.get("summary") or {}).get(engine) or {}).get(workload, {}).get("median")


def peak_rss(doc):
    """{engine: largest max_rss_bytes of its workers}."""
    out = {}
    for engine, runs in (doc.get("runs") or {}).items():
        values = [r.get("max_rss_bytes") for r in runs if r.get("max_rss_bytes")]
        if values:
            out[engine] = max(values)
    return out


def anon_above_keys(doc):
    """{engine: largest anonymous memory at the end of a workload less the worker's own once its
    key lists were built}: the heap the engine holds, without the file pages a map touched."""
    out = {}
    for engine, runs in (doc.get("runs") or {}).items():
        for r in runs:
            base = r.get("rss_anon_base_bytes")
            ends = [w.get("rss_anon_bytes") for w in (r.get("results") or {}).values() if isinstance(w, dict)]
            ends = [e for e in ends if e]
            if base and ends:
                out[engine] = max(out.get(engine, 0), max(ends) - base)
    return out


def run_documents(args):
    from . import documents
    dargs = documents.parse_args(["--num", str(args.docs), "--runs", str(args.runs), "--engines", "kvdb,sqlite3-json1",
                                  "--no-save"] + (["--dir", args.dir] if args.dir else []), "kvdb bench targets (documents)")
    medians, skipped = documents.measure(dargs, "kvdb bench targets (documents)")
    print(documents.format_table(dargs, medians, skipped), flush=True)
    return medians


def run_server(args, sync, tests):
    from . import server
    if shutil.which("redis-benchmark") is None or shutil.which("redis-server") is None:
        return None, "redis-server or redis-benchmark is not installed (Debian: apt-get install redis-server redis-tools)"
    sargs = server.build_parser("kvdb bench targets (server)").parse_args(
        ["--runs", str(args.runs), "--requests", str(args.requests), "--tests", tests, "--sync", sync,
         "--pipelines", "1,16"] + (["--dir", args.dir] if args.dir else []))
    runs, requests, pipelines, results, lags = server.measure(sargs)
    print(server.render(sargs, runs, requests, pipelines, results, lags), flush=True)
    medians = {}
    for (name, pipeline), per_run in results.items():
        for test, (rps, _, _) in server.median_result(per_run).items():
            medians.setdefault(name, {})[(test, pipeline)] = rps
    return medians, None


def measure(args):
    """{part: {engine: {workload: value}}} and {part: why it was skipped}, running each part."""
    values, skipped, rss = {}, {}, {}
    workdir = tempfile.mkdtemp(prefix="kvdb-bench-targets-")
    try:
        if "kv" in args.parts:
            print(f"\n== {TITLES['kv'].format(num=args.num)}", flush=True)
            doc = run_kv(args, args.num, args.runs, KV_WORKLOADS,
                         ["kvdb-btree", "lmdb", "kvdb-lsm", "rocksdict", "plyvel", "sqlite3"], workdir)
            values["kv"] = doc
            skipped.update({("kv", e): why for e, why in (doc.get("skipped") or {}).items()})
        if "scale" in args.parts:
            print(f"\n== {TITLES['scale'].format(scale_num=args.scale_num)}", flush=True)
            doc = run_kv(args, args.scale_num, 1, "fillrandom,readrandom",
                         ["kvdb-btree", "lmdb", "kvdb-lsm", "rocksdict"], workdir)
            values["scale"] = doc
            rss = {"peak": peak_rss(doc), "anon": anon_above_keys(doc)}
            skipped.update({("scale", e): why for e, why in (doc.get("skipped") or {}).items()})
        if "documents" in args.parts:
            print(f"\n== {TITLES['documents'].format(docs=args.docs)}", flush=True)
            values["documents"] = run_documents(args)
        for part, sync, tests in (("server", "normal", "set,get,hset,mset"), ("durable", "full", "set,incr")):
            if part in args.parts:
                print(f"\n== {TITLES[part]}", flush=True)
                values[part], why = run_server(args, sync, tests)
                if why:
                    skipped[(part, None)] = why
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return values, skipped, rss


def value_of(values, part, engine, workload):
    got = values.get(part)
    if got is None:
        return None
    if part in ("kv", "scale"):
        return kv_value(got, engine, workload)
    return (got.get(engine) or {}).get(workload)


def rate_text(x):
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def render(args, values, skipped, rss):
    lines = ["", f"kvdb bench targets: medians of {args.runs} run(s) (the {args.scale_num:,}-key part: 1 run); "
                 "each engine's default settings", "ratio = kvdb / peer (the file row: kvdb's file / py-lmdb's, "
                 "lower is better)", ""]
    header = f"{'part':<10} {'what':<32} {'peer':<14} {'kvdb':>12} {'peer':>12} {'ratio':>8} {'target':>8}  result"
    lines += [header, "-" * len(header)]
    met = missed = 0
    for part, label, engine, peer, workload, target, sense in TARGETS:
        if part not in args.parts:
            continue
        k, p = value_of(values, part, engine, workload), value_of(values, part, peer, workload)
        ratio = k / p if k is not None and p else None
        if ratio is None:
            why = skipped.get((part, peer)) or skipped.get((part, engine)) or skipped.get((part, None))
            result = f"not measured: {why}" if why else "not measured"
        elif target is None:
            result = "reported"
        elif (ratio >= target) if sense == ">=" else (ratio <= target):
            result, met = "met", met + 1
        else:
            result, missed = "MISSED", missed + 1
        if workload == "space":
            kt, pt = (f"{k:.2f}x data" if k else "-"), (f"{p:.2f}x data" if p else "-")
        else:
            kt, pt = rate_text(k), rate_text(p)
        tt = f"{sense}{target:g}" if target is not None else ""
        rt = f"{ratio:.2f}x" if ratio is not None else "-"
        lines.append(f"{part:<10} {label:<32} {peer:<14} {kt:>12} {pt:>12} {rt:>8} {tt:>8}  {result}")
    lines += ["", f"{met} met, {missed} missed (rates in ops/s, documents in docs/s or ops/s, server in "
                  "requests/s; the file row in bytes on disk per byte of data)"]
    if rss.get("peak"):
        lines.append("peak RSS of each scale worker (includes the benchmark's own key lists and the file "
                     "pages a map touched): " +
                     ", ".join(f"{e} {b / 2**30:.2f} GiB" for e, b in sorted(rss["peak"].items())))
    if rss.get("anon"):
        lines.append("anonymous memory just before a scale workload closes its database or when it ends, "
                     "above the worker's own once its key lists were built (the heap an engine holds; max): " +
                     ", ".join(f"{e} {b / 2**20:.0f} MiB" for e, b in sorted(rss["anon"].items())))
    return "\n".join(lines)


def main(argv=None, prog="kvdb bench targets"):
    args = parse_args(sys.argv[1:] if argv is None else argv, prog)
    values, skipped, rss = measure(args)
    table = render(args, values, skipped, rss)
    print(table)
    if args.out:
        results.save_table(args.out, f"targets-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.txt",
                           prog, argv, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
