"""Runs the peer suite and writes its records as JSON.

python bench/peers/run.py [--size small|bench] [--only mag,trig,...] [--repeats N] [--json FILE]
                          [--runners numpy,numba-parallel,...] [--gpu auto|none|cuda]

--gpu: the GPU peers (CuPy, Numba-CUDA) of mag, trig, fractal, pi and heat: `auto` (the
default) runs them when a CUDA device is there, `cuda` always (skipped, saying why, without
one), `none` never.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
# Dask worker processes import the workload modules (heat's step, overhead's no-op) by name.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))

WORKLOADS = ("mag", "trig", "discriminant", "harmonic", "inc25", "fractal", "pi", "trace", "heat", "matmul", "zarr")
SPECIAL = ("overhead",)
ALIASES = {"task-overhead": "overhead", "cluster-startup": "overhead"}
MODULES = {"zarr": "zarr_io"}  # a module named zarr would hide the zarr package
ACCEL_ONLY = ("client-receive",)  # measured by accel's suite alone; accepted and skipped here


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("small", "bench"), default="bench")
    ap.add_argument("--only", default="", help="comma-separated workloads (default: all, plus overhead)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (median reported)")
    ap.add_argument("--json", type=Path, default=BENCH / "out" / "peers.json")
    ap.add_argument("--runners", default="", help="comma-separated runners (default: all)")
    ap.add_argument("--gpu", choices=("auto", "none", "cuda"), default="auto", help="GPU peers (see above)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    known = WORKLOADS + SPECIAL
    picked = [ALIASES.get(w, w) for w in filter(None, (w.strip() for w in args.only.split(",")))]
    unknown = sorted(set(picked) - set(known) - set(ACCEL_ONLY))
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(known)}")
    args.workloads = [w for w in known if not picked or w in picked]
    args.runner_filter = set(filter(None, (r.strip() for r in args.runners.split(","))))
    return args


def write_json(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"records": records}, indent=1, allow_nan=False) + "\n")
    tmp.replace(path)


def show(rec: dict) -> None:
    ms = f"{rec['median_s'] * 1e3:11.2f} ms" if rec["median_s"] is not None else " " * 14
    extra = rec["error"] or rec["check"]
    print(
        f"{rec['workload']:<13} {rec['case']:<28} {rec['runner']:<17} {rec['status']:<7} {ms}  {extra}",
        flush=True,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    # The seed's fractal embeds its NumPy inputs in the graph; the notes say so.
    warnings.filterwarnings("ignore", message="Sending large graph")
    from peers.common import Context, measure

    ctx = Context(args.size, args.repeats)
    from peers import gpu

    with_gpu = args.gpu == "cuda" or (args.gpu == "auto" and gpu.any_available())
    records: list[dict] = []

    def add(rec):
        records.append(rec)
        show(rec)
        write_json(args.json, records)

    def flush_extra():
        while ctx.extra_records:
            add(ctx.extra_records.pop(0))

    t_start = time.perf_counter()
    mods = [
        importlib.import_module(f"peers.{MODULES.get(name, name)}")
        for name in args.workloads
        if name not in SPECIAL
    ]
    try:
        # Two passes: first every runner that works inside this process, then, with the
        # LocalCluster started once, the dask-distributed ones. An idle cluster's processes
        # still wake up and steal cores: with them alive, Numba's parallel loops (OpenMP
        # barriers) ran 10-100× slower here.
        for distributed in (False, True):
            for mod in mods:
                for p in mod.cases(args.size):
                    refs: dict = {}
                    for runner in mod.RUNNERS + (getattr(mod, "GPU_RUNNERS", ()) if with_gpu else ()):
                        if (runner == "dask-distributed") != distributed:
                            continue
                        if args.runner_filter and runner not in args.runner_filter:
                            continue
                        rec = measure(mod, p, runner, ctx, refs)
                        flush_extra()
                        add(rec)
                    del refs
                    gc.collect()
        if "overhead" in args.workloads and (
            not args.runner_filter or "dask-distributed" in args.runner_filter
        ):
            for rec in importlib.import_module("peers.overhead").run(ctx):
                flush_extra()
                add(rec)
    finally:
        ctx.close()
    flush_extra()
    write_json(args.json, records)
    failed = sum(r["status"] == "failed" for r in records)
    print(
        f"peers: {len(records)} records, {failed} failed, {time.perf_counter() - t_start:.0f} s → {args.json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
