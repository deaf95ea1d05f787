//! One job's tasks: their dependencies, lifecycle and lineage.
//!
//! ```text
//! Waiting ──inputs in memory──▶ Ready ──assigned──▶ Processing ──finished──▶ Memory ──no consumer left──▶ Released
//!    ▲                            ▲                     │ worker lost,          │ holder lost, or         │ needed again
//!    │                            └─────────────────────┘ input missing,        │ a copy was missing      │ to recompute
//!    └──────────────────────────────────────────────────── given back ◀─────────┴─────────────────────────┘ a lost chunk
//! ```
//! A chunk that is lost while something still needs it goes back to
//! Waiting/Ready and runs again; so do the released ancestors it needs
//! (recursively, only those). A pending recompute that nothing needs any more
//! is cancelled. A failed task fails the job; a job that ends releases
//! everything it holds.
//!
//! Counters kept exact at every step (checked by `Core::sanity_check`):
//! `refs[i]` = unfinished consumers of i (with multiplicity) + 1 while the
//! client needs it as an output; `missing[i]` (pending tasks only) = inputs
//! not in memory; `unfinished` = tasks not in Memory/Released.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use accel_core::{ChunkKey, Plan, StageId};

use super::ids::{ClientId, TaskRef, WorkerId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Waiting,
    Ready,
    Processing(WorkerId),
    Memory { worker: WorkerId, nbytes: u64 },
    Released,
}

impl TaskState {
    /// Not yet produced (again): counted in `unfinished` and in its inputs' refs.
    pub fn is_unfinished(self) -> bool {
        matches!(
            self,
            TaskState::Waiting | TaskState::Ready | TaskState::Processing(_)
        )
    }
}

/// Which per-stage count a state is in: waiting, ready, processing, done.
fn count_slot(s: TaskState) -> usize {
    match s {
        TaskState::Waiting => 0,
        TaskState::Ready => 1,
        TaskState::Processing(_) => 2,
        TaskState::Memory { .. } | TaskState::Released => 3,
    }
}

/// What a change to one job asks of the rest of the core.
#[derive(Debug, Default)]
pub struct Effects {
    /// Tasks that may have become or stopped being Ready: the ready queue
    /// follows their state.
    pub requeue: Vec<usize>,
    /// Chunks in memory that nothing needs any more, and where they are.
    pub released: Vec<(usize, WorkerId)>,
    /// Running tasks whose chunk nothing needs any more: no longer waited
    /// for (their result is released when it arrives).
    pub abandoned: Vec<(usize, WorkerId)>,
}

/// Tasks of stage s are numbered `first[s]..first[s + 1]`.
#[derive(Debug)]
pub struct Job {
    pub client: ClientId,
    pub plan: Arc<Plan>,
    first: Vec<usize>,
    pub state: Vec<TaskState>,
    /// Inputs of each task, and consumers (with multiplicity).
    inputs: Vec<Vec<u32>>,
    consumers: Vec<Vec<u32>>,
    /// Inputs not yet in memory (meaningful for Waiting and Ready tasks).
    pub missing: Vec<u32>,
    /// Unfinished consumers, plus one while the client needs an output.
    pub refs: Vec<u32>,
    pub is_output: Vec<bool>,
    pub unfinished: usize,
    /// Whether each task has produced its chunk at least once.
    done_before: Vec<bool>,
    /// Tasks that produced their chunk again because it had been lost.
    pub recomputed: usize,
    /// Names of the workers that died while running each task (sparse).
    pub blame: HashMap<u32, Vec<String>>,
    /// Names of the workers that died holding each task (sparse) when none
    /// of their tasks had reported starting.
    pub blame_unstarted: HashMap<u32, Vec<String>>,
    /// How often each chunk was lost (sparse), to stop a job that cannot keep its data.
    pub losses: HashMap<u32, u32>,
    /// Tasks that take over a chunk kept by another job (`persist`), and which.
    pub external: HashMap<u32, TaskRef>,
    /// The part of `external` whose chunk is not in memory now.
    pub external_missing: HashSet<u32>,
    /// Stages whose tasks read nothing but make large chunks that other
    /// stages consume: they are not sent faster than they are consumed.
    pub queued_roots: Vec<bool>,
    /// Per stage: its tasks waiting, ready, processing and done (in memory or
    /// released), kept with every state change (progress costs O(stages)).
    stage_counts: Vec<[u32; 4]>,
    /// Per stage: tasks finished so far, recomputes included.
    pub finished: Vec<u64>,
    /// Per stage: the `map_blocks` function its tasks call (they run only on
    /// workers offering it); empty when no stage calls one.
    functions: Vec<Option<String>>,
    /// Per stage: a fused kernel with an exact GPU form (empty: none has one).
    gpu_stages: Vec<bool>,
}

