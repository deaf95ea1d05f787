//! GPU backends for fused kernel programs: WGSL generated from the kernel IR
//! and run through wgpu on any Vulkan GPU (Mesa's lavapipe in tests).
//!
//! A program the GPU cannot run with the CPU's results (see
//! [`wgsl::check`]) and a kernel that fails on the device (out of memory, a
//! chunk over the device's buffer limit, a lost device) run on the CPU
//! instead; [`Offloader`] does that switch for the task runner.

pub mod cuda;
pub mod device;
mod memo;
mod offload;
mod pool;
mod resident;
pub mod spirv;
mod steps;
pub mod wgsl;
pub mod wgsl_math;

pub use device::{AdapterSummary, Gpu, GpuChoice, adapters};
pub use offload::{Backend, OffloadCounts, Offloader};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Choice(String),
    #[error("GPU device: {0}")]
    Device(String),
    #[error("GPU out of memory: {0}")]
    OutOfMemory(String),
    #[error("a buffer of {0} bytes is over the GPU's binding limit")]
    TooLarge(u64),
    #[error("GPU kernel failed to compile: {0}")]
    Compile(String),
    #[error("GPU kernel inputs: {0}")]
    Layout(String),
    #[error(transparent)]
    Unsupported(#[from] wgsl::Unsupported),
    /// Elements outside a transcendental's fast range (non-finite, huge
    /// trig arguments, overflowing results): the CPU computes the chunk.
    #[error("{0} elements need the CPU's special-value paths")]
    SpecialValues(u32),
    /// A chunk's values could not be read (one left on a device that failed).
    #[error(transparent)]
    Chunk(#[from] accel_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Opens the GPU `choice` names, ready to take kernels: `Auto` prefers a
/// CUDA device (when libcuda and a device are there), then a hardware
/// Vulkan GPU; `Ok(None)` for `None` and for `Auto` without either.
pub fn open(choice: GpuChoice) -> Result<Option<std::sync::Arc<Offloader>>> {
    let backend = open_backend(choice)?;
    Ok(backend.map(|b| std::sync::Arc::new(Offloader::new(std::sync::Arc::new(b)))))
}

/// The device `choice` names (as [`open`] picks it), without the task
/// runner's fallback and counters: for running kernels on it directly.
pub fn open_backend(choice: GpuChoice) -> Result<Option<Backend>> {
    Ok(match choice {
        #[cfg(feature = "cuda")]
        GpuChoice::Cuda(n) => match cuda::CudaGpu::open(n)? {
            Some(g) => Some(Backend::Cuda(g)),
            None => {
                return Err(Error::Choice(format!(
                    "no CUDA device {n} (no libcuda, or fewer devices)"
                )));
            }
        },
        #[cfg(not(feature = "cuda"))]
        GpuChoice::Cuda(_) => {
            return Err(Error::Choice(
                "this build has no CUDA backend (feature `cuda`)".into(),
            ));
        }
        #[cfg(feature = "cuda")]
        GpuChoice::Auto => match cuda::CudaGpu::open(0) {
            Ok(Some(g)) => Some(Backend::Cuda(g)),
            Ok(None) => Gpu::open(GpuChoice::Auto)?.map(Backend::Vulkan),
            Err(e) => {
                tracing::warn!("CUDA device 0 not used ({e}): trying Vulkan");
                Gpu::open(GpuChoice::Auto)?.map(Backend::Vulkan)
            }
        },
        other => Gpu::open(other)?.map(Backend::Vulkan),
    })
}
