//! `accel-scheduler`: places chunk tasks on workers.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;

/// accel's scheduler: workers attach to it, clients submit plans to it.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Interface to listen on.
    #[arg(long, env = "ACCEL_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "ACCEL_PORT", default_value_t = 8786)]
    port: u16,
    /// Threads for the network; the default, one per 16 cores plus one,
    /// keeps them from waking each other for nothing (the scheduling core
    /// itself is one task).
    #[arg(long, env = "ACCEL_IO_THREADS")]
    io_threads: Option<usize>,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, env = "ACCEL_LOG", default_value = "info")]
    log: String,
    /// Seconds without a heartbeat after which a worker is removed.
    #[arg(long, env = "ACCEL_HEARTBEAT_TIMEOUT", default_value_t = 10.0)]
    heartbeat_timeout: f64,
    /// A task that was running on this many workers when they died fails its
    /// job (the cluster and other jobs carry on); one given to twice as many
    /// that died before reporting any start does too.
    #[arg(long, env = "ACCEL_ALLOWED_FAILURES", default_value_t = 3)]
    allowed_failures: u32,
    /// Root tasks that make large chunks (reads, sources) are sent to a
    /// worker only while it has fewer than this many tasks per thread, so
    /// data is not produced faster than it is consumed; `inf` turns this off.
    #[arg(long, env = "ACCEL_WORKER_SATURATION", default_value_t = 1.1)]
    worker_saturation: f64,
    /// A file whose first line is the token workers and clients must present
    /// (or the token itself in ACCEL_TOKEN).
    #[arg(long, env = "ACCEL_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// The token workers must present, when it differs from clients' (a
    /// worker token cannot submit jobs, a client token cannot attach).
    #[arg(long, env = "ACCEL_WORKER_TOKEN_FILE")]
    worker_token_file: Option<std::path::PathBuf>,
    /// The token clients must present, when it differs from workers'.
    #[arg(long, env = "ACCEL_CLIENT_TOKEN_FILE")]
    client_token_file: Option<std::path::PathBuf>,
    /// This scheduler's TLS certificate (PEM); clients and workers then use https:// URLs.
    #[arg(long, env = "ACCEL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "ACCEL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// A CA (PEM): workers and clients must present certificates it signed (mutual TLS).
    #[arg(long, env = "ACCEL_TLS_CA", requires = "tls_cert")]
    tls_ca: Option<std::path::PathBuf>,
    /// Listen on an interface other than loopback without a token or TLS
    /// (anyone who reaches the port can run work and read results).
    #[arg(long, env = "ACCEL_INSECURE")]
    insecure: bool,
    /// Where the dashboard, /metrics and /health listen (default: the
    /// scheduler's host, port 8787; port 0 picks a free one).
    #[arg(long, env = "ACCEL_DASHBOARD_ADDRESS")]
    dashboard_address: Option<String>,
    /// No dashboard, /metrics or /health.
    #[arg(long, env = "ACCEL_NO_DASHBOARD")]
    no_dashboard: bool,
    /// A file whose first line is the token the dashboard, /metrics and the
    /// JSON API ask for (default: the clients' token, if any; /health is open).
    #[arg(long, env = "ACCEL_DASHBOARD_TOKEN_FILE")]
    dashboard_token_file: Option<std::path::PathBuf>,
    /// Write the scheduler's address (and the dashboard's) to this file as
    /// JSON, for workers and clients started by a batch system.
    #[arg(long, env = "ACCEL_SCHEDULER_FILE")]
    scheduler_file: Option<std::path::PathBuf>,
    /// Stop after this many seconds without a job.
    #[arg(long, env = "ACCEL_IDLE_TIMEOUT")]
    idle_timeout: Option<f64>,
    /// Seconds a new connection may take to finish its (TLS or HTTP/2) handshake.
    #[arg(long, env = "ACCEL_HANDSHAKE_TIMEOUT", default_value_t = 10.0)]
    handshake_timeout: f64,
    /// Write a new CA and scheduler, worker and client certificates into DIR, then exit.
    #[arg(long, value_name = "DIR")]
    make_certs: Option<std::path::PathBuf>,
    /// With --make-certs: more host names or IP addresses the certificates hold.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    cert_hosts: Vec<String>,
}

