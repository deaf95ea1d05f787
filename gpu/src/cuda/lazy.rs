//! Chunks whose values stay in CUDA device memory (see [`crate::resident`]):
//! read back on first use on the host, or when their memory is needed.

use std::sync::Arc;

use accel_core::buffer::{Buffer, Chunk};
use accel_core::dtype::DType;
use cudarc::driver::{CudaSlice, CudaStream};

use super::runtime::CudaGpu;
use crate::device::download;
use crate::resident::ReadBack;

/// A chunk's values in a CUDA allocation.
struct CudaCopy {
    slice: Arc<CudaSlice<u8>>,
    stream: Arc<CudaStream>,
    dtype: DType,
    n: usize,
}

impl std::fmt::Debug for CudaCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaCopy({} {})", self.n, self.dtype)
    }
}

impl ReadBack for CudaCopy {
    fn read(&self) -> Result<Buffer, String> {
        let bytes = self
            .stream
            .clone_dtoh(self.slice.as_ref())
            .map_err(|e| format!("CUDA: {e:?}"))?;
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
        };
        self.resident
            .leave_on_device(local, dtype, (out, bytes), copy)
    }

    /// Takes the device for lost (see [`crate::Gpu::lose`]).
    pub fn lose(&self) {
        self.resident.lose();
    }

    /// Chunks read back so far, and those whose values are only on the
    /// device now, with their bytes (see [`crate::Gpu::device_chunks`]).
    pub fn device_chunks(&self) -> (u64, usize, u64) {
        self.resident.device_chunks()
    }
}
