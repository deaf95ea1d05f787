//! Elementwise operations on complex blocks (split real and imaginary planes).
//! Transcendentals use num-complex's principal branches, as NumPy does;
//! `exp` uses the vector kernels within their fast range (as the GPU does).

use num_complex::Complex64;

use super::vmath;
use crate::op::{BinaryOp, UnaryOp};

/// Applies `f` to every element, writing both planes.
#[inline]
fn each(
    re: &[f64],
    im: &[f64],
    ore: &mut [f64],
    oim: &mut [f64],
    f: impl Fn(Complex64) -> Complex64,
) {
    for k in 0..re.len() {
        let z = f(Complex64::new(re[k], im[k]));
        ore[k] = z.re;
        oim[k] = z.im;
    }
}

// The inverse trigonometric functions follow W. Kahan, "Branch cuts for complex
// elementary functions" (1987): built from square roots of 1 ± z, asinh and
// log1p, they keep full relative precision near zero and near the real axis,
// where the textbook logarithm forms cancel.

/// `sqrt(1 - z)` and `sqrt(1 + z)`, the imaginary parts' signed zeros kept
/// (`0.0 + -0.0` would lose them and pick the wrong side of a branch cut).
fn roots(z: Complex64) -> (Complex64, Complex64) {
    (
        Complex64::new(1.0 - z.re, -z.im).sqrt(),
        Complex64::new(1.0 + z.re, z.im).sqrt(),
    )
}

fn asin(z: Complex64) -> Complex64 {
    let (a, b) = roots(z);
    Complex64::new(
        z.re.atan2(a.re * b.re - a.im * b.im),
        (a.re * b.im - a.im * b.re).asinh(),
    )
}

fn acos(z: Complex64) -> Complex64 {
    let (a, b) = roots(z);
    Complex64::new(2.0 * a.re.atan2(b.re), (b.re * a.im - b.im * a.re).asinh())
}

/// `atan(z) = -i atanh(iz)`, with `atanh(x + iy)` =
/// `¼ log1p(4x / ((1-x)² + y²)) + ½ i atan2(2y, (1-x)(1+x) - y²)`.
fn atan(z: Complex64) -> Complex64 {
    let (x, y) = (-z.im, z.re);
    let re = 0.25 * (4.0 * x / ((1.0 - x) * (1.0 - x) + y * y)).ln_1p();
    let im = 0.5 * (2.0 * y).atan2((1.0 - x) * (1.0 + x) - y * y);
    Complex64::new(im, -re)
}

/// NumPy 2's complex sign: `z / |z|`, 0 for 0, NaN where a part is NaN.
fn sign(z: Complex64) -> Complex64 {
    if z.re.is_nan() || z.im.is_nan() {
        return Complex64::new(f64::NAN, f64::NAN);
    }
    let r = z.re.hypot(z.im);
    if r == 0.0 {
        Complex64::new(0.0, 0.0)
    } else if r.is_infinite() {
        // Directions of infinite numbers: ±inf parts count as ±1, finite ones as 0.
        let unit = |x: f64| if x.is_infinite() { x.signum() } else { 0.0 };
        let (u, v) = (unit(z.re), unit(z.im));
        let n = u.hypot(v);
        Complex64::new(u / n, v / n)
    } else {
        Complex64::new(z.re / r, z.im / r)
    }
}

/// `e^re (cos im, sin im)` from the vector `exp`, `cos` and `sin` kernels
/// where the real part is within `exp`'s fast range and the imaginary part
/// within the trig kernels' (what the GPU computes, operation for
/// operation); `num_complex`'s elsewhere (infinities, NaN, overflow).
fn exp(re: &[f64], im: &[f64], ore: &mut [f64], oim: &mut [f64]) {
    const BLOCK: usize = 64;
    let (mut e, mut c, mut s) = ([0.0; BLOCK], [0.0; BLOCK], [0.0; BLOCK]);
    let n = re.len().min(im.len()).min(ore.len()).min(oim.len());
    for at in (0..n).step_by(BLOCK) {
        let m = BLOCK.min(n - at);
        let (r, i) = (&re[at..at + m], &im[at..at + m]);
        vmath::exp_f64(r, &mut e[..m]);
        vmath::cos_f64(i, &mut c[..m]);
        vmath::sin_f64(i, &mut s[..m]);
        for j in 0..m {
            let fast =
                (vmath::EXP_LO..=vmath::EXP_HI).contains(&r[j]) && i[j].abs() <= vmath::TRIG_MAX;
            let z = if fast {
                Complex64::new(e[j] * c[j], e[j] * s[j])
            } else {
                Complex64::new(r[j], i[j]).exp()
            };
            ore[at + j] = z.re;
            oim[at + j] = z.im;
        }
    }
}

