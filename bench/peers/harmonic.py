"""harmonic (seed 000): sin(2*pi*f*t) in float32, t = arange(n)*dt, f = 5 Hz, dt = 1e-3."""

import numba
import numexpr as ne
import numpy as np

from .common import NTHREADS, Runner, check_abs, dask_runner, jit_runner, numba_note, sci

NAME = "harmonic"
RUNNERS = ("numpy", "numexpr", "numba-serial", "numba-parallel", "dask-threaded", "dask-distributed")
SIZES = {"small": (1_000_000, 250_000), "bench": (100_000_000, 5_000_000)}
F, DT = 5.0, 1e-3
W32 = np.float32(2 * np.pi * F)  # NumPy's rules: the float64 constant takes the float32 array's type
IN_MEMORY = "t = arange(n, float32)*dt built before timing; times sin(2*pi*f*t) only"


def cases(size):
    n, chunk = SIZES[size]
    # bytes: the minimum traffic, writing the float32 output (t can be generated in the kernel)
    case = f"n={sci(n)} f32, chunks {sci(chunk)}"
    return [dict(case=case, n=n, chunk=chunk, elements=n, bytes=4 * n)]


def reference(p, runner):
    # The float32 argument rounded exactly as NumPy forms it, the sine taken in float64.
    t = np.arange(p["n"]).astype(np.float32) * np.float32(DT)
    return np.sin((W32 * t).astype(np.float64))


def check(out, ref, p):
    return check_abs(out, ref, 1e-5, dtype=np.float32) + " f32"


def wave_loop(t):
    out = np.empty_like(t)
    w = np.float32(W32)
    for i in range(len(t)):
        out[i] = np.sin(w * t[i])
    return out


def wave_prange(t):
    out = np.empty_like(t)
    w = np.float32(W32)
    for i in numba.prange(len(t)):
        out[i] = np.sin(w * t[i])
    return out


def make(name, p, ctx):
    n, chunk = p["n"], p["chunk"]
    if name.startswith("dask"):

        def build():
            import dask.array as da

            # da.arange(dtype=float32) is not usable here: each chunk's float32 arange steps
            # from a large start by float32 increments and loses the values past 2**24.
            t = da.arange(n, chunks=chunk).astype(np.float32) * DT
            return da.sin(2 * np.pi * F * t)

        return dask_runner(name, ctx, build, "t = da.arange(n).astype(float32)*dt generated inside the graph")
    t = np.arange(n, dtype=np.float32) * DT
    tiny = (t[:4],)
    if name == "numpy":
        return Runner(run=lambda: np.sin(2 * np.pi * F * t), note=IN_MEMORY)
    if name == "numexpr":
        ne.set_num_threads(NTHREADS)
        expr = lambda: ne.evaluate("sin(w * t)", local_dict={"w": W32, "t": t})  # noqa: E731
        return Runner(run=expr, note=f"{NTHREADS} threads, float32 constant; {IN_MEMORY}")
    if name == "numba-serial":
        return jit_runner(
            numba.njit, wave_loop, tiny, (t,), f"{numba_note('serial')} loop (float32); {IN_MEMORY}"
        )
    if name == "numba-parallel":
        note = f"{numba_note('@njit(parallel=True) prange')} (float32); {IN_MEMORY}"
        return jit_runner(numba.njit(parallel=True), wave_prange, tiny, (t,), note)
    raise KeyError(name)
