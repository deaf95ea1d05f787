//! The gRPC adapter: handlers turn requests into events for one task that owns
//! the [`Core`]; the core's commands are routed back to worker and client streams.

mod observe;
mod router;
mod service;
mod web;
mod web_guard;

pub use observe::Snapshot;
pub use web::prometheus;

pub use service::worker_events;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use accel_proto::auth::{Gate, Role};
use accel_proto::pb;
use accel_proto::pb::job_control_server::JobControlServer;
use accel_proto::pb::jobs_server::JobsServer;
use accel_proto::pb::workers_server::WorkersServer;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::service::interceptor::InterceptedService;

use crate::core::{ClientId, Command, Core, CoreConfig, Event, JobId, WorkerId};
use router::{ClientTx, Router, WorkerTx};
use service::Service;

/// Why the scheduler could not serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Setup(String),
}

/// Tuning of the adapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Tokens workers and clients must present (none: anyone may connect).
    pub tokens: accel_proto::auth::Tokens,
    /// The token the dashboard, `/metrics` and the JSON API ask for (none:
    /// open to whoever reaches them).
    pub dashboard_token: Option<accel_proto::auth::Secret>,
    /// TLS for every connection (mutual with a CA).
    pub tls: Option<accel_proto::tls::Tls>,
    /// A connection that has not finished its handshake by then is closed.
    pub handshake_timeout: Duration,
    /// Stop after this long without a job (Dask's `--idle-timeout`).
    pub idle_timeout: Option<Duration>,
    /// A worker silent for this long is removed (and told to start afresh if
    /// it comes back).
    pub heartbeat_timeout: Duration,
    /// Largest message accepted (plans carry their source data).
    pub max_message_bytes: usize,
    /// Tasks queued on each worker beyond two per thread.
    pub queue_depth: usize,
    /// A task running on this many workers that died fails its job.
    pub allowed_failures: u32,
    /// Large root tasks are sent only to workers with fewer tasks than
    /// this per thread (Dask's worker saturation); infinity: no limit.
    pub worker_saturation: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tokens: Default::default(),
            dashboard_token: None,
            tls: None,
            handshake_timeout: accel_proto::incoming::HANDSHAKE,
            idle_timeout: None,
            heartbeat_timeout: Duration::from_secs(10),
            max_message_bytes: accel_proto::MAX_MESSAGE_BYTES,
            queue_depth: 64,
            allowed_failures: 3,
            worker_saturation: 1.1,
        }
    }
}

enum Input {
    Event(Event),
    /// Periodic wake-up for the heartbeat and disconnect checks.
    Tick,
    Attached {
        worker: WorkerId,
        address: String,
        tx: WorkerTx,
        /// Resources it offers (shown; GPU placement will use them).
        resources: Vec<(String, f64)>,
    },
    Heartbeat(WorkerId),
    /// The worker's stream ended (it exited, was killed, or lost the connection).
    Closed(WorkerId),
    Job {
        job: JobId,
        plan: Arc<accel_core::Plan>,
        wire: pb::Plan,
        tx: ClientTx,
    },
    /// Time to tell clients how far their jobs got.
    Progress,
    /// What a worker holds, from its heartbeat.
    Stats(WorkerId, pb::WorkerStats),
    /// The scheduler is stopping: every stream is closed, so connections end.
    Stop,
    /// The dashboard asks what the cluster is doing.
    Snapshot(tokio::sync::oneshot::Sender<Arc<observe::Snapshot>>),
}

/// The task that owns the core: applies inputs in batches, schedules once
/// per batch, routes the commands.
struct Loop {
    core: Core,
    router: Router,
    timeout: Duration,
    observer: observe::Observer,
    /// When the last job ended (or the scheduler started), for the idle timeout.
    idle_since: Option<Instant>,
    /// The progress last sent to each job's client.
    progress_sent: std::collections::HashMap<JobId, usize>,
    /// How long the last batch's commands took to send (the loop heard
    /// nothing meanwhile).
    sending: Duration,
}