/// Which part of z a complex trigonometric or hyperbolic function takes
/// sin and cos of (the other part's sinh and cosh).
#[derive(Clone, Copy)]
enum Trig {
    /// sin z = (sin a cosh b, cos a sinh b), z = a + bi
    Sin,
    /// cos z = (cos a cosh b, -(sin a sinh b))
    Cos,
    /// sinh z = (sinh a cos b, cosh a sin b)
    Sinh,
    /// cosh z = (cosh a cos b, sinh a sin b)
    Cosh,
    /// tan z = (sin 2a, sinh 2b) / (cos 2a + cosh 2b)
    Tan,
    /// tanh z = (sinh 2a, sin 2b) / (cosh 2a + cos 2b)
    Tanh,
}

/// Complex sin, cos, sinh, cosh, tan and tanh from the vector kernels (sin
/// and cos of one part, sinh and cosh of the other; of twice the parts for
/// tan and tanh) where those are in their fast ranges: the formulas of
/// num-complex, on the kernels the GPU writes out, so both devices give the
/// same bits. num-complex for the rest.
fn trig(f: Trig, re: &[f64], im: &[f64], ore: &mut [f64], oim: &mut [f64]) {
    const BLOCK: usize = 64;
    let mut k = [[0.0; BLOCK]; 4];
    let n = re.len().min(im.len()).min(ore.len()).min(oim.len());
    for at in (0..n).step_by(BLOCK) {
        let m = BLOCK.min(n - at);
        let (r, i) = (&re[at..at + m], &im[at..at + m]);
        // The circular part and the hyperbolic part.
        let (t, h) = match f {
            Trig::Sin | Trig::Cos | Trig::Tan => (r, i),
            Trig::Sinh | Trig::Cosh | Trig::Tanh => (i, r),
        };
        // tan and tanh take the functions of twice the parts.
        let (mut t2, mut h2) = ([0.0; BLOCK], [0.0; BLOCK]);
        let (t, h) = if matches!(f, Trig::Tan | Trig::Tanh) {
            for j in 0..m {
                (t2[j], h2[j]) = (t[j] + t[j], h[j] + h[j]);
            }
            (&t2[..m], &h2[..m])
        } else {
            (t, h)
        };
        let [s, c, sh, ch] = &mut k;
        vmath::sin_f64(t, &mut s[..m]);
        vmath::cos_f64(t, &mut c[..m]);
        vmath::sinh_cosh_f64(h, &mut sh[..m], &mut ch[..m]);
        for j in 0..m {
            let fast =
                (vmath::EXP_LO..=vmath::EXP_HI).contains(&h[j]) && t[j].abs() <= vmath::TRIG_MAX;
            let z = Complex64::new(r[j], i[j]);
            let (s, c, sh, ch) = (s[j], c[j], sh[j], ch[j]);
            let w = match (f, fast) {
                (Trig::Sin, true) => Complex64::new(s * ch, c * sh),
                (Trig::Cos, true) => Complex64::new(c * ch, -(s * sh)),
                (Trig::Sinh, true) => Complex64::new(sh * c, ch * s),
                (Trig::Cosh, true) => Complex64::new(ch * c, sh * s),
                (Trig::Tan, true) => {
                    let d = c + ch;
                    Complex64::new(s / d, sh / d)
                }
                (Trig::Tanh, true) => {
                    let d = ch + c;
                    Complex64::new(sh / d, s / d)
                }
                (Trig::Sin, false) => z.sin(),
                (Trig::Cos, false) => z.cos(),
                (Trig::Sinh, false) => z.sinh(),
                (Trig::Cosh, false) => z.cosh(),
                (Trig::Tan, false) => z.tan(),
                (Trig::Tanh, false) => z.tanh(),
            };
            ore[at + j] = w.re;
            oim[at + j] = w.im;
        }
    }
}

