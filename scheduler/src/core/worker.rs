//! What the core knows of one worker.

use std::collections::BTreeSet;

use super::ids::TaskRef;

/// Tasks a worker may hold assigned per thread: one running, one queued, so a
/// thread never waits for the scheduler and an idle newcomer still finds work.
const SLOTS_PER_THREAD: usize = 2;

#[derive(Debug, Default)]
pub struct Worker {
    pub name: String,
    pub nthreads: u32,
    /// Extra queued tasks beyond the per-thread slots (hides network latency).
    pub extra: usize,
    /// Assigned and not finished: queued or running.
    pub processing: BTreeSet<TaskRef>,
    /// The part of `processing` its threads reported started.
    pub running: BTreeSet<TaskRef>,
    pub holds: BTreeSet<TaskRef>,
    /// Stopping on purpose: no new work, its chunks move to peers.
    pub retiring: bool,
    /// Over its memory's pause limit: no new work until it says otherwise.
    pub paused: bool,
    pub memory_limit: Option<u64>,
    /// The `map_blocks` functions it can run.
    pub functions: BTreeSet<String>,
    /// GPUs it runs fused kernels on.
    pub gpus: u32,
}

impl Worker {
    pub fn capacity(&self) -> usize {
        if self.retiring || self.paused {
            return 0;
        }
        self.nthreads.max(1) as usize * SLOTS_PER_THREAD + self.extra
    }

    /// Whether it can run a task calling function `needs` (if any).
    pub fn offers(&self, needs: Option<&str>) -> bool {
        needs.is_none_or(|f| self.functions.contains(f))
    }

    pub fn has_room(&self) -> bool {
        self.processing.len() < self.capacity()
    }

    /// Whether it has fewer tasks than `saturation` per thread (rounded up).
    pub fn below_saturation(&self, saturation: f64) -> bool {
        let cap = (self.nthreads.max(1) as f64 * saturation).ceil();
        (self.processing.len() as f64) < cap
    }

    pub fn load(&self) -> f64 {
        self.processing.len() as f64 / self.nthreads.max(1) as f64
    }

    /// Threads with nothing assigned.
    pub fn idle_threads(&self) -> usize {
        if self.retiring || self.paused {
            return 0;
        }
        (self.nthreads.max(1) as usize).saturating_sub(self.processing.len())
    }

    /// Assigned tasks beyond one per thread.
    pub fn backlog(&self) -> usize {
        self.processing
            .len()
            .saturating_sub(self.nthreads.max(1) as usize)
    }
}
