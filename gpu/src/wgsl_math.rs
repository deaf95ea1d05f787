//! Transcendental functions in WGSL: the CPU's vector kernels
//! (`accel_core::kernel::vmath`) written out operation for operation, from
//! the same constants. Each float operation is rounded on its own (see
//! [`crate::spirv`]) and `fma` is fused on both sides (emulated exactly where
//! the device splits it, see [`Fma`]), so sin, cos, tan, exp, tanh and pow
//! give the CPU's bits. The logarithm is the double-double one
//! of `pow` rounded to a double (within 1 ulp of `std`, where the CPU's is
//! `wide`'s, also within 1 ulp).
//!
//! Like the CPU's kernels they have a fast range (finite arguments, results
//! that neither overflow nor become subnormal, trig arguments up to 2^30);
//! the CPU leaves the rest to `std`. A GPU kernel marks an element outside
//! that range, and the whole chunk is then computed on the CPU, so results
//! never depend on which device ran them beyond the documented bounds.

use std::fmt::Write;

use accel_core::kernel::vmath as v;

/// A WGSL literal with exactly the bits of `x`.
fn lit(x: f64) -> String {
    format!("bitcast<f64>({}lu)", x.to_bits())
}

/// `fn name(z: f64) -> f64`: `c[0] + z c[1] + z^2 c[2] + ...` in Estrin
/// form, with the CPU's pairing (`vmath::poly`).
fn estrin(name: &str, c: &[f64]) -> String {
    let mut src = format!("fn {name}(z: f64) -> f64 {{\n");
    let mut t: Vec<String> = c.iter().map(|&x| lit(x)).collect();
    let mut p = "z".to_string();
    let mut level = 0;
    while t.len() > 1 {
        let next: Vec<String> = (0..t.len().div_ceil(2))
            .map(|i| {
                if 2 * i + 1 < t.len() {
                    let name = format!("t{level}_{i}");
                    let _ = writeln!(
                        src,
                        "    let {name} = fused({}, {p}, {});",
                        t[2 * i + 1],
                        t[2 * i]
                    );
                    name
                } else {
                    t[2 * i].clone()
                }
            })
            .collect();
        if next.len() > 1 {
            let _ = writeln!(src, "    let p{level} = {p} * {p};");
            p = format!("p{level}");
        }
        t = next;
        level += 1;
    }
    let _ = writeln!(src, "    return {};\n}}", t[0]);
    src
}

/// How the device computes `fma`: fused (one rounding, as on the CPU) or as
/// a multiply and an add (Mesa's lavapipe lowers it so), in which case the
/// kernels use an exact emulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fma {
    Native,
    Emulated,
}

/// `fused(a, b, c)`: `a * b + c` rounded once. Emulated by the exact product
/// (Veltkamp splitting, Dekker's product) and Boldo and Melquiond's
/// rounding: `RN(th + RO(tl + ul))` with `c + uh = th + tl` error-free and
/// RO rounding to odd, which is exact for the finite, non-extreme operands
/// of the fast ranges (their elements are flagged otherwise).
const FUSED_NATIVE: &str = "fn fused(a: f64, b: f64, c: f64) -> f64 {
    return fma(a, b, c);
}
";
const FUSED_EMULATED: &str = "fn veltkamp(a: f64) -> vec2<f64> {
    let c = 134217729.0lf * a;
    let hi = c - (c - a);
    return vec2<f64>(hi, a - hi);
}
fn two_prod(a: f64, b: f64) -> vec2<f64> {
    let p = a * b;
    let sa = veltkamp(a);
    let sb = veltkamp(b);
    let err = (((sa.x * sb.x - p) + sa.x * sb.y) + sa.y * sb.x) + sa.y * sb.y;
    return vec2<f64>(p, err);
}
fn two_sum(a: f64, b: f64) -> vec2<f64> {
    let s = a + b;
    let bb = s - a;
    return vec2<f64>(s, (a - (s - bb)) + (b - bb));
}
fn add_round_odd(x: f64, y: f64) -> f64 {
    let st = two_sum(x, y);
    let bits = bitcast<u64>(st.x);
    if (st.y == 0.0lf || (bits & 1lu) == 1lu) {
        return st.x;
    }
    // Even and inexact: one ulp towards the exact sum makes the last bit odd.
    return bitcast<f64>(select(bits - 1lu, bits + 1lu, (st.y > 0.0lf) == (st.x > 0.0lf)));
}
fn fused(a: f64, b: f64, c: f64) -> f64 {
    let u = two_prod(a, b);
    let t = two_sum(c, u.x);
    return t.x + add_round_odd(t.y, u.y);
}
";

