//! accel's half of `bench/run`: every seed workload on the embedded client and
//! on a loopback cluster (scheduler + 2 single-threaded workers), the machine's
//! triad bandwidth and the zero-work task overhead, as JSON records; `matmul`
//! (`accel::matmul` of two dense float64 matrices, see `accel_bench::matmul`)
//! on both; the storage workload `zarr` (a Zarr store read, `sqrt(2x + 1)`, a new Zarr
//! store written) on both, and how fast a 400 MB result comes back into the
//! client (`client-receive`, measured with `zarr` too).
//!
//! With a GPU (`--gpu auto`, the default: a CUDA device or a hardware Vulkan
//! GPU; `--gpu software` runs them on Mesa's lavapipe, `--gpu none` skips
//! them), the GPU workloads (mag, trig, fractal, pi, heat) also run on the
//! embedded client with that GPU (runner `accel-gpu`), with a record of how
//! many kernels ran on it.
//!
//! `accel-suite [--size small|bench] [--repeats N] [--only mag,heat] [--json PATH] [--out DIR]
//!  [--data DIR] [--gpu auto|none|software|cuda[:N]|N] [--no-cluster]`
//!
//! `--only` takes the workload names, `overhead` (zero-work tasks and the
//! cluster's start-up) and `client-receive`; the triad runs every time.
//!
//! `--no-cluster` leaves out the loopback cluster's rows (a machine that has
//! this binary but not `accel-scheduler` and `accel-worker`, as on a GPU machine
//! `scripts/device-check.sh` runs on).
//!
//! `zarr` reads the source store `bench/peers/zarr_data.py` writes under
//! `DIR/zarr-SIZE` (default `OUT/data`); `bench/run` writes it first.

use std::time::Instant;

use accel::{Client, DType, arange};
use accel_bench::json::Json;
use accel_bench::zarr::Source;
use accel_examples::workloads::ALL;
use accel_examples::{Args, Report};
use anyhow::Context;

const USAGE: &str = "usage: accel-suite [--size small|bench] [--repeats N] [--only mag,heat] \
[--json PATH] [--out DIR] [--data DIR] [--gpu auto|none|software|cuda[:N]|N] [--no-cluster]";

struct Options {
    size: String,
    repeats: usize,
    only: Option<Vec<String>>,
    json: std::path::PathBuf,
    out: String,
    data: Option<std::path::PathBuf>,
    gpu: accel::GpuChoice,
    cluster: bool,
}

impl Options {
    /// Whether `--only` (if given) names `name`.
    fn selected(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|v| v.iter().any(|x| x == name))
    }
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        size: "bench".into(),
        repeats: 3,
        only: None,
        json: "bench/out/accel.json".into(),
        out: "bench/out".into(),
        data: None,
        gpu: accel::GpuChoice::Auto,
        cluster: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--size" => o.size = value()?,
            "--repeats" => o.repeats = value()?.parse().context("--repeats takes a count")?,
            "--only" => o.only = Some(value()?.split(',').map(str::to_string).collect()),
            "--json" => o.json = value()?.into(),
            "--out" => o.out = value()?,
            "--data" => o.data = Some(value()?.into()),
            "--gpu" => {
                o.gpu = value()?
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--gpu: {e}"))?
            }
            "--no-cluster" => o.cluster = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    anyhow::ensure!(
        o.size == "small" || o.size == "bench",
        "--size takes small or bench"
    );
    Ok(o)
}

/// Workloads whose fused kernels only stream memory (GB/s is meaningful).
const MEMORY_BOUND: [&str; 4] = ["mag", "discriminant", "inc25", "harmonic"];

fn record(r: &Report, size: &str, runner: &str, setup: Option<f64>) -> Json {
    let secs = |d: &std::time::Duration| d.as_secs_f64();
    Json::Obj(vec![
        ("workload".into(), r.name.into()),
        ("case".into(), r.size.clone().into()),
        ("size".into(), size.into()),
        (
            "runner".into(),
            match r.variant {
                Some(v) => format!("{runner} ({v})"),
                None => runner.to_string(),
            }
            .into(),
        ),
        ("status".into(), "ok".into()),
        ("median_s".into(), secs(&r.time).into()),
        (
            "times_s".into(),
            Json::List(r.times.iter().map(|t| secs(t).into()).collect()),
        ),
        ("setup_s".into(), setup.into()),
        ("tasks".into(), r.tasks.into()),
        ("tasks_before".into(), r.tasks_unfused.into()),
        ("elements".into(), r.elements.into()),
        (
            "bytes".into(),
            MEMORY_BOUND
                .contains(&r.name)
                .then_some(r.bytes)
                .filter(|&b| b > 0)
                .into(),
        ),
        ("check".into(), r.check.clone().into()),
        ("error".into(), Json::Null),
        ("note".into(), Some(r.notes.join("; ")).into()),
    ])
}

