"""pi (seed 002): Monte-Carlo π, 4 × the fraction of uniform (x, y) inside the unit circle."""

import math

import numba
from numba import cuda
from numba.cuda.random import create_xoroshiro128p_states, xoroshiro128p_uniform_float64
import numexpr as ne
import numpy as np

from . import gpu
from .common import NTHREADS, SEED, CheckFailed, Runner, dask_runner, jit_runner, numba_note, sci

NAME = "pi"
RUNNERS = ("numpy", "numexpr", "numba-serial", "numba-parallel", "dask-threaded", "dask-distributed")
GPU_RUNNERS = gpu.RUNNERS
# Numba-CUDA: threads, each drawing n / CUDA_THREADS points from its own xoroshiro128+ stream.
CUDA_THREADS = 100_000
SIZES = {"small": (1_000_000, 100_000), "bench": (1_000_000_000, 10_000_000)}
BLOCK = 10_000_000  # samples per block for the in-memory runners: 1e9 points do not fit at once
TIMED = "drawing the samples is the work, so it is timed"


def cases(size):
    n, chunk = SIZES[size]
    return [dict(case=f"{sci(n)} samples, chunks {sci(chunk)}", n=n, chunk=chunk, elements=n, bytes=None)]


def reference(p, runner):
    return math.pi


def check(out, ref, p):
    value = float(out)
    sigma = 4 * math.sqrt((math.pi / 4) * (1 - math.pi / 4) / p["n"])
    dev = abs(value - ref) / sigma
    if not dev < 4:
        raise CheckFailed(f"pi = {value} is {dev:.1f} σ from π")
    return f"{dev:.1f}σ from π (< 4σ)"


def blocks(n):
    for start in range(0, n, BLOCK):
        yield min(BLOCK, n - start)


def numpy_pi(n, xp=np):
    """Blocks of NumPy's generator; `xp=cupy` draws and counts on the GPU."""
    rng = xp.random.default_rng(SEED)
    inside = 0
    for m in blocks(n):
        x = rng.random(m)
        y = rng.random(m)
        inside += int(xp.count_nonzero((x**2 + y**2) < 1))
    return 4 * inside / n


def numexpr_pi(n):
    rng = np.random.default_rng(SEED)
    inside = 0
    for m in blocks(n):
        env = {"x": rng.random(m), "y": rng.random(m)}
        inside += int(ne.evaluate("sum(where(x**2 + y**2 < 1, 1, 0))", local_dict=env))
    return 4 * inside / n


def pi_loop(n):
    np.random.seed(42)
    inside = 0
    for _ in range(n):
        x = np.random.random()
        y = np.random.random()
        if x**2 + y**2 < 1:
            inside += 1
    return 4 * inside / n


def pi_prange(n, nblocks):
    counts = np.zeros(nblocks, dtype=np.int64)
    per_block = n // nblocks
    for b in numba.prange(nblocks):
        inside = 0
        for _ in range(per_block):
            x = np.random.random()
            y = np.random.random()
            if x**2 + y**2 < 1:
                inside += 1
        counts[b] = inside
    return 4 * counts.sum() / (per_block * nblocks)


def cuda_pi_kernel():
    """Each thread counts its own draws inside the circle (the seed's cuda.jit π)."""
    @cuda.jit
    def kernel(states, per_thread, counts):
        t = cuda.grid(1)
        if t < counts.shape[0]:
            inside = 0
            for _ in range(per_thread):
                x = xoroshiro128p_uniform_float64(states, t)
                y = xoroshiro128p_uniform_float64(states, t)
                if x * x + y * y < 1.0:
                    inside += 1
            counts[t] = inside

    return kernel


def make_gpu(name, n):
    if name == "cupy":
        note = f"blocks of {sci(min(BLOCK, n))} samples from cupy.random.default_rng; {TIMED}"
        return Runner(run=lambda: numpy_pi(n, gpu.cupy()), note=f"{note}; {gpu.device_name()}")

    threads = min(CUDA_THREADS, n)
    per_thread = n // threads
    blocks_, block = gpu.grid_1d(threads)
    made = {}

    def compile_():
        made["states"] = create_xoroshiro128p_states(threads, seed=SEED)
        made["counts"] = cuda.device_array(threads, dtype=np.int64)
        kernel = cuda_pi_kernel()
        kernel[1, 1](made["states"], 1, made["counts"][:1])
        cuda.synchronize()
        return kernel

    def run(kernel):
        kernel[blocks_, block](made["states"], per_thread, made["counts"])
        return 4 * int(made["counts"].copy_to_host().sum()) / (per_thread * threads)

    note = (
        f"@cuda.jit, {threads} threads × {per_thread} draws from xoroshiro128+ streams "
        f"(states made in setup); {TIMED}"
    )
    return gpu.cuda_runner(compile_, run, note)


def make(name, p, ctx):
    n, chunk = p["n"], p["chunk"]
    if name in GPU_RUNNERS:
        return gpu.skipped(name) or make_gpu(name, n)
    if name.startswith("dask"):

        def build():
            import dask.array as da

            rng = da.random.default_rng(SEED)
            x = rng.random(n, chunks=chunk)
            y = rng.random(n, chunks=chunk)
            return 4 * ((x**2 + y**2) < 1).sum() / n

        return dask_runner(
            name, ctx, build, f"x, y = da.random.default_rng().random inside the graph; {TIMED}"
        )
    blocked = f"blocks of {sci(min(BLOCK, n))} samples from np.random.default_rng in a loop (to fit memory)"
    blocked += f"; {TIMED}"
    if name == "numpy":
        return Runner(run=lambda: numpy_pi(n), note=blocked)
    if name == "numexpr":
        ne.set_num_threads(NTHREADS)
        count = "ne.evaluate('sum(where(x**2 + y**2 < 1, 1, 0))')"
        note = f"NumPy draws, {count} counts ({NTHREADS} threads); {blocked}"
        return Runner(run=lambda: numexpr_pi(n), note=note)
    if name == "numba-serial":
        note = f"{numba_note('serial')} loop with np.random.random() per draw (seed style); {TIMED}"
        return jit_runner(numba.njit, pi_loop, (10,), (n,), note)
    if name == "numba-parallel":
        nblocks = n // chunk
        note = f"{numba_note('@njit(parallel=True) prange')} over {nblocks} blocks"
        note += f", np.random.random() per draw; {TIMED}"
        return jit_runner(numba.njit(parallel=True), pi_prange, (10, 2), (n, nblocks), note)
    raise KeyError(name)
