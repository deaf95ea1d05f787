//! The worker's chunks (in memory, or spilled to local disk) and the plans of
//! its jobs.
//!
//! Everything belongs to a *generation*: one registration with a scheduler.
//! When the worker starts afresh (scheduler lost, or it was declared dead),
//! the generation changes and whatever a task of the old one produces later
//! is dropped instead of stored, so nothing outlives the session it was made for.
//!
//! Chunks in memory are kept in least-recently-used order; the memory
//! manager spills the oldest to disk when the worker holds too much, and a
//! spilled chunk is read back, transparently, by whoever asks for it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use accel_core::fast_hash::FastMap;
use accel_core::{Chunk, ChunkKey, Plan};

use crate::spill::{self, SpillDir};

type Key = (u64, ChunkKey);

/// Bytes in memory whose release, or serving, is done in a blocking section
/// (see [`Store::removal_may_block`] and [`Store::small_on_host`]).
pub const LARGE_RELEASE: usize = 1 << 20;

/// Chunks per release done in a blocking section whatever their size: the
/// store's lock is held for all of them.
pub const MANY_RELEASED: usize = 4096;

enum Slot {
    /// `gpu`: the chunk's values were only on a GPU when counted, so its
    /// bytes are in `on_gpu`, not `in_memory` (see [`Store::settle`]).
    Memory {
        chunk: Arc<Chunk>,
        tick: u64,
        gpu: bool,
    },
    Disk {
        path: PathBuf,
        on_disk: u64,
    },
}

#[derive(Default)]
struct Inner {
    generation: u64,
    /// Keyed by a job's id and dense stage and chunk indices, which only
    /// the scheduler (relaying a client's plan) adds; peers and clients
    /// only look up: a fast hash.
    chunks: FastMap<Key, Slot>,
    /// Chunks in memory by last use.
    lru: BTreeMap<u64, Key>,
    tick: u64,
    /// Bytes of the chunks in host memory, on disk (as stored), and whose
    /// values were only on a GPU when last counted.
    in_memory: u64,
    on_disk: u64,
    on_gpu: u64,
    plans: HashMap<u64, Arc<Plan>>,
    /// Plans that arrived but could not be decoded, with why.
    bad_plans: HashMap<u64, String>,
    /// Files of spilled chunks dropped under the lock, deleted once it is
    /// let go (see [`Locked`]).
    doomed: Vec<PathBuf>,
}

impl Inner {
    fn touch(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The count a chunk in memory is in: host memory, or the GPU's.
    fn memory_count(&mut self, gpu: bool) -> &mut u64 {
        if gpu {
            &mut self.on_gpu
        } else {
            &mut self.in_memory
        }
    }

    /// Keeps `chunk` in memory at `key`, counted where its values are.
    fn put(&mut self, key: Key, chunk: Arc<Chunk>) {
        let tick = self.touch();
        let gpu = !chunk.on_host();
        *self.memory_count(gpu) += chunk.nbytes() as u64;
        if let Some(old) = self.chunks.insert(key, Slot::Memory { chunk, tick, gpu }) {
            self.discard(old);
        }
        self.lru.insert(tick, key);
    }

    /// Drops a slot's accounting (and its file).
    fn discard(&mut self, slot: Slot) {
        match slot {
            Slot::Memory { chunk, tick, gpu } => {
                self.lru.remove(&tick);
                *self.memory_count(gpu) -= chunk.nbytes() as u64;
            }
            Slot::Disk { path, on_disk, .. } => {
                self.on_disk -= on_disk;
                self.doomed.push(path);
            }
        }
    }
}

/// What the store holds, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Chunks in host memory (those left on a GPU are in `on_gpu`).
    pub in_memory: u64,
    pub on_disk: u64,
    /// Chunks whose values were only in GPU memory when last counted: they
    /// take no host memory, and spilling cannot free them.
    pub on_gpu: u64,
    pub chunks: usize,
    pub spilled: usize,
}

pub struct Store {
    inner: Mutex<Inner>,
    spill: SpillDir,
    /// Memory above which an insert wakes the memory manager (0: never).
    pressure_at: AtomicU64,
    pressure: Condvar,
}

impl Default for Store {
    fn default() -> Store {
        Store::new(None)
    }
}

/// What the worker knows of a job's plan.
pub enum PlanState {
    Ready(Arc<Plan>),
    Unusable(String),
    /// Never received, or forgotten because the job ended.
    Absent,
}

