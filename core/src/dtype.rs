//! Element types, typed scalar values and NumPy's type-promotion rules.

use std::fmt;

use num_complex::Complex64;

/// The element type of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Bool,
    I32,
    I64,
    F32,
    F64,
    /// Complex number with f64 real and imaginary parts.
    C128,
}

impl DType {
    pub const ALL: [DType; 6] = [
        DType::Bool,
        DType::I32,
        DType::I64,
        DType::F32,
        DType::F64,
        DType::C128,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::C128 => "c128",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool => 1,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
            DType::C128 => 16,
        }
    }

    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64)
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    pub fn is_complex(self) -> bool {
        self == DType::C128
    }

    /// Rank in NumPy's kind hierarchy: bool < integer < float < complex.
    fn kind(self) -> u8 {
        match self {
            DType::Bool => 0,
            DType::I32 | DType::I64 => 1,
            DType::F32 | DType::F64 => 2,
            DType::C128 => 3,
        }
    }

    /// NumPy's result type for a binary operation between two arrays.
    pub fn promote(a: DType, b: DType) -> DType {
        use DType::*;
        if a == b {
            return a;
        }
        match (a, b) {
            (C128, _) | (_, C128) => C128,
            (F64, _) | (_, F64) => F64,
            // f32 holds bool exactly; it cannot hold every i32/i64, so NumPy widens.
            (F32, Bool) | (Bool, F32) => F32,
            (F32, _) | (_, F32) => F64,
            (I64, _) | (_, I64) => I64,
            (I32, _) | (_, I32) => I32,
            (Bool, Bool) => Bool,
        }
    }

    /// The float type that a transcendental function of this type returns.
    pub fn float_result(self) -> DType {
        match self {
            DType::F32 => DType::F32,
            DType::C128 => DType::C128,
            _ => DType::F64,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust literal used as an operand: it adapts to the array's type the way a
/// Python scalar does in NumPy (`f32_array * 2.0` stays f32, `i32_array + 1` stays i32).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Complex(f64, f64),
}

impl Scalar {
    /// Result type of `array (dtype) <op> scalar` under NumPy's weak-scalar rules.
    pub fn promote_with(self, dtype: DType) -> DType {
        let own = self.natural_dtype();
        if own.kind() <= dtype.kind() {
            dtype
        } else {
            own
        }
    }

    /// The dtype of the scalar on its own.
    pub fn natural_dtype(self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::Int(_) => DType::I64,
            Scalar::Float(_) => DType::F64,
            Scalar::Complex(..) => DType::C128,
        }
    }

    /// The scalar as a typed value of `dtype` (C-style casts, like NumPy's `astype`).
    pub fn to_value(self, dtype: DType) -> Value {
        let v = match self {
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Int(i) => Value::I64(i),
            Scalar::Float(x) => Value::F64(x),
            Scalar::Complex(re, im) => Value::C128(Complex64::new(re, im)),
        };
        v.cast(dtype)
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Float(v)
    }
}
impl From<f32> for Scalar {
    fn from(v: f32) -> Self {
        Scalar::Float(v as f64)
    }
}
impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}
impl From<i32> for Scalar {
    fn from(v: i32) -> Self {
        Scalar::Int(v as i64)
    }
}
impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}
impl From<Complex64> for Scalar {
    fn from(v: Complex64) -> Self {
        Scalar::Complex(v.re, v.im)
    }
}

/// A typed scalar value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    C128(Complex64),
}

impl Value {
    /// The value's bits (a complex number's imaginary part second): unlike
    /// `==`, they tell -0.0 from 0.0 and NaN payloads apart.
    pub fn bits(self) -> (u64, u64) {
        match self {
            Value::Bool(x) => (x as u64, 0),
            Value::I32(x) => (x as u32 as u64, 0),
            Value::I64(x) => (x as u64, 0),
            Value::F32(x) => (x.to_bits() as u64, 0),
            Value::F64(x) => (x.to_bits(), 0),
            Value::C128(c) => (c.re.to_bits(), c.im.to_bits()),
        }
    }