/// Task inputs one job's graph may hold in any case, counted over all its
/// tasks (each costs a few words in the scheduler); more only at up to
/// [`DEPENDENCIES_PER_TASK`] per task (a 3-D stencil reads 27).
pub const MAX_DEPENDENCIES: usize = 1 << 26;
pub const DEPENDENCIES_PER_TASK: usize = 32;

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
            done_before: vec![false; total],
            recomputed: 0,
            blame: HashMap::new(),
            blame_unstarted: HashMap::new(),
            losses: HashMap::new(),
            external: HashMap::new(),
            external_missing: HashSet::new(),
            queued_roots: Vec::new(),
            stage_counts: plan
                .stages
                .iter()
                .map(|s| [s.task_count() as u32, 0, 0, 0])
                .collect(),
            finished: vec![0; plan.stages.len()],
            functions: Vec::new(),
            gpu_stages: Vec::new(),
        };
        let gpu: Vec<bool> = plan
            .stages
            .iter()
            .map(|s| match &s.kind {
                accel_core::StageKind::Map(exe) | accel_core::StageKind::Partial { exe, .. } => {
                    accel_core::kernel::portable::check(&exe.program).is_ok()
                }
                // A stencil task runs on a GPU when every level can.
                accel_core::StageKind::Stencil(k) => k
                    .levels
                    .iter()
                    .all(|l| accel_core::kernel::portable::check(&l.exe.program).is_ok()),
                _ => false,
            })
            .collect();
        if gpu.contains(&true) {
            job.gpu_stages = gpu;
        }
        if plan
            .stages
            .iter()
            .any(|s| matches!(s.kind, accel_core::StageKind::MapBlocks(_)))
        {
            job.functions = plan
                .stages
                .iter()
                .map(|s| match &s.kind {
                    accel_core::StageKind::MapBlocks(call) => Some(call.name.clone()),
                    _ => None,
                })
                .collect();
        }
        let consumed: HashSet<usize> = plan
            .stages
            .iter()
            .flat_map(|s| s.inputs.iter().map(|i| i.index()))
            .collect();
        job.queued_roots = plan
            .stages
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let bytes =
                    accel_core::shape::size(&s.meta.chunks.max_chunk()) * s.meta.dtype.size();
                s.inputs.is_empty()
                    && !matches!(
                        s.kind,
                        accel_core::StageKind::Persisted { .. } | accel_core::StageKind::Held(_)
                    )
                    && consumed.contains(&k)
                    && bytes >= super::state::LARGE_ROOT_BYTES
            })
            .collect();
        let mut edges = 0usize;
        let most_edges = MAX_DEPENDENCIES.max(DEPENDENCIES_PER_TASK.saturating_mul(total));
        for id in 0..total {
            let ins: Vec<u32> = plan
                .task_inputs(job.key(id))
                .into_iter()
                .map(|k| job.id(k))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("task {id} reads a chunk outside the plan"))?;
            // A tiny plan can make every task read every chunk of an earlier
            // stage (a reshape or transpose across the chunking): bounded
            // here, before the graph takes the scheduler's memory.
            edges += ins.len();
            if edges > most_edges {
                let stage = job.key(id).stage;
                return Err(format!(
                    "the plan's tasks read more than {most_edges} chunks in all (a task of \
                     stage {} ({}) reads {}): choose larger chunks",
                    stage.0,
                    plan.stage(stage).kind_name(),
                    ins.len()
                ));
            }
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
                job.set(id, TaskState::Ready);
            }
        }
        Ok(job)
    }

    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Changes task `id`'s state, keeping the per-stage counts.
    pub fn set(&mut self, id: usize, to: TaskState) {
        let stage = self.key(id).stage.index();
        if let Some(c) = self.stage_counts.get_mut(stage) {
            c[count_slot(self.state[id])] -= 1;
            c[count_slot(to)] += 1;
        }
        self.state[id] = to;
    }

    /// Tasks of stage `s` waiting, ready, processing and done.
    pub fn stage_counts(&self, s: usize) -> [u32; 4] {
        self.stage_counts.get(s).copied().unwrap_or_default()
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

    /// The function task `id` calls, if it is a `map_blocks` task.
    pub fn needs(&self, id: usize) -> Option<&str> {
        if self.functions.is_empty() {
            return None;
        }
        self.functions.get(self.key(id).stage.index())?.as_deref()
    }

    /// Whether task `id` is a fused kernel a GPU can run.
    pub fn prefers_gpu(&self, id: usize) -> bool {
        !self.gpu_stages.is_empty()
            && self
                .gpu_stages
                .get(self.key(id).stage.index())
                .copied()
                .unwrap_or(false)
    }

    /// Every function the job's tasks call.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().flatten().map(String::as_str)
    }

    pub fn inputs(&self, id: usize) -> &[u32] {
        &self.inputs[id]
    }

    /// The tasks reading task `id`'s chunk (with multiplicity).
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

    /// Whether task `id` is a root whose sending is paced (see `queued_roots`).
    pub fn is_queued_root(&self, id: usize) -> bool {
        self.queued_roots
            .get(self.key(id).stage.index())
            .copied()
            .unwrap_or(false)
    }

    /// Where a task's chunk is, if it is in memory.
    pub fn location(&self, id: usize) -> Option<WorkerId> {
        match self.state[id] {
            TaskState::Memory { worker, .. } => Some(worker),
            _ => None,
        }
    }

    /// "map [sin·mul] stage 2 chunk 7": a task as users read it.
    pub fn describe(&self, id: usize) -> String {
        let key = self.key(id);
        let what = self
            .plan
            .stages
            .get(key.stage.index())
            .map(|s| format!("{} [{}] ", s.kind_name(), s.label))
            .unwrap_or_default();
        format!("{what}stage {} chunk {}", key.stage.0, key.chunk)
    }

    fn inputs_not_in_memory(&self, id: usize) -> u32 {
        let here = self.inputs[id]
            .iter()
            .filter(|&&i| self.location(i as usize).is_none())
            .count() as u32;
        here + u32::from(self.external_missing.contains(&(id as u32)))
    }

    /// The chunk another job keeps for task `id` went away (or is not there
    /// yet): the task waits for it.
    pub fn external_lost(&mut self, id: usize, fx: &mut Effects) {
        if !self.external_missing.insert(id as u32) {
            return;
        }
        match self.state[id] {
            TaskState::Ready => {
                self.set(id, TaskState::Waiting);
                self.missing[id] = 1;
                fx.requeue.push(id);
            }
            TaskState::Waiting => self.missing[id] += 1,
            _ => {}
        }
    }

    /// The chunk another job keeps for task `id` is in memory again.
    pub fn external_back(&mut self, id: usize, fx: &mut Effects) {
        if !self.external_missing.remove(&(id as u32)) {
            return;
        }
        if self.state[id] == TaskState::Waiting {
            self.missing[id] -= 1;
            if self.missing[id] == 0 {
                self.set(id, TaskState::Ready);
                fx.requeue.push(id);
            }
        }
    }

    /// Puts an unfinished task that is not running back in line: Ready if
    /// every input is in memory, else Waiting.
    pub fn set_pending(&mut self, id: usize, fx: &mut Effects) {
        debug_assert!(self.state[id].is_unfinished());
        fx.requeue.push(id);
        self.missing[id] = self.inputs_not_in_memory(id);
        if self.missing[id] == 0 {
            self.set(id, TaskState::Ready);
        } else {
            self.set(id, TaskState::Waiting);
        }
    }

    /// The chunk of `id` is gone (its holder was lost, or a copy could not be
    /// fetched), or a released chunk is needed again. Whatever still needs it
    /// makes it run again, and with it every released ancestor it reads.
    /// The caller has already taken it off its holder.
    pub fn invalidate(&mut self, id: usize, fx: &mut Effects) {
        let mut stack = vec![id];
        while let Some(x) = stack.pop() {
            let was_memory = match self.state[x] {
                TaskState::Memory { .. } => true,
                TaskState::Released => false,
                // Already pending: pushed twice through a repeated input.
                _ => continue,
            };
            if was_memory {
                // Consumers waiting in line counted it as present.
                for k in 0..self.consumers[x].len() {
                    let c = self.consumers[x][k] as usize;
                    match self.state[c] {
                        TaskState::Ready => {
                            self.set(c, TaskState::Waiting);
                            self.missing[c] = 1;
                            fx.requeue.push(c);
                        }
                        TaskState::Waiting => self.missing[c] += 1,
                        _ => {}
                    }
                }
            }
            if self.refs[x] == 0 {
                self.set(x, TaskState::Released);
                continue;
            }
            self.unfinished += 1;
            // Mark it pending before counting its inputs, so a released input
            // pushed below sees a consumer that already counts it as missing.
            self.set(x, TaskState::Waiting);
            for k in 0..self.inputs[x].len() {
                let i = self.inputs[x][k] as usize;
                self.refs[i] += 1;
                if self.state[i] == TaskState::Released {
                    stack.push(i);
                }
            }
            self.set_pending(x, fx);
        }
    }

    /// One consumer of `i` (or the client) no longer needs it.
    pub fn unref(&mut self, i: usize, fx: &mut Effects) {
        let mut stack = vec![i];
        while let Some(x) = stack.pop() {
            self.refs[x] = self.refs[x].saturating_sub(1);
            if self.refs[x] > 0 {
                continue;
            }
            match self.state[x] {
                TaskState::Memory { worker, .. } => {
                    self.set(x, TaskState::Released);
                    fx.released.push((x, worker));
                }
                // A recompute nothing waits for any more: cancelled (or, if
                // it runs, no longer waited for), and what it would have read
                // is let go in turn.
                TaskState::Waiting | TaskState::Ready | TaskState::Processing(_) => {
                    match self.state[x] {
                        TaskState::Processing(w) => fx.abandoned.push((x, w)),
                        _ => fx.requeue.push(x),
                    }
                    self.set(x, TaskState::Released);
                    self.unfinished -= 1;
                    stack.extend(self.inputs[x].iter().map(|&i| i as usize));
                }
                TaskState::Released => {}
            }
        }
    }

    /// Task `id` produced its chunk on `worker`.
    pub fn finish(&mut self, id: usize, worker: WorkerId, nbytes: u64, fx: &mut Effects) {
        self.set(id, TaskState::Memory { worker, nbytes });
        self.unfinished -= 1;
        let stage = self.key(id).stage.index();
        if let Some(f) = self.finished.get_mut(stage) {
            *f += 1;
        }
        if std::mem::replace(&mut self.done_before[id], true) {
            self.recomputed += 1;
        }
        for k in 0..self.consumers[id].len() {
            let c = self.consumers[id][k] as usize;
            if self.state[c] == TaskState::Waiting {
                self.missing[c] -= 1;
                if self.missing[c] == 0 {
                    self.set(c, TaskState::Ready);
                    fx.requeue.push(c);
                }
            }
        }
        for k in 0..self.inputs[id].len() {
            let i = self.inputs[id][k] as usize;
            self.unref(i, fx);
        }
        if self.refs[id] == 0 {
            self.set(id, TaskState::Released);
            fx.released.push((id, worker));
        }
    }

    /// Checks the counters against the states (tests and debug builds).
    pub fn check(&self) -> Result<(), String> {
        let mut counts = vec![[0u32; 4]; self.stage_counts.len()];
        for id in 0..self.len() {
            counts[self.key(id).stage.index()][count_slot(self.state[id])] += 1;
        }
        if counts != self.stage_counts {
            return Err(format!(
                "per-stage counts {:?} differ from the states' {counts:?}",
                self.stage_counts
            ));
        }
        let mut refs = vec![0u32; self.len()];
        let mut unfinished = 0;
        for id in 0..self.len() {
            if self.state[id].is_unfinished() {
                unfinished += 1;
                for &i in &self.inputs[id] {
                    refs[i as usize] += 1;
                    if self.state[i as usize] == TaskState::Released {
                        return Err(format!(
                            "task {id} is unfinished but its input {i} was released"
                        ));
                    }
                }
            }
            if matches!(self.state[id], TaskState::Waiting | TaskState::Ready) {
                let m = self.inputs_not_in_memory(id);
                if m != self.missing[id] {
                    return Err(format!(
                        "task {id} counts {} missing inputs, {m} are not in memory",
                        self.missing[id]
                    ));
                }
                if (m == 0) != (self.state[id] == TaskState::Ready) {
                    return Err(format!(
                        "task {id} is {:?} with {m} inputs missing",
                        self.state[id]
                    ));
                }
            }
        }
        for (id, counted) in refs.iter().enumerate() {
            let want = counted + u32::from(self.is_output[id]);
            if self.refs[id] != want {
                return Err(format!(
                    "task {id} has {} refs, {want} expected",
                    self.refs[id]
                ));
            }
            if self.refs[id] == 0 && matches!(self.state[id], TaskState::Memory { .. }) {
                return Err(format!("task {id} is held although nothing needs it"));
            }
        }
        if unfinished != self.unfinished {
            return Err(format!(
                "{} tasks counted unfinished, {unfinished} are",
                self.unfinished
            ));
        }
        Ok(())
    }
}
