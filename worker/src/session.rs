//! One registration with a scheduler: attach, follow its messages, report,
//! heartbeat; ends when the scheduler goes away, declares this worker dead,
//! or lets it go after a retirement.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use accel_proto::PROTOCOL_VERSION;
use accel_proto::auth::Secret;
use accel_proto::convert::{plan_from, task_from};
use accel_proto::pb::workers_client::WorkersClient;
use accel_proto::pb::{self, scheduler_message, worker_message};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::execute::{Report, Session, Shared, execute, replicate, start_local};
use crate::{Config, Error};

/// How a session ended.
pub(crate) enum End {
    /// Retired (the scheduler said goodbye, or retiring took too long).
    Goodbye,
    /// The scheduler is gone or declared this worker dead: start afresh.
    Lost(String),
}

/// Longest wait, after the goodbye, for peers still fetching from this worker.
const DRAIN: Duration = Duration::from_secs(2);

fn unreachable(config: &Config, message: impl Into<String>) -> Error {
    Error::Unreachable {
        address: config.scheduler.clone(),
        message: message.into(),
    }
}

/// Connects, registers and serves the scheduler until the session ends.
/// `stop` turning true starts a retirement.
pub(crate) async fn attach(
    config: &Config,
    shared: Arc<Shared>,
    address: &str,
    stop: watch::Receiver<bool>,
) -> Result<End, Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(config.scheduler.clone())
        .map_err(|e| unreachable(config, e.to_string()))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        // A scheduler whose host vanished is noticed without a FIN.
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    let endpoint = match &config.tls {
        Some(tls) => {
            let host = endpoint.uri().host().unwrap_or("").to_string();
            let c = tls
                .tonic_client(&host)
                .map_err(|e| Error::Refused(format!("TLS: {e}")))?;
            endpoint
                .tls_config(c)
                .map_err(|e| Error::Refused(format!("TLS: {e}")))?
        }
        None => endpoint,
    };
    let channel = tokio::time::timeout(Duration::from_secs(5), endpoint.connect())
        .await
        .map_err(|_| unreachable(config, "timed out"))?
        .map_err(|e| unreachable(config, e.to_string()))?;
    let mut client = WorkersClient::new(channel)
        .max_decoding_message_size(accel_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(accel_proto::MAX_WORKER_MESSAGE_BYTES);
    let (out_tx, out_rx) = mpsc::channel::<pb::WorkerMessage>(1024);
    let register = pb::WorkerMessage {
        msg: Some(worker_message::Msg::Register(pb::Register {
            hello: Some(pb::Hello {
                protocol_version: PROTOCOL_VERSION,
                peer: config.name.clone(),
            }),
            name: config.name.clone(),
            nthreads: config.nthreads as u32,
            address: address.to_string(),
            memory_limit: config.memory.limit.unwrap_or(0),
            functions: config.functions.names(),
            resources: advertised(config).into_iter().collect(),
        })),
    };
    let _ = out_tx.send(register).await;
    let mut request = tonic::Request::new(ReceiverStream::new(out_rx));
    if let Some(token) = &config.token {
        token
            .attach(request.metadata_mut())
            .map_err(|e| Error::Refused(format!("--token-file: {e}")))?;
    }
    let inbound = client
        .attach(request)
        .await
        .map_err(|s| match s.code() {
            // Retrying cannot fix these.
            tonic::Code::FailedPrecondition
            | tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied => Error::Refused(s.message().to_string()),
            _ => unreachable(config, s.message()),
        })?
        .into_inner();
    tracing::info!(%address, scheduler = %config.scheduler, "worker attached");
    let (reports, reports_rx) = mpsc::unbounded_channel();
    let session = Arc::new(Session {
        generation: shared.store.generation(),
        shared,
        queued: Default::default(),
        started: Default::default(),
        reports,
    });
    let reporter = tokio::spawn(report(session.clone(), reports_rx, out_tx.clone()));
    let heartbeat = tokio::spawn(heartbeat(
        out_tx.clone(),
        config.heartbeat,
        session.shared.store.clone(),
    ));
    let pauses = tokio::spawn(forward_pauses(
        session.shared.paused.clone(),
        out_tx.clone(),
    ));
    let end = follow(config, &session, inbound, out_tx, stop).await;
    reporter.abort();
    heartbeat.abort();
    pauses.abort();
    end
}

