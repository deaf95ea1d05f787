//! The core: workers, jobs and the ready queue, changed only by events.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::event::{Assignment, Command, Event};
use super::ids::{JobId, TaskRef, WorkerId};
use super::job::{Job, TaskState};

/// Tasks a worker may hold assigned per thread: one running, one queued, so a
/// thread never waits for the scheduler and an idle newcomer still finds work.
const SLOTS_PER_THREAD: usize = 2;

#[derive(Debug, Default)]
struct Worker {
    nthreads: u32,
    /// Extra queued tasks beyond the per-thread slots (hides network latency).
    extra: usize,
    processing: BTreeSet<TaskRef>,
    holds: BTreeSet<TaskRef>,
}

impl Worker {
    fn capacity(&self) -> usize {
        self.nthreads.max(1) as usize * SLOTS_PER_THREAD + self.extra
    }
    fn load(&self) -> f64 {
        self.processing.len() as f64 / self.nthreads.max(1) as f64
    }
}

/// Ready-queue order: deepest stage first (it finishes work and frees
/// memory), then older jobs, then chunk order.
type ReadyKey = (Reverse<u32>, JobId, u32);

#[derive(Debug, Default)]
pub struct Core {
    /// Tasks queued on each worker beyond its per-thread slots.
    queue_depth: usize,
    workers: BTreeMap<WorkerId, Worker>,
    jobs: HashMap<JobId, Job>,
    ready: BTreeSet<ReadyKey>,
    /// Tasks a worker has been asked to give back.
    stealing: BTreeSet<TaskRef>,
}

impl Core {
    pub fn new() -> Core {
        Core::default()
    }

