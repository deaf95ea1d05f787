//! Arrays in files: `.npy` and Zarr stores, read and written by the tasks
//! themselves (on a cluster, by the workers, from a filesystem they share):
//! nothing passes through the client but the metadata.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use accel_core::op::Op;
use accel_core::storage::zarr::Compression;
use accel_core::storage::{self, Sink, Stored, staging};

use crate::create::{ChunkSpec, leaf};
use crate::error::{Error, Result};
use crate::expr::Array;

/// The `.npy` file at `path` as a chunked array. The header is read now;
/// each task reads only its chunk's elements when the array is computed.
/// `ChunkSpec::Auto` picks chunks of about 128 MiB.
#[track_caller]
pub fn from_npy(path: impl AsRef<Path>, chunks: impl Into<ChunkSpec>) -> Array {
    match Stored::open_npy(path.as_ref()) {
        Ok(s) => stored_leaf("from_npy", s, chunks.into()),
        Err(e) => Array::build_error("from_npy", accel_core::Error::from(e)),
    }
}

/// The Zarr array (v2 or v3) at `path`, chunked as it is stored. Its
/// metadata is read now; each task reads the storage chunks overlapping its
/// chunk when the array is computed.
#[track_caller]
pub fn from_zarr(path: impl AsRef<Path>) -> Array {
    match Stored::open_zarr(path.as_ref()) {
        Ok(s) => {
            let chunks = s
                .storage_chunks()
                .map(<[usize]>::to_vec)
                .unwrap_or_default();
            stored_leaf("from_zarr", s, ChunkSpec::Shape(chunks))
        }
        Err(e) => Array::build_error("from_zarr", accel_core::Error::from(e)),
    }
}

/// [`from_zarr`] in chunks of your choosing (they need not follow the
/// storage chunks: a task reads every storage chunk its chunk overlaps).
#[track_caller]
pub fn from_zarr_with(path: impl AsRef<Path>, chunks: impl Into<ChunkSpec>) -> Array {
    match Stored::open_zarr(path.as_ref()) {
        Ok(s) => stored_leaf("from_zarr", s, chunks.into()),
        Err(e) => Array::build_error("from_zarr", accel_core::Error::from(e)),
    }
}

/// How [`Write::zarr`] stores an array.
#[derive(Clone, Debug, Default)]
pub struct ZarrOptions {
    /// Storage chunk shape; by default the array's own chunks.
    pub chunks: Option<Vec<usize>>,
    pub compression: Compression,
}

#[track_caller]
fn stored_leaf(name: &str, s: Stored, chunks: ChunkSpec) -> Array {
    let (shape, dtype) = (s.shape.clone(), s.dtype);
    leaf(name, Op::Read(Arc::new(s)), &shape, dtype, chunks)
}

/// An array to write, and where: made by [`Write::npy`] or [`Write::into`],
/// carried out by [`Client::write`](crate::Client::write).
#[derive(Clone, Debug)]
pub struct Write {
    pub(crate) array: Array,
    pub(crate) sink: Sink,
    /// A new store, written under a hidden name until the run succeeds.
    staged: Option<Arc<Staged>>,
}

/// A store written at `staging`, bound for `path`: moved there when the run
/// that writes it succeeds, removed if it never does.
#[derive(Debug)]
struct Staged {
    staging: PathBuf,
    path: PathBuf,
    committed: std::sync::atomic::AtomicBool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = staging::remove(&self.staging);
        }
    }
}

impl Write {
    /// `array` into a new `.npy` file at `path` (replacing any, once the run
    /// that writes it succeeds); the tasks fill it in under a hidden name
    /// beside it, `.NAME.accel-partial`.
    pub fn npy(array: &Array, path: impl AsRef<Path>) -> Result<Write> {
        let path = &staging::destination(&storage::resolved(path.as_ref())?);
        not_read_by(array, path)?;
        let staging = staging::staging_path(path)?;
        let target = Stored::create_npy(&staging, &array.shape()?, array.dtype()?)?;
        Write::into(array, &target, &vec![0; target.shape.len()])?.staged_for(staging, path)
    }

    /// `array` into a new Zarr v3 array at `path` (replacing any, once the
    /// run that writes it succeeds); every task writes whole storage chunks
    /// of it, under a hidden name beside it until then.
    pub fn zarr(array: &Array, path: impl AsRef<Path>, opts: &ZarrOptions) -> Result<Write> {
        let path = &staging::destination(&storage::resolved(path.as_ref())?);
        not_read_by(array, path)?;
        let meta = array.meta()?;
        let chunks = match &opts.chunks {
            Some(c) => c.clone(),
            None => meta.chunks.max_chunk(),
        };
        let staging = staging::staging_path(path)?;
        let target =
            Stored::create_zarr(&staging, &meta.shape, meta.dtype, &chunks, opts.compression)?;
        Write::into(array, &target, &vec![0; meta.shape.len()])?.staged_for(staging, path)
    }

    fn staged_for(mut self, staging: PathBuf, path: &Path) -> Result<Write> {
        self.staged = Some(Arc::new(Staged {
            staging,
            path: path.to_path_buf(),
            committed: Default::default(),
        }));
        Ok(self)
    }

