"""Copying a closed database's files (for restore) with progress, durably."""
import os
import shutil

from kvdb._core.btree.shared import SHM_FILE_SUFFIX

from .dbpath import LOCK_FILE, fsync_dir

CHUNK = 1 << 20


def db_files(path):
    """The regular files of a database directory, LOCK and the B+Tree's shared-memory file
    excluded (both describe the opens of that directory, not its data; the first open of the
    copy makes its own)."""
    return sorted(n for n in os.listdir(path)
                  if n != LOCK_FILE and not n.endswith(SHM_FILE_SUFFIX) and os.path.isfile(os.path.join(path, n)))


def copy_files(src, dest, names, progress=None):
    """Copy src/name to dest/name for each name, fsync them and dest."""
    done = 0
    os.makedirs(dest, exist_ok=True)
    for name in names:
        with open(os.path.join(src, name), "rb") as fi, open(os.path.join(dest, name), "wb") as fo:
            while True:
                chunk = fi.read(CHUNK)
                if not chunk:
                    break
                fo.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done)
            fo.flush()
            os.fsync(fo.fileno())
        shutil.copymode(os.path.join(src, name), os.path.join(dest, name))
    fsync_dir(dest)
    return done
