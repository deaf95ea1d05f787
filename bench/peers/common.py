"""Shared pieces of the peer suite: runners, timing, result checks, the Dask cluster."""

from __future__ import annotations

import gc
import logging
import os
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

SEED = 42
NTHREADS = os.cpu_count() or 1
# A first run this long is timed instead of discarded as a warm-up: the JIT compile is in
# setup_s, and nothing else left to warm matters at that length. Keeps 1e9-sample pi bearable.
LONG_RUN_S = 5.0


class CheckFailed(Exception):
    """A runner returned a wrong answer."""


@dataclass
class Runner:
    """One way of computing a workload case, ready to be timed."""

    run: Callable[[], Any]  # one complete computation, returns the result to check
    note: str  # what the timing includes
    setup: Callable[[], Any] | None = None  # first call (JIT compile), timed as setup_s
    graph: Callable[[], Any] | None = None  # builds the dask collection, for task counts
    key: str = "default"  # runners with the same key share one reference (same inputs)
    steps: int | None = None  # heat: steps actually run when fewer than the case's
    scale: float = 1.0  # heat: factor extrapolating a measured time to the whole case
    skip: str | None = None  # reason this runner does not apply
    extra: dict | None = None  # fields added to the record after the runs (zarr: bytes on disk)


def sci(x: float) -> str:
    """5e7 -> '5e7', 2.5e6 -> '2.5e6', 1000 -> '1e3'."""
    mantissa, exponent = f"{x:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


class Context:
    """What runners share: size, repeats, and the one Dask LocalCluster of the process."""

    def __init__(self, size: str, repeats: int):
        self.size = size
        self.repeats = repeats
        self.startup_s: float | None = None
        self._client = None
        self._cluster = None
        self._startup_unclaimed = False
        self.extra_records: list[dict] = []

    def client(self):
        """The distributed Client, starting LocalCluster(2 processes × 1 thread) on first use."""
        if self._client is None:
            from distributed import Client, LocalCluster

            t0 = time.perf_counter()
            self._cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self._client = Client(self._cluster)
            self._client.wait_for_workers(2)
            self.startup_s = time.perf_counter() - t0
            self._startup_unclaimed = True
            self.extra_records.append(startup_record(self.size, self.startup_s))
        return self._client

    def take_startup(self) -> float | None:
        """The cluster start-up time, handed out once (to the first dask-distributed record)."""
        if self._startup_unclaimed:
            self._startup_unclaimed = False
            return self.startup_s
        return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._cluster.close()
            self._client = self._cluster = None


def startup_record(size: str, seconds: float) -> dict:
    rec = base_record("cluster-startup", "2 workers × 1 thread", size, "dask-distributed", 0, None)
    rec.update(
        status="ok",
        median_s=seconds,
        times_s=[seconds],
        setup_s=seconds,
        check="2 workers connected",
        note="LocalCluster(n_workers=2, threads_per_worker=1, processes=True) + Client, "
        "until both workers are connected",
    )
    return rec


def base_record(workload, case, size, runner, elements, nbytes) -> dict:
    return {
        "workload": workload,
        "case": case,
        "size": size,
        "runner": runner,
        "status": "failed",
        "median_s": None,
        "times_s": [],
        "setup_s": None,
        "tasks": None,
        "tasks_before": None,
        "elements": int(elements),
        "bytes": None if nbytes is None else int(nbytes),
        "check": "",
        "error": None,
        "note": None,
    }


def task_counts(x) -> tuple[int, int]:
    """(tasks in the graph as built, tasks after dask.optimize)."""
    import dask

    before = len(dict(x.__dask_graph__()))
    (opt,) = dask.optimize(x)
    return before, len(dict(opt.__dask_graph__()))


DASK_NOTE = {
    "dask-threaded": "graph construction + compute(scheduler='threads'), result gathered as NumPy",
    "dask-distributed": "graph construction + compute on LocalCluster(2 procs × 1 thread), "
    "result gathered to the client",
}


def dask_runner(name: str, ctx: Context, build: Callable[[], Any], what: str, key="default") -> Runner:
    """A runner computing `build()` with the threaded scheduler or the distributed client."""
    scheduler = "threads" if name == "dask-threaded" else ctx.client()
    note = f"{DASK_NOTE[name]}; {what}"
    return Runner(run=lambda: build().compute(scheduler=scheduler), note=note, graph=build, key=key)


def jit_runner(decorate, func, tiny: tuple, args: tuple, note: str) -> Runner:
    """A Numba runner: setup applies the decorator and makes a first call on tiny inputs,
    so setup_s is the JIT compile time (a fresh dispatcher for every case)."""
    compiled = {}

    def setup():
        fn = decorate(func)
        fn(*tiny)
        compiled["fn"] = fn

    return Runner(run=lambda: compiled["fn"](*args), setup=setup, note=note)


def numba_note(kind: str) -> str:
    import numba

    if kind == "serial":
        return "@njit, 1 thread"
    return f"{kind}, {numba.get_num_threads()} threads"


