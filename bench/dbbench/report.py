"""Medians over runs, the ops/s table, kvdb/peer ratios and notes."""
import statistics

from .adapters import is_kvdb


def summarize(runs, workloads):
    """runs: {engine: [worker result, ...]} -> {engine: {workload: cell}}.

    A cell is {"median", "runs", "spread"} (spread = (max-min)/median),
    or {"na": reason}, or {"error": message}; fillsync-threads cells also
    carry median_1thread and scaling (median n threads / median 1 thread)."""
    out = {}
    for engine, results in runs.items():
        out[engine] = {}
        for w in workloads:
            cells = [r["results"][w] for r in results if w in r.get("results", {})]
            rates = [c["ops_per_sec"] for c in cells if "ops_per_sec" in c]
            errors = [c["error"] for c in cells if "error" in c]
            if errors:
                out[engine][w] = {"error": errors[0], "failed_runs": len(errors), "runs": rates}
            elif rates:
                med = statistics.median(rates)
                cell = {"median": med, "runs": rates, "spread": (max(rates) - min(rates)) / med if med else None}
                if w == "fillsync-threads":
                    one = statistics.median(c["ops_per_sec_1thread"] for c in cells)
                    cell.update(median_1thread=one, scaling=med / one if one else None, threads=cells[0]["threads"])
                out[engine][w] = cell
            elif cells and "na" in cells[0]:
                out[engine][w] = {"na": cells[0]["na"]}
    return out


def fmt_rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def _cell_text(cell):
    if cell is None:
        return "-"
    if "median" in cell:
        return fmt_rate(cell["median"])
    return "n/a" if "na" in cell else "ERROR"


