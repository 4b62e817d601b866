"""The kvdb command line (`kvdb ...` / `python -m kvdb ...`).

One module per job: `main` builds the parser and turns every error into one
line on stderr; `cmd_*` are the subcommands; `dbpath` (finding a database
and its engine), `byteargs`, `dumpformat`, `pagescan` (B+Tree pages) and
`sstscan` (LSM tables), `progress` are their helpers; `bench/` is the
db_bench engine behind `kvdb bench` (and bench/db_bench.py in the repository).
"""
