//! Elementwise operations over block registers: each arm is one tight loop
//! the compiler vectorizes (transcendentals go through `vmath`).

use num_traits::{AsPrimitive, Float, PrimInt, WrappingAdd, WrappingMul, WrappingNeg, WrappingSub};

use super::complex;
use super::slot::{View, ViewMut};
use super::vmath;
use crate::error::{Error, Result};
use crate::op::{BinaryOp, UnaryOp};

#[inline]
fn map1<A: Copy, B>(a: &[A], o: &mut [B], f: impl Fn(A) -> B) {
    for (o, &a) in o.iter_mut().zip(a) {
        *o = f(a);
    }
}

#[inline]
fn map2<A: Copy, B: Copy, C>(a: &[A], b: &[B], o: &mut [C], f: impl Fn(A, B) -> C) {
    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
        *o = f(a, b);
    }
}

/// Float types with vectorized transcendental kernels.
pub trait VFloat: Float + Send + Sync + 'static {
    fn vsin(a: &[Self], o: &mut [Self]);
    fn vcos(a: &[Self], o: &mut [Self]);
    fn vtan(a: &[Self], o: &mut [Self]);
    fn vexp(a: &[Self], o: &mut [Self]);
    fn vln(a: &[Self], o: &mut [Self]);
    fn vtanh(a: &[Self], o: &mut [Self]);
    fn vsinh(a: &[Self], o: &mut [Self]);
    fn vcosh(a: &[Self], o: &mut [Self]);
    fn vpow(a: &[Self], b: &[Self], o: &mut [Self]);
    fn vhypot(a: &[Self], b: &[Self], o: &mut [Self]);
    /// Round half to even.
    fn round_even(self) -> Self;
}

macro_rules! vfloat {
    ($t:ty, $sin:ident, $cos:ident, $tan:ident, $exp:ident, $ln:ident, $tanh:ident, $pow:ident,
     $hypot:path, $sinh:path, $cosh:path) => {
        impl VFloat for $t {
            fn vsin(a: &[Self], o: &mut [Self]) {
                vmath::$sin(a, o)
            }
            fn vcos(a: &[Self], o: &mut [Self]) {
                vmath::$cos(a, o)
            }
            fn vtan(a: &[Self], o: &mut [Self]) {
                vmath::$tan(a, o)
            }
            fn vexp(a: &[Self], o: &mut [Self]) {
                vmath::$exp(a, o)
            }
            fn vln(a: &[Self], o: &mut [Self]) {
                vmath::$ln(a, o)
            }
            fn vtanh(a: &[Self], o: &mut [Self]) {
                vmath::$tanh(a, o)
            }
            fn vsinh(a: &[Self], o: &mut [Self]) {
                $sinh(a, o)
            }
            fn vcosh(a: &[Self], o: &mut [Self]) {
                $cosh(a, o)
            }
            fn vpow(a: &[Self], b: &[Self], o: &mut [Self]) {
                vmath::$pow(a, b, o)
            }
            fn vhypot(a: &[Self], b: &[Self], o: &mut [Self]) {
                $hypot(a, b, o)
            }
            fn round_even(self) -> Self {
                self.round_ties_even()
            }
        }
    };
}
/// The parts of a float32 square exactly in float64, and their sum can
/// neither overflow nor underflow there: the sum and the root are each rounded
/// once, then the result once more. This is glibc's `hypotf` (the same bits
/// over 2·10^7 random pairs), written out so that every platform and the GPU
/// compute the same, and so that it vectorizes.
fn hypot_f32(a: &[f32], b: &[f32], o: &mut [f32]) {
    map2(a, b, o, |a, b| {
        let (x, y) = (f64::from(a), f64::from(b));
        // An infinite part wins over a NaN, as C's hypot.
        if a.is_infinite() || b.is_infinite() {
            f32::INFINITY
        } else {
            (x * x + y * y).sqrt() as f32
        }
    })
}
fn sinh_f32(a: &[f32], o: &mut [f32]) {
    map1(a, o, f32::sinh)
}
fn cosh_f32(a: &[f32], o: &mut [f32]) {
    map1(a, o, f32::cosh)
}

vfloat!(
    f64,
    sin_f64,
    cos_f64,
    tan_f64,
    exp_f64,
    ln_f64,
    tanh_f64,
    powf_f64,
    super::hypot::hypot_f64,
    vmath::sinh_f64,
    vmath::cosh_f64
);
vfloat!(
    f32, sin_f32, cos_f32, tan_f32, exp_f32, ln_f32, tanh_f32, powf_f32, hypot_f32, sinh_f32,
    cosh_f32
);

