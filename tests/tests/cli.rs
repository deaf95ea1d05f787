//! The Dask-style command line on real processes: a scheduler file that
//! workers and clients start from, worker resources and lifetime, a worker's
//! own `/metrics`, and a scheduler that stops when idle.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accel_e2e::program;

/// Kills what it holds when dropped (a failing test leaves nothing running).
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn get(address: &str, path: &str) -> String {
    accel_e2e::http_get(address, path).unwrap().1
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn scheduler_file_resources_lifetime_metrics_and_idle_timeout() {
    let dir = std::env::temp_dir().join(format!("accel-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("scheduler.json");
    let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let mut procs = Reaper(Vec::new());
    // The worker starts first and waits for the file, as under a batch system.
    procs.0.push(
        Command::new(program("accel-worker").unwrap())
            .args([
                "--scheduler-file",
                file.to_str().unwrap(),
                "--nthreads",
                "1",
            ])
            .args([
                "--resources",
                "GPU=1,MEM=2e9",
                "--metrics-port",
                "0",
                "--name",
                "w0",
            ])
            .args(["--log", "info,accel_worker=debug"])
            .stdout(Stdio::null())
            .stderr(log("worker.log"))
            .spawn()
            .unwrap(),
    );
    procs.0.push(
        Command::new(program("accel-scheduler").unwrap())
            .args(["--port", "0", "--dashboard-address", "127.0.0.1:0"])
            .args([
                "--scheduler-file",
                file.to_str().unwrap(),
                "--idle-timeout",
                "3",
            ])
            .stdout(Stdio::null())
            .stderr(log("scheduler.log"))
            .spawn()
            .unwrap(),
    );
    wait_until("the scheduler file", || file.exists());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let dashboard = json["dashboard"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches("/status")
        .to_string();
    wait_until("the worker to join", || {
        read("scheduler.log").contains("worker joined")
    });
    let client = accel::Client::from_scheduler_file(&file)
        .unwrap()
        .with_progress(false);
    let x = accel::arange(100_000, 10_000).astype(accel::DType::F64);
    let y = (&x * 2.0).sum();
    let tasks = accel::Client::local().plan(&[&y]).unwrap().tasks();
    let s = client.compute::<f64>(&y).unwrap()[[]];
    assert_eq!(s, 99_999.0 * 100_000.0);
    // The scheduler shows the worker's resources; the worker counts its work.
    let status: serde_json::Value = serde_json::from_str(&get(&dashboard, "/api/status")).unwrap();
    let resources = &status["workers"][0]["resources"];
    assert_eq!(resources, &serde_json::json!([["GPU", 1.0], ["MEM", 2e9]]));
    let metrics_at = read("worker.log")
        .lines()
        .find(|l| l.contains("metrics"))
        .and_then(|l| l.split("address=").nth(1))
        .map(|a| a.split_whitespace().next().unwrap_or("").to_string())
        .unwrap();
    let metrics = get(&metrics_at, "/metrics");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert_eq!(value("accel_worker_tasks_computed_total") as usize, tasks);
    assert!(value("accel_worker_task_compute_seconds_total") > 0.0);
    assert_eq!(get(&metrics_at, "/health"), "ok\n");
    drop(client);

    // Idle for 3 s: the scheduler stops by itself and removes its file.
    let scheduler = &mut procs.0[1];
    let start = Instant::now();
    let status = loop {
        if let Some(s) = scheduler.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the idle scheduler kept running"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    assert!(!file.exists());
    assert!(read("scheduler.log").contains("idle for"));
    drop(procs);

    // A worker with a lifetime retires by itself, cleanly.
    let mut procs = Reaper(Vec::new());
    procs.0.push(
        Command::new(program("accel-scheduler").unwrap())
            .args([
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                file.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    procs.0.push(
        Command::new(program("accel-worker").unwrap())
            .args([
                "--scheduler-file",
                file.to_str().unwrap(),
                "--lifetime",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(log("short.log"))
            .spawn()
            .unwrap(),
    );
    let worker = &mut procs.0[1];
    let start = Instant::now();
    let status = loop {
        if let Some(s) = worker.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker outlived its lifetime"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{}", read("short.log"));
    assert!(
        read("short.log").contains("lifetime"),
        "{}",
        read("short.log")
    );
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}
