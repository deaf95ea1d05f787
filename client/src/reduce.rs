//! Reductions: whole-array or along axes, computed as a tree.

use accel_core::infer;
use accel_core::op::{Op, ReduceOp, ReduceSpec};

use crate::error::Error;
use crate::expr::Array;

/// Default fan-in of the combine tree.
pub const DEFAULT_SPLIT_EVERY: usize = 16;

/// Options of a reduction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReduceOpts {
    /// Axes to reduce (negative counts from the end); `None` reduces all.
    pub axes: Option<Vec<isize>>,
    pub keepdims: bool,
    /// How many partial results each combine task merges.
    pub split_every: usize,
}

impl Default for ReduceOpts {
    fn default() -> Self {
        ReduceOpts {
            axes: None,
            keepdims: false,
            split_every: DEFAULT_SPLIT_EVERY,
        }
    }
}

impl ReduceOpts {
    /// Reduce along one axis.
    pub fn axis(axis: isize) -> ReduceOpts {
        ReduceOpts {
            axes: Some(vec![axis]),
            ..ReduceOpts::default()
        }
    }

    pub fn keepdims(mut self, keep: bool) -> ReduceOpts {
        self.keepdims = keep;
        self
    }

    pub fn split_every(mut self, n: usize) -> ReduceOpts {
        self.split_every = n;
        self
    }
}

impl Array {
    /// A reduction with explicit options.
    #[track_caller]
    pub fn reduce(&self, op: ReduceOp, opts: &ReduceOpts) -> Array {
        let name = op.name();
        let ndim = match self.ndim() {
            Ok(n) => n,
            Err(e) => return Array::failed(e),
        };
        let axes: Vec<usize> = match &opts.axes {
            None => (0..ndim).collect(),
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for &a in list {
                    let ax = if a < 0 { a + ndim as isize } else { a };
                    if ax < 0 || ax >= ndim as isize {
                        return Array::failed(Error::Invalid(format!(
                            "{name}: axis {a} is out of bounds for an array of {ndim} dimensions"
                        )));
                    }
                    out.push(ax as usize);
                }
                out.sort_unstable();
                if out.windows(2).any(|w| w[0] == w[1]) {
                    return Array::failed(Error::Invalid(format!(
                        "{name}: repeated axis in {list:?}"
                    )));
                }
                out
            }
        };
        let spec = ReduceSpec {
            op,
            axes,
            keepdims: opts.keepdims,
            split_every: opts.split_every,
        };
        Array::build(&name, &[self], |m| {
            let meta = infer::reduce(m[0], &spec)?;
            Ok((Op::Reduce(spec.clone()), meta))
        })
    }
}

macro_rules! reductions {
    ($($(#[$doc:meta])* $all:ident, $axis:ident => $op:expr;)*) => {
        impl Array {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $all(&self) -> Array {
                    self.reduce($op, &ReduceOpts::default())
                }
                $(#[$doc])*
                /// Along one axis.
                #[track_caller]
                pub fn $axis(&self, axis: isize) -> Array {
                    self.reduce($op, &ReduceOpts::axis(axis))
                }
            )*
        }
    };
}

reductions! {
    /// Sum (integers and bools sum as i64).
    sum, sum_axis => ReduceOp::Sum;
    prod, prod_axis => ReduceOp::Prod;
    /// Arithmetic mean.
    mean, mean_axis => ReduceOp::Mean;
    min, min_axis => ReduceOp::Min;
    max, max_axis => ReduceOp::Max;
    /// Whether any element is non-zero.
    any, any_axis => ReduceOp::Any;
    /// Whether every element is non-zero.
    all, all_axis => ReduceOp::All;
    /// Index (i64) of the first smallest element, NaN counting as smallest;
    /// over the flattened array, or along an axis (NumPy's `argmin`).
    argmin, argmin_axis => ReduceOp::ArgMin;
    /// Index (i64) of the first largest element, NaN counting as largest.
    argmax, argmax_axis => ReduceOp::ArgMax;
}

impl Array {
    /// Variance with `ddof` delta degrees of freedom.
    #[track_caller]
    pub fn var(&self, ddof: u32) -> Array {
        self.reduce(ReduceOp::Var(ddof), &ReduceOpts::default())
    }

    /// Standard deviation with `ddof` delta degrees of freedom.
    #[track_caller]
    pub fn std(&self, ddof: u32) -> Array {
        self.reduce(ReduceOp::Std(ddof), &ReduceOpts::default())
    }
}