fn mismatch(what: &str, a: &View<'_>, o: &ViewMut<'_>) -> Error {
    Error::Task {
        task: "kernel".into(),
        message: format!(
            "internal: {what} got operand {} and result {}",
            a.dtype(),
            o.dtype()
        ),
    }
}

/// `x**n` by squaring: a few whole-block multiplies.
fn powi_block<T: Copy>(
    a: &[T],
    o: &mut [T],
    n: i32,
    one: T,
    mul: impl Fn(T, T) -> T,
    inv: impl Fn(T) -> T,
) {
    let mut e = n.unsigned_abs();
    let mut base: Vec<T> = a.to_vec();
    o.iter_mut().for_each(|x| *x = one);
    while e > 0 {
        if e & 1 == 1 {
            for (o, &b) in o.iter_mut().zip(&base) {
                *o = mul(*o, b);
            }
        }
        e >>= 1;
        if e > 0 {
            base.iter_mut().for_each(|b| *b = mul(*b, *b));
        }
    }
    if n < 0 {
        o.iter_mut().for_each(|x| *x = inv(*x));
    }
}

fn float_unary<T: VFloat>(op: UnaryOp, a: &[T], o: &mut [T]) -> bool {
    use UnaryOp::*;
    match op {
        Neg => map1(a, o, |x| -x),
        Sqrt => map1(a, o, |x| x.sqrt()),
        Exp => T::vexp(a, o),
        Log => T::vln(a, o),
        Sin => T::vsin(a, o),
        Cos => T::vcos(a, o),
        Tan => T::vtan(a, o),
        Tanh => T::vtanh(a, o),
        Arcsin => map1(a, o, |x| x.asin()),
        Arccos => map1(a, o, |x| x.acos()),
        Arctan => map1(a, o, |x| x.atan()),
        Sinh => T::vsinh(a, o),
        Cosh => T::vcosh(a, o),
        Log1p => map1(a, o, |x| x.ln_1p()),
        Expm1 => map1(a, o, |x| x.exp_m1()),
        Log2 => map1(a, o, |x| x.log2()),
        Log10 => map1(a, o, |x| x.log10()),
        Sign => map1(a, o, float_sign),
        Round => map1(a, o, T::round_even),
        Abs => map1(a, o, |x| x.abs()),
        Floor => map1(a, o, |x| x.floor()),
        Ceil => map1(a, o, |x| x.ceil()),
        Re => o.copy_from_slice(a),
        Im => o.iter_mut().for_each(|x| *x = T::zero()),
        Powi(2) => map1(a, o, |x| x * x),
        Powi(n) => powi_block(a, o, n, T::one(), |x, y| x * y, |x| T::one() / x),
        Not | IsNan | IsFinite => return false,
    }
    true
}

/// NumPy's sign: NaN stays NaN and both zeros give +0.
#[inline]
fn float_sign<T: Float>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else if x.is_nan() {
        x
    } else {
        T::zero()
    }
}

/// Predicates on floats: `isnan`, `isfinite`.
fn float_test<T: Float>(op: UnaryOp, a: &[T], o: &mut [bool]) -> bool {
    match op {
        UnaryOp::IsNan => map1(a, o, |x| x.is_nan()),
        UnaryOp::IsFinite => map1(a, o, |x| x.is_finite()),
        _ => return false,
    }
    true
}

/// Predicates on integers, which are never NaN and always finite.
fn int_test<T>(op: UnaryOp, a: &[T], o: &mut [bool]) -> bool {
    match op {
        UnaryOp::IsNan => o[..a.len()].iter_mut().for_each(|x| *x = false),
        UnaryOp::IsFinite => o[..a.len()].iter_mut().for_each(|x| *x = true),
        _ => return false,
    }
    true
}

fn int_unary<T>(op: UnaryOp, a: &[T], o: &mut [T]) -> bool
where
    T: PrimInt + WrappingNeg + WrappingMul + num_traits::Signed,
{
    use UnaryOp::*;
    match op {
        Neg => map1(a, o, |x| x.wrapping_neg()),
        Abs => map1(a, o, |x| if x < T::zero() { x.wrapping_neg() } else { x }),
        Re | Floor | Ceil | Round => o.copy_from_slice(a),
        Im => o.iter_mut().for_each(|x| *x = T::zero()),
        Sign => map1(a, o, |x| x.signum()),
        Powi(n) if n >= 0 => powi_block(a, o, n, T::one(), |x, y| x.wrapping_mul(&y), |x| x),
        _ => return false,
    }
    true
}

