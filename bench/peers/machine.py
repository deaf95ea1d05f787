"""Records the machine a benchmark run used, as OUT_DIR/machine.json.

python bench/peers/machine.py OUT_DIR before --command "bench/run ..." --size bench
python bench/peers/machine.py OUT_DIR after
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "numpy",
    "numexpr",
    "numba",
    "llvmlite",
    "scipy",
    "dask",
    "distributed",
    "zarr",
    "numcodecs",
    "cupy-cuda13x",
    "cupy-cuda12x",
    "numba-cuda",
)
ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def before(args) -> dict:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_total_bytes": mem_total_bytes(),
        "kernel": platform.release(),
        "load_before": list(os.getloadavg()),
        "load_after": None,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "command": args.command,
        "size": args.size,
        "python": platform.python_version(),
        "packages": versions(),
        "env": {k: os.environ.get(k) for k in ENV},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("when", choices=("before", "after"))
    ap.add_argument("--command", default="")
    ap.add_argument("--size", default="")
    args = ap.parse_args(argv)
    path = args.out_dir / "machine.json"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.when == "before":
        info = before(args)
    else:
        info = json.loads(path.read_text()) if path.exists() else before(args)
        info["load_after"] = list(os.getloadavg())
    path.write_text(json.dumps(info, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
