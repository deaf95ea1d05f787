//! The worker's memory limit: above a target share of it, the least recently
//! used chunks are spilled to local disk; above the pause share, the worker
//! starts no new task or fetch (and tells the scheduler) until it is back
//! under. All of this runs on its own thread: heartbeats and chunk serving
//! never wait for a disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::Store;

/// Memory settings, with Dask's default fractions.
#[derive(Clone, Debug)]
pub struct MemoryConfig {
    /// Bytes this worker may use; `None`: no limit (nothing is spilled).
    pub limit: Option<u64>,
    /// Spill chunks while the chunks held in memory exceed this share of the limit.
    pub target: f64,
    /// Spill chunks while the process's resident memory exceeds this share.
    pub spill: f64,
    /// Start nothing new while the process's resident memory exceeds this share.
    pub pause: f64,
    /// Where spilled chunks go (default: a fresh temporary folder, removed on exit).
    pub local_directory: Option<PathBuf>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            limit: None,
            target: 0.6,
            spill: 0.7,
            pause: 0.8,
            local_directory: None,
        }
    }
}

/// How often memory is looked at when nothing wakes the manager earlier.
const TICK: Duration = Duration::from_millis(50);
/// After a failed spill (a full disk), how long before trying again.
const BACKOFF: Duration = Duration::from_secs(5);
/// Paused this long with nothing left to spill: the memory is not the
/// worker's chunks (it is still held by running tasks, or never returned to
/// the system), and waiting longer would only stall the worker.
const STUCK: Duration = Duration::from_secs(10);

/// The resident memory of this process, in bytes (Linux; `None` elsewhere).
pub fn process_rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

pub use accel_core::memory::total_memory;

/// Parses a memory limit: bytes (`4000000000`), with a unit (`4GiB`, `4GB`,
/// `512MiB`, `4G`), `auto` (the machine's memory times this worker's share of
/// its cores) or `0` (none).
pub fn parse_limit(s: &str, nthreads: usize) -> Result<Option<u64>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("auto") {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let share = (nthreads as f64 / cores as f64).min(1.0);
        return Ok(total_memory().map(|t| (t as f64 * share) as u64));
    }
    let bytes =
        accel_core::memory::parse_bytes(s).map_err(|e| format!("{e}; or auto, or 0 for none"))?;
    Ok((bytes > 0).then_some(bytes))
}

