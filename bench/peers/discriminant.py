"""discriminant (seed 003): b**2 - 4*a*c with a, b, c uniform [0, 1) float64."""

import numba
import numexpr as ne
import numpy as np

from .common import NTHREADS, SEED, Runner, check_rel, dask_runner, jit_runner, numba_note, sci

NAME = "discriminant"
RUNNERS = ("numpy", "numexpr", "numba-serial", "numba-parallel", "dask-threaded", "dask-distributed")
SIZES = {"small": (1_000_000, 250_000), "bench": (50_000_000, 2_500_000)}
IN_MEMORY = "a, b, c drawn (np.random.default_rng) before timing; times the expression only"


def cases(size):
    n, chunk = SIZES[size]
    # bytes: the minimum traffic, reading a, b, c and writing the output (every runner, accel
    # included, has the inputs in memory before timing)
    return [dict(case=f"n={sci(n)}, chunks {sci(chunk)}", n=n, chunk=chunk, elements=n, bytes=32 * n)]


def inputs(p, key):
    n, chunk = p["n"], p["chunk"]
    if key == "dask":
        import dask.array as da

        rng = da.random.default_rng(SEED)
        return tuple(rng.random(n, chunks=chunk) for _ in range(3))
    rng = np.random.default_rng(SEED)
    return tuple(rng.random(n) for _ in range(3))


def reference(p, runner):
    a, b, c = inputs(p, runner.key)
    if runner.key == "dask":
        a, b, c = (v.compute(scheduler="threads") for v in (a, b, c))
    ref = b * b - 4.0 * a * c
    # Relative to the size of the terms, since b² - 4ac cancels.
    return ref, b * b + 4.0 * a * c


def check(out, ref, p):
    value, scale = ref
    return check_rel(out, value, 1e-12, scale=scale)


def disc_loop(a, b, c):
    out = np.empty_like(a)
    for i in range(len(a)):
        out[i] = b[i] ** 2 - 4 * a[i] * c[i]
    return out


def disc_scalar(a, b, c):
    return b**2 - 4 * a * c


def make(name, p, ctx):
    if name.startswith("dask"):

        def build():
            a, b, c = inputs(p, "dask")
            return b**2 - 4 * a * c

        return dask_runner(
            name, ctx, build, "a, b, c = da.random.default_rng().random inside the graph", key="dask"
        )
    a, b, c = inputs(p, "default")
    tiny = (a[:4], b[:4], c[:4])
    if name == "numpy":
        return Runner(run=lambda: b**2 - 4 * a * c, note=IN_MEMORY)
    if name == "numexpr":
        ne.set_num_threads(NTHREADS)
        expr = lambda: ne.evaluate("b**2 - 4*a*c", local_dict={"a": a, "b": b, "c": c})  # noqa: E731
        return Runner(run=expr, note=f"{NTHREADS} threads; {IN_MEMORY}")
    if name == "numba-serial":
        return jit_runner(numba.njit, disc_loop, tiny, (a, b, c), f"{numba_note('serial')} loop; {IN_MEMORY}")
    if name == "numba-parallel":
        ufunc = numba.vectorize(["float64(float64, float64, float64)"], target="parallel")
        note = f"{numba_note('@vectorize(target=parallel)')}; {IN_MEMORY}"
        return jit_runner(ufunc, disc_scalar, tiny, (a, b, c), note)
    raise KeyError(name)
