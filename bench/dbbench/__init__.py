"""db_bench for kvdb: LevelDB db_bench-style workloads against kvdb and peer
engines (sqlite3, lmdb, rocksdict, plyvel, diskcache), each (engine, run) in
its own process, with ops/s, ratios, disk I/O, JSON results and charts.

It lives in the repository, not in the installed package. Entry points:
`python bench/db_bench.py ...` and, from a checkout (`pip install -e .`),
`kvdb bench ...` (kvdb/cli/cmd_bench.py puts this directory's parent on
sys.path); both call runner.main(). See bench/README.md for the workloads and
how to read the output.

Modules, one job each: options (command line), runner (the parent: runs the
workers, prints, saves), spawn (one worker subprocess), worker (inside it),
workloads, data, adapters/ (one per engine), diskio (/proc/self/io and
directory sizes), report (ops/s tables), io_report (the I/O table), results
(the JSON document and its file name), charts (PNG, with matplotlib),
machine (machine description), fio (the disk's fsync rate); documents and
doc_engines (`kvdb bench documents`), server (`kvdb bench server`).

This package imports nothing from kvdb at import time (only the kvdb adapter
does, inside a worker), so it also runs where kvdb is not built yet, and
--kvdb-path decides which kvdb the workers import (spawn.py).
"""
