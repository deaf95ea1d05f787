"""GPU peers: CuPy and Numba-CUDA on the first CUDA device (bench/run --gpu).

Every GPU runner starts from inputs already on the device where the CPU runners start
from inputs in memory, and copies its result back to the host inside the timed run, as
accel's GPU rows do (a computed array is returned to the caller as a host array).
"""

from __future__ import annotations

from typing import Any, Callable

from .common import Runner

RUNNERS = ("cupy", "numba-cuda")
TO_HOST = "result copied to the host inside the timing"


def numpy_aliases() -> None:
    """NumPy 2.5 removed `np.row_stack` (an alias of `np.vstack`), which numba-cuda 0.30
    still looks up when it compiles a kernel: the alias is put back, nothing else."""
    import numpy as np

    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack


def unavailable(name: str) -> str | None:
    """Why runner `name` cannot run here, or None when it can."""
    try:
        numpy_aliases()
        if name == "cupy":
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                return "CuPy sees no CUDA device"
            return None
        if name == "numba-cuda":
            from numba import cuda

            if not cuda.is_available():
                return "Numba sees no CUDA device"
            return None
    except Exception as exc:  # an import or driver error: the runner is skipped, saying why
        return f"{name} unavailable: {type(exc).__name__}: {exc}"
    return f"unknown GPU runner {name}"


def any_available() -> bool:
    return any(unavailable(r) is None for r in RUNNERS)


def cupy():
    import cupy

    return cupy


def device_name() -> str:
    try:
        return cupy().cuda.runtime.getDeviceProperties(0)["name"].decode()
    except Exception:  # the note is informative only
        return "CUDA device 0"


def skipped(name: str) -> Runner | None:
    """A skipped runner when `name` cannot run here."""
    why = unavailable(name)
    return None if why is None else Runner(run=lambda: None, note=why, skip=why)


def cuda_runner(compile_: Callable[[], Any], run: Callable[[Any], Any], note: str) -> Runner:
    """A Numba-CUDA runner: setup compiles (a first launch on tiny inputs), so setup_s is
    the JIT time; `run(compiled)` is one timed computation."""
    compiled = {}

    def setup():
        numpy_aliases()
        compiled["fn"] = compile_()

    return Runner(run=lambda: run(compiled["fn"]), setup=setup, note=f"{note}; {device_name()}")


def grid_1d(n: int, threads: int = 256) -> tuple[int, int]:
    """Blocks and threads covering n elements."""
    return (n + threads - 1) // threads, threads


def grid_2d(h: int, w: int, tile: int = 16) -> tuple[tuple[int, int], tuple[int, int]]:
    """Blocks and threads covering an h × w row-major array, x along the rows (columns
    vary fastest between neighbouring threads, so their reads coalesce): a kernel takes
    `col, row = cuda.grid(2)`."""
    return ((w + tile - 1) // tile, (h + tile - 1) // tile), (tile, tile)
