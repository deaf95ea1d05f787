//! Results into the client: how fast a large result comes back from a
//! 2-worker loopback cluster, against the embedded client on the same machine.
//!
//! `cargo build --release -p accel-scheduler -p accel-worker && \
//!  cargo run --release -p accel-bench --bin transfer`

use accel::{Array, Client, DType, arange};

fn best(client: &Client, a: &Array, repeats: usize) -> anyhow::Result<f64> {
    let (times, _) = accel_bench::receive_times(client, a, 0, repeats)?;
    Ok(times.into_iter().fold(f64::INFINITY, f64::min))
}

fn main() -> anyhow::Result<()> {
    let n = 50_000_000;
    let chunk = n / 20;
    // Info-level logs: the tests' per-task debug lines would be measured too.
    let cluster = accel_e2e::Cluster::start_with(
        2,
        accel_e2e::Options {
            log: "info".into(),
            ..Default::default()
        },
    )?;
    cluster.wait_for_workers(2)?;
    let remote = cluster.client()?;
    let local = Client::local().with_progress(false);
    let x = arange(n, chunk).astype(DType::F64);
    let y = arange(n, chunk).astype(DType::F64) * 0.5;
    let cases = [
        ("x (arange as f64)", x.clone()),
        ("mag sqrt(x² + y²)", (x.powi(2) + y.powi(2)).sqrt()),
    ];
    println!(
        "results of {n} f64 ({} MB) in 20 chunks, best of 3\n",
        n * 8 / 1_000_000
    );
    println!("| case | embedded ms | 2 workers ms | into the client GB/s | cluster / embedded |");
    println!("|---|---:|---:|---:|---:|");
    for (name, a) in cases {
        anyhow::ensure!(remote.run(&[&a])?.outputs == local.run(&[&a])?.outputs);
        let e = best(&local, &a, 3)?;
        let d = best(&remote, &a, 3)?;
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} | {:.1}× |",
            e * 1e3,
            d * 1e3,
            (n * 8) as f64 / d / 1e9,
            d / e
        );
    }
    Ok(())
}
