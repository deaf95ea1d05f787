//! Elementwise operations: ufuncs, operators, comparisons, `where`, `astype`.

use accel_core::op::{BinaryOp, UnaryOp};
use accel_core::{DType, Op, infer};
use num_complex::Complex64;

use crate::expr::Array;
use crate::operand::{Operand, arrays_of};

#[track_caller]
fn unary(a: &Array, op: UnaryOp) -> Array {
    Array::build(&op.name(), &[a], |m| {
        Ok((Op::Unary(op), infer::unary(op, m[0])?))
    })
}

#[track_caller]
pub(crate) fn binary(op: BinaryOp, a: Operand, b: Operand) -> Array {
    let v = arrays_of(vec![a, b]);
    Array::build(op.symbol(), &[&v[0], &v[1]], |m| {
        Ok((Op::Binary(op), infer::binary(op, m[0], m[1])?))
    })
}

/// `where(cond, a, b)`: elements of `a` where `cond` holds, else of `b`.
#[track_caller]
pub fn where_(cond: &Array, a: impl Into<Operand>, b: impl Into<Operand>) -> Array {
    let v = arrays_of(vec![a.into(), b.into()]);
    Array::build("where", &[cond, &v[0], &v[1]], |m| {
        Ok((Op::Where, infer::where_(m[0], m[1], m[2])?))
    })
}

/// Elementwise minimum (NaN propagates, as in NumPy).
#[track_caller]
pub fn minimum(a: impl Into<Operand>, b: impl Into<Operand>) -> Array {
    binary(BinaryOp::Min, a.into(), b.into())
}

/// Elementwise maximum (NaN propagates, as in NumPy).
#[track_caller]
pub fn maximum(a: impl Into<Operand>, b: impl Into<Operand>) -> Array {
    binary(BinaryOp::Max, a.into(), b.into())
}

/// `sqrt(a² + b²)`, elementwise, without intermediate overflow.
#[track_caller]
pub fn hypot(a: impl Into<Operand>, b: impl Into<Operand>) -> Array {
    binary(BinaryOp::Hypot, a.into(), b.into())
}

/// The angle of the point `(x, y)` in radians, in `[-π, π]` (NumPy's `arctan2(y, x)`).
#[track_caller]
pub fn arctan2(y: impl Into<Operand>, x: impl Into<Operand>) -> Array {
    binary(BinaryOp::Arctan2, y.into(), x.into())
}

/// Floor division, NumPy's `a // b`: rounds toward minus infinity; an
/// integer divided by zero gives 0, a float gives ±inf or NaN.
#[track_caller]
pub fn floor_divide(a: impl Into<Operand>, b: impl Into<Operand>) -> Array {
    binary(BinaryOp::FloorDiv, a.into(), b.into())
}

/// `a ** b` for any operands (floats, or complex numbers); integers compute in f64.
#[track_caller]
pub fn power(a: impl Into<Operand>, b: impl Into<Operand>) -> Array {
    binary(BinaryOp::Pow, a.into(), b.into())
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Array {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name(&self) -> Array {
                    unary(self, $op)
                }
            )*
        }
    };
}

unary_methods! {
    /// Square root (integers compute in f64; the principal root of complex numbers).
    sqrt => UnaryOp::Sqrt;
    exp => UnaryOp::Exp;
    /// Natural logarithm (the principal branch for complex numbers).
    log => UnaryOp::Log;
    log2 => UnaryOp::Log2;
    log10 => UnaryOp::Log10;
    /// `ln(1 + x)`, accurate for small `x` (real dtypes).
    log1p => UnaryOp::Log1p;
    /// `exp(x) - 1`, accurate for small `x` (real dtypes).
    expm1 => UnaryOp::Expm1;
    sin => UnaryOp::Sin;
    cos => UnaryOp::Cos;
    tan => UnaryOp::Tan;
    arcsin => UnaryOp::Arcsin;
    arccos => UnaryOp::Arccos;
    arctan => UnaryOp::Arctan;
    sinh => UnaryOp::Sinh;
    cosh => UnaryOp::Cosh;
    tanh => UnaryOp::Tanh;
    /// Absolute value; the modulus for complex numbers.
    abs => UnaryOp::Abs;
    /// -1, 0 or 1 with the dtype kept (NaN stays NaN); `z / |z|` for complex numbers.
    sign => UnaryOp::Sign;
    /// Largest integer not above (integers are returned as they are, as in NumPy 2).
    floor => UnaryOp::Floor;
    /// Smallest integer not below (integers are returned as they are).
    ceil => UnaryOp::Ceil;
    /// Rounds half to even, like NumPy's `round` (integers are returned as they are).
    round => UnaryOp::Round;
    /// Whether each element is NaN (for complex numbers: either part).
    isnan => UnaryOp::IsNan;
    /// Whether each element is neither infinite nor NaN.
    isfinite => UnaryOp::IsFinite;
    /// Real part (the array itself for real dtypes).
    re => UnaryOp::Re;
    /// Imaginary part (zeros for real dtypes).
    im => UnaryOp::Im;
    /// Logical not of a bool array.
    not => UnaryOp::Not;
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Array {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name(&self, other: impl Into<Operand>) -> Array {
                    binary($op, self.into(), other.into())
                }
            )*
        }
    };
}

