//! gRPC handlers: each request becomes inputs for the task that owns the core.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use accel_proto::auth::Secret;
use accel_proto::convert::{plan_from, task_from};
use accel_proto::pb::job_control_server::JobControl;
use accel_proto::pb::jobs_server::Jobs;
use accel_proto::pb::workers_server::Workers;
use accel_proto::pb::{self, job_update, scheduler_message, worker_message};
use accel_proto::{PROTOCOL_VERSION, check_version};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Input;
use crate::core::{Event, JobId, TaskRef, WorkerId};

pub(super) struct Service {
    /// The data plane's key: workers get it, clients get keys derived from it per job.
    pub data_key: Secret,
    pub inputs: mpsc::UnboundedSender<Input>,
    pub next_job: AtomicU64,
    pub next_worker: AtomicU32,
    pub heartbeat_timeout: Duration,
}

/// A task id from the wire (malformed ids are dropped: the core ignores unknown tasks anyway).
pub(super) fn task_ref(t: Option<&pb::TaskId>) -> Option<TaskRef> {
    task_from(t).ok().map(|(job, key)| TaskRef {
        job: JobId(job),
        key,
    })
}

fn locations(locs: &[pb::ChunkLocation]) -> Vec<(TaskRef, WorkerId)> {
    locs.iter()
        .filter_map(|l| Some((task_ref(l.task.as_ref())?, WorkerId(l.worker))))
        .collect()
}

fn refs(ids: &[pb::TaskId]) -> Vec<TaskRef> {
    ids.iter().filter_map(|t| task_ref(Some(t))).collect()
}

fn version_status(theirs: u32) -> Status {
    Status::failed_precondition(format!(
        "protocol version {theirs} is not supported: this scheduler speaks version {PROTOCOL_VERSION}"
    ))
}

/// Turns one message of a worker's stream into the core's events (what
/// does not decode into a known task is dropped).
pub fn worker_events(worker: WorkerId, msg: worker_message::Msg) -> Vec<Event> {
    match msg {
        worker_message::Msg::Finished(batch) => {
            tracing::debug!(
                worker = worker.0,
                started = batch.started.len(),
                finished = batch.tasks.len(),
                "report"
            );
            let mut out = Vec::with_capacity(batch.tasks.len() + 1);
            if !batch.started.is_empty() {
                out.push(Event::TasksStarted {
                    worker,
                    tasks: refs(&batch.started),
                });
            }
            out.extend(batch.tasks.iter().filter_map(|f| {
                Some(Event::TaskFinished {
                    worker,
                    task: task_ref(f.task.as_ref())?,
                    nbytes: f.nbytes,
                })
            }));
            out
        }
        worker_message::Msg::Steal(reply) => vec![Event::StealReply {
            worker,
            id: reply.id,
            stolen: refs(&reply.stolen),
            refused: refs(&reply.refused),
        }],
        worker_message::Msg::Failed(f) => task_ref(f.task.as_ref())
            .map(|task| Event::TaskFailed {
                worker,
                task,
                message: f.message,
            })
            .into_iter()
            .collect(),
        worker_message::Msg::Missing(m) => task_ref(m.task.as_ref())
            .map(|task| Event::InputsMissing {
                worker,
                task,
                missing: locations(&m.missing),
            })
            .into_iter()
            .collect(),
        worker_message::Msg::Retire(_) => vec![Event::WorkerRetiring { worker }],
        worker_message::Msg::Paused(paused) => vec![Event::WorkerPaused { worker, paused }],
        worker_message::Msg::Replicated(r) => vec![Event::Replicated {
            worker,
            done: r
                .done
                .iter()
                .filter_map(|f| Some((task_ref(f.task.as_ref())?, f.nbytes)))
                .collect(),
            failed: refs(&r.failed),
        }],
        worker_message::Msg::Heartbeat(_)
        | worker_message::Msg::Register(_)
        | worker_message::Msg::Stats(_) => Vec::new(),
    }
}

impl Service {
    /// A plan reads another job's persisted array only with that job's key:
    /// another client's arrays stay its own, and an array persisted before
    /// the scheduler restarted (whose job number may name another job now)
    /// is refused, not read.
    fn check_persisted_keys(
        &self,
        plan: &accel_core::Plan,
        keys: &[pb::PersistedKey],
    ) -> Result<(), Status> {
        for stage in &plan.stages {
            let accel_core::StageKind::Persisted { job, .. } = stage.kind else {
                continue;
            };
            let key = keys
                .iter()
                .find(|k| k.job == job)
                .map_or(&[][..], |k| &k.key);
            if !self.data_key.job_key(job).matches(key) {
                return Err(Status::permission_denied(format!(
                    "the plan reads an array persisted by job {job} without that job's key: \
                     only the client that persisted an array can read it, and not after \
                     the scheduler restarted"
                )));
            }
        }
        Ok(())
    }