/// Tells the scheduler when memory goes above or back under the pause limit.
async fn forward_pauses(mut paused: watch::Receiver<bool>, out: mpsc::Sender<pb::WorkerMessage>) {
    let mut told = false;
    loop {
        let now = *paused.borrow_and_update();
        if now != told {
            let msg = pb::WorkerMessage {
                msg: Some(worker_message::Msg::Paused(now)),
            };
            if out.send(msg).await.is_err() {
                return;
            }
            told = now;
        }
        if paused.changed().await.is_err() {
            return;
        }
    }
}

/// Follows the scheduler's messages until the session ends.
async fn follow(
    config: &Config,
    session: &Arc<Session>,
    mut inbound: Streaming<pb::SchedulerMessage>,
    out: mpsc::Sender<pb::WorkerMessage>,
    mut stop: watch::Receiver<bool>,
) -> Result<End, Error> {
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            msg = inbound.message() => {
                let msg = match msg {
                    Ok(Some(m)) => m,
                    Ok(None) => return Ok(End::Lost("the scheduler closed the connection".into())),
                    Err(s) => return Ok(End::Lost(format!("lost the scheduler: {}", s.message()))),
                };
                if let Some(end) = handle(session, msg, &out).await? {
                    return Ok(end);
                }
            }
            _ = stop.wait_for(|s| *s), if deadline.is_none() => {
                tracing::info!("stopping: handing chunks to peers before leaving");
                let retire = pb::WorkerMessage { msg: Some(worker_message::Msg::Retire(true)) };
                if out.send(retire).await.is_err() {
                    return Ok(End::Goodbye);
                }
                deadline = Some(tokio::time::Instant::now() + config.retire_timeout);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                tracing::warn!("the scheduler did not release this worker in time: leaving anyway");
                return Ok(End::Goodbye);
            }
        }
    }
}

/// Applies one scheduler message; `Some` ends the session.
async fn handle(
    session: &Arc<Session>,
    msg: pb::SchedulerMessage,
    out: &mpsc::Sender<pb::WorkerMessage>,
) -> Result<Option<End>, Error> {
    let shared = &session.shared;
    let Some(msg) = msg.msg else {
        return Ok(None);
    };
    match msg {
        scheduler_message::Msg::Welcome(w) => {
            tracing::info!(id = w.worker, "welcomed");
            shared
                .data_key
                .set((!w.data_key.is_empty()).then(|| Secret::from_bytes(w.data_key)));
            if w.stall_timeout_ms > 0 {
                shared
                    .peers
                    .set_stall(Duration::from_millis(w.stall_timeout_ms));
            }
        }
        scheduler_message::Msg::Refused(why) => return Err(Error::Refused(why)),
        scheduler_message::Msg::Plan(p) => {
            let plan = match p.plan.map(plan_from) {
                Some(Ok(mut plan)) => {
                    // Unknown names stay unbound: such a task fails, naming the function.
                    let missing = plan.bind_functions(&shared.functions);
                    if !missing.is_empty() {
                        tracing::warn!(
                            job = p.job,
                            ?missing,
                            "plan calls functions this worker lacks"
                        );
                    }
                    Ok(Arc::new(plan))
                }
                Some(Err(e)) => Err(e.to_string()),
                None => Err("plan message without a plan".into()),
            };
            if let Err(e) = &plan {
                tracing::error!(job = p.job, "unusable plan: {e}");
            }
            shared.store.add_plan(session.generation, p.job, plan);
        }
        scheduler_message::Msg::Steal(batch) => {
            let mut reply = pb::StealReply {
                id: batch.id,
                ..Default::default()
            };
            for t in batch.tasks {
                let Ok((job, key)) = task_from(Some(&t)) else {
                    continue;
                };
                if session.dequeue(job, key) {
                    reply.stolen.push(t)
                } else {
                    reply.refused.push(t)
                }
            }
            let msg = pb::WorkerMessage {
                msg: Some(worker_message::Msg::Steal(reply)),
            };
            let _ = out.send(msg).await;
        }
        scheduler_message::Msg::Assign(batch) => {
            tracing::debug!(tasks = batch.tasks.len(), "assigned");
            for a in batch.tasks {
                let Ok((job, key)) = task_from(a.task.as_ref()) else {
                    continue;
                };
                session.enqueue(job, key);
                if !start_local(session, job, key, &a.inputs) {
                    tokio::spawn(execute(session.clone(), job, key, a.inputs));
                }
            }
        }
        scheduler_message::Msg::Release(batch) => {
            let keys: Vec<_> = batch
                .chunks
                .iter()
                .filter_map(|t| task_from(Some(t)).ok())
                .collect();
            // Spilled chunks' files are deleted, and large or very many
            // chunks freed, in a blocking section (this thread hands the
            // runtime to another); a few small chunks in memory go at once
            // (the hand-over would cost more than freeing them). One spilled
            // since this check costs a file deletion here.
            if shared.store.removal_may_block(&keys) {
                crate::blocking(|| shared.store.remove_all(&keys));
            } else {
                shared.store.remove_all(&keys);
            }
        }
        scheduler_message::Msg::Replicate(batch) => {
            tracing::debug!(
                chunks = batch.chunks.len(),
                "copying chunks from a retiring peer"
            );
            tokio::spawn(replicate(session.clone(), batch));
        }
        scheduler_message::Msg::Forget(job) => {
            crate::blocking(|| shared.store.forget(job));
            session.forget(job);
            let plans = shared.store.plan_count();
            if plans == 0 {
                // Idle: the job's memory goes back to the system.
                accel_core::memory::release_free_memory();
            }
            tracing::debug!(job, chunks = shared.store.len(), plans, "job forgotten");
        }
        scheduler_message::Msg::Restart(why) => return Ok(Some(End::Lost(why))),
        scheduler_message::Msg::Goodbye(_) => {
            // Peers may still be fetching chunks that just moved away.
            let start = Instant::now();
            while shared.serving.load(Ordering::SeqCst) > 0 && start.elapsed() < DRAIN {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tracing::info!("retired: every needed chunk is with a peer");
            return Ok(Some(End::Goodbye));
        }
    }
    Ok(None)
}

async fn heartbeat(
    out: mpsc::Sender<pb::WorkerMessage>,
    period: Duration,
    store: Arc<crate::Store>,
) {
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        // GPU-made chunks read back since count as host memory (the memory
        // manager does this each tick, but runs only under a limit).
        store.settle();
        let u = store.usage();
        let msg = pb::WorkerMessage {
            msg: Some(worker_message::Msg::Stats(pb::WorkerStats {
                bytes_in_memory: u.in_memory,
                bytes_spilled: u.on_disk,
                chunks: u.chunks as u64,
            })),
        };
        if out.send(msg).await.is_err() {
            break;
        }
    }
}