fn failure(workload: &str, size: &str, runner: &str, error: String) -> Json {
    Json::Obj(vec![
        ("workload".into(), workload.into()),
        ("case".into(), "".into()),
        ("size".into(), size.into()),
        ("runner".into(), runner.into()),
        ("status".into(), "failed".into()),
        ("median_s".into(), Json::Null),
        ("times_s".into(), Json::List(vec![])),
        ("error".into(), error.into()),
    ])
}

/// The workloads a GPU runs in the suite (the seed table's GPU figures).
const GPU_WORKLOADS: [&str; 5] = ["mag", "trig", "fractal", "pi", "heat"];

/// The GPU workloads on the embedded client with `o.gpu`, when it opens.
fn gpu(o: &Options, records: &mut Vec<Json>) {
    let client = match Client::local().with_progress(false).with_gpu(o.gpu) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("accel-suite: GPU: {e}");
            records.push(failure("gpu", &o.size, "accel-gpu", e.to_string()));
            return;
        }
    };
    let Some((device, _)) = client.gpu() else {
        eprintln!("accel-suite: no GPU ({:?}): no GPU rows", o.gpu);
        return;
    };
    let name = format!("{} ({})", device.name, device.backend);
    eprintln!("accel-suite: GPU {name}");
    workloads_of(
        o,
        client.clone(),
        "accel-gpu",
        Some(&GPU_WORKLOADS),
        records,
    );
    eprintln!("accel-suite: fused kernels alone on {name} (device memory)");
    records.extend(accel_bench::gpu_kernels::rows(
        o.gpu,
        &o.size,
        if o.size == "bench" { 20 } else { 5 },
    ));
    if let Some((_, counts)) = client.gpu() {
        eprintln!(
            "accel-suite: {} kernels on the GPU ({} folded there, {} stencil tasks), {} declined, {} failed; {} inputs read from device memory, {} chunks read back from it",
            counts.on_gpu,
            counts.folded,
            counts.stencils,
            counts.declined,
            counts.failed,
            counts.resident,
            counts.read_back
        );
        if let Some(why) = client.gpu_last_failure() {
            eprintln!("accel-suite: the latest kernel that failed on the GPU: {why}");
        }
        records.push(Json::Obj(vec![
            ("workload".into(), "gpu-kernels".into()),
            ("case".into(), name.into()),
            ("size".into(), o.size.clone().into()),
            ("runner".into(), "accel-gpu".into()),
            ("status".into(), "ok".into()),
            ("on_gpu".into(), (counts.on_gpu as usize).into()),
            ("folded".into(), (counts.folded as usize).into()),
            ("stencils".into(), (counts.stencils as usize).into()),
            ("declined".into(), (counts.declined as usize).into()),
            ("failed".into(), (counts.failed as usize).into()),
            ("resident".into(), (counts.resident as usize).into()),
            ("read_back".into(), (counts.read_back as usize).into()),
            (
                "last_failure".into(),
                client.gpu_last_failure().unwrap_or_default().into(),
            ),
        ]));
    }
}

/// Every selected workload on `client`, one record per case.
fn workloads(o: &Options, client: Client, runner: &str, records: &mut Vec<Json>) {
    workloads_of(o, client, runner, None, records)
}

/// [`workloads`], only those in `names` when given.
fn workloads_of(
    o: &Options,
    client: Client,
    runner: &str,
    names: Option<&[&str]>,
    records: &mut Vec<Json>,
) {
    let mut args = match Args::parse(
        [
            "--size",
            &o.size,
            "--out",
            &o.out,
            "--repeats",
            &o.repeats.to_string(),
        ]
        .map(String::from),
    ) {
        Ok(a) => a,
        Err(e) => {
            records.push(failure("all", &o.size, runner, e.to_string()));
            return;
        }
    };
    args.client = client;
    for (name, run) in ALL {
        if o.only
            .as_ref()
            .is_some_and(|v| !v.iter().any(|x| x == name))
            || names.is_some_and(|n| !n.contains(&name))
        {
            continue;
        }
        eprintln!("accel-suite: {name} on {runner}");
        match run(&args) {
            Ok(reports) => {
                for r in &reports {
                    eprintln!(
                        "  {} ({}): {:.3} ms, {} tasks",
                        r.name,
                        r.size,
                        r.time.as_secs_f64() * 1e3,
                        r.tasks
                    );
                    records.push(record(r, &o.size, runner, None));
                }
            }
            Err(e) => {
                eprintln!("  FAILED: {e:#}");
                records.push(failure(name, &o.size, runner, format!("{e:#}")));
            }
        }
    }
}

