"""Disk: the serializer object of a Cache (diskcache's `disk=` argument and `cache.disk`).

kvdb's Cache serializes with one fixed scheme (records.py: native int, float, str and bytes,
everything else pickled), so Disk only carries the two disk_* settings; a custom subclass that
overrides its methods changes nothing, and any other `disk=` is refused (docs/cache.md).
"""


class Disk:
    """The settings of the cache's serialization: pickle protocol and (unused) min_file_size."""

    def __init__(self, directory, min_file_size=0, pickle_protocol=0):
        self._directory = directory             # the cache directory
        self.min_file_size = min_file_size      # accepted for compatibility: values never go to files
        self.pickle_protocol = pickle_protocol  # the protocol values (not keys) are pickled with

    def __repr__(self):
        return f"kvdb.cache.Disk({self._directory!r}, pickle_protocol={self.pickle_protocol})"
