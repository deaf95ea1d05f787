//! A kernel timed alone: inputs and output stay in device memory, and the
//! kernel runs many times in a row; what a device's memory-bound kernels
//! reach against its bandwidth (transfers are timed by whole computes).

use std::time::{Duration, Instant};

use accel_core::buffer::Buffer;
use accel_core::kernel::Program;
use wgpu::BufferUsages as U;

use super::{Gpu, KERNEL_TIMEOUT, Launch, meta_words, signed, upload_bytes};
use crate::{Error, Result};

impl Gpu {
    /// The time of one run of `program` over a chunk of shape `local` (at
    /// the origin) from `inputs` already on the device: a run to warm up,
    /// then `repeats` runs in one submission, timed together.
    pub fn time_map(
        &self,
        program: &Program,
        local: &[usize],
        inputs: &[(&[usize], &Buffer)],
        repeats: u32,
    ) -> Result<Duration> {
        let Launch {
            access,
            strides,
            root,
            n,
            n32,
        } = Launch::new(program, local, &crate::device::pair_infos(inputs))?;
        let pipe = self.pipeline(program, &access, None)?;
        let origin = signed(&vec![0; local.len()]);
        let meta = meta_words(program, &pipe.shader, n32, &origin, local, &strides);
        let make = |bytes: &[u8]| {
            let b = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: (bytes.len() as u64).max(4).next_multiple_of(4),
                usage: U::STORAGE | U::COPY_DST,
                mapped_at_creation: false,
            });
            self.queue.write_buffer(&b, 0, bytes);
            b
        };
        let mut bound = vec![make(bytemuck::cast_slice(&meta))];
        for (_, b) in inputs {
            bound.push(make(&upload_bytes(b)));
        }
        bound.push(make(&vec![0u8; n * root.size().max(4)]));
        if pipe.shader.flags {
            bound.push(make(&[0u8; 4]));
        }
        let entries: Vec<wgpu::BindGroupEntry<'_>> = bound
            .iter()
            .enumerate()
            .map(|(k, b)| wgpu::BindGroupEntry {
                binding: k as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipe.layout,
            entries: &entries,
        });
        let run = |times: u32| -> Result<Duration> {
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            for _ in 0..times {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                pass.set_pipeline(&pipe.pipeline);
                pass.set_bind_group(0, &group, &[]);
                let (gx, gy) = crate::wgsl::groups(n32);
                pass.dispatch_workgroups(gx, gy, 1);
            }
            let _guard = self
                .submit
                .lock()
                .map_err(|_| Error::Device("poisoned".into()))?;
            let start = Instant::now();
            self.queue.submit([enc.finish()]);
            self.device
                .poll(wgpu::PollType::Wait {
                    submission_index: None,
                    timeout: Some(KERNEL_TIMEOUT),
                })
                .map_err(|e| Error::Device(format!("waiting for the kernel: {e}")))?;
            Ok(start.elapsed())
        };
        // The first run also waits for the uploads.
        run(1)?;
        let total = run(repeats.max(1))?;
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(e.to_string()));
        }
        Ok(total / repeats.max(1))
    }
}