    /// A core that keeps `depth` more tasks queued on every worker than it has
    /// threads: over a network, the next tasks are already there when one finishes.
    pub fn with_queue_depth(depth: usize) -> Core {
        Core {
            queue_depth: depth,
            ..Core::default()
        }
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

    fn ready_key(job: JobId, j: &Job, id: usize) -> ReadyKey {
        (Reverse(j.key(id).stage.0), job, id as u32)
    }

    fn task(job: JobId, j: &Job, id: usize) -> TaskRef {
        TaskRef {
            job,
            key: j.key(id),
        }
    }

    /// Applies one event; scheduling happens in [`Core::schedule`].
    pub fn handle(&mut self, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        match event {
            Event::WorkerJoined { worker, nthreads } => {
                let w = self.workers.entry(worker).or_default();
                w.nthreads = nthreads;
                w.extra = self.queue_depth;
            }
            Event::WorkerLost { worker } => self.worker_lost(worker, &mut out),
            Event::JobSubmitted { job, client, plan } => match Job::new(client, plan) {
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
                Ok(j) => {
                    for id in 0..j.len() {
                        if j.state[id] == TaskState::Ready {
                            self.ready.insert(Self::ready_key(job, &j, id));
                        }
                    }
                    let empty = j.len() == 0;
                    self.jobs.insert(job, j);
                    if empty {
                        self.finish_job(job, &mut out);
                    }
                }
            },
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
                    && j.id(task.key)
                        .is_some_and(|id| j.state[id as usize] == TaskState::Processing(worker))
                {
                    let stage = j.plan.stages.get(task.key.stage.index());
                    let what = stage
                        .map(|s| format!("{} [{}]", s.kind_name(), s.label))
                        .unwrap_or_default();
                    let error = format!(
                        "task {what} stage {} chunk {} failed on worker {}: {message}",
                        task.key.stage.0, task.key.chunk, worker.0
                    );
                    self.drop_job(task.job, Some(error), &mut out);
                }
            }
            Event::ResultsFetched { job } => self.drop_job(job, None, &mut out),
            Event::StealReply {
                worker,
                stolen,
                refused,
            } => {
                for t in refused {
                    self.stealing.remove(&t);
                }
                for t in stolen {
                    if !self.stealing.remove(&t) {
                        continue;
                    }
                    if let Some(w) = self.workers.get_mut(&worker) {
                        w.processing.remove(&t);
                    }
                    if let Some(j) = self.jobs.get_mut(&t.job)
                        && let Some(id) = j.id(t.key)
                        && j.state[id as usize] == TaskState::Processing(worker)
                    {
                        j.state[id as usize] = TaskState::Ready;
                        self.ready.insert(Self::ready_key(t.job, j, id as usize));
                    }
                }
            }
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

    /// Places ready tasks on workers with free slots: the worker already
    /// holding the most input bytes, then the least loaded. One `Assign` per worker.
    pub fn schedule(&mut self) -> Vec<Command> {
        let mut batches: BTreeMap<WorkerId, Vec<Assignment>> = BTreeMap::new();
        let mut deferred = Vec::new();
        while let Some(key) = self.ready.pop_first() {
            let (_, job, id) = key;
            let Some(j) = self.jobs.get_mut(&job) else {
                continue;
            };
            let id = id as usize;
            let mut local: HashMap<WorkerId, u64> = HashMap::new();
            for &i in j.inputs(id) {
                if let TaskState::Memory { worker, nbytes } = j.state[i as usize] {
                    *local.entry(worker).or_default() += nbytes;
                }
            }
            let best = self
                .workers
                .iter()
                .filter(|(_, w)| w.processing.len() < w.capacity())
                .max_by(|(a, wa), (b, wb)| {
                    let (la, lb) = (
                        local.get(a).copied().unwrap_or(0),
                        local.get(b).copied().unwrap_or(0),
                    );
                    la.cmp(&lb)
                        .then(wb.load().total_cmp(&wa.load()))
                        .then(b.cmp(a))
                })
                .map(|(id, _)| *id);
            let Some(w) = best else {
                deferred.push(key);
                break;
            };
            let task = Self::task(job, j, id);
            let inputs = j
                .inputs(id)
                .iter()
                .filter_map(|&i| {
                    j.location(i as usize)
                        .map(|loc| (Self::task(job, j, i as usize), loc))
                })
                .collect();
            j.state[id] = TaskState::Processing(w);
            if let Some(worker) = self.workers.get_mut(&w) {
                worker.processing.insert(task);
            }
            batches
                .entry(w)
                .or_default()
                .push(Assignment { task, inputs });
        }
        self.ready.extend(deferred);
        let mut out: Vec<Command> = batches
            .into_iter()
            .map(|(worker, tasks)| Command::Assign { worker, tasks })
            .collect();
        if self.ready.is_empty() {
            out.extend(self.steal());
        }
        out
    }

    /// Idle threads with nothing ready: ask the most backlogged worker for
    /// queued tasks (those beyond one per thread), newest first.
    fn steal(&mut self) -> Vec<Command> {
        let idle: usize = self
            .workers
            .values()
            .map(|w| (w.nthreads.max(1) as usize).saturating_sub(w.processing.len()))
            .sum();
        if idle == 0 {
            return Vec::new();
        }
        let Some((&victim, w)) = self.workers.iter().max_by_key(|(_, w)| {
            w.processing
                .len()
                .saturating_sub(w.nthreads.max(1) as usize)
        }) else {
            return Vec::new();
        };
        let backlog = w
            .processing
            .len()
            .saturating_sub(w.nthreads.max(1) as usize);
        let tasks: Vec<TaskRef> = w
            .processing
            .iter()
            .rev()
            .filter(|t| !self.stealing.contains(t))
            .take(backlog.min(idle))
            .copied()
            .collect();
        if tasks.is_empty() {
            return Vec::new();
        }
        self.stealing.extend(tasks.iter().copied());
        vec![Command::Steal {
            worker: victim,
            tasks,
        }]
    }

    fn task_finished(
        &mut self,
        worker: WorkerId,
        task: TaskRef,
        nbytes: u64,
        out: &mut Vec<Command>,
    ) {
        self.stealing.remove(&task);
        if let Some(w) = self.workers.get_mut(&worker) {
            w.processing.remove(&task);
        }
        let Some(j) = self.jobs.get_mut(&task.job) else {
            // A cancelled or failed job: the result is not wanted.
            out.push(Command::Release {
                worker,
                chunks: vec![task],
            });
            return;
        };
        let Some(id) = j.id(task.key).map(|i| i as usize) else {
            return;
        };
        if j.state[id] != TaskState::Processing(worker) || !self.workers.contains_key(&worker) {
            // Stale or duplicate (the task was moved after a worker loss).
            out.push(Command::Release {
                worker,
                chunks: vec![task],
            });
            return;
        }
        j.state[id] = TaskState::Memory { worker, nbytes };
        j.unfinished -= 1;
        if let Some(w) = self.workers.get_mut(&worker) {
            w.holds.insert(task);
        }
        let mut release: BTreeMap<WorkerId, Vec<TaskRef>> = BTreeMap::new();
        for &c in j.consumers(id).to_vec().iter() {
            let c = c as usize;
            j.missing[c] -= 1;
            if j.missing[c] == 0 {
                j.state[c] = TaskState::Ready;
                self.ready.insert(Self::ready_key(task.job, j, c));
            }
        }
        let mut drop_ids: Vec<usize> = Vec::new();
        for &i in j.inputs(id).to_vec().iter() {
            let i = i as usize;
            j.refs[i] -= 1;
            if j.refs[i] == 0 {
                drop_ids.push(i);
            }
        }
        if j.refs[id] == 0 {
            drop_ids.push(id);
        }
        for i in drop_ids {
            if let TaskState::Memory { worker: holder, .. } = j.state[i] {
                let t = Self::task(task.job, j, i);
                j.state[i] = TaskState::Released;
                if let Some(w) = self.workers.get_mut(&holder) {
                    w.holds.remove(&t);
                }
                release.entry(holder).or_default().push(t);
            }
        }
        out.extend(
            release
                .into_iter()
                .map(|(worker, chunks)| Command::Release { worker, chunks }),
        );
        if j.unfinished == 0 {
            self.finish_job(task.job, out);
        }
    }

    fn finish_job(&mut self, job: JobId, out: &mut Vec<Command>) {
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
        });
    }

