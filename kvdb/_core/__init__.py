"""The storage core (Cython): files (file), encodings (coding), the write-ahead log (wal), the
Engine contract (engine) with its two engines (btree/, lsm/), and the database over them
(database: commits, pins, transactions, expiry). Imports nothing above kvdb.errors."""