/// The workload `matmul` on `client` (see `accel_bench::matmul`).
fn matmul(o: &Options, client: &Client, runner: &str, records: &mut Vec<Json>) {
    if !o.selected("matmul") {
        return;
    }
    eprintln!("accel-suite: matmul on {runner}");
    match accel_bench::matmul::run(client, runner, &o.size, o.repeats) {
        Ok(r) => {
            if let Json::Obj(kv) = &r {
                let get = |k: &str| kv.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                if let (Some(Json::Num(t)), Some(Json::Num(g))) = (get("median_s"), get("gflops")) {
                    eprintln!("  {:.1} ms, {g:.1} GFLOP/s", t * 1e3);
                }
            }
            records.push(r);
        }
        Err(e) => {
            eprintln!("  FAILED: {e:#}");
            records.push(failure("matmul", &o.size, runner, format!("{e:#}")));
        }
    }
}

/// The storage workload `zarr` on `client` (see `accel_bench::zarr`).
fn zarr(o: &Options, client: &Client, runner: &str, records: &mut Vec<Json>) {
    if !o.selected("zarr") {
        return;
    }
    eprintln!("accel-suite: zarr on {runner}");
    let data = o
        .data
        .clone()
        .unwrap_or_else(|| std::path::Path::new(&o.out).join("data"));
    let result = Source::open(&data, &o.size).and_then(|source| {
        accel_bench::zarr::run(client, runner, &source, &o.size, o.repeats)
            .map_err(|e| e.context(source.case()))
    });
    match result {
        Ok(r) => {
            if let Json::Obj(kv) = &r {
                let get = |k: &str| kv.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                if let (Some(Json::Num(t)), Some(Json::Num(b))) = (get("median_s"), get("bytes")) {
                    eprintln!("  {:.3} s, {:.2} GB/s of input", t, b / t / 1e9);
                }
            }
            records.push(r);
        }
        Err(e) => {
            eprintln!("  FAILED: {e:#}");
            records.push(failure("zarr", &o.size, runner, format!("{e:#}")));
        }
    }
}

/// Results into the client: a 400 MB float64 result (`arange(5e7)` in 20
/// chunks) computed and carried into this process, end to end, as
/// `bin/transfer.rs` measures it; the median of `repeats` after a warm-up.
fn client_receive(o: &Options, client: &Client, runner: &str) -> anyhow::Result<Json> {
    let n = if o.size == "small" {
        5_000_000
    } else {
        50_000_000
    };
    let chunk = n / 20;
    let a = arange(n, chunk).astype(DType::F64);
    let (mut times, mut run) = accel_bench::receive_times(client, &a, 1, o.repeats.max(3))?;
    let out = run
        .outputs
        .pop()
        .context("no output")?
        .into_typed::<f64>()?;
    anyhow::ensure!(
        out.len() == n && out.iter().enumerate().all(|(i, &v)| v == i as f64),
        "the result is not arange({n})"
    );
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let bytes = 8 * n;
    eprintln!(
        "accel-suite: client-receive on {runner}: {:.1} ms, {:.2} GB/s",
        median * 1e3,
        bytes as f64 / median / 1e9
    );
    Ok(Json::Obj(vec![
        ("workload".into(), "client-receive".into()),
        (
            "case".into(),
            format!(
                "arange({n:.0e}, chunks {chunk:.0e}) as f64, {} MB",
                bytes / 1_000_000
            )
            .into(),
        ),
        ("size".into(), o.size.clone().into()),
        ("runner".into(), runner.into()),
        ("status".into(), "ok".into()),
        ("median_s".into(), median.into()),
        (
            "times_s".into(),
            Json::List(times.iter().map(|&t| t.into()).collect()),
        ),
        ("bytes".into(), bytes.into()),
        ("gbps".into(), (bytes as f64 / median / 1e9).into()),
        ("check".into(), "exact arange".into()),
        ("error".into(), Json::Null),
        (
            "note".into(),
            "client.run(&[arange(n).astype(F64)]): computed and carried into the client process"
                .into(),
        ),
    ]))
}

