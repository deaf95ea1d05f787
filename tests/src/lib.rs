//! A local cluster of real `accel-scheduler` and `accel-worker` processes for
//! tests: started on 127.0.0.1 with free ports, stopped (killed) when dropped.
//! Workers can be killed, frozen, resumed, stopped politely and replaced; the
//! scheduler can be killed and restarted on the same port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A workspace binary (next to the test executables), e.g. `accel-scheduler`.
pub fn program(name: &str) -> anyhow::Result<PathBuf> {
    bin(name)
}

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

/// accel's own debug lines (the tests read them), not the transport's.
pub const LOG: &str = "info,accel_worker=debug,accel_scheduler=debug";

/// A gRPC service client presenting the test client's token.
pub type Authed = tonic::service::interceptor::InterceptedService<
    tonic::transport::Channel,
    accel_proto::auth::Bearer,
>;

/// The scheduler's services, spoken to directly.
pub struct RawScheduler {
    pub jobs: accel_proto::pb::jobs_client::JobsClient<Authed>,
    pub control: accel_proto::pb::job_control_client::JobControlClient<Authed>,
    pub workers: accel_proto::pb::workers_client::WorkersClient<Authed>,
}

/// How a test cluster is secured. The whole end-to-end suite runs under
/// each: `ACCEL_E2E_SECURITY=token` (separate worker and client tokens) or
/// `=mtls` (mutual TLS with certificates from `accel-scheduler --make-certs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    None,
    Token,
    MutualTls,
}

impl Security {
    pub fn from_env() -> Security {
        match std::env::var("ACCEL_E2E_SECURITY").as_deref() {
            Ok("token") => Security::Token,
            Ok("mtls") => Security::MutualTls,
            _ => Security::None,
        }
    }
}

/// How the cluster's processes are started.
#[derive(Clone, Debug)]
pub struct Options {
    /// Tokens, mutual TLS, or neither (default: `ACCEL_E2E_SECURITY`).
    pub security: Security,
    /// Seconds without a heartbeat before the scheduler drops a worker.
    pub heartbeat_timeout: f64,
    /// Extra arguments of the scheduler (e.g. `--allowed-failures 2`).
    pub scheduler_args: Vec<String>,
    /// Extra arguments of every worker (e.g. fault injection).
    pub worker_args: Vec<String>,
    /// The processes' log filter ([`LOG`]: the per-task debug lines tests
    /// read; benchmarks use `info`, which costs nothing per task).
    pub log: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            security: Security::from_env(),
            heartbeat_timeout: 3.0,
            scheduler_args: Vec::new(),
            worker_args: Vec::new(),
            log: LOG.to_string(),
        }
    }
}

pub struct Cluster {
    pub address: String,
    /// `http://host:port` of the scheduler's dashboard, `/metrics` and `/health`.
    pub dashboard: String,
    port: u16,
    scheduler: Child,
    /// Schedulers started so far (their logs are `scheduler-K.log`).
    schedulers: usize,
    pub workers: Vec<Child>,
    logs: PathBuf,
    options: Options,
    /// What every worker presents (tokens, certificates).
    credentials: Vec<String>,
}

