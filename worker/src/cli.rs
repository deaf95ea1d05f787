//! The `accel-worker` command line, as a library function: a worker binary
//! that offers its own `map_blocks` functions is three lines,
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let functions = accel_worker::Functions::new().with("double", |b: &accel_worker::Blocks<'_>| {
//!         b.input::<f64>(0).map(|x| x.mapv(|v| 2.0 * v))
//!     });
//!     accel_worker::cli::main_with(functions)
//! }
//! ```
//!
//! It takes every flag and `ACCEL_*` variable of `accel-worker`, installs the
//! log subscriber (it is the program's `main`) and stops on SIGTERM/SIGINT
//! the same way.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;

use crate::Functions;

/// accel's worker: attaches to a scheduler and runs fused kernels on all cores.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The scheduler, e.g. http://127.0.0.1:8786 (or --scheduler-file).
    #[arg(env = "ACCEL_SCHEDULER", required_unless_present = "scheduler_file")]
    scheduler: Option<String>,
    /// Read the scheduler's address from this file (written by
    /// `accel-scheduler --scheduler-file`), waiting for it up to --death-timeout.
    #[arg(long, env = "ACCEL_SCHEDULER_FILE", conflicts_with = "scheduler")]
    scheduler_file: Option<std::path::PathBuf>,
    /// Retire gracefully (as on SIGTERM) after this many seconds.
    #[arg(long, env = "ACCEL_LIFETIME")]
    lifetime: Option<f64>,
    /// Resources this worker offers, e.g. "GPU=1,MEM=64e9".
    #[arg(long, env = "ACCEL_RESOURCES")]
    resources: Option<String>,
    /// Serve /metrics and /health on this port (of the chunk-serving interface).
    #[arg(long, env = "ACCEL_METRICS_PORT")]
    metrics_port: Option<u16>,
    /// A file holding the token /metrics asks for (first line; default: the
    /// worker's --token-file). /health stays open.
    #[arg(long, env = "ACCEL_METRICS_TOKEN_FILE")]
    metrics_token_file: Option<std::path::PathBuf>,
    /// The GPU fused kernels run on: `auto` (a CUDA device, else the first
    /// hardware Vulkan GPU with 64-bit floats, if any), `none`, `cuda[:N]`,
    /// `software` (Mesa's lavapipe, for tests) or a Vulkan adapter number.
    #[arg(long, env = "ACCEL_GPU", default_value = "auto")]
    gpu: String,
    /// Compute threads (default: all cores).
    #[arg(long, env = "ACCEL_NTHREADS")]
    nthreads: Option<usize>,
    /// Threads for the network (scheduler stream, data plane); the default,
    /// one per 16 cores plus one, keeps them from waking each other for
    /// nothing (every task's messages go through them).
    #[arg(long, env = "ACCEL_IO_THREADS")]
    io_threads: Option<usize>,
    /// Name shown in logs (default: the host name).
    #[arg(long, env = "ACCEL_NAME")]
    name: Option<String>,
    /// Address to serve chunks on (default: an ephemeral port on the interface that reaches the scheduler).
    #[arg(long, env = "ACCEL_LISTEN")]
    listen: Option<SocketAddr>,
    /// The address peers and clients reach this worker's chunks at, HOST:PORT,
    /// when it is not --listen (NAT, containers, port forwarding). Default:
    /// the --listen address; for 0.0.0.0 or ::, the interface that reaches
    /// the scheduler.
    #[arg(long, env = "ACCEL_ADVERTISE", value_parser = parse_advertise)]
    advertise: Option<String>,
    /// Read and write stored arrays (.npy, Zarr) only under this directory
    /// (repeatable; in ACCEL_STORAGE_ROOTS, separated by `:`). Symbolic links
    /// and `..` are resolved first. Default: any path this worker's user can
    /// open, as a client's plan names it.
    #[arg(
        long = "storage-root",
        env = "ACCEL_STORAGE_ROOTS",
        value_delimiter = ':'
    )]
    storage_roots: Vec<std::path::PathBuf>,
    /// Log level.
    #[arg(long, env = "ACCEL_LOG", default_value = "info")]
    log: String,
    /// Seconds to keep trying to reach an unreachable scheduler (at start, or
    /// after losing it) before exiting.
    #[arg(long, env = "ACCEL_DEATH_TIMEOUT", default_value_t = 60.0)]
    death_timeout: f64,
    /// Seconds to wait, when stopped (SIGTERM/SIGINT), for the scheduler to
    /// move this worker's chunks to peers; a second signal exits at once.
    #[arg(long, env = "ACCEL_RETIRE_TIMEOUT", default_value_t = 30.0)]
    retire_timeout: f64,
    /// Memory this worker may use: bytes or with a unit (4GiB, 500MB), `auto`
    /// (the machine's memory times this worker's share of its cores) or 0 (no limit).
    #[arg(long, env = "ACCEL_MEMORY_LIMIT", default_value = "auto")]
    memory_limit: String,
    /// Spill chunks to disk while those in memory exceed this share of the limit.
    #[arg(long, env = "ACCEL_MEMORY_TARGET_FRACTION", default_value_t = 0.6)]
    memory_target_fraction: f64,
    /// Spill chunks while the process's memory exceeds this share of the limit.
    #[arg(long, env = "ACCEL_MEMORY_SPILL_FRACTION", default_value_t = 0.7)]
    memory_spill_fraction: f64,
    /// Start no task and fetch nothing while the process's memory exceeds
    /// this share of the limit.
    #[arg(long, env = "ACCEL_MEMORY_PAUSE_FRACTION", default_value_t = 0.8)]
    memory_pause_fraction: f64,
    /// Where spilled chunks go (default: a fresh temporary folder, removed on exit).
    #[arg(long, env = "ACCEL_LOCAL_DIRECTORY")]
    local_directory: Option<std::path::PathBuf>,
    /// A file holding the token the scheduler asks workers for (first line).
    #[arg(long, env = "ACCEL_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// This worker's TLS certificate (PEM): it proves itself with it to the
    /// scheduler, peers and clients, and serves its chunks over TLS.
    #[arg(long, env = "ACCEL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "ACCEL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// The cluster's CA (PEM): the scheduler's and peers' certificates are
    /// checked against it, and peers must present one (mutual TLS).
    #[arg(long, env = "ACCEL_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// The name server certificates must hold (default: `accel` with a CA).
    #[arg(long, env = "ACCEL_TLS_SERVER_NAME")]
    tls_server_name: Option<String>,
    /// Serve chunks on an interface other than loopback without a token or
    /// TLS, or /metrics there without a token.
    #[arg(long, env = "ACCEL_INSECURE")]
    insecure: bool,
    /// Testing only: abort when a task whose stage label contains TEXT starts.
    #[arg(long, hide = true, value_name = "TEXT")]
    fault_crash_on: Option<String>,
    /// Testing only: stall tasks whose stage label contains TEXT...
    #[arg(long, hide = true, value_name = "TEXT")]
    fault_stall_on: Option<String>,
    /// Testing only: ...until this file exists.
    #[arg(long, hide = true, value_name = "PATH")]
    fault_gate: Option<std::path::PathBuf>,
    /// Testing only: take the GPU for lost when a task whose stage label contains TEXT starts.
    #[arg(long, hide = true, value_name = "TEXT")]
    fault_lose_gpu_on: Option<String>,
}

