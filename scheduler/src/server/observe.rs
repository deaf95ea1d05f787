//! What the event loop records for the dashboard and `/metrics`, beyond
//! the core's own status: worker addresses and heartbeats, tasks done per
//! worker, job timings and outcomes (the last ones kept after they end),
//! and how long the loop's batches take. Every update is O(1) per event;
//! a snapshot costs O(workers + stages).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::core::{Command, CoreStatus, Event, JobId, JobStatus, WorkerId};

/// Ended jobs kept for the dashboard.
const HISTORY: usize = 100;

#[derive(Clone, Debug, Serialize)]
pub struct WorkerView {
    pub id: u32,
    pub address: String,
    /// Seconds since its last message.
    pub last_seen_s: f64,
    pub tasks_done: u64,
    /// Resources it offers (`--resources`).
    pub resources: Vec<(String, f64)>,
    /// What it holds, from its last heartbeat.
    pub bytes_in_memory: u64,
    pub bytes_spilled: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    pub id: u64,
    /// "running", "done" or "failed".
    pub state: &'static str,
    pub error: Option<String>,
    /// Seconds since it was submitted, and how long it ran (when it ended).
    pub age_s: f64,
    pub duration_s: Option<f64>,
    /// Its stages and their progress (as of when it ended, for ended jobs).
    pub status: JobStatus,
}

/// One task as the dashboard's task stream draws it.
#[derive(Clone, Debug, Serialize)]
pub struct TaskSpan {
    pub worker: u32,
    pub job: u64,
    pub stage: u32,
    pub kind: &'static str,
    /// Seconds since the scheduler started.
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LoopView {
    pub batches: u64,
    pub busy_s: f64,
    /// The longest batch in the last few seconds.
    pub recent_max_batch_s: f64,
}

/// Everything the dashboard shows, taken from the loop in one go.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub uptime_s: f64,
    pub core: CoreStatus,
    pub workers: Vec<WorkerView>,
    pub jobs: Vec<JobView>,
    pub event_loop: LoopView,
    /// The last tasks of each worker (about 1000 per thread), oldest first.
    pub task_stream: Vec<TaskSpan>,
}

struct JobRecord {
    submitted: Instant,
    ended: Option<(Instant, &'static str, Option<String>)>,
    /// The last status seen while it ran (what an ended job shows).
    last: Option<JobStatus>,
}

/// Tasks kept in the stream per worker thread.
const STREAM_PER_THREAD: usize = 1000;
/// Start times kept at most (tasks of workers that vanish are dropped).
const MAX_STARTED: usize = 200_000;

pub(super) struct Observer {
    started: Instant,
    /// When each running task started.
    starts: HashMap<crate::core::TaskRef, Instant>,
    stream: HashMap<WorkerId, (usize, VecDeque<TaskSpan>)>,
    resources: HashMap<WorkerId, Vec<(String, f64)>>,
    held: HashMap<WorkerId, (u64, u64)>,
    tasks_done: HashMap<WorkerId, u64>,
    jobs: HashMap<JobId, JobRecord>,
    ended: VecDeque<JobId>,
    batches: u64,
    busy: Duration,
    window: (Instant, Duration),
    last_window_max: Duration,
}

impl Observer {
    pub fn new() -> Observer {
        let now = Instant::now();
        Observer {
            started: now,
            starts: HashMap::new(),
            stream: HashMap::new(),
            resources: HashMap::new(),
            held: HashMap::new(),
            tasks_done: HashMap::new(),
            jobs: HashMap::new(),
            ended: VecDeque::new(),
            batches: 0,
            busy: Duration::ZERO,
            window: (now, Duration::ZERO),
            last_window_max: Duration::ZERO,
        }
    }

    /// Forgets what it keeps of workers no longer attached (lost, retired,
    /// or silent: not every way a worker goes passes through `event`).
    pub fn retain_workers(&mut self, attached: impl Fn(WorkerId) -> bool) {
        self.stream.retain(|w, _| attached(*w));
        self.resources.retain(|w, _| attached(*w));
        self.held.retain(|w, _| attached(*w));
        self.tasks_done.retain(|w, _| attached(*w));
    }

    pub fn stats(&mut self, worker: WorkerId, s: accel_proto::pb::WorkerStats) {
        self.held
            .insert(worker, (s.bytes_in_memory, s.bytes_spilled));
    }

    pub fn attached(&mut self, worker: WorkerId, resources: Vec<(String, f64)>) {
        self.resources.insert(worker, resources);
    }

    pub fn submitted(&mut self, job: JobId) {
        self.jobs.insert(
            job,
            JobRecord {
                submitted: Instant::now(),
                ended: None,
                last: None,
            },
        );
    }

