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

/// A transparent huge page on x86-64 and most arm64 kernels.
pub const HUGE_PAGE: usize = 2 << 20;

/// Granule of [`populate_parallel`]: one huge page, so no two threads ever
/// fault on the same one.
const POPULATE_PIECE: usize = HUGE_PAGE;

/// Backs the pages of a fresh zeroed allocation (`start`, `bytes`) with
/// memory now, in parallel, each thread on its own 2 MiB-aligned pieces.
/// Tasks that later write a large result chunk by chunk touch the same huge
/// page from several threads at once, and every thread that loses the race
/// to map a page has cleared 2 MiB for nothing; done up front, each page is
/// cleared once, by whichever core is free. Small ranges are left alone.
///
/// # Safety
/// `start..start + bytes` is a live allocation the caller owns exclusively,
/// and all-zero bytes are valid contents for it (it was just zeroed).
pub unsafe fn populate_parallel(start: *mut u8, bytes: usize) {
    use rayon::prelude::*;
    if bytes < HUGE_THRESHOLD {
        return;
    }
    let (base, end) = (start as usize, start as usize + bytes);
    let first = base.next_multiple_of(POPULATE_PIECE);
    let mut bounds = vec![base];
    bounds.extend((first..end).step_by(POPULATE_PIECE).filter(|&b| b > base));
    bounds.push(end);
    bounds.par_windows(2).for_each(|w| {
        // SAFETY: [w[0], w[1]) lies inside the caller's allocation.
        unsafe { populate(w[0], w[1] - w[0]) }
    });
}

/// # Safety
/// As [`populate_parallel`], for `at..at + len`.
unsafe fn populate(at: usize, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let aligned = at.next_multiple_of(PAGE);
        let end = (at + len) / PAGE * PAGE;
        // SAFETY: a page-aligned range inside the caller's allocation;
        // MADV_POPULATE_WRITE maps it as if written, contents unchanged.
        let done = end <= aligned
            || unsafe {
                libc::madvise(
                    aligned as *mut libc::c_void,
                    end - aligned,
                    libc::MADV_POPULATE_WRITE,
                ) == 0
            };
        if done {
            return;
        }
    }
    // Kernels without MADV_POPULATE_WRITE (before 5.14): write a zero into
    // every page, which the caller guarantees holds zeros already.
    let mut p = at;
    while p < at + len {
        // SAFETY: inside the caller's allocation, whose contents are zero.
        unsafe { std::ptr::write_volatile(p as *mut u8, 0) };
        p = (p + 1).next_multiple_of(4096);
    }
}

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

/// The machine's memory, in bytes (Linux; `None` elsewhere). Read once:
/// every embedded run checks against it.
pub fn total_memory() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kb.checked_mul(1024)
    })
}

/// Parses a size in bytes: a number (`4000000000`), or one with a unit
/// (`4GiB`, `4GB`, `512MiB`, `4G`; `k`, `m`, `g`, `t` are powers of 1000).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size in bytes (e.g. 4GiB, 500MB)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        other => return Err(format!("unknown unit {other:?} in {s:?}")),
    };
    Ok((n * scale) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_with_and_without_units() {
        use super::parse_bytes;
        assert_eq!(parse_bytes("4000"), Ok(4000));
        assert_eq!(parse_bytes(" 4GiB "), Ok(4 << 30));
        assert_eq!(parse_bytes("1.5kb"), Ok(1500));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert!(parse_bytes("lots").unwrap_err().contains("not a size"));
        assert!(
            parse_bytes("4 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
    }

    #[test]
    fn populated_memory_stays_zero_and_writable() {
        for len in [10usize, (5 << 20) + 12_345, 9 << 20] {
            let mut v = super::zeroed_vec(0u8, len);
            // SAFETY: a fresh, owned, zeroed allocation.
            unsafe { super::populate_parallel(v.as_mut_ptr(), len) };
            assert!(v.iter().all(|&b| b == 0));
            v[len - 1] = 7;
            assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 7);
        }
        // An unaligned start: the pieces' bounds begin mid-page.
        let mut v = super::zeroed_vec(0u64, 1 << 20);
        // SAFETY: as above, one element in.
        unsafe { super::populate_parallel(v[1..].as_mut_ptr() as *mut u8, ((1 << 20) - 1) * 8) };
        assert!(v.iter().all(|&b| b == 0));
    }
}