/// `client_receive` as a record, when `--only` selects it (or `zarr`).
fn receive(o: &Options, client: &Client, runner: &str, records: &mut Vec<Json>) {
    if !(o.selected("client-receive") || o.selected("zarr")) {
        return;
    }
    match client_receive(o, client, runner) {
        Ok(r) => records.push(r),
        Err(e) => records.push(failure("client-receive", &o.size, runner, format!("{e:#}"))),
    }
}

/// GB/s of the memory-bound fused kernels alone: inputs materialized in
/// memory first, the result preallocated (end-to-end times also pay for
/// generating inputs, allocating and first-touching the result).
fn kernels(o: &Options, triad: f64, records: &mut Vec<Json>) {
    if !MEMORY_BOUND.iter().any(|name| o.selected(name)) {
        return;
    }
    let n = if o.size == "small" {
        2_000_000
    } else {
        50_000_000
    };
    let chunk = n / 20;
    let ones = ndarray::Array1::<f64>::from_elem(n, 1.5);
    let x = accel::from_ndarray(&ones, chunk);
    let y = accel::from_ndarray(&ones, chunk);
    let z = accel::from_ndarray(&ones, chunk);
    let t = accel::from_ndarray(&ones.mapv(|v| v as f32), chunk);
    let mut inc = x.clone();
    for _ in 0..25 {
        inc = inc + 1.0;
    }
    let cases: Vec<(&str, accel::Array, usize)> = vec![
        ("mag", (x.powi(2) + y.powi(2)).sqrt(), 24),
        ("discriminant", y.powi(2) - 4.0 * &x * &z, 32),
        (
            "harmonic",
            (t * (2.0 * std::f64::consts::PI * 5.0 * 1e-3)).sin(),
            8,
        ),
        ("inc25", inc, 16),
    ];
    // The same chains as plain Rust loops: where one cannot reach the
    // memory's speed (its arithmetic bounds it), it is the kernel's ceiling.
    let hand = accel_bench::hand_fused_gbps(n, o.repeats.max(3));
    for (name, expr, bytes) in cases {
        if o.only
            .as_ref()
            .is_some_and(|v| !v.iter().any(|x| x == name))
        {
            continue;
        }
        match accel_bench::kernel_gbps(o.repeats.max(3), &expr, bytes) {
            Ok((g, tasks)) => {
                let hand_gbps = hand.iter().find(|(h, _)| *h == name).map(|&(_, h)| h);
                eprintln!(
                    "accel-suite: {name} kernel {g:.1} GB/s (hand-fused Rust loop {:.1})",
                    hand_gbps.unwrap_or(f64::NAN)
                );
                records.push(Json::Obj(vec![
                    ("workload".into(), "kernel".into()),
                    ("kernel_of".into(), name.into()),
                    (
                        "case".into(),
                        format!("{name}: fused kernel, n={n:.0e}, {bytes} B/element in memory")
                            .into(),
                    ),
                    ("size".into(), o.size.clone().into()),
                    ("runner".into(), "accel-kernel".into()),
                    ("status".into(), "ok".into()),
                    ("gbps".into(), g.into()),
                    ("pct_of_triad".into(), (100.0 * g / triad).into()),
                    ("hand_gbps".into(), hand_gbps.map_or(Json::Null, Json::from)),
                    ("tasks".into(), tasks.into()),
                ]))
            }
            Err(e) => records.push(failure(
                "kernel",
                &o.size,
                "accel-kernel",
                format!("{name}: {e:#}"),
            )),
        }
    }
}

