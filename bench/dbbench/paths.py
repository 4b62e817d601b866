"""Where the benchmark sits in the repository, and the directories it uses by default.

    REPO/                  the checkout: the `kvdb` package and bench/ side by side
      kvdb/                what the workers import unless --kvdb-path says otherwise
      bench/               BENCH_DIR: the scripts, and the directory put on sys.path to import dbbench
        dbbench/           this package
        results/           RESULTS_DIR: the runs kept with the repository (JSON, charts, tables)

A run writes its results to the current directory (default_results_dir), or to --out DIR: never
into the checkout unless asked, wherever `kvdb bench` is run from.
"""
import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))  # bench/dbbench
BENCH_DIR = os.path.dirname(PACKAGE_DIR)                    # bench/, the parent of this package
REPO = os.path.dirname(BENCH_DIR)                           # the checkout holding kvdb/ and bench/
RESULTS_DIR = os.path.join(BENCH_DIR, "results")           # the runs kept with the repository (--out to add one)


def default_results_dir():
    """Where a run's JSON and charts go without --out: the current directory."""
    return os.getcwd()
