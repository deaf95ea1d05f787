"""inc25 (seed 002): x = x + 1 applied 25 times to ones(n) float64."""

import numba
import numexpr as ne
import numpy as np

from .common import NTHREADS, Runner, check_equal, dask_runner, jit_runner, numba_note, sci

NAME = "inc25"
RUNNERS = ("numpy", "numexpr", "numba-serial", "numba-parallel", "dask-threaded", "dask-distributed")
SIZES = {"small": (10_000, 2_500), "bench": (50_000_000, 2_500_000)}
STEPS = 25
IN_MEMORY = "x = ones(n) built before timing"


def cases(size):
    n, chunk = SIZES[size]
    # bytes: the minimum traffic, writing the output (accel generates the inputs in the kernel)
    return [dict(case=f"n={sci(n)}, chunks {sci(chunk)}", n=n, chunk=chunk, elements=n, bytes=8 * n)]


def reference(p, runner):
    return np.full(p["n"], 1.0 + STEPS)


def check(out, ref, p):
    return check_equal(out, ref)


def numpy_inc(x):
    for _ in range(STEPS):
        x = x + 1
    return x


def numexpr_inc(x):
    for _ in range(STEPS):
        x = ne.evaluate("x + 1", local_dict={"x": x})
    return x


def inc_loop(x):
    out = np.empty_like(x)
    for i in range(len(x)):
        v = x[i]
        for _ in range(25):
            v = v + 1
        out[i] = v
    return out


def inc_prange(x):
    out = np.empty_like(x)
    for i in numba.prange(len(x)):
        v = x[i]
        for _ in range(25):
            v = v + 1
        out[i] = v
    return out


FUSED = "the 25 increments fused in one loop over x (a Numba user's natural form)"


def make(name, p, ctx):
    n, chunk = p["n"], p["chunk"]
    if name.startswith("dask"):

        def build():
            import dask.array as da

            return numpy_inc(da.ones(n, chunks=chunk))

        return dask_runner(
            name, ctx, build, "x = da.ones inside the graph; 25 × (x + 1), fused by dask.optimize"
        )
    x = np.ones(n)
    tiny = (x[:4],)
    if name == "numpy":
        return Runner(run=lambda: numpy_inc(x), note=f"{IN_MEMORY}; 25 × (x = x + 1), one temporary each")
    if name == "numexpr":
        ne.set_num_threads(NTHREADS)
        return Runner(
            run=lambda: numexpr_inc(x), note=f"{NTHREADS} threads; {IN_MEMORY}; 25 × ne.evaluate('x + 1')"
        )
    if name == "numba-serial":
        return jit_runner(numba.njit, inc_loop, tiny, (x,), f"{numba_note('serial')}; {IN_MEMORY}; {FUSED}")
    if name == "numba-parallel":
        note = f"{numba_note('@njit(parallel=True) prange')}; {IN_MEMORY}; {FUSED}"
        return jit_runner(numba.njit(parallel=True), inc_prange, tiny, (x,), note)
    raise KeyError(name)
