//! Arrays that live in files every worker can reach (a shared filesystem):
//! `.npy` files and Zarr arrays. Their metadata is read or created once, when
//! the plan is made, and travels in the plan; each task then reads or writes
//! only its own box of the file.

pub mod access;
pub mod npy;
pub mod staging;
pub mod zarr;
mod zarr_guard;

use std::path::{Path, PathBuf};

use crate::buffer::Buffer;
use crate::dtype::DType;
use crate::error::Error;

/// A storage failure, naming the file or store.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StorageError {
    pub path: String,
    pub message: String,
}

impl StorageError {
    pub fn new(path: &Path, message: impl Into<String>) -> StorageError {
        StorageError {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Error {
        Error::Invalid(e.to_string())
    }
}

/// How the stored array is laid out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Npy(npy::NpyLayout),
    Zarr(zarr::ZarrLayout),
}

/// A stored array: where it is, what it holds, how it is laid out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stored {
    pub path: PathBuf,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub format: Format,
}

/// The path the workers are given: made absolute against this process's
/// working directory (a relative one would resolve against each worker's),
/// and text, since paths travel as text.
pub fn resolved(path: &Path) -> Result<PathBuf, StorageError> {
    if path.to_str().is_none() {
        return Err(StorageError::new(path, "the path is not valid UTF-8"));
    }
    std::path::absolute(path).map_err(|e| StorageError::new(path, e.to_string()))
}

impl Stored {
    /// Opens the `.npy` file at `path` (reads its header).
    pub fn open_npy(path: impl AsRef<Path>) -> Result<Stored, StorageError> {
        let path = &resolved(path.as_ref())?;
        let (shape, dtype, layout) = npy::open(path)?;
        Ok(Stored {
            path: path.to_path_buf(),
            shape,
            dtype,
            format: Format::Npy(layout),
        })
    }