    /// Moves a new store into place, after the run that wrote it succeeded
    /// (once: the same write listed twice is moved once).
    pub(crate) fn commit(&self) -> Result<()> {
        let Some(s) = &self.staged else {
            return Ok(());
        };
        if s.committed.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        staging::commit(&s.staging, &s.path)?;
        s.committed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Refuses a new store's write that was carried out already: its
    /// hidden store has moved into place, and running it again would write
    /// where nothing is staged.
    pub(crate) fn check_unspent(&self) -> Result<()> {
        match &self.staged {
            Some(s) if s.committed.load(std::sync::atomic::Ordering::Relaxed) => {
                Err(Error::Invalid(format!(
                    "{}: this write was carried out already; make a new one \
                     (Write::npy, Write::zarr) to write the array again",
                    s.path.display()
                )))
            }
            _ => Ok(()),
        }
    }

    /// `array` into an existing stored array, its first element at `offset`
    /// (one entry per stored axis). An array with fewer axes than the store
    /// fills its last axes: frame k of a stack is `offset = [k, 0, 0]`.
    ///
    /// Tasks write whole storage chunks only (two tasks never share one), so
    /// an array whose chunks straddle the store's chunks is rechunked to
    /// multiples of them first; an offset off a storage chunk boundary is
    /// refused.
    pub fn into(array: &Array, target: &Stored, offset: &[usize]) -> Result<Write> {
        not_read_by(array, &target.path)?;
        let sink = Sink {
            target: target.clone(),
            offset: offset.to_vec(),
        };
        sink.check(&array.shape()?, array.dtype()?)?;
        let array = match target.storage_chunks() {
            Some(sc) => aligned(array, &sink, sc)?,
            None => array.clone(),
        };
        Ok(Write {
            array,
            sink,
            staged: None,
        })
    }

    /// Bytes this write puts into the store.
    pub fn nbytes(&self) -> Result<u64> {
        let m = self.array.meta()?;
        Ok((accel_core::shape::size(&m.shape) * m.dtype.size()) as u64)
    }
}

/// Refuses a write into `path` when `array` reads that file or store:
/// creating it would destroy the input before any task reads it, and
/// writing into it would race with the reads.
fn not_read_by(array: &Array, path: &Path) -> Result<()> {
    // A target that does not exist yet is no input.
    let Ok(target) = std::fs::canonicalize(path) else {
        return Ok(());
    };
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![array.expr()?.clone()];
    while let Some(e) = stack.pop() {
        if !seen.insert(Arc::as_ptr(&e)) {
            continue;
        }
        if let Op::Read(s) = &e.op
            && std::fs::canonicalize(&s.path).is_ok_and(|p| p == target)
        {
            return Err(Error::Invalid(format!(
                "{}: the array written here is computed from this very store; writing it \
                 would destroy or change its input while tasks read it. Write to another \
                 path (and rename it after)",
                path.display()
            )));
        }
        stack.extend(e.inputs.iter().cloned());
    }
    Ok(())
}

/// `array` rechunked, if needed, so that each of its chunks covers whole
/// storage chunks of the sink's target.
fn aligned(array: &Array, sink: &Sink, sc: &[usize]) -> Result<Array> {
    let meta = array.meta()?;
    let path = sink.target.path.display();
    let nd = meta.shape.len();
    let lead = sc.len() - nd;
    if let Some(k) = (0..lead).find(|&k| sc[k] != 1) {
        return Err(Error::Invalid(format!(
            "{path}: a {nd}-d array written into this {}-d store shares its storage chunks \
             of {} along axis {k} with its neighbours; store it in chunks of 1 along that axis",
            sc.len(),
            sc[k]
        )));
    }
    let offsets = meta.chunks.offsets();
    let mut want = meta.chunks.max_chunk();
    let mut change = false;
    for k in 0..nd {
        let (o, s) = (sink.offset[lead + k], sc[lead + k]);
        let end = o + meta.shape[k];
        if o % s != 0 || (end % s != 0 && end != sink.target.shape[lead + k]) {
            return Err(Error::Invalid(format!(
                "{path}: along axis {}, elements {o}..{end} do not start and end on the \
                 store's chunks of {s}",
                lead + k
            )));
        }
        let inner = &offsets[k][1..offsets[k].len().saturating_sub(1)];
        if inner.iter().any(|b| b % s != 0) {
            want[k] = (want[k] / s).max(1) * s;
            change = true;
        }
    }
    // Rechunked, every axis takes whole storage chunks: the array's largest
    // chunk along an axis that was aligned need not be a multiple of them
    // (chunks of 4 and 6 over storage chunks of 4 would become 6 and 4).
    if change {
        for k in 0..nd {
            let s = sc[lead + k];
            want[k] = (want[k] / s).max(1) * s;
        }
    }
    Ok(if change {
        array.rechunk(want)
    } else {
        array.clone()
    })
}

/// What [`Client::write`](crate::Client::write) did.
#[derive(Clone, Debug)]
pub struct Written {
    /// Element bytes written into stores.
    pub bytes: u64,
    pub stats: crate::RunStats,
}

impl From<accel_core::storage::StorageError> for Error {
    fn from(e: accel_core::storage::StorageError) -> Error {
        Error::Core(e.into())
    }
}

impl Array {
    /// Computes this array on the embedded client into a new `.npy` file.
    pub fn to_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::Client::local().to_npy(self, path).map(|_| ())
    }

    /// Computes this array on the embedded client into a new Zarr array.
    pub fn to_zarr(&self, path: impl AsRef<Path>, opts: &ZarrOptions) -> Result<()> {
        crate::Client::local()
            .write(&[Write::zarr(self, path, opts)?])
            .map(|_| ())
    }
}
