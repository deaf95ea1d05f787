//! The core: workers, jobs and the ready queue, changed only by events.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::event::{Command, Event};
use super::ids::{JobId, TaskRef, WorkerId};
use super::job::{Effects, Job, TaskState};
use super::worker::Worker;

/// Ready-queue order: deepest stage first (it finishes work and frees
/// memory), then older jobs, then chunk order.
pub(super) type ReadyKey = (Reverse<u32>, JobId, u32);

/// How the core behaves.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Tasks queued on each worker beyond its per-thread slots.
    pub queue_depth: usize,
    /// A task running on this many workers that died fails its job.
    pub allowed_failures: u32,
    /// Root tasks that make large chunks (reads, sources) are sent to a
    /// worker only while it has fewer than this many tasks per thread, so
    /// data is not produced much faster than it is consumed (Dask's worker
    /// saturation). `f64::INFINITY`: no such limit.
    pub worker_saturation: f64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            queue_depth: 0,
            allowed_failures: 3,
            worker_saturation: 1.1,
        }
    }
}

/// Root tasks making chunks at least this large are queued on the scheduler.
pub(super) const LARGE_ROOT_BYTES: usize = 1 << 20;

/// A job whose chunks are lost this often has a problem recomputing cannot fix.
pub(super) const MAX_LOSSES: u32 = 20;

#[derive(Debug, Default)]
pub struct Core {
    pub(super) config: CoreConfig,
    pub(super) workers: BTreeMap<WorkerId, Worker>,
    pub(super) jobs: HashMap<JobId, Job>,
    pub(super) ready: BTreeSet<ReadyKey>,
    /// Tasks a worker has been asked to give back: that worker and the request.
    pub(super) stealing: BTreeMap<TaskRef, (WorkerId, u64)>,
    /// Id of the last steal request.
    pub(super) steals: u64,
    /// Chunks being copied off a retiring worker: (from, to).
    pub(super) handoff: BTreeMap<TaskRef, (WorkerId, WorkerId)>,
    /// Tasks of other jobs taking over each kept chunk (`persist`).
    pub(super) watchers: HashMap<TaskRef, Vec<(JobId, u32)>>,
    /// Tasks finished since the start, by stage kind (for metrics).
    pub(super) finished_by_kind: BTreeMap<&'static str, u64>,
    /// Jobs ended since the start: their results fetched, or failed.
    pub(super) jobs_done: u64,
    pub(super) jobs_failed: u64,
}

impl Core {
    pub fn new() -> Core {
        Core::with_config(CoreConfig::default())
    }

    pub fn with_config(config: CoreConfig) -> Core {
        Core {
            config,
            ..Core::default()
        }
    }