    pub fn event(&mut self, e: &Event, core: &crate::core::Core) {
        match e {
            Event::WorkerJoined {
                worker, nthreads, ..
            } => {
                let cap = STREAM_PER_THREAD * (*nthreads).max(1) as usize;
                self.stream.insert(*worker, (cap, VecDeque::new()));
            }
            Event::TasksStarted { tasks, .. } => {
                if self.starts.len() > MAX_STARTED {
                    self.starts.clear();
                }
                let now = Instant::now();
                for t in tasks {
                    self.starts.insert(*t, now);
                }
            }
            Event::TaskFinished { worker, task, .. } => {
                *self.tasks_done.entry(*worker).or_default() += 1;
                let end = Instant::now();
                let start = self.starts.remove(task).unwrap_or(end);
                let kind = core.stage_kind(task.job, task.key.stage).unwrap_or("?");
                if let Some((cap, spans)) = self.stream.get_mut(worker) {
                    spans.push_back(TaskSpan {
                        worker: worker.0,
                        job: task.job.0,
                        stage: task.key.stage.0,
                        kind,
                        start_s: (start - self.started).as_secs_f64(),
                        end_s: (end - self.started).as_secs_f64(),
                    });
                    while spans.len() > *cap {
                        spans.pop_front();
                    }
                }
            }
            Event::WorkerLost { worker } => {
                self.stream.remove(worker);
                self.held.remove(worker);
            }
            _ => {}
        }
    }

    /// Notes jobs ending among `cmds`, with their progress as they end.
    pub fn commands(&mut self, cmds: &[Command], core: &crate::core::Core) {
        for c in cmds {
            let (job, state, error) = match c {
                Command::JobDone { job, .. } => (*job, "done", None),
                Command::JobFailed { job, error, .. } => (*job, "failed", Some(error.clone())),
                _ => continue,
            };
            let last = core.job_status(job);
            let Some(r) = self.jobs.get_mut(&job) else {
                continue;
            };
            if r.ended.is_none() {
                self.ended.push_back(job);
            }
            r.ended = Some((Instant::now(), state, error));
            if last.is_some() {
                r.last = last;
            }
        }
        while self.ended.len() > HISTORY {
            if let Some(old) = self.ended.pop_front() {
                self.jobs.remove(&old);
            }
        }
    }

    /// One batch of the loop took `took`.
    pub fn batch(&mut self, took: Duration) {
        self.batches += 1;
        self.busy += took;
        let now = Instant::now();
        if now - self.window.0 > Duration::from_secs(5) {
            self.last_window_max = self.window.1;
            self.window = (now, Duration::ZERO);
        }
        self.window.1 = self.window.1.max(took);
    }

    pub fn snapshot(
        &self,
        core: CoreStatus,
        workers: &HashMap<WorkerId, (String, Instant)>,
    ) -> Snapshot {
        let now = Instant::now();
        let mut views: Vec<WorkerView> = core
            .workers
            .iter()
            .map(|w| {
                let id = WorkerId(w.id);
                let (address, seen) = workers
                    .get(&id)
                    .map(|(a, t)| (a.clone(), (now - *t).as_secs_f64()))
                    .unwrap_or_default();
                WorkerView {
                    id: w.id,
                    address,
                    last_seen_s: seen,
                    tasks_done: self.tasks_done.get(&id).copied().unwrap_or(0),
                    resources: self.resources.get(&id).cloned().unwrap_or_default(),
                    bytes_in_memory: self.held.get(&id).map_or(0, |h| h.0),
                    bytes_spilled: self.held.get(&id).map_or(0, |h| h.1),
                }
            })
            .collect();
        views.sort_by_key(|w| w.id);
        let live: HashMap<u64, &JobStatus> = core.jobs.iter().map(|j| (j.id, j)).collect();
        let mut jobs: Vec<JobView> = self
            .jobs
            .iter()
            .map(|(id, r)| {
                let status = live
                    .get(&id.0)
                    .map(|s| (*s).clone())
                    .or_else(|| r.last.clone())
                    .unwrap_or_else(|| JobStatus {
                        id: id.0,
                        ..JobStatus::default()
                    });
                let (state, error, duration) = match &r.ended {
                    Some((t, s, e)) => (*s, e.clone(), Some((*t - r.submitted).as_secs_f64())),
                    None => ("running", None, None),
                };
                JobView {
                    id: id.0,
                    state,
                    error,
                    age_s: (now - r.submitted).as_secs_f64(),
                    duration_s: duration,
                    status,
                }
            })
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
        Snapshot {
            uptime_s: (now - self.started).as_secs_f64(),
            core,
            workers: views,
            jobs,
            task_stream: self
                .stream
                .values()
                .flat_map(|(_, spans)| spans.iter().cloned())
                .collect(),
            event_loop: LoopView {
                batches: self.batches,
                busy_s: self.busy.as_secs_f64(),
                recent_max_batch_s: self.last_window_max.max(self.window.1).as_secs_f64(),
            },
        }
    }
}
