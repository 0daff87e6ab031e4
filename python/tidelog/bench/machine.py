"""What the numbers were measured on."""
from __future__ import annotations

import datetime
import importlib
import os
import platform
import subprocess
import sys


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def filesystem_of(path: str) -> dict:
    """The mount holding ``path``: file system type, device, mount point and options."""
    path = os.path.realpath(path)
    best = None
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts = line.split()[:4]
                mnt = mnt.replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and (best is None or len(mnt) > len(best[1])):
                    best = (dev, mnt, fstype, opts)
    except OSError:
        pass
    if best is None:
        return {"path": path}
    dev, mnt, fstype, opts = best
    return {"path": path, "type": fstype, "device": dev, "mount": mnt, "options": opts}


def _version(mod: str) -> str | None:
    try:
        m = importlib.import_module(mod)
    except Exception:
        return None
    return getattr(m, "__version__", None)


def git_commit() -> dict | None:
    """The commit of the source tree tidelog was imported from, if it is a git checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True,
                             timeout=5)
        if top.returncode != 0:
            return None
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip()),
                "dirty_files": [ln[3:] for ln in dirty.stdout.splitlines()][:20]}
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(bench_dir: str) -> dict:
    import sqlite3

    import tidelog

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu": _cpu_model(),
        "cores": cores,
        "logical_cpus": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "kernel": f"{platform.system()} {platform.release()}",
        "filesystem": filesystem_of(bench_dir),
        "python": sys.version.split()[0],
        "versions": {
            "tidelog": tidelog.__version__,
            "pyarrow": _version("pyarrow"),
            "numpy": _version("numpy"),
            "sqlite": sqlite3.sqlite_version,
            "duckdb": _version("duckdb"),
            "lmdb": _version("lmdb"),
        },
        "git": git_commit(),
    }


def describe(m: dict) -> str:
    """One line: CPU, cores, memory, kernel, file system."""
    mem = m.get("memory_bytes")
    fs = m.get("filesystem", {})
    parts = [m.get("cpu", "?"), f"{m.get('cores')} cores"]
    if mem:
        parts.append(f"{mem / 2**30:.0f} GiB RAM")
    parts.append(m.get("kernel", "?"))
    parts.append(f"{fs.get('type', '?')} on {fs.get('device', '?')} ({fs.get('path', '?')})")
    parts.append(f"Python {m.get('python')}, pyarrow {m['versions'].get('pyarrow')}")
    git = m.get("git")
    if git:
        parts.append(f"commit {git['commit'][:10]}{' + local changes' if git['dirty'] else ''}")
    return ", ".join(parts)
