//! The worker's in-memory chunks and the plans of its jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use accel_core::{Chunk, ChunkKey, Plan};

#[derive(Default)]
pub struct Store {
    chunks: Mutex<HashMap<(u64, ChunkKey), Arc<Chunk>>>,
    plans: Mutex<HashMap<u64, Arc<Plan>>>,
}

impl Store {
    pub fn get(&self, job: u64, key: ChunkKey) -> Option<Arc<Chunk>> {
        self.chunks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(job, key))
            .cloned()
    }

    pub fn insert(&self, job: u64, key: ChunkKey, chunk: Arc<Chunk>) {
        self.chunks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((job, key), chunk);
    }

    pub fn remove(&self, job: u64, key: ChunkKey) {
        self.chunks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(job, key));
    }

    pub fn add_plan(&self, job: u64, plan: Arc<Plan>) {
        self.plans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(job, plan);
    }

    pub fn plan(&self, job: u64) -> Option<Arc<Plan>> {
        self.plans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&job)
            .cloned()
    }

    /// Number of chunks held.
    pub fn len(&self) -> usize {
        self.chunks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
