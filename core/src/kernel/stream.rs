//! Copies that bypass the cache on the way out. A large result written with
//! ordinary stores first reads every destination line from memory (the
//! store needs the line it changes) and leaves it dirty in a cache it is
//! not read from again; non-temporal stores send the bytes to memory
//! directly, saving the read. Only worth it for destinations that are large
//! and not read back soon: a task's whole result written into the caller's
//! array, say.

/// Copies `src` into `dst` (equal lengths) with non-temporal stores where the
/// CPU has them, ordinary ones elsewhere. Call [`fence`] before another
/// thread may read `dst`.
pub fn copy_streaming<T: Copy>(src: &[T], dst: &mut [T]) {
    let n = src.len().min(dst.len());
    let bytes = n * std::mem::size_of::<T>();
    #[cfg(target_arch = "x86_64")]
    // SAFETY: both ranges hold `bytes` bytes of plain `Copy` values, and a
    // shared and a unique borrow cannot overlap.
    unsafe {
        copy_bytes_streaming(
            src.as_ptr() as *const u8,
            dst.as_mut_ptr() as *mut u8,
            bytes,
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = bytes;
        dst[..n].copy_from_slice(&src[..n]);
    }
}

/// Appends `src` to `v` with non-temporal stores where the CPU has them.
/// Call [`fence`] before another thread may read `v`.
pub fn extend_streaming<T: Copy>(v: &mut Vec<T>, src: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        v.reserve(src.len());
        let spare = v.spare_capacity_mut();
        // SAFETY: `spare` has room for `src.len()` elements (reserved above)
        // and is not `src` (a unique borrow of `v`); once the bytes are copied
        // those elements are initialized `Copy` values.
        unsafe {
            copy_bytes_streaming(
                src.as_ptr() as *const u8,
                spare.as_mut_ptr() as *mut u8,
                std::mem::size_of_val(src),
            );
            v.set_len(v.len() + src.len());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    v.extend_from_slice(src);
}

/// Orders earlier non-temporal stores of this thread before its later stores
/// (the ones that tell other threads the data is there).
pub fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` has no operands; SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    }
}

/// # Safety
/// `src` and `dst` are valid for `len` bytes and do not overlap.
#[cfg(target_arch = "x86_64")]
unsafe fn copy_bytes_streaming(src: *const u8, dst: *mut u8, len: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
    // Bytes up to the first 16-byte boundary of the destination, ordinarily.
    let head = (dst.align_offset(16)).min(len);
    // SAFETY (whole body): every offset stays below `len`, as the caller
    // guarantees for both pointers; stream stores go to 16-byte-aligned
    // addresses.
    unsafe {
        std::ptr::copy_nonoverlapping(src, dst, head);
        let mut at = head;
        while at + 64 <= len {
            let s = src.add(at) as *const __m128i;
            let d = dst.add(at) as *mut __m128i;
            let (a, b) = (_mm_loadu_si128(s), _mm_loadu_si128(s.add(1)));
            let (c, e) = (_mm_loadu_si128(s.add(2)), _mm_loadu_si128(s.add(3)));
            _mm_stream_si128(d, a);
            _mm_stream_si128(d.add(1), b);
            _mm_stream_si128(d.add(2), c);
            _mm_stream_si128(d.add(3), e);
            at += 64;
        }
        while at + 16 <= len {
            _mm_stream_si128(
                dst.add(at) as *mut __m128i,
                _mm_loadu_si128(src.add(at) as *const __m128i),
            );
            at += 16;
        }
        std::ptr::copy_nonoverlapping(src.add(at), dst.add(at), len - at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_copies_equal_the_source_at_every_alignment_and_length() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..17 {
            for len in [0, 1, 15, 16, 17, 63, 64, 65, 130, 250] {
                let mut dst = vec![0u8; 300];
                copy_streaming(&src[..len], &mut dst[start..start + len]);
                fence();
                assert_eq!(&dst[start..start + len], &src[..len]);
                assert!(dst[..start].iter().all(|&b| b == 0));
                assert!(dst[start + len..].iter().all(|&b| b == 0));
            }
        }
        let mut grown = vec![1u32, 2];
        extend_streaming(&mut grown, &[3, 4, 5, 6, 7]);
        extend_streaming(&mut grown, &(8..100).collect::<Vec<u32>>());
        fence();
        assert_eq!(grown, (1..100).collect::<Vec<u32>>());
        let wide: Vec<f64> = (0..1001).map(|i| i as f64 * 0.5).collect();
        let mut out = vec![0.0; 1001];
        copy_streaming(&wide, &mut out);
        fence();
        assert_eq!(out, wide);
    }
}