    /// Forgets a job and releases everything it holds; `error` reports a failure.
    fn drop_job(&mut self, job: JobId, error: Option<String>, out: &mut Vec<Command>) {
        let Some(j) = self.jobs.remove(&job) else {
            return;
        };
        self.stealing.retain(|t| t.job != job);
        let mut release: BTreeMap<WorkerId, Vec<TaskRef>> = BTreeMap::new();
        for id in 0..j.len() {
            let t = Self::task(job, &j, id);
            match j.state[id] {
                TaskState::Memory { worker, .. } => {
                    if let Some(w) = self.workers.get_mut(&worker) {
                        w.holds.remove(&t);
                    }
                    release.entry(worker).or_default().push(t);
                }
                TaskState::Processing(worker) => {
                    // Its result is released when it arrives.
                    if let Some(w) = self.workers.get_mut(&worker) {
                        w.processing.remove(&t);
                    }
                }
                TaskState::Ready => {
                    self.ready.remove(&Self::ready_key(job, &j, id));
                }
                TaskState::Waiting | TaskState::Released => {}
            }
        }
        out.extend(
            release
                .into_iter()
                .map(|(worker, chunks)| Command::Release { worker, chunks }),
        );
        if let Some(error) = error {
            out.push(Command::JobFailed {
                job,
                client: j.client,
                error,
            });
        }
    }

