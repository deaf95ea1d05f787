//! Chunks kept in device memory: a kernel's input that is a whole chunk (or
//! a chunk a stencil task places boxes of) is uploaded once, and a chunk a
//! kernel or a stencil task made keeps the device's copy, so later kernels
//! read it from the device while the chunk lives (a persisted array, an
//! intermediate several stages read, the previous block of a time loop). A chunk
//! never changes once made, and the entry holds a `Weak` to it: the chunk's
//! allocation, and so its address, cannot be reused while the entry exists,
//! so a live match is the same chunk and a dead one is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use accel_core::buffer::{Buffer, Chunk, DeviceCopy};
use accel_core::dtype::DType;

use crate::{Error, Result};

/// Device memory kept for chunks, at most (least recently used go first),
/// where the device's size is unknown (wgpu does not say).
pub const RESIDENT_LIMIT: u64 = 2 << 30;

/// The environment variable that sets the kept-copy limit (bytes, or with
/// a unit: `40GiB`).
pub const KEEP_VAR: &str = "ACCEL_GPU_KEEP";

/// The kept-copy limit: `setting` (the value of [`KEEP_VAR`]) when given,
/// else half the device's memory when known, else [`RESIDENT_LIMIT`].
pub fn keep_limit(setting: Option<&str>, device_memory: Option<u64>) -> Result<u64> {
    match (setting, device_memory) {
        (Some(s), _) => accel_core::memory::parse_bytes(s)
            .map_err(|e| Error::Choice(format!("{KEEP_VAR}: {e}"))),
        (None, Some(total)) => Ok(total / 2),
        (None, None) => Ok(RESIDENT_LIMIT),
    }
}

/// [`keep_limit`] from the environment.
pub(crate) fn keep_limit_from_env(device_memory: Option<u64>) -> Result<u64> {
    keep_limit(std::env::var(KEEP_VAR).ok().as_deref(), device_memory)
}

struct Entry<B> {
    chunk: Weak<Chunk>,
    buffer: Arc<B>,
    bytes: u64,
    used: u64,
    /// The chunk's values are only here and could not be read back: the
    /// entry stays (counted) until the chunk goes, and is not tried again.
    stuck: bool,
}

/// Device copies of chunks, by chunk.
pub(crate) struct Resident<B> {
    entries: Mutex<Vec<Entry<B>>>,
    limit: u64,
    clock: AtomicU64,
    hits: AtomicU64,
    state: Arc<DeviceState>,
}

/// What the chunks a device holds the only values of share: how many came
/// back, and whether the device is lost.
#[derive(Debug, Default)]
struct DeviceState {
    read_backs: AtomicU64,
    lost: AtomicBool,
}

/// Reads a chunk's values back from a backend's device memory.
pub(crate) trait ReadBack: Send + Sync + std::fmt::Debug + 'static {
    fn read(&self) -> std::result::Result<Buffer, String>;
}

/// A chunk's values left in device memory.
#[derive(Debug)]
struct LeftOnDevice<R> {
    reader: R,
    state: Arc<DeviceState>,
}

impl<R: ReadBack> DeviceCopy for LeftOnDevice<R> {
    fn download(&self) -> std::result::Result<Buffer, String> {
        if self.lost() {
            return Err("the GPU was lost".into());
        }
        let data = self.reader.read()?;
        self.state.read_backs.fetch_add(1, Ordering::Relaxed);
        Ok(data)
    }

    fn lost(&self) -> bool {
        self.state.lost.load(Ordering::Relaxed)
    }
}

impl<B> Resident<B> {
    pub(crate) fn with_limit(limit: u64) -> Self {
        Resident {
            entries: Mutex::new(Vec::new()),
            limit,
            clock: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            state: Arc::default(),
        }
    }

    /// The chunk of shape `local` and `dtype` whose values a finished
    /// kernel left in `buffer` (`bytes` long, which must fit: see
    /// [`Resident::fits`]); `reader` reads them back on first use on the host.
    pub(crate) fn leave_on_device(
        &self,
        local: &[usize],
        dtype: DType,
        (buffer, bytes): (Arc<B>, u64),
        reader: impl ReadBack,
    ) -> Arc<Chunk> {
        let copy = LeftOnDevice {
            reader,
            state: self.state.clone(),
        };
        let chunk = Arc::new(Chunk::on_device(local.to_vec(), dtype, Arc::new(copy)));
        self.keep(&chunk, buffer, bytes);
        chunk
    }

