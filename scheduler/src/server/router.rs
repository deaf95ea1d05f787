//! Routes the core's commands to worker and client streams, and remembers
//! which worker has which job's plan (so it can be told to forget it).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use accel_proto::convert::task_to;
use accel_proto::pb::{self, job_update, scheduler_message};
use tokio::sync::mpsc;
use tonic::Status;

use crate::core::{Command, Event, JobId, TaskRef, WorkerId};

/// Unbounded: a send fails only when the other side is gone, never because
/// it is slow (a frozen worker is dropped by the heartbeat timeout instead).
pub(super) type WorkerTx = mpsc::UnboundedSender<Result<pb::SchedulerMessage, Status>>;
pub(super) type ClientTx = mpsc::UnboundedSender<Result<pb::JobUpdate, Status>>;

#[derive(Default)]
pub(super) struct Router {
    pub workers: HashMap<WorkerId, (String, WorkerTx)>,
    pub last_seen: HashMap<WorkerId, Instant>,
    pub clients: HashMap<JobId, ClientTx>,
    pub plans: HashMap<JobId, pb::Plan>,
    sent_plans: HashSet<(WorkerId, JobId)>,
}

fn ids(tasks: &[TaskRef]) -> Vec<pb::TaskId> {
    tasks.iter().map(|t| task_to(t.job.0, t.key)).collect()
}

impl Router {
    /// Tells a job's client how many of its tasks are done.
    pub fn progress(&self, job: JobId, done: u64, total: u64) {
        if let Some(tx) = self.clients.get(&job) {
            let _ = tx.send(Ok(pb::JobUpdate {
                job: job.0,
                event: Some(job_update::Event::Progress(pb::Progress { done, total })),
                job_key: Vec::new(),
            }));
        }
    }

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
            Some((_, tx)) => tx.send(Ok(pb::SchedulerMessage { msg: Some(msg) })).is_ok(),
            None => false,
        }
    }

    /// Sends the plans of `jobs` that `worker` does not have yet.
    fn send_plans(&mut self, worker: WorkerId, jobs: impl Iterator<Item = JobId>) -> bool {
        let mut ok = true;
        let jobs: HashSet<JobId> = jobs.collect();
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
        ok
    }

    /// Forgets a worker: nothing more is sent to it.
    pub fn remove_worker(&mut self, worker: WorkerId) {
        self.workers.remove(&worker);
        self.last_seen.remove(&worker);
        self.sent_plans.retain(|(w, _)| *w != worker);
    }

    /// Tells a worker that it was declared dead, then forgets it.
    pub fn restart_worker(&mut self, worker: WorkerId, why: String) {
        self.send_worker(worker, scheduler_message::Msg::Restart(why));
        self.remove_worker(worker);
    }

    /// Delivers commands; returns events for deliveries that failed (the
    /// only way a send to a worker fails is that its stream is gone).
    pub fn route(&mut self, cmds: Vec<Command>) -> Vec<Event> {
        let mut events = Vec::new();
        // Output chunks made in this pass, one update per job.
        let mut ready: HashMap<JobId, Vec<pb::ChunkLocation>> = HashMap::new();
        for cmd in cmds {
            match cmd {
                Command::OutputReady {
                    job, chunk, worker, ..
                } => {
                    let loc = self.location(chunk, worker);
                    ready.entry(job).or_default().push(loc);
                }
                Command::Assign { worker, tasks } => {
                    let mut ok = self.send_plans(worker, tasks.iter().map(|a| a.task.job));
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
                Command::Steal { worker, id, tasks } => {
                    let batch = pb::StealRequest {
                        id,
                        tasks: ids(&tasks),
                    };
                    if !self.send_worker(worker, scheduler_message::Msg::Steal(batch)) {
                        events.push(Event::WorkerLost { worker });
                    }
                }
                Command::Release { worker, chunks } => {
                    let batch = pb::ReleaseBatch {
                        chunks: ids(&chunks),
                    };
                    self.send_worker(worker, scheduler_message::Msg::Release(batch));
                }
                Command::Replicate { worker, chunks } => {
                    let mut ok = self.send_plans(worker, chunks.iter().map(|(t, _)| t.job));
                    let batch = pb::ReplicateBatch {
                        chunks: chunks.iter().map(|(t, w)| self.location(*t, *w)).collect(),
                    };
                    ok &= self.send_worker(worker, scheduler_message::Msg::Replicate(batch));
                    if !ok {
                        events.push(Event::WorkerLost { worker });
                    }
                }
                Command::Retired { worker } => {
                    tracing::info!(worker = worker.0, "worker retired");
                    self.send_worker(worker, scheduler_message::Msg::Goodbye(true));
                    self.remove_worker(worker);
                }
                Command::JobDone {
                    job,
                    outputs,
                    recomputed,
                    ..
                } => {
                    tracing::debug!(job = job.0, recomputed, "job done");
                    let done = pb::JobDone {
                        outputs: outputs
                            .into_iter()
                            .map(|o| pb::OutputChunks {
                                chunks: o.into_iter().map(|(t, w)| self.location(t, w)).collect(),
                            })
                            .collect(),
                        recomputed: recomputed as u64,
                    };
                    let sent = self.clients.get(&job).is_some_and(|tx| {
                        tx.send(Ok(pb::JobUpdate {
                            job: job.0,
                            event: Some(job_update::Event::Done(done)),
                            job_key: Vec::new(),
                        }))
                        .is_ok()
                    });
                    if !sent {
                        events.push(Event::JobCancelled { job });
                    }
                }
                Command::JobFailed { job, error, .. } => {
                    tracing::info!(job = job.0, %error, "job failed");
                    // Nothing more is sent for it (a plan refused at
                    // submission is never forgotten: it would stay).
                    self.plans.remove(&job);
                    if let Some(tx) = self.clients.remove(&job) {
                        let _ = tx.send(Ok(pb::JobUpdate {
                            job: job.0,
                            event: Some(job_update::Event::Failed(error)),
                            job_key: Vec::new(),
                        }));
                    }
                }
                Command::JobForgotten { job } => self.forget(job),
            }
        }
        for (job, chunks) in ready {
            if let Some(tx) = self.clients.get(&job) {
                let _ = tx.send(Ok(pb::JobUpdate {
                    job: job.0,
                    event: Some(job_update::Event::Ready(pb::OutputChunks { chunks })),
                    job_key: Vec::new(),
                }));
            }
        }
        events
    }

    /// A job ended: its client stream closes and every worker that has its
    /// plan drops the plan and the job's chunks.
    pub fn forget(&mut self, job: JobId) {
        self.plans.remove(&job);
        self.clients.remove(&job);
        let holders: Vec<WorkerId> = self
            .sent_plans
            .iter()
            .filter(|(_, j)| *j == job)
            .map(|(w, _)| *w)
            .collect();
        for w in holders {
            self.sent_plans.remove(&(w, job));
            self.send_worker(w, scheduler_message::Msg::Forget(job.0));
        }
    }
}