impl Loop {
    fn apply(&mut self, input: Input, cmds: &mut Vec<Command>) {
        match input {
            Input::Event(e) => {
                self.observer.event(&e, &self.core);
                cmds.extend(self.core.handle(e));
            }
            Input::Snapshot(reply) => {
                let workers = self
                    .router
                    .workers
                    .iter()
                    .map(|(w, (address, _))| {
                        let seen = self.router.last_seen.get(w).copied();
                        (*w, (address.clone(), seen.unwrap_or_else(Instant::now)))
                    })
                    .collect();
                let _ = reply.send(Arc::new(
                    self.observer.snapshot(self.core.status(), &workers),
                ));
            }
            // Not per batch: what the dashboard keeps of workers that left
            // goes a few times a second.
            Input::Tick => {
                let attached = &self.router.workers;
                self.observer.retain_workers(|w| attached.contains_key(&w));
            }
            Input::Stats(worker, stats) => self.observer.stats(worker, stats),
            Input::Stop => {
                self.router.workers.clear();
                self.router.clients.clear();
            }
            Input::Progress => {
                for (job, done, total) in self.core.progress() {
                    if self.progress_sent.get(&job) == Some(&done) {
                        continue;
                    }
                    self.progress_sent.insert(job, done);
                    self.router.progress(job, done as u64, total as u64);
                }
                let live = self
                    .router
                    .clients
                    .keys()
                    .copied()
                    .collect::<std::collections::HashSet<_>>();
                self.progress_sent.retain(|j, _| live.contains(j));
            }
            Input::Attached {
                worker,
                address,
                tx,
                resources,
            } => {
                self.observer.attached(worker, resources);
                self.router.workers.insert(worker, (address, tx));
                self.router.last_seen.insert(worker, Instant::now());
            }
            Input::Heartbeat(w) => {
                if let Some(t) = self.router.last_seen.get_mut(&w) {
                    *t = Instant::now();
                }
            }
            Input::Closed(worker) => {
                self.router.remove_worker(worker);
                cmds.extend(self.core.handle(Event::WorkerLost { worker }));
            }
            Input::Job {
                job,
                plan,
                wire,
                tx,
            } => {
                self.router.clients.insert(job, tx);
                self.router.plans.insert(job, wire);
                self.observer.submitted(job);
                cmds.extend(self.core.handle(Event::JobSubmitted {
                    job,
                    client: ClientId(job.0),
                    plan,
                }));
            }
        }
    }

    /// A batch that kept the loop busy for long (a submission of millions of
    /// tasks) kept it from hearing heartbeats too: that time does not count
    /// as the workers' silence.
    fn forgive_stall(&mut self, busy: Duration) {
        let now = Instant::now();
        for seen in self.router.last_seen.values_mut() {
            *seen = forgiven(*seen, busy, now, self.timeout);
        }
    }

    /// Workers that stopped talking are lost (and told so, should they come
    /// back); jobs whose client went away are cancelled.
    fn check_liveness(&mut self, cmds: &mut Vec<Command>) {
        let now = Instant::now();
        let silent: Vec<WorkerId> = self
            .router
            .last_seen
            .iter()
            .filter(|(_, t)| now - **t > self.timeout)
            .map(|(w, _)| *w)
            .collect();
        for w in silent {
            tracing::warn!(worker = w.0, "no heartbeat: removing worker");
            self.router.restart_worker(
                w,
                format!(
                    "no heartbeat for {:.1}s: the scheduler declared this worker dead",
                    self.timeout.as_secs_f64()
                ),
            );
            cmds.extend(self.core.handle(Event::WorkerLost { worker: w }));
        }
        let gone: Vec<JobId> = self
            .router
            .clients
            .iter()
            .filter(|(_, tx)| tx.is_closed())
            .map(|(j, _)| *j)
            .collect();
        for job in gone {
            self.router.clients.remove(&job);
            cmds.extend(self.core.handle(Event::JobCancelled { job }));
            self.router.forget(job);
        }
    }

