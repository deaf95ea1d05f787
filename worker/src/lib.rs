//! accel-worker: attaches to a scheduler, runs assigned tasks on a rayon pool
//! (tokio never blocks on compute), keeps their chunks in memory, fetches
//! missing inputs from peers concurrently and serves its chunks in frames.
//!
//! A worker outlives its scheduler connection: when the scheduler goes away
//! (or declares this worker dead), it drops every chunk and plan and keeps
//! trying to attach again, with backoff, for `death_timeout`. Asked to stop
//! (SIGTERM), it first hands its chunks to peers.

pub mod alloc;
pub mod cli;
mod execute;
mod fault;
pub mod fetch;
pub mod memory;
pub mod metrics;
mod session;
mod spill;
mod store;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use accel_core::blocks::{BlockInfo, Blocks, Functions};
use execute::Shared;
pub use fault::Faults;
pub use ndarray;
use session::End;
pub use store::Store;

/// Everything that can stop a worker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the scheduler at {address}: {message}")]
    Unreachable { address: String, message: String },
    #[error("the scheduler refused this worker: {0}")]
    Refused(String),
    #[error("cannot listen on {address}: {message}")]
    Listen { address: String, message: String },
    #[error("transport: {0}")]
    Transport(String),
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `http://host:port` of the scheduler.
    pub scheduler: String,
    pub nthreads: usize,
    pub name: String,
    /// Where to serve chunks (port 0: any free port).
    pub listen: SocketAddr,
    pub heartbeat: Duration,
    /// How long to keep trying to (re)attach to an unreachable scheduler.
    pub death_timeout: Duration,
    /// Longest wait for the scheduler to take this worker's chunks when stopping.
    pub retire_timeout: Duration,
    /// Testing only: fault injection for the resilience tests.
    pub faults: Faults,
    /// The memory limit, spilling and pausing.
    pub memory: memory::MemoryConfig,
    /// The `map_blocks` functions this worker offers, by name.
    pub functions: Functions,
    /// The token presented to the scheduler, if it asks for one.
    pub token: Option<accel_proto::auth::Secret>,
    /// TLS towards the scheduler, peers and clients, and on this worker's
    /// data plane.
    pub tls: Option<accel_proto::tls::Tls>,
    /// Where to serve `/metrics` and `/health` (none: not served).
    pub metrics: Option<SocketAddr>,
    /// The token `/metrics` asks for (none: open).
    pub metrics_token: Option<accel_proto::auth::Secret>,
    /// The address peers and clients fetch this worker's chunks from, when
    /// it is not the one it listens on (NAT, containers); `None`: the
    /// listening address, an unspecified IP (`0.0.0.0`) replaced by the
    /// interface's that reaches the scheduler.
    pub advertise: Option<String>,
    /// Resources it offers (`GPU=1`), advertised to the scheduler.
    pub resources: Vec<(String, f64)>,
    /// The GPU fused elementwise kernels run on (advertised as `GPU=1`
    /// unless `resources` names GPUs itself).
    pub gpu: Option<Arc<accel_gpu::Offloader>>,
}

impl Config {
    /// A worker of `nthreads` threads for the scheduler at `scheduler`, with
    /// the defaults of the `accel-worker` binary.
    pub fn new(scheduler: &str, nthreads: usize) -> Config {
        Config {
            scheduler: scheduler.to_string(),
            nthreads,
            name: "worker".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            heartbeat: Duration::from_secs(1),
            death_timeout: Duration::from_secs(60),
            retire_timeout: Duration::from_secs(30),
            faults: Faults::default(),
            memory: memory::MemoryConfig::default(),
            functions: Functions::default(),
            token: None,
            tls: None,
            metrics: None,
            metrics_token: None,
            advertise: None,
            resources: Vec::new(),
            gpu: None,
        }
    }
}

/// The TLS settings for a cluster whose scheduler is at `scheduler`: TLS
/// exactly when the URL is `https://`, with the files given.
pub fn tls_for(
    scheduler: &str,
    files: accel_proto::tls::TlsFiles,
) -> Result<Option<accel_proto::tls::Tls>, String> {
    let https = scheduler.starts_with("https://");
    let tls = accel_proto::tls::Tls::load(&files)?;
    match (https, tls) {
        (true, Some(t)) => Ok(Some(t)),
        (true, None) => Err(format!(
            "{scheduler} uses TLS: give the cluster's CA (--tls-ca or ACCEL_TLS_CA)"
        )),
        (false, Some(_)) => Err(format!(
            "TLS files are given but {scheduler} is not an https:// URL"
        )),
        (false, None) => Ok(None),
    }
}

/// The local address a packet to the scheduler would leave from (no packet is sent).
pub fn facing_ip(scheduler: &str) -> Option<IpAddr> {
    let hostport = scheduler.split("://").nth(1)?.split('/').next()?;
    let target = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .ok()?
        .next()?;
    let sock = std::net::UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip())
}

/// The data address the scheduler hands to peers and clients.
fn advertised(config: &Config, local: SocketAddr) -> String {
    if let Some(a) = &config.advertise {
        return a.clone();
    }
    if local.ip().is_unspecified() {
        // Listening everywhere: 0.0.0.0 means "this machine" to whoever
        // connects to it, so say which interface instead.
        if let Some(ip) = facing_ip(&config.scheduler)
            && ip.is_ipv4() == local.is_ipv4()
        {
            return SocketAddr::new(ip, local.port()).to_string();
        }
    }
    local.to_string()
}

