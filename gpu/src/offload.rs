//! The task runner's side of a GPU: kernels it can run go to the device;
//! the rest, and any that fail there, stay on the CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use accel_core::buffer::{Buffer, Chunk};
use accel_core::exec::{Fold, Offload, Operand};
use accel_core::kernel::Executable;
use accel_core::stencil::{DevicePlan, StencilKernel};

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
    /// Of `on_gpu`, partial reductions folded on the GPU (only their strips' results came back).
    pub folded: u64,
    /// Of `on_gpu`, stencil tasks (every level of the task ran there).
    pub stencils: u64,
    /// Kernel inputs read from copies of their chunks kept in device memory
    /// (not uploaded again).
    pub resident: u64,
    /// Chunks the GPU made whose values stayed in device memory until the
    /// host read them (a CPU task, a peer, the client, a spill), then came
    /// back: chunks only ever read by GPU kernels never do.
    pub read_back: u64,
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

    /// Folds `program`'s values on this device (see [`Gpu::run_fold`]); no fallback.
    pub fn run_fold(
        &self,
        program: &accel_core::kernel::Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[(&[usize], &Buffer)],
        fold: Fold,
    ) -> crate::Result<Buffer> {
        match self {
            Backend::Vulkan(g) => g.run_fold(program, origin, local, inputs, fold),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.run_operands(
                program,
                origin,
                local,
                &crate::device::plain(inputs),
                Some(fold),
            ),
        }
    }

    /// One run of `program`'s kernel alone, inputs and output in device
    /// memory (see [`Gpu::time_map`]).
    pub fn time_map(
        &self,
        program: &accel_core::kernel::Program,
        local: &[usize],
        inputs: &[(&[usize], &Buffer)],
        repeats: u32,
    ) -> crate::Result<std::time::Duration> {
        match self {
            Backend::Vulkan(g) => g.time_map(program, local, inputs, repeats),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.time_map(program, local, inputs, repeats),
        }
    }

    /// Runs a stencil task's steps on this device (see [`Gpu::run_stencil`]); no fallback.
    pub fn run_stencil(&self, plan: &DevicePlan) -> crate::Result<Buffer> {
        match self {
            Backend::Vulkan(g) => g.run_stencil(plan),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.run_stencil(plan),
        }
    }

    /// A stencil task's output chunk, its device copy kept (see
    /// [`Gpu::run_stencil_chunk`]); no fallback.
    pub fn run_stencil_chunk(&self, plan: &DevicePlan) -> crate::Result<Arc<Chunk>> {
        match self {
            Backend::Vulkan(g) => g.run_stencil_chunk(plan),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.run_stencil_chunk(plan),
        }
    }

    /// Runs `program` (its map, or the fold `fold`) on this device over
    /// inputs that may be kept chunks (see [`Gpu::run_operands`]); no fallback.
    pub fn run_operands(
        &self,
        program: &accel_core::kernel::Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
        fold: Option<Fold>,
    ) -> crate::Result<Buffer> {
        match self {
            Backend::Vulkan(g) => g.run_operands(program, origin, local, inputs, fold),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.run_operands(program, origin, local, inputs, fold),
        }
    }

    /// A map's result as a chunk whose device copy is kept (see [`Gpu::run_chunk`]).
    pub fn run_chunk(
        &self,
        program: &accel_core::kernel::Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
    ) -> crate::Result<Arc<Chunk>> {
        match self {
            Backend::Vulkan(g) => g.run_chunk(program, origin, local, inputs),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.run_chunk(program, origin, local, inputs),
        }
    }

    /// Inputs read from device memory instead of uploaded, and chunks kept.
    pub fn resident(&self) -> (u64, usize) {
        match self {
            Backend::Vulkan(g) => g.resident(),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.resident(),
        }
    }

    /// Chunks made on this device and read back since, and the chunks whose
    /// values are only on the device now, with their bytes.
    pub fn device_chunks(&self) -> (u64, usize, u64) {
        match self {
            Backend::Vulkan(g) => g.device_chunks(),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.device_chunks(),
        }
    }

    /// Treats the device as lost (see [`Gpu::lose`]).
    pub fn lose(&self) {
        match self {
            Backend::Vulkan(g) => g.lose(),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.lose(),
        }
    }

    /// Runs `program` on this device (see [`Gpu::run_map`]); no fallback.
    pub fn run_map(
        &self,
        program: &accel_core::kernel::Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[(&[usize], &Buffer)],
    ) -> crate::Result<Buffer> {
        match self {
            Backend::Vulkan(g) => g.run_map(program, origin, local, inputs),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => {
                g.run_operands(program, origin, local, &crate::device::plain(inputs), None)
            }
        }
    }
}