impl Store {
    /// A store that spills into `dir` (by default a fresh temporary folder,
    /// removed with the store).
    pub fn new(dir: Option<PathBuf>) -> Store {
        Store {
            inner: Mutex::default(),
            spill: SpillDir::new(dir),
            pressure_at: AtomicU64::new(0),
            pressure: Condvar::new(),
        }
    }

    fn lock(&self) -> Locked<'_> {
        Locked(Some(
            self.inner.lock().unwrap_or_else(PoisonError::into_inner),
        ))
    }

    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Drops every chunk and plan and starts a new generation.
    pub fn reset(&self) -> u64 {
        let mut s = self.lock();
        s.generation += 1;
        let slots: Vec<Slot> = s.chunks.drain().map(|(_, v)| v).collect();
        for slot in slots {
            s.discard(slot);
        }
        s.plans = HashMap::new();
        s.bad_plans = HashMap::new();
        s.generation
    }

    /// The chunk if it is in memory (marked as just used), or the file it
    /// was spilled to.
    fn lookup(&self, job: u64, key: ChunkKey) -> Option<Result<Arc<Chunk>, PathBuf>> {
        let mut s = self.lock();
        let tick = s.touch();
        match s.chunks.get_mut(&(job, key))? {
            Slot::Memory { chunk, tick: t, .. } => {
                let (chunk, old) = (chunk.clone(), std::mem::replace(t, tick));
                s.lru.remove(&old);
                s.lru.insert(tick, (job, key));
                Some(Ok(chunk))
            }
            Slot::Disk { path, .. } => Some(Err(path.clone())),
        }
    }

    /// The chunk if it is in memory now (a spilled one is not read back).
    pub fn get_in_memory(&self, job: u64, key: ChunkKey) -> Option<Arc<Chunk>> {
        self.lookup(job, key)?.ok()
    }

    /// The chunk, read back from disk if it was spilled (blocking I/O: call
    /// it off the async threads when [`Store::is_spilled`]).
    pub fn get(&self, job: u64, key: ChunkKey) -> Option<Arc<Chunk>> {
        let path = match self.lookup(job, key)? {
            Ok(chunk) => return Some(chunk),
            Err(path) => path,
        };
        let chunk = match spill::read(&path) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!("reading spilled chunk {}: {e}", path.display());
                return None;
            }
        };
        // Back in memory, unless it changed meanwhile.
        let mut s = self.lock();
        if matches!(s.chunks.get(&(job, key)), Some(Slot::Disk { path: p, .. }) if *p == path) {
            s.put((job, key), chunk.clone());
            self.wake_if_pressed(&s);
        }
        Some(chunk)
    }

    /// Whether the chunk is held in memory (a `get` costs nothing).
    pub fn in_memory(&self, job: u64, key: ChunkKey) -> bool {
        matches!(
            self.lock().chunks.get(&(job, key)),
            Some(Slot::Memory { .. })
        )
    }

    /// Whether the chunk is on disk (a `get` would read it back).
    pub fn is_spilled(&self, job: u64, key: ChunkKey) -> bool {
        matches!(self.lock().chunks.get(&(job, key)), Some(Slot::Disk { .. }))
    }

    /// Whether the chunk is in host memory here and small (under
    /// [`LARGE_RELEASE`] bytes): reading or cropping it touches neither the
    /// disk nor a GPU, and copies little.
    pub fn small_on_host(&self, job: u64, key: ChunkKey) -> bool {
        matches!(
            self.lock().chunks.get(&(job, key)),
            Some(Slot::Memory { chunk, .. }) if chunk.on_host() && chunk.nbytes() < LARGE_RELEASE
        )
    }

    /// Whether removing `keys` may block: one is on disk (a file to
    /// delete), together they hold at least [`LARGE_RELEASE`] bytes in
    /// memory (large blocks go back to the system, page by page), or they
    /// are [`MANY_RELEASED`] or more.
    pub fn removal_may_block(&self, keys: &[(u64, ChunkKey)]) -> bool {
        if keys.len() >= MANY_RELEASED {
            return true;
        }
        let s = self.lock();
        let mut bytes = 0;
        for k in keys {
            match s.chunks.get(k) {
                Some(Slot::Disk { .. }) => return true,
                Some(Slot::Memory { chunk, .. }) => bytes += chunk.nbytes(),
                None => {}
            }
            if bytes >= LARGE_RELEASE {
                return true;
            }
        }
        false
    }

    /// Keeps a chunk made in `generation`, if that is still the current one
    /// and its job is still known; returns whether it was kept.
    pub fn insert(&self, generation: u64, job: u64, key: ChunkKey, chunk: Arc<Chunk>) -> bool {
        let mut s = self.lock();
        if s.generation != generation || !s.plans.contains_key(&job) {
            return false;
        }
        s.put((job, key), chunk);
        self.wake_if_pressed(&s);
        true
    }

    pub fn remove(&self, job: u64, key: ChunkKey) {
        self.remove_all(&[(job, key)]);
    }

    /// Removes every chunk of `keys` under one lock (the files of spilled
    /// ones are deleted after it).
    pub fn remove_all(&self, keys: &[(u64, ChunkKey)]) {
        let mut s = self.lock();
        for k in keys {
            if let Some(old) = s.chunks.remove(k) {
                s.discard(old);
            }
        }
    }

    /// Removes the chunk at `key` if it is `chunk` (one found lost), not
    /// one made again since under the same key. Returns whether the key is
    /// without a chunk now (false: a new one is there).
    pub fn remove_if_same(&self, job: u64, key: ChunkKey, chunk: &Arc<Chunk>) -> bool {
        let mut s = self.lock();
        match s.chunks.get(&(job, key)) {
            None => true,
            Some(Slot::Memory { chunk: c, .. }) if Arc::ptr_eq(c, chunk) => {
                if let Some(old) = s.chunks.remove(&(job, key)) {
                    s.discard(old);
                }
                true
            }
            Some(_) => false,
        }
    }

    /// Counts the chunks a GPU left in memory that have been read back
    /// since (by a task, a peer or the client) as host memory.
    pub fn settle(&self) {
        let mut s = self.lock();
        if s.on_gpu == 0 {
            return;
        }
        let mut moved = 0;
        for slot in s.chunks.values_mut() {
            if let Slot::Memory { chunk, gpu, .. } = slot
                && *gpu
                && chunk.on_host()
            {
                *gpu = false;
                moved += chunk.nbytes() as u64;
            }
        }
        s.on_gpu -= moved;
        s.in_memory += moved;
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
        let gone: Vec<Key> = s
            .chunks
            .keys()
            .filter(|(j, _)| *j == job)
            .copied()
            .collect();
        for k in gone {
            if let Some(old) = s.chunks.remove(&k) {
                s.discard(old);
            }
        }
    }

    /// Number of chunks held, in memory or on disk.
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

    pub fn usage(&self) -> Usage {
        let s = self.lock();
        Usage {
            in_memory: s.in_memory,
            on_disk: s.on_disk,
            on_gpu: s.on_gpu,
            chunks: s.chunks.len(),
            spilled: s.chunks.len() - s.lru.len(),
        }
    }

    /// Writes the least recently used chunk in host memory to disk; returns
    /// the bytes it freed (0: nothing left to spill). A chunk whose values
    /// are only on a GPU is passed over: reading it back to write it out
    /// would take host memory, not free it. A failed write (a full disk)
    /// leaves the chunk in memory and is returned as the error.
    pub fn spill_one(&self) -> std::io::Result<u64> {
        let (key, chunk) = {
            let s = self.lock();
            let oldest = s.lru.values().find_map(|key| match s.chunks.get(key) {
                Some(Slot::Memory { chunk, .. }) if chunk.on_host() => Some((*key, chunk.clone())),
                _ => None,
            });
            match oldest {
                Some(found) => found,
                None => return Ok(0),
            }
        };
        let (path, on_disk) = self.spill.write(&chunk)?;
        let mut s = self.lock();
        let same = matches!(s.chunks.get(&key), Some(Slot::Memory { chunk: c, .. }) if Arc::ptr_eq(c, &chunk));
        if !same {
            // Removed or replaced while it was written: the file is not needed.
            let _ = std::fs::remove_file(&path);
            return Ok(0);
        }
        let nbytes = chunk.nbytes() as u64;
        if let Some(Slot::Memory { tick, gpu, .. }) =
            s.chunks.insert(key, Slot::Disk { path, on_disk })
        {
            s.lru.remove(&tick);
            *s.memory_count(gpu) -= nbytes;
        }
        s.on_disk += on_disk;
        Ok(nbytes)
    }

    /// Where spilled chunks go.
    pub fn spill_dir(&self) -> &std::path::Path {
        self.spill.path()
    }

    /// Inserts beyond `bytes` in memory wake [`Store::wait_pressure`].
    pub fn set_pressure_at(&self, bytes: u64) {
        self.pressure_at.store(bytes, Ordering::Relaxed);
    }

    fn wake_if_pressed(&self, s: &Inner) {
        let at = self.pressure_at.load(Ordering::Relaxed);
        if at > 0 && s.in_memory > at {
            self.pressure.notify_all();
        }
    }

    /// Waits until memory goes past the pressure mark, or `timeout`.
    pub fn wait_pressure(&self, timeout: std::time::Duration) {
        let s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .pressure
            .wait_timeout(s, timeout)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// The store's state, locked. The files of spilled chunks dropped meanwhile
/// are deleted once the lock is let go: a job forgotten with thousands of
/// them holds up no task that keeps a chunk.
struct Locked<'a>(Option<MutexGuard<'a, Inner>>);

