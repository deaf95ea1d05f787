//! A stencil task on a CUDA device: the steps of its [`DevicePlan`]
//! launched in order on one stream over slots that stay in device memory
//! (see [`crate::steps`]). The stage inputs' chunks are read from the
//! device's kept copies (uploaded once), and only the output chunk comes
//! back.

use std::sync::Arc;

use accel_core::buffer::{Buffer, Chunk};
use accel_core::kernel::Program;
use accel_core::stencil::DevicePlan;
use cudarc::driver::{CudaFunction, CudaSlice, PushKernelArg};

use super::CudaSource;
use super::runtime::{CudaGpu, driver, launch_config};
use crate::device::{Made, device_len, download};
use crate::steps::{Kernels, Moves, prepare, result_meta, slot_bytes, words};
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
    /// Runs `plan` on this device: the output chunk's cells (see
    /// [`crate::Gpu::run_stencil`]).
    pub fn run_stencil(&self, plan: &DevicePlan) -> Result<Buffer> {
        match self.stencil(plan, false).map_err(|e| self.failed(e))? {
            Made::Values(data) => Ok(data),
            Made::Kept(_) => Err(Error::Device("a stencil's cells left on the device".into())),
        }
    }

    /// The output chunk, its values left on the device for the tasks that
    /// read it next (see [`crate::Gpu::run_stencil_chunk`]).
    pub fn run_stencil_chunk(&self, plan: &DevicePlan) -> Result<Arc<Chunk>> {
        let local = plan.chunk_shape();
        let keep = self.keeps(device_len(plan.dtype(), accel_core::shape::size(local)));
        Ok(
            match self.stencil(plan, keep).map_err(|e| self.failed(e))? {
                Made::Values(data) => Arc::new(Chunk::array(local.to_vec(), data)),
                Made::Kept(out) => self.chunk_on_device(local, plan.dtype(), out),
            },
        )
    }

    /// Runs the steps, then copies the chunk out of the result slot into a
    /// buffer of its own: its cells, or, with `keep`, that buffer.
    fn stencil(&self, plan: &DevicePlan, keep: bool) -> Result<Made<CudaSlice<u8>>> {
        let dtype = plan.dtype();
        let (result_meta, cells) = result_meta(plan)?;
        if cells == 0 {
            return Ok(Made::Values(Buffer::zeros(dtype, 0)));
        }
        let steps = prepare(self, plan)?;
        let s = &self.stream;
        // Copies of chunks that died are freed first.
        drop(self.resident.sweep());
        let sources = plan
            .sources
            .iter()
            .map(|c| self.kept_copy(c))
            .collect::<Result<Vec<_>>>()?;
        let mut slots: Vec<Option<CudaSlice<u8>>> = Vec::with_capacity(plan.slots.len());
        for &d in &plan.slots {
            // Zeroed: cells no step writes read as zeros, not as another task's.
            let bytes = slot_bytes(plan, d) as usize;
            slots.push(Some(s.alloc_zeros::<u8>(bytes).map_err(driver)?));
        }
        let missing = || Error::Layout("a stencil step on a slot beyond its plan".into());
        let no_source = || Error::Layout("a stencil step on a source beyond its plan".into());
        let mut status = s.alloc_zeros::<u32>(1).map_err(driver)?;
        // Every step's words (and the result's box) go up in one copy: a
        // copy from host memory waits for the device, a launch does not.
        let (packed_words, at) = packed(&steps, &result_meta);
        let packed_words = s.clone_htod(&packed_words).map_err(driver)?;
        let view = |(from, len): (usize, usize)| packed_words.slice(from..from + len);
        for (step, at) in steps.iter().zip(&at) {
            let dims = view(at.0);
            let index = at.1.map(view);
            let source = match step.source {
                Some(k) => Some(sources.get(k as usize).ok_or_else(no_source)?),
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
                if let Some(from) = source {
                    launch.arg(from.as_ref());
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
                // (`dims`, positions or the source read, the slots read,
                // the slot written, the status word); `prepare` checked
                // every window, box and position against the buffers'
                // length, and a level's reads and write against their
                // dtypes.
                unsafe { launch.launch(launch_config(step.invocations)) }
            };
            slots[out as usize] = Some(target);
            launched.map_err(driver)?;
        }
        let result = slots
            .get(plan.result as usize)
            .and_then(Option::as_ref)
            .ok_or_else(missing)?;
        let mut out = s
            .alloc_zeros::<u8>(cells * 4 * words(dtype) as usize)
            .map_err(driver)?;
        let dims = view(at.last().map_or((0, 0), |a| a.0));
        let copy = self.moves(Moves::Box)?;
        {
            let mut launch = s.launch_builder(&copy.0);
            launch.arg(&dims);
            launch.arg(result);
            launch.arg(&mut out);
            // SAFETY: the box kernel's parameters in order; `result_meta`
            // checked the box against the result slot and the chunk.
            unsafe { launch.launch(launch_config(result_meta[0])) }.map_err(driver)?;
        }
        let special = s.clone_dtoh(&status).map_err(driver)?;
        if let Some(&k) = special.first()
            && k > 0
        {
            return Err(Error::SpecialValues(k));
        }
        if keep {
            return Ok(Made::Kept(out));
        }
        let bytes = s.clone_dtoh(&out).map_err(driver)?;
        Ok(Made::Values(download(dtype, &bytes, cells)))
    }
}

/// Where a segment of [`packed`] words lies: its first word and length.
type Segment = (usize, usize);

/// The words of every step (`dims`, then its positions if any) and, last,
/// `result_meta`, one after another; with each step's segments, and the
/// result's as a last entry. Each segment starts on a 16-byte boundary, as
/// a buffer of its own would (kernels read 4-byte words, but a compiler may
/// widen loads of a parameter it knows to be so aligned).
fn packed(
    steps: &[crate::steps::Prepared<Kernel>],
    result_meta: &[u32],
) -> (Vec<u32>, Vec<(Segment, Option<Segment>)>) {
    let total: usize = steps
        .iter()
        .map(|p| p.meta.len() + p.index.as_ref().map_or(0, Vec::len) + 8)
        .sum::<usize>()
        + result_meta.len();
    let mut words = Vec::with_capacity(total);
    let mut push = |w: &[u32]| {
        words.resize(words.len().next_multiple_of(4), 0);
        let at = (words.len(), w.len());
        words.extend_from_slice(w);
        at
    };
    let mut at: Vec<(Segment, Option<Segment>)> = steps
        .iter()
        .map(|p| (push(&p.meta), p.index.as_deref().map(&mut push)))
        .collect();
    at.push((push(result_meta), None));
    (words, at)
}