/// Consecutive failures after which a device is given up (a lost or
/// broken device would otherwise fail, and log, every task).
pub const FAILURES_TO_GIVE_UP: u32 = 3;

/// Tracks failures in a row; the device is given up after
/// [`FAILURES_TO_GIVE_UP`] of them (a success in between resets the count).
#[derive(Debug, Default)]
pub struct Health {
    in_a_row: std::sync::atomic::AtomicU32,
    given_up: std::sync::atomic::AtomicBool,
}

impl Health {
    pub fn usable(&self) -> bool {
        !self.given_up.load(Ordering::Relaxed)
    }

    /// Gives the device up at once.
    pub fn give_up(&self) {
        self.given_up.store(true, Ordering::Relaxed);
    }

    pub fn succeeded(&self) {
        self.in_a_row.store(0, Ordering::Relaxed);
    }

    /// Records a failure; true when it is the one that gives the device up.
    pub fn failed(&self) -> bool {
        let n = self.in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        n >= FAILURES_TO_GIVE_UP && !self.given_up.swap(true, Ordering::Relaxed)
    }
}

/// A GPU offered every elementwise kernel first.
#[derive(Debug)]
pub struct Offloader {
    gpu: Arc<Backend>,
    health: Health,
    on_gpu: AtomicU64,
    declined: AtomicU64,
    failed: AtomicU64,
    folded: AtomicU64,
    stencils: AtomicU64,
    /// What the latest kernel that failed on the device said.
    last_failure: std::sync::Mutex<Option<String>>,
}

impl Offloader {
    pub fn new(gpu: Arc<Backend>) -> Offloader {
        Offloader {
            gpu,
            health: Health::default(),
            on_gpu: AtomicU64::new(0),
            declined: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            folded: AtomicU64::new(0),
            stencils: AtomicU64::new(0),
            last_failure: std::sync::Mutex::new(None),
        }
    }

    /// The error of the latest kernel that failed on the device (and ran on
    /// the CPU instead), if any did: what a count of failures does not say.
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().ok().and_then(|f| f.clone())
    }

    /// The device is lost: every kernel runs on the CPU from now on, and
    /// the chunks whose values only it held can no longer be read (their
    /// readers fail, and a worker reports them missing to be recomputed).
    pub fn lose_device(&self) {
        tracing::error!(
            "{:?} lost: every kernel runs on the CPU from now on",
            self.gpu
        );
        self.health.give_up();
        self.gpu.lose();
    }

    pub fn backend(&self) -> &Backend {
        &self.gpu
    }

    /// Whether kernels still go to the device (not given up or lost).
    pub fn usable(&self) -> bool {
        self.health.usable()
    }

    pub fn summary(&self) -> &crate::AdapterSummary {
        self.gpu.summary()
    }

    pub fn counts(&self) -> OffloadCounts {
        OffloadCounts {
            on_gpu: self.on_gpu.load(Ordering::Relaxed),
            declined: self.declined.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            folded: self.folded.load(Ordering::Relaxed),
            stencils: self.stencils.load(Ordering::Relaxed),
            resident: self.gpu.resident().0,
            read_back: self.gpu.device_chunks().0,
        }
    }
}

impl Offload for Offloader {
    fn run_map(
        &self,
        exe: &Executable,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
    ) -> Option<Buffer> {
        self.attempt(portable(exe), || {
            self.gpu
                .run_operands(&exe.program, origin, local, inputs, None)
        })
    }

