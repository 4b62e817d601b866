"""The interface every engine adapter implements.

An adapter opens one database directory. After __init__ it has three plain
callables as attributes, so the timed loops call the engine with as little
Python in between as the engine's API allows:

    put(k, v)   one put, committed on its own (one transaction / commit)
    get(k)      -> bytes or None
    delete(k)   one delete, committed on its own

and methods:

    write_batch(pairs)   all (k, v) pairs in one transaction / write batch
    scan_all()           read every (k, v) in key order; returns the count
    seek_next(k, n)      position at the first key >= k, read up to n entries;
                         returns how many were read
    fsyncs()             the engine's own count of fsyncs so far, or None when
                         the engine does not expose one (only kvdb does)
    close()

sync=False means commits do not wait for the disk; sync=True means every
commit is durable (fsync/fdatasync) before put() returns.
"""


class NotSupported(Exception):
    """The engine has no way to run this workload (reported as n/a)."""


class Adapter:
    name = "?"
    scans = True  # readseq and seekrandom are possible
    threads = False  # fillsync-threads is run (kvdb only)

    def __init__(self, path, sync=False, cache_bytes=256 << 20):
        """cache_bytes: the cache to give the engine; 0 leaves the engine's own default
        (`--cache-mb 0`, what a user who sets nothing gets)."""
        raise NotImplementedError

    def write_batch(self, pairs):
        raise NotImplementedError

    def scan_all(self):
        raise NotSupported(f"{self.name} has no ordered scan")

    def seek_next(self, key, n):
        raise NotSupported(f"{self.name} has no ordered scan")

    def fsyncs(self):
        return None

    def close(self):
        raise NotImplementedError

    @staticmethod
    def version():
        """Version string of the binding and, where known, the C library."""
        return "?"
