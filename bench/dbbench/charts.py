"""PNG charts of a benchmark, drawn with matplotlib when it is installed
(`pip install matplotlib`, or the package's plot extra); without it they are
skipped with a note.

  STEM-ops.png    median ops/s per workload, one bar per engine (log scale)
  STEM-scale.png  throughput vs data size (the --scale run): put/s of each
                  fillrandom step and get/s of the read sample after it
"""


def available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _pyplot_ticker():
    import matplotlib.ticker

    return matplotlib.ticker


def ops_chart(summary, engines, workloads, path, title):
    """Grouped bars: x = workload, one bar per engine, y = median ops/s (log)."""
    plt = _pyplot()
    engines = [e for e in engines if e in summary]
    bars = len(workloads) * max(1, len(engines))
    fig, ax = plt.subplots(figsize=(min(16, max(8, 1 + 0.25 * bars)), 6))
    width = 0.8 / max(1, len(engines))
    for i, e in enumerate(engines):
        xs, ys = [], []
        for j, w in enumerate(workloads):
            cell = summary[e].get(w) or {}
            if cell.get("median"):
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(cell["median"])
        ax.bar(xs, ys, width, label=e)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(workloads, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ops/s (median, log scale)")
    ax.set_title(title)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize="small", ncol=min(3, max(1, len(engines))))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scale_chart(series, path, title):
    """Lines: x = keys loaded, y = ops/s; solid = put (fillrandom step), dashed = get."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (e, points) in enumerate(series.items()):
        color = f"C{i % 10}"
        xs = [p["keys"] for p in points]
        for key, style, what in (("fill_ops_per_sec", "-", "put"), ("read_ops_per_sec", "--", "get")):
            pts = [(x, p[key]) for x, p in zip(xs, points) if p.get(key)]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], style, marker="o", markersize=3, color=color,
                        label=f"{e} {what}")
    ax.set_xlabel("keys in the database")
    ax.xaxis.set_major_formatter(_pyplot_ticker().FuncFormatter(lambda x, _pos: f"{x:,.0f}"))
    ax.set_ylabel("ops/s")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(summary, series, engines, workloads, stem_path, counts):
    """Draw what applies; returns the list of files written."""
    files = [ops_chart(summary, engines, workloads, stem_path + "-ops.png",
                       f"db_bench: median ops/s, num={counts['num']:,}")]
    if any(series.values()):
        files.append(scale_chart(series, stem_path + "-scale.png",
                                 f"throughput vs data size (fillrandom to {counts['num']:,} keys)"))
    return files
