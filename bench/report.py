"""Turns a benchmark run into tables: prints them, writes results.json and results.md.

    python bench/report.py OUT_DIR

Reads OUT_DIR/machine.json, accel.json and peers.json (any may be missing). Records with
the same workload and case are compared with each other; accel's case strings are
matched to the peers' by their numbers when the text differs.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

WORKLOADS = ("mag", "trig", "discriminant", "harmonic", "inc25", "fractal", "pi", "trace", "heat", "matmul", "zarr")
SPECIAL = ("task-overhead", "cluster-startup", "client-receive")
# Storage workloads: in the tables, scored by no goal (the goals are the seed workloads'), and
# given a section of their own with the data volume and throughput.
STORAGE = ("zarr",)
# Compute workloads beyond the seeds': in the tables and the summary, scored by no goal either;
# their details give GFLOP/s (the records' `flops` over the median time).
EXTRA = ("matmul",)
RUNNERS = (
    "accel-embedded",
    "accel-distributed",
    "numpy",
    "numexpr",
    "numba-serial",
    "numba-parallel",
    "scipy",
    "dask-threaded",
    "dask-distributed",
    "dask-numba",
)
SINGLE_NODE = ("numpy", "numexpr", "numba-serial", "numba-parallel", "scipy", "dask-threaded", "dask-numba")
BANDWIDTH = ("mag", "discriminant", "inc25", "harmonic")
EMB, DIST = "accel-embedded", "accel-distributed"


# ---------------------------------------------------------------- loading and grouping


def load(out_dir: Path):
    def read(name):
        path = out_dir / name
        if not path.exists():
            return None
        return json.loads(path.read_text())

    machine = read("machine.json") or {}
    records = []
    for source in ("accel", "peers"):
        data = read(f"{source}.json")
        for rec in (data or {}).get("records", []):
            rec = {"case": "", "size": "", "status": "failed", "median_s": None, **rec, "source": source}
            records.append(rec)
    return machine, records


def case_numbers(case: str) -> tuple:
    """The numbers of a case description, dtype names left out: 'n=1e8 f32, chunks 5e6' -> (1e8, 5e6)."""
    text = re.sub(r"\b(?:[fiu]|int|float|complex)\d+\b", " ", case.lower())
    return tuple(float(m) for m in re.findall(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", text))


def same_case(a: str, b: str) -> bool:
    """Whether two descriptions name the same case: their numbers agree to one significant digit
    (Rust's {:.0e} writes 2.5e6 as 2e6), and one list may go on where the other stops."""
    na, nb = ([float(f"{x:.0e}") for x in case_numbers(c)] for c in (a, b))
    k = min(len(na), len(nb))
    return k > 0 and na[:k] == nb[:k]


def group(records: list[dict]) -> dict:
    """{(workload, size, case): [records]}, the peers' case strings first, accel's matched to them."""
    cases_of: dict[tuple, set] = {}
    for rec in records:
        cases_of.setdefault((rec["source"], rec["workload"], rec.get("size", "")), set()).add(rec["case"])
    groups: dict[tuple, list] = {}
    for rec in sorted(records, key=lambda r: r["source"] != "peers"):
        wl, size, case = rec["workload"], rec.get("size", ""), rec["case"]
        key = (wl, size, case)
        if key not in groups:
            same = [k for k in groups if k[:2] == (wl, size)]
            by_numbers = [k for k in same if same_case(k[2], case)]
            if by_numbers:
                key = by_numbers[0]
            elif len(same) == 1 and len(cases_of[(rec["source"], wl, size)]) == 1:
                key = same[0]  # one case on each side: the same case, described differently
            if key[2] != case:
                rec["matched_case"] = key[2]
        groups.setdefault(key, []).append(rec)
    order = {w: i for i, w in enumerate(WORKLOADS + SPECIAL)}
    return dict(sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][0])))


def by_runner(recs: list[dict]) -> dict:
    """runner -> its record (the first ok one if there are several)."""
    out: dict[str, dict] = {}
    for rec in recs:
        cur = out.get(rec["runner"])
        if cur is None or (cur["status"] != "ok" and rec["status"] == "ok"):
            out[rec["runner"]] = rec
    return out


