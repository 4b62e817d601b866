"""The parent process of a benchmark: run one worker per (engine, run),
interleaved (run 1 of every engine, then run 2, ...), one at a time; print
the ops/s table, the ratios and the I/O table; save the JSON (with the
machine description) and, with matplotlib, the charts."""
import os
import sys

from . import charts, results
from .io_report import io_table, summarize_io
from .machine import describe, fs_type
from .options import parse_args
from .progress import Progress
from .report import render, summarize, summarize_series
from .spawn import run_one


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    if args.worker:
        from .spawn import worker_main

        return worker_main(argv)
    if args.charts_from:
        return replot(args.charts_from)

    _exit_on_sigterm()
    os.makedirs(args.dir, exist_ok=True)
    if fs_type(args.dir) == "tmpfs":
        print(f"warning: {args.dir} is on tmpfs; fsync costs nothing there, fillsync numbers mean nothing",
              file=sys.stderr)
    machine = describe(args.dir, args.kvdb_path)
    fio = _fio(args)
    runs, skipped, versions = _run_all(args)

    summary = summarize(runs, args.workloads)
    io_summary = summarize_io(runs, args.workloads)
    series = summarize_series(runs)
    print(render(summary, runs, args.engines, args.workloads, results.counts_of(args), fio, skipped,
                 io_text=io_table(io_summary, args.engines, args.workloads), series=series))
    sys.stdout.flush()
    if not args.no_save:
        _save(args, machine, fio, versions, skipped, summary, io_summary, series, runs)
    return 0


def _exit_on_sigterm():
    """SIGTERM unwinds like Ctrl-C: the running worker is killed and its directory removed."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


def replot(path):
    """Draw the charts of a saved JSON result next to it."""
    import json

    if not charts.available():
        print("charts: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return 1
    with open(path) as f:
        doc = json.load(f)
    cfg = doc["config"]
    for out in charts.draw(doc["summary"], doc.get("series") or {}, cfg["engines"], cfg["workloads"],
                           os.path.splitext(path)[0], cfg):
        print(f"chart: {out}", file=sys.stderr)
    return 0


def _fio(args):
    if not args.fio:
        return None
    from .fio import fio_fsync

    print(f"fio: measuring 4 KiB write+fdatasync in {args.dir} ...", file=sys.stderr, flush=True)
    fio = fio_fsync(args.dir, args.fio_size)
    if "skipped" in fio:
        print(f"note: {fio['skipped']}", file=sys.stderr)
    return fio


def _run_all(args):
    runs, skipped, versions = {}, {}, {}
    per_run = len(args.workloads)
    with Progress("bench", total=args.runs * len(args.engines) * per_run, unit="workloads",
                  show=False if args.quiet else None) as bar:
        for run in range(args.runs):
            for engine in args.engines:
                if engine in skipped:
                    continue
                start = bar.done

                def on_step(workload, engine=engine, run=run):
                    bar.set(bar.done, status=f"{engine} run {run + 1}/{args.runs}: {workload}")
                    bar.update(1)

                out = run_one(args, engine, run, on_step)
                bar.set(start + per_run)
                if "skipped" in out:
                    skipped[engine] = out["skipped"]
                    bar.set(bar.done, total=bar.total - per_run * (args.runs - run))
                    _note(bar, f"note: {engine} skipped: {out['skipped']}")
                    continue
                if "error" in out:
                    _note(bar, f"note: {engine} run {run + 1}: {out['error']}")
                versions[engine] = out.get("version")
                runs.setdefault(engine, []).append(out)
    return runs, skipped, versions


def _note(bar, text):
    bar.close()
    print(text, file=sys.stderr, flush=True)


def _save(args, machine, fio, versions, skipped, summary, io_summary, series, runs):
    doc = results.document(args, machine, fio, versions, skipped, summary, io_summary, series, runs)
    stem = os.path.join(args.results_dir, results.stem(args))
    path = results.save(doc, args.json or stem + ".json")
    print(f"\nresults: {path}", file=sys.stderr)
    if args.no_charts:
        return
    if not charts.available():
        print("charts: skipped (matplotlib is not installed: pip install matplotlib)", file=sys.stderr)
        return
    base = os.path.splitext(path)[0] if args.json else stem
    try:
        for f in charts.draw(summary, series, args.engines, args.workloads, base, results.counts_of(args)):
            print(f"chart: {f}", file=sys.stderr)
    except Exception as e:  # a chart is a bonus: never lose the run over it
        print(f"charts: failed ({type(e).__name__}: {e})", file=sys.stderr)
