//! Scheduling overhead: a graph of N zero-work tasks (tiny chunks of a fused
//! elementwise + sum), embedded and on a 2-worker loopback cluster.
//!
//! `cargo run --release -p accel-bench --bin overhead [-- --quick]`

use std::time::Instant;

use accel::{Client, DType, arange};
use accel_proto::convert::plan_to;
use prost::Message;

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[100_000, 1_000_000]
    };
    let cluster = accel_e2e::Cluster::start(2)?;
    let remote = cluster.client()?;
    println!("zero-work tasks: (arange(N, chunk 1) + 1).sum(), best of 3\n");
    println!(
        "| N | tasks | submission bytes | embedded µs/task | embedded tasks/s | 2 workers µs/task | 2 workers tasks/s | scheduler peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
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
        let rss = cluster
            .scheduler_peak_rss()
            .map_or("n/a".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
        println!("{row} {rss} |");
    }
    Ok(())
}