def ok_time(rec) -> float | None:
    if rec and rec["status"] == "ok" and rec.get("median_s"):
        return rec["median_s"]
    return None


def gbps(rec, nbytes=None) -> float | None:
    """Bandwidth from the record's own byte count (or the given one, the case's)."""
    t = ok_time(rec)
    nbytes = rec.get("bytes") if rec and rec.get("bytes") else nbytes
    if t and nbytes:
        return nbytes / t / 1e9
    return None


def gflops(rec, flops=None) -> float | None:
    """GFLOP/s from the record's own operation count (or the given one, the case's)."""
    t = ok_time(rec)
    flops = rec.get("flops") if rec and rec.get("flops") else flops
    if t and flops:
        return flops / t / 1e9
    return None


def triad_gbps(records) -> float | None:
    values = [
        r["gbps"] for r in records if r["workload"] == "triad" and r["status"] == "ok" and r.get("gbps")
    ]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------- formatting


def fmt_ms(seconds) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1e3
    for limit, digits in ((100, 0), (10, 1), (1, 2)):
        if ms >= limit:
            return f"{ms:.{digits}f}"
    return f"{ms:.3f}"


def fmt_x(ratio) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:.0f}×" if ratio >= 100 else f"{ratio:.1f}×" if ratio >= 10 else f"{ratio:.2f}×"


