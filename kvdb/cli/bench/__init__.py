"""db_bench for kvdb: LevelDB db_bench-style workloads against kvdb and peer
engines (sqlite3, lmdb, rocksdict, plyvel, diskcache), each (engine, run) in
its own process, with ops/s, ratios, disk I/O, JSON results and charts.

Entry points: `kvdb bench ...` (kvdb/cli/cmd_bench.py) and, in the
repository, `python bench/db_bench.py ...`; both call runner.main(). See
bench/README.md for the workloads and how to read the output.

Modules, one job each: options (command line), runner (the parent: runs the
workers, prints, saves), spawn (one worker subprocess), worker (inside it),
workloads, data, adapters/ (one per engine), diskio (/proc/self/io and
directory sizes), report (ops/s tables), io_report (the I/O table), results
(the JSON document and its file name), charts (PNG, with matplotlib),
machine (machine description), fio (the disk's fsync rate).

This package imports nothing from kvdb at import time (only the kvdb adapter
does, inside a worker), so it also runs where kvdb is not built yet; spawn
loads it in the worker by file path under the name `_kvdb_bench`, and
--kvdb-path decides which kvdb the workers import.
"""
