"""fractal (seed 004): the masked Mandelbrot iteration, maxiterations = 20, int32 image."""

import math

import numba
from numba import cuda
import numexpr as ne
import numpy as np

from . import gpu
from .common import NTHREADS, Runner, check_equal, dask_runner, jit_runner, numba_note

NAME = "fractal"
RUNNERS = (
    "numpy",
    "numexpr",
    "numba-serial",
    "numba-parallel",
    "dask-threaded",
    "dask-distributed",
    "dask-numba",
)
GPU_RUNNERS = gpu.RUNNERS
SIZES = {"small": (160, 240), "bench": (1600, 2400)}
MAXIT = 20
IN_MEMORY = "c = x + y*1j from ogrid built before timing"


def cases(size):
    h, w = SIZES[size]
    chunks = (math.ceil(h / 3), math.ceil(w / 4))  # (height/3, width/4), rounded up: a 3 × 4 grid
    case = f"{h}×{w}, chunks {chunks[0]}×{chunks[1]}"
    return [dict(case=case, height=h, width=w, chunks=chunks, elements=h * w, bytes=None)]


def grid(p):
    h, w = p["height"], p["width"]
    y, x = np.ogrid[-1 : 0 : h * 1j, -1.5 : 0 : w * 1j]
    return x + y * 1j


def reference(p, runner):
    """A plain Python loop over pixels, with the scalar complex arithmetic of the loop body."""
    c = grid(p)
    out = np.full(c.shape, MAXIT, dtype=np.int32)
    for r in range(c.shape[0]):
        for k in range(c.shape[1]):
            cc = complex(c[r, k])
            z = cc
            for i in range(MAXIT):
                z = z * z + cc
                if abs(z) > 2:
                    out[r, k] = i
                    break
    return out


def check(out, ref, p):
    return check_equal(out, ref)


def numpy_fractal(c, xp=np):
    """The seed's NumPy version; `xp=cupy` runs it on the GPU."""
    fractal = xp.full(c.shape, MAXIT, dtype=xp.int32)
    z = c
    for i in range(MAXIT):
        z = z**2 + c
        diverged = xp.absolute(z) > 2
        diverging_now = diverged & (fractal == MAXIT)
        fractal[diverging_now] = i
        z[diverged] = 2
    return fractal


def numexpr_fractal(c):
    fractal = np.full(c.shape, MAXIT, dtype=np.int32)
    z = c
    for i in range(MAXIT):
        env = {"z": z, "c": c, "fractal": fractal, "i": np.int32(i), "m": np.int32(MAXIT)}
        z = ne.evaluate("z**2 + c", local_dict=env)
        env["z"] = z
        diverged = ne.evaluate("real(abs(z)) > 2", local_dict=env)
        env["diverged"] = diverged
        fractal = ne.evaluate("where(diverged & (fractal == m), i, fractal)", local_dict=env)
        z = ne.evaluate("where(diverged, 2, z)", local_dict=env)
    return fractal


def dask_fractal(height, width, chunks):
    """The seed's run_dask, with chunks (height/3, width/4) rounded up."""
    import dask.array

    chunked = lambda a: dask.array.from_array(a, chunks=chunks)  # noqa: E731
    y, x = np.ogrid[-1 : 0 : height * 1j, -1.5 : 0 : width * 1j]
    c = chunked(x + y * 1j)
    fractal = chunked(np.full(c.shape, MAXIT, dtype=np.int32))
    z = c
    for i in range(MAXIT):
        z = z**2 + c
        diverged = np.absolute(z) > 2
        diverging_now = diverged & (fractal == MAXIT)
        fractal[diverging_now] = i
        z[diverged] = 2
    return fractal


def pixel(c, maxiterations):
    z = c
    for i in range(maxiterations):
        z = z**2 + c
        if abs(z) > 2:
            return i
    return maxiterations


def fractal_loop(c, maxiterations):
    out = np.empty(c.shape, dtype=np.int32)
    for r in range(c.shape[0]):
        for k in range(c.shape[1]):
            z = c[r, k]
            out[r, k] = maxiterations
            for i in range(maxiterations):
                z = z**2 + c[r, k]
                if abs(z) > 2:
                    out[r, k] = i
                    break
    return out


