//! Large zeroed allocations backed by transparent huge pages where the OS
//! allows it: first-touch page faults dominate memory-bound kernels writing
//! fresh arrays, and a 2 MiB page costs one fault instead of 512.

/// Allocations at least this large ask for huge pages.
const HUGE_THRESHOLD: usize = 4 << 20;

/// `len` copies of `zero`, which must be the all-zero bit pattern of `T`
/// (so the allocation comes from calloc/mmap and no page is touched yet).
pub fn zeroed_vec<T: Clone>(zero: T, len: usize) -> Vec<T> {
    let v = vec![zero; len];
    advise_huge(&v);
    v
}

/// An empty vector with room for `len` elements, backed by huge pages where possible.
pub fn with_capacity<T>(len: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(len);
    advise_range(v.as_ptr() as usize, len * std::mem::size_of::<T>());
    v
}

#[cfg(target_os = "linux")]
fn advise_huge<T>(v: &[T]) {
    advise_range(v.as_ptr() as usize, std::mem::size_of_val(v));
}

#[cfg(target_os = "linux")]
fn advise_range(start: usize, bytes: usize) {
    if bytes < HUGE_THRESHOLD {
        return;
    }
    const PAGE: usize = 2 << 20;
    let aligned = start.next_multiple_of(PAGE);
    let end = (start + bytes) / PAGE * PAGE;
    if end > aligned {
        // SAFETY: the range lies inside a live allocation of the caller; MADV_HUGEPAGE
        // only changes how the kernel backs it and never its contents.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge<T>(_: &[T]) {}

#[cfg(not(target_os = "linux"))]
fn advise_range(_: usize, _: usize) {}

/// Gives free heap memory back to the system. A long-lived process (a worker
/// between jobs) would otherwise keep the footprint of its busiest job: glibc
/// keeps freed blocks below its mmap threshold in its arenas. Walks every
/// arena, so callers do it when idle, not per task.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The machine's memory, in bytes (Linux; `None` elsewhere).
pub fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
