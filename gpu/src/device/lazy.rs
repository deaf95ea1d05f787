//! Chunks whose values stay in Vulkan device memory: a kernel's result that
//! the next kernels read there, read back only when the host asks for it (a
//! CPU task, a peer, the client, the spill file) or when its memory is
//! needed (see [`crate::resident`]).

use std::sync::Arc;

use accel_core::buffer::{Buffer, Chunk};
use accel_core::dtype::DType;

use super::{Gpu, KERNEL_TIMEOUT, download};
use crate::resident::ReadBack;

/// A chunk's values in a Vulkan buffer.
#[derive(Debug)]
struct VulkanCopy {
    buffer: Arc<wgpu::Buffer>,
    dtype: DType,
    n: usize,
    device: wgpu::Device,
    queue: wgpu::Queue,
}

impl ReadBack for VulkanCopy {
    fn read(&self) -> Result<Buffer, String> {
        let bytes = device_len(self.dtype, self.n);
        if bytes == 0 {
            return Ok(Buffer::zeros(self.dtype, 0));
        }
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        enc.copy_buffer_to_buffer(&self.buffer, 0, &readback, 0, bytes);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        readback
            .slice(..bytes)
            .map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r)));
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(KERNEL_TIMEOUT),
            })
            .map_err(|e| format!("waiting for the read-back: {e}"))?;
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(format!("out of memory reading a chunk back: {e}"));
        }
        rx.recv()
            .map_err(|_| "the read-back never completed".to_string())?
            .map_err(|e| format!("reading a chunk back: {e}"))?;
        let data = {
            let view = readback
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| format!("reading a chunk back: {e}"))?;
            download(self.dtype, &view, self.n)
        };
        readback.unmap();
        Ok(data)
    }
}

/// Bytes `n` values of `dtype` take in device memory (booleans take a word).
pub(crate) fn device_len(dtype: DType, n: usize) -> u64 {
    n as u64 * dtype.size().max(4) as u64
}

impl Gpu {
    /// Whether a result of `bytes` may stay in device memory only (it fits
    /// among the kept copies at the size of the pool's buffer that holds it,
    /// which is what its entry counts).
    pub(crate) fn keeps(&self, bytes: u64) -> bool {
        self.resident.fits(crate::pool::size_class(bytes))
    }

    /// The chunk of shape `local` whose values a finished kernel left in
    /// `out`: they stay there, and are read back on first use on the host.
    pub(crate) fn chunk_on_device(
        &self,
        local: &[usize],
        dtype: DType,
        out: wgpu::Buffer,
    ) -> Arc<Chunk> {
        let out = Arc::new(out);
        // Counted at its whole size: pooled buffers are rounded up.
        let bytes = out.size();
        let copy = VulkanCopy {
            buffer: out.clone(),
            dtype,
            n: accel_core::shape::size(local),
            device: self.device.clone(),
            queue: self.queue.clone(),
        };
        self.resident
            .leave_on_device(local, dtype, (out, bytes), copy)
    }

    /// Takes the device for lost (see [`crate::resident`]): the values only
    /// it holds can no longer be read back.
    pub fn lose(&self) {
        self.resident.lose();
    }

    /// Chunks read back from device memory so far (made on the device, then
    /// read on the host), and the chunks whose values are only on the
    /// device now, with their bytes.
    pub fn device_chunks(&self) -> (u64, usize, u64) {
        self.resident.device_chunks()
    }
}
