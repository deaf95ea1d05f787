//! Vectorized transcendental functions over slices.
//!
//! Every function processes its input in SIMD blocks (`f64x4` / `f32x8` from
//! the `wide` crate) and falls back to the scalar `std` routine for a whole
//! block as soon as one lane is outside the range where the vector kernel is
//! known to be accurate (non-finite values, huge trig arguments, results that
//! would overflow or become subnormal, zero or negative bases of `powf`, ...).
//! That check is one compare + movemask per block, so the fast path has no
//! per-element branches and the slow path keeps `std` semantics exactly.
//!
//! `wide`'s own routines are used where they are accurate over the whole fast
//! range (`ln` for both widths). The other kernels are written here because
//! the `wide` versions lose accuracy or speed:
//! * `sin`/`cos`/`tan`: `wide` reduces the argument with a Cody-Waite split
//!   meant for machines without FMA, which degrades for |x| >~ 1e12 (f64) and
//!   already from |x| >~ 1e3 in f32 (thousands of ulp at 1e5). The kernels
//!   below use FMA reductions that stay accurate up to their fast-path limits.
//! * `tanh`: `wide` returns `x` below 5e-8 (up to ~7 ulp there).
//! * `powf`: `wide` computes the logarithm to only ~53 bits, so the error grows
//!   with |y ln x| (~75 ulp for results near 1e140). The f64 kernel below
//!   carries `ln x` as a double-double.
//! * `exp` (f32): `wide`'s handles every special case inside the kernel, which
//!   makes it about twice as slow as the plain kernel behind a range check.
//!
//! The f64 kernels' constants are public: the GPU backends generate the same
//! kernels from them (same operations in the same order, so the same bits).
//!
//! Accuracy is quoted in ulp against Rust `std` (i.e. the platform libm), see
//! [`ULP_BOUND_F64`] and [`ULP_BOUND_F32`]. The error-free transformations
//! used here need a fused multiply-add; when the crate is built without the
//! `fma` target feature the affected functions use the scalar path instead.

use wide::bytemuck::cast;
use wide::{f32x8, f64x4, u32x8, u64x4};

/// Worst-case error of the `*_f64` functions against `std`, in ulp.
///
/// Maxima measured over random sweeps of every magnitude range (4e6 values
/// per function), the doubles nearest to k*pi/2 for k < 2^22 and ~3e6 pow
/// cases: sin, cos, exp, ln, powf 1 ulp; tan 2 ulp (a quotient of two
/// ~0.6 ulp values); tanh 2 ulp, although the kernel itself is within
/// ~0.6 ulp of the true value: glibc's tanh is up to ~1.9 ulp off. The bound
/// leaves one ulp of headroom for tan/tanh inputs the sweeps did not hit.
pub const ULP_BOUND_F64: f64 = 3.0;

/// Worst-case error of the `*_f32` functions against `std`, in ulp.
///
/// Checked exhaustively over all 2^32 inputs for the one-argument functions:
/// sin, cos, tan, exp, ln 1 ulp; tanh 2 ulp, where the result is within
/// ~0.5 ulp of the true value but glibc's tanhf is up to ~1.5 ulp off. powf:
/// 1 ulp over ~5e6 random cases. sin/cos use a native f32 kernel for
/// |x| < 2^21 and the f64 kernel up to 2^30; tan, tanh and powf are evaluated
/// in f64 and rounded once.
pub const ULP_BOUND_F32: f64 = 2.0;

/// The reductions below are only exact with a fused multiply-add.
const HAS_FMA: bool = cfg!(target_feature = "fma");

// ---------------------------------------------------------------------------
// Slice drivers
// ---------------------------------------------------------------------------