binary_methods! {
    /// `self == other`, elementwise.
    equal => BinaryOp::Eq;
    /// `self != other`, elementwise.
    not_equal => BinaryOp::Ne;
    lt => BinaryOp::Lt;
    le => BinaryOp::Le;
    gt => BinaryOp::Gt;
    ge => BinaryOp::Ge;
    /// Logical and of bool arrays.
    and => BinaryOp::And;
    /// Logical or of bool arrays.
    or => BinaryOp::Or;
    /// Power `self ** other` (floats, or complex numbers; integers compute in f64).
    powf => BinaryOp::Pow;
    /// `sqrt(self² + other²)` without intermediate overflow.
    hypot => BinaryOp::Hypot;
    /// Floor division `self // other` (see [`floor_divide`]).
    floor_divide => BinaryOp::FloorDiv;
    minimum => BinaryOp::Min;
    maximum => BinaryOp::Max;
}

impl Array {
    /// `self ** n` for an integer literal, by repeated multiplication (keeps the dtype).
    #[track_caller]
    pub fn powi(&self, n: i32) -> Array {
        unary(self, UnaryOp::Powi(n))
    }

    /// Limits values to `[lo, hi]`.
    #[track_caller]
    pub fn clip(&self, lo: impl Into<Operand>, hi: impl Into<Operand>) -> Array {
        minimum(maximum(self, lo), hi)
    }

    /// Converts to `dtype` (C casts: floats truncate toward zero, NaN → 0).
    #[track_caller]
    pub fn astype(&self, dtype: DType) -> Array {
        if self.dtype().ok() == Some(dtype) {
            return self.clone();
        }
        Array::build("astype", &[self], |m| {
            Ok((Op::Cast(dtype), infer::cast(m[0], dtype)))
        })
    }
}

macro_rules! operator {
    ($trait:ident, $method:ident, $op:expr) => {
        impl<R: Into<Operand>> std::ops::$trait<R> for Array {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: R) -> Array {
                binary($op, self.into(), rhs.into())
            }
        }
        impl<R: Into<Operand>> std::ops::$trait<R> for &Array {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: R) -> Array {
                binary($op, self.into(), rhs.into())
            }
        }
        operator!(@scalar $trait, $method, $op, f64, f32, i64, i32, Complex64);
    };
    (@scalar $trait:ident, $method:ident, $op:expr, $($t:ty),*) => {$(
        impl std::ops::$trait<Array> for $t {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: Array) -> Array {
                binary($op, self.into(), rhs.into())
            }
        }
        impl std::ops::$trait<&Array> for $t {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: &Array) -> Array {
                binary($op, self.into(), rhs.into())
            }
        }
    )*};
}

operator!(Add, add, BinaryOp::Add);
operator!(Sub, sub, BinaryOp::Sub);
operator!(Mul, mul, BinaryOp::Mul);
operator!(Div, div, BinaryOp::Div);
operator!(Rem, rem, BinaryOp::Rem);

impl<R: Into<Operand>> std::ops::BitAnd<R> for &Array {
    type Output = Array;
    #[track_caller]
    fn bitand(self, rhs: R) -> Array {
        binary(BinaryOp::And, self.into(), rhs.into())
    }
}
impl<R: Into<Operand>> std::ops::BitAnd<R> for Array {
    type Output = Array;
    #[track_caller]
    fn bitand(self, rhs: R) -> Array {
        binary(BinaryOp::And, self.into(), rhs.into())
    }
}
impl<R: Into<Operand>> std::ops::BitOr<R> for &Array {
    type Output = Array;
    #[track_caller]
    fn bitor(self, rhs: R) -> Array {
        binary(BinaryOp::Or, self.into(), rhs.into())
    }
}
impl<R: Into<Operand>> std::ops::BitOr<R> for Array {
    type Output = Array;
    #[track_caller]
    fn bitor(self, rhs: R) -> Array {
        binary(BinaryOp::Or, self.into(), rhs.into())
    }
}

impl std::ops::Neg for &Array {
    type Output = Array;
    #[track_caller]
    fn neg(self) -> Array {
        unary(self, UnaryOp::Neg)
    }
}
impl std::ops::Neg for Array {
    type Output = Array;
    #[track_caller]
    fn neg(self) -> Array {
        unary(&self, UnaryOp::Neg)
    }
}
impl std::ops::Not for &Array {
    type Output = Array;
    #[track_caller]
    fn not(self) -> Array {
        unary(self, UnaryOp::Not)
    }
}
impl std::ops::Not for Array {
    type Output = Array;
    #[track_caller]
    fn not(self) -> Array {
        unary(&self, UnaryOp::Not)
    }
}
