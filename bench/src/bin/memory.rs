//! Memory: how fast a worker spills chunks to disk and reads them back, and
//! a reduction over a source ten times the cluster's memory with and without
//! root-task pacing (the workers' resident memory sampled while it runs).
//!
//! `cargo build --release -p accel-scheduler -p accel-worker && \
//!  cargo run --release -p accel-bench --bin memory [-- --quick]`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accel::from_owned;
use accel_core::{Buffer, Chunk, ChunkKey, Plan, StageId};
use accel_e2e::{Cluster, Options};
use accel_worker::Store;

fn spill_throughput(chunks: usize, compressible: bool) -> anyhow::Result<(f64, f64)> {
    let store = Store::default();
    let g = store.generation();
    store.add_plan(g, 1, Ok(Arc::new(Plan::default())));
    let n = 2 << 20; // 16 MiB of f64
    for c in 0..chunks {
        let data: Vec<f64> = if compressible {
            (0..n).map(|i| (i % 1000) as f64).collect()
        } else {
            (0..n as u64)
                .map(|i| {
                    f64::from_bits(
                        (i + c as u64 * n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 2,
                    )
                })
                .collect()
        };
        let key = ChunkKey {
            stage: StageId(0),
            chunk: c as u32,
        };
        store.insert(
            g,
            1,
            key,
            Arc::new(Chunk::array(vec![n], Buffer::F64(data))),
        );
    }
    let bytes = (chunks * n * 8) as f64;
    let t = Instant::now();
    while store.spill_one()? > 0 {}
    let spill = bytes / t.elapsed().as_secs_f64() / 1e9;
    // Read back from a cold page cache is what a worker sees after a while;
    // here the files were just written, so this is the warm case.
    let t = Instant::now();
    for c in 0..chunks {
        let key = ChunkKey {
            stage: StageId(0),
            chunk: c as u32,
        };
        anyhow::ensure!(store.get(1, key).is_some(), "chunk {c} did not come back");
    }
    let back = bytes / t.elapsed().as_secs_f64() / 1e9;
    Ok((spill, back))
}

fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            l.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
        * 1024
}

/// (seconds, peak and mean resident MB of the workers, MB spilled)
fn reduction(
    source_mb: usize,
    limit: &str,
    saturation: &str,
) -> anyhow::Result<(f64, f64, f64, f64)> {
    let cluster = Cluster::start_with(
        2,
        Options {
            scheduler_args: vec!["--worker-saturation".into(), saturation.into()],
            worker_args: vec!["--memory-limit".into(), limit.into()],
            ..Options::default()
        },
    )?;
    cluster.wait_for_workers(2)?;
    let client = cluster.client()?;
    let n = source_mb << 17; // f64
    let data = ndarray::Array1::from_iter((0..n).map(|i| (i % 1024) as f64));
    let x = from_owned(data, 1 << 21); // 16 MiB chunks
    let pids: Vec<u32> = cluster.workers.iter().map(|w| w.id()).collect();
    let done = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let watcher = {
        let (done, samples) = (done.clone(), samples.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let total: u64 = pids.iter().map(|&p| rss(p)).max().unwrap_or(0);
                if let Ok(mut s) = samples.lock() {
                    s.push(total);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let t = Instant::now();
    let got = client.compute::<f64>(&(&x * 2.0).sum())?[[]];
    let secs = t.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let want = 2.0 * (n / 1024) as f64 * (1023.0 * 1024.0 / 2.0);
    anyhow::ensure!(got == want, "sum {got}, expected {want}");
    let s = samples
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let peak = s.iter().copied().max().unwrap_or(0) as f64 / 1e6;
    let mean = s.iter().sum::<u64>() as f64 / s.len().max(1) as f64 / 1e6;
    let spilled: f64 = (0..2)
        .flat_map(|k| {
            cluster
                .worker_log(k)
                .lines()
                .filter(|l| l.contains("spilled to disk"))
                .filter_map(|l| {
                    l.split("bytes=")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse::<f64>()
                        .ok()
                })
                .collect::<Vec<_>>()
        })
        .sum::<f64>()
        / 1e6;
    Ok((secs, peak, mean, spilled.max(0.0)))
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let chunks = if quick { 8 } else { 32 };
    println!(
        "spilling {chunks} chunks of 16 MiB to local disk and reading them back (one thread):\n"
    );
    println!("| data | spill GB/s | read back GB/s |");
    println!("|---|---:|---:|");
    for (name, c) in [
        ("random doubles (stored raw)", false),
        ("repetitive (LZ4)", true),
    ] {
        let (s, b) = spill_throughput(chunks, c)?;
        println!("| {name} | {s:.2} | {b:.2} |");
    }
    let (source, limit) = if quick { (400, 40) } else { (2000, 100) };
    println!(
        "\n(x * 2).sum() over a {source} MB source served by the client, 2 workers with {limit} MiB \
         limits ({:.0}× the cluster's memory), largest worker RSS sampled every 10 ms:\n",
        source as f64 / (2 * limit) as f64
    );
    println!("| root tasks | time s | peak RSS MB | mean RSS MB | spilled MB |");
    println!("|---|---:|---:|---:|---:|");
    let mib = format!("{limit}MiB");
    for (name, lim, sat) in [
        ("paced (saturation 1.1)", mib.as_str(), "1.1"),
        ("not paced", mib.as_str(), "inf"),
        ("no memory limit, paced (reference)", "0", "1.1"),
    ] {
        let (t, peak, mean, spilled) = reduction(source, lim, sat)?;
        println!("| {name} | {t:.2} | {peak:.0} | {mean:.0} | {spilled:.0} |");
    }
    Ok(())
}
