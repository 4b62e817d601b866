"""The disk's synced-write rate, measured with fio: 4 KiB sequential writes
with an fdatasync after each one. That is the ceiling for any engine that
fsyncs once per commit, so fillsync is reported as a fraction of it.

    python bench/fio_fsync.py [DIR] [--size 64m]   (in a checkout)
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

INSTALL_HINT = "fio not found; install it (Debian/Ubuntu: apt-get install -y fio) to measure the disk's fsync rate"


def fio_fsync(directory, size="64m", timeout=900):
    """{"iops": ..., "fdatasync_mean_us": ..., ...} or {"skipped": reason}."""
    exe = shutil.which("fio")
    if exe is None:
        return {"skipped": INSTALL_HINT}
    os.makedirs(directory, exist_ok=True)
    cmd = [exe, "--name=fsync", "--rw=write", "--bs=4k", f"--size={size}", "--fdatasync=1",
           f"--directory={directory}", "--output-format=json"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"fio did not finish in {timeout} s", "command": " ".join(cmd)}
    finally:
        for f in glob.glob(os.path.join(directory, "fsync.*")):
            os.unlink(f)
    if p.returncode != 0:
        return {"skipped": f"fio exited {p.returncode}: {p.stderr.strip()[-500:]}", "command": " ".join(cmd)}
    text = p.stdout[p.stdout.find("{"):]  # fio may print notes before the JSON
    job = json.loads(text)["jobs"][0]
    sync_lat = job.get("sync", {}).get("lat_ns", {})
    return {
        "iops": job["write"]["iops"],
        "fdatasync_mean_us": sync_lat.get("mean", 0) / 1000 if sync_lat else None,
        "fio_version": json.loads(text).get("fio version"),
        "size": size,
        "directory": directory,
        "command": " ".join(cmd),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", default=".", help="directory on the disk to measure (default .)")
    ap.add_argument("--size", default="64m", help="bytes to write (fio syntax, default 64m)")
    args = ap.parse_args(argv)
    r = fio_fsync(os.path.abspath(args.dir), args.size)
    if "skipped" in r:
        print(f"note: {r['skipped']}", file=sys.stderr)
        return 0
    print(f"fio 4 KiB write + fdatasync in {r['directory']}: {r['iops']:,.0f} write IOPS"
          f" (mean fdatasync {r['fdatasync_mean_us']:.1f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