/// Signals a process that has not exited (SIGSTOP, SIGCONT, SIGTERM, ...).
fn signal(child: &mut Child, sig: libc::c_int) -> anyhow::Result<()> {
    if child.try_wait()?.is_some() {
        bail!("process {} has exited", child.id());
    }
    let pid = libc::pid_t::try_from(child.id())?;
    // SAFETY: kill(2) on a pid this test started and has not reaped.
    if unsafe { libc::kill(pid, sig) } != 0 {
        bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

impl Cluster {
    /// A scheduler and `n` single-threaded workers.
    pub fn start(n: usize) -> anyhow::Result<Cluster> {
        Cluster::start_with(n, Options::default())
    }

    pub fn start_with(n: usize, options: Options) -> anyhow::Result<Cluster> {
        let logs =
            std::env::temp_dir().join(format!("accel-e2e-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&logs)?;
        let mut options = options;
        let credentials = secure(&logs, &mut options)?;
        let (scheduler, address, dashboard) = spawn_scheduler(&logs, 0, 0, &options)?;
        let port = address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in {address}"))?;
        let mut cluster = Cluster {
            address,
            dashboard,
            port,
            scheduler,
            schedulers: 1,
            workers: Vec::new(),
            logs,
            options,
            credentials,
        };
        for _ in 0..n {
            cluster.add_worker()?;
        }
        Ok(cluster)
    }

    /// A scheduler and `n` single-threaded workers whose tasks of stages
    /// labelled with `label` stall until the returned file exists.
    pub fn start_stalling(n: usize, label: &str) -> anyhow::Result<(Cluster, PathBuf)> {
        let mut cluster = Cluster::start_with(0, Options::default())?;
        let gate = cluster.path("gate");
        let g = gate.display().to_string();
        for _ in 0..n {
            cluster.add_worker_with(&["--fault-stall-on", label, "--fault-gate", &g])?;
        }
        cluster.wait_for_workers(n)?;
        Ok((cluster, gate))
    }

    /// Starts one more worker; its log is `worker-K.log`.
    pub fn add_worker(&mut self) -> anyhow::Result<usize> {
        self.add_worker_with(&[])
    }

    /// Starts one more worker with extra arguments.
    pub fn add_worker_with(&mut self, extra: &[&str]) -> anyhow::Result<usize> {
        self.add_worker_program("accel-worker", extra)
    }

    /// Starts one more worker from `program` (relative to the workspace's
    /// binaries, e.g. `examples/custom_worker`: a worker built with the library).
    pub fn add_worker_program(&mut self, program: &str, extra: &[&str]) -> anyhow::Result<usize> {
        let mut args: Vec<String> = self.options.worker_args.clone();
        args.extend(self.credentials.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        self.spawn_worker(program, &args)
    }

    /// Starts one more worker presenting `credentials` instead of the cluster's.
    pub fn add_worker_as(&mut self, credentials: &[&str]) -> anyhow::Result<usize> {
        let mut args: Vec<String> = self.options.worker_args.clone();
        args.extend(credentials.iter().map(|s| s.to_string()));
        self.spawn_worker("accel-worker", &args)
    }

    fn spawn_worker(&mut self, program: &str, args: &[String]) -> anyhow::Result<usize> {
        let k = self.workers.len();
        let child = Command::new(bin(program)?)
            .arg(&self.address)
            .args([
                "--nthreads",
                "1",
                "--name",
                &format!("w{k}"),
                "--log",
                &self.options.log,
                "--retire-timeout",
                "20",
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log_path(k))?)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        self.workers.push(child);
        Ok(k)
    }

    pub fn log_path(&self, worker: usize) -> PathBuf {
        self.logs.join(format!("worker-{worker}.log"))
    }

    /// The current scheduler's log.
    pub fn scheduler_log(&self) -> String {
        read(
            &self
                .logs
                .join(format!("scheduler-{}.log", self.schedulers - 1)),
        )
    }

    pub fn worker_log(&self, worker: usize) -> String {
        read(&self.log_path(worker))
    }

    /// How many task batches worker `k` was assigned so far.
    pub fn assignments(&self, worker: usize) -> usize {
        self.worker_log(worker)
            .lines()
            .filter(|l| l.contains("assigned"))
            .count()
    }

    /// Workers that attached to the current scheduler so far.
    pub fn joined(&self) -> usize {
        self.scheduler_log()
            .lines()
            .filter(|l| l.contains("worker joined"))
            .count()
    }

    /// Waits (bounded) until `n` workers attached to the current scheduler.
    pub fn wait_for_workers(&self, n: usize) -> anyhow::Result<()> {
        self.wait_for(
            &format!("{n} workers to attach"),
            Duration::from_secs(20),
            || self.joined() >= n,
        )
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
        proc_status_kb(self.scheduler.id(), "VmHWM:").map(|kb| kb * 1024)
    }

    /// Resident memory of the scheduler and of each live worker now, in bytes.
    pub fn rss(&self) -> (Option<u64>, Vec<Option<u64>>) {
        let kb = |pid| proc_status_kb(pid, "VmRSS:").map(|kb| kb * 1024);
        (
            kb(self.scheduler.id()),
            self.workers.iter().map(|w| kb(w.id())).collect(),
        )
    }

    /// kill -9, and reaped.
    pub fn kill_worker(&mut self, k: usize) -> anyhow::Result<()> {
        self.workers[k].kill()?;
        self.workers[k].wait()?;
        Ok(())
    }

    pub fn freeze_worker(&mut self, k: usize) -> anyhow::Result<()> {
        signal(&mut self.workers[k], libc::SIGSTOP)
    }

    pub fn resume_worker(&mut self, k: usize) -> anyhow::Result<()> {
        signal(&mut self.workers[k], libc::SIGCONT)
    }

    /// SIGTERM: the worker hands its chunks over and exits.
    pub fn stop_worker(&mut self, k: usize) -> anyhow::Result<()> {
        signal(&mut self.workers[k], libc::SIGTERM)
    }

    /// The worker's exit status, once it exited (bounded wait).
    pub fn wait_worker_exit(&mut self, k: usize, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.workers[k].try_wait()? {
                return Ok(s);
            }
            if start.elapsed() > timeout {
                bail!("worker {k} did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether worker `k` has exited (it is reaped if so).
    pub fn worker_exited(&mut self, k: usize) -> bool {
        matches!(self.workers[k].try_wait(), Ok(Some(_)))
    }

    /// kill -9 the scheduler.
    pub fn kill_scheduler(&mut self) -> anyhow::Result<()> {
        self.scheduler.kill()?;
        self.scheduler.wait()?;
        Ok(())
    }

    /// Starts a new scheduler on the same port (after [`Cluster::kill_scheduler`]).
    pub fn restart_scheduler(&mut self) -> anyhow::Result<()> {
        let (child, address, dashboard) =
            spawn_scheduler(&self.logs, self.schedulers, self.port, &self.options)?;
        self.dashboard = dashboard;
        if address != self.address {
            bail!(
                "the new scheduler listens on {address}, not {}",
                self.address
            );
        }
        self.scheduler = child;
        self.schedulers += 1;
        Ok(())
    }

    /// A client's credentials for this cluster.
    pub fn security(&self) -> accel::Security {
        match self.options.security {
            Security::None => accel::Security::none(),
            Security::Token => accel::Security::token(read(&self.logs.join("client.token")).trim()),
            Security::MutualTls => {
                let certs = self.logs.join("certs");
                accel::Security::none().with_tls(
                    certs.join("client.pem"),
                    certs.join("client.key"),
                    certs.join("ca.pem"),
                )
            }
        }
    }

    /// The token the dashboard asks for.
    pub fn dashboard_token(&self) -> String {
        let file = match self.options.security {
            Security::Token => "client.token",
            _ => "dashboard.token",
        };
        read(&self.logs.join(file)).trim().to_string()
    }

    /// The token a worker's `/metrics` asks for.
    pub fn worker_metrics_token(&self) -> String {
        let file = match self.options.security {
            Security::Token => "worker.token",
            _ => "metrics.token",
        };
        read(&self.logs.join(file)).trim().to_string()
    }

    /// Where worker `k` (started with `--metrics-port`) serves its metrics,
    /// from its log.
    pub fn worker_metrics_address(&self, k: usize) -> anyhow::Result<String> {
        for _ in 0..200 {
            let found = self
                .worker_log(k)
                .lines()
                .find(|l| l.contains("metrics") && l.contains("address="))
                .and_then(|l| l.split("address=").nth(1))
                .map(|a| a.split_whitespace().next().unwrap_or("").to_string());
            if let Some(a) = found {
                return Ok(a);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("worker {k} never served metrics:\n{}", self.worker_log(k))
    }

    /// The value of the metric `name` (0 if absent) at a worker's metrics
    /// `address`, presenting the token.
    pub fn worker_metric(&self, address: &str, name: &str) -> anyhow::Result<f64> {
        let token = self.worker_metrics_token();
        let (code, body) = http_get_as(address, "/metrics", Some(&token))?;
        if code != 200 {
            bail!("GET {address}/metrics: HTTP {code}: {body}");
        }
        Ok(body
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0))
    }

    /// GETs `path` from the dashboard, presenting its token.
    pub fn dashboard_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get_as(&self.dashboard, path, Some(&self.dashboard_token()))
    }

    /// A link to a dashboard page that logs a browser in (`?token=`).
    pub fn dashboard_link(&self, page: &str) -> String {
        format!("{}{page}?token={}", self.dashboard, self.dashboard_token())
    }

    /// The scheduler's gRPC services with this cluster's client credentials,
    /// for tests that speak the protocol directly.
    pub async fn raw_scheduler(&self) -> anyhow::Result<RawScheduler> {
        let security = self.security();
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.address.clone())?;
        if let Some(tls) = accel_proto::tls::Tls::load(&security.tls).map_err(anyhow::Error::msg)? {
            endpoint = endpoint.tls_config(tls.tonic_client("").map_err(anyhow::Error::msg)?)?;
        }
        let channel = endpoint.connect().await?;
        let bearer = accel_proto::auth::Bearer(security.token);
        use accel_proto::pb::{job_control_client, jobs_client, workers_client};
        Ok(RawScheduler {
            jobs: jobs_client::JobsClient::with_interceptor(channel.clone(), bearer.clone())
                .max_encoding_message_size(usize::MAX),
            control: job_control_client::JobControlClient::with_interceptor(
                channel.clone(),
                bearer.clone(),
            )
            .max_encoding_message_size(usize::MAX),
            workers: workers_client::WorkersClient::with_interceptor(channel, bearer)
                .max_encoding_message_size(usize::MAX),
        })
    }

    /// A client of this cluster, with its credentials.
    pub fn client(&self) -> anyhow::Result<accel::Client> {
        Ok(accel::Client::connect_with(&self.address, &self.security())?.with_progress(false))
    }

    /// How this cluster is secured.
    pub fn security_mode(&self) -> Security {
        self.options.security
    }

    /// The folder of its certificates (mutual TLS).
    pub fn certs(&self) -> PathBuf {
        self.logs.join("certs")
    }

    /// A scratch path in the cluster's folder (removed with the cluster).
    pub fn path(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }
}

/// Writes the credentials `options.security` asks for into `logs`, adds the
/// scheduler's to its arguments and returns the workers'.
fn secure(logs: &Path, options: &mut Options) -> anyhow::Result<Vec<String>> {
    let mut worker = Vec::new();
    let arg = |p: PathBuf| p.to_string_lossy().into_owned();
    // The dashboard always asks for a token: the clients' one on a cluster
    // with tokens, one of its own otherwise.
    if options.security != Security::Token {
        std::fs::write(
            logs.join("dashboard.token"),
            format!("d-{}\n", unique_token()),
        )?;
        options.scheduler_args.extend([
            "--dashboard-token-file".into(),
            arg(logs.join("dashboard.token")),
        ]);
    }
    // So does a worker's /metrics: the workers' token on a cluster with
    // tokens, one of its own otherwise.
    if options.security != Security::Token {
        std::fs::write(
            logs.join("metrics.token"),
            format!("m-{}\n", unique_token()),
        )?;
        worker.extend([
            "--metrics-token-file".into(),
            arg(logs.join("metrics.token")),
        ]);
    }
    match options.security {
        Security::None => {}
        Security::Token => {
            std::fs::write(logs.join("worker.token"), format!("w-{}\n", unique_token()))?;
            std::fs::write(logs.join("client.token"), format!("c-{}\n", unique_token()))?;
            options.scheduler_args.extend([
                "--worker-token-file".into(),
                arg(logs.join("worker.token")),
                "--client-token-file".into(),
                arg(logs.join("client.token")),
            ]);
            worker.extend(["--token-file".into(), arg(logs.join("worker.token"))]);
        }
        Security::MutualTls => {
            let certs = logs.join("certs");
            let out = Command::new(bin("accel-scheduler")?)
                .arg("--make-certs")
                .arg(&certs)
                .output()
                .context("accel-scheduler --make-certs")?;
            if !out.status.success() {
                bail!(
                    "--make-certs failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            for (who, args) in [
                ("scheduler", &mut options.scheduler_args),
                ("worker", &mut worker),
            ] {
                args.extend([
                    "--tls-cert".into(),
                    arg(certs.join(format!("{who}.pem"))),
                    "--tls-key".into(),
                    arg(certs.join(format!("{who}.key"))),
                    "--tls-ca".into(),
                    arg(certs.join("ca.pem")),
                ]);
            }
        }
    }
    Ok(worker)
}

/// A token nobody could guess from the test's code.
fn unique_token() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}{}", t, std::process::id(), unique())
}

fn spawn_scheduler(
    logs: &Path,
    k: usize,
    port: u16,
    options: &Options,
) -> anyhow::Result<(Child, String, String)> {
    let mut child = Command::new(bin("accel-scheduler")?)
        .args([
            "--port",
            &port.to_string(),
            "--dashboard-address",
            "127.0.0.1:0",
            "--heartbeat-timeout",
            &options.heartbeat_timeout.to_string(),
            "--log",
            &options.log,
        ])
        .args(&options.scheduler_args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(
            logs.join(format!("scheduler-{k}.log")),
        )?)
        .spawn()
        .context("starting accel-scheduler")?;
    let stdout = child.stdout.take().context("scheduler stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let address = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .with_context(|| format!("scheduler printed {line:?}"))?
        .to_string();
    let dashboard = line
        .split("(dashboard: ")
        .nth(1)
        .and_then(|d| d.split(')').next())
        .and_then(|d| d.strip_suffix("/status"))
        .unwrap_or_default()
        .to_string();
    Ok((child, address, dashboard))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            // A frozen worker must be resumed to die of SIGKILL promptly.
            let _ = signal(&mut *w, libc::SIGCONT);
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.scheduler.kill();
        let _ = self.scheduler.wait();
        // A failing test (or ACCEL_E2E_KEEP_LOGS) keeps the logs to read.
        if std::thread::panicking() || std::env::var_os("ACCEL_E2E_KEEP_LOGS").is_some() {
            eprintln!("accel e2e logs kept in {}", self.logs.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.logs);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A submission of `plan` as a client sends it (for tests that speak the
/// protocol directly).
pub fn submission(plan: &accel_core::Plan) -> accel_proto::pb::SubmitRequest {
    accel_proto::pb::SubmitRequest {
        hello: Some(accel_proto::pb::Hello {
            protocol_version: accel_proto::PROTOCOL_VERSION,
            peer: "test".into(),
        }),
        plan: Some(accel_proto::convert::plan_to(plan)),
        persisted_keys: Vec::new(),
    }
}

/// A plain HTTP/1.1 GET of `path` from `address` (`host:port`, or an
/// `http://` URL): the status code and the body.
pub fn http_get(address: &str, path: &str) -> anyhow::Result<(u16, String)> {
    http_get_as(address, path, None)
}

/// [`http_get`] presenting `token` as `Authorization: Bearer`.
pub fn http_get_as(
    address: &str,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    use std::io::{Read, Write};
    let host = address.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(host)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    c.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").context("no HTTP header")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    Ok((code, body.to_string()))
}

/// Waits (bounded) for `child` to exit.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> anyhow::Result<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if start.elapsed() > timeout {
            bail!("process {} still running after {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A small deterministic generator (SplitMix64) for tests that make random
/// choices from a seed: which worker to kill, which event comes next.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}