/// `o = op(a)` over the first `n` elements.
pub fn unary(op: UnaryOp, a: View<'_>, mut o: ViewMut<'_>) -> Result<()> {
    let n = a.len();
    use UnaryOp::*;
    let ok = match (a, &mut o) {
        (View::F64(a), ViewMut::F64(o)) => float_unary(op, &a[..n], &mut o[..n]),
        (View::F32(a), ViewMut::F32(o)) => float_unary(op, &a[..n], &mut o[..n]),
        (View::I64(a), ViewMut::I64(o)) => int_unary(op, &a[..n], &mut o[..n]),
        (View::I32(a), ViewMut::I32(o)) => int_unary(op, &a[..n], &mut o[..n]),
        (View::Bool(a), ViewMut::Bool(o)) => match op {
            Not => {
                map1(&a[..n], &mut o[..n], |x| !x);
                true
            }
            Abs | Re => {
                o[..n].copy_from_slice(&a[..n]);
                true
            }
            Im => {
                o[..n].iter_mut().for_each(|x| *x = false);
                true
            }
            _ => false,
        },
        (View::F64(a), ViewMut::Bool(o)) => float_test(op, &a[..n], &mut o[..n]),
        (View::F32(a), ViewMut::Bool(o)) => float_test(op, &a[..n], &mut o[..n]),
        (View::I64(a), ViewMut::Bool(o)) => int_test(op, &a[..n], &mut o[..n]),
        (View::I32(a), ViewMut::Bool(o)) => int_test(op, &a[..n], &mut o[..n]),
        (View::C128(re, im), ViewMut::F64(o)) => match op {
            Abs => {
                super::hypot::hypot_f64(&re[..n], &im[..n], &mut o[..n]);
                true
            }
            Re => {
                o[..n].copy_from_slice(&re[..n]);
                true
            }
            Im => {
                o[..n].copy_from_slice(&im[..n]);
                true
            }
            _ => false,
        },
        (View::C128(re, im), ViewMut::Bool(o)) => {
            complex::test(op, [&re[..n], &im[..n]], &mut o[..n])
        }
        (View::C128(re, im), ViewMut::C128(ore, oim)) => {
            complex::unary(op, [&re[..n], &im[..n]], &mut ore[..n], &mut oim[..n])
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(mismatch(&op.name(), &a, &o))
    }
}

/// NumPy's remainder: the result takes the sign of the divisor.
#[inline]
fn float_rem<T: Float>(a: T, b: T) -> T {
    let r = a % b;
    if r != T::zero() && ((r < T::zero()) != (b < T::zero())) {
        r + b
    } else {
        r
    }
}

/// NaN-propagating minimum and maximum (NumPy's `minimum`/`maximum`).
#[inline]
fn fmin<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else if b < a {
        b
    } else {
        a
    }
}

#[inline]
fn fmax<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else if b > a {
        b
    } else {
        a
    }
}

fn compare<T: PartialOrd + Copy>(op: BinaryOp, a: &[T], b: &[T], o: &mut [bool]) -> bool {
    use BinaryOp::*;
    match op {
        Eq => map2(a, b, o, |x, y| x == y),
        Ne => map2(a, b, o, |x, y| x != y),
        Lt => map2(a, b, o, |x, y| x < y),
        Le => map2(a, b, o, |x, y| x <= y),
        Gt => map2(a, b, o, |x, y| x > y),
        Ge => map2(a, b, o, |x, y| x >= y),
        _ => return false,
    }
    true
}

fn float_binary<T: VFloat>(op: BinaryOp, a: &[T], b: &[T], o: &mut [T]) -> bool {
    use BinaryOp::*;
    match op {
        Add => map2(a, b, o, |x, y| x + y),
        Sub => map2(a, b, o, |x, y| x - y),
        Mul => map2(a, b, o, |x, y| x * y),
        Div => map2(a, b, o, |x, y| x / y),
        Rem => map2(a, b, o, float_rem),
        Pow => T::vpow(a, b, o),
        Min => map2(a, b, o, fmin),
        Max => map2(a, b, o, fmax),
        Hypot => T::vhypot(a, b, o),
        Arctan2 => map2(a, b, o, |y, x| y.atan2(x)),
        FloorDiv => map2(a, b, o, float_floor_div),
        _ => return false,
    }
    true
}