/// 1/ln 2 and 1/ln 10 as double-doubles (hi, lo): `log2` and `log10` are the
/// double-double `ln` times these, rounded once.
const INV_LN2: (f64, f64) = (std::f64::consts::LOG2_E, 2.035_527_374_093_103_3e-17);
const INV_LN10: (f64, f64) = (std::f64::consts::LOG10_E, 1.098_319_650_216_765e-17);

/// π/2 and π/6 as double-doubles (hi, lo), for `atan`'s reductions.
const FRAC_PI_2_DD: (f64, f64) = (std::f64::consts::FRAC_PI_2, 6.123_233_995_736_766e-17);
const FRAC_PI_6_DD: (f64, f64) = (std::f64::consts::FRAC_PI_6, -5.360_408_832_255_455e-17);

/// atan u = u + u z Q(z), z = u², for |u| <= tan(π/12): the alternating
/// series' coefficients -1/3, 1/5, -1/7, … (the fifteenth term is far below
/// an ulp of u there).
fn atan_series() -> Vec<f64> {
    (0..15u32)
        .map(|k| {
            let sign = if k % 2 == 0 { -1.0 } else { 1.0 };
            sign / f64::from(2 * k + 3)
        })
        .collect()
}

/// asin s = s + s z A(z), z = s², for |s| <= 1/2: A's coefficients are
/// (2k)! / (4^k k!² (2k + 1)) for k = 1, 2, … (the 25th term is far below an
/// ulp of s there).
fn asin_series() -> Vec<f64> {
    let mut c = Vec::with_capacity(25);
    // (2k)! / (4^k k!²), stepped by (2k - 1) / (2k).
    let mut central = 1.0f64;
    for k in 1..=25u32 {
        central *= f64::from(2 * k - 1) / f64::from(2 * k);
        c.push(central / f64::from(2 * k + 1));
    }
    c
}

/// The helpers and kernels, to be appended to a shader that uses them.
pub fn library(fma: Fma) -> String {
    let mut src = String::from(match fma {
        Fma::Native => FUSED_NATIVE,
        Fma::Emulated => FUSED_EMULATED,
    });
    src.push_str(&estrin("poly_sin_half", &v::SIN_HALF_Q));
    src.push_str(&estrin("poly_sin", &v::SIN_C));
    src.push_str(&estrin("poly_cos", &v::COS_C));
    src.push_str(&estrin("poly_exp", &v::EXP_C));
    src.push_str(&estrin("poly_log", &v::LOG_C));
    src.push_str(&estrin("poly_sinh", &v::SINH_C));
    src.push_str(&estrin("poly_atan", &atan_series()));
    src.push_str(&estrin("poly_asin", &asin_series()));
    let consts = [
        ("TWO_52", v::TWO_52),
        ("POW2_BIAS", v::TWO_52 + 1023.0),
        ("SPLIT_BIAS", v::TWO_52 + 1024.0),
        ("TRIG_MAX", v::TRIG_MAX),
        ("FRAC_1_PI", v::FRAC_1_PI),
        ("FRAC_2_PI", v::FRAC_2_PI),
        ("PIO2_1", v::PIO2_1),
        ("PIO2_2", v::PIO2_2),
        ("PIO2_3", v::PIO2_3),
        ("SIN_HALF_C0", v::SIN_HALF_C0),
        ("LOG2_E", v::LOG2_E),
        ("LN2_HI", v::LN2_HI),
        ("LN2_LO", v::LN2_LO),
        ("EXP_LO", v::EXP_LO),
        ("EXP_HI", v::EXP_HI),
        ("TANH_SAT", v::TANH_SAT),
        ("TANH_CLAMP", 2.0 * v::TANH_SAT + 2.0),
        ("TWO_THIRDS_HI", v::TWO_THIRDS_HI),
        ("TWO_THIRDS_LO", v::TWO_THIRDS_LO),
        ("MIN_NORMAL", f64::MIN_POSITIVE),
        ("HYPOT_LO", accel_core::kernel::hypot::SAFE_LO),
        ("HYPOT_HI", accel_core::kernel::hypot::SAFE_HI),
        ("MAX_FINITE", f64::MAX),
        ("INV_LN2_HI", INV_LN2.0),
        ("INV_LN2_LO", INV_LN2.1),
        ("INV_LN10_HI", INV_LN10.0),
        ("INV_LN10_LO", INV_LN10.1),
        ("PI_2_HI", FRAC_PI_2_DD.0),
        ("PI_2_LO", FRAC_PI_2_DD.1),
        ("PI_6_HI", FRAC_PI_6_DD.0),
        ("PI_6_LO", FRAC_PI_6_DD.1),
        ("PI_HI", std::f64::consts::PI),
        ("PI_LO", 1.224_646_799_147_353_2e-16),
        ("SQRT3", 3f64.sqrt()),
        ("TAN_PI_12", 2.0 - 3f64.sqrt()),
    ];
    for (name, value) in consts {
        let _ = writeln!(src, "fn {name}() -> f64 {{ return {}; }}", lit(value));
    }
    let _ = writeln!(
        src,
        "const SQRT_HALF_BITS: u64 = {}lu;\nconst SIGN64: u64 = {}lu;",
        v::SQRT_HALF_BITS,
        v::SIGN64
    );
    src.push_str(KERNELS);
    src
}

