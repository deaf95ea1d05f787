"""The zarr workload's source store: written once with zarr-python 2, reused by later runs.

    python bench/peers/zarr_data.py --size small|bench [--dir bench/out/data]

Creates DIR/zarr-SIZE/src.zarr, a 2-D float64 Zarr **v2** array (Dask's zarr 2 cannot read v3;
accel reads both) compressed with numcodecs Zstd(level=3), filled with seeded uniform values in
[0, 100), and DIR/zarr-SIZE/src.json next to it: the layout and NumPy's sums of x and of
sqrt(2x + 1) over the whole array, the reference both suites check their outputs' sums against.
src.json is written last: a store without it (an interrupted run) or with another layout is
written again. At the end every chunk file is read once, so that both suites start with the
source in the page cache. Prints the store's path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent.parent
SEED = 42
# (shape, storage chunks): bench is 2 GiB in 64 MiB chunks, small 32 MiB in 4 MiB chunks.
SIZES = {
    "small": ((2048, 2048), (512, 1024)),
    "bench": ((16384, 16384), (2048, 4096)),
}
ZSTD_LEVEL = 3
LAYOUT_VERSION = 1  # bump when the values or the layout change: old stores are rewritten


def store_dir(size: str, root: Path | None = None) -> Path:
    return (root or BENCH / "out" / "data") / f"zarr-{size}"


def layout(size: str) -> dict:
    shape, chunks = SIZES[size]
    return dict(
        version=LAYOUT_VERSION,
        zarr_format=2,
        shape=list(shape),
        chunks=list(chunks),
        dtype="float64",
        compressor=f"zstd level {ZSTD_LEVEL}",
        seed=SEED,
        values="uniform [0, 100), one generator per row of storage chunks",
    )


def row_block(size: str, k: int) -> np.ndarray:
    """Rows k*ch0 .. (k+1)*ch0 of the source, as NumPy makes them (seeded per block)."""
    (rows, cols), (ch0, _) = SIZES[size]
    n = min(ch0, rows - k * ch0)
    rng = np.random.default_rng([SEED, k])
    return rng.random((n, cols), dtype=np.float64) * 100.0


def stored_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and not f.name.startswith("."))


def valid(size: str, root: Path | None = None) -> dict | None:
    """The sidecar of an existing, complete store with this size's layout, or None."""
    d = store_dir(size, root)
    try:
        meta = json.loads((d / "src.json").read_text())
        zarray = json.loads((d / "src.zarr" / ".zarray").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("layout") != layout(size):
        return None
    shape, chunks = SIZES[size]
    comp = zarray.get("compressor") or {}
    if (
        zarray.get("zarr_format") != 2
        or tuple(zarray.get("shape", ())) != shape
        or tuple(zarray.get("chunks", ())) != chunks
        or zarray.get("dtype") != "<f8"
        or comp.get("id") != "zstd"
        or comp.get("level") != ZSTD_LEVEL
    ):
        return None
    nchunks = math.prod(-(-s // c) for s, c in zip(shape, chunks))
    files = [f for f in (d / "src.zarr").iterdir() if not f.name.startswith(".")]
    if len(files) != nchunks:
        return None
    return meta


def create(size: str, root: Path | None = None) -> dict:
    import numcodecs
    import zarr

    d = store_dir(size, root)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    shape, chunks = SIZES[size]
    t0 = time.perf_counter()
    z = zarr.open(
        str(d / "src.zarr"),
        mode="w",
        shape=shape,
        chunks=chunks,
        dtype="f8",
        compressor=numcodecs.Zstd(level=ZSTD_LEVEL),
    )
    sums_x, sums_y = [], []
    for k in range(-(-shape[0] // chunks[0])):
        block = row_block(size, k)
        z[k * chunks[0] : k * chunks[0] + block.shape[0], :] = block
        sums_x.append(float(np.sum(block)))
        sums_y.append(float(np.sum(np.sqrt(2.0 * block + 1.0))))
        del block
    os.sync()
    meta = dict(
        layout=layout(size),
        zarr_python=zarr.__version__,
        numcodecs=numcodecs.__version__,
        sum_x=math.fsum(sums_x),
        sum_y=math.fsum(sums_y),
        nbytes=int(np.prod(shape)) * 8,
        stored_bytes=stored_bytes(d / "src.zarr"),
        write_s=time.perf_counter() - t0,
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    tmp = d / "src.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    tmp.replace(d / "src.json")
    return meta


def warm(size: str, root: Path | None = None) -> None:
    """Reads every file of the source once (into the page cache)."""
    for f in (store_dir(size, root) / "src.zarr").iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


def ensure(size: str, root: Path | None = None, quiet: bool = False) -> dict:
    """The store's sidecar, creating the store first when it is missing or stale."""
    meta = valid(size, root)
    if meta is None:
        if not quiet:
            where = store_dir(size, root) / "src.zarr"
            print(f"zarr_data: writing {where} (zarr v2, zstd {ZSTD_LEVEL})", flush=True)
        meta = create(size, root)
        if not quiet:
            print(
                f"zarr_data: {meta['nbytes'] / 1e9:.2f} GB in {meta['write_s']:.1f} s, "
                f"{meta['stored_bytes'] / 1e9:.2f} GB on disk",
                flush=True,
            )
    elif not quiet:
        where = store_dir(size, root) / "src.zarr"
        print(f"zarr_data: reusing {where} (created {meta['created']})", flush=True)
    warm(size, root)
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=tuple(SIZES), default="bench")
    ap.add_argument("--dir", type=Path, default=None, help="data directory (default: bench/out/data)")
    args = ap.parse_args(argv)
    ensure(args.size, args.dir.resolve() if args.dir else None)
    print(store_dir(args.size, args.dir.resolve() if args.dir else None) / "src.zarr")
    return 0


if __name__ == "__main__":
    sys.exit(main())
