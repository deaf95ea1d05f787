//! GPU backends for fused kernel programs: WGSL generated from the kernel IR
//! and run through wgpu on any Vulkan GPU (Mesa's lavapipe in tests).
//!
//! A program the GPU cannot run with the CPU's results (see
//! [`wgsl::check`]) and a kernel that fails on the device (out of memory, a
//! chunk over the device's buffer limit, a lost device) run on the CPU
//! instead; [`Offloader`] does that switch for the task runner.

pub mod device;
mod offload;
pub mod spirv;
pub mod wgsl;
pub mod wgsl_math;

pub use device::{AdapterSummary, Gpu, GpuChoice, adapters};
pub use offload::{OffloadCounts, Offloader};

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
}

pub type Result<T> = std::result::Result<T, Error>;
