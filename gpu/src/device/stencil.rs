//! A stencil task on the GPU: the steps of its [`DevicePlan`] recorded in
//! one command buffer, each a compute pass (so each sees the previous
//! ones' writes), over slots that stay in device memory. The stage inputs'
//! chunks are read from the device's kept copies (uploaded once), and only
//! the output chunk comes back.

use std::sync::Arc;

use accel_core::buffer::{Buffer, Chunk};
use accel_core::kernel::Program;
use accel_core::stencil::DevicePlan;
use wgpu::BufferUsages as U;

use super::{Gpu, Made, Pipeline, chunk_device_bytes, device_len, download};
use crate::steps::{Kernels, Moves, prepare, result_meta, slot_bytes, words};
use crate::wgsl::{self, Access};
use crate::{Error, Result};

impl Kernels for Gpu {
    type Kernel = Arc<Pipeline>;

    fn level(&self, program: &Program, access: &[Access]) -> Result<Arc<Pipeline>> {
        self.pipeline(program, access, None)
    }

    fn shader(kernel: &Arc<Pipeline>) -> &wgsl::Shader {
        &kernel.shader
    }

    fn moves(&self, kind: Moves) -> Result<Arc<Pipeline>> {
        self.compile(wgsl::Shader::fixed(kind.wgsl(), 1), kind.inputs())
    }
}

impl Gpu {
    /// Runs `plan` on this device: the output chunk's cells. Declines
    /// (`Unsupported`, `TooLarge`, `SpecialValues`) before or after the
    /// fact exactly as [`Gpu::run_map`] does.
    pub fn run_stencil(&self, plan: &DevicePlan) -> Result<Buffer> {
        match self.stencil(plan, false)? {
            Made::Values(data) => Ok(data),
            Made::Kept(_) => Err(Error::Device("a stencil's cells left on the device".into())),
        }
    }

    /// [`Gpu::run_stencil`]'s cells made the output chunk, whose values
    /// stay on the device for the tasks that read it next (the next stencil
    /// stage's [`accel_core::stencil::DeviceStep::Place`] steps), read back
    /// on first use on the host (at once when too large to keep).
    pub fn run_stencil_chunk(&self, plan: &DevicePlan) -> Result<Arc<Chunk>> {
        let local = plan.chunk_shape();
        let keep = self.keeps(device_len(plan.dtype(), accel_core::shape::size(local)));
        Ok(match self.stencil(plan, keep)? {
            Made::Values(data) => Arc::new(Chunk::array(local.to_vec(), data)),
            Made::Kept(out) => self.chunk_on_device(local, plan.dtype(), out),
        })
    }