/// Runs blocking work (disk reads) without stalling the other async tasks.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// First wait before attaching again; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Runs the worker until it is retired after `shutdown` resolves, or until
/// the scheduler stayed unreachable for `death_timeout`.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Listen {
            address: config.listen.to_string(),
            message: e.to_string(),
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Transport(e.to_string()))?;
    let address = advertised(&config, local);
    let store = Arc::new(Store::new(config.memory.local_directory.clone()));
    let working = Arc::new(AtomicUsize::new(0));
    let busy: memory::Busy = {
        let working = working.clone();
        Arc::new(move || working.load(std::sync::atomic::Ordering::Relaxed) > 0)
    };
    let (_memory, paused) = memory::start(store.clone(), &config.memory, busy);
    let shared = Arc::new(Shared {
        store,
        paused,
        peers: Arc::new({
            let peers = fetch::Peers::default().with_tls(config.tls.clone());
            if let Some(limit) = config.memory.limit {
                peers.set_max_chunk_bytes(limit);
            }
            peers
        }),
        pool: Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(config.nthreads.max(1))
                .thread_name(|i| format!("accel-worker-{i}"))
                .build()
                .map_err(|e| Error::Transport(e.to_string()))?,
        ),
        serving: Arc::new(AtomicUsize::new(0)),
        faults: config.faults.clone(),
        client_fetches: tokio::sync::Semaphore::new(execute::CLIENT_FETCHES),
        active: tokio::sync::Semaphore::new(config.nthreads.max(1) * execute::ACTIVE_PER_THREAD),
        working,
        functions: config.functions.clone(),
        data_key: Arc::default(),
        counters: Arc::default(),
        gpu: config.gpu.clone(),
    });
    let served = Arc::new(metrics::Tally::default());
    let metrics_server = match config.metrics {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Listen {
                    address: addr.to_string(),
                    message: e.to_string(),
                })?;
            tracing::info!(address = %l.local_addr().map_err(|e| Error::Transport(e.to_string()))?, "metrics");
            let app = metrics::router(
                config.metrics_token.clone(),
                config.name.clone(),
                shared.store.clone(),
                shared.counters.clone(),
                shared.gpu.clone(),
                shared.peers.fetched.clone(),
                served.clone(),
            );
            Some(tokio::spawn(async move {
                let _ = axum::serve(l, app).await;
            }))
        }
        None => None,
    };
    let service = fetch::Service {
        source: Arc::new(fetch::StoreChunks {
            store: shared.store.clone(),
            key: shared.data_key.clone(),
        }),
        serving: shared.serving.clone(),
        tls: config.tls.as_ref().and_then(|t| t.acceptor()),
        served,
    };
    let (server_stop, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service.serve(listener, async {
        let _ = server_stopped.await;
    }));
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let result = attach_until_done(&config, &shared, &address, stop).await;
    let _ = server_stop.send(());
    let _ = server.await;
    if let Some(m) = metrics_server {
        m.abort();
    }
    result
}

/// Attaches, and attaches again whenever the session is lost, until the
/// worker is retired or the scheduler stays unreachable too long.
async fn attach_until_done(
    config: &Config,
    shared: &Arc<Shared>,
    address: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut down_since = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let why = match session::attach(config, shared.clone(), address, stop.clone()).await {
            Ok(End::Goodbye) => return Ok(()),
            Ok(End::Lost(why)) => {
                let (chunks, plans) = (shared.store.len(), shared.store.plan_count());
                shared.store.reset();
                shared.peers.clear();
                shared.data_key.set(None);
                tracing::warn!(
                    chunks,
                    plans,
                    "{why}: dropped every chunk and plan; attaching again"
                );
                down_since = Instant::now();
                backoff = FIRST_BACKOFF;
                why
            }
            Err(Error::Unreachable { message, .. }) => message,
            Err(e) => return Err(e),
        };
        if *stop.borrow() {
            return Ok(()); // Nothing to hand over while detached.
        }
        let waited = down_since.elapsed();
        if waited >= config.death_timeout {
            return Err(Error::Unreachable {
                address: config.scheduler.clone(),
                message: format!(
                    "{why} (gave up after {:.1}s, the death timeout)",
                    waited.as_secs_f64()
                ),
            });
        }
        tracing::debug!(?backoff, "scheduler unreachable: {why}");
        let pause = backoff.min(config.death_timeout - waited);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_listening_everywhere_advertises_the_interface_facing_the_scheduler() {
        let mut config = Config::new("http://127.0.0.1:8786", 1);
        let everywhere = SocketAddr::from(([0, 0, 0, 0], 9000));
        assert_eq!(advertised(&config, everywhere), "127.0.0.1:9000");
        let one = SocketAddr::from(([127, 0, 0, 1], 9001));
        assert_eq!(advertised(&config, one), "127.0.0.1:9001");
        config.advertise = Some("node7.example:30000".into());
        assert_eq!(advertised(&config, everywhere), "node7.example:30000");
    }
}
