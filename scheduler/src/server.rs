//! The gRPC adapter: handlers turn requests into events for one task that owns
//! the [`Core`]; the core's commands are routed back to worker and client streams.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use accel_proto::convert::{plan_from, task_from, task_to};
use accel_proto::pb::scheduler_server::{Scheduler, SchedulerServer};
use accel_proto::pb::{self, job_update, scheduler_message, worker_message};
use accel_proto::{PROTOCOL_VERSION, check_version};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::core::{ClientId, Command, Core, Event, JobId, TaskRef, WorkerId};

/// Tuning of the adapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// A worker silent for this long is removed.
    pub heartbeat_timeout: Duration,
    /// Largest message accepted (plans carry their source data).
    pub max_message_bytes: usize,
    /// Tasks queued on each worker beyond two per thread.
    pub queue_depth: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_timeout: Duration::from_secs(10),
            max_message_bytes: accel_proto::MAX_MESSAGE_BYTES,
            queue_depth: 64,
        }
    }
}

type WorkerTx = mpsc::Sender<Result<pb::SchedulerMessage, Status>>;
type ClientTx = mpsc::Sender<Result<pb::JobUpdate, Status>>;

enum Input {
    Event(Event),
    /// Periodic wake-up for the heartbeat and disconnect checks.
    Tick,
    Attached {
        worker: WorkerId,
        address: String,
        tx: WorkerTx,
    },
    Heartbeat(WorkerId),
    Job {
        job: JobId,
        plan: Arc<accel_core::Plan>,
        wire: pb::Plan,
        tx: ClientTx,
    },
}

struct Service {
    inputs: mpsc::UnboundedSender<Input>,
    next_job: AtomicU64,
    next_worker: AtomicU32,
}

/// A task id from the wire (malformed ids are dropped: the core ignores unknown tasks anyway).
fn task_ref(t: Option<&pb::TaskId>) -> Option<TaskRef> {
    task_from(t).ok().map(|(job, key)| TaskRef {
        job: JobId(job),
        key,
    })
}

fn version_status(theirs: u32) -> Status {
    Status::failed_precondition(format!(
        "protocol version {theirs} is not supported: this scheduler speaks version {PROTOCOL_VERSION}"
    ))
}

#[tonic::async_trait]
impl Scheduler for Service {
    type SubmitStream = ReceiverStream<Result<pb::JobUpdate, Status>>;
    type AttachStream = Pin<Box<dyn Stream<Item = Result<pb::SchedulerMessage, Status>> + Send>>;

