//! Soak: many jobs, each carrying a large source array, on a scheduler and
//! two workers (real processes on loopback). Prints the resident memory of
//! every process after 1, 10, 100, ... jobs: it must stay flat, because a
//! job's plan and chunks leave every process when the job ends.
//!
//! `cargo build --release -p accel-scheduler -p accel-worker && \
//!  cargo run --release -p accel-bench --bin soak [-- --jobs 1000 --mib 100]`

use std::time::{Duration, Instant};

use accel_e2e::Cluster;

fn arg(name: &str, default: usize) -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

fn own_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn mb(b: Option<u64>) -> String {
    b.map_or("n/a".into(), |b| format!("{:.0}", b as f64 / 1e6))
}

fn main() -> anyhow::Result<()> {
    let jobs = arg("--jobs", 1000)?;
    let mib = arg("--mib", 100)?;
    let n = (mib << 20) / 8;
    let src = ndarray::Array1::from_iter((0..n).map(|i| (i % 1000) as f64));
    let base: f64 = src.sum();
    let cluster = Cluster::start(2)?;
    cluster.wait_for_workers(2)?;
    let client = cluster.client()?;
    println!(
        "soak: {jobs} jobs, each with a {mib} MiB source (from_ndarray, 8 chunks), \
         (x * k + 1).sum() on a scheduler and 2 workers\n"
    );
    println!(
        "| after job | scheduler RSS MB | worker 1 RSS MB | worker 2 RSS MB | client RSS MB | s/job (last span) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut checkpoint = 1;
    let mut span = Instant::now();
    let mut since = 0;
    for job in 1..=jobs {
        let k = (job % 7) as f64 + 1.0;
        let x = accel::from_ndarray(&src, n.div_ceil(8));
        let got = client.compute::<f64>(&(x * k + 1.0).sum())?[[]];
        let want = k * base + n as f64;
        anyhow::ensure!(got == want, "job {job}: sum {got}, expected {want}");
        if job == checkpoint || job == jobs {
            // Workers drop a job's plan when told; give the message a moment.
            std::thread::sleep(Duration::from_millis(300));
            let (sched, workers) = cluster.rss();
            let per_job = span.elapsed().as_secs_f64() / (job - since) as f64;
            println!(
                "| {job} | {} | {} | {} | {} | {per_job:.2} |",
                mb(sched),
                mb(workers.first().copied().flatten()),
                mb(workers.get(1).copied().flatten()),
                mb(own_rss()),
            );
            checkpoint *= 10;
            span = Instant::now();
            since = job;
        }
    }
    Ok(())
}
