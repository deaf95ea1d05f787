//! A stencil task on a CUDA device: the steps of its [`DevicePlan`]
//! launched in order on one stream over slots that stay in device memory
//! (see [`crate::steps`]); the stage inputs go up before, and only the
//! result slot comes back.

use std::sync::Arc;

use accel_core::buffer::Buffer;
use accel_core::kernel::Program;
use accel_core::stencil::DevicePlan;
use cudarc::driver::{CudaFunction, CudaSlice, PushKernelArg};

use super::CudaSource;
use super::runtime::{CudaGpu, driver, launch_config};
use crate::device::{download, upload_bytes};
use crate::steps::{Kernels, Moves, prepare, slot_bytes};
use crate::wgsl::{self, Access};
use crate::{Error, Result};

type Kernel = Arc<(CudaFunction, wgsl::Shader)>;

impl Kernels for CudaGpu {
    type Kernel = Kernel;

    fn level(&self, program: &Program, access: &[Access]) -> Result<Kernel> {
        self.by_program.get_or_make(program, access, None, || {
            let source = super::generate(program, access)?;
            self.kernel(source).map(Arc::new)
        })
    }

    fn shader(kernel: &Kernel) -> &wgsl::Shader {
        &kernel.1
    }

    fn moves(&self, kind: Moves) -> Result<Kernel> {
        let source = CudaSource {
            source: kind.cuda(),
            shader: wgsl::Shader::fixed(kind.wgsl(), 1),
        };
        self.kernel(source).map(Arc::new)
    }
}

impl CudaGpu {
    /// Runs `plan` on this device: the result slot's contents (see
    /// [`crate::Gpu::run_stencil`]).
    pub fn run_stencil(&self, plan: &DevicePlan) -> Result<Buffer> {
        let steps = prepare(self, plan)?;
        let s = &self.stream;
        let mut slots: Vec<Option<CudaSlice<u8>>> = Vec::with_capacity(plan.slots.len());
        for &d in &plan.slots {
            // Zeroed: cells no step writes read as zeros, not as another task's.
            let bytes = slot_bytes(plan, d) as usize;
            slots.push(Some(s.alloc_zeros::<u8>(bytes).map_err(driver)?));
        }
        let missing = || Error::Layout("a stencil step on a slot beyond its plan".into());
        for (k, data) in &plan.uploads {
            let slot = slots
                .get_mut(*k as usize)
                .and_then(Option::as_mut)
                .ok_or_else(missing)?;
            s.memcpy_htod(&upload_bytes(data), slot).map_err(driver)?;
        }
        let mut status = s.alloc_zeros::<u32>(1).map_err(driver)?;
        for step in &steps {
            let dims = s.clone_htod(&step.meta).map_err(driver)?;
            let index = match &step.index {
                Some(at) => Some(s.clone_htod(at).map_err(driver)?),
                None => None,
            };
            let (&out, reads) = step.slots.split_last().ok_or_else(missing)?;
            // The written slot is taken out while the others are read.
            let mut target = slots
                .get_mut(out as usize)
                .and_then(Option::take)
                .ok_or_else(missing)?;
            let launched = {
                let mut launch = s.launch_builder(&step.kernel.0);
                launch.arg(&dims);
                if let Some(at) = &index {
                    launch.arg(at);
                }
                for &r in reads {
                    launch.arg(
                        slots
                            .get(r as usize)
                            .and_then(Option::as_ref)
                            .ok_or_else(missing)?,
                    );
                }
                launch.arg(&mut target);
                if step.status {
                    launch.arg(&mut status);
                }
                // SAFETY: the parameters are the kernel's, in its order
                // (`dims`, positions, the slots read, the slot written, the
                // status word); `prepare` checked every window and position
                // against the slots' length, and a level's reads and write
                // against their dtypes.
                unsafe { launch.launch(launch_config(step.invocations)) }
            };
            slots[out as usize] = Some(target);
            launched.map_err(driver)?;
        }
        let result = slots
            .get(plan.result as usize)
            .and_then(Option::as_ref)
            .ok_or_else(missing)?;
        let bytes = s.clone_dtoh(result).map_err(driver)?;
        let special = s.clone_dtoh(&status).map_err(driver)?;
        if let Some(&k) = special.first()
            && k > 0
        {
            return Err(Error::SpecialValues(k));
        }
        Ok(download(plan.dtype(), &bytes, plan.len))
    }
}
