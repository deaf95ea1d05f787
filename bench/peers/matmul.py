"""matmul: C = A @ B, A and B n×n float64 from SplitMix64, in n/4 × n/4 chunks.

Element k (row-major) of A is draw k of SplitMix64 seeded with 42, of B with seed 43, as a
float64 in [0, 1): the top 53 bits times 2⁻⁵³. accel's suite (bench/src/matmul.rs) builds
the same bits, so every runner multiplies identical inputs. The inputs are built and held in
memory (Dask: persisted, on the workers for the cluster) before timing: the timings are the
product and the result brought into this process.

The reference is NumPy's product, computed once per case and checked itself against values
computed without BLAS: sampled entries (every output chunk's corners and a few inside) as
exactly rounded sums of the products, and every output chunk's sum from the column sums of A
and the row sums of B. Every runner's result must match it elementwise to 1e-12.
"""

from __future__ import annotations

import ctypes
import functools
import math
import re

import numpy as np

from .common import NTHREADS, SEED, CheckFailed, Runner, check_rel, dask_runner

NAME = "matmul"
RUNNERS = ("numpy", "dask-threaded", "dask-distributed")
SIZES = {"small": (1000, 250), "bench": (4000, 1000)}
ENTRY_RTOL = 1e-12  # an entry against the reference (the summation orders differ)
SUM_RTOL = 1e-10  # a chunk's sum against the one from the column and row sums
IN_MEMORY = "A and B built before timing"

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def cases(size):
    n, c = SIZES[size]
    return [
        dict(
            case=f"{n}×{n} @ {n}×{n} f64, chunks {c}×{c}",
            n=n,
            chunk=c,
            elements=n * n,
            bytes=None,
            flops=2 * n**3,
        )
    ]


def splitmix64_uniform(n: int, seed: int) -> np.ndarray:
    """Draws 1..n·n of SplitMix64(seed) as float64 in [0, 1), an n×n row-major matrix."""
    z = (np.arange(1, n * n + 1, dtype=np.uint64) * GOLDEN) + np.uint64(seed)
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    z ^= z >> np.uint64(31)
    return ((z >> np.uint64(11)).astype(np.float64) * 2.0**-53).reshape(n, n)


@functools.lru_cache(maxsize=1)
def inputs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A and B of one size (read-only, shared by the runners of a case)."""
    a, b = splitmix64_uniform(n, SEED), splitmix64_uniform(n, SEED + 1)
    a.flags.writeable = b.flags.writeable = False
    return a, b


# ---------------------------------------------------------------- OpenBLAS's threads


@functools.lru_cache(maxsize=1)
def openblas():
    """The OpenBLAS NumPy loaded, as (get_num_threads, set_num_threads, version), or None."""
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure the library is loaded
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                try:
                    get = getattr(lib, f"{prefix}_get_num_threads{suffix}")
                    set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}")
                    config = getattr(lib, f"{prefix}_get_config{suffix}")
                except AttributeError:
                    continue
                get.restype, config.restype = ctypes.c_int, ctypes.c_char_p
                set_.argtypes, set_.restype = [ctypes.c_int], None
                found = re.search(r"OpenBLAS ([\d.]+)", (config() or b"").decode(errors="replace"))
                return get, set_, found.group(1) if found else "?"
    return None


class blas_threads:
    """Runs a block with OpenBLAS at `n` threads, then puts the previous count back (bench/run
    starts every process at OPENBLAS_NUM_THREADS=1, right for the Dask runners)."""

    def __init__(self, n: int):
        self.n, self.lib, self.before = n, openblas(), None

    def __enter__(self):
        if self.lib:
            self.before = self.lib[0]()
            self.lib[1](self.n)
        return self

    def __exit__(self, *exc):
        if self.lib and self.before is not None:
            self.lib[1](self.before)


def threads_now() -> int | None:
    """OpenBLAS's thread count in this process (a Dask worker's, through client.run)."""
    lib = openblas()
    return lib[0]() if lib else None


def blas_note(threads: list) -> str:
    """'OpenBLAS 0.3.29 (NumPy's wheel) at 2 threads', the counts as read back from OpenBLAS."""
    lib = openblas()
    if lib is None or None in threads:
        return "the NumPy wheel's BLAS, thread count unknown (OpenBLAS not found)"
    counts = "/".join(str(t) for t in threads)
    return f"OpenBLAS {lib[2]} (NumPy's wheel) at {counts} thread{'s' if threads != [1] else ''}"