/// Writes the quick-start certificates and says how to use them.
fn make_certs(dir: &std::path::Path, hosts: &[String]) -> anyhow::Result<()> {
    let written = accel_proto::tls::make_certs(dir, hosts).map_err(anyhow::Error::msg)?;
    for path in &written {
        println!("wrote {}", path.display());
    }
    let d = dir.display();
    println!(
        "\nscheduler: accel-scheduler --tls-cert {d}/scheduler.pem --tls-key {d}/scheduler.key --tls-ca {d}/ca.pem\n\
         workers:   accel-worker https://SCHEDULER:8786 --tls-cert {d}/worker.pem --tls-key {d}/worker.key --tls-ca {d}/ca.pem\n\
         clients:   ACCEL_TLS_CERT={d}/client.pem ACCEL_TLS_KEY={d}/client.key ACCEL_TLS_CA={d}/ca.pem"
    );
    Ok(())
}

/// The tokens of each role: `--token-file` (or `ACCEL_TOKEN`) for both,
/// overridden per role by `--worker-token-file` and `--client-token-file`.
fn tokens(args: &Args) -> anyhow::Result<accel_proto::auth::Tokens> {
    use accel_proto::auth::Secret;
    let read = |p: &std::path::Path| Secret::from_file(p).map_err(anyhow::Error::msg);
    let shared = match &args.token_file {
        Some(p) => Some(read(p)?),
        None => std::env::var("ACCEL_TOKEN")
            .ok()
            .and_then(|t| Secret::from_text(&t)),
    };
    let worker = args.worker_token_file.as_deref().map(read).transpose()?;
    let client = args.client_token_file.as_deref().map(read).transpose()?;
    let tokens = accel_proto::auth::Tokens {
        worker: worker.or_else(|| shared.clone()),
        client: client.or(shared),
    };
    if let (Some(w), Some(c)) = (&tokens.worker, &tokens.client)
        && args.worker_token_file.is_some()
        && args.client_token_file.is_some()
        && w == c
    {
        anyhow::bail!("the worker and client tokens are the same: roles could not be told apart");
    }
    Ok(tokens)
}

/// Task graphs of a million tasks mean millions of small allocations on
/// several threads; mimalloc keeps them cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.io_threads.unwrap_or(1 + cores / 16).max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: log files stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(dir) = &args.make_certs {
        return make_certs(dir, &args.cert_hosts);
    }
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("invalid address {}:{}", args.host, args.port))?;
    let tokens = tokens(&args)?;
    let tls = accel_proto::tls::Tls::load(&accel_proto::tls::TlsFiles {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
        ca: args.tls_ca.clone(),
        server_name: None,
    })
    .map_err(anyhow::Error::msg)?;
    // A role is open when it needs neither a token nor a certificate:
    // server-only TLS encrypts, but does not say who connects.
    let mutual = tls.as_ref().is_some_and(accel_proto::tls::Tls::is_mutual);
    let open: Vec<&str> = [
        ("workers", tokens.worker.is_none()),
        ("clients", tokens.client.is_none()),
    ]
    .into_iter()
    .filter(|&(_, no_token)| no_token && !mutual)
    .map(|(role, _)| role)
    .collect();
    if !addr.ip().is_loopback() && !open.is_empty() {
        let open = open.join(" and ");
        if !args.insecure {
            anyhow::bail!(
                "refusing to listen on {addr} with {open} unauthenticated: anyone who can reach \
                 it could attach as a worker (and read every job's chunks) or run work. Give \
                 every role a token (--token-file, or --worker-token-file and \
                 --client-token-file) or use mutual TLS (--tls-ca with --tls-cert/--tls-key, \
                 see --make-certs), or pass --insecure"
            );
        }
        tracing::warn!(%addr, "listening with {open} unauthenticated (--insecure): anyone who can reach this port can use the cluster");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let dashboard = if args.no_dashboard {
        None
    } else {
        Some(dashboard_listener(&args).await?)
    };
    let dashboard_token = match &args.dashboard_token_file {
        Some(p) => Some(accel_proto::auth::Secret::from_file(p).map_err(anyhow::Error::msg)?),
        None => tokens.client.clone(),
    };
    if let Some(l) = &dashboard {
        check_dashboard_exposure(l.local_addr()?, dashboard_token.is_some(), args.insecure)?;
    }
    let dashboard_url = match &dashboard {
        Some(l) => Some(format!("http://{}/status", l.local_addr()?)),
        None => None,
    };
    // Handlers are installed before anyone can learn the address.
    let shutdown = shutdown_signal()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{local}");
    if let Some(path) = &args.scheduler_file {
        // Listening on every interface: others reach it by the host's name.
        let reachable = if local.ip().is_unspecified() {
            format!("{scheme}://{}:{}", host_name(), local.port())
        } else {
            url.clone()
        };
        let json = serde_json::json!({ "address": reachable, "dashboard": dashboard_url });
        // Written whole, then renamed: a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{json}\n"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("cannot write the scheduler file {}", path.display()))?;
    }
    match &dashboard_url {
        Some(d) => println!("accel-scheduler listening on {url} (dashboard: {d})"),
        None => println!("accel-scheduler listening on {url}"),
    }
    let config = accel_scheduler::server::Config {
        tokens,
        dashboard_token,
        tls,
        handshake_timeout: seconds(args.handshake_timeout),
        idle_timeout: args.idle_timeout.map(seconds),
        heartbeat_timeout: seconds(args.heartbeat_timeout),
        allowed_failures: args.allowed_failures.max(1),
        worker_saturation: if args.worker_saturation > 0.0 {
            args.worker_saturation
        } else {
            f64::INFINITY
        },
        ..Default::default()
    };
    accel_scheduler::server::serve_with_dashboard(listener, dashboard, config, shutdown).await?;
    if let Some(path) = &args.scheduler_file {
        let _ = std::fs::remove_file(path);
    }
    println!("accel-scheduler stopped");
    Ok(())
}

