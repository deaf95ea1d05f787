//! Chunks whose values stay in CUDA device memory (see
//! [`crate::device`]'s `lazy` for the Vulkan side): read back on first use
//! on the host, or when their memory is needed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use accel_core::buffer::{Buffer, Chunk, DeviceCopy};
use accel_core::dtype::DType;
use cudarc::driver::{CudaSlice, CudaStream};

use super::runtime::CudaGpu;
use crate::device::download;

/// A chunk's values in a CUDA allocation.
struct CudaCopy {
    slice: Arc<CudaSlice<u8>>,
    stream: Arc<CudaStream>,
    dtype: DType,
    n: usize,
    read_backs: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
}

impl std::fmt::Debug for CudaCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaCopy({} {})", self.n, self.dtype)
    }
}

impl DeviceCopy for CudaCopy {
    fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    fn download(&self) -> Result<Buffer, String> {
        if self.lost.load(Ordering::Relaxed) {
            return Err("the GPU was lost".into());
        }
        let bytes = self
            .stream
            .clone_dtoh(self.slice.as_ref())
            .map_err(|e| format!("CUDA: {e:?}"))?;
        self.read_backs.fetch_add(1, Ordering::Relaxed);
        Ok(download(self.dtype, &bytes, self.n))
    }
}

impl CudaGpu {
    /// Whether a result of `bytes` may stay in device memory only.
    pub(crate) fn keeps(&self, bytes: u64) -> bool {
        self.resident.fits(bytes)
    }

    /// The chunk of shape `local` whose values a finished kernel left in `out`.
    pub(crate) fn chunk_on_device(
        &self,
        local: &[usize],
        dtype: DType,
        out: CudaSlice<u8>,
    ) -> Arc<Chunk> {
        let out = Arc::new(out);
        let bytes = out.len() as u64;
        let copy = CudaCopy {
            slice: out.clone(),
            stream: self.stream.clone(),
            dtype,
            n: accel_core::shape::size(local),
            read_backs: self.read_backs.clone(),
            lost: self.lost.clone(),
        };
        let chunk = Arc::new(Chunk::on_device(local.to_vec(), dtype, Arc::new(copy)));
        self.resident.keep(&chunk, out, bytes);
        chunk
    }

    /// Treats the device as lost (see [`crate::Gpu::lose`]).
    pub fn lose(&self) {
        self.lost.store(true, Ordering::Relaxed);
    }

    /// Chunks read back so far, and those whose values are only on the
    /// device now, with their bytes (see [`crate::Gpu::device_chunks`]).
    pub fn device_chunks(&self) -> (u64, usize, u64) {
        let (n, bytes) = self.resident.device_only();
        (self.read_backs.load(Ordering::Relaxed), n, bytes)
    }
}