# ---------------------------------------------------------------- reference and checks


def samples(n: int, c: int) -> list[tuple[int, int]]:
    """Every output chunk's first and last element, and a few fixed entries inside."""
    edges = [(lo, min(lo + c, n) - 1) for lo in range(0, n, c)]
    points = {(i0, j0) for i0, _ in edges for j0, _ in edges}
    points |= {(i1, j1) for _, i1 in edges for _, j1 in edges}
    points |= {((7919 * k + 13) % n, (104729 * k + 17) % n) for k in range(8)}
    return sorted(points)


def verify(c_ref: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int) -> str:
    """Checks NumPy's product against sums computed without BLAS (see the module's text)."""
    n = a.shape[0]
    worst = 0.0
    for i, j in samples(n, chunk):
        want = math.fsum(a[i, :] * b[:, j])
        worst = max(worst, abs(c_ref[i, j] - want) / abs(want))
    if not worst < ENTRY_RTOL:
        raise CheckFailed(f"NumPy's product: sampled entries off by rel {worst:.2e} ≥ {ENTRY_RTOL:g}")
    worst_sum = 0.0
    for lo in range(0, n, chunk):
        col_sums = a[lo : lo + chunk, :].sum(axis=0)  # Σ_i A[i, k] over the chunk's rows
        for lo_j in range(0, n, chunk):
            row_sums = b[:, lo_j : lo_j + chunk].sum(axis=1)  # Σ_j B[k, j] over its columns
            want = math.fsum(col_sums * row_sums)
            got = float(c_ref[lo : lo + chunk, lo_j : lo_j + chunk].sum())
            worst_sum = max(worst_sum, abs(got - want) / abs(want))
    if not worst_sum < SUM_RTOL:
        raise CheckFailed(f"NumPy's product: chunk sums off by rel {worst_sum:.2e} ≥ {SUM_RTOL:g}")
    return f"{len(samples(n, chunk))} entries, {(n // chunk) ** 2} chunk sums"


def reference(p, runner):
    """NumPy's product (all cores), verified once against sums computed without BLAS."""
    a, b = inputs(p["n"])
    with blas_threads(NTHREADS):
        c_ref = a @ b
    return c_ref, verify(c_ref, a, b, p["chunk"])


def check(out, ref, p):
    c_ref, verified = ref
    return f"{check_rel(out, c_ref, ENTRY_RTOL)} vs NumPy's product (itself checked: {verified})"


def make(name, p, ctx):
    n, c = p["n"], p["chunk"]
    a, b = inputs(n)
    extra = dict(flops=p["flops"])
    if name == "numpy":

        def run():
            with blas_threads(NTHREADS):
                return a @ b

        with blas_threads(NTHREADS):
            threads = [threads_now()]
        return Runner(run=run, note=f"a @ b, {blas_note(threads)}; {IN_MEMORY}", extra=extra)
    if name.startswith("dask"):
        import dask.array as da

        if name == "dask-threaded":
            xa = da.from_array(a, chunks=(c, c)).persist(scheduler="threads")
            xb = da.from_array(b, chunks=(c, c)).persist(scheduler="threads")
            held = "persisted in this process"
            # One BLAS thread per Dask thread (bench/run's default), whoever started this process.
            with blas_threads(1):
                threads = [threads_now()]
        else:
            from distributed import wait

            client = ctx.client()
            xa, xb = client.persist([da.from_array(a, chunks=(c, c)), da.from_array(b, chunks=(c, c))])
            wait([xa, xb])
            held = "persisted on the 2 workers"
            threads = list(client.run(threads_now).values())
        runner = dask_runner(
            name,
            ctx,
            lambda: xa @ xb,
            f"xa @ xb, da.from_array(A, B) {held} before timing; tasks call {blas_note(threads)}",
        )
        if name == "dask-threaded":
            compute = runner.run

            def run():
                with blas_threads(1):
                    return compute()

            runner.run = run
        runner.extra = extra
        return runner
    raise KeyError(name)
