"""The kvdb command line: one module per subcommand, and their helpers.

`kvdb ...` or `python -m kvdb ...`. `main` builds the parser and turns every error into one
line on stderr; `cmd_*` are the subcommands; `dbpath` (finding a database and its engine),
`dboptions` (the database options as flags), `byteargs`, `dumpformat`, `pagescan` (B+Tree
pages), `sstscan` (LSM tables), `progress` and the others are their helpers. `kvdb bench`
(`cmd_bench`) runs the benchmark in the repository's bench/, which is not installed with kvdb.
"""