    pub fn dtype(self) -> DType {
        match self {
            Value::Bool(_) => DType::Bool,
            Value::I32(_) => DType::I32,
            Value::I64(_) => DType::I64,
            Value::F32(_) => DType::F32,
            Value::F64(_) => DType::F64,
            Value::C128(_) => DType::C128,
        }
    }

    /// Cast with C semantics (float → int truncates and saturates, NaN → 0;
    /// complex → real drops the imaginary part, as NumPy does with a warning).
    pub fn cast(self, to: DType) -> Value {
        let (re, im, int): (f64, f64, Option<i64>) = match self {
            Value::Bool(b) => (b as i64 as f64, 0.0, Some(b as i64)),
            Value::I32(i) => (i as f64, 0.0, Some(i as i64)),
            Value::I64(i) => (i as f64, 0.0, Some(i)),
            Value::F32(x) => (x as f64, 0.0, None),
            Value::F64(x) => (x, 0.0, None),
            Value::C128(c) => (c.re, c.im, None),
        };
        match to {
            DType::Bool => Value::Bool(match int {
                Some(i) => i != 0,
                None => re != 0.0 || im != 0.0,
            }),
            DType::I32 => Value::I32(match int {
                Some(i) => i as i32,
                None => re as i32,
            }),
            DType::I64 => Value::I64(match int {
                Some(i) => i,
                None => re as i64,
            }),
            DType::F32 => Value::F32(match int {
                Some(i) => i as f32,
                None => re as f32,
            }),
            DType::F64 => Value::F64(re),
            DType::C128 => Value::C128(Complex64::new(re, im)),
        }
    }

    /// The value as f64 (real part for complex).
    pub fn as_f64(self) -> f64 {
        match self.cast(DType::F64) {
            Value::F64(x) => x,
            _ => f64::NAN,
        }
    }
}

macro_rules! value_from {
    ($t:ty, $v:ident) => {
        impl From<$t> for Value {
            fn from(x: $t) -> Value {
                Value::$v(x)
            }
        }
    };
}
value_from!(bool, Bool);
value_from!(i32, I32);
value_from!(i64, I64);
value_from!(f32, F32);
value_from!(f64, F64);
value_from!(Complex64, C128);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::I32(i) => write!(f, "{i}"),
            Value::I64(i) => write!(f, "{i}"),
            Value::F32(x) => write!(f, "{x}"),
            Value::F64(x) => write!(f, "{x}"),
            Value::C128(c) => write!(f, "{}{:+}j", c.re, c.im),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DType::*;

    #[test]
    fn promotion_follows_numpy() {
        assert_eq!(DType::promote(I32, F32), F64);
        assert_eq!(DType::promote(Bool, F32), F32);
        assert_eq!(DType::promote(I32, I64), I64);
        assert_eq!(DType::promote(F32, F64), F64);
        assert_eq!(DType::promote(F32, C128), C128);
        assert_eq!(DType::promote(Bool, I32), I32);
    }

    #[test]
    fn scalars_are_weak() {
        assert_eq!(Scalar::Float(2.0).promote_with(F32), F32);
        assert_eq!(Scalar::Float(2.0).promote_with(I32), F64);
        assert_eq!(Scalar::Int(2).promote_with(I32), I32);
        assert_eq!(Scalar::Int(2).promote_with(Bool), I64);
        assert_eq!(Scalar::Complex(0.0, 1.0).promote_with(F64), C128);
        assert_eq!(Scalar::Bool(true).promote_with(F32), F32);
    }

    #[test]
    fn casts_saturate_like_c() {
        assert_eq!(Value::F64(f64::NAN).cast(I32), Value::I32(0));
        assert_eq!(Value::F64(-2.7).cast(I64), Value::I64(-2));
        assert_eq!(Value::I64(3).cast(Bool), Value::Bool(true));
    }
}
