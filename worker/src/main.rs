//! `accel-worker http://HOST:PORT`: runs tasks for a scheduler.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use anyhow::Context;
use clap::Parser;

/// accel's worker: attaches to a scheduler and runs fused kernels on all cores.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The scheduler, e.g. http://127.0.0.1:8786.
    #[arg(env = "ACCEL_SCHEDULER")]
    scheduler: String,
    /// Compute threads (default: all cores).
    #[arg(long, env = "ACCEL_NTHREADS")]
    nthreads: Option<usize>,
    /// Name shown in logs (default: the host name).
    #[arg(long, env = "ACCEL_NAME")]
    name: Option<String>,
    /// Address to serve chunks on (default: an ephemeral port on the interface that reaches the scheduler).
    #[arg(long, env = "ACCEL_LISTEN")]
    listen: Option<SocketAddr>,
    /// Log level.
    #[arg(long, env = "ACCEL_LOG", default_value = "info")]
    log: String,
}

/// The local address a packet to the scheduler would leave from (no packet is sent).
fn facing_ip(scheduler: &str) -> Option<IpAddr> {
    let hostport = scheduler.split("://").nth(1)?.split('/').next()?;
    let target = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .ok()?
        .next()?;
    let sock = UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let listen = match args.listen {
        Some(a) => a,
        None => SocketAddr::new(
            facing_ip(&args.scheduler).unwrap_or(IpAddr::from([127, 0, 0, 1])),
            0,
        ),
    };
    let name = args.name.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "worker".into())
    });
    let config = accel_worker::Config {
        scheduler: args.scheduler.clone(),
        nthreads: args.nthreads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
        name,
        listen,
        heartbeat: std::time::Duration::from_secs(1),
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    accel_worker::run(config, shutdown)
        .await
        .with_context(|| format!("worker for {}", args.scheduler))?;
    Ok(())
}