    /// Only the client that submitted a job (it holds the job's key) may act on it.
    fn check_job_key(&self, job: u64, key: &[u8]) -> Result<(), Status> {
        if self.data_key.job_key(job).matches(key) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "job {job} belongs to another client"
            )))
        }
    }
}

#[tonic::async_trait]
impl Jobs for Service {
    type SubmitStream = UnboundedReceiverStream<Result<pb::JobUpdate, Status>>;

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
        self.check_persisted_keys(&plan, &req.persisted_keys)?;
        let job = JobId(self.next_job.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Ok(pb::JobUpdate {
            job: job.0,
            event: Some(job_update::Event::Accepted(true)),
            job_key: self.data_key.job_key(job.0).bytes().to_vec(),
        }));
        self.inputs
            .send(Input::Job {
                job,
                plan: Arc::new(plan),
                wire,
                tx,
            })
            .map_err(|_| Status::unavailable("scheduler is shutting down"))?;
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl JobControl for Service {
    async fn release(
        &self,
        req: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseReply>, Status> {
        let req = req.into_inner();
        self.check_job_key(req.job, &req.job_key)?;
        let job = JobId(req.job);
        let _ = self
            .inputs
            .send(Input::Event(Event::ResultsFetched { job }));
        Ok(Response::new(pb::ReleaseReply {}))
    }

    async fn report_missing(
        &self,
        req: Request<pb::MissingRequest>,
    ) -> Result<Response<pb::MissingReply>, Status> {
        let req = req.into_inner();
        self.check_job_key(req.job, &req.job_key)?;
        let _ = self.inputs.send(Input::Event(Event::ResultsMissing {
            job: JobId(req.job),
            missing: locations(&req.missing),
        }));
        Ok(Response::new(pb::MissingReply {}))
    }
}

#[tonic::async_trait]
impl Workers for Service {
    type AttachStream = Pin<Box<dyn Stream<Item = Result<pb::SchedulerMessage, Status>> + Send>>;

    async fn attach(
        &self,
        req: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await
            .map_err(|s| match s.code() {
                // Above the worker message limit, refused from its length prefix.
                tonic::Code::OutOfRange => Status::resource_exhausted(s.message()),
                _ => s,
            })?
            .ok_or_else(|| Status::invalid_argument("worker sent nothing"))?;
        let Some(worker_message::Msg::Register(reg)) = first.msg else {
            return Err(Status::invalid_argument("a worker must register first"));
        };
        let theirs = reg.hello.as_ref().map_or(0, |h| h.protocol_version);
        check_version(theirs).map_err(|_| version_status(theirs))?;
        let worker = WorkerId(self.next_worker.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Ok(pb::SchedulerMessage {
            msg: Some(scheduler_message::Msg::Welcome(pb::Welcome {
                worker: worker.0,
                stall_timeout_ms: self.heartbeat_timeout.as_millis() as u64,
                data_key: self.data_key.bytes().to_vec(),
            })),
        }));
        tracing::info!(worker = worker.0, name = %reg.name, address = %reg.address, nthreads = reg.nthreads, functions = ?reg.functions, "worker joined");
        let mut resources: Vec<(String, f64)> = reg.resources.clone().into_iter().collect();
        resources.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = self.inputs.send(Input::Attached {
            worker,
            address: reg.address.clone(),
            tx,
            resources,
        });
        let _ = self.inputs.send(Input::Event(Event::WorkerJoined {
            worker,
            name: reg.name.clone(),
            nthreads: reg.nthreads.max(1),
            memory_limit: (reg.memory_limit > 0).then_some(reg.memory_limit),
            functions: reg.functions.clone(),
            gpus: reg.resources.get("GPU").map_or(0, |&n| n.max(0.0) as u32),
        }));
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                let _ = inputs.send(Input::Heartbeat(worker));
                if let Some(worker_message::Msg::Stats(s)) = &msg.msg {
                    let _ = inputs.send(Input::Stats(worker, *s));
                }
                for input in msg
                    .msg
                    .map(|m| worker_events(worker, m))
                    .unwrap_or_default()
                {
                    let _ = inputs.send(Input::Event(input));
                }
            }
            tracing::info!(worker = worker.0, "worker stream closed");
            let _ = inputs.send(Input::Closed(worker));
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}
