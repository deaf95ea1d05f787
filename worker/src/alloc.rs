//! The worker's allocator: mimalloc for small blocks, the system allocator
//! for large ones.
//!
//! A worker allocates and frees tiny blocks by the million (task states,
//! messages, partial results) on several threads, where mimalloc is several
//! times cheaper than glibc; and chunk buffers of megabytes, where glibc's
//! fresh, lazily zeroed mappings are cheaper than mimalloc's reused segments
//! (measured: a 4000² result computed in 1000² chunks came back 2–4× slower
//! with mimalloc for everything). A block's size decides its allocator, and
//! the same size comes back when it is freed, so each block returns to the
//! allocator it came from.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of this many bytes or more go to the system allocator.
const LARGE: usize = 256 << 10;

/// See the module documentation.
pub struct WorkerAlloc;

/// Makes glibc map every large block afresh and unmap it when freed. By
/// default glibc raises its mapping threshold after the first large free,
/// and later chunk buffers then come from its heap and stay in the process
/// after they are freed (a worker over its memory limit would keep them).
/// Call once at start-up, before any thread allocates.
pub fn map_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of glibc's allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int);
    }
}

fn is_large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every block is allocated and freed by the same allocator (chosen
// by its size, which `dealloc` and `realloc` receive unchanged), and both
// allocators uphold `GlobalAlloc`'s contract.
unsafe impl GlobalAlloc for WorkerAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if is_large(layout.size()) {
                System.alloc(layout)
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if is_large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the allocator this size selects.
        unsafe {
            if is_large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (was, will) = (is_large(layout.size()), is_large(new_size));
        // SAFETY: `ptr` came from the allocator `layout.size()` selects; a
        // move between allocators copies the smaller of the two sizes and
        // frees the old block where it came from.
        unsafe {
            match (was, will) {
                (true, true) => System.realloc(ptr, layout, new_size),
                (false, false) => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks on both sides of the threshold, grown and shrunk across it,
    /// keep their contents and free where they came from.
    #[test]
    fn blocks_cross_the_threshold_intact() {
        let a = WorkerAlloc;
        for (from, to) in [
            (64, LARGE * 2),
            (LARGE * 2, 64),
            (LARGE - 8, LARGE + 8),
            (100, 200),
        ] {
            let layout = Layout::from_size_align(from, 16).unwrap_or_else(|_| unreachable!());
            // SAFETY: a non-zero layout; the block is written within its size,
            // reallocated with its own layout and freed with the new one.
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                for i in 0..from {
                    *p.add(i) = (i % 251) as u8;
                }
                let q = a.realloc(p, layout, to);
                assert!(!q.is_null());
                for i in 0..from.min(to) {
                    assert_eq!(*q.add(i), (i % 251) as u8);
                }
                a.dealloc(q, Layout::from_size_align_unchecked(to, 16));
            }
        }
    }
}