    /// Takes the device for lost: the values only it holds can no longer
    /// be read back (what a failed device does; the fault injection of the
    /// resilience tests calls it).
    pub(crate) fn lose(&self) {
        self.state.lost.store(true, Ordering::Relaxed);
    }

    /// Chunks read back so far (made on the device, then read on the
    /// host), and the chunks whose values are only on the device now, with
    /// their bytes.
    pub(crate) fn device_chunks(&self) -> (u64, usize, u64) {
        let (n, bytes) = self.device_only();
        (self.state.read_backs.load(Ordering::Relaxed), n, bytes)
    }

    /// The device copy of `chunk` (`bytes` long): the kept one, or one
    /// `upload` makes, kept when it fits in the limit (entries of chunks that
    /// died go at the next [`Resident::sweep`]).
    pub(crate) fn get_or_upload(
        &self,
        chunk: &Arc<Chunk>,
        bytes: u64,
        upload: impl FnOnce() -> Result<B>,
    ) -> Result<Arc<B>> {
        let me = Arc::downgrade(chunk);
        let kept = |entries: &mut Vec<Entry<B>>| {
            let now = self.clock.fetch_add(1, Ordering::Relaxed);
            let e = entries.iter_mut().find(|e| Weak::ptr_eq(&e.chunk, &me))?;
            e.used = now;
            Some(e.buffer.clone())
        };
        let lock = || {
            self.entries
                .lock()
                .map_err(|_| Error::Device("poisoned".into()))
        };
        let mut entries = lock()?;
        if let Some(buffer) = kept(&mut entries) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(buffer);
        }
        // A chunk whose values are on a device (another one's, or this
        // one's without a kept copy) is read back first, outside the lock
        // every other kernel's inputs wait on; meanwhile another thread may
        // have kept a copy.
        if !chunk.on_host() {
            drop(entries);
            chunk.cols()?;
            entries = lock()?;
            if let Some(theirs) = kept(&mut entries) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(theirs);
            }
        }
        // The upload itself runs under the lock: tasks that read the same
        // chunk at once upload it once.
        let buffer = Arc::new(upload()?);
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let evicted = self.admit(&mut entries, me, buffer.clone(), bytes, now);
        drop(entries);
        self.let_go(evicted);
        Ok(buffer)
    }

    /// Whether a copy of `bytes` would be kept (at most half the limit).
    pub(crate) fn fits(&self, bytes: u64) -> bool {
        bytes <= self.limit / 2
    }

    /// Keeps `buffer`, the device's copy of `chunk` (`bytes` long, made on
    /// the device: a kernel's result), for later kernels that read the chunk.
    /// A chunk whose values are only on the device must fit (see
    /// [`Resident::fits`]): its entry is what counts its memory.
    pub(crate) fn keep(&self, chunk: &Arc<Chunk>, buffer: Arc<B>, bytes: u64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let evicted = self.admit(&mut entries, Arc::downgrade(chunk), buffer, bytes, now);
        drop(entries);
        self.let_go(evicted);
    }

    /// Adds an entry when it fits in half the limit, the least recently
    /// used going first to make room. Hands back the entries that went of
    /// live chunks a device made (see [`Resident::let_go`]).
    fn admit(
        &self,
        entries: &mut Vec<Entry<B>>,
        chunk: Weak<Chunk>,
        buffer: Arc<B>,
        bytes: u64,
        now: u64,
    ) -> Vec<Evicted<B>> {
        let mut evicted = Vec::new();
        if !self.fits(bytes) {
            return evicted;
        }
        let mut held: u64 = entries.iter().map(|e| e.bytes).sum();
        if held + bytes > self.limit {
            // Dead chunks' copies go before live ones.
            entries.retain(|e| e.chunk.strong_count() > 0);
            held = entries.iter().map(|e| e.bytes).sum();
        }
        while held + bytes > self.limit {
            let Some(oldest) = (0..entries.len())
                .filter(|&i| !entries[i].stuck)
                .min_by_key(|&i| entries[i].used)
            else {
                break;
            };
            let gone = entries.swap_remove(oldest);
            held -= gone.bytes;
            // Whether its device copy must be read back or let go is
            // decided after the lock (the chunk's lock may be held by a read).
            if let Some(c) = gone.chunk.upgrade() {
                evicted.push((c, gone));
            }
        }
        entries.push(Entry {
            chunk,
            buffer,
            bytes,
            used: now,
            stuck: false,
        });
        evicted
    }

    /// Drops the copies of chunks that died, and hands back those buffers
    /// no kernel holds any more (for the device's pool).
    pub(crate) fn sweep(&self) -> Vec<B> {
        let Ok(mut entries) = self.entries.lock() else {
            return Vec::new();
        };
        let mut freed = Vec::new();
        // A stuck copy whose chunk the host has read since: let go.
        let mut read = Vec::new();
        let mut k = 0;
        while k < entries.len() {
            let e = &entries[k];
            let read_since = e.stuck && e.chunk.upgrade().is_some_and(|c| c.on_host());
            if e.chunk.strong_count() > 0 && !read_since {
                k += 1;
                continue;
            }
            let gone = entries.swap_remove(k);
            if read_since && let Some(c) = gone.chunk.upgrade() {
                read.push(c);
            }
            if let Ok(b) = Arc::try_unwrap(gone.buffer) {
                freed.push(b);
            }
        }
        drop(entries);
        for c in read {
            drop_device_copy(&c);
        }
        freed
    }

    /// Makes room after the device ran out of memory: drops every copy the
    /// host has the values of, and reads back the least recently used
    /// half (in bytes) of the chunks whose values are only on the device.
    pub(crate) fn clear(&self) {
        let mut read = Vec::new();
        let mut evicted = Vec::new();
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|e| match e.chunk.upgrade() {
                Some(c) if !c.on_host() => true,
                Some(c) => {
                    read.push(c);
                    false
                }
                None => false,
            });
            // Oldest last, stuck ones (nothing to gain) first.
            entries.sort_by_key(|e| (!e.stuck, std::cmp::Reverse(e.used)));
            let readable = entries.iter().filter(|e| !e.stuck);
            let mut to_free = readable.map(|e| e.bytes).sum::<u64>().div_ceil(2);
            while to_free > 0 && entries.last().is_some_and(|e| !e.stuck) {
                let Some(gone) = entries.pop() else { break };
                to_free = to_free.saturating_sub(gone.bytes);
                if let Some(c) = gone.chunk.upgrade() {
                    evicted.push((c, gone));
                }
            }
        }
        // A chunk a device made and the host read since still holds the
        // device's buffer: it goes with the entry.
        for c in read {
            drop_device_copy(&c);
        }
        self.let_go(evicted);
    }

    /// Bytes kept for live chunks whose values are only on the device.
    pub(crate) fn device_only(&self) -> (usize, u64) {
        self.entries.lock().map_or((0, 0), |e| {
            e.iter()
                .filter(|e| e.chunk.upgrade().is_some_and(|c| !c.on_host()))
                .fold((0, 0), |(n, b), e| (n + 1, b + e.bytes))
        })
    }

    /// Inputs read from device memory instead of uploaded, so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Chunks kept now (of live chunks: dead ones go at the next lookup).
    pub(crate) fn kept(&self) -> usize {
        self.entries.lock().map_or(0, |e| {
            e.iter().filter(|e| e.chunk.strong_count() > 0).count()
        })
    }
}