/// Seconds from the command line: negative (or NaN) is none, and anything
/// past a century (infinity too) is a century, which the clock can still
/// add to the present when the time comes.
fn seconds(s: f64) -> std::time::Duration {
    const CENTURY: f64 = 100.0 * 365.25 * 86_400.0;
    std::time::Duration::from_secs_f64(if s.is_nan() {
        0.0
    } else {
        s.clamp(0.0, CENTURY)
    })
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).ok()
}

/// Waits for the signal; never, if it could not be installed.
async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The token from `--token-file`, else from `ACCEL_TOKEN` (the token itself).
pub fn token(file: Option<&std::path::Path>) -> Result<Option<accel_proto::auth::Secret>, String> {
    match file {
        Some(path) => accel_proto::auth::Secret::from_file(path).map(Some),
        None => Ok(std::env::var("ACCEL_TOKEN")
            .ok()
            .and_then(|t| accel_proto::auth::Secret::from_text(&t))),
    }
}

/// Parses the command line and runs a worker offering `functions` until it
/// is stopped; the exit code says how it ended (errors go to stderr).
pub fn main_with(functions: Functions) -> ExitCode {
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.io_threads.unwrap_or(1 + cores / 16).max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("accel-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_args(args, functions)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accel-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_args(args: Args, functions: Functions) -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: log files stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let scheduler = match (&args.scheduler, &args.scheduler_file) {
        (Some(url), _) => url.clone(),
        (None, Some(path)) => {
            let (path, wait) = (path.clone(), seconds(args.death_timeout));
            tokio::task::spawn_blocking(move || accel_proto::scheduler_file::read(&path, wait))
                .await
                .map_err(|e| e.to_string())??
        }
        (None, None) => return Err("give the scheduler's URL or --scheduler-file".into()),
    };
    let listen = match args.listen {
        Some(a) => a,
        None => SocketAddr::new(
            crate::facing_ip(&scheduler).unwrap_or(IpAddr::from([127, 0, 0, 1])),
            0,
        ),
    };
    let resources = parse_resources(args.resources.as_deref().unwrap_or(""))?;
    let token = token(args.token_file.as_deref())?;
    let tls = crate::tls_for(
        &scheduler,
        accel_proto::tls::TlsFiles {
            cert: args.tls_cert.clone(),
            key: args.tls_key.clone(),
            ca: args.tls_ca.clone(),
            server_name: args.tls_server_name.clone(),
        },
    )?;
    if !listen.ip().is_loopback() && token.is_none() && tls.is_none() {
        if !args.insecure {
            return Err(format!(
                "refusing to serve chunks on {} without a token or TLS (anyone who reaches it \
                 could read them): secure the cluster (--token-file, --tls-*) or pass --insecure",
                listen.ip()
            ));
        }
        tracing::warn!(ip = %listen.ip(), "serving chunks without a token or TLS (--insecure)");
    }
    let metrics_token = match &args.metrics_token_file {
        Some(file) => Some(
            accel_proto::auth::Secret::from_file(file)
                .map_err(|e| format!("--metrics-token-file: {e}"))?,
        ),
        None => token.clone(),
    };
    if args.metrics_port.is_some() && !listen.ip().is_loopback() && metrics_token.is_none() {
        if !args.insecure {
            return Err(format!(
                "refusing to serve /metrics on {} without a token (it shows what this worker \
                 holds and moves): give --metrics-token-file (or --token-file), or pass --insecure",
                listen.ip()
            ));
        }
        tracing::warn!(ip = %listen.ip(), "serving /metrics without a token (--insecure)");
    }
    accel_core::storage::access::confine_to(&args.storage_roots)
        .map_err(|e| format!("--storage-root: {e}"))?;
    if !args.storage_roots.is_empty() {
        tracing::info!(roots = ?args.storage_roots, "stored arrays only under these directories");
    }
    let name = args.name.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "worker".into())
    });
    let nthreads = args.nthreads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let limit = crate::memory::parse_limit(&args.memory_limit, nthreads)
        .map_err(|e| format!("--memory-limit: {e}"))?;
    let memory = crate::memory::MemoryConfig {
        limit,
        target: args.memory_target_fraction,
        spill: args.memory_spill_fraction,
        pause: args.memory_pause_fraction,
        local_directory: args.local_directory,
    };
    let gpu = open_gpu(&args.gpu)?;
    let config = crate::Config {
        gpu,
        memory,
        scheduler: scheduler.clone(),
        nthreads,
        name,
        listen,
        heartbeat: std::time::Duration::from_secs(1),
        death_timeout: seconds(args.death_timeout),
        retire_timeout: seconds(args.retire_timeout),
        faults: crate::Faults {
            crash_on: args.fault_crash_on,
            stall_on: args.fault_stall_on,
            gate: args.fault_gate,
            lose_gpu_on: args.fault_lose_gpu_on,
        },
        functions,
        token,
        tls,
        metrics: args.metrics_port.map(|p| SocketAddr::new(listen.ip(), p)),
        metrics_token,
        advertise: args.advertise,
        resources,
    };
    // The first SIGTERM/SIGINT retires the worker; a second one exits now.
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let mut term = signal(tokio::signal::unix::SignalKind::terminate());
    let mut int = signal(tokio::signal::unix::SignalKind::interrupt());
    tokio::spawn(async move {
        let next = async |term: &mut Option<tokio::signal::unix::Signal>,
                          int: &mut Option<tokio::signal::unix::Signal>| {
            tokio::select! {
                _ = recv(term) => {}
                _ = recv(int) => {}
            }
        };
        next(&mut term, &mut int).await;
        let _ = first_tx.send(());
        next(&mut term, &mut int).await;
        eprintln!("accel-worker: second signal, exiting without handing chunks over");
        std::process::exit(130);
    });
    let lifetime = args.lifetime.map(seconds);
    let shutdown = async move {
        match lifetime {
            Some(t) => {
                tokio::select! {
                    _ = first_rx => {}
                    _ = tokio::time::sleep(t) => tracing::info!("lifetime of {t:?} over: retiring"),
                }
            }
            None => {
                let _ = first_rx.await;
            }
        }
    };
    crate::run(config, shutdown)
        .await
        .map_err(|e| format!("worker for {scheduler}: {e}"))
}