impl std::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        // Only `drop` takes the guard out.
        self.0.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.0.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Some(mut guard) = self.0.take() else {
            return;
        };
        let doomed = std::mem::take(&mut guard.doomed);
        drop(guard);
        for path in doomed {
            let _ = std::fs::remove_file(path);
        }
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

    fn chunk(v: f64) -> Arc<Chunk> {
        Arc::new(Chunk::array(
            vec![100],
            accel_core::Buffer::F64(vec![v; 100]),
        ))
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
        assert!(!s.insert(g, 1, key(0), chunk(1.0)), "no plan for job 1 yet");
        s.add_plan(g, 1, Ok(plan()));
        assert!(s.insert(g, 1, key(0), chunk(1.0)));
        assert_eq!(s.len(), 1);
        s.forget(1);
        assert_eq!((s.len(), s.plan_count()), (0, 0));
        assert!(!s.insert(g, 1, key(1), chunk(1.0)), "job 1 ended");
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
        assert!(!s.insert(g, 2, key(0), chunk(1.0)), "made before the reset");
        assert!(s.insert(g2, 2, key(0), chunk(1.0)));
        assert!(s.is_current(g2, 2) && !s.is_current(g, 2));
    }

    #[test]
    fn the_least_recently_used_chunk_spills_first_and_comes_back_on_use() {
        let s = Store::default();
        let g = s.generation();
        s.add_plan(g, 1, Ok(plan()));
        for c in 0..4 {
            s.insert(g, 1, key(c), chunk(c as f64));
        }
        s.get(1, key(0)); // chunk 0 used last: 1 is now the oldest
        assert_eq!(s.spill_one().unwrap(), 800);
        assert!(s.is_spilled(1, key(1)));
        assert!(!s.is_spilled(1, key(0)));
        assert_eq!(s.spill_one().unwrap(), 800);
        assert!(s.is_spilled(1, key(2)));
        let u = s.usage();
        assert_eq!((u.in_memory, u.chunks, u.spilled), (1600, 4, 2));
        assert!(u.on_disk > 0);
        // Read back transparently, bit for bit, and in memory again.
        assert_eq!(*s.get(1, key(1)).unwrap(), *chunk(1.0));
        assert!(!s.is_spilled(1, key(1)));
        assert_eq!(s.usage().in_memory, 2400);
        // Forgetting the job removes its files.
        let dir = s.spill_dir().to_path_buf();
        s.forget(1);
        assert_eq!(s.usage(), Usage::default());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[derive(Debug)]
    struct OnGpu;

    impl accel_core::buffer::DeviceCopy for OnGpu {
        fn download(&self) -> Result<accel_core::Buffer, String> {
            Ok(accel_core::Buffer::F64(vec![7.0; 100]))
        }
    }

    #[test]
    fn chunks_only_on_a_gpu_are_not_spilled() {
        let s = Store::default();
        let g = s.generation();
        s.add_plan(g, 1, Ok(plan()));
        let on_gpu = Arc::new(Chunk::on_device(
            vec![100],
            accel_core::DType::F64,
            Arc::new(OnGpu),
        ));
        s.insert(g, 1, key(0), on_gpu.clone());
        s.insert(g, 1, key(1), chunk(1.0));
        // It takes no host memory: what spilling can free is counted apart.
        let u = s.usage();
        assert_eq!((u.in_memory, u.on_gpu), (800, 800));
        // The oldest is on the GPU: the host chunk goes instead.
        assert_eq!(s.spill_one().unwrap(), 800);
        assert!(s.is_spilled(1, key(1)) && !s.is_spilled(1, key(0)));
        assert_eq!(s.spill_one().unwrap(), 0);
        assert!(!on_gpu.on_host());
        let u = s.usage();
        assert_eq!((u.in_memory, u.on_gpu), (0, 800));
        // Once read back, it is a host chunk like any other, and counted as
        // one when the store settles.
        on_gpu.data().unwrap();
        s.settle();
        let u = s.usage();
        assert_eq!((u.in_memory, u.on_gpu), (800, 0));
        assert_eq!(s.spill_one().unwrap(), 800);
        assert!(s.is_spilled(1, key(0)));
        assert_eq!(s.usage().in_memory, 0);
        assert_eq!(
            *s.get(1, key(0)).unwrap().data().unwrap(),
            accel_core::Buffer::F64(vec![7.0; 100])
        );
    }

    /// What decides whether a release or a peer's fetch leaves the async
    /// threads: a spilled chunk (or one on a GPU) touches a disk or a
    /// device; a release of large chunks, or of very many, takes long.
    #[test]
    fn spilled_gpu_large_or_many_chunks_make_removal_or_serving_block() {
        let s = Store::default();
        let g = s.generation();
        s.add_plan(g, 1, Ok(plan()));
        for c in 0..3 {
            s.insert(g, 1, key(c), chunk(c as f64));
        }
        let on_gpu = Arc::new(Chunk::on_device(
            vec![100],
            accel_core::DType::F64,
            Arc::new(OnGpu),
        ));
        s.insert(g, 1, key(3), on_gpu);
        assert_eq!(s.spill_one().unwrap(), 800); // chunk 0, the oldest host chunk
        assert!(!s.small_on_host(1, key(0)) && s.small_on_host(1, key(1)));
        assert!(!s.small_on_host(1, key(3)), "its values are on the GPU");
        assert!(!s.small_on_host(1, key(9)), "not here");
        let (memory, all) = (
            [(1, key(1)), (1, key(9))],
            [(1, key(0)), (1, key(1)), (1, key(2)), (1, key(3))],
        );
        assert!(!s.removal_may_block(&memory) && s.removal_may_block(&all));
        let big = Arc::new(Chunk::array(
            vec![LARGE_RELEASE / 8],
            accel_core::Buffer::F64(vec![0.0; LARGE_RELEASE / 8]),
        ));
        s.insert(g, 1, key(4), big);
        assert!(s.removal_may_block(&[(1, key(4))]), "a large block to free");
        assert!(!s.small_on_host(1, key(4)), "a large block to copy from");
        // Chunks that only together reach the size.
        let half = || {
            Arc::new(Chunk::array(
                vec![LARGE_RELEASE / 16],
                accel_core::Buffer::F64(vec![0.0; LARGE_RELEASE / 16]),
            ))
        };
        s.insert(g, 1, key(5), half());
        s.insert(g, 1, key(6), half());
        assert!(s.small_on_host(1, key(5)) && !s.removal_may_block(&[(1, key(5))]));
        assert!(s.removal_may_block(&[(1, key(5)), (1, key(6))]));
        let many: Vec<_> = (0..MANY_RELEASED as u32)
            .map(|c| (1, key(100 + c)))
            .collect();
        assert!(s.removal_may_block(&many), "many keys, none of them here");
        assert!(!s.removal_may_block(&many[1..]));
        let dir = s.spill_dir().to_path_buf();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        s.remove_all(&all);
        s.remove_all(&[(1, key(4)), (1, key(5)), (1, key(6))]);
        assert_eq!(s.usage(), Usage::default());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn a_lost_chunk_goes_but_not_the_one_made_again_under_its_key() {
        let s = Store::default();
        let g = s.generation();
        s.add_plan(g, 1, Ok(plan()));
        let (lost, again) = (chunk(1.0), chunk(2.0));
        s.insert(g, 1, key(0), lost.clone());
        s.insert(g, 1, key(0), again.clone());
        assert!(!s.remove_if_same(1, key(0), &lost));
        assert!(s.in_memory(1, key(0)));
        assert!(s.remove_if_same(1, key(0), &again));
        assert!(!s.in_memory(1, key(0)));
        assert!(s.remove_if_same(1, key(0), &again));
        assert_eq!(s.usage(), Usage::default());
    }

    #[test]
    fn a_disk_that_refuses_writes_keeps_the_data_in_memory() {
        // A spill "folder" under a regular file cannot be created, even by root.
        let blocker = std::env::temp_dir().join(format!("accel-not-a-dir-{}", std::process::id()));
        std::fs::write(&blocker, b"x").unwrap();
        let s = Store::new(Some(blocker.join("spill")));
        let g = s.generation();
        s.add_plan(g, 1, Ok(plan()));
        s.insert(g, 1, key(0), chunk(3.0));
        assert!(s.spill_one().is_err());
        assert!(!s.is_spilled(1, key(0)));
        assert_eq!(s.usage().in_memory, 800);
        assert_eq!(*s.get(1, key(0)).unwrap(), *chunk(3.0));
        std::fs::remove_file(&blocker).unwrap();
    }
}
