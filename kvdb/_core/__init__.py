"""The storage core (Cython): files, encodings, the write-ahead log, the Engine contract, the Database.

Files and the crash simulator (file), encodings (coding), the log (wal), the Engine contract
(engine) with its two engines (btree/, lsm/), the database over them (database: commits, pins,
transactions, expiry; detect_engine, register_extension) and every option (options). Imports
nothing above kvdb.errors."""