    /// Schedules, then delivers; deliveries that failed become events, until
    /// everything is delivered.
    fn flush(&mut self, mut cmds: Vec<Command>) {
        cmds.extend(self.core.schedule());
        // Each round removes a worker or a job, so this ends; the bound
        // keeps a bug from ever freezing the scheduler.
        for _ in 0..10_000 {
            self.observer.commands(&cmds, &self.core);
            let events = self.router.route(std::mem::take(&mut cmds));
            if events.is_empty() {
                return;
            }
            for e in events {
                if let Event::WorkerLost { worker } = e {
                    self.router.remove_worker(worker);
                }
                self.observer.event(&e, &self.core);
                cmds.extend(self.core.handle(e));
            }
            cmds.extend(self.core.schedule());
        }
        tracing::error!("undeliverable commands keep coming back: dropped");
    }
}

/// tonic refuses a message above a service's limit, from its length prefix
/// and before reading it, as OUT_OF_RANGE; accel calls that
/// RESOURCE_EXHAUSTED (the only OUT_OF_RANGE the scheduler produces).
fn too_large_is_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let status = response.headers().get("grpc-status");
    if status.is_some_and(|s| s.as_bytes() == b"11") {
        let code = http::HeaderValue::from(tonic::Code::ResourceExhausted as i32);
        response.headers_mut().insert("grpc-status", code);
    }
    response
}

/// Serves the scheduler on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve_with_dashboard(listener, None, config, shutdown).await
}