    fn worker_lost(&mut self, worker: WorkerId, out: &mut Vec<Command>) {
        let Some(w) = self.workers.remove(&worker) else {
            return;
        };
        self.stealing.retain(|t| !w.processing.contains(t));
        for t in &w.processing {
            if let Some(j) = self.jobs.get_mut(&t.job)
                && let Some(id) = j.id(t.key)
            {
                j.state[id as usize] = TaskState::Ready;
                self.ready.insert(Self::ready_key(t.job, j, id as usize));
            }
        }
        // Chunks that lived only there: their jobs cannot finish (no recomputation yet).
        let mut failed: BTreeMap<JobId, String> = BTreeMap::new();
        for t in &w.holds {
            let Some(j) = self.jobs.get_mut(&t.job) else {
                continue;
            };
            let Some(id) = j.id(t.key) else { continue };
            j.state[id as usize] = TaskState::Released;
            let stage = j
                .plan
                .stages
                .get(t.key.stage.index())
                .map(|s| s.label.clone())
                .unwrap_or_default();
            failed.entry(t.job).or_insert_with(|| {
                format!(
                    "worker {} was lost holding chunk {} of stage {} [{stage}], which no other worker has",
                    worker.0, t.key.chunk, t.key.stage.0
                )
            });
        }
        for (job, error) in failed {
            self.drop_job(job, Some(error), out);
        }
    }

    /// Checks every invariant linking tasks, workers and the ready queue.
    pub fn sanity_check(&self) -> Result<(), String> {
        for (&job, j) in &self.jobs {
            for id in 0..j.len() {
                let t = Self::task(job, j, id);
                let in_ready = self.ready.contains(&Self::ready_key(job, j, id));
                match j.state[id] {
                    TaskState::Ready if !in_ready => {
                        return Err(format!("{t:?} ready but not queued"));
                    }
                    TaskState::Processing(w)
                        if !self
                            .workers
                            .get(&w)
                            .is_some_and(|x| x.processing.contains(&t)) =>
                    {
                        return Err(format!("{t:?} processing on {w:?} which does not list it"));
                    }
                    TaskState::Memory { worker, .. }
                        if !self
                            .workers
                            .get(&worker)
                            .is_some_and(|x| x.holds.contains(&t)) =>
                    {
                        return Err(format!(
                            "{t:?} in memory on {worker:?} which does not hold it"
                        ));
                    }
                    s if s != TaskState::Ready && in_ready => {
                        return Err(format!("{t:?} queued while {s:?}"));
                    }
                    _ => {}
                }
                let missing = j
                    .inputs(id)
                    .iter()
                    .filter(|&&i| j.location(i as usize).is_none())
                    .count();
                let pending = matches!(j.state[id], TaskState::Waiting | TaskState::Ready);
                if pending && missing != j.missing[id] as usize {
                    return Err(format!(
                        "{t:?} counts {} missing inputs, {missing} are not in memory",
                        j.missing[id]
                    ));
                }
                if j.state[id] == TaskState::Waiting && missing == 0 {
                    return Err(format!("{t:?} waits with all inputs in memory"));
                }
            }
        }
        for t in &self.stealing {
            let state = self
                .jobs
                .get(&t.job)
                .and_then(|j| j.id(t.key).map(|i| j.state[i as usize]));
            if !matches!(state, Some(TaskState::Processing(_))) {
                return Err(format!("{t:?} is being stolen while {state:?}"));
            }
        }
        for (&w, worker) in &self.workers {
            for t in &worker.processing {
                let ok = self
                    .jobs
                    .get(&t.job)
                    .and_then(|j| j.id(t.key).map(|i| j.state[i as usize]));
                if ok != Some(TaskState::Processing(w)) {
                    return Err(format!(
                        "{w:?} lists {t:?} as processing, its state is {ok:?}"
                    ));
                }
            }
            for t in &worker.holds {
                let ok = self
                    .jobs
                    .get(&t.job)
                    .and_then(|j| j.id(t.key).map(|i| j.location(i as usize)));
                if ok != Some(Some(w)) {
                    return Err(format!("{w:?} holds {t:?}, which the job places at {ok:?}"));
                }
            }
            if worker.processing.len() > worker.capacity() {
                return Err(format!(
                    "{w:?} has {} tasks for {} slots",
                    worker.processing.len(),
                    worker.capacity()
                ));
            }
        }
        Ok(())
    }
}
