"""What a workload did to the disk: the process's OS-level I/O counters
(/proc/self/io, all threads included) and the size of a database directory.

read_bytes / write_bytes are what the kernel accounts to the process as
storage I/O: pages read from the device (page-cache hits are free), pages of
the page cache the process dirtied (counted when a clean page becomes dirty,
whether the kernel writes it back during the workload or later; rewriting a
page that is still dirty counts nothing, as it costs the disk nothing: the
worker syncs before each workload so that each starts with clean pages) and
direct writes.
cancelled_write_bytes are dirty bytes dropped before writeback (a truncated or
deleted file). rchar / wchar are the bytes passed to read()/write()-like
system calls, cached or not. On a system without /proc/self/io every value is
None and the tables say n/a.
"""
import os

FIELDS = ("read_bytes", "write_bytes", "cancelled_write_bytes", "rchar", "wchar", "syscr", "syscw")


def proc_io():
    """{field: int} from /proc/self/io, or None where it is not available."""
    try:
        with open("/proc/self/io") as f:
            out = {}
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() in FIELDS:
                    out[name.strip()] = int(value)
            return out
    except (OSError, ValueError):
        return None


def delta(before, after):
    if before is None or after is None:
        return None
    return {k: after[k] - before[k] for k in before if k in after}


def dir_size(path):
    """(bytes allocated on disk, apparent bytes) of every file under path; (None, None) if it is gone."""
    if not path or not os.path.isdir(path):
        return None, None
    used = apparent = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            apparent += st.st_size
            used += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return used, apparent


def rss_anon():
    """Resident anonymous memory in bytes (RssAnon in /proc/self/status), or None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
