//! The worker's in-memory chunks and the plans of its jobs.
//!
//! Everything belongs to a *generation*: one registration with a scheduler.
//! When the worker starts afresh (scheduler lost, or it was declared dead),
//! the generation changes and whatever a task of the old one produces later
//! is dropped instead of stored, so nothing outlives the session it was made for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use accel_core::{Chunk, ChunkKey, Plan};

#[derive(Default)]
struct Inner {
    generation: u64,
    chunks: HashMap<(u64, ChunkKey), Arc<Chunk>>,
    plans: HashMap<u64, Arc<Plan>>,
    /// Plans that arrived but could not be decoded, with why.
    bad_plans: HashMap<u64, String>,
}

#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
}

/// What the worker knows of a job's plan.
pub enum PlanState {
    Ready(Arc<Plan>),
    Unusable(String),
    /// Never received, or forgotten because the job ended.
    Absent,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Drops every chunk and plan and starts a new generation.
    pub fn reset(&self) -> u64 {
        let mut s = self.lock();
        s.generation += 1;
        s.chunks = HashMap::new();
        s.plans = HashMap::new();
        s.bad_plans = HashMap::new();
        s.generation
    }

    pub fn get(&self, job: u64, key: ChunkKey) -> Option<Arc<Chunk>> {
        self.lock().chunks.get(&(job, key)).cloned()
    }

    /// Keeps a chunk made in `generation`, if that is still the current one
    /// and its job is still known; returns whether it was kept.
    pub fn insert(&self, generation: u64, job: u64, key: ChunkKey, chunk: Arc<Chunk>) -> bool {
        let mut s = self.lock();
        if s.generation != generation || !s.plans.contains_key(&job) {
            return false;
        }
        s.chunks.insert((job, key), chunk);
        true
    }

    pub fn remove(&self, job: u64, key: ChunkKey) {
        self.lock().chunks.remove(&(job, key));
    }

    pub fn add_plan(&self, generation: u64, job: u64, plan: Result<Arc<Plan>, String>) {
        let mut s = self.lock();
        if s.generation != generation {
            return;
        }
        match plan {
            Ok(p) => s.plans.insert(job, p).map(|_| ()),
            Err(e) => s.bad_plans.insert(job, e).map(|_| ()),
        };
    }

    pub fn plan(&self, job: u64) -> PlanState {
        let s = self.lock();
        if let Some(p) = s.plans.get(&job) {
            return PlanState::Ready(p.clone());
        }
        match s.bad_plans.get(&job) {
            Some(e) => PlanState::Unusable(e.clone()),
            None => PlanState::Absent,
        }
    }

    /// Whether tasks of `job` made in `generation` are still wanted.
    pub fn is_current(&self, generation: u64, job: u64) -> bool {
        let s = self.lock();
        s.generation == generation && s.plans.contains_key(&job)
    }

    /// The job ended: its plan and chunks go.
    pub fn forget(&self, job: u64) {
        let mut s = self.lock();
        s.plans.remove(&job);
        s.bad_plans.remove(&job);
        s.chunks.retain(|(j, _), _| *j != job);
    }

    /// Number of chunks held.
    pub fn len(&self) -> usize {
        self.lock().chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Jobs whose plans are held.
    pub fn plan_count(&self) -> usize {
        self.lock().plans.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use accel_core::StageId;

    fn key(c: u32) -> ChunkKey {
        ChunkKey {
            stage: StageId(0),
            chunk: c,
        }
    }

    fn chunk() -> Arc<Chunk> {
        Arc::new(Chunk::array(vec![1], accel_core::Buffer::F64(vec![1.0])))
    }

    fn plan() -> Arc<Plan> {
        Arc::new(Plan {
            stages: vec![],
            outputs: vec![],
            sinks: vec![],
        })
    }

    #[test]
    fn chunks_of_an_old_generation_or_a_forgotten_job_are_not_kept() {
        let s = Store::default();
        let g = s.generation();
        assert!(!s.insert(g, 1, key(0), chunk()), "no plan for job 1 yet");
        s.add_plan(g, 1, Ok(plan()));
        assert!(s.insert(g, 1, key(0), chunk()));
        assert_eq!(s.len(), 1);
        s.forget(1);
        assert_eq!((s.len(), s.plan_count()), (0, 0));
        assert!(!s.insert(g, 1, key(1), chunk()), "job 1 ended");
        s.add_plan(g, 2, Ok(plan()));
        let g2 = s.reset();
        assert_eq!(s.plan_count(), 0);
        s.add_plan(g, 3, Ok(plan()));
        assert_eq!(
            s.plan_count(),
            0,
            "a plan for the old generation is ignored"
        );
        s.add_plan(g2, 2, Ok(plan()));
        assert!(!s.insert(g, 2, key(0), chunk()), "made before the reset");
        assert!(s.insert(g2, 2, key(0), chunk()));
        assert!(s.is_current(g2, 2) && !s.is_current(g, 2));
    }
}