/// Opens the GPU `--gpu` names: an explicit choice that fails is an error;
/// `auto` without a usable GPU runs on the CPU.
fn open_gpu(choice: &str) -> Result<Option<std::sync::Arc<accel_gpu::Offloader>>, String> {
    let choice: accel_gpu::GpuChoice = choice.parse().map_err(|e| format!("--gpu: {e}"))?;
    let opened = match accel_gpu::open(choice) {
        Ok(g) => g,
        Err(e) if choice == accel_gpu::GpuChoice::Auto => {
            tracing::warn!("no GPU: {e}");
            None
        }
        Err(e) => return Err(format!("--gpu: {e}")),
    };
    if let Some(g) = &opened {
        let s = g.summary();
        tracing::info!(gpu = %s.name, index = s.index, backend = %s.backend, "fused kernels run on a GPU");
    }
    Ok(opened)
}

/// `--advertise`: a host (name or IP) and a port.
fn parse_advertise(s: &str) -> Result<String, String> {
    let bad = || format!("{s:?} is not HOST:PORT");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    // An IPv6 address needs its brackets, or its colons run into the port's.
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6,
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !host.is_empty() && !host.contains('/') => Ok(s.to_string()),
        _ => Err(bad()),
    }
}

/// `"GPU=1,MEM=64e9"` → [("GPU", 1.0), ("MEM", 64e9)].
pub fn parse_resources(text: &str) -> Result<Vec<(String, f64)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, amount) = p
                .split_once('=')
                .ok_or_else(|| format!("--resources: {p:?} is not NAME=AMOUNT"))?;
            let amount: f64 = amount
                .trim()
                .parse()
                .map_err(|_| format!("--resources: {amount:?} is not a number"))?;
            if !amount.is_finite() || amount < 0.0 || name.trim().is_empty() {
                return Err(format!(
                    "--resources: {p:?} is not NAME=AMOUNT (AMOUNT ≥ 0)"
                ));
            }
            Ok((name.trim().to_string(), amount))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{parse_advertise, seconds};

    #[test]
    fn any_number_of_seconds_is_a_duration_the_clock_can_add() {
        let now = std::time::Instant::now();
        for s in [1e20, 1e19, f64::INFINITY, f64::MAX] {
            assert!(now.checked_add(seconds(s)).is_some(), "{s}");
            assert!(seconds(s).as_secs() > 3_000_000_000, "{s}");
        }
        assert_eq!(seconds(-5.0), std::time::Duration::ZERO);
        assert_eq!(seconds(f64::NAN), std::time::Duration::ZERO);
        assert_eq!(seconds(2.5), std::time::Duration::from_millis(2500));
    }

    #[test]
    fn advertise_takes_a_host_and_a_port() {
        for ok in ["10.0.0.7:9000", "node7.example:30000", "[::1]:9000"] {
            assert_eq!(parse_advertise(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "10.0.0.7",
            "node7:",
            ":9000",
            "node7:0",
            "node7:70000",
            "http://x/y:1",
        ] {
            assert!(parse_advertise(bad).is_err(), "{bad}");
        }
    }
}
