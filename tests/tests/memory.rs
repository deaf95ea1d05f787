//! Workers under a memory limit: a job whose intermediates are about three
//! times the workers' memory completes with the right result while their
//! resident memory stays under the limit plus a margin (chunks spill to disk
//! and come back); a plan whose task cannot fit is refused at submission.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accel::{Client, DType, from_owned};
use accel_e2e::{Cluster, Options};

const LIMIT_MB: u64 = 200;
/// What a worker may hold beyond its limit: the chunks of the tasks it runs
/// and fetches (16 MB each here) before the memory thread reacts.
const MARGIN_MB: u64 = 100;

fn limited(n: usize) -> Cluster {
    let cluster = Cluster::start_with(
        n,
        Options {
            worker_args: vec!["--memory-limit".into(), format!("{LIMIT_MB}MiB")],
            ..Options::default()
        },
    )
    .unwrap();
    cluster.wait_for_workers(n).unwrap();
    cluster
}

#[test]
fn intermediates_three_times_the_workers_memory_spill_and_the_result_is_right() {
    let cluster = limited(2);
    let remote = cluster.client().unwrap();
    // 1.2 GB of source chunks, all held until the mean is known.
    let n: usize = 150_000_000;
    let data = ndarray::Array1::from_iter((0..n).map(|i| (i % 1000) as f64 * 0.5));
    let x = from_owned(data, 2_000_000);
    let y = &x * 2.0;
    let z = (&y - &y.mean()).powi(2).sum();
    // Watch the workers' memory while the job runs.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(Mutex::new(0u64));
    let pids: Vec<u32> = cluster.workers.iter().map(|w| w.id()).collect();
    let watcher = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                for pid in &pids {
                    if let Some(rss) = rss_of(*pid) {
                        let mut p = peak.lock().unwrap();
                        *p = (*p).max(rss);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let got = remote.compute::<f64>(&z).unwrap()[[]];
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    // The same plan embedded: the same bits. (Mean 499.5, so the exact value is known too.)
    assert_eq!(got, Client::local().compute::<f64>(&z).unwrap()[[]]);
    let per_value: f64 = (0..1000).map(|k| (k as f64 - 499.5).powi(2)).sum::<f64>() / 1000.0;
    assert!((got - per_value * n as f64).abs() < 1e-9 * got, "{got}");
    let peak = *peak.lock().unwrap() >> 20;
    eprintln!("workers' peak resident memory: {peak} MB (limit {LIMIT_MB} MB)");
    assert!(
        peak < LIMIT_MB + MARGIN_MB,
        "{peak} MB with a limit of {LIMIT_MB} MB"
    );
    let spilled = (0..2).any(|k| cluster.worker_log(k).contains("spilled to disk"));
    assert!(
        spilled,
        "the job fitted without spilling: it does not test anything"
    );
}

#[test]
fn a_plan_whose_task_cannot_fit_is_refused_at_submission() {
    let cluster = limited(2);
    let remote = cluster.client().unwrap();
    let big = accel::zeros(&[50 << 20], DType::F64, vec![50 << 20]) + 1.0;
    // 400 MB chunks to materialize (a sum of them would need no memory at all).
    let err = remote.compute::<f64>(&big).unwrap_err().to_string();
    assert!(
        err.contains("the plan cannot fit")
            && err.contains("any worker's memory limit (200.0 MiB)")
            && err.contains("chunks of about"),
        "{err}"
    );
    let fits = accel::zeros(&[50 << 20], DType::F64, vec![2 << 20]) + 1.0;
    assert_eq!(
        remote.compute::<f64>(&fits.sum()).unwrap()[[]],
        (50 << 20) as f64
    );
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}