/// A task that started and finished since the last report is reported
/// finished only: the scheduler has nothing to do with its start.
fn drop_started_and_finished(batch: &mut pb::FinishedBatch) {
    if batch.started.is_empty() || batch.tasks.is_empty() {
        return;
    }
    let id = |t: &pb::TaskId| (t.job, t.stage, t.chunk);
    let finished: std::collections::HashSet<_> = batch
        .tasks
        .iter()
        .filter_map(|f| f.task.as_ref().map(id))
        .collect();
    batch.started.retain(|t| !finished.contains(&id(t)));
}

/// How long a task's start may go untold when nothing else is reported.
const STARTS_TOLD_WITHIN: Duration = Duration::from_millis(100);

/// Sends reports in batches: every start and finish since the last message
/// in one message, then anything else. Starts wake nobody: they go with the
/// next report, or within [`STARTS_TOLD_WITHIN`] when there is none.
async fn report(
    session: Arc<Session>,
    mut rx: mpsc::UnboundedReceiver<Report>,
    tx: mpsc::Sender<pb::WorkerMessage>,
) {
    let mut tick = tokio::time::interval(STARTS_TOLD_WITHIN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let first = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => Some(r),
                None => return,
            },
            _ = tick.tick() => None,
        };
        let mut batch = pb::FinishedBatch::default();
        let mut others = Vec::new();
        let mut push = |r: Report| match r {
            Report::Finished(f) => batch.tasks.push(f),
            Report::Other(m) => others.push(m),
        };
        if let Some(first) = first {
            push(first);
        }
        while let Ok(r) = rx.try_recv() {
            push(r);
        }
        // Taken after the finishes: a task noted started before it finished
        // is in this batch if its finish is.
        batch.started = session.take_started();
        drop_started_and_finished(&mut batch);
        if !batch.tasks.is_empty() || !batch.started.is_empty() {
            others.insert(0, worker_message::Msg::Finished(batch));
        }
        if others.is_empty() {
            continue;
        }
        tracing::debug!(messages = others.len(), "reporting");
        for m in others {
            if tx.send(pb::WorkerMessage { msg: Some(m) }).await.is_err() {
                return;
            }
        }
    }
}

/// The resources a worker offers: `--resources`, plus `GPU=1` for the GPU
/// it opened (unless `--resources` counts GPUs itself).
fn advertised(config: &Config) -> Vec<(String, f64)> {
    let mut r = config.resources.clone();
    if config.gpu.is_some() && !r.iter().any(|(name, _)| name == "GPU") {
        r.push(("GPU".into(), 1.0));
    }
    r
}
