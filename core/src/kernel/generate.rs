//! Index arithmetic and generated values (ranges and counter-based random numbers).

use super::slot::Slot;
use crate::op::GenKind;

/// Fills `out` with `base + Σ coord[d] * strides[d]` for the row-major positions
/// `start..start + out.len()` of an array of `shape` (coordinates local to it).
pub fn fill_index(base: i64, strides: &[i64], shape: &[usize], start: usize, out: &mut [i64]) {
    let nd = shape.len();
    if nd == 0 || out.is_empty() {
        out.iter_mut().for_each(|x| *x = base);
        return;
    }
    let mut coord = vec![0usize; nd];
    let mut rem = start;
    for d in (0..nd).rev() {
        let n = shape[d].max(1);
        coord[d] = rem % n;
        rem /= n;
    }
    let mut idx = base
        + coord
            .iter()
            .zip(strides)
            .map(|(&c, &s)| c as i64 * s)
            .sum::<i64>();
    let inner = nd - 1;
    let s = strides[inner];
    let mut k = 0;
    while k < out.len() {
        let run = (shape[inner] - coord[inner]).min(out.len() - k);
        for (t, o) in out[k..k + run].iter_mut().enumerate() {
            *o = idx + t as i64 * s;
        }
        k += run;
        idx += run as i64 * s;
        coord[inner] += run;
        if coord[inner] < shape[inner] {
            continue;
        }
        // Carry into the outer axes.
        idx -= shape[inner] as i64 * s;
        coord[inner] = 0;
        let mut d = inner;
        while d > 0 {
            d -= 1;
            coord[d] += 1;
            idx += strides[d];
            if coord[d] < shape[d] {
                break;
            }
            idx -= shape[d] as i64 * strides[d];
            coord[d] = 0;
        }
    }
}

/// SplitMix64's output function: a bijective 64-bit mixer.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The counter increment of SplitMix64 (the golden ratio in 64 bits).
pub const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Key of a (seed, stream) pair.
#[inline]
pub fn key(seed: u64, stream: u64) -> u64 {
    mix64(seed ^ mix64(stream.wrapping_add(GOLDEN)))
}

/// The i-th uniform in [0, 1) of a stream: SplitMix64 evaluated at counter i,
/// so a value depends only on (seed, stream, global index), never on chunking.
/// The top 52 bits become the mantissa of a double in [1, 2): integer-only
/// work that vectorizes (AVX2 has no u64 → f64 conversion).
#[inline]
fn uniform01(key: u64, i: u64) -> f64 {
    let z = mix64(key.wrapping_add(i.wrapping_add(1).wrapping_mul(GOLDEN)));
    f64::from_bits(0x3ff0_0000_0000_0000 | (z >> 12)) - 1.0
}

/// NumPy's linspace step, and the counter that is exactly `stop` (-1: none).
pub fn linspace_step(start: f64, stop: f64, num: u64, endpoint: bool) -> (f64, i64) {
    let div = if endpoint { num.saturating_sub(1) } else { num };
    let step = if div > 0 {
        (stop - start) / div as f64
    } else {
        0.0
    };
    (step, if endpoint { num as i64 - 1 } else { -1 })
}

/// Fills `out[k]` with the generator's f64 value at counter `idx[k]`; the
/// match on the kind is outside the loops so each loop is tight.
fn fill_f64(kind: &GenKind, idx: &[i64], out: &mut [f64]) {
    match *kind {
        GenKind::Arange { start, step } => {
            for (o, &i) in out.iter_mut().zip(idx) {
                *o = start + i as f64 * step;
            }
        }
        GenKind::Linspace {
            start,
            stop,
            num,
            endpoint,
        } => {
            let (step, last) = linspace_step(start, stop, num, endpoint);
            for (o, &i) in out.iter_mut().zip(idx) {
                *o = if i == last {
                    stop
                } else {
                    start + i as f64 * step
                };
            }
        }
        GenKind::Uniform {
            seed,
            stream,
            low,
            high,
        } => {
            let k = key(seed, stream);
            for (o, &i) in out.iter_mut().zip(idx) {
                *o = low + (high - low) * uniform01(k, i as u64);
            }
        }
        GenKind::Normal {
            seed,
            stream,
            mean,
            std,
        } => {
            let k = key(seed, stream);
            for (o, &i) in out.iter_mut().zip(idx) {
                let u1 = 1.0 - uniform01(k, 2 * i as u64);
                let u2 = uniform01(k, 2 * i as u64 + 1);
                *o = mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            }
        }
    }
}

/// Fills `out` with the generator's values at counters `idx`.
pub fn generate(kind: &GenKind, idx: &[i64], out: &mut Slot) {
    let n = idx.len();
    match out {
        Slot::F64(o) => fill_f64(kind, idx, &mut o[..n]),
        Slot::F32(o) => {
            let mut tmp = vec![0.0f64; n];
            fill_f64(kind, idx, &mut tmp);
            for (o, t) in o[..n].iter_mut().zip(tmp) {
                *o = t as f32;
            }
        }
        Slot::I64(o) => fill_int(kind, idx, &mut o[..n]),
        Slot::I32(o) => {
            let mut tmp = vec![0i64; n];
            fill_int(kind, idx, &mut tmp);
            for (o, t) in o[..n].iter_mut().zip(tmp) {
                *o = t as i32;
            }
        }
        // Generators are never built with these dtypes (checked when the node is built).
        Slot::Bool(_) | Slot::C128(..) => {}
    }
}

fn fill_int(kind: &GenKind, idx: &[i64], o: &mut [i64]) {
    if let GenKind::Arange { start, step } = *kind {
        // Integer ranges stay exact beyond 2^53.
        let (s0, st) = (start as i64, step as i64);
        for (o, &i) in o.iter_mut().zip(idx) {
            *o = s0.wrapping_add(i.wrapping_mul(st));
        }
    } else {
        let mut tmp = vec![0.0f64; o.len()];
        fill_f64(kind, idx, &mut tmp);
        for (o, t) in o.iter_mut().zip(tmp) {
            *o = t as i64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_walks_row_major_with_carries() {
        let shape = [2, 3, 2];
        let strides = [100, 10, 1];
        let mut out = vec![0; 12];
        fill_index(5, &strides, &shape, 0, &mut out);
        let want: Vec<i64> = (0..12)
            .map(|f| 5 + (f / 6) * 100 + ((f / 2) % 3) * 10 + f % 2)
            .collect();
        assert_eq!(out, want);
        let mut part = vec![0; 5];
        fill_index(5, &strides, &shape, 4, &mut part);
        assert_eq!(part, want[4..9]);
    }

    #[test]
    fn uniforms_are_in_range_and_well_spread() {
        let k = key(42, 0);
        let n = 100_000;
        let mean: f64 = (0..n).map(|i| uniform01(k, i)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!((0..n).all(|i| (0.0..1.0).contains(&uniform01(k, i))));
        assert_ne!(uniform01(key(42, 0), 7), uniform01(key(42, 1), 7));
    }
}
