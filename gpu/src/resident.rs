//! Chunks kept in device memory: a kernel's input that is a whole chunk (or
//! a chunk a stencil task places boxes of) is uploaded once, and a chunk a
//! kernel or a stencil task made keeps the device's copy, so later kernels
//! read it from the device while the chunk lives (a persisted array, an
//! intermediate several stages read, the previous block of a time loop). A chunk
//! never changes once made, and the entry holds a `Weak` to it: the chunk's
//! allocation, and so its address, cannot be reused while the entry exists,
//! so a live match is the same chunk and a dead one is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use accel_core::buffer::Chunk;

use crate::{Error, Result};

/// Device memory kept for chunks, at most (least recently used go first).
pub const RESIDENT_LIMIT: u64 = 2 << 30;

struct Entry<B> {
    chunk: Weak<Chunk>,
    buffer: Arc<B>,
    bytes: u64,
    used: u64,
}

/// Device copies of chunks, by chunk.
pub(crate) struct Resident<B> {
    entries: Mutex<Vec<Entry<B>>>,
    limit: u64,
    clock: AtomicU64,
    hits: AtomicU64,
}

impl<B> Default for Resident<B> {
    fn default() -> Self {
        Resident::with_limit(RESIDENT_LIMIT)
    }
}

impl<B> Resident<B> {
    pub(crate) fn with_limit(limit: u64) -> Self {
        Resident {
            entries: Mutex::new(Vec::new()),
            limit,
            clock: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
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
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| Error::Device("poisoned".into()))?;
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let me = Arc::downgrade(chunk);
        if let Some(e) = entries.iter_mut().find(|e| Weak::ptr_eq(&e.chunk, &me)) {
            e.used = now;
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(e.buffer.clone());
        }
        let buffer = Arc::new(upload()?);
        self.admit(&mut entries, me, buffer.clone(), bytes, now);
        Ok(buffer)
    }

    /// Keeps `buffer`, the device's copy of `chunk` (`bytes` long, made on
    /// the device: a kernel's result), for later kernels that read the chunk.
    pub(crate) fn keep(&self, chunk: &Arc<Chunk>, buffer: B, bytes: u64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        self.admit(
            &mut entries,
            Arc::downgrade(chunk),
            Arc::new(buffer),
            bytes,
            now,
        );
    }

    /// Adds an entry when it fits in half the limit, the least recently
    /// used going first to make room.
    fn admit(
        &self,
        entries: &mut Vec<Entry<B>>,
        chunk: Weak<Chunk>,
        buffer: Arc<B>,
        bytes: u64,
        now: u64,
    ) {
        if bytes > self.limit / 2 {
            return;
        }
        let mut held: u64 = entries.iter().map(|e| e.bytes).sum();
        if held + bytes > self.limit {
            // Dead chunks' copies go before live ones.
            entries.retain(|e| e.chunk.strong_count() > 0);
            held = entries.iter().map(|e| e.bytes).sum();
        }
        while held + bytes > self.limit {
            let Some(oldest) = (0..entries.len()).min_by_key(|&i| entries[i].used) else {
                break;
            };
            held -= entries.swap_remove(oldest).bytes;
        }
        entries.push(Entry {
            chunk,
            buffer,
            bytes,
            used: now,
        });
    }

    /// Drops the copies of chunks that died, and hands back those buffers
    /// no kernel holds any more (for the device's pool).
    pub(crate) fn sweep(&self) -> Vec<B> {
        let Ok(mut entries) = self.entries.lock() else {
            return Vec::new();
        };
        let mut freed = Vec::new();
        let mut k = 0;
        while k < entries.len() {
            if entries[k].chunk.strong_count() > 0 {
                k += 1;
                continue;
            }
            if let Ok(b) = Arc::try_unwrap(entries.swap_remove(k).buffer) {
                freed.push(b);
            }
        }
        freed
    }

    /// Drops every copy (the device ran out of memory).
    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
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
        kept.keep(&made, 10, 8);
        assert_eq!(*get(&made, 8), 10);
        assert_eq!(kept.hits(), 5);
        kept.clear();
        assert_eq!(kept.kept(), 0);
    }
}
