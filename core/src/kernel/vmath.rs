//! Vectorized transcendental functions over slices.
//!
//! Every function processes its input in SIMD blocks (`f64x4` / `f32x8` from
//! the `wide` crate) and falls back to the scalar `std` routine for a whole
//! block as soon as one lane is outside the range where the vector kernel is
//! known to be accurate (non-finite values, huge trig arguments, results that
//! would overflow or become subnormal, negative bases of `powf`, ...). The
//! check is one compare + movemask per block, so the fast path has no
//! per-element branches, and the slow path keeps `std` semantics exactly.
//!
//! Where `wide`'s own routine is accurate over the whole fast range it is used
//! directly (`ln` for both widths, `exp` for `f32`). The other kernels are
//! written here because the `wide` versions lose accuracy:
//! * `sin`/`cos`/`tan`: `wide` reduces the argument with a Cody-Waite split
//!   meant for machines without FMA, which degrades for |x| >~ 1e12 (f64) and
//!   already at |x| >~ 1e3 for f32 (thousands of ulp at 1e5). The kernel below
//!   uses an FMA based three-part reduction that is accurate far beyond the
//!   fast-path limit, and the f32 versions are evaluated with it in f64.
//! * `tanh`: `wide` returns `x` below 5e-8 (up to ~7 ulp there).
//! * `powf`: `wide` computes the logarithm to only ~53 bits, so the error grows
//!   with |y * ln x| (~75 ulp for results near 1e140). The kernel below carries
//!   `ln x` as a double-double.
//!
//! Accuracy is quoted in ulp against Rust `std` (i.e. the platform libm), see
//! [`ULP_BOUND_F64`] and [`ULP_BOUND_F32`]. The error-free transformations used
//! here need a fused multiply-add; when the crate is built without the `fma`
//! target feature the affected functions use the scalar path instead.

use wide::bytemuck::cast;
use wide::{f32x8, f64x4, u64x4};

/// Worst-case error of the `*_f64` functions against `std`, in ulp.
///
/// Measured maxima (see the tests): sin/cos/exp/ln/powf 1, tan/tanh 2. The
/// bound leaves one ulp of head room for inputs the sweeps did not hit.
pub const ULP_BOUND_F64: f64 = 3.0;

/// Worst-case error of the `*_f32` functions against `std`, in ulp.
///
/// sin/cos/tan/tanh/powf are evaluated in f64 and rounded once, so they are
/// within 1 ulp; `exp`/`ln` use `wide`'s f32 kernels (1 ulp, checked
/// exhaustively over every f32 in the fast range during development).
pub const ULP_BOUND_F32: f64 = 2.0;

/// The reductions below are only exact with a fused multiply-add.
const HAS_FMA: bool = cfg!(target_feature = "fma");

// ---------------------------------------------------------------------------
// Slice drivers
// ---------------------------------------------------------------------------

/// Applies `vf` to `N`-element blocks of `x`, writing `out`. `vf` returns
/// `None` when a block needs the scalar path; the tail is padded with its own
/// first element (so it is valid whenever the tail itself is) and run through
/// `vf` as well, which keeps short slices on the fast path too.
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

#[inline(always)]
fn widen(v: [f32; 4]) -> f64x4 {
    f64x4::new(v.map(f64::from))
}

#[inline(always)]
fn narrow(v: f64x4) -> [f32; 4] {
    v.to_array().map(|t| t as f32)
}

#[inline(always)]
fn splat(v: f64) -> f64x4 {
    f64x4::splat(v)
}

#[inline(always)]
fn bits(v: f64x4) -> u64x4 {
    cast(v)
}

#[inline(always)]
fn from_bits(v: u64x4) -> f64x4 {
    cast(v)
}

/// Lanes where `v` (integral, 0 <= v < 2^51) is odd / has bit 1 set, as the
/// raw bits of `v + 2^52`.
#[inline(always)]
fn int_bits(v: f64x4) -> u64x4 {
    bits(v + splat(4_503_599_627_370_496.0))
}

const SIGN: u64 = 0x8000_0000_0000_0000;