    /// A core that keeps `depth` more tasks queued on every worker than it has
    /// threads: over a network, the next tasks are already there when one finishes.
    pub fn with_queue_depth(depth: usize) -> Core {
        Core::with_config(CoreConfig {
            queue_depth: depth,
            ..CoreConfig::default()
        })
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    /// Chunks currently held on `worker`.
    pub fn held_by(&self, worker: WorkerId) -> Vec<TaskRef> {
        self.workers
            .get(&worker)
            .map(|w| w.holds.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Tasks run again so far because chunks of `job` were lost.
    pub fn recomputed(&self, job: JobId) -> Option<usize> {
        self.jobs.get(&job).map(|j| j.recomputed)
    }

    pub(super) fn ready_key(job: JobId, j: &Job, id: usize) -> ReadyKey {
        (Reverse(j.key(id).stage.0), job, id as u32)
    }

    pub(super) fn task(job: JobId, j: &Job, id: usize) -> TaskRef {
        TaskRef {
            job,
            key: j.key(id),
        }
    }

    /// Applies what a job change asked for: the ready queue follows the
    /// states, released chunks leave their holders.
    pub(super) fn apply(&mut self, job: JobId, fx: Effects, out: &mut Vec<Command>) {
        let Some(j) = self.jobs.get(&job) else { return };
        for id in fx.requeue {
            let key = Self::ready_key(job, j, id);
            if j.state[id] == TaskState::Ready {
                self.ready.insert(key);
            } else {
                self.ready.remove(&key);
            }
        }
        let mut freed = Vec::new();
        for (id, w) in fx.abandoned {
            let t = Self::task(job, j, id);
            if let Some(worker) = self.workers.get_mut(&w) {
                worker.processing.remove(&t);
                worker.running.remove(&t);
                freed.push(w);
            }
            self.stealing.remove(&t);
        }
        let mut release: BTreeMap<WorkerId, Vec<TaskRef>> = BTreeMap::new();
        for (id, holder) in fx.released {
            let t = Self::task(job, j, id);
            if let Some(w) = self.workers.get_mut(&holder) {
                w.holds.remove(&t);
            }
            release.entry(holder).or_default().push(t);
        }
        out.extend(
            release
                .into_iter()
                .map(|(worker, chunks)| Command::Release { worker, chunks }),
        );
        for w in freed {
            self.maybe_retired(w, out);
        }
    }

    /// Applies one event; scheduling happens in [`Core::schedule`].
    pub fn handle(&mut self, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        match event {
            Event::WorkerJoined {
                worker,
                name,
                nthreads,
                memory_limit,
                functions,
                gpus,
            } => {
                let w = self.workers.entry(worker).or_default();
                w.name = name;
                w.gpus = gpus;
                w.nthreads = nthreads;
                w.memory_limit = memory_limit;
                w.functions = functions.into_iter().collect();
                w.extra = self.config.queue_depth;
                // A retiring worker that had nobody to hand its chunks to now has.
                let retiring: Vec<WorkerId> = self
                    .workers
                    .iter()
                    .filter(|(_, w)| w.retiring)
                    .map(|(id, _)| *id)
                    .collect();
                for r in retiring {
                    self.hand_off(r, &mut out);
                }
            }
            Event::WorkerLost { worker } => self.worker_lost(worker, &mut out),
            Event::WorkerPaused { worker, paused } => {
                if let Some(w) = self.workers.get_mut(&worker) {
                    w.paused = paused;
                }
            }
            Event::WorkerRetiring { worker } => self.retire(worker, &mut out),
            Event::JobSubmitted { job, client, plan } => self.submit(job, client, plan, &mut out),
            Event::TasksStarted { worker, tasks } => {
                if let Some(w) = self.workers.get_mut(&worker) {
                    for t in tasks {
                        if w.processing.contains(&t) {
                            w.running.insert(t);
                        }
                    }
                }
            }
            Event::TaskFinished {
                worker,
                task,
                nbytes,
            } => self.task_finished(worker, task, nbytes, &mut out),
            Event::TaskFailed {
                worker,
                task,
                message,
            } => {
                if let Some(j) = self.jobs.get(&task.job)
                    && let Some(id) = j.id(task.key)
                    && j.state[id as usize] == TaskState::Processing(worker)
                {
                    let name = self.worker_name(worker);
                    let error = format!(
                        "task {} failed on worker {} ({name}): {message}",
                        j.describe(id as usize),
                        worker.0
                    );
                    self.drop_job(task.job, Some(error), &mut out);
                }
            }
            Event::InputsMissing {
                worker,
                task,
                missing,
            } => self.inputs_missing(worker, task, missing, &mut out),
            Event::ResultsMissing { job, missing } => self.results_missing(job, missing, &mut out),
            Event::Replicated {
                worker,
                done,
                failed,
            } => self.replicated(worker, done, failed, &mut out),
            Event::ResultsFetched { job } => self.drop_job(job, None, &mut out),
            Event::StealReply {
                worker,
                id,
                stolen,
                refused,
            } => self.steal_reply((worker, id), stolen, refused, &mut out),
            Event::JobCancelled { job } => self.drop_job(job, Some("cancelled".into()), &mut out),
            Event::ClientGone { client } => {
                let gone: Vec<JobId> = self
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.client == client)
                    .map(|(id, _)| *id)
                    .collect();
                for job in gone {
                    self.drop_job(job, None, &mut out);
                }
            }
        }
        out
    }

    /// The largest memory limit of the workers, if every worker has one.
    fn largest_memory_limit(&self) -> Option<u64> {
        let limits: Option<Vec<u64>> = self.workers.values().map(|w| w.memory_limit).collect();
        limits?.into_iter().max()
    }

    /// Why `j` cannot run on the attached workers: a function it calls that
    /// none of them offers (with no worker attached, it waits for one).
    pub(super) fn unoffered(&self, j: &Job) -> Option<String> {
        if self.workers.is_empty() {
            return None;
        }
        let f = j
            .functions()
            .find(|f| !self.workers.values().any(|w| w.offers(Some(f))))?;
        Some(Self::no_function_error(f))
    }

    pub(super) fn no_function_error(f: &str) -> String {
        format!(
            "no worker offers the map_blocks function '{f}': start workers built with it \
             registered (accel_worker::Functions::register, then accel_worker::cli::main_with)"
        )
    }

    pub(super) fn worker_name(&self, worker: WorkerId) -> String {
        self.workers
            .get(&worker)
            .map(|w| w.name.clone())
            .unwrap_or_else(|| "gone".into())
    }

    fn submit(
        &mut self,
        job: JobId,
        client: super::ids::ClientId,
        plan: std::sync::Arc<accel_core::Plan>,
        out: &mut Vec<Command>,
    ) {
        match Job::new(client, plan) {
            Err(e) => out.push(Command::JobFailed {
                job,
                client,
                error: format!("invalid plan: {e}"),
            }),
            Ok(j) if self.jobs.contains_key(&job) => out.push(Command::JobFailed {
                job,
                client: j.client,
                error: format!("job {} already exists", job.0),
            }),
            Ok(mut j) => {
                if let Some(limit) = self.largest_memory_limit()
                    && let Err(e) = j.plan.check_memory(limit, "any worker's memory limit")
                {
                    out.push(Command::JobFailed {
                        job,
                        client,
                        error: format!("the plan cannot fit: {e}"),
                    });
                    return;
                }
                if let Some(f) = self.unoffered(&j) {
                    out.push(Command::JobFailed {
                        job,
                        client,
                        error: f,
                    });
                    return;
                }
                if let Err(e) = self.link_persisted(job, &mut j) {
                    self.unlink(job, &j, out);
                    out.push(Command::JobFailed {
                        job,
                        client,
                        error: format!("cannot run: {e}"),
                    });
                    return;
                }
                for id in 0..j.len() {
                    if j.state[id] == TaskState::Ready {
                        self.ready.insert(Self::ready_key(job, &j, id));
                    }
                }
                let empty = j.len() == 0;
                self.jobs.insert(job, j);
                if empty {
                    self.finish_job(job, out);
                }
            }
        }
    }

    /// Applies a reply to the steal request `req` (worker, id); replies to
    /// requests that were overtaken (the task moved meanwhile) are ignored.
    fn steal_reply(
        &mut self,
        req: (WorkerId, u64),
        stolen: Vec<TaskRef>,
        refused: Vec<TaskRef>,
        out: &mut Vec<Command>,
    ) {
        for t in refused {
            if self.stealing.get(&t) == Some(&req) {
                self.stealing.remove(&t);
            }
        }
        for t in stolen {
            if self.stealing.get(&t) != Some(&req) {
                continue;
            }
            self.stealing.remove(&t);
            self.take_back(req.0, t, out);
        }
        self.maybe_retired(req.0, out);
    }

    /// Asks `worker` to give back `tasks`.
    pub(super) fn request_steal(
        &mut self,
        worker: WorkerId,
        tasks: Vec<TaskRef>,
        out: &mut Vec<Command>,
    ) {
        self.steals += 1;
        let id = self.steals;
        self.stealing
            .extend(tasks.iter().map(|t| (*t, (worker, id))));
        out.push(Command::Steal { worker, id, tasks });
    }

    /// A task that was assigned to `worker` and will not finish there goes
    /// back in line.
    pub(super) fn take_back(&mut self, worker: WorkerId, t: TaskRef, out: &mut Vec<Command>) {
        if let Some(w) = self.workers.get_mut(&worker) {
            w.processing.remove(&t);
            w.running.remove(&t);
        }
        let Some(j) = self.jobs.get_mut(&t.job) else {
            return;
        };
        let Some(id) = j.id(t.key).map(|i| i as usize) else {
            return;
        };
        if j.state[id] != TaskState::Processing(worker) {
            return;
        }
        let mut fx = Effects::default();
        j.set_pending(id, &mut fx);
        self.apply(t.job, fx, out);
    }

    /// Whether the job counts on `task`'s chunk being (or being made) on
    /// `worker`: a release sent there would drop a live chunk.
    pub(super) fn placed_on(&self, task: TaskRef, worker: WorkerId) -> bool {
        self.jobs
            .get(&task.job)
            .and_then(|j| j.id(task.key).map(|id| j.state[id as usize]))
            .is_some_and(|s| match s {
                TaskState::Memory { worker: w, .. } | TaskState::Processing(w) => w == worker,
                _ => false,
            })
    }

    fn task_finished(
        &mut self,
        worker: WorkerId,
        task: TaskRef,
        nbytes: u64,
        out: &mut Vec<Command>,
    ) {
        let state = self
            .jobs
            .get(&task.job)
            .and_then(|j| j.id(task.key).map(|id| j.state[id as usize]));
        if state != Some(TaskState::Processing(worker)) || !self.workers.contains_key(&worker) {
            // Stale, duplicate (the task moved after a loss or a steal), or of
            // a job that ended: the chunk is not wanted; unless it is the one
            // the job counts on there (a second finish of a task that worker
            // already holds, whose chunk replaced the first).
            if !self.placed_on(task, worker) {
                out.push(Command::Release {
                    worker,
                    chunks: vec![task],
                });
            }
            return;
        }
        if self.stealing.get(&task).is_some_and(|(w, _)| *w == worker) {
            self.stealing.remove(&task);
        }
        let retiring = match self.workers.get_mut(&worker) {
            Some(w) => {
                w.processing.remove(&task);
                w.running.remove(&task);
                w.holds.insert(task);
                w.retiring
            }
            None => false,
        };
        let Some(j) = self.jobs.get_mut(&task.job) else {
            return;
        };
        let Some(id) = j.id(task.key).map(|i| i as usize) else {
            return;
        };
        let mut fx = Effects::default();
        j.finish(id, worker, nbytes, &mut fx);
        *self
            .finished_by_kind
            .entry(j.plan.stage(task.key.stage).kind_name())
            .or_default() += 1;
        let done = j.unfinished == 0;
        let kept = matches!(j.state[id], TaskState::Memory { .. });
        if j.is_output[id] {
            out.push(Command::OutputReady {
                job: task.job,
                client: j.client,
                chunk: task,
                worker,
            });
        }
        self.apply(task.job, fx, out);
        if kept {
            self.notify_watchers(task, true, out);
        }
        if retiring {
            self.hand_off(worker, out);
            self.maybe_retired(worker, out);
        }
        // Still done: a retiring worker that left just now (no peer to take
        // its chunks) may have taken outputs with it, to be made again.
        if done && self.jobs.get(&task.job).is_some_and(|j| j.unfinished == 0) {
            self.finish_job(task.job, out);
        }
    }

    pub(super) fn finish_job(&mut self, job: JobId, out: &mut Vec<Command>) {
        let Some(j) = self.jobs.get(&job) else { return };
        let outputs = j
            .outputs()
            .into_iter()
            .map(|ids| {
                ids.into_iter()
                    .filter_map(|i| j.location(i).map(|w| (Self::task(job, j, i), w)))
                    .collect()
            })
            .collect();
        out.push(Command::JobDone {
            job,
            client: j.client,
            outputs,
            recomputed: j.recomputed,
        });
    }

    /// Forgets a job and everything the core tracked for it; `error` reports a
    /// failure. Workers drop its plan and chunks on [`Command::JobForgotten`].
    pub(super) fn drop_job(&mut self, job: JobId, error: Option<String>, out: &mut Vec<Command>) {
        let Some(j) = self.jobs.remove(&job) else {
            return;
        };
        match error {
            Some(_) => self.jobs_failed += 1,
            None => self.jobs_done += 1,
        }
        self.stealing.retain(|t, _| t.job != job);
        let mut touched: BTreeSet<WorkerId> = BTreeSet::new();
        self.handoff.retain(|t, (from, _)| {
            let keep = t.job != job;
            if !keep {
                touched.insert(*from);
            }
            keep
        });
        for id in 0..j.len() {
            let t = Self::task(job, &j, id);
            match j.state[id] {
                TaskState::Memory { worker, .. } => {
                    if let Some(w) = self.workers.get_mut(&worker) {
                        w.holds.remove(&t);
                    }
                    touched.insert(worker);
                }
                TaskState::Processing(worker) => {
                    // Its result is released when it arrives.
                    if let Some(w) = self.workers.get_mut(&worker) {
                        w.processing.remove(&t);
                        w.running.remove(&t);
                    }
                    touched.insert(worker);
                }
                TaskState::Ready => {
                    self.ready.remove(&Self::ready_key(job, &j, id));
                }
                TaskState::Waiting | TaskState::Released => {}
            }
        }
        if let Some(error) = error {
            out.push(Command::JobFailed {
                job,
                client: j.client,
                error,
            });
        }
        out.push(Command::JobForgotten { job });
        self.unlink(job, &j, out);
        for w in touched {
            self.maybe_retired(w, out);
        }
    }
}
