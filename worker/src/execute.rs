//! Running assigned tasks: gather inputs (local or from peers, concurrently),
//! run the kernel on the rayon pool, keep the chunk, report.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};

use accel_core::exec::{AfterFailure, after_failure, run_task_with};
use accel_core::fast_hash::FastSet;
use accel_core::{Chunk, ChunkKey, Plan};
use accel_proto::convert::{task_from, task_to};
use accel_proto::pb::{self, worker_message};
use tokio::sync::mpsc;

use crate::fault::Faults;
use crate::fetch::Peers;
use crate::store::{PlanState, Store};

/// What lives as long as the worker process, across registrations.
pub(crate) struct Shared {
    pub store: Arc<Store>,
    /// Whether memory is above the pause limit: no task starts, nothing is fetched.
    pub paused: tokio::sync::watch::Receiver<bool>,
    pub peers: Arc<Peers>,
    pub pool: Arc<rayon::ThreadPool>,
    pub serving: Arc<AtomicUsize>,
    pub faults: Faults,
    /// Boxes of client arrays fetched at once: every queued source task
    /// fetching together would only make each of them late.
    pub client_fetches: tokio::sync::Semaphore,
    /// Tasks gathering their inputs or running: a few more than the threads,
    /// so the next inputs arrive while a thread computes, but the inputs of
    /// every queued task are not fetched (or read back from disk) at once.
    pub active: tokio::sync::Semaphore,
    /// Tasks past the pause gate: gathering inputs or running (the memory
    /// they hold is not yet in the store).
    pub working: Arc<AtomicUsize>,
    /// The `map_blocks` functions this worker can run, by name.
    pub functions: accel_core::blocks::Functions,
    /// The cluster's data key, from the scheduler this worker is attached to.
    pub data_key: Arc<crate::fetch::DataKey>,
    /// What `/metrics` reports.
    pub counters: Arc<crate::metrics::Counters>,
    /// The GPU offered every fused elementwise kernel first.
    pub gpu: Option<Arc<accel_gpu::Offloader>>,
}

/// Counts a task in [`Shared::working`] while it lives.
struct Working(Arc<AtomicUsize>);

impl Working {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Working(count.clone())
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Tasks per thread that may gather inputs or run at once.
pub(crate) const ACTIVE_PER_THREAD: usize = 2;

/// [`Shared::client_fetches`] permits.
pub(crate) const CLIENT_FETCHES: usize = 4;

/// What a task tells the scheduler, merged into batches by the reporter
/// (starts are noted in [`Session::started`] instead).
pub(crate) enum Report {
    Finished(pb::FinishedTask),
    Other(worker_message::Msg),
}

/// One registration with a scheduler: its generation, the tasks assigned
/// and not started (those a steal may take back), where reports go.
pub(crate) struct Session {
    pub shared: Arc<Shared>,
    pub generation: u64,
    pub queued: Mutex<FastSet<(u64, ChunkKey)>>,
    /// Tasks started and not yet told: they go with the next report.
    pub started: Mutex<Vec<pb::TaskId>>,
    pub reports: mpsc::UnboundedSender<Report>,
}

enum Outcome {
    Done(u64),
    /// Stolen back, its job forgotten, or its session over: nothing to say.
    Skipped,
    Failed(String),
    Missing(Vec<pb::ChunkLocation>),
}

impl Session {
    pub fn enqueue(&self, job: u64, key: ChunkKey) {
        self.queued_set().insert((job, key));
    }

    /// Takes a task out of the queue; false if it was not there (stolen).
    pub fn dequeue(&self, job: u64, key: ChunkKey) -> bool {
        self.queued_set().remove(&(job, key))
    }

    /// Queued tasks of an ended job will not start.
    pub fn forget(&self, job: u64) {
        self.queued_set().retain(|(j, _)| *j != job);
    }