/// Applies `vf` to `N`-element blocks of `x`, writing `out`. `vf` returns
/// `None` when a block needs the scalar path `sf`. The tail is padded with its
/// own first element (so it is valid whenever the tail itself is) and run
/// through `vf` as well, which keeps short slices on the fast path too.
#[inline(always)]
fn map1<T: Copy, const N: usize>(
    x: &[T],
    out: &mut [T],
    vf: impl Fn([T; N]) -> Option<[T; N]>,
    sf: impl Fn(T) -> T,
) {
    debug_assert_eq!(x.len(), out.len());
    let n = x.len().min(out.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    let (xc, xt) = x.as_chunks::<N>();
    let (oc, ot) = out.as_chunks_mut::<N>();
    for (xa, oa) in xc.iter().zip(oc.iter_mut()) {
        match vf(*xa) {
            Some(r) => *oa = r,
            None => {
                for (o, &v) in oa.iter_mut().zip(xa) {
                    *o = sf(v);
                }
            }
        }
    }
    if let Some(&first) = xt.first() {
        let mut buf = [first; N];
        buf[..xt.len()].copy_from_slice(xt);
        match vf(buf) {
            Some(r) => ot.copy_from_slice(&r[..ot.len()]),
            None => {
                for (o, &v) in ot.iter_mut().zip(xt) {
                    *o = sf(v);
                }
            }
        }
    }
}

/// Two-input version of [`map1`].
#[inline(always)]
fn map2<T: Copy, const N: usize>(
    x: &[T],
    y: &[T],
    out: &mut [T],
    vf: impl Fn([T; N], [T; N]) -> Option<[T; N]>,
    sf: impl Fn(T, T) -> T,
) {
    debug_assert_eq!(x.len(), out.len());
    debug_assert_eq!(y.len(), out.len());
    let n = x.len().min(y.len()).min(out.len());
    let (x, y, out) = (&x[..n], &y[..n], &mut out[..n]);
    let (xc, xt) = x.as_chunks::<N>();
    let (yc, yt) = y.as_chunks::<N>();
    let (oc, ot) = out.as_chunks_mut::<N>();
    for ((xa, ya), oa) in xc.iter().zip(yc).zip(oc.iter_mut()) {
        match vf(*xa, *ya) {
            Some(r) => *oa = r,
            None => {
                for ((o, &a), &b) in oa.iter_mut().zip(xa).zip(ya) {
                    *o = sf(a, b);
                }
            }
        }
    }
    if let (Some(&fx), Some(&fy)) = (xt.first(), yt.first()) {
        let mut bx = [fx; N];
        let mut by = [fy; N];
        bx[..xt.len()].copy_from_slice(xt);
        by[..yt.len()].copy_from_slice(yt);
        match vf(bx, by) {
            Some(r) => ot.copy_from_slice(&r[..ot.len()]),
            None => {
                for ((o, &a), &b) in ot.iter_mut().zip(xt).zip(yt) {
                    *o = sf(a, b);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Small SIMD helpers
// ---------------------------------------------------------------------------

#[inline(always)]
fn splat(v: f64) -> f64x4 {
    f64x4::splat(v)
}

#[inline(always)]
fn splat32(v: f32) -> f32x8 {
    f32x8::splat(v)
}

#[inline(always)]
fn bits(v: f64x4) -> u64x4 {
    cast(v)
}

#[inline(always)]
fn from_bits(v: u64x4) -> f64x4 {
    cast(v)
}

#[inline(always)]
fn bits32(v: f32x8) -> u32x8 {
    cast(v)
}

#[inline(always)]
fn from_bits32(v: u32x8) -> f32x8 {
    cast(v)
}

pub const TWO_52: f64 = 4_503_599_627_370_496.0;
const TWO_23: f32 = 8_388_608.0;
pub const SIGN64: u64 = 0x8000_0000_0000_0000;
const SIGN32: u32 = 0x8000_0000;

/// Bits of `v + 2^52` for integral 0 <= v < 2^51: the low bits are `v`.
#[inline(always)]
fn int_bits(v: f64x4) -> u64x4 {
    bits(v + splat(TWO_52))
}

/// Bits of `v + 2^23` for integral 0 <= v < 2^22: the low bits are `v`.
#[inline(always)]
fn int_bits32(v: f32x8) -> u32x8 {
    bits32(v + splat32(TWO_23))
}

/// Converts an 8-lane f32 block into two f64x4 halves.
#[inline(always)]
fn widen8(a: [f32; 8]) -> (f64x4, f64x4) {
    let w = |i: usize| f64::from(a[i]);
    (
        f64x4::new([w(0), w(1), w(2), w(3)]),
        f64x4::new([w(4), w(5), w(6), w(7)]),
    )
}

/// Rounds two f64x4 halves back into one 8-lane f32 block.
#[inline(always)]
fn narrow8(lo: f64x4, hi: f64x4) -> [f32; 8] {
    let (l, h) = (lo.to_array(), hi.to_array());
    [
        l[0] as f32,
        l[1] as f32,
        l[2] as f32,
        l[3] as f32,
        h[0] as f32,
        h[1] as f32,
        h[2] as f32,
        h[3] as f32,
    ]
}

/// Evaluates `c[0] + z*c[1] + z^2*c[2] + ...` in Estrin form (pairs, then
/// pairs of pairs with z^2, z^4, ...), which shortens the dependency chain
/// compared to Horner; `K` is a constant, so the loops unroll completely.
#[inline(always)]
fn poly<const K: usize>(z: f64x4, c: &[f64; K]) -> f64x4 {
    // (No `array::map` here: it is not always inlined, and an out-of-line
    // call per block costs more than the whole polynomial.)
    let mut t = [f64x4::ZERO; K];
    for (ti, &ci) in t.iter_mut().zip(c) {
        *ti = splat(ci);
    }
    let mut n = K;
    let mut p = z;
    while n > 1 {
        let m = n.div_ceil(2);
        for i in 0..m {
            t[i] = if 2 * i + 1 < n {
                t[2 * i + 1].mul_add(p, t[2 * i])
            } else {
                t[2 * i]
            };
        }
        n = m;
        p = p * p;
    }
    t[0]
}

/// f32 version of [`poly`].
#[inline(always)]
fn poly32<const K: usize>(z: f32x8, c: &[f32; K]) -> f32x8 {
    let mut t = [f32x8::ZERO; K];
    for (ti, &ci) in t.iter_mut().zip(c) {
        *ti = splat32(ci);
    }
    let mut n = K;
    let mut p = z;
    while n > 1 {
        let m = n.div_ceil(2);
        for i in 0..m {
            t[i] = if 2 * i + 1 < n {
                t[2 * i + 1].mul_add(p, t[2 * i])
            } else {
                t[2 * i]
            };
        }
        n = m;
        p = p * p;
    }
    t[0]
}

/// Error-free sum, valid when |a| >= |b| (or a == 0).
#[inline(always)]
fn fast_two_sum(a: f64x4, b: f64x4) -> (f64x4, f64x4) {
    let s = a + b;
    (s, b - (s - a))
}

// ---------------------------------------------------------------------------
// sin / cos / tan (f64 kernels, also used for large f32 arguments)
// ---------------------------------------------------------------------------

/// Largest |x| handled by the vector trig kernels (2^30).
///
/// With FMA, `x - j*PIO2_1` is exact (both terms are multiples of 2^-52 for
/// x >= 1 and the difference is below 2), and the two further FMA steps leave
/// a relative error of ~2^-52 in the reduced argument as long as
/// `j * PIO2_3`-sized terms (2^(log2 j - 109)) stay far below the smallest
/// reduced argument any double can have (~2^-61). At 2^30 they are ~2^-80,
/// a margin of ~2^18 (the tests sweep the doubles nearest to k*pi/2);
/// beyond it libm's Payne-Hanek reduction is used via the scalar path.
pub const TRIG_MAX: f64 = 1_073_741_824.0;
pub const FRAC_1_PI: f64 = core::f64::consts::FRAC_1_PI;
pub const FRAC_2_PI: f64 = core::f64::consts::FRAC_2_PI;
/// pi/2 split into three doubles: PIO2_1 = round(pi/2), PIO2_2 =
/// round(pi/2 - PIO2_1), PIO2_3 = round(pi/2 - PIO2_1 - PIO2_2); the
/// remainder is ~5.6e-50.
pub const PIO2_1: f64 = core::f64::consts::FRAC_PI_2;
pub const PIO2_2: f64 = 6.123_233_995_736_766e-17;
pub const PIO2_3: f64 = -1.497_384_904_859_169_8e-33;

/// sin(r) = r + r^3 S(r^2) on |r| <= pi/2 (own Remez fit for relative error,
/// coefficients rounded one at a time and the rest refitted; 2^-61.5).
pub const SIN_HALF_C0: f64 = -0.166_666_666_666_666_66;
pub const SIN_HALF_Q: [f64; 7] = [
    0.008_333_333_333_333_207,
    -0.000_198_412_698_412_124_8,
    2.755_731_921_156_948_2e-6,
    -2.505_210_690_442_293_2e-8,
    1.605_894_100_232_718e-10,
    -7.643_019_374_446_289e-13,
    2.721_419_641_450_142e-15,
];

/// sin(r) = r + r^3 S(r^2) on |r| <= pi/4 (own Remez fit, 2^-56.8), for tan.
pub const SIN_C: [f64; 6] = [
    -0.166_666_666_666_666_3,
    0.008_333_333_333_322_005,
    -0.000_198_412_698_294_954_84,
    2.755_731_358_761_674_7e-6,
    -2.505_074_230_762_202_2e-8,
    1.589_590_472_930_634e-10,
];
/// cos(r) = 1 - r^2/2 + r^4 C(r^2) on |r| <= pi/4 (2^-59), for tan.
pub const COS_C: [f64; 6] = [
    0.041_666_666_666_666_595,
    -0.001_388_888_888_887_289_5,
    2.480_158_728_874_817e-5,
    -2.755_731_414_861_859e-7,
    2.087_569_657_194_853_3e-9,
    -1.135_831_045_867_452_2e-11,
];

/// r = xa - j*pi/2 for integral j >= 0, see [`TRIG_MAX`].
#[inline(always)]
fn reduce_pio2(xa: f64x4, j: f64x4) -> f64x4 {
    let r = j.mul_neg_add(splat(PIO2_1), xa);
    let r = j.mul_neg_add(splat(PIO2_2), r);
    j.mul_neg_add(splat(PIO2_3), r)
}

/// sin(r) for |r| <= pi/2 (+ rounding slack) as r + r^3 C0 + r^5 Q(r^2).
///
/// r^3 and r^3 C0 carry their rounding errors and `r + r^3 C0` is summed
/// error-free, so only terms ~8x smaller than the result are rounded before
/// the final addition. This keeps the error near 0.5 ulp even where r^3 C0 is
/// a third of r (|r| ~ pi/2), and makes e.g. cos(0) and sin(pi/2) exactly 1.
#[inline(always)]
fn sin_half(r: f64x4) -> f64x4 {
    let c0 = splat(SIN_HALF_C0);
    let z = r * r;
    let r3 = r * z;
    let r3_lo = r.mul_add(r.mul_sub(r, z), r.mul_sub(z, r3));
    let t_hi = r3 * c0;
    let t_rest = (r3 * z).mul_add(
        poly(z, &SIN_HALF_Q),
        r3_lo.mul_add(c0, r3.mul_sub(c0, t_hi)),
    );
    let (s, e) = fast_two_sum(r, t_hi);
    s + (e + t_rest)
}

/// sin x = (-1)^k sin(|x| - k pi) * sign(x), k = round(|x|/pi): one
/// polynomial on [-pi/2, pi/2] instead of evaluating both sin and cos on a
/// quarter period and selecting, which is ~30% fewer operations.
#[inline(always)]
fn sin_kernel(x: f64x4) -> f64x4 {
    let xa = x.abs();
    let k = (xa * splat(FRAC_1_PI)).round_ties_even();
    let s = sin_half(reduce_pio2(xa, k + k));
    let sign = (int_bits(k) << 63) ^ (bits(x) & u64x4::splat(SIGN64));
    s ^ from_bits(sign)
}

/// cos x = (-1)^(k+1) sin(|x| - (2k+1) pi/2), k = round(|x|/pi - 1/2) >= 0.
#[inline(always)]
fn cos_kernel(x: f64x4) -> f64x4 {
    let xa = x.abs();
    let k = xa
        .mul_sub(splat(FRAC_1_PI), splat(0.5))
        .round_ties_even()
        .abs();
    let s = sin_half(reduce_pio2(xa, k.mul_add(splat(2.0), splat(1.0))));
    let sign = (int_bits(k) + u64x4::splat(1)) << 63;
    s ^ from_bits(sign)
}

/// tan x = tan r (j even) or -1/tan r (j odd), |x| = j pi/2 + r, |r| <= pi/4.
/// The reduced argument is kept as a double-double so that sin r and cos r
/// are each within ~0.6 ulp before the division.
#[inline(always)]
fn tan_kernel(x: f64x4) -> f64x4 {
    let xa = x.abs();
    let j = (xa * splat(FRAC_2_PI)).round_ties_even();
    let r1 = j.mul_neg_add(splat(PIO2_1), xa); // exact
    let p = j * splat(PIO2_2);
    let p_err = j.mul_sub(splat(PIO2_2), p);
    // Full two-sum: near multiples of pi/2, |r1| can be below |p|.
    let r = r1 - p;
    let rb = r - r1;
    let e = (r1 - (r - rb)) - (p + rb);
    let r_lo = j.mul_neg_add(splat(PIO2_3), e - p_err);
    let (r, r_lo) = fast_two_sum(r, r_lo);

    let z = r * r;
    let s = (r * z).mul_add(poly(z, &SIN_C), r_lo) + r;
    // 1 - z/2 with its rounding error recovered (1 - w and the FMA residual
    // of r*r are exact), minus the first-order effect of r_lo.
    let hz = splat(0.5) * z;
    let w = splat(1.0) - hz;
    let z_err = r.mul_sub(r, z);
    let tail = ((splat(1.0) - w) - hz) - splat(0.5).mul_add(z_err, r * r_lo);
    let c = w + (z * z).mul_add(poly(z, &COS_C), tail);

    let q = int_bits(j);
    let odd: f64x4 = from_bits((q & u64x4::splat(1)).simd_eq(u64x4::splat(1)));
    // sin r is never 0 for odd j (pi/2 is irrational), so this cannot divide
    // by zero.
    let t = odd.select(c, s) / odd.select(s, c);
    let sign = (q << 63) ^ (bits(x) & u64x4::splat(SIGN64));
    t ^ from_bits(sign)
}

#[inline(always)]
fn trig_ok(x: f64x4) -> bool {
    HAS_FMA && x.abs().simd_le(splat(TRIG_MAX)).all()
}

// ---------------------------------------------------------------------------
// sin / cos (native f32 kernels for moderate arguments)
// ---------------------------------------------------------------------------

/// The native f32 sin/cos kernel is used for |x| < 2^21.
///
/// Same FMA reduction as the f64 kernel with pi/2 split into three floats and
/// the reduced argument carried as a float-float. What limits it is the
/// quadrant: `j = round(x * 2/pi)` is computed in f32, so for |x| >= 2^21 it
/// can be off by one and the reduced argument leaves the range the
/// polynomials were fitted on. Exhaustive testing over every float below 2^21
/// shows 1 ulp; larger arguments use the f64 kernel.
const TRIG_LIMIT_F32: f32 = 2_097_152.0;
const P1_F32: f32 = core::f32::consts::FRAC_PI_2;
const P2_F32: f32 = -4.371_139e-8;
const P3_F32: f32 = -1.715_124_5e-15;

/// sin(r) = r + r^3 S(r^2) on |r| <= pi/4 for f32 (own Remez fit with
/// f32-rounded coefficients, 2^-32.5).
const SIN_F32_C: [f32; 4] = [-0.166_666_67, 0.008_333_379, -0.000_198_530_64, 2.832_51e-6];
/// cos(r) = 1 - r^2/2 + r^4 C(r^2) on |r| <= pi/4 for f32 (2^-33).
const COS_F32_C: [f32; 3] = [0.041_666_646, -0.001_388_731, 2.443_232_7e-5];

/// Returns (sin r, cos r, bits of j) with |x| = j pi/2 + r, |r| <= pi/4.
/// Quarter periods keep the polynomial corrections small relative to the
/// result (on a half period the f32 rounding of r^3 S alone costs ~0.9 ulp).
#[inline(always)]
fn sincos_f32(x: f32x8) -> (f32x8, f32x8, u32x8) {
    let xa = x.abs();
    let j = (xa * splat32(core::f32::consts::FRAC_2_PI)).round_ties_even();
    // r + r_lo = xa - j (P1 + P2 + P3): the first step is exact, the product
    // j*P2 and the subtraction are split error-free, P3 only feeds r_lo.
    let r1 = j.mul_neg_add(splat32(P1_F32), xa);
    let p = j * splat32(P2_F32);
    let p_err = j.mul_sub(splat32(P2_F32), p);
    let r = r1 - p;
    let rb = r - r1;
    let r_err = (r1 - (r - rb)) - (p + rb);
    let r_lo = j.mul_neg_add(splat32(P3_F32), r_err - p_err);
    let z = r * r;
    let s = (r * z).mul_add(poly32(z, &SIN_F32_C), r_lo) + r;
    let hz = splat32(0.5) * z;
    let w = splat32(1.0) - hz;
    let tail = ((splat32(1.0) - w) - hz) - splat32(0.5).mul_add(r.mul_sub(r, z), r * r_lo);
    let c = w + (z * z).mul_add(poly32(z, &COS_F32_C), tail);
    (s, c, int_bits32(j))
}

#[inline(always)]
fn odd_mask32(q: u32x8) -> f32x8 {
    from_bits32((q & u32x8::splat(1)).simd_eq(u32x8::splat(1)))
}

#[inline(always)]
fn sin_kernel_f32(x: f32x8) -> f32x8 {
    let (s, c, q) = sincos_f32(x);
    let v = odd_mask32(q).select(c, s);
    let sign = ((q & u32x8::splat(2)) << 30) ^ (bits32(x) & u32x8::splat(SIGN32));
    v ^ from_bits32(sign)
}

#[inline(always)]
fn cos_kernel_f32(x: f32x8) -> f32x8 {
    let (s, c, q) = sincos_f32(x);
    let v = odd_mask32(q).select(s, c);
    let sign = ((q + u32x8::splat(1)) & u32x8::splat(2)) << 30;
    v ^ from_bits32(sign)
}

/// Three tiers for f32 sin/cos: native f32 kernel, f64 kernel, scalar.
#[inline(always)]
fn trig_f32(
    a: [f32; 8],
    native: impl Fn(f32x8) -> f32x8,
    wide64: impl Fn(f64x4) -> f64x4,
) -> Option<[f32; 8]> {
    if !HAS_FMA {
        return None;
    }
    let v = f32x8::new(a);
    if v.abs().simd_lt(splat32(TRIG_LIMIT_F32)).all() {
        return Some(native(v).to_array());
    }
    let (lo, hi) = widen8(a);
    (trig_ok(lo) && trig_ok(hi)).then(|| narrow8(wide64(lo), wide64(hi)))
}

// ---------------------------------------------------------------------------
// exp / tanh (f64)
// ---------------------------------------------------------------------------

pub const LOG2_E: f64 = core::f64::consts::LOG2_E;
/// ln 2 with 42 significant bits, so `j * LN2_HI` is exact for |j| < 2^11.
pub const LN2_HI: f64 = 0.693_147_180_559_890_3;
/// ln 2 - LN2_HI (the remaining error is ~2e-31).
pub const LN2_LO: f64 = 5.497_923_018_708_371e-14;

/// e^f - 1 - f = f^2 E(f) on |f| <= ln2/2 (own Remez fit for the relative
/// error of e^f with sequentially rounded coefficients, 2^-58).
pub const EXP_C: [f64; 11] = [
    0.5,
    0.166_666_666_666_666_88,
    0.041_666_666_666_666_824,
    0.008_333_333_333_313_89,
    0.001_388_888_888_877_717_3,
    0.000_198_412_699_033_559_58,
    2.480_158_756_830_53e-5,
    2.755_722_878_830_219_7e-6,
    2.755_703_807_167_431e-7,
    2.511_371_229_227_957_8e-8,
    2.100_068_955_664_690_7e-9,
];

/// Splits x = j ln2 + f + f_lo with |f| <= ~ln2/2, |f_lo| <~ 2^-54 |f| and j
/// integral. Valid for |x| < 1400.
#[inline(always)]
fn exp_reduce(x: f64x4) -> (f64x4, f64x4, f64x4) {
    let j = (x * splat(LOG2_E)).round_ties_even();
    let f_hi = j.mul_neg_add(splat(LN2_HI), x); // exact
    let f = j.mul_neg_add(splat(LN2_LO), f_hi);
    let f_lo = j.mul_neg_add(splat(LN2_LO), f_hi - f);
    (f, f_lo, j)
}

/// e^(f + f_lo) - 1 for |f| <= ~ln2/2 and tiny f_lo.
#[inline(always)]
fn expm1_reduced(f: f64x4, f_lo: f64x4) -> f64x4 {
    let p = (f * f).mul_add(poly(f, &EXP_C), f);
    p + f_lo.mul_add(p, f_lo)
}

/// 2^j for integral j in [-1022, 1023], built directly in the exponent field.
#[inline(always)]
fn pow2i(j: f64x4) -> f64x4 {
    // j + 2^52 + 1023 holds j + 1023 in its low mantissa bits.
    from_bits(bits(j + splat(TWO_52 + 1023.0)) << 52)
}

/// Fast-path range of exp: results stay normal and finite and the scale 2^j
/// stays in [2^-1021, 2^1023] (exp(-708) ~ 3.3e-308 > f64::MIN_POSITIVE,
/// exp(709) ~ 8.2e307). Outside it libm handles overflow and gradual
/// underflow.
pub const EXP_LO: f64 = -708.0;
pub const EXP_HI: f64 = 709.0;

#[inline(always)]
fn exp_kernel(x: f64x4) -> f64x4 {
    let (f, f_lo, j) = exp_reduce(x);
    (expm1_reduced(f, f_lo) + splat(1.0)) * pow2i(j)
}

/// |x| above which tanh(x) rounds to +-1 in f64 (e^-2x < 2^-55).
pub const TANH_SAT: f64 = 19.1;

/// tanh|x| = t / (t + 2) with t = expm1(2|x|) = 2^j (p + (1 - 2^-j)),
/// p = e^f - 1. That form has no cancellation for j >= 1 and is exactly p for
/// j = 0, so small arguments keep full relative accuracy down to subnormals.
/// p, t and t + 2 are carried as double-doubles and the quotient is
/// corrected with its FMA residual, which keeps the result within ~0.6 ulp of
/// the true value (the plain formula is ~2.3 ulp off around |x| ~ 0.2).
#[inline(always)]
fn tanh_kernel(x: f64x4) -> f64x4 {
    let a = x.abs();
    let sat = a.simd_gt(splat(TANH_SAT));
    let xx = (a + a).fast_min(splat(2.0 * TANH_SAT + 2.0));
    let (f, f_lo, j) = exp_reduce(xx);
    // p = e^f - 1 = f + f^2 E(f) as p_hi + p_lo: for j = 1 the sum below
    // cancels by up to ~1.3x, so p's own rounding has to be kept out.
    let (p_hi, p_lo) = fast_two_sum(f, (f * f) * poly(f, &EXP_C));
    let p_lo = p_lo + f_lo.mul_add(p_hi, f_lo);
    // 1 - 2^-j is exact and either 0 or >= 1/2 > |p|.
    let (u, u_err) = fast_two_sum(splat(1.0) - pow2i(-j), p_hi);
    let scale = pow2i(j);
    let (th, tl) = (u * scale, (u_err + p_lo) * scale);
    let two = splat(2.0);
    let (d, d_err) = fast_two_sum(th.fast_max(two), th.fast_min(two));
    let d_lo = d_err + tl;
    let inv = splat(1.0) / d;
    let q = th * inv;
    let res = q.mul_neg_add(d, th) + q.mul_neg_add(d_lo, tl);
    let th = res.mul_add(inv, q);
    sat.select(splat(1.0), th).copysign(x)
}

// ---------------------------------------------------------------------------
// pow (f64): double-double log, then exp of a double-double
// ---------------------------------------------------------------------------

/// Bits of sqrt(1/2): mantissas are normalised into [sqrt(1/2), sqrt(2)).
pub const SQRT_HALF_BITS: u64 = 0x3FE6_A09E_667F_3BCD;
/// 2/3 as a double-double.
pub const TWO_THIRDS_HI: f64 = 0.666_666_666_666_666_6;
pub const TWO_THIRDS_LO: f64 = 3.700_743_415_417_188e-17;
/// Taylor coefficients 2/(2k+1), k = 2..=12, of (2 atanh(s) - 2s - 2s^3/3)/s^5
/// in z = s^2. With |s| <= 0.1716 the first omitted term is ~2^-71 relative.
pub const LOG_C: [f64; 11] = [
    2.0 / 5.0,
    2.0 / 7.0,
    2.0 / 9.0,
    2.0 / 11.0,
    2.0 / 13.0,
    2.0 / 15.0,
    2.0 / 17.0,
    2.0 / 19.0,
    2.0 / 21.0,
    2.0 / 23.0,
    2.0 / 25.0,
];

/// Splits positive normal x into (e, m) with x = 2^e m, m in [sqrt(1/2),
/// sqrt(2)). The 2^62 offset keeps the subtraction non-negative so a logical
/// shift extracts e + 1024.
#[inline(always)]
fn split_exponent(x: f64x4) -> (f64x4, f64x4) {
    let ix = bits(x);
    let tmp = ix - u64x4::splat(SQRT_HALF_BITS) + u64x4::splat(1 << 62);
    let eb = tmp >> 52;
    let m = from_bits(ix - (eb << 52) + u64x4::splat(1024 << 52));
    let e = from_bits(eb | u64x4::splat(0x4330_0000_0000_0000)) - splat(TWO_52 + 1024.0);
    (e, m)
}

/// ln(x) as hi + lo with ~2^-66 relative error, for positive normal finite x.
#[inline(always)]
fn ln_dd(x: f64x4) -> (f64x4, f64x4) {
    let (e, m) = split_exponent(x);
    // s = (m - 1) / (m + 1) as a double-double; m - 1 is exact (Sterbenz),
    // m + 1 is split exactly because m < 2.
    let num = m - splat(1.0);
    let (dh, dl) = fast_two_sum(splat(1.0), m);
    // One division: sh may be an ulp off, the exact FMA residual fixes that.
    let inv = splat(1.0) / dh;
    let sh = num * inv;
    let rem = sh.mul_neg_add(dh, num);
    let rem = sh.mul_neg_add(dl, rem);
    let sl = rem * inv;

    // ln m = 2s + (2/3) s^3 + s^5 R(s^2); the first two terms double-double.
    let z = sh * sh;
    let zl = sh.mul_sub(sh, z) + splat(2.0) * sh * sl;
    let s3h = z * sh;
    let s3l = z.mul_sub(sh, s3h) + zl.mul_add(sh, z * sl);
    let t3h = s3h * splat(TWO_THIRDS_HI);
    let t3l = s3h.mul_sub(splat(TWO_THIRDS_HI), t3h)
        + s3h.mul_add(splat(TWO_THIRDS_LO), s3l * splat(TWO_THIRDS_HI));
    let tail = (s3h * z) * poly(z, &LOG_C);

    // e ln2 + 2s + (2/3)s^3 + tail; magnitudes decrease left to right.
    let (h, l1) = fast_two_sum(e * splat(LN2_HI), sh + sh);
    let (h, l2) = fast_two_sum(h, t3h);
    let lo = (l1 + l2) + ((sl + sl) + t3l + tail + e * splat(LN2_LO));
    fast_two_sum(h, lo)
}

/// x^y for x positive normal finite, y finite and y ln x within the exp fast
/// range; returns `None` for blocks with any other lane.
#[inline(always)]
fn pow_kernel(x: f64x4, y: f64x4) -> Option<f64x4> {
    let inputs_ok = x.simd_ge(splat(f64::MIN_POSITIVE))
        & x.simd_le(splat(f64::MAX))
        & y.abs().simd_le(splat(f64::MAX));
    if !inputs_ok.all() {
        return None;
    }
    let (lh, ll) = ln_dd(x);
    let ph = y * lh;
    let pl = y.mul_sub(lh, ph) + y * ll;
    if !(ph.simd_ge(splat(EXP_LO)) & ph.simd_le(splat(EXP_HI))).all() {
        return None;
    }
    // e^(ph + pl): ph is reduced exactly, pl joins the low part.
    let j = (ph * splat(LOG2_E)).round_ties_even();
    let f_hi = j.mul_neg_add(splat(LN2_HI), ph);
    let f_lo = j.mul_neg_add(splat(LN2_LO), pl);
    let f = f_hi + f_lo;
    let f_err = (f_hi - f) + f_lo;
    Some((expm1_reduced(f, f_err) + splat(1.0)) * pow2i(j))
}

// ---------------------------------------------------------------------------
// Light f64 kernels for f32 results (relative error ~2^-36, i.e. far below
// an f32 ulp, so rounding to f32 gives 1 ulp at worst)
// ---------------------------------------------------------------------------

/// e^f - 1 - f = f^2 E(f) on |f| <= ln2/2 to 2^-39.6 (own Remez fit).
const EXP_C_LIGHT: [f64; 7] = [
    0.500_000_000_042_748_1,
    0.166_666_667_845_824_54,
    0.041_666_664_402_434_81,
    0.008_333_281_767_024_992,
    0.001_388_919_736_492_429,
    0.000_199_089_659_356_667_63,
    2.470_825_713_082_209_5e-5,
];

/// Taylor coefficients 2/(2k+1), k = 1..=7, of (2 atanh(s) - 2s)/s^3; the
/// first omitted term is < 2^-44 relative for |s| <= 0.1716.
const LOG_C_LIGHT: [f64; 7] = [
    2.0 / 3.0,
    2.0 / 5.0,
    2.0 / 7.0,
    2.0 / 9.0,
    2.0 / 11.0,
    2.0 / 13.0,
    2.0 / 15.0,
];

/// (j, p) with e^x = 2^j (1 + p), j integral; |x| < 1400.
#[inline(always)]
fn exp_light(x: f64x4) -> (f64x4, f64x4) {
    let j = (x * splat(LOG2_E)).round_ties_even();
    let f = j.mul_neg_add(splat(LN2_HI), x);
    let f = j.mul_neg_add(splat(LN2_LO), f);
    (j, (f * f).mul_add(poly(f, &EXP_C_LIGHT), f))
}

/// ln x for positive normal finite x, ~2^-44 relative.
#[inline(always)]
fn ln_light(x: f64x4) -> f64x4 {
    let (e, m) = split_exponent(x);
    let s = (m - splat(1.0)) / (m + splat(1.0));
    let z = s * s;
    let two_s = s + s;
    e.mul_add(
        splat(core::f64::consts::LN_2),
        (s * z).mul_add(poly(z, &LOG_C_LIGHT), two_s),
    )
}

/// tanh for f32 inputs in f64: t / (t + 2), t = expm1(2|x|).
#[inline(always)]
fn tanh_light(x: f64x4) -> f64x4 {
    let a = x.abs();
    let sat = a.simd_gt(splat(10.0)); // tanh(10) rounds to 1 in f32
    let (j, p) = exp_light((a + a).fast_min(splat(22.0)));
    let t = pow2i(j) * (p + (splat(1.0) - pow2i(-j)));
    sat.select(splat(1.0), t / (t + splat(2.0))).copysign(x)
}

/// ln of f32 inputs is at most ~104 in magnitude, so any |y ln x| beyond this
/// gives 0 or inf in f32 already; clamping keeps the f64 exp in range.
const POW_F32_CLAMP: f64 = 200.0;

/// x^y for f32 inputs in f64, `None` unless every lane has finite x > 0 (f32
/// subnormals are normal in f64) and finite y. Overflow to inf and underflow
/// to subnormals/zero happen in the final rounding to f32.
#[inline(always)]
fn pow_light(x: f64x4, y: f64x4) -> Option<f64x4> {
    let ok = (x.simd_gt(splat(0.0))
        & x.simd_le(splat(f64::from(f32::MAX)))
        & y.abs().simd_le(splat(f64::from(f32::MAX))))
    .all();
    if !ok {
        return None;
    }
    let t = (y * ln_light(x))
        .fast_max(splat(-POW_F32_CLAMP))
        .fast_min(splat(POW_F32_CLAMP));
    let (j, p) = exp_light(t);
    Some((p + splat(1.0)) * pow2i(j))
}

// ---------------------------------------------------------------------------
// exp (native f32)
// ---------------------------------------------------------------------------

/// Fast-path range of the f32 exp: results stay normal and finite and the
/// scale 2^j stays in [2^-126, 2^127] (exp(-87) ~ 1.6e-38 >
/// f32::MIN_POSITIVE, exp(88.3) ~ 2.2e38).
const EXP_LO_F32: f32 = -87.0;
const EXP_HI_F32: f32 = 88.3;
const LN2_HI_F32: f32 = core::f32::consts::LN_2;
const LN2_LO_F32: f32 = -1.904_654_2e-9;
/// e^f - 1 - f = f^2 E(f) on |f| <= ln2/2 (own Remez fit with f32-rounded
/// coefficients, 2^-31.2).
const EXP_F32_C: [f32; 6] = [
    0.5,
    0.166_666_48,
    0.041_666_48,
    0.008_337_889,
    0.001_393_336_8,
    0.000_173_210_86,
];

#[inline(always)]
fn exp_kernel_f32(x: f32x8) -> f32x8 {
    let j = (x * splat32(core::f32::consts::LOG2_E)).round_ties_even();
    let f = j.mul_neg_add(splat32(LN2_HI_F32), x);
    let f = j.mul_neg_add(splat32(LN2_LO_F32), f);
    let p = (f * f).mul_add(poly32(f, &EXP_F32_C), f);
    let scale = from_bits32(int_bits32(j + splat32(127.0)) << 23);
    (p + splat32(1.0)) * scale
}

// ---------------------------------------------------------------------------
// Public f64 API
// ---------------------------------------------------------------------------

/// `out[i] = x[i].sin()`; vector path for |x| <= 2^30.
pub fn sin_f64(x: &[f64], out: &mut [f64]) {
    map1(
        x,
        out,
        |a: [f64; 4]| {
            let v = f64x4::new(a);
            trig_ok(v).then(|| sin_kernel(v).to_array())
        },
        f64::sin,
    );
}

/// `out[i] = x[i].cos()`; vector path for |x| <= 2^30.
pub fn cos_f64(x: &[f64], out: &mut [f64]) {
    map1(
        x,
        out,
        |a: [f64; 4]| {
            let v = f64x4::new(a);
            trig_ok(v).then(|| cos_kernel(v).to_array())
        },
        f64::cos,
    );
}

/// `out[i] = x[i].tan()`; vector path for |x| <= 2^30.
pub fn tan_f64(x: &[f64], out: &mut [f64]) {
    map1(
        x,
        out,
        |a: [f64; 4]| {
            let v = f64x4::new(a);
            trig_ok(v).then(|| tan_kernel(v).to_array())
        },
        f64::tan,
    );
}

/// `out[i] = x[i].exp()`; vector path for x in [-708, 709].
pub fn exp_f64(x: &[f64], out: &mut [f64]) {
    map1(
        x,
        out,
        |a: [f64; 4]| {
            let v = f64x4::new(a);
            let ok = HAS_FMA && (v.simd_ge(splat(EXP_LO)) & v.simd_le(splat(EXP_HI))).all();
            ok.then(|| exp_kernel(v).to_array())
        },
        f64::exp,
    );
}

/// sinh's odd series below 1 in magnitude: sinh x = x + x z P(z), z = x²,
/// P = 1/3! + z/5! + ... + z⁸/19! (the next term is below 2⁻⁶⁵ of x).
pub const SINH_C: [f64; 9] = [
    1.0 / 6.0,
    1.0 / 120.0,
    1.0 / 5040.0,
    1.0 / 362_880.0,
    1.0 / 39_916_800.0,
    1.0 / 6_227_020_800.0,
    1.0 / 1_307_674_368_000.0,
    1.0 / 355_687_428_096_000.0,
    1.0 / 121_645_100_408_832_000.0,
];

/// sinh and cosh of four lanes from e^x and its reciprocal (no cancellation
/// in cosh; in sinh only from 1 up, under 2 ulp), the odd series below 1.
#[inline(always)]
fn sinh_cosh_kernel(x: f64x4) -> (f64x4, f64x4) {
    let e = exp_kernel(x);
    let r = splat(1.0) / e;
    let c = (e + r) * splat(0.5);
    let z = x * x;
    let small = x + (x * z) * poly(z, &SINH_C);
    let big = (e - r) * splat(0.5);
    (x.abs().simd_lt(splat(1.0)).select(small, big), c)
}

/// `sh[i], ch[i] = x[i].sinh(), x[i].cosh()` within 2 ulp: the kernel the
/// GPU writes out for complex trigonometric and hyperbolic functions (its
/// bits on both devices) for x in [-708, 709], `std` elsewhere (per block of 4).
pub fn sinh_cosh_f64(x: &[f64], sh: &mut [f64], ch: &mut [f64]) {
    let n = x.len().min(sh.len()).min(ch.len());
    for at in (0..n).step_by(4) {
        let m = 4.min(n - at);
        let mut lanes = [x[at]; 4];
        lanes[..m].copy_from_slice(&x[at..at + m]);
        let v = f64x4::new(lanes);
        if HAS_FMA && (v.simd_ge(splat(EXP_LO)) & v.simd_le(splat(EXP_HI))).all() {
            let (s, c) = sinh_cosh_kernel(v);
            sh[at..at + m].copy_from_slice(&s.to_array()[..m]);
            ch[at..at + m].copy_from_slice(&c.to_array()[..m]);
        } else {
            for j in at..at + m {
                (sh[j], ch[j]) = (x[j].sinh(), x[j].cosh());
            }
        }
    }
}

/// `out[i] = x[i].sinh()` with [`sinh_cosh_f64`]'s kernel (within 2 ulp of
/// `std`; the GPU's bits), `std` outside [-708, 709].
pub fn sinh_f64(x: &[f64], out: &mut [f64]) {
    map1(
        x,
        out,
        |a: [f64; 4]| sinh_cosh_lanes(a).map(|(s, _)| s),
        f64::sinh,
    );
}

/// `out[i] = x[i].cosh()`, as [`sinh_f64`].
pub fn cosh_f64(x: &[f64], out: &mut [f64]) {
    map1(
        x,
        out,
        |a: [f64; 4]| sinh_cosh_lanes(a).map(|(_, c)| c),
        f64::cosh,
    );
}

/// Four lanes of sinh and cosh when all of them are in the kernel's range.
#[inline(always)]
fn sinh_cosh_lanes(a: [f64; 4]) -> Option<([f64; 4], [f64; 4])> {
    let v = f64x4::new(a);
    let ok = HAS_FMA && (v.simd_ge(splat(EXP_LO)) & v.simd_le(splat(EXP_HI))).all();
    ok.then(|| {
        let (s, c) = sinh_cosh_kernel(v);
        (s.to_array(), c.to_array())
    })
}

/// `out[i] = x[i].ln()`; `wide`'s ln (~1 ulp) for positive normal finite x.
/// `wide` maps subnormals to -inf, so those (and 0, negatives, inf, NaN) go
/// to `std`.
pub fn ln_f64(x: &[f64], out: &mut [f64]) {
    map1(
        x,
        out,
        |a: [f64; 4]| {
            let v = f64x4::new(a);
            let ok = (v.simd_ge(splat(f64::MIN_POSITIVE)) & v.simd_le(splat(f64::MAX))).all();
            ok.then(|| v.ln().to_array())
        },
        f64::ln,
    );
}

/// `out[i] = x[i].ln()` from the double-double logarithm of `pow`, rounded
/// (within 1 ulp, like [`ln_f64`], but not always its bits): the GPU's `log`
/// bit for bit, so values built on it (normal random numbers) are the same
/// on either device. Positive normal finite x; the rest goes to `std`.
pub fn ln_dd_f64(x: &[f64], out: &mut [f64]) {
    map1(
        x,
        out,
        |a: [f64; 4]| {
            let v = f64x4::new(a);
            let ok =
                HAS_FMA && (v.simd_ge(splat(f64::MIN_POSITIVE)) & v.simd_le(splat(f64::MAX))).all();
            ok.then(|| ln_dd(v).0.to_array())
        },
        f64::ln,
    );
}

/// `out[i] = x[i].tanh()`; vector path for every non-NaN x.
pub fn tanh_f64(x: &[f64], out: &mut [f64]) {
    map1(
        x,
        out,
        |a: [f64; 4]| {
            let v = f64x4::new(a);
            let ok = HAS_FMA && v.simd_eq(v).all();
            ok.then(|| tanh_kernel(v).to_array())
        },
        f64::tanh,
    );
}

/// `out[i] = x[i].powf(y[i])`; vector path for positive normal finite x,
/// finite y and results in [e^-708, e^709]. Zero, negative or non-finite
/// bases, non-finite exponents and over/underflowing results use `std`.
pub fn powf_f64(x: &[f64], y: &[f64], out: &mut [f64]) {
    map2(
        x,
        y,
        out,
        |a: [f64; 4], b: [f64; 4]| {
            if !HAS_FMA {
                return None;
            }
            pow_kernel(f64x4::new(a), f64x4::new(b)).map(f64x4::to_array)
        },
        f64::powf,
    );
}

// ---------------------------------------------------------------------------
// Public f32 API
// ---------------------------------------------------------------------------

/// `out[i] = x[i].sin()`; native f32 kernel for |x| < 2^21, the f64 kernel
/// up to 2^30 (so e.g. a 5 Hz sine over 1e5 s, |x| ~ 3.2e6, stays at 1 ulp).
pub fn sin_f32(x: &[f32], out: &mut [f32]) {
    map1(
        x,
        out,
        |a| trig_f32(a, sin_kernel_f32, sin_kernel),
        f32::sin,
    );
}

/// `out[i] = x[i].cos()`; same tiers as [`sin_f32`].
pub fn cos_f32(x: &[f32], out: &mut [f32]) {
    map1(
        x,
        out,
        |a| trig_f32(a, cos_kernel_f32, cos_kernel),
        f32::cos,
    );
}

/// `out[i] = x[i].tan()`; f64 kernel for |x| <= 2^30.
pub fn tan_f32(x: &[f32], out: &mut [f32]) {
    map1(
        x,
        out,
        |a: [f32; 8]| {
            let (lo, hi) = widen8(a);
            (trig_ok(lo) && trig_ok(hi)).then(|| narrow8(tan_kernel(lo), tan_kernel(hi)))
        },
        f32::tan,
    );
}

/// `out[i] = x[i].exp()`; native f32 kernel for x in [-87, 88.3].
pub fn exp_f32(x: &[f32], out: &mut [f32]) {
    map1(
        x,
        out,
        |a: [f32; 8]| {
            let v = f32x8::new(a);
            let ok =
                HAS_FMA && (v.simd_ge(splat32(EXP_LO_F32)) & v.simd_le(splat32(EXP_HI_F32))).all();
            ok.then(|| exp_kernel_f32(v).to_array())
        },
        f32::exp,
    );
}

/// `out[i] = x[i].ln()`; `wide`'s f32 ln for positive normal finite x.
pub fn ln_f32(x: &[f32], out: &mut [f32]) {
    map1(
        x,
        out,
        |a: [f32; 8]| {
            let v = f32x8::new(a);
            let ok = (v.simd_ge(splat32(f32::MIN_POSITIVE)) & v.simd_le(splat32(f32::MAX))).all();
            ok.then(|| v.ln().to_array())
        },
        f32::ln,
    );
}

/// `out[i] = x[i].tanh()`; evaluated in f64 (`wide`'s f32 tanh is ~4 ulp).
pub fn tanh_f32(x: &[f32], out: &mut [f32]) {
    map1(
        x,
        out,
        |a: [f32; 8]| {
            let (lo, hi) = widen8(a);
            let ok = HAS_FMA && (lo.simd_eq(lo) & hi.simd_eq(hi)).all();
            ok.then(|| narrow8(tanh_light(lo), tanh_light(hi)))
        },
        f32::tanh,
    );
}

/// `out[i] = x[i].powf(y[i])`; exp(y ln x) in f64 for finite x > 0 and finite
/// y (see [`pow_light`]); everything else uses `std`.
pub fn powf_f32(x: &[f32], y: &[f32], out: &mut [f32]) {
    map2(
        x,
        y,
        out,
        |a: [f32; 8], b: [f32; 8]| {
            if !HAS_FMA {
                return None;
            }
            let (xl, xh) = widen8(a);
            let (yl, yh) = widen8(b);
            let lo = pow_light(xl, yl)?;
            let hi = pow_light(xh, yh)?;
            Some(narrow8(lo, hi))
        },
        f32::powf,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Number of representable doubles between `a` and `b` (so 1.0 for
    /// neighbours). Both NaN counts as 0, NaN against a number as infinity,
    /// and +0 / -0 are 0 apart (signs of zero are checked separately).
    fn ulp_diff(a: f64, b: f64) -> f64 {
        if a.is_nan() || b.is_nan() {
            return if a.is_nan() && b.is_nan() {
                0.0
            } else {
                f64::INFINITY
            };
        }
        // Map the bit patterns onto a monotonic integer line.
        fn key(v: f64) -> i128 {
            let i = v.to_bits() as i64;
            i128::from(if i < 0 { i64::MIN.wrapping_sub(i) } else { i })
        }
        (key(a) - key(b)).unsigned_abs() as f64
    }

    /// f32 version of [`ulp_diff`].
    fn ulp_diff_f32(a: f32, b: f32) -> f64 {
        if a.is_nan() || b.is_nan() {
            return if a.is_nan() && b.is_nan() {
                0.0
            } else {
                f64::INFINITY
            };
        }
        fn key(v: f32) -> i64 {
            let i = v.to_bits() as i32;
            i64::from(if i < 0 { i32::MIN.wrapping_sub(i) } else { i })
        }
        (key(a) - key(b)).unsigned_abs() as f64
    }

    /// Compares one result with std's: NaN, infinities and zeros (with their
    /// sign) must match exactly, everything else within `bound` ulp. Returns
    /// the ulp distance.
    fn check64(what: &dyn Fn() -> String, got: f64, want: f64, bound: f64) -> f64 {
        if want.is_nan() {
            assert!(got.is_nan(), "{}: got {got:e}, std gives NaN", what());
            return 0.0;
        }
        if want.is_infinite() || want == 0.0 {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{}: got {got:e}, std gives {want:e}",
                what()
            );
            return 0.0;
        }
        let d = ulp_diff(got, want);
        assert!(
            d <= bound,
            "{}: got {got:e}, std gives {want:e} ({d} ulp > {bound})",
            what()
        );
        d
    }

    fn check32(what: &dyn Fn() -> String, got: f32, want: f32, bound: f64) -> f64 {
        if want.is_nan() {
            assert!(got.is_nan(), "{}: got {got:e}, std gives NaN", what());
            return 0.0;
        }
        if want.is_infinite() || want == 0.0 {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{}: got {got:e}, std gives {want:e}",
                what()
            );
            return 0.0;
        }
        let d = ulp_diff_f32(got, want);
        assert!(
            d <= bound,
            "{}: got {got:e}, std gives {want:e} ({d} ulp > {bound})",
            what()
        );
        d
    }

    /// Deterministic xorshift64* generator.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Log-uniform magnitude in [lo, hi) with a random sign.
        fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
            let v = (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp();
            if self.next_u64() & 1 == 0 { v } else { -v }
        }
    }

    const SPECIAL_F64: [f64; 44] = [
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        1e-310,
        -1e-310,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        1.0,
        -1.0,
        0.5,
        2.0,
        -2.0,
        core::f64::consts::FRAC_PI_2,
        -core::f64::consts::FRAC_PI_2,
        core::f64::consts::PI,
        core::f64::consts::TAU,
        TRIG_MAX,
        TRIG_MAX * 1.000_000_1,
        -TRIG_MAX,
        1e22,
        -708.0,
        -708.5,
        -745.1,
        -745.2,
        709.0,
        709.5,
        709.78,
        710.0,
        19.0,
        19.2,
        -22.0,
        88.72,
        -103.9,
        1e-8,
        1.0e300,
        -1.0e-300,
    ];

    const SPECIAL_F32: [f32; 40] = [
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1e-45,
        -1e-45,
        1e-40,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
        1.0,
        -1.0,
        0.5,
        2.0,
        core::f32::consts::FRAC_PI_2,
        core::f32::consts::PI,
        -core::f32::consts::PI,
        TRIG_LIMIT_F32,
        -TRIG_LIMIT_F32,
        2_097_151.8,
        3.2e6,
        1.073_741_8e9,
        1e20,
        -87.0,
        -87.5,
        -103.9,
        -104.0,
        88.3,
        88.5,
        88.8,
        9.0,
        10.5,
        -11.0,
        1e-4,
        3e38,
        -1e-38,
    ];

    /// Random inputs over many magnitude ranges with the special values
    /// scattered in, so that blocks mixing fast and fallback lanes occur.
    fn sweep_f64(seed: u64) -> Vec<f64> {
        const RANGES: [(f64, f64); 11] = [
            (1e-320, 1e-300),
            (1e-300, 1e-8),
            (1e-8, 1e-3),
            (1e-3, 0.5),
            (0.5, 2.0),
            (2.0, 20.0),
            (20.0, 750.0),
            (750.0, 1e5),
            (1e5, 1e7),
            (1e7, 1.2e9),
            (1e9, 1e300),
        ];
        let mut rng = Rng(seed);
        let mut v = Vec::new();
        for &(lo, hi) in &RANGES {
            v.extend((0..6000).map(|_| rng.log_uniform(lo, hi)));
        }
        for (i, &s) in SPECIAL_F64.iter().enumerate() {
            let at = (rng.next_u64() as usize) % v.len();
            v.insert(at, s);
            v.push(s); // also in an otherwise special-only tail region
            if i % 2 == 0 {
                v.push(-s);
            }
        }
        v
    }

    /// Every 4099th f32 bit pattern (all binades, both signs, NaNs, infinities)
    /// plus random values and the special values.
    fn sweep_f32(seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed);
        let mut v: Vec<f32> = (0..=u32::MAX / 4099)
            .map(|i| f32::from_bits(i.wrapping_mul(4099)))
            .collect();
        v.extend((0..50_000).map(|_| rng.log_uniform(1e-3, 3e6) as f32));
        for &s in &SPECIAL_F32 {
            let at = (rng.next_u64() as usize) % v.len();
            v.insert(at, s);
            v.push(s);
            v.push(-s);
        }
        v
    }

    type Slice64 = fn(&[f64], &mut [f64]);
    type Slice32 = fn(&[f32], &mut [f32]);
    /// (name, vectorized function, std reference)
    type Unary64 = (&'static str, Slice64, fn(f64) -> f64);
    type Unary32 = (&'static str, Slice32, fn(f32) -> f32);

    const UNARY_F64: [Unary64; 6] = [
        ("sin_f64", sin_f64, f64::sin),
        ("cos_f64", cos_f64, f64::cos),
        ("tan_f64", tan_f64, f64::tan),
        ("exp_f64", exp_f64, f64::exp),
        ("ln_f64", ln_f64, f64::ln),
        ("tanh_f64", tanh_f64, f64::tanh),
    ];

    const UNARY_F32: [Unary32; 6] = [
        ("sin_f32", sin_f32, f32::sin),
        ("cos_f32", cos_f32, f32::cos),
        ("tan_f32", tan_f32, f32::tan),
        ("exp_f32", exp_f32, f32::exp),
        ("ln_f32", ln_f32, f32::ln),
        ("tanh_f32", tanh_f32, f32::tanh),
    ];

    fn run64(name: &str, f: Slice64, s: fn(f64) -> f64, xs: &[f64]) -> f64 {
        let mut out = vec![0.0; xs.len()];
        f(xs, &mut out);
        let mut worst: f64 = 0.0;
        for (&x, &got) in xs.iter().zip(&out) {
            worst = worst.max(check64(
                &|| format!("{name}({x:e})"),
                got,
                s(x),
                ULP_BOUND_F64,
            ));
        }
        worst
    }

    fn run32(name: &str, f: Slice32, s: fn(f32) -> f32, xs: &[f32]) -> f64 {
        let mut out = vec![0.0; xs.len()];
        f(xs, &mut out);
        let mut worst: f64 = 0.0;
        for (&x, &got) in xs.iter().zip(&out) {
            worst = worst.max(check32(
                &|| format!("{name}({x:e})"),
                got,
                s(x),
                ULP_BOUND_F32,
            ));
        }
        worst
    }

    #[test]
    fn ulp_diff_counts_representable_values() {
        assert_eq!(ulp_diff(1.0, 1.0), 0.0);
        assert_eq!(ulp_diff(1.0, 1.0 + f64::EPSILON), 1.0);
        assert_eq!(ulp_diff(1.0, 1.0 - f64::EPSILON / 2.0), 1.0);
        assert_eq!(ulp_diff(-5e-324, 5e-324), 2.0);
        assert_eq!(ulp_diff(0.0, -0.0), 0.0);
        assert_eq!(ulp_diff(f64::NAN, -f64::NAN), 0.0);
        assert_eq!(ulp_diff(f64::NAN, 1.0), f64::INFINITY);
        assert_eq!(ulp_diff(f64::MAX, f64::INFINITY), 1.0);
        assert_eq!(ulp_diff_f32(1.0, 1.0 + f32::EPSILON), 1.0);
        assert_eq!(ulp_diff_f32(-1e-45, 1e-45), 2.0);
        assert_eq!(ulp_diff_f32(f32::NAN, f32::NAN), 0.0);
        assert_eq!(ulp_diff_f32(f32::NAN, 0.0), f64::INFINITY);
    }

    #[test]
    #[should_panic(expected = "ulp >")]
    fn checker_rejects_result_just_outside_bound() {
        let want = 0.75_f64;
        let got = f64::from_bits(want.to_bits() + ULP_BOUND_F64 as u64 + 1);
        check64(&|| "probe".to_string(), got, want, ULP_BOUND_F64);
    }

    #[test]
    #[should_panic(expected = "std gives -0")]
    fn checker_rejects_wrong_sign_of_zero() {
        check64(&|| "probe".to_string(), 0.0, -0.0, ULP_BOUND_F64);
    }

    #[test]
    fn unary_f64_match_std() {
        let xs = sweep_f64(0x9E37_79B9_7F4A_7C15);
        for &(name, f, s) in &UNARY_F64 {
            let worst = run64(name, f, s, &xs);
            // Not vacuous: the vector path really runs (and differs from std
            // somewhere). Without FMA most functions deliberately use std.
            assert!(
                !HAS_FMA || worst >= 1.0,
                "{name}: suspiciously exact ({worst} ulp)"
            );
        }
    }

    #[test]
    fn unary_f32_match_std() {
        let xs = sweep_f32(0xD1B5_4A32_D192_ED03);
        for &(name, f, s) in &UNARY_F32 {
            let worst = run32(name, f, s, &xs);
            assert!(
                !HAS_FMA || worst >= 1.0,
                "{name}: suspiciously exact ({worst} ulp)"
            );
        }
    }

    #[test]
    fn special_values_match_std_exactly() {
        // Blocks made only of special values, one value per block repeated,
        // and each special alone in an otherwise ordinary block.
        for &(name, f, s) in &UNARY_F64 {
            run64(name, f, s, &SPECIAL_F64);
            for &sp in &SPECIAL_F64 {
                for lane in 0..4 {
                    let mut xs = [0.3, -1.7, 2.5, 0.9];
                    xs[lane] = sp;
                    run64(name, f, s, &xs);
                }
            }
        }
        for &(name, f, s) in &UNARY_F32 {
            run32(name, f, s, &SPECIAL_F32);
            for &sp in &SPECIAL_F32 {
                for lane in 0..8 {
                    let mut xs = [0.3, -1.7, 2.5, 0.9, 7.0, -0.01, 33.0, 1.1];
                    xs[lane] = sp;
                    run32(name, f, s, &xs);
                }
            }
        }
    }

    #[test]
    fn every_length_and_offset() {
        let mut rng = Rng(17);
        let xs64: Vec<f64> = (0..64).map(|_| rng.log_uniform(1e-2, 50.0)).collect();
        let xs32: Vec<f32> = xs64.iter().map(|&v| v as f32).collect();
        for len in 0..=20 {
            for off in 0..4 {
                for &(name, f, s) in &UNARY_F64 {
                    run64(name, f, s, &xs64[off..off + len]);
                }
                for &(name, f, s) in &UNARY_F32 {
                    run32(name, f, s, &xs32[off..off + len]);
                }
            }
        }
    }

    #[test]
    fn trig_f64_near_multiples_of_half_pi() {
        // The doubles nearest to k*pi/2 (and their neighbours) have the
        // smallest reduced arguments, where a weak reduction shows first.
        let near = |k: f64| {
            let hi = k * core::f64::consts::FRAC_PI_2;
            let lo = k.mul_add(core::f64::consts::FRAC_PI_2, -hi) + k * PIO2_2;
            hi + lo
        };
        let mut rng = Rng(5);
        let mut xs = Vec::new();
        let ks = (1..20_000)
            .map(f64::from)
            .chain((0..20_000).map(|_| (rng.unit() * 6.8e8).round()));
        for k in ks {
            let x = near(k);
            xs.extend([
                x,
                f64::from_bits(x.to_bits() + 1),
                f64::from_bits(x.to_bits() - 1),
                -x,
            ]);
        }
        for &(name, f, s) in &UNARY_F64[..3] {
            run64(name, f, s, &xs);
        }
    }

    #[test]
    fn sin_f32_of_long_running_5hz_signal() {
        // 5 Hz over 1e5 s computed in f32: arguments up to ~3.2e6, past the
        // native f32 kernel's limit, so this covers the f64 tier as well.
        let xs: Vec<f32> = (0..400_000)
            .map(|i| core::f32::consts::TAU * 5.0 * (i as f32 * 0.25))
            .collect();
        assert!(xs.iter().any(|&x| x > 3.1e6));
        let worst_sin = run32("sin_f32", sin_f32, f32::sin, &xs);
        let worst_cos = run32("cos_f32", cos_f32, f32::cos, &xs);
        assert!(
            worst_sin <= 1.0 && worst_cos <= 1.0,
            "{worst_sin} {worst_cos}"
        );
    }

    #[test]
    fn trig_f32_quadrant_boundaries() {
        // Floats nearest to k*pi/2 around the native/f64 tier boundary.
        let mut xs = Vec::new();
        for k in (1..2_000_000u32).step_by(997).chain(1_335_000..1_336_000) {
            let x = (f64::from(k) * core::f64::consts::FRAC_PI_2) as f32;
            xs.extend([x, x.next_up(), x.next_down()]);
        }
        for &(name, f, s) in &UNARY_F32[..3] {
            run32(name, f, s, &xs);
        }
    }

    fn pow_cases_f64() -> (Vec<f64>, Vec<f64>) {
        let mut rng = Rng(0xB5AD_4ECE_DA1C_E2A9);
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        let ranges: [(f64, f64, f64); 7] = [
            (1e-3, 1e3, 10.0),
            (1e-300, 1e300, 1.0),
            (0.5, 2.0, 1000.0),
            (0.999, 1.001, 1e5),
            (1.0 - 1e-12, 1.0 + 1e-12, 1e14),
            (1e-5, 1e5, 100.0),
            (1e-10, 1e10, 80.0), // over/underflows: scalar path
        ];
        for &(lo, hi, ylim) in &ranges {
            for _ in 0..8000 {
                xs.push(rng.log_uniform(lo, hi).abs());
                ys.push((rng.unit() * 2.0 - 1.0) * ylim);
            }
        }
        // Negative bases, integral and non-integral exponents.
        for _ in 0..4000 {
            xs.push(-rng.log_uniform(1e-3, 1e3).abs());
            ys.push(if rng.next_u64() & 1 == 0 {
                (rng.unit() * 40.0 - 20.0).round()
            } else {
                rng.unit() * 6.0 - 3.0
            });
        }
        // Every pair of special values, in both positions of a block.
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            2.0,
            -2.0,
            3.0,
            -0.5,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            1e300,
        ];
        for &a in &specials {
            for &b in &specials {
                xs.extend([a, 1.5, a, b]);
                ys.extend([b, 2.5, b, a]);
            }
        }
        (xs, ys)
    }

    #[test]
    fn powf_f64_matches_std() {
        let (xs, ys) = pow_cases_f64();
        let mut out = vec![0.0; xs.len()];
        powf_f64(&xs, &ys, &mut out);
        let mut worst: f64 = 0.0;
        for ((&x, &y), &got) in xs.iter().zip(&ys).zip(&out) {
            let d = check64(
                &|| format!("powf_f64({x:e}, {y:e})"),
                got,
                x.powf(y),
                ULP_BOUND_F64,
            );
            worst = worst.max(d);
        }
        assert!(!HAS_FMA || worst >= 1.0, "powf_f64: suspiciously exact");
        // Results that are exact in binary stay exact.
        let (b, e) = ([2.0, 3.0, 10.0, 0.25], [10.0, 5.0, 15.0, -3.0]);
        let mut o = [0.0; 4];
        powf_f64(&b, &e, &mut o);
        assert_eq!(o, [1024.0, 243.0, 1e15, 64.0]);
    }

    #[test]
    fn powf_f32_matches_std() {
        let (xs64, ys64) = pow_cases_f64();
        let xs: Vec<f32> = xs64.iter().map(|&v| v as f32).collect();
        let ys: Vec<f32> = ys64.iter().map(|&v| v as f32).collect();
        let mut out = vec![0.0; xs.len()];
        powf_f32(&xs, &ys, &mut out);
        let mut worst: f64 = 0.0;
        for ((&x, &y), &got) in xs.iter().zip(&ys).zip(&out) {
            let d = check32(
                &|| format!("powf_f32({x:e}, {y:e})"),
                got,
                x.powf(y),
                ULP_BOUND_F32,
            );
            worst = worst.max(d);
        }
        assert!(!HAS_FMA || worst >= 1.0, "powf_f32: suspiciously exact");
        let mut o = [0.0f32; 3];
        powf_f32(&[2.0, 3.0, 0.5], &[10.0, 5.0, -3.0], &mut o);
        assert_eq!(o, [1024.0, 243.0, 8.0]);
    }

    #[test]
    fn powf_every_length() {
        let mut rng = Rng(99);
        let xs: Vec<f64> = (0..40).map(|_| rng.log_uniform(0.1, 10.0).abs()).collect();
        let ys: Vec<f64> = (0..40).map(|_| rng.unit() * 4.0 - 2.0).collect();
        for len in 0..=19 {
            let mut out = vec![0.0; len];
            powf_f64(&xs[..len], &ys[..len], &mut out);
            for i in 0..len {
                check64(
                    &|| format!("powf_f64 len {len} [{i}]"),
                    out[i],
                    xs[i].powf(ys[i]),
                    ULP_BOUND_F64,
                );
            }
            let x32: Vec<f32> = xs[..len].iter().map(|&v| v as f32).collect();
            let y32: Vec<f32> = ys[..len].iter().map(|&v| v as f32).collect();
            let mut out32 = vec![0.0f32; len];
            powf_f32(&x32, &y32, &mut out32);
            for i in 0..len {
                check32(
                    &|| format!("powf_f32 len {len} [{i}]"),
                    out32[i],
                    x32[i].powf(y32[i]),
                    ULP_BOUND_F32,
                );
            }
        }
    }

    /// sinh and cosh within 2 ulp of `std` over the whole fast range, around
    /// the switch from the series at 1, near 0 (signed zeros kept), and
    /// `std`'s own bits beyond the range.
    #[test]
    fn sinh_cosh_follow_std() {
        let mut xs: Vec<f64> = (0..4000)
            .map(|k| (k as f64 - 2000.0) * 0.3543 + (k as f64 * 0.77).sin())
            .collect();
        for m in [
            1.0f64,
            0.5,
            1e-3,
            1e-8,
            1e-160,
            1e-310,
            0.999_999_999,
            1.000_000_001,
        ] {
            for d in -3i32..=3 {
                let x = f64::from_bits((m.to_bits() as i64 + i64::from(d)) as u64);
                xs.extend([x, -x]);
            }
        }
        xs.extend([
            0.0,
            -0.0,
            708.0,
            -708.0,
            709.0,
            710.0,
            -745.0,
            f64::INFINITY,
            f64::NAN,
        ]);
        let (mut sh, mut ch) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        sinh_cosh_f64(&xs, &mut sh, &mut ch);
        // Real sinh and cosh are the same blocks of the same kernel, from
        // any start (tails of every length).
        for skip in 0..4 {
            let (mut s, mut c) = (vec![0.0; xs.len() - skip], vec![0.0; xs.len() - skip]);
            sinh_f64(&xs[skip..], &mut s);
            cosh_f64(&xs[skip..], &mut c);
            let (mut s4, mut c4) = (s.clone(), c.clone());
            sinh_cosh_f64(&xs[skip..], &mut s4, &mut c4);
            for k in 0..s.len() {
                assert_eq!(s[k].to_bits(), s4[k].to_bits(), "sinh {}", xs[skip + k]);
                assert_eq!(c[k].to_bits(), c4[k].to_bits(), "cosh {}", xs[skip + k]);
            }
        }
        for (k, &x) in xs.iter().enumerate() {
            if (EXP_LO..=EXP_HI).contains(&x) {
                assert!(
                    ulp_diff(sh[k], x.sinh()) <= 2.0,
                    "sinh {x}: {} {}",
                    sh[k],
                    x.sinh()
                );
                assert!(
                    ulp_diff(ch[k], x.cosh()) <= 2.0,
                    "cosh {x}: {} {}",
                    ch[k],
                    x.cosh()
                );
                assert_eq!(sh[k].is_sign_negative(), x.is_sign_negative(), "{x}");
            } else {
                assert!(ulp_diff(sh[k], x.sinh()) == 0.0 && ulp_diff(ch[k], x.cosh()) == 0.0);
            }
        }
    }
}