    fn run_map_chunk(
        &self,
        exe: &Executable,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
    ) -> Option<Arc<Chunk>> {
        self.attempt(portable(exe), || {
            self.gpu.run_chunk(&exe.program, origin, local, inputs)
        })
    }

    fn run_fold(
        &self,
        exe: &Executable,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
        fold: Fold,
    ) -> Option<Buffer> {
        let parts = self.attempt(portable(exe), || {
            self.gpu
                .run_operands(&exe.program, origin, local, inputs, Some(fold))
        })?;
        self.folded.fetch_add(1, Ordering::Relaxed);
        Some(parts)
    }

    fn takes_stencils(&self, k: &StencilKernel) -> bool {
        // Levels that read no field (generated values alone) are left to
        // the CPU: their kernels would not be told where their window lies.
        let runs = k
            .levels
            .iter()
            .all(|l| !l.reads.is_empty() && portable(&l.exe));
        if !runs {
            self.declined.fetch_add(1, Ordering::Relaxed);
        }
        runs && self.health.usable()
    }

    fn run_stencil(&self, plan: &DevicePlan) -> Option<Arc<Chunk>> {
        let result = self.attempt(true, || self.gpu.run_stencil_chunk(plan))?;
        self.stencils.fetch_add(1, Ordering::Relaxed);
        Some(result)
    }
}

impl Offloader {
    /// Runs `kernel` on the device when it can (`portable`: its programs
    /// have a GPU form); counts how it went, and gives the device up after
    /// failures in a row. None: the CPU's turn.
    fn attempt<T>(&self, portable: bool, kernel: impl FnOnce() -> crate::Result<T>) -> Option<T> {
        if !self.health.usable() || !portable {
            self.declined.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match kernel() {
            Ok(data) => {
                self.on_gpu.fetch_add(1, Ordering::Relaxed);
                self.health.succeeded();
                Some(data)
            }
            Err(Error::Unsupported(_) | Error::TooLarge(_) | Error::SpecialValues(_)) => {
                self.declined.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.last_failure.lock() {
                    *last = Some(e.to_string());
                }
                tracing::warn!(
                    "kernel failed on {:?}, computing it on the CPU: {e}",
                    self.gpu
                );
                if self.health.failed() {
                    tracing::error!(
                        "{:?} failed {FAILURES_TO_GIVE_UP} kernels in a row: every kernel runs on the CPU from now on",
                        self.gpu
                    );
                }
                None
            }
        }
    }
}

/// Whether `exe`'s program has a GPU form.
fn portable(exe: &Executable) -> bool {
    crate::wgsl::check(&exe.program).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_kernel_is_counted_and_its_error_kept() {
        let gpu = match Gpu::open(crate::GpuChoice::Software) {
            Ok(Some(g)) => g,
            other => {
                panic!("no lavapipe ({other:?}); the test command installs mesa-vulkan-drivers")
            }
        };
        let o = Offloader::new(Arc::new(Backend::Vulkan(gpu)));
        assert_eq!(o.last_failure(), None);
        let ran: Option<()> = o.attempt(true, || Err(Error::Device("stream broke".into())));
        assert_eq!(ran, None, "the CPU's turn");
        // A refusal is a decline, not a failure.
        let declined: Option<()> = o.attempt(true, || Err(Error::TooLarge(1 << 40)));
        assert_eq!(declined, None);
        let c = o.counts();
        assert_eq!((c.failed, c.declined, c.on_gpu), (1, 1, 0));
        let last = o.last_failure().expect("kept");
        assert!(last.contains("stream broke"), "{last}");
    }

    #[test]
    fn a_device_is_given_up_after_failures_in_a_row_only() {
        let h = Health::default();
        assert!(!h.failed());
        assert!(!h.failed());
        h.succeeded();
        assert!(!h.failed() && !h.failed());
        assert!(h.usable());
        assert!(h.failed(), "the third failure in a row gives it up");
        assert!(!h.usable());
        assert!(!h.failed(), "given up once");
    }
}