/// `o = op(z)` for ops whose result is complex; false for the others.
pub fn unary(op: UnaryOp, z: [&[f64]; 2], ore: &mut [f64], oim: &mut [f64]) -> bool {
    use UnaryOp::*;
    let [re, im] = z;
    match op {
        Neg => each(re, im, ore, oim, |z| -z),
        Sqrt => each(re, im, ore, oim, Complex64::sqrt),
        Exp => exp(re, im, ore, oim),
        Log => each(re, im, ore, oim, Complex64::ln),
        Log2 => each(re, im, ore, oim, Complex64::log2),
        Log10 => each(re, im, ore, oim, Complex64::log10),
        Sin => trig(Trig::Sin, re, im, ore, oim),
        Cos => trig(Trig::Cos, re, im, ore, oim),
        Tan => trig(Trig::Tan, re, im, ore, oim),
        Tanh => trig(Trig::Tanh, re, im, ore, oim),
        Sinh => trig(Trig::Sinh, re, im, ore, oim),
        Cosh => trig(Trig::Cosh, re, im, ore, oim),
        Arcsin => each(re, im, ore, oim, asin),
        Arccos => each(re, im, ore, oim, acos),
        Arctan => each(re, im, ore, oim, atan),
        Sign => each(re, im, ore, oim, sign),
        Round => each(re, im, ore, oim, |z| {
            Complex64::new(z.re.round_ties_even(), z.im.round_ties_even())
        }),
        Powi(2) => each(re, im, ore, oim, |z| z * z),
        Powi(p) => each(re, im, ore, oim, |z| z.powi(p)),
        Not | Abs | Floor | Ceil | Re | Im | IsNan | IsFinite | Log1p | Expm1 => return false,
    }
    true
}

/// `isnan` / `isfinite` of complex numbers: NaN if either part is, finite if both are.
pub fn test(op: UnaryOp, z: [&[f64]; 2], o: &mut [bool]) -> bool {
    let [re, im] = z;
    match op {
        UnaryOp::IsNan => {
            for k in 0..re.len() {
                o[k] = re[k].is_nan() || im[k].is_nan();
            }
        }
        UnaryOp::IsFinite => {
            for k in 0..re.len() {
                o[k] = re[k].is_finite() && im[k].is_finite();
            }
        }
        _ => return false,
    }
    true
}

/// NumPy's complex power: `0 ** 0` is 1, `0 ** w` is 0 for `Re w > 0`, else `exp(w ln z)`.
fn pow(z: Complex64, w: Complex64) -> Complex64 {
    if w.re == 0.0 && w.im == 0.0 {
        return Complex64::new(1.0, 0.0);
    }
    if z.re == 0.0 && z.im == 0.0 {
        return if w.re > 0.0 {
            Complex64::new(0.0, 0.0)
        } else {
            Complex64::new(f64::NAN, f64::NAN)
        };
    }
    if w.im == 0.0 && w.re.fract() == 0.0 && w.re.abs() <= 100.0 {
        // Small integer powers by multiplication, as NumPy does: exact for
        // Gaussian integers and without the rounding of exp∘ln.
        return z.powi(w.re as i32);
    }
    z.powc(w)
}