def timed_call(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- result checks


def _same_shape(out, ref, dtype=None) -> np.ndarray:
    out = np.asarray(out)
    if out.shape != ref.shape:
        raise CheckFailed(f"shape {out.shape}, expected {ref.shape}")
    if dtype is not None and out.dtype != dtype:
        raise CheckFailed(f"dtype {out.dtype}, expected {np.dtype(dtype)}")
    return out


CHECK_BLOCK = 1 << 20  # elements per block: the checks' temporaries stay small and in cache


def _worst(err, *arrays, combine=np.max) -> float:
    """max (or `combine`) of err(*blocks) over all elements, block by block; NaN wins."""
    flat = [np.ravel(a) for a in arrays]
    parts = [err(*(a[i : i + CHECK_BLOCK] for a in flat)) for i in range(0, flat[0].size, CHECK_BLOCK)]
    return float(combine([combine(part) for part in parts])) if parts else 0.0


def _ulps(o, r):
    """Units in the last place between o and r: between floats of one sign it is the distance
    of their bit patterns; a sign change (other than ±0) or a NaN counts as infinitely far."""
    ints = {4: np.int32, 8: np.int64}[r.itemsize]
    dist = np.abs(o.view(ints) - r.view(ints)).astype(np.float64)  # no overflow within one sign
    far = (np.signbit(o) != np.signbit(r)) | np.isnan(o) | np.isnan(r)
    return np.where(o == r, 0.0, np.where(far, np.inf, dist))


def check_ulp(out, ref, max_ulp: float) -> str:
    """Every element within max_ulp units in the last place of the reference."""
    out = _same_shape(out, ref, ref.dtype)
    worst = _worst(_ulps, out, ref)
    if not worst <= max_ulp:
        raise CheckFailed(f"max error {worst:.3g} ulp > {max_ulp:g}")
    return f"max err {worst:.0f} ulp (≤ {max_ulp:g})"


def check_rel(out, ref, rtol: float, scale=None, dtype=np.float64) -> str:
    """max |out - ref| / scale < rtol, elementwise (scale defaults to |ref|)."""
    out = _same_shape(out, ref, dtype)
    tiny = np.finfo(np.float64).tiny
    if scale is None:
        worst = _worst(lambda o, r: np.abs(o - r) / np.maximum(np.abs(r), tiny), out, ref)
    else:
        worst = _worst(lambda o, r, s: np.abs(o - r) / np.maximum(s, tiny), out, ref, scale)
    if not worst < rtol:
        raise CheckFailed(f"max rel err {worst:.2e} ≥ {rtol:g}")
    return f"max rel err {worst:.1e} (< {rtol:g})"


def check_abs(out, ref, atol: float, dtype=None) -> str:
    out = _same_shape(out, ref, dtype)
    worst = _worst(lambda o, r: np.abs(o.astype(np.float64) - r), out, ref)
    if not worst < atol:
        raise CheckFailed(f"max abs err {worst:.2e} ≥ {atol:g}")
    return f"max abs err {worst:.1e} (< {atol:g})"


def check_equal(out, ref) -> str:
    out = _same_shape(out, ref, ref.dtype)
    bad = int(_worst(lambda o, r: np.count_nonzero(o != r), out, ref, combine=np.sum))
    if bad:
        raise CheckFailed(f"{bad} elements differ")
    return f"identical {ref.dtype}"


# ---------------------------------------------------------------- timing


FIRST_TIMED = f"; first run ≥ {LONG_RUN_S:g} s, so timed (no separate warm-up)"


def time_runs(run: Callable[[], Any], check: Callable[[Any], str], repeats: int):
    """A warm-up, then `repeats` timed runs, every result checked.

    Returns (times, last check message, whether the first run was timed as it was long)."""
    times: list[float] = []
    message, warm_up, first_timed = "", True, False
    while len(times) < repeats:
        t0 = time.perf_counter()
        out = run()
        elapsed = time.perf_counter() - t0
        message = check(out)
        del out
        if warm_up:
            warm_up = False
            if elapsed < LONG_RUN_S:
                continue
            first_timed = True
        times.append(elapsed)
    return times, message, first_timed


def measure(mod, p: dict, name: str, ctx: Context, refs: dict) -> dict:
    """Times one runner on one case: a warm-up, then `ctx.repeats` timed runs; every result checked."""
    rec = base_record(mod.NAME, p["case"], ctx.size, name, p["elements"], p.get("bytes"))
    runner = None
    t_start = time.perf_counter()
    try:
        runner = mod.make(name, p, ctx)
        rec["note"] = runner.note
        if name == "dask-distributed":
            rec["setup_s"] = ctx.take_startup()
        if runner.skip:
            rec.update(status="skipped", note=runner.skip)
            return rec
        if runner.setup is not None:
            rec["setup_s"] = timed_call(runner.setup)
        if runner.graph is not None:
            rec["tasks_before"], rec["tasks"] = task_counts(runner.graph())
        if runner.key not in refs:
            refs[runner.key] = mod.reference(p, runner)
        ref = refs[runner.key]
        times, rec["check"], first_timed = time_runs(
            runner.run, lambda out: mod.check(out, ref, p), ctx.repeats
        )
        if first_timed:
            rec["note"] += FIRST_TIMED
        rec["times_s"] = [t * runner.scale for t in times]
        rec["median_s"] = statistics.median(rec["times_s"])
        rec["status"] = "ok"
        if runner.extra:
            rec.update(runner.extra)
        if runner.steps is not None:
            rec.update(steps_run=runner.steps, extrapolated=True, measured_s=times)
    except Exception as exc:  # one runner's failure must not stop the others
        if not isinstance(exc, CheckFailed):
            traceback.print_exc(file=sys.stderr)
        rec.update(
            status="failed",
            median_s=None,
            times_s=[],
            check="wrong result" if isinstance(exc, CheckFailed) else "did not run",
            error=f"{type(exc).__name__}: {exc}",
        )
    finally:
        runner = None
        gc.collect()
        rec["wall_s"] = time.perf_counter() - t_start  # everything: inputs, setup, reference, checks
    return rec