/// The memory manager's thread; stops when dropped.
pub struct Manager {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Says whether any task is gathering inputs or running (holding memory
/// that is not yet in the store).
pub type Busy = Arc<dyn Fn() -> bool + Send + Sync>;

/// Starts watching `store` under `config`; the receiver says whether the
/// worker is paused.
pub fn start(
    store: Arc<Store>,
    config: &MemoryConfig,
    busy: Busy,
) -> (Manager, watch::Receiver<bool>) {
    let (paused, rx) = watch::channel(false);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = config.limit.map(|limit| {
        let (config, stop) = (config.clone(), stop.clone());
        std::thread::Builder::new()
            .name("accel-memory".into())
            .spawn(move || watch_memory(&store, &config, limit, &busy, &paused, &stop))
    });
    let thread = match thread {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            tracing::error!("cannot start the memory manager: {e}; memory is not limited");
            None
        }
        None => None,
    };
    (Manager { stop, thread }, rx)
}

fn watch_memory(
    store: &Store,
    c: &MemoryConfig,
    limit: u64,
    busy: &Busy,
    paused: &watch::Sender<bool>,
    stop: &AtomicBool,
) {
    let at = |f: f64| (limit as f64 * f) as u64;
    store.set_pressure_at(at(c.target));
    let mut failing_until: Option<Instant> = None;
    let mut paused_since: Option<Instant> = None;
    let mut resumed_until: Option<Instant> = None;
    let mut warned_unmanaged = false;
    while !stop.load(Ordering::Relaxed) {
        // Chunks a GPU made count as host memory once read back to the host.
        store.settle();
        let can_spill = failing_until.is_none_or(|t| Instant::now() >= t);
        let mut spilled = 0u64;
        if can_spill {
            loop {
                let rss = process_rss().unwrap_or(0);
                let held = store.usage().in_memory;
                if held <= at(c.target) && rss <= at(c.spill) {
                    break;
                }
                match store.spill_one() {
                    Ok(0) => break,
                    Ok(n) => spilled += n,
                    Err(e) => {
                        tracing::warn!(
                            dir = %store.spill_dir().display(),
                            "cannot spill to disk ({e}): the chunks stay in memory"
                        );
                        failing_until = Some(Instant::now() + BACKOFF);
                        break;
                    }
                }
                if spilled > 0 && rss > at(c.spill) {
                    // Give freed memory back so the next reading reflects it.
                    accel_core::memory::release_free_memory();
                }
            }
        }
        if spilled > 0 {
            tracing::debug!(bytes = spilled, "spilled to disk");
        }
        let mut rss = process_rss().unwrap_or(0);
        let nothing_held = store.usage().in_memory == 0;
        if rss > at(c.pause) && nothing_held {
            // Freed chunks the allocator kept count as resident until trimmed.
            accel_core::memory::release_free_memory();
            rss = process_rss().unwrap_or(0);
        }
        let over = rss > at(c.pause) && resumed_until.is_none_or(|t| Instant::now() >= t);
        // With no chunks to spill and no task holding memory, pausing cannot
        // bring memory down: it is the process's own (code, buffers, heap).
        let unmanaged = over && nothing_held && !busy();
        let stuck = over && nothing_held && paused_since.is_some_and(|t| t.elapsed() > STUCK);
        let now_paused = over && !stuck && !unmanaged;
        if unmanaged && !warned_unmanaged {
            tracing::warn!(
                rss,
                limit,
                "memory is above the pause limit with no chunks held and no task running: \
                 the limit is too small for this worker; not pausing"
            );
        }
        warned_unmanaged = unmanaged || (warned_unmanaged && over);
        if stuck {
            tracing::warn!(
                rss,
                limit,
                "memory stays above the pause limit with nothing left to spill: resuming"
            );
            resumed_until = Some(Instant::now() + 3 * STUCK);
        }
        if now_paused != *paused.borrow() {
            if now_paused {
                tracing::warn!(rss, limit, "memory above the pause limit: pausing");
                paused_since = Some(Instant::now());
            } else {
                tracing::info!(rss, limit, "memory back under the pause limit: resuming");
                paused_since = None;
            }
            paused.send_replace(now_paused);
        }
        store.wait_pressure(TICK);
    }
}

/// Tests that read this process's memory run one at a time.
#[cfg(test)]
static RSS_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use accel_core::{Buffer, Chunk, ChunkKey, Plan, StageId};

    #[test]
    fn limits_parse_like_dask_s() {
        assert_eq!(parse_limit("0", 1).unwrap(), None);
        assert_eq!(parse_limit("4GiB", 1).unwrap(), Some(4 << 30));
        assert_eq!(parse_limit("4 GB", 1).unwrap(), Some(4_000_000_000));
        assert_eq!(parse_limit("512MiB", 1).unwrap(), Some(512 << 20));
        assert_eq!(parse_limit("1.5G", 1).unwrap(), Some(1_500_000_000));
        assert_eq!(parse_limit("123", 1).unwrap(), Some(123));
        assert!(parse_limit("lots", 1).is_err());
        assert!(parse_limit("4 parsecs", 1).is_err());
        let auto = parse_limit("auto", 1).unwrap().unwrap();
        assert!(auto > 0 && auto <= total_memory().unwrap());
    }