/// `o = a op b` for complex operands and a complex result; false where undefined.
pub fn binary(
    op: BinaryOp,
    a: [&[f64]; 2],
    b: [&[f64]; 2],
    or: &mut [f64],
    oi: &mut [f64],
) -> bool {
    use BinaryOp::*;
    let [ar, ai] = a;
    let [br, bi] = b;
    match op {
        Add => {
            for k in 0..or.len() {
                or[k] = ar[k] + br[k];
                oi[k] = ai[k] + bi[k];
            }
        }
        Sub => {
            for k in 0..or.len() {
                or[k] = ar[k] - br[k];
                oi[k] = ai[k] - bi[k];
            }
        }
        Mul => {
            for k in 0..or.len() {
                or[k] = ar[k] * br[k] - ai[k] * bi[k];
                oi[k] = ar[k] * bi[k] + ai[k] * br[k];
            }
        }
        Div => {
            for k in 0..or.len() {
                let d = br[k] * br[k] + bi[k] * bi[k];
                or[k] = (ar[k] * br[k] + ai[k] * bi[k]) / d;
                oi[k] = (ai[k] * br[k] - ar[k] * bi[k]) / d;
            }
        }
        Pow => {
            for k in 0..or.len() {
                let z = pow(Complex64::new(ar[k], ai[k]), Complex64::new(br[k], bi[k]));
                or[k] = z.re;
                oi[k] = z.im;
            }
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use num_complex::Complex64;

    use super::{UnaryOp, unary};

    /// `exp` within rounding of num-complex's in the kernels' range, and
    /// num-complex's own bits outside it (infinities, NaN, overflow), in
    /// blocks of any length.
    #[test]
    fn exp_follows_num_complex() {
        let mut z: Vec<Complex64> = (0..1000)
            .map(|k| {
                let t = k as f64;
                Complex64::new((t * 0.7).sin() * 700.0, (t * 1.3).cos() * 40.0 + t)
            })
            .collect();
        let specials = [
            0.0,
            -0.0,
            1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            710.0,
            -745.0,
            2e9,
        ];
        for &a in &specials {
            for &b in &specials {
                z.push(Complex64::new(a, b));
            }
        }
        follows(UnaryOp::Exp, &z, Complex64::exp, |c| (c.im, c.re));
    }

    /// `op` over `z`: within 4 ulps of the norm of `reference`'s result where
    /// the part `parts(z).1` is in `exp`'s fast range and `parts(z).0` in the
    /// trigonometric one, `reference`'s own bits elsewhere.
    fn follows(
        op: UnaryOp,
        z: &[Complex64],
        reference: fn(Complex64) -> Complex64,
        parts: fn(Complex64) -> (f64, f64),
    ) {
        follows_within(op, z, reference, parts, |_| 1.0);
    }

    /// [`follows`], the bound widened by `condition(z)` (the cancellation in
    /// a denominator: both sides round the same formula's terms apart).
    fn follows_within(
        op: UnaryOp,
        z: &[Complex64],
        reference: fn(Complex64) -> Complex64,
        parts: fn(Complex64) -> (f64, f64),
        condition: fn(Complex64) -> f64,
    ) {
        let (re, im): (Vec<f64>, Vec<f64>) = z.iter().map(|c| (c.re, c.im)).unzip();
        let (mut ore, mut oim) = (vec![0.0; z.len()], vec![0.0; z.len()]);
        assert!(unary(op, [&re, &im], &mut ore, &mut oim));
        for (k, &c) in z.iter().enumerate() {
            let w = reference(c);
            let (t, h) = parts(c);
            if (-708.0..=709.0).contains(&h) && t.abs() <= 1_073_741_824.0 {
                let tol = 1e-15 * w.norm() * 4.0 * condition(c);
                assert!(
                    (ore[k] - w.re).abs() <= tol && (oim[k] - w.im).abs() <= tol,
                    "{} of {c}: {} {} against {w}",
                    op.name(),
                    ore[k],
                    oim[k]
                );
            } else {
                let same =
                    |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                assert!(
                    same(ore[k], w.re) && same(oim[k], w.im),
                    "{} {c}",
                    op.name()
                );
            }
        }
    }

    /// sin, cos, sinh, cosh, tan and tanh: within 4 ulps of the norm of
    /// num-complex's result in the kernels' range, num-complex's own bits
    /// outside it.
    #[test]
    fn trigonometric_and_hyperbolic_functions_follow_num_complex() {
        let mut z: Vec<Complex64> = (0..2000)
            .map(|k| {
                let t = k as f64;
                let scale = [1e-9, 0.3, 1.0, 40.0, 700.0][k % 5];
                Complex64::new((t * 1.3).cos() * 40.0 + t, (t * 0.7).sin() * scale)
            })
            .collect();
        let specials = [
            0.0,
            -0.0,
            1.0,
            0.999,
            f64::INFINITY,
            f64::NAN,
            710.0,
            -745.0,
            2e9,
        ];
        for &a in &specials {
            for &b in &specials {
                z.push(Complex64::new(a, b));
            }
        }
        follows(UnaryOp::Sin, &z, Complex64::sin, |c| (c.re, c.im));
        follows(UnaryOp::Cos, &z, Complex64::cos, |c| (c.re, c.im));
        follows(UnaryOp::Sinh, &z, Complex64::sinh, |c| (c.im, c.re));
        follows(UnaryOp::Cosh, &z, Complex64::cosh, |c| (c.im, c.re));
        // tan's denominator cos 2a + cosh 2b cancels near its poles: the
        // terms' rounding is amplified by (|cos 2a| + cosh 2b) / |cos 2a + cosh 2b|.
        fn cancels(t: f64, h: f64) -> f64 {
            let (c, ch) = ((2.0 * t).cos(), (2.0 * h).cosh());
            // Capped: where the denominator is exactly 0 the bound says nothing.
            ((c.abs() + ch) / (c + ch).abs()).min(1e6)
        }
        follows_within(
            UnaryOp::Tan,
            &z,
            Complex64::tan,
            |c| (2.0 * c.re, 2.0 * c.im),
            |c| cancels(c.re, c.im),
        );
        follows_within(
            UnaryOp::Tanh,
            &z,
            Complex64::tanh,
            |c| (2.0 * c.im, 2.0 * c.re),
            |c| cancels(c.im, c.re),
        );
    }
}
