"""trace (seed 003): a + sum(tanh(diag(a))) with a = arange(n*n).reshape(n, n) float64."""

import math

import numba
import numexpr as ne
import numpy as np

from .common import NTHREADS, Runner, check_rel, dask_runner, jit_runner, numba_note

NAME = "trace"
RUNNERS = ("numpy", "numexpr", "numba-serial", "numba-parallel", "dask-threaded", "dask-distributed")
SIZES = {"small": (100, 25), "bench": (4000, 1000)}
IN_MEMORY = "a = arange(n*n).reshape(n, n) built before timing"


def cases(size):
    n, c = SIZES[size]
    return [dict(case=f"{n}×{n}, chunks {c}×{c}", n=n, chunk=c, elements=n * n, bytes=None)]


def reference(p, runner):
    n = p["n"]
    trace = math.fsum(math.tanh(float(i * (n + 1))) for i in range(n))
    return np.arange(n * n, dtype=np.float64).reshape(n, n) + trace


def check(out, ref, p):
    return check_rel(out, ref, 1e-12)


def a_plus_tr_tanh_a(a):
    trace = 0.0
    for i in range(a.shape[0]):
        trace += np.tanh(a[i, i])
    return a + trace


def make(name, p, ctx):
    n, c = p["n"], p["chunk"]
    if name.startswith("dask"):

        def build():
            import dask.array as da

            a = da.arange(n * n, chunks=c * n, dtype=np.float64).reshape(n, n).rechunk((c, c))
            return a + da.sum(da.tanh(da.diag(a)))

        return dask_runner(name, ctx, build, "a = da.arange(n*n).reshape(n, n), rechunked, inside the graph")
    a = np.arange(n * n, dtype=np.float64).reshape(n, n)
    tiny = (a[:2, :2].copy(),)
    if name == "numpy":
        return Runner(run=lambda: a + np.sum(np.tanh(np.diag(a))), note=IN_MEMORY)
    if name == "numexpr":
        ne.set_num_threads(NTHREADS)

        def expr():
            s = np.sum(np.tanh(np.diag(a)))
            return ne.evaluate("a + s", local_dict={"a": a, "s": s})

        return Runner(
            run=expr, note=f"NumPy for the trace, ne.evaluate('a + s') ({NTHREADS} threads); {IN_MEMORY}"
        )
    if name == "numba-serial":
        return jit_runner(
            numba.njit,
            a_plus_tr_tanh_a,
            tiny,
            (a,),
            f"{numba_note('serial')}, the seed's function; {IN_MEMORY}",
        )
    if name == "numba-parallel":
        note = f"{numba_note('@jit(nopython=True, parallel=True)')}, the seed's function; {IN_MEMORY}"
        return jit_runner(numba.njit(parallel=True), a_plus_tr_tanh_a, tiny, (a,), note)
    raise KeyError(name)