/// An entry that went to make room, with its live chunk.
type Evicted<B> = (Arc<Chunk>, Entry<B>);

impl<B> Resident<B> {
    /// Lets the device's memory of evicted entries go: a chunk whose values
    /// are only on the device is read back first, and one the host has
    /// read drops the device copy it still holds. A failed read keeps the
    /// copy, and its entry comes back (the memory is still taken, and
    /// counted, over the limit until the chunk goes).
    fn let_go(&self, evicted: Vec<Evicted<B>>) {
        for (c, mut entry) in evicted {
            if c.device_copy().is_none() {
                continue;
            }
            if let Err(e) = c.move_to_host() {
                tracing::warn!("keeping a chunk in device memory: {e}");
                entry.stuck = true;
                // Unless the chunk was read since and kept again: one entry.
                if let Ok(mut entries) = self.entries.lock()
                    && !entries.iter().any(|e| Weak::ptr_eq(&e.chunk, &entry.chunk))
                {
                    entries.push(entry);
                }
            }
        }
    }
}

/// Drops the device copy of a chunk the host has the values of.
fn drop_device_copy(c: &Chunk) {
    if c.on_host() {
        // Reads nothing: the values are on the host.
        let _ = c.move_to_host();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_limit_is_the_setting_or_half_the_device() {
        assert_eq!(keep_limit(Some("40GiB"), Some(1 << 40)).unwrap(), 40 << 30);
        assert_eq!(keep_limit(None, Some(140 << 30)).unwrap(), 70 << 30);
        assert_eq!(keep_limit(None, None).unwrap(), RESIDENT_LIMIT);
        let e = keep_limit(Some("lots"), None).unwrap_err().to_string();
        assert!(
            e.contains("ACCEL_GPU_KEEP") && e.contains("not a size"),
            "{e}"
        );
    }
    use accel_core::buffer::Buffer;

    fn chunk(v: f64) -> Arc<Chunk> {
        Arc::new(Chunk::array(vec![2], Buffer::F64(vec![v, v])))
    }

    #[test]
    fn a_chunk_is_uploaded_once_while_it_lives_and_the_oldest_go_first() {
        let kept: Resident<u32> = Resident::with_limit(48);
        let uploads = std::cell::Cell::new(0);
        let get = |c: &Arc<Chunk>, bytes| {
            kept.get_or_upload(c, bytes, || {
                uploads.set(uploads.get() + 1);
                Ok(uploads.get())
            })
            .unwrap()
        };
        let (a, b) = (chunk(1.0), chunk(2.0));
        assert_eq!((*get(&a, 16), *get(&a, 16)), (1, 1));
        assert_eq!((*get(&b, 16), *get(&b, 16)), (2, 2));
        // Over the limit: the least recently used (a) goes, then b.
        let c = chunk(3.0);
        assert_eq!(*get(&c, 24), 3);
        assert_eq!(*get(&a, 16), 4);
        assert_eq!(*get(&c, 24), 3);
        assert_eq!(*get(&b, 16), 5);
        // Larger than half the limit: uploaded every time, never kept.
        let big = chunk(5.0);
        assert_eq!((*get(&big, 40), *get(&big, 40)), (6, 7));
        assert_eq!(kept.hits(), 3);
        // A dead chunk's entry goes (its buffer back for the pool: no kernel
        // holds it); a new chunk is never taken for it.
        drop((a, b));
        assert_eq!(kept.kept(), 1);
        assert_eq!(kept.sweep(), vec![5]);
        let d = chunk(4.0);
        assert_eq!(*get(&d, 16), 8);
        assert_eq!(kept.kept(), 2);
        // Dead copies make room before live ones.
        drop(d);
        let e = chunk(7.0);
        assert_eq!(*get(&e, 24), 9);
        assert_eq!(*get(&c, 24), 3);
        // A copy made on the device, kept under its chunk.
        let made = chunk(6.0);
        kept.keep(&made, Arc::new(10), 8);
        assert_eq!(*get(&made, 8), 10);
        assert_eq!(kept.hits(), 5);
        kept.clear();
        assert_eq!(kept.kept(), 0);
    }

    #[derive(Debug)]
    struct OnDevice(Buffer, std::sync::atomic::AtomicUsize);

    impl accel_core::buffer::DeviceCopy for OnDevice {
        fn download(&self) -> std::result::Result<Buffer, String> {
            self.1.fetch_add(1, Ordering::Relaxed);
            Ok(self.0.clone())
        }
    }

    fn on_device(v: f64) -> (Arc<Chunk>, Arc<OnDevice>) {
        let copy = Arc::new(OnDevice(Buffer::F64(vec![v, v]), Default::default()));
        let chunk = Chunk::on_device(vec![2], accel_core::DType::F64, copy.clone());
        (Arc::new(chunk), copy)
    }

    #[test]
    fn a_chunk_only_on_the_device_is_read_back_before_its_copy_goes() {
        let kept: Resident<u32> = Resident::with_limit(32);
        let (a, a_copy) = on_device(1.0);
        let (b, b_copy) = on_device(2.0);
        kept.keep(&a, Arc::new(1), 16);
        kept.keep(&b, Arc::new(2), 16);
        assert_eq!(kept.device_only(), (2, 32));
        // Room for a third: the oldest (a) is read back, then its copy goes.
        let (c, _) = on_device(3.0);
        kept.keep(&c, Arc::new(3), 16);
        assert!(a.on_host() && a.device_copy().is_none());
        assert_eq!(a_copy.1.load(Ordering::Relaxed), 1);
        assert_eq!(*a.data().unwrap(), Buffer::F64(vec![1.0, 1.0]));
        assert_eq!(a_copy.1.load(Ordering::Relaxed), 1);
        assert!(!b.on_host() && b_copy.1.load(Ordering::Relaxed) == 0);
        assert_eq!(kept.device_only(), (2, 32));
        // A read on the host keeps the device's copy for its kernels.
        assert_eq!(*b.data().unwrap(), Buffer::F64(vec![2.0, 2.0]));
        assert_eq!(kept.device_only(), (1, 16));
        let uploads = std::cell::Cell::new(0);
        let got = kept.get_or_upload(&b, 16, || {
            uploads.set(1);
            Ok(9)
        });
        assert_eq!((*got.unwrap(), uploads.get()), (2, 0));
    }

    #[test]
    fn a_chunk_on_a_device_is_read_back_outside_the_entries_lock() {
        /// Values on a device whose read-back checks that the kept copies'
        /// lock is free meanwhile.
        struct Checked(Arc<Resident<u32>>);
        impl std::fmt::Debug for Checked {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Checked")
            }
        }
        impl DeviceCopy for Checked {
            fn download(&self) -> std::result::Result<Buffer, String> {
                match self.0.entries.try_lock() {
                    Ok(_) => Ok(Buffer::F64(vec![5.0, 5.0])),
                    Err(_) => Err("read back under the entries' lock".into()),
                }
            }
        }
        let kept: Arc<Resident<u32>> = Arc::new(Resident::with_limit(64));
        let elsewhere = Arc::new(Chunk::on_device(
            vec![2],
            DType::F64,
            Arc::new(Checked(kept.clone())),
        ));
        let got = kept.get_or_upload(&elsewhere, 16, || {
            assert_eq!(*elsewhere.data().unwrap(), Buffer::F64(vec![5.0, 5.0]));
            Ok(5)
        });
        assert_eq!(*got.unwrap(), 5);
        assert!(elsewhere.on_host());
        let again = kept.get_or_upload(&elsewhere, 16, || Ok(6)).unwrap();
        assert_eq!((*again, kept.hits()), (5, 1));
    }

    #[test]
    fn a_device_copy_goes_with_its_entry_and_out_of_memory_reads_back_the_oldest() {
        let kept: Resident<u32> = Resident::with_limit(32);
        let (a, _) = on_device(1.0);
        kept.keep(&a, Arc::new(1), 16);
        // Read on the host: the device's copy stays while its entry does.
        a.data().unwrap();
        assert!(a.device_copy().is_some());
        let (b, _) = on_device(2.0);
        kept.keep(&b, Arc::new(2), 16);
        let (c, _) = on_device(3.0);
        kept.keep(&c, Arc::new(3), 16);
        assert!(a.device_copy().is_none());
        assert_eq!(kept.device_only(), (2, 32));
        // Out of memory: the older half of the device-only chunks comes back.
        kept.clear();
        assert!(b.on_host() && b.device_copy().is_none());
        assert!(!c.on_host());
        assert_eq!((kept.device_only(), kept.kept()), ((1, 16), 1));
        assert_eq!(*b.data().unwrap(), Buffer::F64(vec![2.0; 2]));
        // And a chunk the host has read loses its copy with the entry.
        c.data().unwrap();
        kept.clear();
        assert!(c.device_copy().is_none() && kept.kept() == 0);
        assert_eq!(*c.data().unwrap(), Buffer::F64(vec![3.0; 2]));
    }

    /// Values no read can get back; counts the tries.
    #[derive(Debug, Default)]
    struct Unreadable(std::sync::atomic::AtomicUsize);

    impl accel_core::buffer::DeviceCopy for Unreadable {
        fn download(&self) -> std::result::Result<Buffer, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err("the device does not answer".into())
        }
    }

    #[test]
    fn a_copy_that_cannot_be_read_back_stays_counted_and_is_not_tried_again() {
        let kept: Resident<u32> = Resident::with_limit(32);
        let f64s = accel_core::DType::F64;
        let copy = Arc::new(Unreadable::default());
        let a = Arc::new(Chunk::on_device(vec![2], f64s, copy.clone()));
        kept.keep(&a, Arc::new(1), 16);
        let (b, _) = on_device(2.0);
        kept.keep(&b, Arc::new(2), 16);
        let (c, _) = on_device(3.0);
        kept.keep(&c, Arc::new(3), 16);
        // a could not make room: its copy and entry stay, over the limit.
        assert!(a.device_copy().is_some() && !a.on_host());
        assert_eq!(kept.device_only(), (3, 48));
        assert_eq!(copy.0.load(Ordering::Relaxed), 1);
        // Out of memory: the readable older half comes back (b), not a.
        kept.clear();
        assert!(a.device_copy().is_some() && b.on_host() && !c.on_host());
        assert_eq!(kept.device_only(), (2, 32));
        // Room for another: c goes, and a is not tried again.
        let (d, _) = on_device(4.0);
        kept.keep(&d, Arc::new(4), 16);
        assert!(c.on_host() && !d.on_host());
        assert_eq!(kept.device_only(), (2, 32));
        assert_eq!(copy.0.load(Ordering::Relaxed), 1);
    }

    /// Values whose first read fails (a device busy for a moment).
    #[derive(Debug, Default)]
    struct FailsOnce(std::sync::atomic::AtomicUsize);

    impl accel_core::buffer::DeviceCopy for FailsOnce {
        fn download(&self) -> std::result::Result<Buffer, String> {
            match self.0.fetch_add(1, Ordering::Relaxed) {
                0 => Err("busy".into()),
                _ => Ok(Buffer::F64(vec![7.0; 2])),
            }
        }
    }

    #[test]
    fn a_stuck_copy_goes_once_the_host_has_read_its_chunk() {
        let kept: Resident<u32> = Resident::with_limit(32);
        let copy = Arc::new(FailsOnce::default());
        let a = Arc::new(Chunk::on_device(
            vec![2],
            accel_core::DType::F64,
            copy.clone(),
        ));
        kept.keep(&a, Arc::new(1), 16);
        let (b, _) = on_device(2.0);
        kept.keep(&b, Arc::new(2), 16);
        let (c, _) = on_device(3.0);
        kept.keep(&c, Arc::new(3), 16);
        // a's read-back failed: stuck, still counted.
        assert!(!a.on_host() && a.device_copy().is_some());
        assert_eq!(kept.entries.lock().unwrap().len(), 3);
        // The host reads it now; the next sweep lets its copy go.
        assert_eq!(*a.data().unwrap(), Buffer::F64(vec![7.0; 2]));
        assert_eq!(kept.sweep(), vec![1], "a's buffer goes back to the pool");
        assert!(a.device_copy().is_none());
        assert_eq!(kept.entries.lock().unwrap().len(), 2);
        assert_eq!(kept.device_only(), (2, 32));
    }

    #[derive(Debug)]
    struct Reads(f64);

    impl ReadBack for Reads {
        fn read(&self) -> std::result::Result<Buffer, String> {
            Ok(Buffer::F64(vec![self.0; 2]))
        }
    }

    #[test]
    fn a_lost_device_gives_nothing_back() {
        let kept: Resident<u32> = Resident::with_limit(64);
        let f64s = accel_core::DType::F64;
        let a = kept.leave_on_device(&[2], f64s, (Arc::new(1), 16), Reads(1.0));
        let b = kept.leave_on_device(&[2], f64s, (Arc::new(2), 16), Reads(2.0));
        assert_eq!(kept.device_chunks(), (0, 2, 32));
        assert_eq!(*a.data().unwrap(), Buffer::F64(vec![1.0; 2]));
        assert_eq!(kept.device_chunks(), (1, 1, 16));
        kept.lose();
        assert!(b.lost() && !a.lost());
        let e = b.data().unwrap_err().to_string();
        assert!(e.contains("the GPU was lost"), "{e}");
        assert_eq!(kept.device_chunks(), (1, 1, 16));
    }
}
