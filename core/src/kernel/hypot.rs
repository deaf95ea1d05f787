//! Vectorizable `hypot` (the modulus of complex numbers).
//!
//! `sqrt(x² + y²)` rounds twice; one correction step with the exact residual
//! (computed with FMA, after C. F. Borges, "An improved algorithm for
//! hypot(a, b)", 2019) makes it correctly rounded. glibc's hypot is within an
//! ulp of it (and of the exact value) but not always correctly rounded.
//! Inputs whose squares could overflow or lose bits to underflow take std's path.

/// Squares of values in this range neither overflow nor become subnormal.
pub const SAFE_HI: f64 = 1e150;
pub const SAFE_LO: f64 = 1e-150;

#[inline]
fn corrected(ax: f64, ay: f64) -> f64 {
    let (hi, lo) = if ax >= ay { (ax, ay) } else { (ay, ax) };
    let h = hi.mul_add(hi, lo * lo).sqrt();
    let h_sq = h * h;
    let x_sq = hi * hi;
    let e = (-lo).mul_add(lo, h_sq - x_sq) + h.mul_add(h, -h_sq) - hi.mul_add(hi, -x_sq);
    h - e / (2.0 * h)
}

#[inline]
fn safe(ax: f64, ay: f64) -> bool {
    let hi = ax.max(ay);
    let lo = ax.min(ay);
    (SAFE_LO..=SAFE_HI).contains(&hi) && (lo == 0.0 || lo >= SAFE_LO)
}

/// `out[i] = hypot(x[i], y[i])`.
pub fn hypot_f64(x: &[f64], y: &[f64], out: &mut [f64]) {
    debug_assert!(x.len() == out.len() && y.len() == out.len());
    let mut all_safe = true;
    for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
        let (ax, ay) = (a.abs(), b.abs());
        all_safe &= safe(ax, ay);
        *o = corrected(ax, ay);
    }
    if !all_safe {
        for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
            if !safe(a.abs(), b.abs()) {
                *o = a.hypot(b);
            }
        }
    }
}

/// Relative margin around `c²` inside which [`modulus_proxy`] computes the
/// modulus itself: far wider than the rounding of `x² + y²` (two ulps) and
/// of the modulus (one), so outside it the comparison cannot go the other way.
const MARGIN: f64 = 1.0 / (1u64 << 40) as f64;

/// Whether [`modulus_proxy`] may stand in for the modulus compared with `c`.
pub fn proxy_allowed(c: f64) -> bool {
    (1e-100..=1e100).contains(&c)
}

/// The squared moduli above (below) which [`modulus_proxy`] puts `+inf` (0):
/// `x² + y²` is compared with these (computed as `x * x + y * y`, and only
/// when below 1e200), anything else gets [`modulus_exact`].
pub fn proxy_bounds(c: f64) -> (f64, f64) {
    let c2 = c * c;
    (c2 * (1.0 + MARGIN), c2 * (1.0 - MARGIN))
}

/// The modulus of one complex number, as [`hypot_f64`] computes it; called
/// for the few points near a compared circle.
pub fn modulus_exact(a: f64, b: f64) -> f64 {
    let (ax, ay) = (a.abs(), b.abs());
    if safe(ax, ay) {
        corrected(ax, ay)
    } else {
        a.hypot(b)
    }
}