/// Evaluates `c[0] + z*c[1] + z^2*c[2] + ...` in Estrin form (pairs, then
/// pairs of pairs with z^2, z^4, ...), which shortens the dependency chain
/// compared to Horner; `K` is a constant, so the loops unroll completely.
#[inline(always)]
fn poly<const K: usize>(z: f64x4, c: &[f64; K]) -> f64x4 {
    let mut t = c.map(splat);
    let mut n = K;
    let mut p = z;
    while n > 1 {
        let m = n.div_ceil(2);
        for i in 0..m {
            t[i] = if 2 * i + 1 < n { t[2 * i + 1].mul_add(p, t[2 * i]) } else { t[2 * i] };
        }
        n = m;
        p = p * p;
    }
    t[0]
}

// ---------------------------------------------------------------------------
// sin / cos / tan kernel (f64, also used for the f32 versions)
// ---------------------------------------------------------------------------

/// Largest |x| handled by the vector trig kernel (2^30).
///
/// With FMA, `x - j*PIO2_1` is exact (both terms are multiples of 2^-52 for
/// x >= 1 and the difference is below 1), and the two further FMA steps leave
/// a relative error of ~2^-52 in the reduced argument as long as
/// `j * PIO2_3`-sized terms (2^(log2 j - 109)) stay far below the smallest
/// possible reduced argument of a double (~2^-61). At 2^30 the margin is
/// ~2^40; beyond that libm's Payne-Hanek reduction is used via the scalar path.
const TRIG_MAX: f64 = 1_073_741_824.0;
const FRAC_2_PI: f64 = core::f64::consts::FRAC_2_PI;
/// pi/2 split into three doubles: PIO2_1 = round(pi/2), PIO2_2 =
/// round(pi/2 - PIO2_1), PIO2_3 = round(pi/2 - PIO2_1 - PIO2_2); the remainder
/// is ~5.6e-50.
const PIO2_1: f64 = 1.570_796_326_794_896_6;
const PIO2_2: f64 = 6.123_233_995_736_766e-17;
const PIO2_3: f64 = -1.497_384_904_859_169_8e-33;

/// sin(r) = r + r^3 * S(r^2) on |r| <= pi/4 (weighted minimax, own Remez fit;
/// relative error ~2^-56.8 with these rounded coefficients).
const SIN_C: [f64; 6] = [
    -0.166_666_666_666_666_3,
    0.008_333_333_333_322_005,
    -0.000_198_412_698_294_954_84,
    2.755_731_358_761_674_7e-6,
    -2.505_074_230_762_202_2e-8,
    1.589_590_472_930_634e-10,
];
/// cos(r) = 1 - r^2/2 + r^4 * C(r^2) on |r| <= pi/4 (relative error ~2^-59).
const COS_C: [f64; 6] = [
    0.041_666_666_666_666_595,
    -0.001_388_888_888_887_289_5,
    2.480_158_728_874_817e-5,
    -2.755_731_414_861_859e-7,
    2.087_569_657_194_853_3e-9,
    -1.135_831_045_867_452_2e-11,
];

/// Returns (sin r, cos r, quadrant bits) for |x| <= TRIG_MAX, where
/// |x| = j*pi/2 + r and the quadrant bits are those of j.
#[inline(always)]
fn sincos_reduced(x: f64x4) -> (f64x4, f64x4, u64x4) {
    let xa = x.abs();
    let j = (xa * splat(FRAC_2_PI)).round_ties_even();
    let r = j.mul_neg_add(splat(PIO2_1), xa);
    let r = j.mul_neg_add(splat(PIO2_2), r);
    let r = j.mul_neg_add(splat(PIO2_3), r);
    let z = r * r;
    let s = (r * z).mul_add(poly(z, &SIN_C), r);
    // cos: 1 - z/2 is formed with its rounding error recovered (1 - w and the
    // FMA residual of r*r are exact), which keeps the result below ~0.6 ulp.
    let hz = splat(0.5) * z;
    let w = splat(1.0) - hz;
    let z_err = r.mul_sub(r, z);
    let tail = ((splat(1.0) - w) - hz) - splat(0.5) * z_err;
    let c = w + (z * z).mul_add(poly(z, &COS_C), tail);
    (s, c, int_bits(j))
}

#[inline(always)]
fn lane_mask(q: u64x4, bit: u64) -> f64x4 {
    from_bits((q & u64x4::splat(bit)).simd_eq(u64x4::splat(bit)))
}

#[inline(always)]
fn sin_kernel(x: f64x4) -> f64x4 {
    let (s, c, q) = sincos_reduced(x);
    let v = lane_mask(q, 1).select(c, s);
    let sign = ((q & u64x4::splat(2)) << 62) ^ (bits(x) & u64x4::splat(SIGN));
    v ^ from_bits(sign)
}

