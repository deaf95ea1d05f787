//! Scheduling overhead: a graph of N zero-work tasks (tiny chunks of a fused
//! elementwise + sum), embedded and on a 2-worker loopback cluster.
//!
//! The cluster runs twice: alone, and with a dashboard open (a poller
//! fetching `/api/status` and `/metrics` ten times a second, more than a
//! browser does), to show what watching costs.
//!
//! `cargo run --release -p accel-bench --bin overhead [-- --quick] [--embedded | --cluster]`
//! (`--embedded`: the in-process runtime only, no cluster; `--cluster`: the
//! cluster only, no dashboard; both for profiling).

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use accel::{Client, DType, arange};
use accel_proto::convert::plan_to;
use prost::Message;

/// Fetches the dashboard's JSON and metrics every 100 ms until `stop`;
/// counts the requests answered.
fn poll_dashboard(base: String, token: String, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>) {
    let host = base.trim_start_matches("http://").to_string();
    while !stop.load(Ordering::Relaxed) {
        for path in ["/api/status", "/metrics"] {
            if let Ok(mut c) = std::net::TcpStream::connect(&host) {
                let _ = write!(
                    c,
                    "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                     Connection: close\r\n\r\n"
                );
                let mut body = Vec::new();
                if c.read_to_end(&mut body).is_ok() && body.starts_with(b"HTTP/1.1 200") {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One client's rows alone (embedded, or a 2-worker cluster), nothing else
/// to profile.
fn one_client(quick: bool, cluster: bool) -> anyhow::Result<()> {
    let n = if quick { 100_000 } else { 1_000_000 };
    let expr = (arange(n, 1).astype(DType::F64) + 1.0).sum();
    let tasks = expr.plan()?.tasks();
    let started;
    let (client, name) = if cluster {
        let quiet = accel_e2e::Options {
            log: "info".into(),
            ..Default::default()
        };
        let c = accel_e2e::Cluster::start_with(2, quiet)?;
        c.wait_for_workers(2)?;
        let client = c.client()?;
        started = Some(c);
        (client, "2 workers")
    } else {
        started = None;
        (Client::local().with_progress(false), "embedded")
    };
    for _ in 0..3 {
        let t = Instant::now();
        let v = client.compute::<f64>(&expr)?[[]];
        let took = t.elapsed().as_secs_f64();
        anyhow::ensure!(v == (n as f64) * (n as f64 + 1.0) / 2.0, "wrong sum {v}");
        println!(
            "{name}: {tasks} tasks, {:.2} µs/task",
            took * 1e6 / tasks as f64
        );
    }
    drop(started);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--embedded") {
        return one_client(quick, false);
    }
    if std::env::args().any(|a| a == "--cluster") {
        return one_client(quick, true);
    }
    let sizes: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[100_000, 1_000_000]
    };
    // Info-level logs: the tests' per-task debug lines would be measured too.
    let cluster = accel_e2e::Cluster::start_with(
        2,
        accel_e2e::Options {
            log: "info".into(),
            ..Default::default()
        },
    )?;
    let remote = cluster.client()?;
    println!("zero-work tasks: (arange(N, chunk 1) + 1).sum(), best of 3\n");
    println!(
        "| N | tasks | submission bytes | embedded µs/task | embedded tasks/s | 2 workers µs/task | 2 workers tasks/s | 2 workers, dashboard polled µs/task | scheduler peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        let expr = (arange(n, 1).astype(DType::F64) + 1.0).sum();
        let planned = expr.plan()?;
        let tasks = planned.tasks();
        let bytes = plan_to(&planned.plan).encoded_len();
        let want = (n as f64) * (n as f64 + 1.0) / 2.0;
        let mut row = format!("| {n:.0e} | {tasks} | {bytes} |");
        for client in [Client::local().with_progress(false), remote.clone()] {
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let t = Instant::now();
                let v = client.compute::<f64>(&expr)?[[]];
                best = best.min(t.elapsed().as_secs_f64());
                anyhow::ensure!(v == want, "wrong sum {v}");
            }
            row += &format!(
                " {:.2} | {:.0} |",
                best * 1e6 / tasks as f64,
                tasks as f64 / best
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let poller = {
            let (base, token, stop, answered) = (
                cluster.dashboard.clone(),
                cluster.dashboard_token(),
                stop.clone(),
                answered.clone(),
            );
            std::thread::spawn(move || poll_dashboard(base, token, stop, answered))
        };
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            let v = remote.compute::<f64>(&expr)?[[]];
            best = best.min(t.elapsed().as_secs_f64());
            anyhow::ensure!(v == want, "wrong sum {v}");
        }
        stop.store(true, Ordering::Relaxed);
        let _ = poller.join();
        anyhow::ensure!(
            answered.load(Ordering::Relaxed) > 0,
            "the dashboard never answered"
        );
        row += &format!(
            " {:.2} ({} requests) |",
            best * 1e6 / tasks as f64,
            answered.load(Ordering::Relaxed)
        );
        let rss = cluster
            .scheduler_peak_rss()
            .map_or("n/a".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
        println!("{row} {rss} |");
    }
    Ok(())
}
