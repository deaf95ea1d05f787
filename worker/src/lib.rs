//! accel-worker: attaches to a scheduler, runs assigned tasks on a rayon pool
//! (tokio never blocks on compute), keeps their chunks in memory, fetches
//! missing inputs from peers concurrently and serves its chunks in frames.

pub mod fetch;
mod store;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use accel_core::exec::run_task;
use accel_core::{Chunk, ChunkKey, Plan};
use accel_proto::PROTOCOL_VERSION;
use accel_proto::convert::{plan_from, task_from, task_to};
use accel_proto::pb::scheduler_client::SchedulerClient;
use accel_proto::pb::worker_server::WorkerServer;
use accel_proto::pb::{self, scheduler_message, worker_message};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

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
}

/// Runs the worker until the scheduler closes the connection or `shutdown` resolves.
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
    let address = format!("http://{local}");
    let store = Arc::new(Store::default());
    let server_store = store.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .initial_stream_window_size(fetch::STREAM_WINDOW)
            .initial_connection_window_size(fetch::CONNECTION_WINDOW)
            .add_service(WorkerServer::new(fetch::Service {
                store: server_store,
            }))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
    });

    let endpoint = tonic::transport::Endpoint::from_shared(config.scheduler.clone())
        .map_err(|e| Error::Unreachable {
            address: config.scheduler.clone(),
            message: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true);
    let channel = endpoint.connect().await.map_err(|e| Error::Unreachable {
        address: config.scheduler.clone(),
        message: e.to_string(),
    })?;
    let mut client = SchedulerClient::new(channel)
        .max_decoding_message_size(accel_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(accel_proto::MAX_MESSAGE_BYTES);
    let (out_tx, out_rx) = mpsc::channel::<pb::WorkerMessage>(1024);
    let register = pb::WorkerMessage {
        msg: Some(worker_message::Msg::Register(pb::Register {
            hello: Some(pb::Hello {
                protocol_version: PROTOCOL_VERSION,
                peer: config.name.clone(),
            }),
            name: config.name.clone(),
            nthreads: config.nthreads as u32,
            address: address.clone(),
        })),
    };
    let _ = out_tx.send(register).await;
    let mut inbound = client
        .attach(ReceiverStream::new(out_rx))
        .await
        .map_err(|s| {
            if s.code() == tonic::Code::FailedPrecondition {
                Error::Refused(s.message().to_string())
            } else {
                Error::Unreachable {
                    address: config.scheduler.clone(),
                    message: s.message().to_string(),
                }
            }
        })?
        .into_inner();
    tracing::info!(%address, scheduler = %config.scheduler, "worker attached");

    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(config.nthreads.max(1))
            .thread_name(|i| format!("accel-worker-{i}"))
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?,
    );
    let (done_tx, done_rx) = mpsc::unbounded_channel::<worker_message::Msg>();
    tokio::spawn(report(done_rx, out_tx.clone()));
    let heartbeat = out_tx.clone();
    let period = config.heartbeat;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let msg = pb::WorkerMessage {
                msg: Some(worker_message::Msg::Heartbeat(true)),
            };
            if heartbeat.send(msg).await.is_err() {
                break;
            }
        }
    });
    let peers = Arc::new(fetch::Peers::default());
    // Assigned tasks that no thread has started yet: the ones a steal may take back.
    let queued: Arc<std::sync::Mutex<HashSet<(u64, ChunkKey)>>> = Arc::default();
    let run_loop = async {
        loop {
            let msg = match inbound.message().await {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(()),
                Err(s) => return Err(Error::Transport(s.message().to_string())),
            };
            match msg.msg {
                Some(scheduler_message::Msg::Welcome(w)) => {
                    tracing::info!(id = w.worker, "welcomed")
                }
                Some(scheduler_message::Msg::Refused(why)) => return Err(Error::Refused(why)),
                Some(scheduler_message::Msg::Plan(p)) => match p.plan.map(plan_from) {
                    Some(Ok(plan)) => store.add_plan(p.job, Arc::new(plan)),
                    Some(Err(e)) => tracing::error!(job = p.job, "unusable plan: {e}"),
                    None => tracing::error!(job = p.job, "plan message without a plan"),
                },
                Some(scheduler_message::Msg::Steal(batch)) => {
                    let mut reply = pb::StealReply::default();
                    {
                        let mut q = queued
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        for t in batch.chunks {
                            let Ok(id) = task_from(Some(&t)) else {
                                continue;
                            };
                            if q.remove(&id) {
                                reply.stolen.push(t)
                            } else {
                                reply.refused.push(t)
                            }
                        }
                    }
                    let msg = pb::WorkerMessage {
                        msg: Some(worker_message::Msg::Steal(reply)),
                    };
                    let _ = out_tx.send(msg).await;
                }
                Some(scheduler_message::Msg::Assign(batch)) => {
                    tracing::debug!(tasks = batch.tasks.len(), "assigned");
                    for a in batch.tasks {
                        let Ok((job, key)) = task_from(a.task.as_ref()) else {
                            continue;
                        };
                        queued
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert((job, key));
                        let (store, peers, pool, done, queued) = (
                            store.clone(),
                            peers.clone(),
                            pool.clone(),
                            done_tx.clone(),
                            queued.clone(),
                        );
                        tokio::spawn(async move {
                            let task = Some(task_to(job, key));
                            let msg =
                                match execute(&store, &peers, &pool, &queued, job, key, a.inputs)
                                    .await
                                {
                                    Ok(Some(nbytes)) => {
                                        worker_message::Msg::Finished(pb::FinishedBatch {
                                            tasks: vec![pb::FinishedTask { task, nbytes }],
                                        })
                                    }
                                    Ok(None) => return, // stolen before it started
                                    Err(message) => worker_message::Msg::Failed(pb::TaskFailure {
                                        task,
                                        message,
                                    }),
                                };
                            let _ = done.send(msg);
                        });
                    }
                }
                Some(scheduler_message::Msg::Release(batch)) => {
                    for t in &batch.chunks {
                        if let Ok((job, key)) = task_from(Some(t)) {
                            store.remove(job, key);
                        }
                    }
                }
                None => {}
            }
        }
    };
    let result = tokio::select! {
        r = run_loop => r,
        _ = shutdown => Ok(()),
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    result
}

