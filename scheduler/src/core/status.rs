//! What the core can say about itself for dashboards and metrics, at a cost
//! of O(workers + stages): per-stage counts are kept as tasks change state,
//! never recounted.

use serde::Serialize;

use super::state::Core;

#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerStatus {
    pub id: u32,
    pub name: String,
    pub nthreads: u32,
    pub memory_limit: Option<u64>,
    /// Tasks assigned and not finished (queued or running).
    pub processing: usize,
    pub running: usize,
    /// Chunks it holds.
    pub chunks: usize,
    pub retiring: bool,
    pub paused: bool,
    pub functions: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StageStatus {
    pub id: u32,
    pub kind: &'static str,
    pub label: String,
    /// Stages it reads.
    pub inputs: Vec<u32>,
    pub tasks: usize,
    pub waiting: u32,
    pub ready: u32,
    pub processing: u32,
    pub done: u32,
    /// Tasks finished so far, recomputes included.
    pub finished: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct JobStatus {
    pub id: u64,
    pub tasks: usize,
    pub unfinished: usize,
    pub recomputed: usize,
    pub stages: Vec<StageStatus>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CoreStatus {
    pub workers: Vec<WorkerStatus>,
    pub jobs: Vec<JobStatus>,
    /// Tasks ready and waiting for a worker, all jobs together.
    pub ready: usize,
    /// Tasks finished since the core started, by stage kind.
    pub finished_by_kind: Vec<(&'static str, u64)>,
    /// Jobs ended since the core started: finished, failed.
    pub jobs_done: u64,
    pub jobs_failed: u64,
}

impl Core {
    /// The state of workers and jobs (no per-task work).
    pub fn status(&self) -> CoreStatus {
        let workers = self
            .workers
            .iter()
            .map(|(id, w)| WorkerStatus {
                id: id.0,
                name: w.name.clone(),
                nthreads: w.nthreads,
                memory_limit: w.memory_limit,
                processing: w.processing.len(),
                running: w.running.len(),
                chunks: w.holds.len(),
                retiring: w.retiring,
                paused: w.paused,
                functions: w.functions.iter().cloned().collect(),
            })
            .collect();
        let mut jobs: Vec<JobStatus> = self
            .jobs
            .keys()
            .filter_map(|id| self.job_status(*id))
            .collect();
        jobs.sort_by_key(|j| j.id);
        CoreStatus {
            workers,
            jobs,
            ready: self.ready.len(),
            finished_by_kind: self
                .finished_by_kind
                .iter()
                .map(|(k, n)| (*k, *n))
                .collect(),
            jobs_done: self.jobs_done,
            jobs_failed: self.jobs_failed,
        }
    }

    /// The kind of stage `stage` of `job` ("map", "partial", ...).
    pub fn stage_kind(
        &self,
        job: super::ids::JobId,
        stage: accel_core::StageId,
    ) -> Option<&'static str> {
        let j = self.jobs.get(&job)?;
        (stage.index() < j.plan.stages.len()).then(|| j.plan.stage(stage).kind_name())
    }

    /// Each job's tasks done and total: O(jobs).
    pub fn progress(&self) -> Vec<(super::ids::JobId, usize, usize)> {
        self.jobs
            .iter()
            .map(|(id, j)| (*id, j.len() - j.unfinished, j.len()))
            .collect()
    }

    /// One job's stages and their progress, if the job is known.
    pub fn job_status(&self, id: super::ids::JobId) -> Option<JobStatus> {
        let j = self.jobs.get(&id)?;
        Some(JobStatus {
            id: id.0,
            tasks: j.len(),
            unfinished: j.unfinished,
            recomputed: j.recomputed,
            stages: j
                .plan
                .stages
                .iter()
                .enumerate()
                .map(|(s, st)| {
                    let [waiting, ready, processing, done] = j.stage_counts(s);
                    StageStatus {
                        id: s as u32,
                        kind: st.kind_name(),
                        label: st.label.clone(),
                        inputs: st.inputs.iter().map(|i| i.0).collect(),
                        tasks: st.task_count(),
                        waiting,
                        ready,
                        processing,
                        done,
                        finished: j.finished.get(s).copied().unwrap_or(0),
                    }
                })
                .collect(),
        })
    }
}