/// NumPy's floor division of floats: `floor(a / b)` computed from the exact
/// remainder so that `a == b * (a // b) + a % b` holds as nearly as it can.
#[inline]
fn float_floor_div<T: Float>(a: T, b: T) -> T {
    if b == T::zero() {
        return a / b;
    }
    let m = a % b;
    let mut div = (a - m) / b;
    if m != T::zero() && ((b < T::zero()) != (m < T::zero())) {
        div = div - T::one();
    }
    if div == T::zero() {
        // Keep the sign the true quotient has.
        return T::zero().copysign(a / b);
    }
    let f = div.floor();
    let half = T::one() / (T::one() + T::one());
    if div - f > half { f + T::one() } else { f }
}

/// NumPy's floor division of integers: rounds toward minus infinity; by zero gives 0.
#[inline]
fn int_floor_div<T: PrimInt + WrappingNeg + num_traits::Signed>(a: T, b: T) -> T {
    if b == T::zero() {
        T::zero()
    } else if b == -T::one() {
        a.wrapping_neg()
    } else {
        let q = a / b;
        if (a % b != T::zero()) && ((a < T::zero()) != (b < T::zero())) {
            q - T::one()
        } else {
            q
        }
    }
}

fn int_binary<T>(op: BinaryOp, a: &[T], b: &[T], o: &mut [T]) -> bool
where
    T: PrimInt + WrappingAdd + WrappingSub + WrappingMul + WrappingNeg + num_traits::Signed,
{
    use BinaryOp::*;
    match op {
        Add => map2(a, b, o, |x, y| x.wrapping_add(&y)),
        Sub => map2(a, b, o, |x, y| x.wrapping_sub(&y)),
        Mul => map2(a, b, o, |x, y| x.wrapping_mul(&y)),
        // NumPy returns 0 for an integer remainder by zero (with a warning).
        Rem => map2(a, b, o, |x, y| {
            if y == T::zero() || (y == -T::one()) {
                T::zero()
            } else {
                let r = x % y;
                if r != T::zero() && ((r < T::zero()) != (y < T::zero())) {
                    r + y
                } else {
                    r
                }
            }
        }),
        FloorDiv => map2(a, b, o, int_floor_div),
        Min => map2(a, b, o, |x, y| if y < x { y } else { x }),
        Max => map2(a, b, o, |x, y| if y > x { y } else { x }),
        _ => return false,
    }
    true
}

/// `o = a op b` over the first `n` elements; operands share a dtype.
pub fn binary(op: BinaryOp, a: View<'_>, b: View<'_>, mut o: ViewMut<'_>) -> Result<()> {
    let n = a.len();
    use BinaryOp::*;
    let ok = match (a, b, &mut o) {
        (View::F64(a), View::F64(b), ViewMut::F64(o)) => {
            float_binary(op, &a[..n], &b[..n], &mut o[..n])
        }
        (View::F32(a), View::F32(b), ViewMut::F32(o)) => {
            float_binary(op, &a[..n], &b[..n], &mut o[..n])
        }
        (View::I64(a), View::I64(b), ViewMut::I64(o)) => {
            int_binary(op, &a[..n], &b[..n], &mut o[..n])
        }
        (View::I32(a), View::I32(b), ViewMut::I32(o)) => {
            int_binary(op, &a[..n], &b[..n], &mut o[..n])
        }
        (View::F64(a), View::F64(b), ViewMut::Bool(o)) => {
            compare(op, &a[..n], &b[..n], &mut o[..n])
        }
        (View::F32(a), View::F32(b), ViewMut::Bool(o)) => {
            compare(op, &a[..n], &b[..n], &mut o[..n])
        }
        (View::I64(a), View::I64(b), ViewMut::Bool(o)) => {
            compare(op, &a[..n], &b[..n], &mut o[..n])
        }
        (View::I32(a), View::I32(b), ViewMut::Bool(o)) => {
            compare(op, &a[..n], &b[..n], &mut o[..n])
        }
        (View::Bool(a), View::Bool(b), ViewMut::Bool(o)) => match op {
            And | Min => {
                map2(&a[..n], &b[..n], &mut o[..n], |x, y| x & y);
                true
            }
            Or | Max => {
                map2(&a[..n], &b[..n], &mut o[..n], |x, y| x | y);
                true
            }
            _ => compare(op, &a[..n], &b[..n], &mut o[..n]),
        },
        (View::C128(ar, ai), View::C128(br, bi), ViewMut::C128(or, oi)) => complex::binary(
            op,
            [&ar[..n], &ai[..n]],
            [&br[..n], &bi[..n]],
            &mut or[..n],
            &mut oi[..n],
        ),
        (View::C128(ar, ai), View::C128(br, bi), ViewMut::Bool(o)) => match op {
            Eq => {
                for k in 0..n {
                    o[k] = ar[k] == br[k] && ai[k] == bi[k];
                }
                true
            }
            Ne => {
                for k in 0..n {
                    o[k] = ar[k] != br[k] || ai[k] != bi[k];
                }
                true
            }
            _ => false,
        },
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(mismatch(op.symbol(), &a, &o))
    }
}

