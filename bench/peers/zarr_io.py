"""zarr (storage): read a Zarr v2 store, sqrt(2x + 1), write a new Zarr v2 store (zstd 3).

The source is written once by peers/zarr_data.py (bench/run does it before the suites).
Every output is checked: its layout and chunk files, strips of rows (straddling a storage-chunk
boundary, and the last rows) against NumPy's sqrt(2x + 1) of the source's rows, bit for bit,
and its whole sum against NumPy's sum over the source. The output store is removed and `sync`
run after each check, outside the timings.
"""

from __future__ import annotations

import math
import os
import shutil

import numpy as np

from . import zarr_data
from .common import CheckFailed, Runner, check_ulp

NAME = "zarr"
RUNNERS = ("numpy", "dask-threaded", "dask-distributed")
STRIP = 8  # rows on each side of a storage-chunk boundary in a checked strip
SUM_RTOL = 1e-10
NOTE = (
    "Zarr v2 source (zarr-python, Zstd(3)) in the page cache; output store removed and `sync` "
    "run before each run (untimed), nothing fsynced in the timed run"
)


def cases(size):
    shape, chunks = zarr_data.SIZES[size]
    n = shape[0] * shape[1]
    case = f"{shape[0]}×{shape[1]} f64, chunks {chunks[0]}×{chunks[1]}, zstd 3"
    return [dict(case=case, size_name=size, shape=shape, chunks=chunks, elements=n, bytes=8 * n)]


def paths(p, runner):
    d = zarr_data.store_dir(p["size_name"])
    return d / "src.zarr", d / "out" / f"{runner}.zarr"


def strips(p):
    rows, ch = p["shape"][0], p["chunks"][0]
    out = [(rows - min(STRIP, rows), rows)]
    if rows > ch:
        out.insert(0, (ch - min(STRIP, ch), min(ch + STRIP, rows)))
    return out


def reference(p, runner):
    """NumPy's sqrt(2x + 1) of the checked strips, and NumPy's sum over the whole source."""
    import zarr

    meta = zarr_data.valid(p["size_name"])
    if meta is None:
        raise RuntimeError(f"no complete source store in {zarr_data.store_dir(p['size_name'])}")
    src = zarr.open(str(paths(p, runner)[0]), mode="r")
    return dict(
        strips=[(a, b, np.sqrt(2.0 * src[a:b, :] + 1.0)) for a, b in strips(p)],
        sum_y=meta["sum_y"],
        stored_read_bytes=meta["stored_bytes"],
    )


def clear(path):
    if path.exists():
        shutil.rmtree(path)
    os.sync()


def check(out, ref, p):
    import dask.array as da
    import zarr

    dst, extra = out
    try:
        z = zarr.open(str(dst), mode="r")
        comp = z.compressor.get_config() if z.compressor is not None else {}
        if z.shape != tuple(p["shape"]) or z.dtype != np.float64 or z.chunks != tuple(p["chunks"]):
            raise CheckFailed(f"output {z.shape} {z.dtype} in chunks {z.chunks}")
        if comp.get("id") != "zstd" or comp.get("level") != 3:
            raise CheckFailed(f"output compressor {comp}")
        want = math.prod(-(-s // c) for s, c in zip(p["shape"], p["chunks"]))
        files = [f for f in os.listdir(dst) if not f.startswith(".")]
        if len(files) != want:
            raise CheckFailed(f"{len(files)} chunk files, expected {want}")
        messages = [check_ulp(z[a:b, :], y, 0.0) for a, b, y in ref["strips"]]
        checked = sum(y.size for _, _, y in ref["strips"])
        total = float(da.from_zarr(z).sum().compute(scheduler="threads"))
        rel = abs(total - ref["sum_y"]) / abs(ref["sum_y"])
        if not rel < SUM_RTOL:
            raise CheckFailed(f"sum {total!r} vs NumPy's {ref['sum_y']!r}: rel err {rel:.1e}")
        extra.update(
            read_bytes=p["bytes"],
            written_bytes=p["bytes"],
            stored_read_bytes=ref["stored_read_bytes"],
            stored_written_bytes=zarr_data.stored_bytes(dst),
        )
        worst = max(messages, key=len)  # all "max err 0 ulp (≤ 0)"
        return f"{checked} elements {worst}; sum rel err {rel:.0e} vs NumPy (< {SUM_RTOL:.0e})"
    finally:
        clear(dst)


def numpy_transform(src_path, dst_path, chunks):
    """Plain zarr-python + NumPy, one row of storage chunks at a time, in this thread."""
    import numcodecs
    import zarr

    src = zarr.open(str(src_path), mode="r")
    dst = zarr.open(
        str(dst_path),
        mode="w",
        shape=src.shape,
        chunks=src.chunks,
        dtype="f8",
        compressor=numcodecs.Zstd(level=3),
    )
    rows = src.shape[0]
    for a in range(0, rows, chunks[0]):
        b = min(a + chunks[0], rows)
        dst[a:b, :] = np.sqrt(2.0 * src[a:b, :] + 1.0)


def make(name, p, ctx):
    src, dst = paths(p, name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    clear(dst)
    extra: dict = {}
    if name == "numpy":

        def run():
            numpy_transform(src, dst, p["chunks"])
            return dst, extra

        note = (
            "zarr-python read → np.sqrt(2x + 1) → zarr-python write, one row of storage chunks "
            f"at a time, 1 thread; {NOTE}"
        )
        return Runner(run=run, note=note, extra=extra)
    if name.startswith("dask"):
        import dask.array as da
        import numcodecs

        scheduler = "threads" if name == "dask-threaded" else ctx.client()

        def build():
            x = da.from_zarr(str(src))
            y = da.sqrt(2 * x + 1)
            return y.to_zarr(str(dst), overwrite=True, compressor=numcodecs.Zstd(level=3), compute=False)

        def run():
            build().compute(scheduler=scheduler)
            return dst, extra

        where = (
            "threads"
            if name == "dask-threaded"
            else "LocalCluster(2 procs × 1 thread), workers writing the files"
        )
        note = (
            f"da.from_zarr → da.sqrt(2x + 1) → .to_zarr(overwrite=True, compressor=Zstd(3)), "
            f"graph construction + compute on {where}; {NOTE}"
        )
        return Runner(run=run, note=note, graph=build, extra=extra)
    raise KeyError(name)
