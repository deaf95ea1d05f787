//! Device buffers kept between kernels. Creating and destroying a buffer
//! per task costs the driver an allocation each (and real drivers zero new
//! memory): a stage's tasks, whose chunks share their sizes, reuse them.

use std::sync::Mutex;

/// Idle device memory kept for reuse, at most.
const LIMIT: u64 = 512 << 20;

/// Buffers are made in power-of-two sizes (from 256 bytes), so chunks of
/// nearly the same size share them.
pub(crate) fn size_class(bytes: u64) -> u64 {
    bytes.max(256).next_power_of_two()
}

/// Whether [`BufferPool::take`] can hand out a buffer of `size` bytes again.
fn reusable(size: u64) -> bool {
    size == size_class(size)
}

#[derive(Default)]
pub(crate) struct BufferPool {
    free: Mutex<Vec<wgpu::Buffer>>,
}

impl BufferPool {
    /// A buffer of at least `bytes` with exactly `usage`: a kept one, or a
    /// new one (of exactly `bytes`, rounded to 4, where the size class
    /// would pass the device's `max` buffer size).
    pub(crate) fn take(
        &self,
        device: &wgpu::Device,
        bytes: u64,
        usage: wgpu::BufferUsages,
        max: u64,
    ) -> wgpu::Buffer {
        let class = size_class(bytes);
        let size = if class <= max {
            class
        } else {
            bytes.next_multiple_of(4)
        };
        if let Ok(mut free) = self.free.lock()
            && let Some(i) = free
                .iter()
                .position(|b| b.size() == size && b.usage() == usage)
        {
            return free.swap_remove(i);
        }
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        })
    }

    /// Keeps `buffers` (no kernel may be using them any more) within [`LIMIT`].
    pub(crate) fn give(&self, buffers: impl IntoIterator<Item = wgpu::Buffer>) {
        let Ok(mut free) = self.free.lock() else {
            return;
        };
        let mut held: u64 = free.iter().map(wgpu::Buffer::size).sum();
        for b in buffers {
            // A buffer of another size (an upload made to the chunk's
            // size) would never be taken again: it is freed.
            if reusable(b.size()) && held + b.size() <= LIMIT {
                held += b.size();
                free.push(b);
            }
        }
    }

    /// Buffers kept now.
    pub(crate) fn kept(&self) -> usize {
        self.free.lock().map_or(0, |f| f.len())
    }
}

#[cfg(test)]
mod tests {
    use super::{reusable, size_class};

    #[test]
    fn only_buffers_of_a_size_class_are_kept_for_reuse() {
        assert!(reusable(256) && reusable(1 << 20));
        // An upload made at its chunk's size: 1000×1000 float64.
        assert!(!reusable(8_000_000) && !reusable(4) && !reusable(300));
    }

    #[test]
    fn sizes_round_up_to_powers_of_two_from_256() {
        assert_eq!(size_class(0), 256);
        assert_eq!(size_class(4), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 512);
        assert_eq!(size_class(3 << 20), 4 << 20);
    }
}
