//! A 4 GiB `from_ndarray` source on a cluster (served by the client, box by
//! box): too big for the test suite's time and memory budget, so it is run
//! by hand: `cargo test --release -p accel-e2e --test big_source -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::Instant;

use accel::from_owned;
use accel_e2e::Cluster;

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kb / 1024.0
}

#[test]
#[ignore = "4 GiB of memory and a minute of time: run by hand"]
fn a_4_gib_source_runs_on_a_cluster() {
    let cluster = Cluster::start(2).unwrap();
    cluster.wait_for_workers(2).unwrap();
    let remote = cluster.client().unwrap();
    let n: usize = 512 << 20; // 4 GiB of f64
    let data = ndarray::Array1::from_iter((0..n).map(|i| (i % 4096) as f64));
    let before = rss_mb();
    let x = from_owned(data, n / 64);
    let t = Instant::now();
    let got = remote.compute::<f64>(&(&x * 0.5).sum()).unwrap()[[]];
    let want = 0.5 * (n / 4096) as f64 * (4095.0 * 4096.0 / 2.0);
    assert_eq!(got, want);
    eprintln!(
        "4 GiB source: {:.1} s; client peak RSS {before:.0} MB with the data ready, {:.0} MB after",
        t.elapsed().as_secs_f64(),
        rss_mb()
    );
}
