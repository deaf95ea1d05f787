//! Cumulative sums and products along an axis (blocked scans: each chunk
//! scanned, a chain of carries along the axis, the carries applied).

use accel_core::infer;
use accel_core::op::{Op, ReduceOp};

use crate::expr::Array;

impl Array {
    /// Cumulative sum along `axis` (negative counts from the end); integers
    /// and bools sum as i64. For NumPy's axis-less form, `reshape` to 1-d first.
    #[track_caller]
    pub fn cumsum(&self, axis: isize) -> Array {
        self.scan(ReduceOp::Sum, axis)
    }

    /// Cumulative product along `axis`.
    #[track_caller]
    pub fn cumprod(&self, axis: isize) -> Array {
        self.scan(ReduceOp::Prod, axis)
    }

    #[track_caller]
    fn scan(&self, op: ReduceOp, axis: isize) -> Array {
        let name = format!("cum{}", op.name());
        let n = self.ndim().unwrap_or(0) as isize;
        let ax = if axis < 0 { axis + n } else { axis };
        if ax < 0 || ax >= n {
            return Array::build_error(
                &name,
                accel_core::Error::Invalid(format!(
                    "axis {axis} is out of bounds for an array of {n} dimensions"
                )),
            );
        }
        let axis = ax as usize;
        Array::build(&name, &[self], |m| {
            Ok((Op::Scan { op, axis }, infer::scan(m[0], op, axis)?))
        })
    }
}