/// `o = where(c, a, b)`.
pub fn select(c: View<'_>, a: View<'_>, b: View<'_>, mut o: ViewMut<'_>) -> Result<()> {
    let n = a.len();
    let View::Bool(c) = c else {
        return Err(mismatch("where", &c, &o));
    };
    let c = &c[..n];
    // Zipped (no index checks), so the compiler turns it into vector
    // blends instead of a branch per element on unpredictable masks.
    fn sel<T: Copy>(c: &[bool], a: &[T], b: &[T], o: &mut [T]) {
        for (((o, &c), &a), &b) in o.iter_mut().zip(c).zip(a).zip(b) {
            *o = if c { a } else { b };
        }
    }
    match (a, b, &mut o) {
        (View::Bool(a), View::Bool(b), ViewMut::Bool(o)) => sel(c, &a[..n], &b[..n], &mut o[..n]),
        (View::I32(a), View::I32(b), ViewMut::I32(o)) => sel(c, &a[..n], &b[..n], &mut o[..n]),
        (View::I64(a), View::I64(b), ViewMut::I64(o)) => sel(c, &a[..n], &b[..n], &mut o[..n]),
        (View::F32(a), View::F32(b), ViewMut::F32(o)) => sel(c, &a[..n], &b[..n], &mut o[..n]),
        (View::F64(a), View::F64(b), ViewMut::F64(o)) => sel_f64(c, &a[..n], &b[..n], &mut o[..n]),
        (View::C128(ar, ai), View::C128(br, bi), ViewMut::C128(or, oi)) => {
            sel_f64(c, &ar[..n], &br[..n], &mut or[..n]);
            sel_f64(c, &ai[..n], &bi[..n], &mut oi[..n]);
        }
        _ => return Err(mismatch("where", &a, &o)),
    }
    Ok(())
}

/// `where` over float64 as bit masks: the same values (bits and all) as
/// picking, in a form that always vectorizes.
fn sel_f64(c: &[bool], a: &[f64], b: &[f64], o: &mut [f64]) {
    for (((o, &c), &a), &b) in o.iter_mut().zip(c).zip(a).zip(b) {
        let m = 0u64.wrapping_sub(u64::from(c));
        *o = f64::from_bits((a.to_bits() & m) | (b.to_bits() & !m));
    }
}

fn cast_real<A, B>(a: &[A], o: &mut [B])
where
    A: AsPrimitive<B>,
    B: Copy + 'static,
{
    map1(a, o, |x| x.as_());
}

/// The zero of `x`'s type.
fn zero_of<T: Default>(_: T) -> T {
    T::default()
}

/// `o = a as o.dtype` with C semantics (NumPy's `astype`).
pub fn cast(a: View<'_>, o: ViewMut<'_>) -> Result<()> {
    let n = a.len();
    macro_rules! real_to {
        ($a:expr, $o:expr) => {
            match $o {
                ViewMut::I32(o) => cast_real(&$a[..n], &mut o[..n]),
                ViewMut::I64(o) => cast_real(&$a[..n], &mut o[..n]),
                ViewMut::F32(o) => cast_real(&$a[..n], &mut o[..n]),
                ViewMut::F64(o) => cast_real(&$a[..n], &mut o[..n]),
                ViewMut::Bool(o) => map1(&$a[..n], &mut o[..n], |x| x != zero_of(x)),
                ViewMut::C128(or, oi) => {
                    cast_real(&$a[..n], &mut or[..n]);
                    oi[..n].iter_mut().for_each(|x| *x = 0.0);
                }
            }
        };
    }
    match a {
        View::I32(a) => real_to!(a, o),
        View::I64(a) => real_to!(a, o),
        View::F32(a) => real_to!(a, o),
        View::F64(a) => real_to!(a, o),
        View::Bool(a) => {
            let bytes: Vec<u8> = a[..n].iter().map(|&b| b as u8).collect();
            real_to!(bytes, o)
        }
        View::C128(re, im) => match o {
            ViewMut::Bool(o) => {
                for k in 0..n {
                    o[k] = re[k] != 0.0 || im[k] != 0.0;
                }
            }
            ViewMut::C128(or, oi) => {
                or[..n].copy_from_slice(&re[..n]);
                oi[..n].copy_from_slice(&im[..n]);
            }
            other => real_to!(re, other),
        },
    }
    Ok(())
}