def _table(header, rows, first_cols=1):
    """Columns padded to width; the first first_cols left-aligned, the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = []
    for n, r in enumerate([header] + rows):
        cells = [str(c).ljust(w) if i < first_cols else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def _label(w, counts):
    if w in ("fillsync", "fillsync-threads"):
        return f"{w} (n={counts['sync_num']:,})"
    return w


def rates_table(summary, engines, workloads, counts):
    rows = [[_label(w, counts)] + [_cell_text(summary[e].get(w)) for e in engines] for w in workloads]
    return _table(["ops/s"] + engines, rows)


def ratio_tables(summary, engines, workloads):
    """One table per kvdb engine: kvdb / peer for each workload."""
    kvdbs = [e for e in engines if is_kvdb(e)]
    peers = [e for e in engines if not is_kvdb(e)]
    out = []
    for k in kvdbs:
        if not peers:
            break
        rows = []
        for w in workloads:
            mine = summary[k].get(w) or {}
            row = [w]
            for p in peers:
                theirs = summary[p].get(w) or {}
                if "median" in mine and "median" in theirs and theirs["median"] > 0:
                    row.append(f"{mine['median'] / theirs['median']:.2f}x")
                else:
                    row.append("n/a")
            rows.append(row)
        out.append(f"{k} / peer (above 1.00x: {k} is faster)\n" + _table(["ratio"] + peers, rows))
    return out


def fio_lines(summary, engines, fio):
    if fio is None:
        return []
    if "skipped" in fio:
        return [f"fio: skipped ({fio['skipped']})"]
    lines = [f"fio 4 KiB write + fdatasync: {fio['iops']:,.0f} IOPS (mean fdatasync {fio['fdatasync_mean_us']:.1f} us) "
             f"in {fio['directory']}"]
    parts = []
    for e in engines:
        c = summary[e].get("fillsync") or {}
        parts.append(f"{e} {c['median'] / fio['iops']:.2f}" if "median" in c and fio["iops"] else f"{e} n/a")
    lines.append("fillsync / fio IOPS: " + ", ".join(parts))
    return lines


def thread_lines(summary, engines):
    lines = []
    for e in engines:
        c = summary[e].get("fillsync-threads") or {}
        if "median" in c:
            lines.append(f"fillsync-threads {e}: 1 thread {fmt_rate(c['median_1thread'])} ops/s, "
                         f"{c['threads']} threads {fmt_rate(c['median'])} ops/s, "
                         f"{c['threads']} threads / 1 thread = {c['scaling']:.2f}x")
    return lines


def notes(summary, runs, skipped):
    lines = [f"{e}: skipped ({why})" for e, why in skipped.items()]
    for e, cells in summary.items():
        for w, c in cells.items():
            if "error" in c:
                lines.append(f"{e} {w}: ERROR in {c['failed_runs']} run(s): {c['error']}")
            elif c.get("spread") and c["spread"] > 0.2:
                lines.append(f"{e} {w}: runs differ by {c['spread']:.0%} of the median (noisy)")
    for e, results in runs.items():
        for r in results:
            for w, c in r.get("results", {}).items():
                for got, want in (("found", "expected_found"), ("entries", "expected_entries")):
                    if c.get(want) is not None and c.get(got) != c[want]:
                        lines.append(f"{e} {w}: {got}={c[got]:,} but expected {c[want]:,} (wrong results?)")
    lines += disagreements(runs)
    return lines


def disagreements(runs):
    """Every engine sees the same keys, so found/entries counts must match."""
    seen = {}
    for e, results in runs.items():
        for r in results:
            for w, c in r.get("results", {}).items():
                for field in ("found", "entries"):
                    if field in c:
                        seen.setdefault((w, field), {}).setdefault(c[field], set()).add(e)
    lines = []
    for (w, field), by_value in seen.items():
        if len(by_value) > 1:
            detail = "; ".join(f"{', '.join(sorted(es))}: {v:,}" for v, es in sorted(by_value.items()))
            lines.append(f"{w}: engines disagree on {field} ({detail})")
    return lines


def series_text(series):
    """The throughput-vs-data-size table of the --scale run (or --series N)."""
    engines = [e for e, pts in series.items() if pts]
    if not engines:
        return ""
    keys = [p["keys"] for p in series[engines[0]]]
    rows = []
    for i, k in enumerate(keys):
        row = [f"{k:,}"]
        for e in engines:
            p = series[e][i] if i < len(series[e]) else {}
            for m in ("fill_ops_per_sec", "read_ops_per_sec"):
                row.append(fmt_rate(p[m]) if p.get(m) else "n/a")
        rows.append(row)
    header = ["keys loaded"] + [f"{e} {what}" for e in engines for what in ("put/s", "get/s")]
    reads = series[engines[0]][0].get("read_ops", 0)
    return (f"throughput vs data size (fillrandom in {len(keys)} steps: put/s of each step, then get/s of "
            f"{reads:,} random gets of the keys loaded so far)\n" + _table(header, rows))


def summarize_series(runs):
    """{engine: [point, ...]}: the fillrandom series, each rate the median over runs."""
    out = {}
    for e, results in runs.items():
        all_points = [r["results"]["fillrandom"]["series"] for r in results
                      if "series" in r.get("results", {}).get("fillrandom", {})]
        if not all_points:
            continue
        merged = []
        for i, p in enumerate(all_points[0]):
            same = [pts[i] for pts in all_points if i < len(pts)]
            q = dict(p)
            for k in ("fill_ops_per_sec", "read_ops_per_sec"):
                vals = [s[k] for s in same if s.get(k)]
                q[k] = statistics.median(vals) if vals else None
            merged.append(q)
        out[e] = merged
    return out


def render(summary, runs, engines, workloads, counts, fio=None, skipped=None, io_text="", series=None):
    engines = [e for e in engines if e in summary]
    n_runs = max((len(v) for v in runs.values()), default=0)
    head = (f"db_bench: num={counts['num']:,} reads={counts['reads']:,} writes={counts['writes']:,} "
            f"keys 16 B, values 100 B (~50% compressible); median ops/s of {n_runs} run(s)")
    if "cache_mb" in counts:
        head += "\n" + (f"cache: {counts['cache_mb']} MiB for every engine that has one" if counts["cache_mb"]
                        else "cache: each engine's own default (--cache-mb 0)")
    parts = [head, rates_table(summary, engines, workloads, counts)]
    parts += ratio_tables(summary, engines, workloads)
    if not any(is_kvdb(e) for e in engines):
        parts.append("(no kvdb results, so no kvdb / peer ratios)")
    if io_text:
        parts.append(io_text)
    if series_text(series or {}):
        parts.append(series_text(series))
    extra = fio_lines(summary, engines, fio) + thread_lines(summary, engines)
    if extra:
        parts.append("\n".join(extra))
    nl = notes(summary, runs, skipped or {})
    if nl:
        parts.append("notes:\n" + "\n".join("  " + n for n in nl))
    return "\n\n".join(parts)