def fmt_num(v, digits=1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def cell(rec) -> str:
    if rec is None:
        return ""
    if rec["status"] != "ok":
        return rec["status"]
    text = fmt_ms(rec["median_s"])
    return text + "*" if rec.get("extrapolated") else text


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def label(key) -> str:
    wl, _, case = key
    return f"{wl} {case}"


# ---------------------------------------------------------------- summary and goals


def best_single_node(runners: dict):
    timed = [(ok_time(runners.get(r)), r) for r in SINGLE_NODE if ok_time(runners.get(r))]
    return min(timed) if timed else (None, None)


def kernel_gbps(records) -> dict:
    """GB/s of accel's fused kernels alone (inputs in memory), by workload."""
    return {
        r["kernel_of"]: r["gbps"]
        for r in records
        if r["workload"] == "kernel" and r["status"] == "ok" and r.get("gbps") and r.get("kernel_of")
    }


def hand_gbps(records) -> dict:
    """GB/s of the same chains as hand-fused parallel Rust loops, by workload."""
    return {
        r["kernel_of"]: r["hand_gbps"]
        for r in records
        if r["workload"] == "kernel" and r["status"] == "ok" and r.get("hand_gbps") and r.get("kernel_of")
    }


def bandwidth_ceiling(triad: float | None, hand: float | None) -> tuple[float | None, str]:
    """What a fused kernel's bandwidth is measured against: the triad, or the
    hand-fused Rust loop where that loop is compute-bound (below 80 % of the
    triad: its arithmetic, not the memory, bounds it)."""
    if hand and triad and hand < 0.8 * triad:
        return hand, "the hand-fused loop"
    return triad, "triad"


def summarize(
    groups: dict, triad: float | None, kernels: dict | None = None, hands: dict | None = None
) -> tuple[list[dict], list[dict]]:
    rows, goals = [], []
    kernels, hands = kernels or {}, hands or {}

    def goal(name, where, figure, target, passed):
        goals.append(
            dict(
                goal=name,
                where=where,
                figure=figure,
                target=target,
                result="n/a" if passed is None else "PASS" if passed else "MISS",
            )
        )

    for key, recs in groups.items():
        wl = key[0]
        if wl not in WORKLOADS:
            continue
        runners = by_runner(recs)
        emb, dist = ok_time(runners.get(EMB)), ok_time(runners.get(DIST))
        peer_t, peer = best_single_node(runners)
        dask_dist = ok_time(runners.get("dask-distributed"))
        row = dict(
            workload=wl,
            case=key[2],
            size=key[1],
            accel_embedded_s=emb,
            best_peer=peer,
            best_peer_s=peer_t,
            speedup_vs_best_peer=peer_t / emb if emb and peer_t else None,
            distributed_speedup=dask_dist / dist if dist and dask_dist else None,
        )
        if wl in BANDWIDTH:
            case_bytes = next((r["bytes"] for r in recs if r.get("bytes")), None)
            row["end_to_end_gbps"] = gbps(runners.get(EMB), case_bytes)
            # The goal is about the fused kernel: measured alone when the suite did.
            row["accel_gbps"] = kernels.get(wl, row["end_to_end_gbps"])
            row["pct_of_triad"] = 100 * row["accel_gbps"] / triad if row["accel_gbps"] and triad else None
            row["hand_gbps"] = hands.get(wl)
            ceiling, row["ceiling"] = bandwidth_ceiling(triad, row["hand_gbps"])
            row["pct_of_ceiling"] = 100 * row["accel_gbps"] / ceiling if row["accel_gbps"] and ceiling else None
        case_flops = next((r["flops"] for r in recs if r.get("flops")), None)
        if case_flops:
            row["accel_gflops"] = gflops(runners.get(EMB), case_flops)
            row["best_peer_gflops"] = gflops(runners.get(peer), case_flops) if peer else None
        rows.append(row)
        if wl in STORAGE or wl in EXTRA:
            continue
        where = label(key)
        r = row["distributed_speedup"]
        goal(
            "accel-distributed ≥ 20× faster than dask-distributed",
            where,
            fmt_x(r),
            "≥ 20×",
            None if r is None else r >= 20,
        )
        r = row["speedup_vs_best_peer"]
        goal(
            "accel-embedded ≥ best single-node peer",
            where,
            f"{fmt_x(r)} vs {peer}" if r else "—",
            "≥ 1×",
            None if r is None else r >= 1,
        )
        if wl in BANDWIDTH:
            pct = row["pct_of_ceiling"]
            fig = "—"
            if pct is not None:
                fig = f"{fmt_num(row['accel_gbps'])} GB/s = {fmt_num(pct, 0)} % of {row['ceiling']}"
                if row["ceiling"] != "triad":
                    fig += (
                        f" ({fmt_num(row['hand_gbps'])} GB/s, {fmt_num(100 * row['hand_gbps'] / triad, 0)} % of triad)"
                    )
            goal(
                "fused kernel bandwidth ≥ 80 % of triad (of the hand-fused loop where that is compute-bound)",
                where,
                fig,
                "≥ 80 %",
                None if pct is None else pct >= 80,
            )
        if wl == "fractal":
            numba_t = ok_time(runners.get("numba-parallel"))
            ratio = emb / numba_t if emb and numba_t else None
            pixels = next((r["elements"] for r in recs if r.get("elements")), None)
            row["ns_per_pixel_accel"] = emb / pixels * 1e9 if emb and pixels else None
            row["ns_per_pixel_numba_parallel"] = numba_t / pixels * 1e9 if numba_t and pixels else None
            row["accel_over_numba_parallel"] = ratio
            fig = "—"
            if ratio:
                ns_a, ns_n = row["ns_per_pixel_accel"], row["ns_per_pixel_numba_parallel"]
                fig = f"{fmt_num(ns_a)} vs {fmt_num(ns_n)} ns/px = {fmt_num(ratio, 2)}"
            goal(
                "fractal ns/pixel ≤ 0.7 × numba-parallel",
                where,
                fig,
                "≤ 0.70",
                None if ratio is None else ratio <= 0.7,
            )
        if wl == "heat" and case_numbers(key[2])[:2] == (200.0, 4000.0):
            dask_ts = [(ok_time(runners.get(r)), r) for r in ("dask-threaded", "dask-distributed")]
            dask_ts = [d for d in dask_ts if d[0]]
            fastest_dask = min(dask_ts) if dask_ts else (None, None)
            r = fastest_dask[0] / emb if emb and fastest_dask[0] else None
            goal(
                "heat: accel ≥ 100× faster than dask map_overlap",
                where,
                f"{fmt_x(r)} vs {fastest_dask[1]}" if r else "—",
                "≥ 100×",
                None if r is None else r >= 100,
            )
            numba_t = ok_time(runners.get("numba-parallel"))
            r = numba_t / emb if emb and numba_t else None
            goal(
                "heat: accel at least as fast as numba-parallel",
                where,
                fmt_x(r),
                "≥ 1×",
                None if r is None else r >= 1,
            )
    gpu_kernel_goals(groups, goal)
    overhead = [g for k, g in groups.items() if k[0] == "task-overhead"]
    for recs in overhead:
        runners = by_runner(recs)
        d, a = runners.get("dask-distributed"), runners.get(DIST)
        du = d.get("per_task_us") if d and d["status"] == "ok" else None
        au = a.get("per_task_us") if a and a["status"] == "ok" else None
        r = du / au if du and au else None
        fig = f"{fmt_num(du)} vs {fmt_num(au, 2)} µs/task = {fmt_x(r)}" if r else "—"
        goal(
            "zero-work task overhead ≥ 100× lower than dask distributed",
            f"task-overhead {recs[0]['case']}",
            fig,
            "≥ 100×",
            None if r is None else r >= 100,
        )
    return rows, goals


def gpu_kernels(groups: dict) -> tuple[list[dict], float | None]:
    """accel's fused kernels timed alone on a GPU, and the device triad's GB/s."""
    recs = [r for k, g in groups.items() if k[0] == "gpu-kernel" for r in g]
    triad = next(
        (r["gbps"] for r in recs if r.get("kernel_of") == "triad" and r["status"] == "ok" and r.get("gbps")),
        None,
    )
    return recs, triad


# Numba on a GPU in the seed table (ns/pixel), the GPU fractal's mark.
NUMBA_GPU_FRACTAL_NS = 7.8


def gpu_kernel_goals(groups: dict, goal) -> None:
    recs, triad = gpu_kernels(groups)
    for r in recs:
        if r["status"] != "ok":
            continue
        where = f"gpu-{r.get('kernel_of', '?')} {r['case']}"
        if r.get("kernel_of") in ("mag", "discriminant") and r.get("gbps") and triad:
            pct = 100 * r["gbps"] / triad
            goal(
                "GPU: memory-bound chain ≥ 70 % of the device's bandwidth (its triad)",
                where,
                f"{fmt_num(r['gbps'])} GB/s = {fmt_num(pct, 0)} % of {fmt_num(triad)}",
                "≥ 70 %",
                pct >= 70,
            )
        if r.get("kernel_of") == "fractal" and r.get("ns_per_element"):
            ns = r["ns_per_element"]
            goal(
                f"GPU: fractal well under Numba-GPU's {NUMBA_GPU_FRACTAL_NS} ns/pixel",
                where,
                f"{fmt_num(ns, 2)} ns/px",
                f"< {NUMBA_GPU_FRACTAL_NS}",
                ns < NUMBA_GPU_FRACTAL_NS,
            )


def gpu_section(groups: dict) -> list[str]:
    recs, triad = gpu_kernels(groups)
    if not recs:
        return []
    body = []
    for r in recs:
        if r["status"] != "ok":
            body.append([r.get("kernel_of", "?"), r.get("case", ""), "failed", "", "", ""])
            continue
        pct = 100 * r["gbps"] / triad if r.get("gbps") and triad else None
        body.append(
            [
                r.get("kernel_of", "?"),
                r["case"],
                fmt_ms(r["median_s"]),
                fmt_num(r.get("gbps")) if r.get("gbps") else "—",
                f"{pct:.0f} %" if pct is not None else "—",
                fmt_num(r.get("ns_per_element"), 3),
            ]
        )
    device = next((r["device"] for r in recs if r.get("device")), "?")
    out = [f"### GPU kernels alone (device memory, {device})", ""]
    out += table(["kernel", "case", "ms", "GB/s", "of device triad", "ns/element"], body)
    out.append("")
    return out


# ---------------------------------------------------------------- the document


def machine_line(m: dict) -> str:
    if not m:
        return "machine: not recorded"
    mem = f"{m['memory_total_bytes'] / 2**30:.0f} GiB" if m.get("memory_total_bytes") else "? GiB"
    load = lambda v: "/".join(f"{x:.2f}" for x in v) if v else "?"  # noqa: E731
    commit = (m.get("git_commit") or "?")[:10] + (" (dirty)" if m.get("git_dirty") else "")
    return (
        f"{m.get('cores', '?')} cores, {m.get('cpu_model', '?')}, {mem}; load average "
        f"{load(m.get('load_before'))} before, {load(m.get('load_after'))} after; commit {commit}"
    )


def busy_warning(m: dict) -> str | None:
    """A warning when other work ran on the machine as the benchmark started."""
    load, cores = m.get("load_before"), m.get("cores")
    if load and cores and load[0] > 0.5 * cores:
        return (
            f"the machine was busy before the run (load average {load[0]:.2f} on {cores} cores): "
            "parallel runners lose most, rerun on a quiet machine for figures to quote"
        )
    return None


def document(machine: dict, groups: dict, rows: list, goals: list, triad) -> list[str]:
    out = ["## Benchmark results", ""]
    out.append(f"- date: {machine.get('date', '?')}")
    out.append(f"- machine: {machine_line(machine)}")
    if machine.get("command"):
        out.append(f"- command: `{machine['command']}`")
    pk = machine.get("packages") or {}
    if pk:
        out.append("- peers: " + ", ".join(f"{k} {v}" for k, v in pk.items() if v))
    if triad:
        out.append(f"- STREAM triad (plain Rust): {triad:.1f} GB/s")
    busy = busy_warning(machine)
    if busy:
        out.append(f"- **{busy}**")
    out.append("")

    present = {r["runner"] for key, recs in groups.items() if key[0] in WORKLOADS for r in recs}
    cols = [r for r in RUNNERS if r in present] + sorted(present - set(RUNNERS))
    body = []
    for key, recs in groups.items():
        if key[0] not in WORKLOADS:
            continue
        runners = by_runner(recs)
        fastest = min((ok_time(r) for r in runners.values() if ok_time(r)), default=None)
        cells = []
        for c in cols:
            text = cell(runners.get(c))
            cells.append(f"**{text}**" if fastest and ok_time(runners.get(c)) == fastest else text)
        body.append([key[0], key[2]] + cells)
    out += ["### Median time (ms), lower is better; fastest in bold", ""]
    out += table(["workload", "case"] + cols, body)
    if any(r.get("extrapolated") for recs in groups.values() for r in recs):
        out.append("")
        out.append(
            "\\* extrapolated linearly to all Nt steps from a shorter run (Dask map_overlap; see details)"
        )
    out.append("")

    special = []
    for key, recs in groups.items():
        if key[0] in SPECIAL:
            for r in recs:
                if r.get("per_task_us"):
                    per = f"{r['per_task_us']:.1f} µs/task"
                elif r.get("gbps"):
                    per = f"{r['gbps']:.2f} GB/s ({fmt_ms(r.get('median_s'))} ms)"
                else:
                    per = fmt_ms(r.get("median_s")) + " ms"
                special.append([key[0], key[2], r["runner"], per if r["status"] == "ok" else r["status"]])
    if special:
        out += ["### Overheads", ""]
        out += table(["what", "case", "runner", "figure"], special)
        out.append("")

    out += storage_section(groups)
    out += gpu_section(groups)

    out += ["### Goals", ""]
    out += goals_table(goals, groups)
    out.append("")

    out += ["### Summary", ""]
    srows = []
    for r in rows:
        bw = ""
        if r.get("accel_gbps"):
            notes = []
            if r.get("pct_of_triad"):
                notes.append(f"{r['pct_of_triad']:.0f} % of triad")
            if r.get("ceiling") not in (None, "triad") and r.get("pct_of_ceiling"):
                notes.append(f"{r['pct_of_ceiling']:.0f} % of the hand-fused loop")
            bw = f"{r['accel_gbps']:.1f} GB/s" + (f" ({'; '.join(notes)})" if notes else "")
        peer = f"{r['best_peer']} {fmt_ms(r['best_peer_s'])} ms" if r["best_peer"] else "—"
        srows.append(
            [
                f"{r['workload']} {r['case']}",
                fmt_ms(r["accel_embedded_s"]),
                peer,
                fmt_x(r["speedup_vs_best_peer"]),
                fmt_x(r["distributed_speedup"]),
                bw,
            ]
        )
    out += table(
        [
            "workload",
            "accel-embedded ms",
            "best single-node peer",
            "accel-emb. speed-up",
            "accel-dist. vs dask-dist.",
            "fused bandwidth",
        ],
        srows,
    )
    out.append("")

    failed = [r for recs in groups.values() for r in recs if r["status"] == "failed"]
    if failed:
        out += ["### Failed", ""]
        for r in failed:
            error = (r.get("error") or "no error text").replace("\n", " ")
            out.append(f"- {r['workload']} {r['case']} {r['runner']}: {error[:300]}")
        out.append("")

    out += ["### Details", ""]
    for key, recs in groups.items():
        if key[0] not in WORKLOADS:
            continue
        out += [f"#### {label(key)} ({key[1]})", ""]
        out += detail(recs)
        out.append("")
    return out


def fmt_gb(nbytes) -> str:
    return "—" if not nbytes else f"{nbytes / 1e9:.2f}"


def fmt_s(seconds) -> str:
    return "—" if seconds is None else f"{seconds:.3g}" if seconds < 100 else f"{seconds:.0f}"


def ratio(a, b) -> float | None:
    return a / b if a and b else None


def storage_rows(groups: dict) -> list[dict]:
    """Per storage case and runner: time, data volume, throughput, and accel's ratios to Dask."""
    rows = []
    for key, recs in groups.items():
        if key[0] not in STORAGE:
            continue
        runners = by_runner(recs)
        dask = {name: ok_time(runners.get(name)) for name in ("dask-threaded", "dask-distributed")}
        for name in [r for r in RUNNERS if r in runners] + sorted(set(runners) - set(RUNNERS)):
            rec, t = runners[name], ok_time(runners[name])
            rows.append(
                dict(
                    workload=key[0],
                    case=key[2],
                    size=key[1],
                    runner=name,
                    status=rec["status"],
                    median_s=t,
                    read_bytes=rec.get("read_bytes") or rec.get("bytes"),
                    written_bytes=rec.get("written_bytes"),
                    stored_read_bytes=rec.get("stored_read_bytes"),
                    stored_written_bytes=rec.get("stored_written_bytes"),
                    input_gbps=gbps(rec),
                    # Dask's time over this runner's: > 1 means this runner is faster.
                    vs_dask_threaded=ratio(dask["dask-threaded"], t),
                    vs_dask_distributed=ratio(dask["dask-distributed"], t),
                )
            )
    return rows


def storage_section(groups: dict) -> list[str]:
    rows = storage_rows(groups)
    out: list[str] = []
    for case in dict.fromkeys((r["workload"], r["case"]) for r in rows):
        mine = [r for r in rows if (r["workload"], r["case"]) == case]
        out += [f"### Storage: {case[0]} {case[1]}", ""]
        out.append(
            "Read a Zarr store, `sqrt(2x + 1)`, write a new Zarr store; GB are the arrays' "
            "bytes (on disk: the chunk files), GB/s is input bytes over the median time; "
            "the ratios are Dask's median time over the runner's, from this run (> 1: faster than Dask)."
        )
        out.append("")
        body = []
        for r in mine:
            ok = r["status"] == "ok"
            body.append(
                [
                    r["runner"],
                    fmt_s(r["median_s"]) if ok else r["status"],
                    fmt_gb(r["read_bytes"]),
                    fmt_gb(r["written_bytes"]),
                    f"{fmt_gb(r['stored_read_bytes'])} / {fmt_gb(r['stored_written_bytes'])}",
                    fmt_num(r["input_gbps"], 2),
                    "" if r["runner"] == "dask-threaded" else fmt_x(r["vs_dask_threaded"]),
                    "" if r["runner"] == "dask-distributed" else fmt_x(r["vs_dask_distributed"]),
                ]
            )
        out += table(
            [
                "runner",
                "median s",
                "GB read",
                "GB written",
                "on disk GB (read / written)",
                "GB/s of input",
                "vs dask-threaded",
                "vs dask-distributed",
            ],
            body,
        )
        out.append("")
        by = {r["runner"]: r for r in mine}
        pairs = [
            (EMB, "dask-threaded", "vs_dask_threaded"),
            (DIST, "dask-distributed", "vs_dask_distributed"),
        ]
        ratios = [
            f"{a} / {b}: "
            + (f"{fmt_x(by[a][k])} faster" if by[a][k] >= 1 else f"{fmt_x(1 / by[a][k])} slower")
            for a, b, k in pairs
            if a in by and by[a][k]
        ]
        if ratios:
            out += ["accel against Dask, same run: " + "; ".join(ratios) + ".", ""]
    return out


def goals_table(goals: list[dict], groups: dict) -> list[str]:
    """One row per goal: its figure for every workload, PASS only when none misses."""
    cases_per_workload: dict[str, int] = {}
    for wl, _, _ in groups:
        cases_per_workload[wl] = cases_per_workload.get(wl, 0) + 1
    rows: dict[str, dict] = {}
    for g in goals:
        row = rows.setdefault(g["goal"], {"target": g["target"], "figures": [], "results": []})
        wl = g["where"].split(" ", 1)[0]
        where = g["where"] if cases_per_workload.get(wl, 1) > 1 else wl
        if g["result"] != "n/a":
            row["figures"].append(f"{where} {g['figure']} {'✓' if g['result'] == 'PASS' else '✗'}")
        row["results"].append(g["result"])
    body = []
    for name, row in rows.items():
        judged = [r for r in row["results"] if r != "n/a"]
        missing = len(row["results"]) - len(judged)
        verdict = "n/a"
        if judged:
            passed = judged.count("PASS")
            verdict = ("PASS" if passed == len(judged) else "MISS") + f" ({passed}/{len(judged)}"
            verdict += f", {missing} n/a)" if missing else ")"
        body.append([name, row["target"], "; ".join(row["figures"]) or "no data", verdict])
    return table(["goal", "target", "figures", "result"], body)


def detail(recs: list[dict]) -> list[str]:
    runners = by_runner(recs)
    emb = ok_time(runners.get(EMB))
    order = [r for r in RUNNERS if r in runners] + sorted(set(runners) - set(RUNNERS))
    case_flops = next((r["flops"] for r in recs if r.get("flops")), None)
    rows, notes = [], []
    for name in order:
        rec = runners[name]
        t = ok_time(rec)
        ns = t / rec["elements"] * 1e9 if t and rec.get("elements") else None
        tasks = ""
        if rec.get("tasks") is not None:
            before = rec.get("tasks_before")
            tasks = (
                f"{before} → {rec['tasks']}"
                if before is not None and before != rec["tasks"]
                else str(rec["tasks"])
            )
        speed = fmt_x(t / emb) if t and emb and name != EMB else ""
        what = (
            rec.get("check") or "" if rec["status"] == "ok" else f"{rec['status']}: {rec.get('error') or ''}"
        )
        if rec.get("extrapolated"):
            what += f"; {rec.get('steps_run')} steps run, extrapolated"
        setup = fmt_ms(rec.get("setup_s")) if rec.get("setup_s") is not None else ""
        rows.append(
            [
                name,
                cell(rec) or "—",
                fmt_num(ns, 2),
                fmt_num(gbps(rec)) if rec.get("bytes") else "",
                *([fmt_num(gflops(rec, case_flops))] if case_flops else []),
                tasks,
                setup,
                speed,
                what,
            ]
        )
        if rec.get("note"):
            notes.append(f"- {name}: {rec['note']}")
    out = table(
        [
            "runner",
            "median ms",
            "ns/element",
            "GB/s",
            *(["GFLOP/s"] if case_flops else []),
            "tasks (before → after)",
            "setup ms",
            "accel-emb. speed-up",
            "status / check",
        ],
        rows,
    )
    return out + [""] + notes


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    machine, records = load(out_dir)
    if not records:
        print(f"report: no records in {out_dir} (accel.json, peers.json)", file=sys.stderr)
        return 1
    groups = group(records)
    triad = triad_gbps(records)
    rows, goals = summarize(groups, triad, kernel_gbps(records), hand_gbps(records))
    text = "\n".join(document(machine, groups, rows, goals, triad)) + "\n"
    print(text)
    (out_dir / "results.md").write_text(text)
    results = {
        "machine": machine,
        "records": records,
        "summary": {"triad_gbps": triad, "rows": rows, "goals": goals, "storage": storage_rows(groups)},
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"report: wrote {out_dir / 'results.md'} and {out_dir / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