    #[test]
    fn chunks_above_the_target_spill_in_the_background() {
        let store = Arc::new(Store::default());
        let g = store.generation();
        store.add_plan(
            g,
            1,
            Ok(Arc::new(Plan {
                stages: vec![],
                outputs: vec![],
                sinks: vec![],
            })),
        );
        // A limit far above this process's memory, so only the chunks count:
        // 10 MB of chunks against a target of 0.6 × 10 MB... of chunk memory.
        let _one = RSS_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let rss = process_rss().unwrap();
        let config = MemoryConfig {
            limit: Some(rss * 10),
            target: 8e6 / (rss * 10) as f64,
            ..MemoryConfig::default()
        };
        let (manager, paused) = start(store.clone(), &config, Arc::new(|| false));
        for c in 0..10u32 {
            let key = ChunkKey {
                stage: StageId(0),
                chunk: c,
            };
            let data = Buffer::F64(vec![c as f64; 125_000]); // 1 MB
            store.insert(g, 1, key, Arc::new(Chunk::array(vec![125_000], data)));
        }
        let start = Instant::now();
        while store.usage().in_memory > 8_000_000 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nothing was spilled"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let u = store.usage();
        assert!(u.spilled >= 2 && u.chunks == 10, "{u:?}");
        assert!(!*paused.borrow());
        // Every chunk reads back, the spilled ones from disk.
        for c in 0..10u32 {
            let key = ChunkKey {
                stage: StageId(0),
                chunk: c,
            };
            let got = store.get(1, key).unwrap();
            assert_eq!(*got.data().unwrap(), Buffer::F64(vec![c as f64; 125_000]));
        }
        drop(manager);
    }
}

#[cfg(test)]
mod pause_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use accel_core::{Buffer, Chunk, ChunkKey, Plan, StageId};

    fn wait(rx: &watch::Receiver<bool>, want: bool) {
        let start = Instant::now();
        while *rx.borrow() != want {
            assert!(start.elapsed() < Duration::from_secs(10), "never {want}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_worker_pauses_above_the_pause_share_and_resumes_below_it() {
        let store = Arc::new(Store::default());
        let g = store.generation();
        let plan = Plan {
            stages: vec![],
            outputs: vec![],
            sinks: vec![],
        };
        store.add_plan(g, 1, Ok(Arc::new(plan)));
        let key = ChunkKey {
            stage: StageId(0),
            chunk: 0,
        };
        store.insert(
            g,
            1,
            key,
            Arc::new(Chunk::array(vec![1], Buffer::F64(vec![0.0]))),
        );
        let _one = RSS_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let rss = process_rss().unwrap();
        // Pause 100 MB above what this process holds now, never spill.
        let limit = rss + (400 << 20);
        let config = MemoryConfig {
            limit: Some(limit),
            target: 1.0,
            spill: 1.0,
            pause: (rss + (100 << 20)) as f64 / limit as f64,
            local_directory: None,
        };
        let (manager, paused) = start(store, &config, Arc::new(|| false));
        assert!(!*paused.borrow());
        let mut ballast = vec![1u8; 200 << 20];
        ballast.iter_mut().step_by(4096).for_each(|b| *b = 2);
        wait(&paused, true);
        drop(ballast);
        accel_core::memory::release_free_memory();
        wait(&paused, false);
        drop(manager);
    }
}

#[cfg(test)]
mod unmanaged_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Memory the worker's chunks do not account for, with no task running,
    /// cannot be brought down by pausing: the worker keeps working. The same
    /// memory while a task runs pauses it.
    #[test]
    fn memory_no_chunk_or_task_holds_does_not_pause_the_worker() {
        let _one = RSS_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let rss = process_rss().unwrap();
        let limit = rss + (400 << 20);
        let config = MemoryConfig {
            limit: Some(limit),
            target: 1.0,
            spill: 1.0,
            pause: (rss + (100 << 20)) as f64 / limit as f64,
            local_directory: None,
        };
        let mut ballast = vec![1u8; 200 << 20];
        ballast.iter_mut().step_by(4096).for_each(|b| *b = 2);
        let busy = Arc::new(AtomicBool::new(false));
        let probe: Busy = {
            let busy = busy.clone();
            Arc::new(move || busy.load(Ordering::Relaxed))
        };
        let (manager, paused) = start(Arc::new(Store::default()), &config, probe);
        std::thread::sleep(TICK * 6);
        assert!(!*paused.borrow(), "paused with nothing to wait for");
        busy.store(true, Ordering::Relaxed);
        let start = Instant::now();
        while !*paused.borrow() {
            assert!(start.elapsed() < Duration::from_secs(10), "never paused");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(ballast);
        drop(manager);
    }
}