#[inline(always)]
fn cos_kernel(x: f64x4) -> f64x4 {
    let (s, c, q) = sincos_reduced(x);
    let v = lane_mask(q, 1).select(s, c);
    let sign = ((q + u64x4::splat(1)) & u64x4::splat(2)) << 62;
    v ^ from_bits(sign)
}

#[inline(always)]
fn tan_kernel(x: f64x4) -> f64x4 {
    let (s, c, q) = sincos_reduced(x);
    let odd = lane_mask(q, 1);
    // tan(r + j*pi/2) = tan r for even j, -cos r / sin r for odd j. sin r is
    // never 0 for odd j (pi/2 is irrational), so the division is safe.
    let t = odd.select(c, s) / odd.select(s, c);
    let sign = ((q & u64x4::splat(1)) << 63) ^ (bits(x) & u64x4::splat(SIGN));
    t ^ from_bits(sign)
}

#[inline(always)]
fn trig_ok(x: f64x4) -> bool {
    HAS_FMA && x.abs().simd_le(splat(TRIG_MAX)).all()
}

// ---------------------------------------------------------------------------
// exp kernel pieces (f64)
// ---------------------------------------------------------------------------

const LOG2_E: f64 = core::f64::consts::LOG2_E;
/// ln 2 with 42 significant bits, so `j * LN2_HI` is exact for |j| < 2^11.
const LN2_HI: f64 = 0.693_147_180_559_890_3;
/// ln 2 - LN2_HI (the remaining error is ~2e-31).
const LN2_LO: f64 = 5.497_923_018_708_371e-14;