/// The kernels of `vmath`, scalar. `a.mul_add(b, c)` is `fma(a, b, c)`,
/// `a.mul_sub(b, c)` is `fma(a, b, -c)`, `a.mul_neg_add(b, c)` is
/// `fma(-a, b, c)`.
const KERNELS: &str = r#"fn int_bits(v: f64) -> u64 {
    return bitcast<u64>(v + TWO_52());
}
fn flip_sign(x: f64, sign: u64) -> f64 {
    return bitcast<f64>(bitcast<u64>(x) ^ sign);
}
fn fast_two_sum(a: f64, b: f64) -> vec2<f64> {
    let s = a + b;
    return vec2<f64>(s, b - (s - a));
}
fn reduce_pio2(xa: f64, j: f64) -> f64 {
    let r = fused(-j, PIO2_1(), xa);
    let r2 = fused(-j, PIO2_2(), r);
    return fused(-j, PIO2_3(), r2);
}
fn sin_half(r: f64) -> f64 {
    let c0 = SIN_HALF_C0();
    let z = r * r;
    let r3 = r * z;
    let r3_lo = fused(r, fused(r, r, -z), fused(r, z, -r3));
    let t_hi = r3 * c0;
    let t_rest = fused(r3 * z, poly_sin_half(z), fused(r3_lo, c0, fused(r3, c0, -t_hi)));
    let se = fast_two_sum(r, t_hi);
    return se.x + (se.y + t_rest);
}
fn trig_ok(x: f64) -> bool {
    return abs(x) <= TRIG_MAX();
}
fn sin_f64(x: f64) -> f64 {
    let xa = abs(x);
    let k = round_even_f64(xa * FRAC_1_PI());
    let s = sin_half(reduce_pio2(xa, k + k));
    return flip_sign(s, (int_bits(k) << 63u) ^ (bitcast<u64>(x) & SIGN64));
}
fn cos_f64(x: f64) -> f64 {
    let xa = abs(x);
    let k = abs(round_even_f64(fused(xa, FRAC_1_PI(), -0.5lf)));
    let s = sin_half(reduce_pio2(xa, fused(k, 2.0lf, 1.0lf)));
    return flip_sign(s, (int_bits(k) + 1lu) << 63u);
}
fn tan_f64(x: f64) -> f64 {
    let xa = abs(x);
    let j = round_even_f64(xa * FRAC_2_PI());
    let r1 = fused(-j, PIO2_1(), xa);
    let p = j * PIO2_2();
    let p_err = fused(j, PIO2_2(), -p);
    let r0 = r1 - p;
    let rb = r0 - r1;
    let e = (r1 - (r0 - rb)) - (p + rb);
    let rr = fast_two_sum(r0, fused(-j, PIO2_3(), e - p_err));
    let r = rr.x;
    let r_lo = rr.y;
    let z = r * r;
    let s = fused(r * z, poly_sin(z), r_lo) + r;
    let hz = 0.5lf * z;
    let w = 1.0lf - hz;
    let z_err = fused(r, r, -z);
    let tail = ((1.0lf - w) - hz) - fused(0.5lf, z_err, r * r_lo);
    let c = w + fused(z * z, poly_cos(z), tail);
    let q = int_bits(j);
    let odd = (q & 1lu) == 1lu;
    let t = select(s, c, odd) / select(c, s, odd);
    return flip_sign(t, (q << 63u) ^ (bitcast<u64>(x) & SIGN64));
}
fn exp_reduce(x: f64) -> vec3<f64> {
    let j = round_even_f64(x * LOG2_E());
    let f_hi = fused(-j, LN2_HI(), x);
    let f = fused(-j, LN2_LO(), f_hi);
    let f_lo = fused(-j, LN2_LO(), f_hi - f);
    return vec3<f64>(f, f_lo, j);
}
fn expm1_reduced(f: f64, f_lo: f64) -> f64 {
    let p = fused(f * f, poly_exp(f), f);
    return p + fused(f_lo, p, f_lo);
}
fn pow2i(j: f64) -> f64 {
    return bitcast<f64>(bitcast<u64>(j + POW2_BIAS()) << 52u);
}
fn exp_ok(x: f64) -> bool {
    return x >= EXP_LO() && x <= EXP_HI();
}
fn exp_f64(x: f64) -> f64 {
    let r = exp_reduce(x);
    return (expm1_reduced(r.x, r.y) + 1.0lf) * pow2i(r.z);
}
fn sinh_cosh_f64(x: f64) -> vec2<f64> {
    let e = exp_f64(x);
    let r = 1.0lf / e;
    let c = (e + r) * 0.5lf;
    let z = x * x;
    let small = x + (x * z) * poly_sinh(z);
    let big = (e - r) * 0.5lf;
    return vec2<f64>(select(big, small, abs(x) < 1.0lf), c);
}
fn tanh_ok(x: f64) -> bool {
    return (bitcast<u64>(x) & 0x7ffffffffffffffflu) <= 0x7ff0000000000000lu;
}
fn tanh_f64(x: f64) -> f64 {
    let a = abs(x);
    let sat = a > TANH_SAT();
    let xx = min(a + a, TANH_CLAMP());
    let r = exp_reduce(xx);
    let f = r.x;
    let j = r.z;
    let pp = fast_two_sum(f, (f * f) * poly_exp(f));
    let p_hi = pp.x;
    let p_lo = pp.y + fused(r.y, p_hi, r.y);
    let uu = fast_two_sum(1.0lf - pow2i(-j), p_hi);
    let scale = pow2i(j);
    let th = uu.x * scale;
    let tl = (uu.y + p_lo) * scale;
    let dd = fast_two_sum(max(th, 2.0lf), min(th, 2.0lf));
    let d = dd.x;
    let d_lo = dd.y + tl;
    let inv = 1.0lf / d;
    let q = th * inv;
    let res = fused(-q, d, th) + fused(-q, d_lo, tl);
    let t = select(fused(res, inv, q), 1.0lf, sat);
    return bitcast<f64>((bitcast<u64>(t) & ~SIGN64) | (bitcast<u64>(x) & SIGN64));
}
fn split_exponent(x: f64) -> vec2<f64> {
    let ix = bitcast<u64>(x);
    let tmp = ix - SQRT_HALF_BITS + (1lu << 62u);
    let eb = tmp >> 52u;
    let m = bitcast<f64>(ix - (eb << 52u) + (1024lu << 52u));
    let e = bitcast<f64>(eb | 0x4330000000000000lu) - SPLIT_BIAS();
    return vec2<f64>(e, m);
}
fn ln_dd(x: f64) -> vec2<f64> {
    let em = split_exponent(x);
    let e = em.x;
    let m = em.y;
    let num = m - 1.0lf;
    let dd = fast_two_sum(1.0lf, m);
    let dh = dd.x;
    let dl = dd.y;
    let inv = 1.0lf / dh;
    let sh = num * inv;
    let rem = fused(-sh, dl, fused(-sh, dh, num));
    let sl = rem * inv;
    let z = sh * sh;
    let zl = fused(sh, sh, -z) + 2.0lf * sh * sl;
    let s3h = z * sh;
    let s3l = fused(z, sh, -s3h) + fused(zl, sh, z * sl);
    let t3h = s3h * TWO_THIRDS_HI();
    let t3l = fused(s3h, TWO_THIRDS_HI(), -t3h) + fused(s3h, TWO_THIRDS_LO(), s3l * TWO_THIRDS_HI());
    let tail = (s3h * z) * poly_log(z);
    let h1 = fast_two_sum(e * LN2_HI(), sh + sh);
    let h2 = fast_two_sum(h1.x, t3h);
    let lo = (h1.y + h2.y) + ((sl + sl) + t3l + tail + e * LN2_LO());
    return fast_two_sum(h2.x, lo);
}
fn hypot_ok(x: f64, y: f64) -> bool {
    let ax = abs(x);
    let ay = abs(y);
    let hi = max(ax, ay);
    let lo = min(ax, ay);
    // Both zero: the modulus is +0, as std's.
    return hi == 0.0lf || (hi >= HYPOT_LO() && hi <= HYPOT_HI() && (lo == 0.0lf || lo >= HYPOT_LO()));
}
fn hypot_f64(x: f64, y: f64) -> f64 {
    let ax = abs(x);
    let ay = abs(y);
    let hi = select(ay, ax, ax >= ay);
    let lo = select(ax, ay, ax >= ay);
    let h = sqrt(fused(hi, hi, lo * lo));
    let h_sq = h * h;
    let x_sq = hi * hi;
    let e = fused(-lo, lo, h_sq - x_sq) + fused(h, h, -h_sq) - fused(hi, hi, -x_sq);
    return select(h - e / (2.0lf * h), 0.0lf, hi == 0.0lf);
}
fn log_ok(x: f64) -> bool {
    return x >= MIN_NORMAL() && x <= MAX_FINITE();
}
fn log_f64(x: f64) -> f64 {
    return ln_dd(x).x;
}
fn log_scaled(x: f64, c_hi: f64, c_lo: f64) -> f64 {
    let l = ln_dd(x);
    let h = l.x * c_hi;
    return h + (fused(l.x, c_hi, -h) + fused(l.x, c_lo, l.y * c_hi));
}
fn log2_f64(x: f64) -> f64 {
    return log_scaled(x, INV_LN2_HI(), INV_LN2_LO());
}
fn log10_f64(x: f64) -> f64 {
    return log_scaled(x, INV_LN10_HI(), INV_LN10_LO());
}
fn log1p_ok(x: f64) -> bool {
    let normal = x == 0.0lf || abs(x) >= MIN_NORMAL();
    return normal && x > -1.0lf && 1.0lf + x >= MIN_NORMAL() && x <= MAX_FINITE();
}
fn expm1_ok(x: f64) -> bool {
    return exp_ok(x) && (x == 0.0lf || abs(x) >= MIN_NORMAL());
}
fn log1p_f64(x: f64) -> f64 {
    // u + e = 1 + x exactly; ln(u + e) = ln u + e/u to far below an ulp.
    let d = select(fast_two_sum(1.0lf, x), fast_two_sum(x, 1.0lf), x > 1.0lf);
    let l = ln_dd(d.x);
    return select(l.x + (l.y + d.y / d.x), x, d.x == 1.0lf);
}
fn expm1_f64(x: f64) -> f64 {
    // 2^j (1 + expm1 f) - 1: expm1 f itself when j = 0, rounded once for
    // |j| <= 53 (where 2^j - 1 is exact and an emulated fma cannot
    // overflow), and exp(x) - 1 beyond, where one of the two is below an
    // ulp of the other.
    let r = exp_reduce(x);
    let m = expm1_reduced(r.x, r.y);
    let t = pow2i(r.z);
    let near = fused(t, m, t - 1.0lf);
    let far = (m + 1.0lf) * t - 1.0lf;
    let r0 = select(select(near, far, abs(r.z) > 53.0lf), m, r.z == 0.0lf);
    // expm1(-0) is -0, as the C library's.
    return select(r0, x, x == 0.0lf);
}
fn atan_ok(x: f64) -> bool {
    let a = abs(x);
    return a <= MAX_FINITE() && (a == 0.0lf || a >= MIN_NORMAL());
}
fn atan_f64(x: f64) -> f64 {
    // atan a = π/2 - atan(1/a) above 1; atan t = π/6 + atan u with
    // u = (t√3 - 1)/(t + √3) above tan(π/12); the series below.
    let a = abs(x);
    let inv = a > 1.0lf;
    let t = select(a, 1.0lf / a, inv);
    let big = t > TAN_PI_12();
    let u = select(t, fused(t, SQRT3(), -1.0lf) / (t + SQRT3()), big);
    let z = u * u;
    let r = fused(u * z, poly_atan(z), u);
    let r2 = select(r, PI_6_HI() + (r + PI_6_LO()), big);
    let r3 = select(r2, PI_2_HI() - (r2 - PI_2_LO()), inv);
    return bitcast<f64>((bitcast<u64>(r3) & ~SIGN64) | (bitcast<u64>(x) & SIGN64));
}
fn atan2_ok(y: f64, x: f64) -> bool {
    // Zeros are exact below; NaN, infinities, subnormals and quotients
    // below the normal range are the CPU's.
    if (isnan_f64(x) || isnan_f64(y)) {
        return false;
    }
    let ay = abs(y);
    let ax = abs(x);
    let hi = select(ay, ax, ax >= ay);
    let lo = select(ax, ay, ax >= ay);
    let finite = hi <= MAX_FINITE();
    if (lo == 0.0lf) {
        return hi == 0.0lf || (finite && hi >= MIN_NORMAL());
    }
    return finite && lo >= MIN_NORMAL() && lo / hi >= MIN_NORMAL();
}
fn atan2_f64(y: f64, x: f64) -> f64 {
    // a = atan of the smaller part over the larger; then a, π/2 - a
    // (|y| > |x|), π - a (x's sign negative, -0 included) or π/2 + a (both),
    // each rounded once from π's double-double, with y's sign; a zero y
    // gives ±0 or ±π exactly.
    let ay = abs(y);
    let ax = abs(x);
    let steep = ay > ax;
    let a = atan_f64(select(ay, ax, steep) / select(ax, ay, steep));
    let west = (bitcast<u64>(x) & SIGN64) != 0lu;
    let east = select(a, PI_2_HI() - (a - PI_2_LO()), steep);
    var r = select(east, select(PI_HI() - (a - PI_LO()), PI_2_HI() + (a + PI_2_LO()), steep), west);
    if (ay == 0.0lf) {
        r = select(0.0lf, PI_HI(), west);
    }
    return bitcast<f64>((bitcast<u64>(r) & ~SIGN64) | (bitcast<u64>(y) & SIGN64));
}
fn asin_small(s: f64) -> f64 {
    let z = s * s;
    return fused(s * z, poly_asin(z), s);
}
fn asin_ok(x: f64) -> bool {
    let a = abs(x);
    return a <= 1.0lf && (a == 0.0lf || a >= MIN_NORMAL());
}
fn asin_f64(x: f64) -> f64 {
    // The series up to 1/2; above, π/2 - 2 asin(sqrt((1 - a)/2)), where
    // 1 - a and the halving are exact.
    let a = abs(x);
    let q = asin_small(sqrt((1.0lf - a) * 0.5lf));
    let r = select(asin_small(a), PI_2_HI() - (2.0lf * q - PI_2_LO()), a > 0.5lf);
    return bitcast<f64>((bitcast<u64>(r) & ~SIGN64) | (bitcast<u64>(x) & SIGN64));
}
fn acos_ok(x: f64) -> bool {
    return abs(x) <= 1.0lf;
}
fn acos_f64(x: f64) -> f64 {
    // π/2 - asin x up to 1/2; 2 asin(sqrt((1 - x)/2)) above, and
    // π - 2 asin(sqrt((1 + x)/2)) below -1/2 (exact differences there).
    let q = 2.0lf * asin_small(sqrt((1.0lf - abs(x)) * 0.5lf));
    let mid = PI_2_HI() - (asin_small(x) - PI_2_LO());
    let far = select(q, PI_HI() - (q - PI_LO()), x < 0.0lf);
    return select(mid, far, abs(x) > 0.5lf);
}
fn pow_ok(x: f64, y: f64) -> bool {
    if (!(log_ok(x) && abs(y) <= MAX_FINITE())) {
        return false;
    }
    let l = ln_dd(x);
    let ph = y * l.x;
    return exp_ok(ph);
}
fn pow_f64(x: f64, y: f64) -> f64 {
    let l = ln_dd(x);
    let ph = y * l.x;
    let pl = fused(y, l.x, -ph) + y * l.y;
    let j = round_even_f64(ph * LOG2_E());
    let f_hi = fused(-j, LN2_HI(), ph);
    let f_lo = fused(-j, LN2_LO(), pl);
    let f = f_hi + f_lo;
    let f_err = (f_hi - f) + f_lo;
    return (expm1_reduced(f, f_err) + 1.0lf) * pow2i(j);
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomials_pair_terms_as_the_cpu_does() {
        let src = estrin("p", &[1.0, 2.0, 3.0]);
        let one = lit(1.0);
        let (two, three) = (lit(2.0), lit(3.0));
        assert_eq!(
            src,
            format!(
                "fn p(z: f64) -> f64 {{\n    let t0_0 = fused({two}, z, {one});\n    let p0 = z * z;\n    let t1_0 = fused({three}, p0, t0_0);\n    return t1_0;\n}}\n"
            )
        );
    }
}
