//! A local cluster of real `accel-scheduler` and `accel-worker` processes for
//! tests: started on 127.0.0.1 with free ports, stopped (killed) when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The directory holding the workspace's binaries (next to the test executables).
fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .context("no directory for the test executable")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build the workspace binaries first (cargo test --workspace does)",
            path.display()
        );
    }
    Ok(path)
}

pub struct Cluster {
    pub address: String,
    scheduler: Child,
    pub workers: Vec<Child>,
    logs: PathBuf,
}

impl Cluster {
    /// A scheduler and `n` single-threaded workers.
    pub fn start(n: usize) -> anyhow::Result<Cluster> {
        let logs =
            std::env::temp_dir().join(format!("accel-e2e-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&logs)?;
        let mut scheduler = Command::new(bin("accel-scheduler")?)
            .args(["--port", "0", "--heartbeat-timeout", "3"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(logs.join("scheduler.log"))?)
            .spawn()
            .context("starting accel-scheduler")?;
        let stdout = scheduler.stdout.take().context("scheduler stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let address = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("scheduler printed {line:?}"))?
            .to_string();
        let mut cluster = Cluster {
            address,
            scheduler,
            workers: Vec::new(),
            logs,
        };
        for _ in 0..n {
            cluster.add_worker()?;
        }
        Ok(cluster)
    }

    /// Starts one more worker; its log is `worker-K.log`.
    pub fn add_worker(&mut self) -> anyhow::Result<usize> {
        let k = self.workers.len();
        let child = Command::new(bin("accel-worker")?)
            .arg(&self.address)
            .args([
                "--nthreads",
                "1",
                "--name",
                &format!("w{k}"),
                "--log",
                "debug",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log_path(k))?)
            .spawn()
            .context("starting accel-worker")?;
        self.workers.push(child);
        Ok(k)
    }

    pub fn log_path(&self, worker: usize) -> PathBuf {
        self.logs.join(format!("worker-{worker}.log"))
    }

    /// How many task batches worker `k` was assigned so far.
    pub fn assignments(&self, worker: usize) -> usize {
        std::fs::read_to_string(self.log_path(worker))
            .map(|s| s.lines().filter(|l| l.contains("assigned")).count())
            .unwrap_or(0)
    }

    /// Waits (bounded) until `cond` holds.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn() -> bool,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > timeout {
                bail!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Peak resident memory of the scheduler process so far, in bytes (Linux).
    pub fn scheduler_peak_rss(&self) -> Option<u64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.scheduler.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    pub fn kill_worker(&mut self, k: usize) -> anyhow::Result<()> {
        self.workers[k].kill()?;
        self.workers[k].wait()?;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.scheduler.kill();
        let _ = self.scheduler.wait();
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
