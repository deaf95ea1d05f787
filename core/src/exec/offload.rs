//! Kernels run somewhere other than the CPU pool (a GPU backend).

use crate::buffer::Buffer;
use crate::kernel::Executable;

/// Where a task's fused kernel may run instead of the CPU. The task runner
/// asks first; `None` means "run it on the CPU" (a program the device has
/// no exact form for, or a failure on the device, which the implementation
/// reports itself), so a device never fails a task the CPU can compute.
pub trait Offload: Send + Sync {
    /// The values of the kernel `exe` over the box at `origin` of shape
    /// `local` (an output chunk, or the region a partial reduction folds),
    /// from its inputs as (chunk shape, data) in program order.
    fn run_map(
        &self,
        exe: &Executable,
        origin: &[usize],
        local: &[usize],
        inputs: &[(&[usize], &Buffer)],
    ) -> Option<Buffer>;
}