/// Zero-work tasks: `(arange(n, chunk 1) + 1).sum()` — n fused tasks plus a
/// combine tree, each doing nothing worth measuring.
fn overhead(o: &Options, client: &Client, runner: &str) -> anyhow::Result<Json> {
    let n = if o.size == "small" { 1_000 } else { 10_000 };
    let expr = (arange(n, 1).astype(DType::F64) + 1.0).sum();
    let tasks = expr.plan()?.tasks();
    let want = (n as f64) * (n as f64 + 1.0) / 2.0;
    let mut times = Vec::new();
    for k in 0..=o.repeats.max(3) {
        let t = Instant::now();
        let v = client.compute::<f64>(&expr)?[[]];
        anyhow::ensure!(v == want, "zero-work sum is {v}, not {want}");
        if k > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(Json::Obj(vec![
        ("workload".into(), "task-overhead".into()),
        ("case".into(), format!("{tasks} zero-work tasks").into()),
        ("size".into(), o.size.clone().into()),
        ("runner".into(), runner.into()),
        ("status".into(), "ok".into()),
        ("median_s".into(), median.into()),
        (
            "times_s".into(),
            Json::List(times.iter().map(|&t| t.into()).collect()),
        ),
        ("tasks".into(), tasks.into()),
        ("per_task_us".into(), (median * 1e6 / tasks as f64).into()),
        ("check".into(), "exact sum".into()),
        ("error".into(), Json::Null),
    ]))
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("cannot create {}", o.out))?;
    let mut records = Vec::new();

    let n = if o.size == "small" {
        4_000_000
    } else {
        50_000_000
    };
    let gbps = accel_bench::triad_gbps(n, 5);
    eprintln!("accel-suite: triad {gbps:.1} GB/s");
    records.push(Json::Obj(vec![
        ("workload".into(), "triad".into()),
        ("case".into(), format!("n={n:.0e} f64, a = b + s*c").into()),
        ("size".into(), o.size.clone().into()),
        ("runner".into(), "rust".into()),
        ("status".into(), "ok".into()),
        ("gbps".into(), gbps.into()),
        ("threads".into(), rayon::current_num_threads().into()),
    ]));

    kernels(&o, gbps, &mut records);
    workloads(
        &o,
        Client::local().with_progress(false),
        "accel-embedded",
        &mut records,
    );
    matmul(
        &o,
        &Client::local().with_progress(false),
        "accel-embedded",
        &mut records,
    );
    zarr(
        &o,
        &Client::local().with_progress(false),
        "accel-embedded",
        &mut records,
    );
    receive(
        &o,
        &Client::local().with_progress(false),
        "accel-embedded",
        &mut records,
    );
    gpu(&o, &mut records);
    if o.selected("overhead") {
        match overhead(&o, &Client::local().with_progress(false), "accel-embedded") {
            Ok(r) => records.push(r),
            Err(e) => records.push(failure(
                "task-overhead",
                &o.size,
                "accel-embedded",
                format!("{e:#}"),
            )),
        }
    }

    if o.cluster {
        cluster_rows(&o, &mut records);
    }

    let mut text = String::new();
    Json::Obj(vec![("records".into(), Json::List(records))]).render(&mut text);
    if let Some(dir) = o.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&o.json, text + "\n")
        .with_context(|| format!("cannot write {}", o.json.display()))?;
    eprintln!("accel-suite: wrote {}", o.json.display());
    Ok(())
}

/// The workloads, matmul, storage and task overhead on a loopback cluster
/// (scheduler + 2 single-threaded workers), and its startup time.
fn cluster_rows(o: &Options, records: &mut Vec<Json>) {
    let t = Instant::now();
    let quiet = accel_e2e::Options {
        log: "info".into(),
        ..Default::default()
    };
    match accel_e2e::Cluster::start_with(2, quiet).and_then(|c| Ok((c.client()?, c))) {
        Ok((client, cluster)) => {
            let startup = t.elapsed().as_secs_f64();
            if o.selected("overhead") {
                records.push(Json::Obj(vec![
                    ("workload".into(), "cluster-startup".into()),
                    (
                        "case".into(),
                        "scheduler + 2 workers (1 thread each)".into(),
                    ),
                    ("size".into(), o.size.clone().into()),
                    ("runner".into(), "accel-distributed".into()),
                    ("status".into(), "ok".into()),
                    ("median_s".into(), startup.into()),
                    ("setup_s".into(), startup.into()),
                ]));
            }
            workloads(o, client.clone(), "accel-distributed", records);
            // Both workers attached before matmul and the storage runs (the work is theirs).
            if let Err(e) = cluster.wait_for_workers(2) {
                eprintln!("accel-suite: {e:#}");
            }
            matmul(o, &client, "accel-distributed", records);
            zarr(o, &client, "accel-distributed", records);
            receive(o, &client, "accel-distributed", records);
            if o.selected("overhead") {
                match overhead(o, &client, "accel-distributed") {
                    Ok(r) => records.push(r),
                    Err(e) => records.push(failure(
                        "task-overhead",
                        &o.size,
                        "accel-distributed",
                        format!("{e:#}"),
                    )),
                }
            }
            drop(cluster);
        }
        Err(e) => records.push(failure(
            "all",
            &o.size,
            "accel-distributed",
            format!("{e:#}"),
        )),
    }
}
