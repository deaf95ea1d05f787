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
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, env = "ACCEL_LOG", default_value = "info")]
    log: String,
    /// Seconds without a heartbeat after which a worker is removed.
    #[arg(long, env = "ACCEL_HEARTBEAT_TIMEOUT", default_value_t = 10.0)]
    heartbeat_timeout: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("invalid address {}:{}", args.host, args.port))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    println!("accel-scheduler listening on http://{local}");
    let config = accel_scheduler::server::Config {
        heartbeat_timeout: std::time::Duration::from_secs_f64(args.heartbeat_timeout.max(0.1)),
        ..Default::default()
    };
    accel_scheduler::server::serve(listener, config, shutdown_signal()).await?;
    println!("accel-scheduler stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