    fn queued_set(&self) -> std::sync::MutexGuard<'_, FastSet<(u64, ChunkKey)>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_queued(&self, job: u64, key: ChunkKey) -> bool {
        self.queued_set().contains(&(job, key))
    }

    fn report(&self, r: Report) {
        let _ = self.reports.send(r);
    }

    /// Notes a task's start without waking the reporter.
    fn note_started(&self, job: u64, key: ChunkKey) {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task_to(job, key));
    }

    /// The starts noted since the last call.
    pub fn take_started(&self) -> Vec<pb::TaskId> {
        std::mem::take(&mut *self.started.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Runs one assigned task and reports how it went.
pub(crate) async fn execute(
    session: Arc<Session>,
    job: u64,
    key: ChunkKey,
    inputs: Vec<pb::ChunkLocation>,
) {
    let outcome = run(&session, job, key, inputs).await;
    session.report_outcome(job, key, outcome);
}

impl Session {
    fn report_outcome(&self, job: u64, key: ChunkKey, outcome: Outcome) {
        let task = Some(task_to(job, key));
        let msg = match outcome {
            Outcome::Done(nbytes) => {
                self.report(Report::Finished(pb::FinishedTask { task, nbytes }));
                return;
            }
            Outcome::Skipped => return,
            Outcome::Failed(message) => {
                worker_message::Msg::Failed(pb::TaskFailure { task, message })
            }
            Outcome::Missing(missing) => {
                worker_message::Msg::Missing(pb::InputsMissing { task, missing })
            }
        };
        self.report(Report::Other(msg));
    }
}

/// Starts an assigned task straight on the pool when nothing stands in its
/// way: its plan is here, every input is in this worker's memory, and
/// memory is under the pause limit. The common case of a busy cluster
/// costs no async task, no wake-up between threads. False: take the
/// general path ([`execute`]).
pub(crate) fn start_local(
    session: &Arc<Session>,
    job: u64,
    key: ChunkKey,
    inputs: &[pb::ChunkLocation],
) -> bool {
    let shared = &session.shared;
    if *shared.paused.borrow() {
        return false;
    }
    let PlanState::Ready(plan) = shared.store.plan(job) else {
        return false;
    };
    // A task the plan does not have fails on the general path.
    if !plan.has_task(key) {
        return false;
    }
    if matches!(plan.stage(key.stage).kind, accel_core::StageKind::Remote(_)) {
        return false;
    }
    let mut args = Vec::with_capacity(inputs.len());
    for loc in inputs {
        let Ok((j, k)) = task_from(loc.task.as_ref()) else {
            return false;
        };
        match shared.store.get_in_memory(j, k) {
            Some(c) => args.push(c),
            None => return false,
        }
    }
    let working = Working::new(&shared.working);
    let s = session.clone();
    let locations = inputs.to_vec();
    shared.pool.spawn(move || {
        let outcome = compute_and_keep(&s, job, key, &plan, &args, &locations);
        drop(working);
        s.report_outcome(job, key, outcome);
    });
    true
}

/// Runs a task on this (pool) thread and keeps its chunk. Inputs a lost
/// GPU held (known before, or found when the task failed) go from the
/// store and are reported missing: the scheduler recomputes them and runs
/// the task again.
fn compute_and_keep(
    s: &Session,
    job: u64,
    key: ChunkKey,
    plan: &Plan,
    args: &[Arc<Chunk>],
    locations: &[pb::ChunkLocation],
) -> Outcome {
    let lost: Vec<usize> = (0..args.len()).filter(|&i| args[i].lost()).collect();
    if !lost.is_empty() {
        return match s.dequeue(job, key) {
            true => lost_inputs(s, (args, locations), &lost),
            false => Outcome::Skipped,
        };
    }
    match compute(s, job, key, plan, args) {
        None => Outcome::Skipped,
        Some(Ok(Err(e))) => match after_failure(&e, args, 1) {
            // Not for a job forgotten (or a worker reset) meanwhile.
            AfterFailure::RunAgain if !s.shared.store.is_current(s.generation, job) => {
                Outcome::Skipped
            }
            AfterFailure::RunAgain => match run_kernel(s, key, plan, args) {
                Ok(Err(e)) => match after_failure(&e, args, 2) {
                    AfterFailure::Lost(lost) => lost_inputs(s, (args, locations), &lost),
                    _ => Outcome::Failed(e.to_string()),
                },
                computed => keep(s, job, key, computed),
            },
            AfterFailure::Fails => Outcome::Failed(e.to_string()),
            AfterFailure::Lost(lost) => lost_inputs(s, (args, locations), &lost),
        },
        Some(computed) => keep(s, job, key, computed),
    }
}

/// What running a task's kernel gave: its chunk, its error, or a panic.
type Computed = std::thread::Result<accel_core::Result<Arc<Chunk>>>;

/// Runs a task's kernel on this (pool) thread; `None` when it must not
/// start: stolen back, its job forgotten, or its session over.
fn compute(
    s: &Session,
    job: u64,
    key: ChunkKey,
    plan: &Plan,
    args: &[Arc<Chunk>],
) -> Option<Computed> {
    // Starting removes the task from the queue; if it is gone, it was stolen.
    if !s.dequeue(job, key) || !s.shared.store.is_current(s.generation, job) {
        return None;
    }
    s.note_started(job, key);
    let label = plan
        .stages
        .get(key.stage.index())
        .map_or("", |st| st.label.as_str());
    s.shared
        .faults
        .on_start(label, || s.shared.store.is_current(s.generation, job));
    // A stall (a test's fault) ends early for a job forgotten meanwhile.
    if !s.shared.store.is_current(s.generation, job) {
        return None;
    }
    if s.shared.faults.loses_gpu(label)
        && let Some(g) = &s.shared.gpu
    {
        g.lose_device();
    }
    Some(run_kernel(s, key, plan, args))
}

/// Runs a started task's kernel on this (pool) thread, timed.
fn run_kernel(s: &Session, key: ChunkKey, plan: &Plan, args: &[Arc<Chunk>]) -> Computed {
    let began = std::time::Instant::now();
    let gpu = s
        .shared
        .gpu
        .as_deref()
        .map(|g| g as &dyn accel_core::exec::Offload);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_task_with(plan, key, args, gpu)
    }));
    s.shared
        .counters
        .compute
        .add(began.elapsed().as_nanos() as u64);
    r
}