/// Values that compare with `c` (by any of `< <= > >= == !=`) exactly as
/// `hypot(x[i], y[i])` does, for `c` with [`proxy_allowed`]: the modulus of
/// points clearly outside the circle of radius `c` is replaced by `+inf`,
/// clearly inside by `0`, and computed only near the circle (and for
/// non-finite or huge parts). `abs(z) > 2` in an iteration is then a few
/// multiplications instead of a square root and a division.
pub fn modulus_proxy(x: &[f64], y: &[f64], c: f64, out: &mut [f64]) {
    debug_assert!(x.len() == out.len() && y.len() == out.len());
    let (above, below) = proxy_bounds(c);
    let mut near = false;
    for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
        let s = a * a + b * b;
        // NaN and huge parts (s not finite, or ≥ 1e200) fall to the exact path.
        let sure = s < 1e200;
        *o = if sure && s > above {
            f64::INFINITY
        } else if sure && s < below {
            0.0
        } else {
            f64::NAN
        };
        near |= o.is_nan();
    }
    if near {
        for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
            if o.is_nan() {
                *o = modulus_exact(a, b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `v = m · 2^e` with an integer mantissa.
    fn split(v: f64) -> (i128, i32) {
        let bits = v.abs().to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32;
        let frac = (bits & ((1 << 52) - 1)) as i128;
        if exp == 0 {
            (frac, -1074)
        } else {
            (frac | (1 << 52), exp - 1075)
        }
    }

    /// |x² + y² − h²| exactly for two candidates h, at one common scale; None
    /// if the terms are too far apart in scale to align in 128 bits.
    fn residuals(x: f64, y: f64, h: [f64; 2]) -> Option<[u128; 2]> {
        let sq = |v: f64| {
            let (m, e) = split(v);
            (m * m, 2 * e)
        };
        let terms = [sq(x), sq(y), sq(h[0]), sq(h[1])];
        let e0 = terms.iter().map(|t| t.1).min()?;
        let mut aligned = [0i128; 4];
        for (slot, (m, e)) in aligned.iter_mut().zip(terms) {
            let shift = u32::try_from(e - e0).ok().filter(|&sh| sh <= 18)?;
            *slot = m.checked_shl(shift)?;
        }
        let base = aligned[0].checked_add(aligned[1])?;
        Some([
            base.checked_sub(aligned[2])?.unsigned_abs(),
            base.checked_sub(aligned[3])?.unsigned_abs(),
        ])
    }

    /// Number of results that differ from std's; fails on any that is more than an
    /// ulp away, or that is farther from the exact value than std's.
    fn check(pairs: &[(f64, f64)]) -> usize {
        let x: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let y: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let mut out = vec![0.0; pairs.len()];
        hypot_f64(&x, &y, &mut out);
        let mut differ = 0;
        for (&o, &(a, b)) in out.iter().zip(pairs) {
            let std = a.hypot(b);
            if o.to_bits() == std.to_bits() || (o.is_nan() && std.is_nan()) {
                continue;
            }
            differ += 1;
            assert!(
                o.to_bits().abs_diff(std.to_bits()) <= 1,
                "hypot({a:e}, {b:e}) = {o:e}, std {std:e}"
            );
            if let Some([mine, theirs]) = residuals(a, b, [o, std]) {
                assert!(
                    mine <= theirs,
                    "hypot({a:e}, {b:e}) = {o:e} is less exact than std {std:e}"
                );
            }
        }
        differ
    }

    #[test]
    fn equals_libm_over_many_magnitudes() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut pairs = Vec::new();
        for _ in 0..400_000 {
            let m = (next() % 40) as i32 - 20;
            let a = (next() >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi(m);
            let b = (next() >> 11) as f64 / (1u64 << 53) as f64
                * 10f64.powi(m + (next() % 5) as i32 - 2);
            pairs.push((if next() & 1 == 0 { a } else { -a }, b));
        }
        // Values near the fractal's escape radius.
        for k in 0..100_000 {
            let t = k as f64 / 100_000.0 * std::f64::consts::FRAC_PI_2;
            pairs.push((2.0 * t.cos(), 2.0 * t.sin()));
        }
        // Rarely different from glibc, and then always the closer of the two.
        let differ = check(&pairs);
        assert!(
            differ < pairs.len() / 100,
            "{differ} of {} differ",
            pairs.len()
        );
    }

    #[test]
    fn special_values_follow_std() {
        let big = f64::MAX / 2.0;
        let pairs = [
            (0.0, 0.0),
            (-0.0, 3.0),
            (3.0, 4.0),
            (f64::INFINITY, f64::NAN),
            (f64::NAN, 1.0),
            (big, big),
            (1e-310, 1e-310),
            (5e-324, 0.0),
            (1e200, 1.0),
        ];
        assert_eq!(check(&pairs), 0);
    }

    /// Every comparison of the proxy with `c` agrees with the same
    /// comparison of the modulus, for points far from, near and exactly on
    /// the circle of radius `c` (a few ulps either way), special values, and
    /// radii over 200 orders of magnitude.
    #[test]
    fn modulus_proxy_compares_like_the_modulus() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let nudge = |v: f64, k: i64| f64::from_bits((v.to_bits() as i64 + k) as u64);
        let specials = [
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e300,
            1e-320,
        ];
        let ops: [fn(f64, f64) -> bool; 6] = [
            |a, b| a < b,
            |a, b| a <= b,
            |a, b| a > b,
            |a, b| a >= b,
            |a, b| a == b,
            |a, b| a != b,
        ];
        let mut near = 0;
        for c in [2.0, 1.0, 0.3, 7.5e-90, 3.1e95, 1e-100, 1e100] {
            assert!(proxy_allowed(c));
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for _ in 0..20_000 {
                let t = (next() >> 11) as f64 / (1u64 << 53) as f64 * std::f64::consts::TAU;
                let r = c * match next() % 4 {
                    0 => (next() >> 11) as f64 / (1u64 << 52) as f64,
                    _ => 1.0,
                };
                let k = (next() % 9) as i64 - 4;
                x.push(nudge(r * t.cos(), k));
                y.push(nudge(r * t.sin(), (next() % 9) as i64 - 4));
            }
            for &a in &specials {
                for &b in &specials {
                    x.push(a);
                    y.push(b);
                }
                x.push(a);
                y.push(c);
                x.push(c);
                y.push(a);
            }
            x.extend([c, 0.0, -c, nudge(c, 1), nudge(c, -1)]);
            y.extend([0.0, c, 0.0, 0.0, -0.0]);
            let mut modulus = vec![0.0; x.len()];
            let mut proxy = vec![0.0; x.len()];
            hypot_f64(&x, &y, &mut modulus);
            modulus_proxy(&x, &y, c, &mut proxy);
            for i in 0..x.len() {
                near += usize::from(proxy[i] == modulus[i]);
                for op in &ops {
                    assert_eq!(
                        op(proxy[i], c),
                        op(modulus[i], c),
                        "c = {c:e}, z = {:e} + {:e}i: modulus {:e}, proxy {:e}",
                        x[i],
                        y[i],
                        modulus[i],
                        proxy[i]
                    );
                    assert_eq!(op(c, proxy[i]), op(c, modulus[i]));
                }
            }
        }
        // Points on the circle are computed, not guessed.
        assert!(near > 7 * 10_000, "{near} computed exactly");
    }
}
