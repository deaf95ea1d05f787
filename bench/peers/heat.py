"""heat (seed 000): 2-D explicit heat flow, gamma = 0.25, top row held at 100, the rest at 0.

Every runner makes Nt updates, as accel does, and returns the final field (double
buffering: only the latest field is kept, where the seed keeps all Nt frames).
"""

import numba
from numba import cuda
import numpy as np
from scipy import ndimage

from . import gpu
from .common import Runner, check_abs, dask_runner, jit_runner, numba_note

NAME = "heat"
RUNNERS = ("numpy", "numba-serial", "numba-parallel", "scipy", "dask-threaded", "dask-distributed")
GPU_RUNNERS = gpu.RUNNERS
SIZES = {"small": [(50, 1000)], "bench": [(200, 4000), (2000, 200)]}
GAMMA = 0.25
T_TOP = 100.0
# Steps the Dask runners build and run per (Nx, runner); their time is scaled to all Nt updates.
DASK_STEPS = {
    50: {"dask-threaded": 100, "dask-distributed": 50},
    200: {"dask-threaded": 100, "dask-distributed": 50},
    2000: {"dask-threaded": 50, "dask-distributed": 25},
}
KERNEL = GAMMA * np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def cases(size):
    return [
        dict(case=f"Nx={nx}, Nt={nt}, chunks {nx // 2}²", nx=nx, nt=nt, steps=nt, elements=nx * nx * nt)
        for nx, nt in SIZES[size]
    ]


def initial(nx):
    T = np.zeros((nx, nx))
    T[nx - 1, :] = T_TOP
    return T


def numpy_heat(T0, steps):
    """Slicing updates; on a CuPy `T0` they run on the GPU."""
    T, U = T0.copy(), T0.copy()
    for _ in range(steps):
        U[1:-1, 1:-1] = GAMMA * (T[2:, 1:-1] + T[:-2, 1:-1] + T[1:-1, 2:] + T[1:-1, :-2])
        T, U = U, T
    return T


def reference(p, runner):
    return numpy_heat(initial(p["nx"]), runner.steps or p["steps"])


def check(out, ref, p):
    return check_abs(out, ref, 1e-9, dtype=np.float64)


def heat_loop(T0, steps, gamma):
    T, U = T0.copy(), T0.copy()
    nx = T.shape[0]
    for _ in range(steps):
        for i in range(1, nx - 1):
            for j in range(1, nx - 1):
                U[i, j] = gamma * (T[i + 1, j] + T[i - 1, j] + T[i, j + 1] + T[i, j - 1])
        T, U = U, T
    return T


def heat_prange(T0, steps, gamma):
    T, U = T0.copy(), T0.copy()
    nx = T.shape[0]
    for _ in range(steps):
        for i in numba.prange(1, nx - 1):
            for j in range(1, nx - 1):
                U[i, j] = gamma * (T[i + 1, j] + T[i - 1, j] + T[i, j + 1] + T[i, j - 1])
        T, U = U, T
    return T


def scipy_heat(T0, steps):
    T, U = T0.copy(), T0.copy()
    for _ in range(steps):
        ndimage.convolve(T, KERNEL, output=U, mode="constant")
        U[0, :], U[-1, :], U[:, 0], U[:, -1] = T0[0, :], T0[-1, :], T0[:, 0], T0[:, -1]
        T, U = U, T
    return T


def heat_block(b):
    """One update of a block with its one-cell halo (global edges arrive without halo)."""
    out = b.copy()
    out[1:-1, 1:-1] = GAMMA * (b[2:, 1:-1] + b[:-2, 1:-1] + b[1:-1, 2:] + b[1:-1, :-2])
    return out


def dask_heat(T0, steps, chunk):
    import dask.array as da

    T = da.from_array(T0, chunks=(chunk, chunk))
    for _ in range(steps):
        T = T.map_overlap(heat_block, depth=1, boundary="none", dtype=T0.dtype)
    return T


def cuda_step_kernel():
    """One update, one thread per cell; boundary cells are never written."""
    @cuda.jit
    def step(T, U, gamma):
        j, i = cuda.grid(2)
        n = T.shape[0]
        if 1 <= i and i < n - 1 and 1 <= j and j < n - 1:
            U[i, j] = gamma * (T[i + 1, j] + T[i - 1, j] + T[i, j + 1] + T[i, j - 1])

    return step


def make_gpu(name, T0, steps, updates):
    on_device = "T0 copied to the device before timing"
    if name == "cupy":
        cp = gpu.cupy()
        T0d = cp.asarray(T0)
        note = f"the NumPy slicing update on CuPy arrays; {updates}; {on_device}; {gpu.TO_HOST}"
        return Runner(run=lambda: cp.asnumpy(numpy_heat(T0d, steps)), note=f"{note}; {gpu.device_name()}")
    T0d = cuda.to_device(T0)
    blocks, threads = gpu.grid_2d(*T0.shape)

    def compile_():
        kernel = cuda_step_kernel()
        # Contiguous arguments of the timed call's types: the compile happens here.
        kernel[(1, 1), (4, 4)](cuda.to_device(T0[:4, :4].copy()), cuda.device_array((4, 4)), GAMMA)
        cuda.synchronize()
        return kernel

    def run(kernel):
        T, U = cuda.device_array_like(T0d), cuda.device_array_like(T0d)
        T.copy_to_device(T0d)
        U.copy_to_device(T0d)
        for _ in range(steps):
            kernel[blocks, threads](T, U, GAMMA)
            T, U = U, T
        return T.copy_to_host()

    note = f"@cuda.jit, one launch per step, one thread per cell; {updates}; {on_device}; {gpu.TO_HOST}"
    return gpu.cuda_runner(compile_, run, note)


def make(name, p, ctx):
    nx, steps = p["nx"], p["steps"]
    T0 = initial(nx)
    if name in GPU_RUNNERS:
        updates = f"{steps} updates, double-buffered, final field returned"
        return gpu.skipped(name) or make_gpu(name, T0, steps, updates)
    if name.startswith("dask"):
        run_steps = min(steps, DASK_STEPS[nx][name])
        chunk = nx // 2
        what = (
            f"from_array(T0, chunks {chunk}×{chunk}), one map_overlap(depth=1, boundary='none') per step; "
            f"{run_steps} steps run and timed, times scaled ×{steps / run_steps:.1f} to the {steps} updates "
            f"(tasks counted for the {run_steps} steps)"
        )
        runner = dask_runner(
            name, ctx, lambda: dask_heat(T0, run_steps, chunk), what, key=f"steps={run_steps}"
        )
        if run_steps < steps:
            runner.steps, runner.scale = run_steps, steps / run_steps
        return runner
    updates = f"{steps} updates, double-buffered, final field returned"
    tiny = (initial(4), 1, GAMMA)
    if name == "numpy":
        return Runner(run=lambda: numpy_heat(T0, steps), note=f"slicing update per step; {updates}")
    if name == "scipy":
        note = f"scipy.ndimage.convolve with the 4-neighbour kernel per step, boundary re-fixed; {updates}"
        return Runner(run=lambda: scipy_heat(T0, steps), note=note)
    if name == "numba-serial":
        return jit_runner(
            numba.njit, heat_loop, tiny, (T0, steps, GAMMA), f"{numba_note('serial')} loops; {updates}"
        )
    if name == "numba-parallel":
        note = f"{numba_note('@njit(parallel=True) prange over rows')}; {updates}"
        return jit_runner(numba.njit(parallel=True), heat_prange, tiny, (T0, steps, GAMMA), note)
    raise KeyError(name)