/// Taylor coefficients 1/k!, k = 2..=13, of e^f - 1 - f. On |f| <= ln2/2 the
/// truncation error is ~4e-18 relative, well below half an ulp.
const EXP_C: [f64; 12] = [
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

/// Splits x = j*ln2 + f with |f| <= ~ln2/2; j integral. Valid for |x| < 1400.
#[inline(always)]
fn exp_reduce(x: f64x4) -> (f64x4, f64x4) {
    let j = (x * splat(LOG2_E)).round_ties_even();
    let f = j.mul_neg_add(splat(LN2_HI), x);
    let f = j.mul_neg_add(splat(LN2_LO), f);
    (f, j)
}

/// e^f - 1 for |f| <= ~ln2/2.
#[inline(always)]
fn expm1_poly(f: f64x4) -> f64x4 {
    (f * f).mul_add(poly(f, &EXP_C), f)
}

/// 2^j for integral j in [-1022, 1023], built directly in the exponent field.
#[inline(always)]
fn pow2i(j: f64x4) -> f64x4 {
    // j + 2^52 + 1023 holds j + 1023 in its low mantissa bits.
    from_bits(bits(j + splat(4_503_599_627_370_496.0 + 1023.0)) << 52)
}

/// Fast-path range of exp: results stay normal and finite, and the scale 2^j
/// stays in [2^-1021, 2^1023] (exp(-708) ~ 3.3e-308 > f64::MIN_POSITIVE,
/// exp(709) ~ 8.2e307). Outside it libm handles overflow and gradual underflow.
const EXP_LO: f64 = -708.0;
const EXP_HI: f64 = 709.0;

#[inline(always)]
fn exp_kernel(x: f64x4) -> f64x4 {
    let (f, j) = exp_reduce(x);
    (expm1_poly(f) + splat(1.0)) * pow2i(j)
}

/// |x| above which tanh(x) rounds to +-1 in f64 (e^-2x < 2^-55).
const TANH_SAT: f64 = 19.1;

/// tanh via t = expm1(2|x|): tanh|x| = t / (t + 2). The expm1 is formed as
/// 2^j * (p + (1 - 2^-j)) with p = e^f - 1, which has no cancellation for
/// j >= 1 and is exactly p for j = 0, so small arguments keep full relative
/// accuracy down to subnormals.
#[inline(always)]
fn tanh_kernel(x: f64x4) -> f64x4 {
    let a = x.abs();
    let sat = a.simd_gt(splat(TANH_SAT));
    let xx = (a + a).fast_min(splat(2.0 * TANH_SAT + 2.0));
    let (f, j) = exp_reduce(xx);
    let p = expm1_poly(f);
    let t = pow2i(j) * (p + (splat(1.0) - pow2i(-j)));
    let th = t / (t + splat(2.0));
    sat.select(splat(1.0), th).copysign(x)
}

// ---------------------------------------------------------------------------
// pow kernel (f64): double-double log, then exp of a double-double
// ---------------------------------------------------------------------------

/// Bits of sqrt(1/2): mantissas are normalised into [sqrt(1/2), sqrt(2)).
const SQRT_HALF_BITS: u64 = 0x3FE6_A09E_667F_3BCD;
/// 2/3 as a double-double.
const TWO_THIRDS_HI: f64 = 0.666_666_666_666_666_6;
const TWO_THIRDS_LO: f64 = 3.700_743_415_417_188e-17;
/// Taylor coefficients 2/(2k+1), k = 2..=12, of (2 atanh(s) - 2s - 2s^3/3)/s^5
/// in z = s^2. With |s| <= 0.1716 the first omitted term is ~2^-71 relative.
const LOG_C: [f64; 11] = [
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

/// Error-free sum, valid when |a| >= |b| (or a == 0).
#[inline(always)]
fn fast_two_sum(a: f64x4, b: f64x4) -> (f64x4, f64x4) {
    let s = a + b;
    (s, b - (s - a))
}

/// ln(x) as hi + lo with ~2^-66 relative error, for positive normal finite x.
#[inline(always)]
fn ln_dd(x: f64x4) -> (f64x4, f64x4) {
    // x = 2^e * m with m in [sqrt(1/2), sqrt(2)). The 2^62 offset keeps the
    // subtraction non-negative so a logical shift extracts e + 1024.
    let ix = bits(x);
    let tmp = ix - u64x4::splat(SQRT_HALF_BITS) + u64x4::splat(1 << 62);
    let eb = tmp >> 52;
    let m = from_bits(ix - (eb << 52) + u64x4::splat(1024 << 52));
    let e = from_bits(eb | u64x4::splat(0x4330_0000_0000_0000))
        - splat(4_503_599_627_370_496.0 + 1024.0);

    // s = (m - 1) / (m + 1) as a double-double; m - 1 is exact (Sterbenz),
    // m + 1 is split exactly because m < 2.
    let num = m - splat(1.0);
    let (dh, dl) = fast_two_sum(splat(1.0), m);
    let sh = num / dh;
    let rem = sh.mul_neg_add(dh, num);
    let rem = sh.mul_neg_add(dl, rem);
    let sl = rem / dh;

    // ln m = 2s + (2/3) s^3 + s^5 R(s^2); the first two terms in double-double.
    let z = sh * sh;
    let zl = sh.mul_sub(sh, z) + splat(2.0) * sh * sl;
    let s3h = z * sh;
    let s3l = z.mul_sub(sh, s3h) + zl.mul_add(sh, z * sl);
    let t3h = s3h * splat(TWO_THIRDS_HI);
    let t3l = s3h.mul_sub(splat(TWO_THIRDS_HI), t3h)
        + s3h.mul_add(splat(TWO_THIRDS_LO), s3l * splat(TWO_THIRDS_HI));
    let tail = (s3h * z) * poly(z, &LOG_C);

    // e*ln2 + 2s + (2/3)s^3 + tail; magnitudes decrease left to right.
    let (h, l1) = fast_two_sum(e * splat(LN2_HI), sh + sh);
    let (h, l2) = fast_two_sum(h, t3h);
    let lo = (l1 + l2) + ((sl + sl) + t3l + tail + e * splat(LN2_LO));
    fast_two_sum(h, lo)
}

/// x^y for x positive normal finite, y finite, and |y ln x| within the exp
/// fast range; returns `None` otherwise.
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
    // e^(ph + pl): reduce ph exactly, fold pl and the reduction remainder in,
    // keep the rounding error of that sum as a first-order correction.
    let j = (ph * splat(LOG2_E)).round_ties_even();
    let fh = j.mul_neg_add(splat(LN2_HI), ph);
    let fl = j.mul_neg_add(splat(LN2_LO), pl);
    let f = fh + fl;
    let f_err = (fh - f) + fl;
    let p = expm1_poly(f);
    let e = splat(1.0) + (p + f_err.mul_add(p, f_err));
    Some(e * pow2i(j))
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

/// `out[i] = x[i].ln()`; vector path (`wide`'s ln, ~1 ulp) for positive
/// normal finite x. `wide` maps subnormals to -inf, so those go scalar.
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

/// Runs an f64 kernel on 4 widened f32 lanes and rounds the result once.
#[inline(always)]
fn via_f64(
    a: [f32; 4],
    ok: impl Fn(f64x4) -> bool,
    k: impl Fn(f64x4) -> f64x4,
) -> Option<[f32; 4]> {
    let v = widen(a);
    ok(v).then(|| narrow(k(v)))
}

/// `out[i] = x[i].sin()`; evaluated with the f64 kernel (so arguments up to
/// 2^30, e.g. a 5 Hz sine over 1e5 s, stay within 1 ulp).
pub fn sin_f32(x: &[f32], out: &mut [f32]) {
    map1(x, out, |a| via_f64(a, trig_ok, sin_kernel), f32::sin);
}

/// `out[i] = x[i].cos()`; f64 kernel, see [`sin_f32`].
pub fn cos_f32(x: &[f32], out: &mut [f32]) {
    map1(x, out, |a| via_f64(a, trig_ok, cos_kernel), f32::cos);
}

/// `out[i] = x[i].tan()`; f64 kernel, see [`sin_f32`].
pub fn tan_f32(x: &[f32], out: &mut [f32]) {
    map1(x, out, |a| via_f64(a, trig_ok, tan_kernel), f32::tan);
}

/// Fast-path range of the f32 exp: results stay normal and finite
/// (exp(-87) ~ 1.6e-38 > f32::MIN_POSITIVE, exp(88.5) ~ 2.7e38 < f32::MAX).
const EXP_LO_F32: f32 = -87.0;
const EXP_HI_F32: f32 = 88.5;

/// `out[i] = x[i].exp()`; `wide`'s f32 kernel for x in [-87, 88.5].
pub fn exp_f32(x: &[f32], out: &mut [f32]) {
    map1(
        x,
        out,
        |a: [f32; 8]| {
            let v = f32x8::new(a);
            let ok = (v.simd_ge(f32x8::splat(EXP_LO_F32)) & v.simd_le(f32x8::splat(EXP_HI_F32)))
                .all();
            ok.then(|| v.exp().to_array())
        },
        f32::exp,
    );
}

/// `out[i] = x[i].ln()`; `wide`'s f32 kernel for positive normal finite x.
pub fn ln_f32(x: &[f32], out: &mut [f32]) {
    map1(
        x,
        out,
        |a: [f32; 8]| {
            let v = f32x8::new(a);
            let ok = (v.simd_ge(f32x8::splat(f32::MIN_POSITIVE)) & v.simd_le(f32x8::splat(f32::MAX)))
                .all();
            ok.then(|| v.ln().to_array())
        },
        f32::ln,
    );
}

/// `out[i] = x[i].tanh()`; f64 kernel (`wide`'s f32 tanh is ~4 ulp).
pub fn tanh_f32(x: &[f32], out: &mut [f32]) {
    map1(
        x,
        out,
        |a| via_f64(a, |v| HAS_FMA && v.simd_eq(v).all(), tanh_kernel),
        f32::tanh,
    );
}

/// ln of f32 inputs is at most ~104 in magnitude, so any |y ln x| beyond this
/// gives 0 or inf in f32 already; clamping keeps the f64 exp in range.
const POW_F32_CLAMP: f64 = 200.0;

/// `out[i] = x[i].powf(y[i])`; evaluated as exp(y ln x) in f64 (error
/// ~2^-44 relative at worst, far below an f32 ulp), for finite positive x
/// (f32 subnormals are normal in f64) and finite y; overflow to inf and
/// underflow to subnormals/zero come out of the final rounding to f32.
pub fn powf_f32(x: &[f32], y: &[f32], out: &mut [f32]) {
    map2(
        x,
        y,
        out,
        |a: [f32; 4], b: [f32; 4]| {
            let xv = widen(a);
            let yv = widen(b);
            let ok = HAS_FMA
                && (xv.simd_gt(splat(0.0))
                    & xv.simd_le(splat(f64::from(f32::MAX)))
                    & yv.abs().simd_le(splat(f64::from(f32::MAX))))
                .all();
            if !ok {
                return None;
            }
            let t = (yv * xv.ln()).fast_max(splat(-POW_F32_CLAMP)).fast_min(splat(POW_F32_CLAMP));
            Some(narrow(exp_kernel(t)))
        },
        f32::powf,
    );
}