    /// Creates the `.npy` file at `path` (replacing any), zero-filled.
    pub fn create_npy(
        path: impl AsRef<Path>,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Stored, StorageError> {
        let path = &resolved(path.as_ref())?;
        let layout = npy::create(path, shape, dtype)?;
        Ok(Stored {
            path: path.to_path_buf(),
            shape: shape.to_vec(),
            dtype,
            format: Format::Npy(layout),
        })
    }

    /// Opens the Zarr array (v2 or v3) at `path` (reads its metadata).
    pub fn open_zarr(path: impl AsRef<Path>) -> Result<Stored, StorageError> {
        let path = &resolved(path.as_ref())?;
        let (shape, dtype, layout) = zarr::open(path)?;
        Ok(Stored {
            path: path.to_path_buf(),
            shape,
            dtype,
            format: Format::Zarr(layout),
        })
    }

    /// Creates a Zarr v3 array at `path` (replacing any), every chunk absent
    /// (zero) until written, stored in chunks of `chunks`.
    pub fn create_zarr(
        path: impl AsRef<Path>,
        shape: &[usize],
        dtype: DType,
        chunks: &[usize],
        compression: zarr::Compression,
    ) -> Result<Stored, StorageError> {
        let path = &resolved(path.as_ref())?;
        let layout = zarr::create(path, shape, dtype, chunks, compression)?;
        Ok(Stored {
            path: path.to_path_buf(),
            shape: shape.to_vec(),
            dtype,
            format: Format::Zarr(layout),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self.format {
            Format::Npy(_) => "npy",
            Format::Zarr(_) => "zarr",
        }
    }

    /// The shape of a storage chunk, for stores that have them.
    pub fn storage_chunks(&self) -> Option<&[usize]> {
        match &self.format {
            Format::Npy(_) => None,
            Format::Zarr(z) => Some(&z.chunks),
        }
    }

    fn check_box(&self, origin: &[usize], local: &[usize]) -> Result<(), StorageError> {
        let fits = origin.len() == self.shape.len()
            && local.len() == self.shape.len()
            && origin
                .iter()
                .zip(local)
                .zip(&self.shape)
                .all(|((o, l), s)| o.checked_add(*l).is_some_and(|e| e <= *s));
        if fits {
            Ok(())
        } else {
            Err(StorageError::new(
                &self.path,
                format!(
                    "box at {origin:?} of shape {local:?} is outside the stored shape {:?}",
                    self.shape
                ),
            ))
        }
    }

    /// Reads the box of shape `local` at `origin`, row-major.
    pub fn read_box(&self, origin: &[usize], local: &[usize]) -> Result<Buffer, StorageError> {
        self.check_box(origin, local)?;
        let path = &access::checked(&self.path)?;
        match &self.format {
            Format::Npy(l) => npy::read_box(path, &self.shape, self.dtype, l, origin, local),
            Format::Zarr(z) => zarr::read_box(path, self.dtype, z, origin, local),
        }
    }

    /// Writes `data` (row-major, shape `local`) into the box at `origin`.
    pub fn write_box(
        &self,
        origin: &[usize],
        local: &[usize],
        data: &Buffer,
    ) -> Result<(), StorageError> {
        self.check_box(origin, local)?;
        if data.dtype() != self.dtype || data.len() != crate::shape::size(local) {
            return Err(StorageError::new(
                &self.path,
                format!(
                    "{} {local:?} cannot be written into a store of {}",
                    data.dtype(),
                    self.dtype
                ),
            ));
        }
        let path = &access::checked(&self.path)?;
        match &self.format {
            Format::Npy(l) => npy::write_box(path, &self.shape, l, origin, local, data),
            Format::Zarr(z) => zarr::write_box(path, z, origin, local, data),
        }
    }
}

/// Where an output of a plan is written: a stored array and the offset of
/// the output inside it. Workers write each chunk as the task that makes it
/// finishes; nothing goes through the client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sink {
    pub target: Stored,
    /// Where the output's first element goes (one entry per stored axis); an
    /// output of fewer axes fills the last ones (a frame of a stack).
    pub offset: Vec<usize>,
}

impl Sink {
    /// The stored box of the output chunk at `origin` of shape `local`.
    pub fn place(&self, origin: &[usize], local: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let lead = self.offset.len().saturating_sub(local.len());
        let mut o = self.offset.clone();
        let mut l = vec![1; lead];
        for (k, (&x, &n)) in origin.iter().zip(local).enumerate() {
            if let Some(v) = o.get_mut(lead + k) {
                *v += x;
            }
            l.push(n);
        }
        (o, l)
    }

    /// Refuses an output of `shape` and `dtype` that does not fit the store.
    pub fn check(&self, shape: &[usize], dtype: DType) -> Result<(), StorageError> {
        let t = &self.target;
        let (origin, local) = self.place(&vec![0; shape.len()], shape);
        let fits = self.offset.len() == t.shape.len()
            && shape.len() <= t.shape.len()
            && origin
                .iter()
                .zip(&local)
                .zip(&t.shape)
                .all(|((o, l), s)| o.checked_add(*l).is_some_and(|e| e <= *s));
        if dtype != t.dtype {
            return Err(StorageError::new(
                &t.path,
                format!("holds {}, cannot store an array of {dtype}", t.dtype),
            ));
        }
        if !fits {
            return Err(StorageError::new(
                &t.path,
                format!(
                    "an array of shape {shape:?} at offset {:?} does not fit its shape {:?}",
                    self.offset, t.shape
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_made_absolute_here_not_on_each_worker() {
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            resolved(Path::new("data/x.npy")).unwrap(),
            here.join("data/x.npy")
        );
        assert_eq!(
            resolved(Path::new("/a/b.zarr")).unwrap(),
            Path::new("/a/b.zarr")
        );
    }

    #[test]
    fn a_removed_zarr_store_is_not_brought_back_by_a_late_write() {
        let dir = std::env::temp_dir().join(format!("accel-gone-{}.zarr", std::process::id()));
        let s = Stored::create_zarr(&dir, &[4, 4], DType::F64, &[2, 2], zarr::Compression::None)
            .unwrap();
        let chunk = Buffer::F64(vec![1.0; 4]);
        s.write_box(&[0, 0], &[2, 2], &chunk).unwrap();
        assert_eq!(s.read_box(&[0, 0], &[2, 2]).unwrap(), chunk);
        std::fs::remove_dir_all(&dir).unwrap();
        let e = s.write_box(&[2, 2], &[2, 2], &chunk).unwrap_err();
        assert!(e.to_string().contains("no Zarr store at this path"), "{e}");
        assert!(!dir.exists());
    }
}
