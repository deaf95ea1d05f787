"""Zero-work task overhead of Dask distributed: T no-op tasks submitted and gathered."""

import statistics

from .common import FIRST_TIMED, CheckFailed, base_record, sci, time_runs

SIZES = {"small": 1_000, "bench": 10_000}


def noop(i):
    return i


def run(ctx):
    """Returns the task-overhead record (the cluster's start-up record is added by ctx)."""
    T = SIZES[ctx.size]
    rec = base_record("task-overhead", f"T={sci(T)} no-op tasks", ctx.size, "dask-distributed", T, None)
    rec["note"] = "client.map(noop, range(T), pure=False) + client.gather on LocalCluster(2 procs × 1 thread)"
    try:
        client = ctx.client()
        rec["setup_s"] = ctx.take_startup()

        def once():
            futures = client.map(noop, range(T), pure=False)
            return client.gather(futures)

        def check(out):
            if out != list(range(T)):
                raise CheckFailed("gathered results differ from range(T)")
            return f"{T} results gathered"

        times, message, first_timed = time_runs(once, check, ctx.repeats)
        if first_timed:
            rec["note"] += FIRST_TIMED
        median = statistics.median(times)
        rec.update(
            status="ok",
            median_s=median,
            times_s=times,
            tasks=T,
            tasks_before=T,
            per_task_us=median / T * 1e6,
            check=message,
        )
    except Exception as exc:
        rec.update(status="failed", check="did not run", error=f"{type(exc).__name__}: {exc}")
    return [rec]
