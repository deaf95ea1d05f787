//! Measurements shared by accel's benchmark programs.

pub mod json;

use std::time::{Duration, Instant};

use rayon::prelude::*;

/// Best of `repeats` timings of `f` after one warm-up run.
pub fn best_of(repeats: usize, mut f: impl FnMut()) -> Duration {
    f();
    (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// STREAM triad `a = b + s*c` over `n` preallocated f64 on all cores: this
/// machine's attainable memory bandwidth in GB/s (24 bytes per element).
pub fn triad_gbps(n: usize, repeats: usize) -> f64 {
    let b = vec![1.0f64; n];
    let c = vec![2.0f64; n];
    let mut a = vec![0.0f64; n];
    let s = 3.0;
    let t = best_of(repeats, || {
        a.par_chunks_mut(1 << 16)
            .zip(b.par_chunks(1 << 16))
            .zip(c.par_chunks(1 << 16))
            .for_each(|((a, b), c)| {
                for i in 0..a.len() {
                    a[i] = b[i] + s * c[i];
                }
            })
    });
    std::hint::black_box(&a);
    (24 * n) as f64 / t.as_secs_f64() / 1e9
}