/// Sends finished tasks in batches: everything that completed since the last message.
async fn report(
    mut rx: mpsc::UnboundedReceiver<worker_message::Msg>,
    tx: mpsc::Sender<pb::WorkerMessage>,
) {
    while let Some(first) = rx.recv().await {
        let mut finished = Vec::new();
        let mut others = Vec::new();
        let mut push = |m: worker_message::Msg| match m {
            worker_message::Msg::Finished(b) => finished.extend(b.tasks),
            other => others.push(other),
        };
        push(first);
        while let Ok(m) = rx.try_recv() {
            push(m);
        }
        if !finished.is_empty() {
            others.insert(
                0,
                worker_message::Msg::Finished(pb::FinishedBatch { tasks: finished }),
            );
        }
        tracing::debug!(messages = others.len(), "reporting");
        for m in others {
            if tx.send(pb::WorkerMessage { msg: Some(m) }).await.is_err() {
                return;
            }
        }
    }
}

fn is_queued(queued: &std::sync::Mutex<HashSet<(u64, ChunkKey)>>, job: u64, key: ChunkKey) -> bool {
    queued
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&(job, key))
}

/// Gathers a task's inputs (local or fetched from peers, concurrently), runs it
/// on the pool and keeps its chunk; returns the chunk's size, or None if the
/// task was stolen back before a thread started it.
async fn execute(
    store: &Store,
    peers: &fetch::Peers,
    pool: &rayon::ThreadPool,
    queued: &Arc<std::sync::Mutex<HashSet<(u64, ChunkKey)>>>,
    job: u64,
    key: ChunkKey,
    inputs: Vec<pb::ChunkLocation>,
) -> Result<Option<u64>, String> {
    let plan: Arc<Plan> = store
        .plan(job)
        .ok_or_else(|| format!("no plan for job {job}"))?;
    // Stencil tasks fetch only the halo strips they read from their peers.
    let regions = plan.input_regions(key);
    let fetches = inputs.into_iter().enumerate().map(|(n, loc)| {
        let region = regions.as_ref().and_then(|r| r.get(n).cloned());
        async move {
            let (j, k) = task_from(loc.task.as_ref()).map_err(|e| e.to_string())?;
            match store.get(j, k) {
                Some(c) => Ok(c),
                None => peers.fetch(&loc.address, j, k, region).await,
            }
        }
    });
    let args: Vec<Arc<Chunk>> = match futures::future::try_join_all(fetches).await {
        Ok(a) => a,
        // Given back while fetching: its inputs may be gone, and that is no failure.
        Err(_) if !is_queued(queued, job, key) => return Ok(None),
        Err(e) => return Err(e),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let queued = queued.clone();
    pool.spawn(move || {
        // Starting removes the task from the queue; if it is gone, it was stolen.
        if !queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(job, key))
        {
            let _ = tx.send(None);
            return;
        }
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_task(&plan, key, &args)));
        let _ = tx.send(Some(r));
    });
    let chunk = match rx.await {
        Ok(None) => return Ok(None),
        Ok(Some(Ok(Ok(c)))) => c,
        Ok(Some(Ok(Err(e)))) => return Err(e.to_string()),
        Ok(Some(Err(_))) => return Err("the kernel panicked".into()),
        Err(_) => return Err("the worker pool stopped".into()),
    };
    let nbytes = chunk.nbytes() as u64;
    store.insert(job, key, chunk);
    Ok(Some(nbytes))
}
