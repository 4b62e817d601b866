"""A description of the machine and software a benchmark ran on."""
import datetime
import os
import platform
import sqlite3
import subprocess
import sys
from importlib import metadata

PACKAGES = ["lmdb", "rocksdict", "plyvel", "diskcache", "Cython", "kvdb", "msgpack", "matplotlib"]


def _first(path, prefix):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _mount_of(path):
    """(mount point, fs type, device) holding path, from /proc/mounts."""
    path = os.path.realpath(path)
    best = ("", None, None)
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                    best = (mnt, fstype, dev)
    except OSError:
        pass
    return best


def fs_type(path):
    return _mount_of(path)[1]


def git_rev(repo):
    try:
        r = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def describe(bench_dir, repo):
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["sqlite"] = sqlite3.sqlite_version
    mem_kb = _first("/proc/meminfo", "MemTotal")
    mnt, fstype, dev = _mount_of(bench_dir)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu_model": _first("/proc/cpuinfo", "model name") or platform.processor(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "memory_total": mem_kb,
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "packages": versions,
        "bench_dir": bench_dir,
        "bench_fs": {"mount": mnt, "type": fstype, "device": dev},
        "kvdb_git": git_rev(repo),
    }
