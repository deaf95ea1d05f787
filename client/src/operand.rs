//! Operands of elementwise operations: arrays or Rust scalars.

use accel_core::shape::Chunks;
use accel_core::{DType, Meta, Op, Scalar};
use num_complex::Complex64;

use crate::expr::Array;

/// An array or a scalar literal (which adapts to the array's dtype like a
/// Python scalar does in NumPy).
#[derive(Clone, Debug)]
pub enum Operand {
    Array(Array),
    Scalar(Scalar),
}

impl From<Array> for Operand {
    fn from(a: Array) -> Self {
        Operand::Array(a)
    }
}
impl From<&Array> for Operand {
    fn from(a: &Array) -> Self {
        Operand::Array(a.clone())
    }
}
macro_rules! scalar_operand {
    ($($t:ty),*) => {$(
        impl From<$t> for Operand {
            fn from(v: $t) -> Self {
                Operand::Scalar(Scalar::from(v))
            }
        }
    )*};
}
scalar_operand!(f64, f32, i64, i32, bool, Complex64);

impl Operand {
    /// dtype the operand has on its own (None for an array that failed to build).
    pub(crate) fn own_dtype(&self) -> Option<DType> {
        match self {
            Operand::Array(a) => a.dtype().ok(),
            Operand::Scalar(s) => Some(s.natural_dtype()),
        }
    }

    /// The operand as an array; a scalar becomes a 0-d constant typed to
    /// combine with `partner` under NumPy's weak-scalar rule.
    pub(crate) fn into_array(self, partner: Option<DType>) -> Array {
        match self {
            Operand::Array(a) => a,
            Operand::Scalar(s) => {
                let dtype = match partner {
                    Some(p) => s.promote_with(p),
                    None => s.natural_dtype(),
                };
                scalar_array(s, dtype)
            }
        }
    }
}

/// A 0-d constant.
pub(crate) fn scalar_array(s: Scalar, dtype: DType) -> Array {
    Array::from_expr(
        Op::Full(s.to_value(dtype)),
        vec![],
        Meta {
            shape: vec![],
            dtype,
            chunks: Chunks(vec![]),
        },
    )
}

/// Converts several operands to arrays, typing scalars against the arrays among them.
pub(crate) fn arrays_of(ops: Vec<Operand>) -> Vec<Array> {
    let partner = ops
        .iter()
        .filter(|o| matches!(o, Operand::Array(_)))
        .filter_map(Operand::own_dtype)
        .reduce(DType::promote);
    let partner = partner.or_else(|| {
        ops.iter()
            .filter_map(Operand::own_dtype)
            .reduce(DType::promote)
    });
    ops.into_iter().map(|o| o.into_array(partner)).collect()
}