/// Keeps a computed chunk in the store.
fn keep(session: &Session, job: u64, key: ChunkKey, computed: Computed) -> Outcome {
    let chunk = match computed {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Outcome::Failed(e.to_string()),
        Err(_) => return Outcome::Failed("the kernel panicked".into()),
    };
    let nbytes = chunk.nbytes() as u64;
    if session
        .shared
        .store
        .insert(session.generation, job, key, chunk)
    {
        tracing::debug!(
            job,
            stage = key.stage.0,
            chunk = key.chunk,
            nbytes,
            "task finished"
        );
        Outcome::Done(nbytes)
    } else {
        Outcome::Skipped
    }
}

async fn run(
    session: &Arc<Session>,
    job: u64,
    key: ChunkKey,
    inputs: Vec<pb::ChunkLocation>,
) -> Outcome {
    let shared = &session.shared;
    let plan: Arc<Plan> = match shared.store.plan(job) {
        PlanState::Ready(p) => p,
        PlanState::Unusable(e) => {
            session.dequeue(job, key);
            return Outcome::Failed(format!("the worker could not use the job's plan: {e}"));
        }
        PlanState::Absent => {
            session.dequeue(job, key);
            return Outcome::Skipped;
        }
    };
    if !plan.has_task(key) {
        session.dequeue(job, key);
        return Outcome::Failed(format!(
            "the scheduler assigned chunk {} of stage {}, which job {job}'s plan does not have",
            key.chunk, key.stage.0
        ));
    }
    // A few tasks at a time bring inputs in (from peers, the client or the
    // disk); tasks whose inputs are all in memory here need no turn. Over the
    // pause limit, none starts.
    let brings_in = matches!(plan.stage(key.stage).kind, accel_core::StageKind::Remote(_))
        || inputs.iter().any(|loc| match task_from(loc.task.as_ref()) {
            Ok((j, k)) => !shared.store.in_memory(j, k),
            Err(_) => true,
        });
    let _active = if brings_in {
        match shared.active.acquire().await {
            Ok(permit) => Some(permit),
            Err(_) => return Outcome::Failed("the worker is stopping".into()),
        }
    } else {
        None
    };
    let _ = shared.paused.clone().wait_for(|p| !p).await;
    let _working = Working::new(&shared.working);
    if !session.is_queued(job, key) {
        return Outcome::Skipped; // given back while it waited
    }
    if let accel_core::StageKind::Remote(r) = &plan.stage(key.stage).kind {
        return fetch_remote(session, job, key, &plan, r).await;
    }
    let locations = inputs.clone();
    let args = match gather(session, &plan, key, inputs).await {
        Ok(args) => args,
        // Given back while fetching: its inputs may be gone, and that is no
        // failure; nor is one taken back between that check and this one.
        Err(_) if !session.is_queued(job, key) => return Outcome::Skipped,
        Err(outcome) => {
            if !session.dequeue(job, key) {
                return Outcome::Skipped;
            }
            return outcome;
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let s = session.clone();
    let p = plan.clone();
    shared.pool.spawn(move || {
        let _ = tx.send(compute_and_keep(&s, job, key, &p, &args, &locations));
    });
    rx.await
        .unwrap_or_else(|_| Outcome::Failed("the worker pool stopped".into()))
}

/// A task that failed on inputs a GPU lost: they go from the store and are
/// reported missing, so the scheduler recomputes them and runs the task again.
/// A chunk made again under the same key since stays, and is not reported:
/// the task runs again on it.
fn lost_inputs(
    session: &Session,
    (args, locations): (&[Arc<Chunk>], &[pb::ChunkLocation]),
    lost: &[usize],
) -> Outcome {
    let mut missing = Vec::with_capacity(lost.len());
    for &i in lost {
        let (Some(loc), Some(chunk)) = (locations.get(i), args.get(i)) else {
            continue;
        };
        if let Ok((j, k)) = task_from(loc.task.as_ref()) {
            tracing::warn!(
                job = j,
                stage = k.stage.0,
                chunk = k.chunk,
                "a chunk the GPU lost"
            );
            if !session.shared.store.remove_if_same(j, k, chunk) {
                continue;
            }
        }
        missing.push(loc.clone());
    }
    Outcome::Missing(missing)
}

/// A chunk of this worker's store, read back from disk off the async threads
/// if it was spilled.
pub(crate) fn local_chunk(store: &Store, job: u64, key: ChunkKey) -> Option<Arc<Chunk>> {
    if store.is_spilled(job, key) {
        crate::blocking(|| store.get(job, key))
    } else {
        store.get(job, key)
    }
}

/// A task of a remote source: its box of the client's array, fetched from
/// the client's data plane.
async fn fetch_remote(
    session: &Session,
    job: u64,
    key: ChunkKey,
    plan: &Plan,
    r: &accel_core::plan::RemoteSource,
) -> Outcome {
    let origin = plan.chunk_origin(key);
    let local = plan.chunk_shape(key);
    let hi: Vec<usize> = origin.iter().zip(&local).map(|(o, l)| o + l).collect();
    let whole = ChunkKey {
        stage: accel_core::StageId(0),
        chunk: 0,
    };
    let fetched = match session.shared.client_fetches.acquire().await {
        Ok(_permit) => {
            session
                .shared
                .peers
                .fetch(&r.address, r.id, whole, Some((origin, hi)), &r.credential)
                .await
        }
        Err(_) => Err("the worker is stopping".into()),
    };
    if !session.dequeue(job, key) {
        return Outcome::Skipped;
    }
    let chunk = match fetched {
        Ok(c) if c.shape == local && c.col_count() == 1 && c.dtype() == Some(r.dtype) => c,
        Ok(_) => {
            return Outcome::Failed("the client sent a box of the wrong shape or dtype".into());
        }
        Err(e) => {
            return Outcome::Failed(format!(
                "could not fetch this chunk of the client's array from {}: {e}",
                r.address
            ));
        }
    };
    session.note_started(job, key);
    let nbytes = chunk.nbytes() as u64;
    if session
        .shared
        .store
        .insert(session.generation, job, key, chunk)
    {
        Outcome::Done(nbytes)
    } else {
        Outcome::Skipped
    }
}

/// A task's inputs, local or fetched from peers concurrently (stencil tasks
/// fetch only the halo strips they read). Every input that cannot be had
/// from where the scheduler said is reported at once.
async fn gather(
    session: &Session,
    plan: &Plan,
    key: ChunkKey,
    inputs: Vec<pb::ChunkLocation>,
) -> Result<Vec<Arc<Chunk>>, Outcome> {
    let shared = &session.shared;
    let regions = plan.input_regions(key);
    let credential = shared.data_key.credential();
    let credential = credential.as_slice();
    let fetches = inputs.into_iter().enumerate().map(|(n, loc)| {
        let region = regions.as_ref().and_then(|r| r.get(n).cloned());
        async move {
            let (j, k) = task_from(loc.task.as_ref()).map_err(|e| (loc.clone(), e.to_string()))?;
            match local_chunk(&shared.store, j, k) {
                Some(c) => Ok(c),
                None => shared
                    .peers
                    .fetch(&loc.address, j, k, region, credential)
                    .await
                    .map_err(|e| (loc, e)),
            }
        }
    });
    let results = futures::future::join_all(fetches).await;
    let mut args = Vec::with_capacity(results.len());
    let mut missing = Vec::new();
    for r in results {
        match r {
            Ok(c) => args.push(c),
            Err((loc, e)) => {
                tracing::warn!(worker = loc.worker, address = %loc.address, "input unavailable: {e}");
                missing.push(loc);
            }
        }
    }
    if missing.is_empty() {
        Ok(args)
    } else {
        Err(Outcome::Missing(missing))
    }
}

/// Copies chunks from peers (a retiring worker's) and keeps them.
pub(crate) async fn replicate(session: Arc<Session>, batch: pb::ReplicateBatch) {
    let shared = &session.shared;
    let generation = session.generation;
    let credential = shared.data_key.credential();
    let credential = credential.as_slice();
    let copies = batch.chunks.into_iter().map(|loc| async move {
        let id = loc.task.unwrap_or_default();
        let Ok((j, k)) = task_from(loc.task.as_ref()) else {
            return Err(id);
        };
        match shared
            .peers
            .fetch(&loc.address, j, k, None, credential)
            .await
        {
            Ok(c) => {
                let nbytes = c.nbytes() as u64;
                if shared.store.insert(generation, j, k, c) {
                    Ok(pb::FinishedTask {
                        task: Some(id),
                        nbytes,
                    })
                } else {
                    Err(id)
                }
            }
            Err(e) => {
                tracing::warn!(address = %loc.address, "copy failed: {e}");
                Err(id)
            }
        }
    });
    let mut report = pb::ReplicaReport::default();
    for r in futures::future::join_all(copies).await {
        match r {
            Ok(done) => report.done.push(done),
            Err(id) => report.failed.push(id),
        }
    }
    session.report(Report::Other(worker_message::Msg::Replicated(report)));
}
