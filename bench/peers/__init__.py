"""Peer implementations of accel's seed workloads (NumPy, numexpr, Numba, SciPy, Dask).

`run.py` is the command line; each workload module has `NAME`, `RUNNERS`,
`cases(size)`, `reference(p, runner)`, `check(out, ref, p)` and `make(runner, p, ctx)`.
"""
