//! The task runner's side of a GPU: kernels it can run go to the device;
//! the rest, and any that fail there, stay on the CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use accel_core::buffer::Buffer;
use accel_core::exec::Offload;
use accel_core::kernel::Executable;

use crate::{Error, Gpu};

/// Tasks by where their kernel ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffloadCounts {
    /// Kernels computed on the GPU.
    pub on_gpu: u64,
    /// Kernels the GPU has no exact form for (computed on the CPU).
    pub declined: u64,
    /// Kernels that failed on the GPU and were computed on the CPU.
    pub failed: u64,
}

/// The device kernels run on.
#[derive(Debug)]
pub enum Backend {
    /// Vulkan through wgpu (WGSL).
    Vulkan(Gpu),
    /// CUDA through NVRTC and the driver.
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaGpu),
}

impl Backend {
    pub fn summary(&self) -> &crate::AdapterSummary {
        match self {
            Backend::Vulkan(g) => g.summary(),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.summary(),
        }
    }

    fn run_map(
        &self,
        program: &accel_core::kernel::Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[(&[usize], &Buffer)],
    ) -> crate::Result<Buffer> {
        match self {
            Backend::Vulkan(g) => g.run_map(program, origin, local, inputs),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.run_map(program, origin, local, inputs),
        }
    }
}

/// A GPU offered every elementwise kernel first.
#[derive(Debug)]
pub struct Offloader {
    gpu: Arc<Backend>,
    on_gpu: AtomicU64,
    declined: AtomicU64,
    failed: AtomicU64,
}

impl Offloader {
    pub fn new(gpu: Arc<Backend>) -> Offloader {
        Offloader {
            gpu,
            on_gpu: AtomicU64::new(0),
            declined: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.gpu
    }

    pub fn summary(&self) -> &crate::AdapterSummary {
        self.gpu.summary()
    }

    pub fn counts(&self) -> OffloadCounts {
        OffloadCounts {
            on_gpu: self.on_gpu.load(Ordering::Relaxed),
            declined: self.declined.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

impl Offload for Offloader {
    fn run_map(
        &self,
        exe: &Executable,
        origin: &[usize],
        local: &[usize],
        inputs: &[(&[usize], &Buffer)],
    ) -> Option<Buffer> {
        if crate::wgsl::check(&exe.program).is_err() {
            self.declined.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match self.gpu.run_map(&exe.program, origin, local, inputs) {
            Ok(data) => {
                self.on_gpu.fetch_add(1, Ordering::Relaxed);
                Some(data)
            }
            Err(Error::Unsupported(_) | Error::TooLarge(_) | Error::SpecialValues(_)) => {
                self.declined.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "kernel failed on {:?}, computing it on the CPU: {e}",
                    self.gpu
                );
                None
            }
        }
    }
}
