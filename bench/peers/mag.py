"""mag (seed 004): sqrt(x**2 + y**2) with x = y = arange(n) float64."""

import math

import numba
from numba import cuda
import numexpr as ne
import numpy as np

from . import gpu
from .common import NTHREADS, Runner, check_ulp, dask_runner, jit_runner, numba_note, sci

NAME = "mag"
RUNNERS = ("numpy", "numexpr", "numba-serial", "numba-parallel", "dask-threaded", "dask-distributed")
GPU_RUNNERS = gpu.RUNNERS
SIZES = {"small": (1_000_000, 100_000), "bench": (50_000_000, 2_500_000)}
IN_MEMORY = "x, y = arange(n) built before timing; times the expression only"


def cases(size):
    n, chunk = SIZES[size]
    # bytes: the minimum traffic, writing the output (accel generates the inputs in the kernel)
    return [dict(case=f"n={sci(n)}, chunks {sci(chunk)}", n=n, chunk=chunk, elements=n, bytes=8 * n)]


def reference(p, runner):
    # sqrt(i² + i²) = sqrt(2)·i; i² is exact in float64 for i < 2**26.
    return math.sqrt(2.0) * np.arange(p["n"], dtype=np.float64)


def check(out, ref, p):
    return check_ulp(out, ref, 2.0)


def mag_loop(xarray, yarray):
    out = np.empty(min(len(xarray), len(yarray)))
    for i in range(len(out)):
        out[i] = np.sqrt(xarray[i] ** 2 + yarray[i] ** 2)
    return out


def mag_scalar(x, y):
    return math.sqrt(x**2 + y**2)


def mag_kernel(x, y, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = math.sqrt(x[i] ** 2 + y[i] ** 2)


def make_gpu(name, n):
    if name == "cupy":
        cp = gpu.cupy()
        x = cp.arange(n, dtype=cp.float64)
        y = cp.arange(n, dtype=cp.float64)
        note = f"x, y = cupy.arange on the device before timing; {gpu.TO_HOST}; {gpu.device_name()}"
        return Runner(run=lambda: cp.asnumpy(cp.sqrt(x**2 + y**2)), note=note)
    x = cuda.to_device(np.arange(n, dtype=np.float64))
    y = cuda.to_device(np.arange(n, dtype=np.float64))
    blocks, threads = gpu.grid_1d(n)

    def compile_():
        kernel = cuda.jit(mag_kernel)
        kernel[1, 4](x[:4], y[:4], cuda.device_array(4))
        cuda.synchronize()
        return kernel

    def run(kernel):
        out = cuda.device_array(n)
        kernel[blocks, threads](x, y, out)
        return out.copy_to_host()

    note = f"@cuda.jit, one thread per element, on device arrays made before timing; {gpu.TO_HOST}"
    return gpu.cuda_runner(compile_, run, note)


def make(name, p, ctx):
    n, chunk = p["n"], p["chunk"]
    if name in GPU_RUNNERS:
        return gpu.skipped(name) or make_gpu(name, n)
    if name.startswith("dask"):
        import dask.array as da

        def build():
            x = da.arange(n, chunks=chunk, dtype=np.float64)
            y = da.arange(n, chunks=chunk, dtype=np.float64)
            return da.sqrt(x**2 + y**2)

        return dask_runner(name, ctx, build, "x, y = da.arange generated inside the graph")
    x = np.arange(n, dtype=np.float64)
    y = np.arange(n, dtype=np.float64)
    tiny = (x[:4], y[:4])
    if name == "numpy":
        return Runner(run=lambda: np.sqrt(x**2 + y**2), note=IN_MEMORY)
    if name == "numexpr":
        ne.set_num_threads(NTHREADS)
        return Runner(
            run=lambda: ne.evaluate("sqrt(x**2 + y**2)", local_dict={"x": x, "y": y}),
            note=f"{NTHREADS} threads; {IN_MEMORY}",
        )
    if name == "numba-serial":
        return jit_runner(numba.njit, mag_loop, tiny, (x, y), f"{numba_note('serial')} loop; {IN_MEMORY}")
    if name == "numba-parallel":
        ufunc = numba.vectorize(["float64(float64, float64)"], target="parallel")
        note = f"{numba_note('@vectorize(target=parallel)')}; {IN_MEMORY}"
        return jit_runner(ufunc, mag_scalar, tiny, (x, y), note)
    raise KeyError(name)
