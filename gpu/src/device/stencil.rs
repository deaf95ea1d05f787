//! A stencil task on the GPU: the steps of its [`DevicePlan`] recorded in
//! one command buffer, each a compute pass (so each sees the previous
//! ones' writes), over slots that stay in device memory; the stage inputs
//! go up before, and only the result slot comes back.

use std::sync::Arc;

use accel_core::buffer::Buffer;
use accel_core::kernel::Program;
use accel_core::stencil::DevicePlan;
use wgpu::BufferUsages as U;

use super::{Gpu, Pipeline, download, upload_bytes};
use crate::steps::{Kernels, Moves, prepare, slot_bytes};
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
    /// Runs `plan` on this device: the result slot's contents. Declines
    /// (`Unsupported`, `TooLarge`, `SpecialValues`) before or after the
    /// fact exactly as [`Gpu::run_map`] does.
    pub fn run_stencil(&self, plan: &DevicePlan) -> Result<Buffer> {
        let slot_bytes = |d| slot_bytes(plan, d);
        if let Some(b) = plan.slots.iter().map(|&d| slot_bytes(d)).max()
            && b > self.max_binding
        {
            return Err(Error::TooLarge(b));
        }
        let steps = prepare(self, plan)?;
        let take =
            |bytes: u64, usage: U| self.pool.take(&self.device, bytes, usage, self.max_buffer);
        let slots: Vec<wgpu::Buffer> = plan
            .slots
            .iter()
            .map(|&d| take(slot_bytes(d), U::STORAGE | U::COPY_DST | U::COPY_SRC))
            .collect();
        let status = take(4, U::STORAGE | U::COPY_SRC | U::COPY_DST);
        self.queue.write_buffer(&status, 0, &[0u8; 4]);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        for (s, slot) in slots.iter().enumerate() {
            match plan.uploads.iter().find(|(u, _)| *u as usize == s) {
                Some((_, data)) => self.queue.write_buffer(slot, 0, &upload_bytes(data)),
                // Cells no step writes read as zeros, not as another task's.
                None => enc.clear_buffer(slot, 0, None),
            }
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut scratch = Vec::new();
        for step in &steps {
            let meta = take(4 * step.meta.len() as u64, U::STORAGE | U::COPY_DST);
            self.queue
                .write_buffer(&meta, 0, bytemuck::cast_slice(&step.meta));
            let mut bound: Vec<(&wgpu::Buffer, u64)> = vec![(&meta, 4 * step.meta.len() as u64)];
            let index = match &step.index {
                Some(at) if 4 * at.len() as u64 > self.max_binding => {
                    return Err(Error::TooLarge(4 * at.len() as u64));
                }
                Some(at) => {
                    let b = take(4 * at.len() as u64, U::STORAGE | U::COPY_DST);
                    self.queue.write_buffer(&b, 0, bytemuck::cast_slice(at));
                    Some((b, 4 * at.len() as u64))
                }
                None => None,
            };
            if let Some((b, bytes)) = &index {
                bound.push((b, *bytes));
            }
            for &s in &step.slots {
                let (Some(&d), Some(b)) = (plan.slots.get(s as usize), slots.get(s as usize))
                else {
                    return Err(Error::Layout(
                        "a stencil step on a slot beyond its plan".into(),
                    ));
                };
                bound.push((b, slot_bytes(d)));
            }
            if step.status {
                bound.push((&status, 4));
            }
            let group = self.bind(&step.kernel.layout, &bound);
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&step.kernel.pipeline);
            pass.set_bind_group(0, &group, &[]);
            let (gx, gy) = wgsl::groups(step.invocations);
            pass.dispatch_workgroups(gx, gy, 1);
            drop(pass);
            scratch.push(meta);
            scratch.extend(index.map(|(b, _)| b));
        }
        let dtype = plan.dtype();
        let out_bytes = slot_bytes(dtype);
        let readback = take(out_bytes + 4, U::MAP_READ | U::COPY_DST);
        let result = slots
            .get(plan.result as usize)
            .ok_or_else(|| Error::Layout("a stencil's result beyond its slots".into()))?;
        enc.copy_buffer_to_buffer(result, 0, &readback, 0, out_bytes);
        enc.copy_buffer_to_buffer(&status, 0, &readback, out_bytes, 4);
        let (data, special) =
            self.submit_and_read(enc, [scope, oom], &readback, out_bytes + 4, |view| {
                let special = view
                    .get(out_bytes as usize..out_bytes as usize + 4)
                    .map_or(0, |w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
                (download(dtype, view, plan.len), special)
            })?;
        let kernels = steps.len() as u64;
        self.pool
            .give(slots.into_iter().chain(scratch).chain([status, readback]));
        if special > 0 {
            return Err(Error::SpecialValues(special));
        }
        self.counters
            .kernels
            .fetch_add(kernels, std::sync::atomic::Ordering::Relaxed);
        Ok(data)
    }
}