/// A dashboard on another interface than loopback shows every job and
/// worker to whoever reaches it: it needs a token, or `--insecure`.
fn check_dashboard_exposure(
    addr: SocketAddr,
    has_token: bool,
    insecure: bool,
) -> anyhow::Result<()> {
    if addr.ip().is_loopback() || has_token {
        return Ok(());
    }
    if !insecure {
        anyhow::bail!(
            "refusing to serve the dashboard on {addr} without a token: anyone who reaches it \
             would see every job and worker. Give it one (--dashboard-token-file; a clients' \
             token is used when there is one), serve it on loopback (--dashboard-address \
             127.0.0.1:8787, then an SSH tunnel), turn it off (--no-dashboard), or pass --insecure"
        );
    }
    tracing::warn!(%addr, "serving the dashboard without a token (--insecure)");
    Ok(())
}

/// The dashboard's listener: `--dashboard-address`, else port 8787 of the
/// scheduler's host, or any free port there when 8787 is taken (another
/// scheduler on this machine), as Dask does.
async fn dashboard_listener(args: &Args) -> anyhow::Result<tokio::net::TcpListener> {
    let cannot = |a: &str| {
        format!("the dashboard cannot listen on {a} (--dashboard-address, --no-dashboard)")
    };
    if let Some(a) = &args.dashboard_address {
        return tokio::net::TcpListener::bind(a)
            .await
            .with_context(|| cannot(a));
    }
    let a = format!("{}:8787", args.host);
    match tokio::net::TcpListener::bind(&a).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let any = format!("{}:0", args.host);
            let l = tokio::net::TcpListener::bind(&any)
                .await
                .with_context(|| cannot(&any))?;
            tracing::warn!(
                "port 8787 is in use: the dashboard is on {} instead",
                l.local_addr()?
            );
            Ok(l)
        }
        Err(e) => Err(e).with_context(|| cannot(&a)),
    }
}

/// This machine's host name (what other nodes of a batch job resolve).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A duration of at least 0.1 s from a flag (an infinite one: a day).
fn seconds(s: f64) -> std::time::Duration {
    let s = if s.is_nan() {
        0.1
    } else {
        s.clamp(0.1, 86_400.0)
    };
    std::time::Duration::from_secs_f64(s)
}

/// Resolves on SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
