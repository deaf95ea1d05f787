"""trig (seed 003): sin(a**2) * exp(b) with a, b uniform [0, 1) float64, 2-D."""

import math

import numba
from numba import cuda
import numexpr as ne
import numpy as np

from . import gpu
from .common import NTHREADS, SEED, Runner, check_rel, dask_runner, jit_runner, numba_note

NAME = "trig"
RUNNERS = ("numpy", "numexpr", "numba-serial", "numba-parallel", "dask-threaded", "dask-distributed")
GPU_RUNNERS = gpu.RUNNERS
SIZES = {"small": (1000, 250), "bench": (4000, 1000)}
IN_MEMORY = "a, b drawn (np.random.default_rng) before timing; times the expression only"


def cases(size):
    n, c = SIZES[size]
    return [dict(case=f"{n}×{n}, chunks {c}×{c}", n=n, chunk=c, elements=n * n, bytes=None)]


def inputs(p, key):
    """The runner's own a, b: NumPy's generator in memory, or Dask's generator chunk by chunk."""
    n, c = p["n"], p["chunk"]
    if key == "dask":
        import dask.array as da

        rng = da.random.default_rng(SEED)
        return rng.random((n, n), chunks=(c, c)), rng.random((n, n), chunks=(c, c))
    rng = np.random.default_rng(SEED)
    return rng.random((n, n)), rng.random((n, n))


def reference(p, runner):
    a, b = inputs(p, runner.key)
    if runner.key == "dask":
        a, b = a.compute(scheduler="threads"), b.compute(scheduler="threads")
    return np.sin(np.square(a)) * np.exp(b)


def check(out, ref, p):
    return check_rel(out, ref, 1e-12)


def trig_loop(a, b):
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i, j] = math.sin(a[i, j] ** 2) * math.exp(b[i, j])
    return out


def trig_scalar(a, b):
    return math.sin(a**2) * math.exp(b)


def trig_kernel(a, b, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = math.sin(a[i] ** 2) * math.exp(b[i])


def make_gpu(name, a, b):
    on_device = "a, b drawn on the host (np.random.default_rng) and copied to the device before timing"
    if name == "cupy":
        cp = gpu.cupy()
        da, db = cp.asarray(a), cp.asarray(b)
        note = f"{on_device}; {gpu.TO_HOST}; {gpu.device_name()}"
        return Runner(run=lambda: cp.asnumpy(cp.sin(da**2) * cp.exp(db)), note=note)
    da, db = cuda.to_device(a.ravel()), cuda.to_device(b.ravel())
    blocks, threads = gpu.grid_1d(a.size)

    def compile_():
        kernel = cuda.jit(trig_kernel)
        kernel[1, 4](da[:4], db[:4], cuda.device_array(4))
        cuda.synchronize()
        return kernel

    def run(kernel):
        out = cuda.device_array(a.size)
        kernel[blocks, threads](da, db, out)
        return out.copy_to_host().reshape(a.shape)

    note = f"@cuda.jit, one thread per element; {on_device}; {gpu.TO_HOST}"
    return gpu.cuda_runner(compile_, run, note)


def make(name, p, ctx):
    if name in GPU_RUNNERS:
        return gpu.skipped(name) or make_gpu(name, *inputs(p, "default"))
    if name.startswith("dask"):

        def build():
            import dask.array as da

            a, b = inputs(p, "dask")
            return da.sin(a**2) * da.exp(b)

        return dask_runner(
            name, ctx, build, "a, b = da.random.default_rng().random inside the graph", key="dask"
        )
    a, b = inputs(p, "default")
    tiny = (a[:2, :2].copy(), b[:2, :2].copy())
    if name == "numpy":
        return Runner(run=lambda: np.sin(a**2) * np.exp(b), note=IN_MEMORY)
    if name == "numexpr":
        ne.set_num_threads(NTHREADS)
        expr = lambda: ne.evaluate("sin(a**2) * exp(b)", local_dict={"a": a, "b": b})  # noqa: E731
        return Runner(run=expr, note=f"{NTHREADS} threads; {IN_MEMORY}")
    if name == "numba-serial":
        return jit_runner(numba.njit, trig_loop, tiny, (a, b), f"{numba_note('serial')} loop; {IN_MEMORY}")
    if name == "numba-parallel":
        ufunc = numba.vectorize(["float64(float64, float64)"], target="parallel")
        note = f"{numba_note('@vectorize(target=parallel)')}; {IN_MEMORY}"
        return jit_runner(ufunc, trig_scalar, tiny, (a, b), note)
    raise KeyError(name)
