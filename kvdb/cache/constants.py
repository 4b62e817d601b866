"""The cache's marker constants and its Timeout error (the names diskcache exports)."""
from kvdb.errors import Error


class Constant(tuple):
    """A named marker, equal only to itself (a one-element tuple of its name, as diskcache's are,
    so code that puts it in keys gets plain tuples); it pickles by name, so it stays identical."""

    def __new__(cls, name):
        return tuple.__new__(cls, (name,))

    def __repr__(self):
        return self[0]

    def __reduce__(self):
        return self[0]          # pickled as the module attribute of that name


ENOVAL = Constant("ENOVAL")     # "no value": a default that no stored value equals
UNKNOWN = Constant("UNKNOWN")   # "not known yet"


CLOSE_TIMEOUT = 60.0            # seconds close() retries its own writes (the counters, pending
                                # statistics and accesses): a plain Cache's default timeout, also
                                # for a FanoutCache shard whose timeout is 0.010 s, since a close
                                # that gave up after a few conflicts would raise where diskcache's
                                # writes nothing


class Timeout(Error):
    """A cache operation waited longer than the cache's timeout: for a transact() block another
    holds, or through more write conflicts with other processes than the timeout allows."""