/// [`serve`], with the dashboard, `/metrics` and `/health` on `dashboard`.
pub async fn serve_with_dashboard(
    listener: TcpListener,
    dashboard: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (inputs, mut rx) = mpsc::unbounded_channel::<Input>();
    let idle = Arc::new(tokio::sync::Notify::new());
    let idle_timeout = config.idle_timeout;
    let stopped_idle = idle.clone();
    let stopper = inputs.clone();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = stopped_idle.notified() => {}
        }
        // Workers' and clients' streams end, so the server can finish.
        let _ = stopper.send(Input::Stop);
    };
    let http = dashboard.map(|l| {
        let guard = config.dashboard_token.clone().map(web_guard::Guard::new);
        let app = web::router(inputs.clone(), guard);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app).await {
                tracing::error!("dashboard: {e}");
            }
        })
    });
    let service = Service {
        data_key: accel_proto::auth::Secret::random().map_err(Error::Setup)?,
        inputs: inputs.clone(),
        next_job: AtomicU64::new(1),
        next_worker: AtomicU32::new(1),
        heartbeat_timeout: config.heartbeat_timeout,
    };
    let service = Arc::new(service);
    let gate = |role| Gate {
        tokens: config.tokens.clone(),
        role,
    };
    let timeout = config.heartbeat_timeout;
    let progress = inputs.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if progress.send(Input::Progress).is_err() {
                break;
            }
        }
    });
    let ticker = inputs.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(timeout / 4);
        loop {
            tick.tick().await;
            if ticker.send(Input::Tick).is_err() {
                break;
            }
        }
    });
    let core = Core::with_config(CoreConfig {
        queue_depth: config.queue_depth,
        allowed_failures: config.allowed_failures,
        worker_saturation: config.worker_saturation,
    });
    tokio::spawn(async move {
        let mut state = Loop {
            core,
            router: Router::default(),
            timeout,
            observer: observe::Observer::new(),
            idle_since: Some(Instant::now()),
            progress_sent: Default::default(),
            sending: Duration::ZERO,
        };
        while let Some(first) = rx.recv().await {
            if matches!(first, Input::Stop) {
                state.router.workers.clear();
                state.router.clients.clear();
                return;
            }
            // Coalesce: apply everything that is waiting, then schedule once.
            let began = Instant::now();
            let jobs = state.core.job_count();
            let mut cmds = Vec::new();
            state.apply(first, &mut cmds);
            let mut stopping = false;
            while let Ok(more) = rx.try_recv() {
                // Nothing after a stop is taken in: a worker attaching then
                // would hold its stream open, and the server would wait on it.
                if matches!(more, Input::Stop) {
                    stopping = true;
                    break;
                }
                state.apply(more, &mut cmds);
            }
            // Busy since the last check: the previous batch's sending, and this one.
            let busy = std::mem::take(&mut state.sending) + began.elapsed();
            state.forgive_stall(busy);
            state.check_liveness(&mut cmds);
            let sending = Instant::now();
            state.flush(cmds);
            state.sending = sending.elapsed();
            if stopping {
                state.router.workers.clear();
                state.router.clients.clear();
                return;
            }
            state.observer.batch(began.elapsed());
            match (state.core.job_count(), state.idle_since) {
                (0, None) => state.idle_since = Some(Instant::now()),
                (0, Some(since)) => {
                    if idle_timeout.is_some_and(|t| since.elapsed() >= t) {
                        tracing::info!("idle for {:?}: stopping", since.elapsed());
                        idle.notify_one();
                    }
                }
                _ => state.idle_since = None,
            }
            if jobs > 0 && state.core.job_count() == 0 {
                // Idle: the jobs' memory goes back to the system.
                accel_core::memory::release_free_memory();
            }
        }
    });
    let router = tonic::transport::Server::builder()
        // Connections whose peer vanished are noticed and closed.
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(tower::util::MapResponseLayer::new(too_large_is_exhausted))
        .add_service(InterceptedService::new(
            JobsServer::from_arc(service.clone())
                .max_decoding_message_size(config.max_message_bytes)
                .max_encoding_message_size(config.max_message_bytes),
            gate(Role::Client),
        ))
        .add_service(InterceptedService::new(
            JobControlServer::from_arc(service.clone())
                .max_decoding_message_size(accel_proto::MAX_CONTROL_MESSAGE_BYTES),
            gate(Role::Client),
        ))
        .add_service(InterceptedService::new(
            WorkersServer::from_arc(service)
                .max_decoding_message_size(accel_proto::MAX_WORKER_MESSAGE_BYTES)
                // A job's plan goes to its workers with its source data.
                .max_encoding_message_size(config.max_message_bytes),
            gate(Role::Worker),
        ));
    let served = match config.tls.as_ref().and_then(|t| t.acceptor()) {
        Some(acceptor) => {
            let incoming = accel_proto::incoming::tls(listener, config.handshake_timeout, acceptor);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            let incoming = accel_proto::incoming::plain(listener, config.handshake_timeout);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    if let Some(h) = http {
        h.abort();
    }
    served?;
    Ok(())
}

/// When a worker last seen at `seen` counts as heard from, after the loop
/// was busy for `busy` up to `now`: stalls of a quarter of the heartbeat
/// `timeout` or more are not its silence. Short batches count (they add up
/// only while the scheduler is saturated, when a dead worker must still go).
fn forgiven(seen: Instant, busy: Duration, now: Instant, timeout: Duration) -> Instant {
    if busy >= timeout / 4 {
        (seen + busy).min(now)
    } else {
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_stall_of_the_loop_is_not_a_workers_silence() {
        let timeout = Duration::from_secs(10);
        let now = Instant::now() + Duration::from_secs(60);
        let seen = now - Duration::from_secs(12);
        // Busy 11 s: heard from 1 s before the batch ended, at the latest.
        assert_eq!(
            forgiven(seen, Duration::from_secs(11), now, timeout),
            now - Duration::from_secs(1)
        );
        // Never in the future.
        assert_eq!(forgiven(seen, Duration::from_secs(30), now, timeout), now);
        // A short batch changes nothing.
        assert_eq!(forgiven(seen, Duration::from_millis(5), now, timeout), seen);
    }
}