    /// Runs the steps, then copies the chunk out of the result slot into a
    /// buffer of its own: its values come back, or, with `keep`, that buffer.
    fn stencil(&self, plan: &DevicePlan, keep: bool) -> Result<Made> {
        let dtype = plan.dtype();
        let (result_meta, cells) = result_meta(plan)?;
        if cells == 0 {
            return Ok(Made::Values(Buffer::zeros(dtype, 0)));
        }
        let slot_bytes = |d| slot_bytes(plan, d);
        if let Some(b) = plan
            .slots
            .iter()
            .map(|&d| slot_bytes(d))
            .chain(
                plan.sources
                    .iter()
                    .map(|c| chunk_device_bytes(c))
                    .collect::<Result<Vec<_>>>()?,
            )
            .max()
            && b > self.max_binding
        {
            return Err(Error::TooLarge(b));
        }
        let steps = prepare(self, plan)?;
        let out_bytes = cells as u64 * u64::from(words(dtype)) * 4;
        // Copies of chunks that died go back to the pool first.
        self.pool.give(self.resident.sweep());
        let sources = plan
            .sources
            .iter()
            .map(|c| Ok((self.kept_copy(c)?, chunk_device_bytes(c)?)))
            .collect::<Result<Vec<_>>>()?;
        let take =
            |bytes: u64, usage: U| self.pool.take(&self.device, bytes, usage, self.max_buffer);
        let slots: Vec<wgpu::Buffer> = plan
            .slots
            .iter()
            .map(|&d| take(slot_bytes(d), U::STORAGE | U::COPY_DST | U::COPY_SRC))
            .collect();
        let out = take(out_bytes, U::STORAGE | U::COPY_SRC);
        let status = take(4, U::STORAGE | U::COPY_SRC | U::COPY_DST);
        self.queue.write_buffer(&status, 0, &[0u8; 4]);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        // Cells no step writes read as zeros, not as another task's.
        for slot in &slots {
            enc.clear_buffer(slot, 0, None);
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut scratch = Vec::new();
        let missing = || Error::Layout("a stencil step on a slot beyond its plan".into());
        let no_source = || Error::Layout("a stencil step on a source beyond its plan".into());
        for step in &steps {
            let meta = self.words_buffer(&step.meta);
            let mut bound: Vec<(&wgpu::Buffer, u64)> = vec![(&meta, 4 * step.meta.len() as u64)];
            let index = match &step.index {
                Some(at) if 4 * at.len() as u64 > self.max_binding => {
                    return Err(Error::TooLarge(4 * at.len() as u64));
                }
                Some(at) => Some((self.words_buffer(at), 4 * at.len() as u64)),
                None => None,
            };
            if let Some((b, bytes)) = &index {
                bound.push((b, *bytes));
            }
            if let Some(s) = step.source {
                let (b, bytes) = sources.get(s as usize).ok_or_else(no_source)?;
                bound.push((b.as_ref(), *bytes));
            }
            for &s in &step.slots {
                let (Some(&d), Some(b)) = (plan.slots.get(s as usize), slots.get(s as usize))
                else {
                    return Err(missing());
                };
                bound.push((b, slot_bytes(d)));
            }
            if step.status {
                bound.push((&status, 4));
            }
            self.pass(&mut enc, &step.kernel, &bound, step.invocations);
            scratch.push(meta);
            scratch.extend(index.map(|(b, _)| b));
        }
        // The chunk out of the result slot, into a buffer of its own.
        let result = slots.get(plan.result as usize).ok_or_else(missing)?;
        let meta = self.words_buffer(&result_meta);
        let copy = self.moves(Moves::Box)?;
        self.pass(
            &mut enc,
            &copy,
            &[
                (&meta, 4 * result_meta.len() as u64),
                (result, slot_bytes(dtype)),
                (&out, out_bytes),
            ],
            result_meta[0],
        );
        scratch.push(meta);
        // A chunk kept on the device: only the status word comes back.
        let values_bytes = if keep { 0 } else { out_bytes };
        let readback = take(values_bytes + 4, U::MAP_READ | U::COPY_DST);
        if !keep {
            enc.copy_buffer_to_buffer(&out, 0, &readback, 0, out_bytes);
        }
        enc.copy_buffer_to_buffer(&status, 0, &readback, values_bytes, 4);
        let read = self.submit_and_read(enc, [scope, oom], &readback, values_bytes + 4, |view| {
            let special = view
                .get(values_bytes as usize..values_bytes as usize + 4)
                .map_or(0, |w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
            ((!keep).then(|| download(dtype, view, cells)), special)
        });
        let kernels = steps.len() as u64 + 1;
        self.pool
            .give(slots.into_iter().chain(scratch).chain([status, readback]));
        let (data, special) = match read {
            Err(Error::OutOfMemory(e)) => {
                // Kept copies are what a full device can give up.
                self.resident.clear();
                self.pool.give([out]);
                return Err(Error::OutOfMemory(e));
            }
            Err(e) => {
                self.pool.give([out]);
                return Err(e);
            }
            Ok(read) => read,
        };
        if special > 0 {
            self.pool.give([out]);
            return Err(Error::SpecialValues(special));
        }
        self.counters
            .kernels
            .fetch_add(kernels, std::sync::atomic::Ordering::Relaxed);
        match data {
            Some(data) => {
                self.pool.give([out]);
                Ok(Made::Values(data))
            }
            None => Ok(Made::Kept(out)),
        }
    }

    /// A storage buffer holding `words`.
    fn words_buffer(&self, words: &[u32]) -> wgpu::Buffer {
        let b = self.pool.take(
            &self.device,
            4 * words.len() as u64,
            U::STORAGE | U::COPY_DST,
            self.max_buffer,
        );
        self.queue.write_buffer(&b, 0, bytemuck::cast_slice(words));
        b
    }

    /// Records a compute pass of `kernel` over `invocations`, its bindings
    /// `bound` (buffer, bytes bound) in order.
    fn pass(
        &self,
        enc: &mut wgpu::CommandEncoder,
        kernel: &Pipeline,
        bound: &[(&wgpu::Buffer, u64)],
        invocations: u32,
    ) {
        let group = self.bind(&kernel.layout, bound);
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &group, &[]);
        let (gx, gy) = wgsl::groups(invocations);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}
