//! One job's tasks: their dependencies and lifecycle.
//!
//! ```text
//! Waiting ──inputs in memory──▶ Ready ──assigned──▶ Processing ──finished──▶ Memory ──no consumer left──▶ Released
//!                                 ▲                     │ worker lost
//!                                 └─────────────────────┘
//! ```
//! A failed task fails the job; a job that fails or is cancelled releases
//! everything it holds.

use std::sync::Arc;

use accel_core::{ChunkKey, Plan, StageId};

use super::ids::{ClientId, WorkerId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Waiting,
    Ready,
    Processing(WorkerId),
    Memory { worker: WorkerId, nbytes: u64 },
    Released,
}

/// Tasks of stage s are numbered `first[s]..first[s + 1]`.
#[derive(Debug)]
pub struct Job {
    pub client: ClientId,
    pub plan: Arc<Plan>,
    first: Vec<usize>,
    pub state: Vec<TaskState>,
    /// Inputs of each task, and consumers (compressed rows).
    inputs: Vec<Vec<u32>>,
    consumers: Vec<Vec<u32>>,
    /// Inputs not yet in memory.
    pub missing: Vec<u32>,
    /// Consumers not yet finished, plus one while the client needs an output.
    pub refs: Vec<u32>,
    pub is_output: Vec<bool>,
    pub unfinished: usize,
}

impl Job {
    /// Builds the task graph; refuses a plan whose tasks read later tasks.
    pub fn new(client: ClientId, plan: Arc<Plan>) -> Result<Job, String> {
        plan.validate().map_err(|e| e.to_string())?;
        let mut first = Vec::with_capacity(plan.stages.len() + 1);
        let mut total = 0usize;
        for s in &plan.stages {
            first.push(total);
            total += s.task_count();
        }
        first.push(total);
        let mut job = Job {
            client,
            plan: plan.clone(),
            first,
            state: vec![TaskState::Waiting; total],
            inputs: Vec::with_capacity(total),
            consumers: vec![Vec::new(); total],
            missing: vec![0; total],
            refs: vec![0; total],
            is_output: vec![false; total],
            unfinished: total,
        };
        for id in 0..total {
            let ins: Vec<u32> = plan
                .task_inputs(job.key(id))
                .into_iter()
                .map(|k| job.id(k))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("task {id} reads a chunk outside the plan"))?;
            if ins.iter().any(|&i| i as usize >= id) {
                return Err(format!("task {id} depends on a later task (cyclic plan)"));
            }
            for &i in &ins {
                job.consumers[i as usize].push(id as u32);
                job.refs[i as usize] += 1;
            }
            job.missing[id] = ins.len() as u32;
            job.inputs.push(ins);
        }
        for s in &plan.outputs {
            let (a, b) = job
                .range(*s)
                .ok_or_else(|| format!("output stage {} is not in the plan", s.0))?;
            for id in a..b {
                if !job.is_output[id] {
                    job.is_output[id] = true;
                    job.refs[id] += 1;
                }
            }
        }
        for id in 0..total {
            if job.missing[id] == 0 {
                job.state[id] = TaskState::Ready;
            }
        }
        Ok(job)
    }

    pub fn len(&self) -> usize {
        self.state.len()
    }

    fn range(&self, s: StageId) -> Option<(usize, usize)> {
        Some((*self.first.get(s.index())?, *self.first.get(s.index() + 1)?))
    }

    pub fn id(&self, k: ChunkKey) -> Option<u32> {
        let (a, b) = self.range(k.stage)?;
        let id = a + k.chunk as usize;
        (id < b).then_some(id as u32)
    }

    pub fn key(&self, id: usize) -> ChunkKey {
        let s = self.first.partition_point(|&f| f <= id).saturating_sub(1);
        ChunkKey {
            stage: StageId(s as u32),
            chunk: (id - self.first[s]) as u32,
        }
    }

    pub fn inputs(&self, id: usize) -> &[u32] {
        &self.inputs[id]
    }

    pub fn consumers(&self, id: usize) -> &[u32] {
        &self.consumers[id]
    }

    /// Output task ids per requested output, in chunk order.
    pub fn outputs(&self) -> Vec<Vec<usize>> {
        self.plan
            .outputs
            .iter()
            .map(|s| {
                self.range(*s)
                    .map(|(a, b)| (a..b).collect())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Where a task's chunk is, if it is in memory.
    pub fn location(&self, id: usize) -> Option<WorkerId> {
        match self.state[id] {
            TaskState::Memory { worker, .. } => Some(worker),
            _ => None,
        }
    }
}