    async fn submit(
        &self,
        req: Request<pb::SubmitRequest>,
    ) -> Result<Response<Self::SubmitStream>, Status> {
        let req = req.into_inner();
        let theirs = req.hello.as_ref().map_or(0, |h| h.protocol_version);
        check_version(theirs).map_err(|_| version_status(theirs))?;
        let wire = req
            .plan
            .ok_or_else(|| Status::invalid_argument("submission without a plan"))?;
        let plan = plan_from(wire.clone())
            .map_err(|e| Status::invalid_argument(format!("refused plan: {e}")))?;
        let job = JobId(self.next_job.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(16);
        let _ = tx.try_send(Ok(pb::JobUpdate {
            job: job.0,
            event: Some(job_update::Event::Accepted(true)),
        }));
        self.inputs
            .send(Input::Job {
                job,
                plan: Arc::new(plan),
                wire,
                tx,
            })
            .map_err(|_| Status::unavailable("scheduler is shutting down"))?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn release(
        &self,
        req: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseReply>, Status> {
        let job = JobId(req.into_inner().job);
        let _ = self
            .inputs
            .send(Input::Event(Event::ResultsFetched { job }));
        Ok(Response::new(pb::ReleaseReply {}))
    }

    async fn attach(
        &self,
        req: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("worker sent nothing"))?;
        let Some(worker_message::Msg::Register(reg)) = first.msg else {
            return Err(Status::invalid_argument("a worker must register first"));
        };
        let theirs = reg.hello.as_ref().map_or(0, |h| h.protocol_version);
        check_version(theirs).map_err(|_| version_status(theirs))?;
        let worker = WorkerId(self.next_worker.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(256);
        let _ = tx.try_send(Ok(pb::SchedulerMessage {
            msg: Some(scheduler_message::Msg::Welcome(pb::Welcome {
                worker: worker.0,
            })),
        }));
        tracing::info!(worker = worker.0, name = %reg.name, address = %reg.address, nthreads = reg.nthreads, "worker joined");
        let _ = self.inputs.send(Input::Attached {
            worker,
            address: reg.address.clone(),
            tx,
        });
        let _ = self.inputs.send(Input::Event(Event::WorkerJoined {
            worker,
            nthreads: reg.nthreads.max(1),
        }));
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                let _ = inputs.send(Input::Heartbeat(worker));
                match msg.msg {
                    Some(worker_message::Msg::Finished(batch)) => {
                        tracing::debug!(worker = worker.0, tasks = batch.tasks.len(), "finished");
                        for f in batch.tasks {
                            if let Some(task) = task_ref(f.task.as_ref()) {
                                let _ = inputs.send(Input::Event(Event::TaskFinished {
                                    worker,
                                    task,
                                    nbytes: f.nbytes,
                                }));
                            }
                        }
                    }
                    Some(worker_message::Msg::Steal(reply)) => {
                        let refs = |ids: Vec<pb::TaskId>| -> Vec<TaskRef> {
                            ids.iter().filter_map(|t| task_ref(Some(t))).collect()
                        };
                        let (stolen, refused) = (refs(reply.stolen), refs(reply.refused));
                        let _ = inputs.send(Input::Event(Event::StealReply {
                            worker,
                            stolen,
                            refused,
                        }));
                    }
                    Some(worker_message::Msg::Failed(f)) => {
                        if let Some(task) = task_ref(f.task.as_ref()) {
                            let _ = inputs.send(Input::Event(Event::TaskFailed {
                                worker,
                                task,
                                message: f.message,
                            }));
                        }
                    }
                    _ => {}
                }
            }
            tracing::info!(worker = worker.0, "worker stream closed");
            let _ = inputs.send(Input::Event(Event::WorkerLost { worker }));
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Routes the core's commands to the right streams.
struct Router {
    workers: HashMap<WorkerId, (String, WorkerTx)>,
    last_seen: HashMap<WorkerId, Instant>,
    clients: HashMap<JobId, ClientTx>,
    plans: HashMap<JobId, pb::Plan>,
    sent_plans: HashSet<(WorkerId, JobId)>,
}

impl Router {
    fn location(&self, t: TaskRef, w: WorkerId) -> pb::ChunkLocation {
        pb::ChunkLocation {
            task: Some(task_to(t.job.0, t.key)),
            worker: w.0,
            address: self
                .workers
                .get(&w)
                .map(|(a, _)| a.clone())
                .unwrap_or_default(),
        }
    }

    fn send_worker(&self, w: WorkerId, msg: scheduler_message::Msg) -> bool {
        match self.workers.get(&w) {
            Some((_, tx)) => tx
                .try_send(Ok(pb::SchedulerMessage { msg: Some(msg) }))
                .is_ok(),
            None => false,
        }
    }

    /// Delivers commands; returns events for deliveries that failed.
    fn route(&mut self, cmds: Vec<Command>) -> Vec<Event> {
        let mut events = Vec::new();
        for cmd in cmds {
            match cmd {
                Command::Assign { worker, tasks } => {
                    let mut ok = true;
                    let jobs: HashSet<JobId> = tasks.iter().map(|a| a.task.job).collect();
                    for job in jobs {
                        if self.sent_plans.insert((worker, job))
                            && let Some(plan) = self.plans.get(&job)
                        {
                            ok &= self.send_worker(
                                worker,
                                scheduler_message::Msg::Plan(pb::JobPlan {
                                    job: job.0,
                                    plan: Some(plan.clone()),
                                }),
                            );
                        }
                    }
                    let batch = pb::AssignBatch {
                        tasks: tasks
                            .iter()
                            .map(|a| pb::Assignment {
                                task: Some(task_to(a.task.job.0, a.task.key)),
                                inputs: a
                                    .inputs
                                    .iter()
                                    .map(|(t, w)| self.location(*t, *w))
                                    .collect(),
                            })
                            .collect(),
                    };
                    tracing::debug!(worker = worker.0, tasks = batch.tasks.len(), "assign");
                    ok &= self.send_worker(worker, scheduler_message::Msg::Assign(batch));
                    if !ok {
                        events.push(Event::WorkerLost { worker });
                    }
                }
                Command::Steal { worker, tasks } => {
                    let batch = pb::ReleaseBatch {
                        chunks: tasks.iter().map(|t| task_to(t.job.0, t.key)).collect(),
                    };
                    if !self.send_worker(worker, scheduler_message::Msg::Steal(batch)) {
                        events.push(Event::StealReply {
                            worker,
                            stolen: Vec::new(),
                            refused: tasks,
                        });
                    }
                }
                Command::Release { worker, chunks } => {
                    let batch = pb::ReleaseBatch {
                        chunks: chunks.iter().map(|t| task_to(t.job.0, t.key)).collect(),
                    };
                    self.send_worker(worker, scheduler_message::Msg::Release(batch));
                }
                Command::JobDone { job, outputs, .. } => {
                    tracing::debug!(job = job.0, "job done");
                    let done = pb::JobDone {
                        outputs: outputs
                            .into_iter()
                            .map(|o| pb::OutputChunks {
                                chunks: o.into_iter().map(|(t, w)| self.location(t, w)).collect(),
                            })
                            .collect(),
                    };
                    let sent = self.clients.get(&job).is_some_and(|tx| {
                        tx.try_send(Ok(pb::JobUpdate {
                            job: job.0,
                            event: Some(job_update::Event::Done(done)),
                        }))
                        .is_ok()
                    });
                    if !sent {
                        events.push(Event::JobCancelled { job });
                    }
                }
                Command::JobFailed { job, error, .. } => {
                    if let Some(tx) = self.clients.remove(&job) {
                        let _ = tx.try_send(Ok(pb::JobUpdate {
                            job: job.0,
                            event: Some(job_update::Event::Failed(error)),
                        }));
                    }
                    self.forget(job);
                }
            }
        }
        events
    }

    fn forget(&mut self, job: JobId) {
        self.plans.remove(&job);
        self.sent_plans.retain(|(_, j)| *j != job);
    }
}

/// Serves the scheduler on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (inputs, mut rx) = mpsc::unbounded_channel::<Input>();
    let service = Service {
        inputs: inputs.clone(),
        next_job: AtomicU64::new(1),
        next_worker: AtomicU32::new(1),
    };
    let timeout = config.heartbeat_timeout;
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
    tokio::spawn(async move {
        let mut core = Core::with_queue_depth(config.queue_depth);
        let mut router = Router {
            workers: HashMap::new(),
            last_seen: HashMap::new(),
            clients: HashMap::new(),
            plans: HashMap::new(),
            sent_plans: HashSet::new(),
        };
        while let Some(first) = rx.recv().await {
            // Coalesce: apply everything that is waiting, then schedule once.
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            let mut cmds = Vec::new();
            for input in batch {
                match input {
                    Input::Event(e) => cmds.extend(core.handle(e)),
                    Input::Tick => {}
                    Input::Attached {
                        worker,
                        address,
                        tx,
                    } => {
                        router.workers.insert(worker, (address, tx));
                        router.last_seen.insert(worker, Instant::now());
                    }
                    Input::Heartbeat(w) => {
                        router.last_seen.insert(w, Instant::now());
                    }
                    Input::Job {
                        job,
                        plan,
                        wire,
                        tx,
                    } => {
                        router.clients.insert(job, tx);
                        router.plans.insert(job, wire);
                        cmds.extend(core.handle(Event::JobSubmitted {
                            job,
                            client: ClientId(job.0),
                            plan,
                        }));
                    }
                }
            }
            // Workers that stopped talking are lost; clients whose stream closed cancel.
            let now = Instant::now();
            let silent: Vec<WorkerId> = router
                .last_seen
                .iter()
                .filter(|(_, t)| now - **t > timeout)
                .map(|(w, _)| *w)
                .collect();
            for w in silent {
                tracing::warn!(worker = w.0, "no heartbeat: removing worker");
                router.last_seen.remove(&w);
                router.workers.remove(&w);
                cmds.extend(core.handle(Event::WorkerLost { worker: w }));
            }
            let gone: Vec<JobId> = router
                .clients
                .iter()
                .filter(|(_, tx)| tx.is_closed())
                .map(|(j, _)| *j)
                .collect();
            for job in gone {
                router.clients.remove(&job);
                cmds.extend(core.handle(Event::JobCancelled { job }));
                router.forget(job);
            }
            cmds.extend(core.schedule());
            // Deliveries that failed become events, until everything is delivered.
            loop {
                let events = router.route(std::mem::take(&mut cmds));
                if events.is_empty() {
                    break;
                }
                for e in events {
                    if let Event::WorkerLost { worker } = e {
                        router.workers.remove(&worker);
                        router.last_seen.remove(&worker);
                    }
                    cmds.extend(core.handle(e));
                }
                cmds.extend(core.schedule());
            }
        }
    });
    tonic::transport::Server::builder()
        .add_service(
            SchedulerServer::new(service)
                .max_decoding_message_size(config.max_message_bytes)
                .max_encoding_message_size(config.max_message_bytes),
        )
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
