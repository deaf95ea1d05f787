//! Index arithmetic and generated values (ranges and counter-based random numbers).

use super::slot::Slot;
use super::vmath;
use crate::op::GenKind;

/// Walks the row-major positions `start..start + len` of an array of `shape`
/// (coordinates local to it) as runs along the last axis, calling
/// `f(k, i0, s, run)`: positions `k..k + run` have counters `i0 + t * s`,
/// where a counter is `base + Σ coord[d] * strides[d]`.
fn walk_runs(
    base: i64,
    strides: &[i64],
    shape: &[usize],
    start: usize,
    len: usize,
    mut f: impl FnMut(usize, i64, i64, usize),
) {
    let nd = shape.len();
    if nd == 0 || len == 0 {
        if len > 0 {
            f(0, base, 0, len);
        }
        return;
    }
    // Called per block: coordinates stay on the stack for the usual ranks.
    let mut stack = [0usize; 8];
    let mut heap = Vec::new();
    let coord: &mut [usize] = if nd <= stack.len() {
        &mut stack[..nd]
    } else {
        heap.resize(nd, 0);
        &mut heap
    };
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
    while k < len {
        let run = (shape[inner] - coord[inner]).min(len - k);
        f(k, idx, s, run);
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

/// Fills `out` with `base + Σ coord[d] * strides[d]` for the row-major positions
/// `start..start + out.len()` of an array of `shape` (coordinates local to it).
pub fn fill_index(base: i64, strides: &[i64], shape: &[usize], start: usize, out: &mut [i64]) {
    walk_runs(base, strides, shape, start, out.len(), |k, i0, s, run| {
        if s == 1 {
            for (t, o) in out[k..k + run].iter_mut().enumerate() {
                *o = i0 + t as i64;
            }
        } else {
            for (t, o) in out[k..k + run].iter_mut().enumerate() {
                *o = i0 + t as i64 * s;
            }
        }
    });
}

/// Counters up to this magnitude are exact in f64.
const EXACT: u64 = 1 << 53;

/// The counter of a linspace's exact endpoint, and that endpoint.
type Endpoint = (i64, f64);

/// An `arange` or `linspace` as `first + i * step`, and the counter that is
/// exactly `stop` instead (linspace with its endpoint); None for other kinds.
fn affine(kind: &GenKind) -> Option<(f64, f64, Option<Endpoint>)> {
    match *kind {
        GenKind::Arange { start, step } => Some((start, step, None)),
        GenKind::Linspace {
            start,
            stop,
            num,
            endpoint,
        } => {
            let (step, last) = linspace_step(start, stop, num, endpoint);
            Some((start, step, (last >= 0).then_some((last, stop))))
        }
        GenKind::Uniform { .. } | GenKind::Normal { .. } => None,
    }
}

/// Fills `out` with an `arange` or `linspace` generator's f64 values straight
/// from the index walk, with the bits `fill_index` + `generate` give: the
/// counter is computed in f64, exact while every counter is below 2^53 (then
/// `i as f64` is the same number). False, with `out` untouched, for other
/// kinds or larger counters.
pub fn fill_affine_f64(
    kind: &GenKind,
    base: i64,
    strides: &[i64],
    shape: &[usize],
    start: usize,
    out: &mut [f64],
) -> bool {
    let Some((first, step, last)) = affine(kind) else {
        return false;
    };
    let reach = strides
        .iter()
        .zip(shape)
        .map(|(s, &n)| s.unsigned_abs().saturating_mul(n.saturating_sub(1) as u64))
        .fold(base.unsigned_abs(), u64::saturating_add);
    if reach >= EXACT {
        return false;
    }
    let len = out.len();
    walk_runs(base, strides, shape, start, len, move |k, i0, s, run| {
        let (i0f, sf) = (i0 as f64, s as f64);
        let dst = &mut out[k..k + run];
        // Four counters stepped by 4.0 (exact integers) so the loop vectorizes.
        let mut lanes = [0.0, 1.0, 2.0, 3.0];
        let mut quads = dst.chunks_exact_mut(4);
        for q in &mut quads {
            for (o, t) in q.iter_mut().zip(&mut lanes) {
                *o = first + (i0f + *t * sf) * step;
                *t += 4.0;
            }
        }
        for (o, t) in quads.into_remainder().iter_mut().zip(lanes) {
            *o = first + (i0f + t * sf) * step;
        }
        if let Some((last, stop)) = last {
            if s == 0 {
                if i0 == last {
                    dst.fill(stop);
                }
            } else if (last - i0) % s == 0
                && let Ok(t) = usize::try_from((last - i0) / s)
                && let Some(o) = dst.get_mut(t)
            {
                *o = stop;
            }
        }
    });
    true
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
    if let Some((first, step, last)) = affine(kind) {
        for (o, &i) in out.iter_mut().zip(idx) {
            *o = first + i as f64 * step;
        }
        if let Some((last, stop)) = last {
            for (o, _) in out.iter_mut().zip(idx).filter(|(_, i)| **i == last) {
                *o = stop;
            }
        }
        return;
    }
    match *kind {
        GenKind::Arange { .. } | GenKind::Linspace { .. } => {}
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
            // Box–Muller on counters 2i and 2i+1. The logarithm and cosine
            // are the vector kernels the GPU writes out operation by
            // operation, so a GPU generates the same bits.
            const BLOCK: usize = 64;
            let k = key(seed, stream);
            let (mut u1, mut angle) = ([0.0; BLOCK], [0.0; BLOCK]);
            let (mut ln, mut cos) = ([0.0; BLOCK], [0.0; BLOCK]);
            for (out, idx) in out.chunks_mut(BLOCK).zip(idx.chunks(BLOCK)) {
                let n = out.len().min(idx.len());
                for (j, &i) in idx[..n].iter().enumerate() {
                    let c = (i as u64).wrapping_mul(2);
                    u1[j] = 1.0 - uniform01(k, c);
                    angle[j] = std::f64::consts::TAU * uniform01(k, c.wrapping_add(1));
                }
                vmath::ln_dd_f64(&u1[..n], &mut ln[..n]);
                vmath::cos_f64(&angle[..n], &mut cos[..n]);
                for (j, o) in out[..n].iter_mut().enumerate() {
                    *o = mean + std * (-2.0 * ln[j]).sqrt() * cos[j];
                }
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

    /// The reference: counters first, then values from them.
    fn by_index(
        kind: &GenKind,
        base: i64,
        strides: &[i64],
        shape: &[usize],
        start: usize,
        n: usize,
    ) -> Vec<f64> {
        let mut idx = vec![0; n];
        fill_index(base, strides, shape, start, &mut idx);
        let mut out = vec![0.0; n];
        fill_f64(kind, &idx, &mut out);
        out
    }

    #[test]
    fn ranges_filled_from_the_walk_have_the_bits_of_the_counters() {
        let kinds = [
            GenKind::Arange {
                start: -3.25,
                step: 0.1,
            },
            GenKind::Arange {
                start: 0.0,
                step: 1.0,
            },
            GenKind::Linspace {
                start: -1.5,
                stop: 0.0,
                num: 2400,
                endpoint: true,
            },
            GenKind::Linspace {
                start: 2.0,
                stop: 7.0,
                num: 11,
                endpoint: false,
            },
        ];
        let layouts: [(i64, &[i64], &[usize]); 5] = [
            (0, &[7, 1], &[5, 7]),
            (2399, &[0, -1], &[3, 2400]),
            (11, &[4001, 0, 3], &[4, 2, 9]),
            (5, &[], &[]),
            (10, &[1], &[2401]),
        ];
        for kind in &kinds {
            for (base, strides, shape) in layouts {
                let size: usize = shape.iter().product();
                for (start, n) in [
                    (0, size),
                    (1, size.saturating_sub(3)),
                    (size / 2, size - size / 2),
                ] {
                    let want = by_index(kind, base, strides, shape, start, n);
                    let mut got = vec![f64::NAN; n];
                    assert!(fill_affine_f64(kind, base, strides, shape, start, &mut got));
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{kind:?} base {base} strides {strides:?} from {start}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn counters_past_two_to_the_53_and_random_kinds_are_left_to_the_index_path() {
        let arange = GenKind::Arange {
            start: 0.0,
            step: 1.0,
        };
        let mut out = vec![0.0; 4];
        assert!(!fill_affine_f64(&arange, 1 << 53, &[1], &[4], 0, &mut out));
        assert!(!fill_affine_f64(&arange, 0, &[1 << 52], &[4], 0, &mut out));
        let uniform = GenKind::Uniform {
            seed: 1,
            stream: 0,
            low: 0.0,
            high: 1.0,
        };
        assert!(!fill_affine_f64(&uniform, 0, &[1], &[4], 0, &mut out));
        assert_eq!(out, [0.0; 4]);
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

    /// Normals from the vector logarithm and cosine: within rounding of
    /// Box–Muller written with `std`, a standard normal's moments, and the
    /// same value for a counter whatever block or order it is filled in.
    #[test]
    fn normals_follow_box_muller_whatever_the_blocks() {
        let kind = GenKind::Normal {
            seed: 3,
            stream: 1,
            mean: 0.0,
            std: 1.0,
        };
        let n = 100_000usize;
        let idx: Vec<i64> = (0..n as i64).collect();
        let mut z = vec![0.0; n];
        fill_f64(&kind, &idx, &mut z);
        let k = key(3, 1);
        for (i, &v) in z.iter().enumerate() {
            let u1 = 1.0 - uniform01(k, 2 * i as u64);
            let u2 = uniform01(k, 2 * i as u64 + 1);
            let want = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            assert!(
                (v - want).abs() <= 1e-14 * want.abs().max(1.0),
                "{i}: {v} against {want}"
            );
        }
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "mean {mean} var {var}"
        );
        // Odd offsets and lengths, backwards: the same bits per counter.
        let picked: Vec<i64> = (0..1000)
            .map(|j| (n as i64 - 1) - 97 * j % n as i64)
            .collect();
        let mut again = vec![0.0; picked.len()];
        fill_f64(&kind, &picked, &mut again);
        for (&i, v) in picked.iter().zip(&again) {
            assert_eq!(v.to_bits(), z[i as usize].to_bits(), "counter {i}");
        }
    }
}
