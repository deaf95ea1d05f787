//! A chunk: the values of one block of an array (or the columns of a
//! reduction's partial state). A chunk a GPU computed may live only in
//! device memory: its values are read back the first time anything on the
//! host reads them (a CPU task, a peer, the client, the spill file), so a
//! chain of device kernels never moves its intermediates across the bus.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::buffer::Buffer;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// A chunk's values in device memory, and how to read them back.
pub trait DeviceCopy: Send + Sync + std::fmt::Debug {
    /// The values, read back from the device (one column of the chunk's
    /// dtype and size).
    fn download(&self) -> std::result::Result<Buffer, String>;

    /// Whether the device is known to have lost the values (a read would fail).
    fn lost(&self) -> bool {
        false
    }
}

/// One chunk: its shape and columns, on the host, or on a device until
/// first read there.
pub struct Chunk {
    pub shape: Vec<usize>,
    host: OnceLock<Vec<Buffer>>,
    /// The device's copy of a chunk made there (dropped once the values
    /// are on the host and the device gave its memory up).
    device: Mutex<Option<Arc<dyn DeviceCopy>>>,
    /// The column's dtype, for a chunk made on a device.
    device_dtype: Option<DType>,
}

impl Chunk {
    /// A chunk of the columns `cols`, on the host.
    pub fn new(shape: Vec<usize>, cols: Vec<Buffer>) -> Chunk {
        Chunk {
            shape,
            host: OnceLock::from(cols),
            device: Mutex::new(None),
            device_dtype: None,
        }
    }

    /// An array chunk (one column) on the host.
    pub fn array(shape: Vec<usize>, data: Buffer) -> Chunk {
        Chunk::new(shape, vec![data])
    }

    /// An array chunk of `dtype` whose values are in device memory only.
    pub fn on_device(shape: Vec<usize>, dtype: DType, copy: Arc<dyn DeviceCopy>) -> Chunk {
        Chunk {
            shape,
            host: OnceLock::new(),
            device: Mutex::new(Some(copy)),
            device_dtype: Some(dtype),
        }
    }

    /// The columns, read back from the device first when they are only there.
    pub fn cols(&self) -> Result<&[Buffer]> {
        if let Some(c) = self.host.get() {
            return Ok(c);
        }
        // One reader downloads; the others wait for it under the lock.
        let device = self.device.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = self.host.get() {
            return Ok(c);
        }
        let copy = device
            .as_ref()
            .ok_or_else(|| Error::Device("a chunk with neither host nor device values".into()))?;
        let data = copy
            .download()
            .map_err(|e| Error::Device(format!("reading a chunk back from the GPU: {e}")))?;
        if Some(data.dtype()) != self.device_dtype || data.len() != self.len() {
            return Err(Error::Device(format!(
                "the GPU gave back {} {} values for a chunk of shape {:?}",
                data.len(),
                data.dtype(),
                self.shape
            )));
        }
        // Set while the lock is held: a reader waiting on it then finds the
        // values, instead of reading them back a second time.
        let cols = self.host.get_or_init(|| vec![data]);
        drop(device);
        Ok(cols)
    }

    /// The array column (the only column of a non-partial chunk).
    pub fn data(&self) -> Result<&Buffer> {
        self.cols()?
            .first()
            .ok_or_else(|| Error::Device("a chunk without columns".into()))
    }

    /// The columns when they are on the host (never reads the device).
    pub fn host_cols(&self) -> Option<&[Buffer]> {
        self.host.get().map(Vec::as_slice)
    }

    /// Whether every column on the host holds the chunk's element count (a
    /// chunk on a device is checked when read back).
    pub fn consistent(&self) -> bool {
        self.host
            .get()
            .is_none_or(|cols| cols.iter().all(|c| c.len() == self.len()))
    }

