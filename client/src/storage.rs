//! Arrays in files: `.npy` and Zarr stores, read and written by the tasks
//! themselves (on a cluster, by the workers, from a filesystem they share):
//! nothing passes through the client but the metadata.

use std::path::Path;
use std::sync::Arc;

use accel_core::op::Op;
use accel_core::storage::{Sink, Stored};

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
}

impl Write {
    /// `array` into a new `.npy` file at `path` (replacing any), created now
    /// with the array's shape and dtype; the tasks fill it in.
    pub fn npy(array: &Array, path: impl AsRef<Path>) -> Result<Write> {
        let target = Stored::create_npy(path.as_ref(), &array.shape()?, array.dtype()?)?;
        Write::into(array, &target, &vec![0; target.shape.len()])
    }

    /// `array` into an existing stored array, its first element at `offset`
    /// (one entry per stored axis). An array with fewer axes than the store
    /// fills its last axes: frame k of a stack is `offset = [k, 0, 0]`.
    pub fn into(array: &Array, target: &Stored, offset: &[usize]) -> Result<Write> {
        let sink = Sink {
            target: target.clone(),
            offset: offset.to_vec(),
        };
        sink.check(&array.shape()?, array.dtype()?)?;
        Ok(Write {
            array: array.clone(),
            sink,
        })
    }

    /// Bytes this write puts into the store.
    pub fn nbytes(&self) -> Result<u64> {
        let m = self.array.meta()?;
        Ok((accel_core::shape::size(&m.shape) * m.dtype.size()) as u64)
    }
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
}