def cuda_fractal_kernel():
    """The seed's pixel loop as a CUDA kernel, one thread per pixel."""
    @cuda.jit
    def kernel(c, maxiterations, out):
        k, r = cuda.grid(2)
        if r < out.shape[0] and k < out.shape[1]:
            cc = c[r, k]
            z = cc
            out[r, k] = maxiterations
            for i in range(maxiterations):
                z = z * z + cc
                if abs(z) > 2:
                    out[r, k] = i
                    break

    return kernel


def make_gpu(name, p):
    c = grid(p)
    on_device = "c = x + y*1j from ogrid, copied to the device before timing"
    if name == "cupy":
        cp = gpu.cupy()
        cd = cp.asarray(c)
        note = f"the seed's NumPy code on CuPy arrays; {on_device}; {gpu.TO_HOST}; {gpu.device_name()}"
        return Runner(run=lambda: cp.asnumpy(numpy_fractal(cd, cp)), note=note)
    cd = cuda.to_device(c)
    blocks, threads = gpu.grid_2d(*c.shape)

    def compile_():
        kernel = cuda_fractal_kernel()
        # Contiguous arguments of the timed call's types: the compile happens here.
        kernel[(1, 1), (2, 2)](cuda.to_device(c[:2, :2].copy()), MAXIT, cuda.device_array((2, 2), dtype=np.int32))
        cuda.synchronize()
        return kernel

    def run(kernel):
        out = cuda.device_array(c.shape, dtype=np.int32)
        kernel[blocks, threads](cd, MAXIT, out)
        return out.copy_to_host()

    note = f"@cuda.jit, one thread per pixel (16×16 blocks); {on_device}; {gpu.TO_HOST}"
    return gpu.cuda_runner(compile_, run, note)


def make(name, p, ctx):
    if name in GPU_RUNNERS:
        return gpu.skipped(name) or make_gpu(name, p)
    if name == "dask-numba":
        # The seed's @vectorize ufunc applied to every chunk by Dask's threads (one Numba
        # thread each): the user-kernel way of writing this with Dask.
        import dask.array

        # An explicit signature compiles here, before timing.
        ufunc = numba.vectorize([numba.int32(numba.complex128, numba.int32)])(pixel)
        c = dask.array.from_array(grid(p), chunks=p["chunks"]).persist(scheduler="threads")
        build = lambda: c.map_blocks(ufunc, np.int32(MAXIT), dtype=np.int32)  # noqa: E731
        runner = dask_runner(
            "dask-threaded",
            ctx,
            build,
            f"map_blocks of the seed's @vectorize ufunc (compiled before timing); {IN_MEMORY}",
        )
        return runner
    if name.startswith("dask"):
        build = lambda: dask_fractal(p["height"], p["width"], p["chunks"])  # noqa: E731
        what = (
            "the seed's run_dask: NumPy inputs embedded with from_array, "
            "masked assignments (many small tasks per chunk)"
        )
        return dask_runner(name, ctx, build, what)
    c = grid(p)
    tiny = (c[:2, :2].copy(), np.int32(MAXIT))
    if name == "numpy":
        return Runner(run=lambda: numpy_fractal(c), note=f"the seed's vectorised loop; {IN_MEMORY}")
    if name == "numexpr":
        ne.set_num_threads(NTHREADS)
        note = f"{NTHREADS} threads; the seed loop, one ne.evaluate per line (where() for masks); {IN_MEMORY}"
        return Runner(run=lambda: numexpr_fractal(c), note=note)
    if name == "numba-serial":
        note = f"{numba_note('serial')} loop over pixels, early exit; {IN_MEMORY}"
        return jit_runner(numba.njit, fractal_loop, tiny, (c, np.int32(MAXIT)), note)
    if name == "numba-parallel":
        ufunc = numba.vectorize([numba.int32(numba.complex128, numba.int32)], target="parallel")
        note = f"{numba_note('the seed @vectorize ufunc, target=parallel')}; {IN_MEMORY}"
        return jit_runner(ufunc, pixel, tiny, (c, np.int32(MAXIT)), note)
    raise KeyError(name)