    /// Whether the values are only on a device known to have lost them.
    /// Never waits: while another thread reads the values back, they are
    /// not known lost (that read says whether they are).
    pub fn lost(&self) -> bool {
        if self.on_host() {
            return false;
        }
        match self.device.try_lock() {
            Ok(copy) => copy.as_ref().is_some_and(|d| d.lost()),
            Err(std::sync::TryLockError::Poisoned(p)) => {
                p.into_inner().as_ref().is_some_and(|d| d.lost())
            }
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }

    /// Whether the values are on the host.
    pub fn on_host(&self) -> bool {
        self.host.get().is_some()
    }

    /// The device's copy, while the chunk holds one.
    pub fn device_copy(&self) -> Option<Arc<dyn DeviceCopy>> {
        self.device
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the values back (when only on the device) and lets the
    /// device's copy go: what a device does before it drops its copy.
    pub fn move_to_host(&self) -> Result<()> {
        self.cols()?;
        *self.device.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }

    /// Elements of each column.
    pub fn len(&self) -> usize {
        crate::shape::size(&self.shape)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dtype of the array column (of the first column of a partial).
    pub fn dtype(&self) -> Option<DType> {
        match self.host.get() {
            Some(c) => c.first().map(Buffer::dtype),
            None => self.device_dtype,
        }
    }

    /// Columns the chunk has.
    pub fn col_count(&self) -> usize {
        self.host.get().map_or(1, Vec::len)
    }

    /// Bytes of the values, wherever they are.
    pub fn nbytes(&self) -> usize {
        match (self.host.get(), self.device_dtype) {
            (Some(c), _) => c.iter().map(Buffer::nbytes).sum(),
            (None, Some(d)) => self.len() * d.size(),
            (None, None) => 0,
        }
    }
}

impl Clone for Chunk {
    fn clone(&self) -> Chunk {
        Chunk {
            shape: self.shape.clone(),
            host: self.host.clone(),
            device: Mutex::new(self.device_copy()),
            device_dtype: self.device_dtype,
        }
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Chunk");
        d.field("shape", &self.shape);
        match self.host.get() {
            Some(cols) => d.field("cols", cols),
            None => d.field("on_device", &self.device_dtype),
        };
        d.finish()
    }
}

/// Chunks are equal when their shapes and values are (values on a device
/// are read back to compare; one that cannot be read equals nothing).
impl PartialEq for Chunk {
    fn eq(&self, other: &Chunk) -> bool {
        if self.shape != other.shape {
            return false;
        }
        match (self.cols(), other.cols()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Fake {
        data: Buffer,
        reads: AtomicUsize,
    }

    impl DeviceCopy for Fake {
        fn download(&self) -> std::result::Result<Buffer, String> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            Ok(self.data.clone())
        }
    }

    #[test]
    fn a_device_chunk_is_read_back_once_on_first_use() {
        let fake = Arc::new(Fake {
            data: Buffer::F64(vec![1.0, 2.0, 3.0]),
            reads: AtomicUsize::new(0),
        });
        let c = Chunk::on_device(vec![3], DType::F64, fake.clone());
        assert!(!c.on_host());
        assert_eq!((c.len(), c.nbytes(), c.dtype()), (3, 24, Some(DType::F64)));
        assert_eq!(fake.reads.load(Ordering::Relaxed), 0);
        assert_eq!(*c.data().unwrap(), Buffer::F64(vec![1.0, 2.0, 3.0]));
        assert_eq!(*c.data().unwrap(), Buffer::F64(vec![1.0, 2.0, 3.0]));
        assert_eq!(fake.reads.load(Ordering::Relaxed), 1);
        assert!(c.device_copy().is_some());
        c.move_to_host().unwrap();
        assert!(c.device_copy().is_none());
        assert_eq!(c, Chunk::array(vec![3], Buffer::F64(vec![1.0, 2.0, 3.0])));
    }

    #[derive(Debug)]
    struct Broken(Buffer);

    impl DeviceCopy for Broken {
        fn download(&self) -> std::result::Result<Buffer, String> {
            match self.0.len() {
                0 => Err("device lost".into()),
                _ => Ok(self.0.clone()),
            }
        }
    }

    #[test]
    fn a_failed_or_wrong_read_back_is_an_error_not_data() {
        let lost = Chunk::on_device(vec![2], DType::F64, Arc::new(Broken(Buffer::F64(vec![]))));
        let e = lost.data().unwrap_err().to_string();
        assert!(e.contains("device lost"), "{e}");
        // The device copy is kept: nothing was read back.
        assert!(lost.move_to_host().is_err() && lost.device_copy().is_some());
        let short = Chunk::on_device(
            vec![2],
            DType::F64,
            Arc::new(Broken(Buffer::F64(vec![1.0]))),
        );
        assert!(
            short
                .data()
                .unwrap_err()
                .to_string()
                .contains("1 f64 values")
        );
        let wrong = Chunk::on_device(
            vec![1],
            DType::F32,
            Arc::new(Broken(Buffer::F64(vec![1.0]))),
        );
        assert!(wrong.data().is_err());
    }
}
