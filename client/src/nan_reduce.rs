//! NaN-aware reductions (`nansum`, `nanmean`, `nanmin`, `nanmax`, `nanvar`,
//! `nanstd`), written as masks around the plain ones so the masking fuses into
//! the reduction's kernels. Slices with no number in them give NaN, as in NumPy.

use accel_core::DType;
use accel_core::op::ReduceOp;

use crate::elementwise::where_;
use crate::expr::Array;
use crate::reduce::ReduceOpts;

impl Array {
    /// The number of elements that are not NaN, over the reduced axes (i64).
    #[track_caller]
    pub fn count_numbers(&self, opts: &ReduceOpts) -> Array {
        (!self.isnan())
            .astype(DType::I64)
            .reduce(ReduceOp::Sum, opts)
    }

    /// Sum treating NaN as zero.
    #[track_caller]
    pub fn nansum_with(&self, opts: &ReduceOpts) -> Array {
        where_(&self.isnan(), 0, self).reduce(ReduceOp::Sum, opts)
    }

    /// Mean of the elements that are not NaN.
    #[track_caller]
    pub fn nanmean_with(&self, opts: &ReduceOpts) -> Array {
        self.nansum_with(opts) / self.count_numbers(opts)
    }

    /// Minimum ignoring NaN (NaN where a slice has no number).
    #[track_caller]
    pub fn nanmin_with(&self, opts: &ReduceOpts) -> Array {
        self.nan_extreme(ReduceOp::Min, f64::INFINITY, opts)
    }

    /// Maximum ignoring NaN (NaN where a slice has no number).
    #[track_caller]
    pub fn nanmax_with(&self, opts: &ReduceOpts) -> Array {
        self.nan_extreme(ReduceOp::Max, f64::NEG_INFINITY, opts)
    }

    #[track_caller]
    fn nan_extreme(&self, op: ReduceOp, neutral: f64, opts: &ReduceOpts) -> Array {
        match self.dtype() {
            Ok(d) if d.is_float() => {
                let m = where_(&self.isnan(), neutral, self).reduce(op, opts);
                let none = self.count_numbers(opts).equal(0);
                where_(&none, f64::NAN, &m).astype(d)
            }
            // Other dtypes have no NaN (complex numbers are refused by min/max).
            _ => self.reduce(op, opts),
        }
    }

    /// Variance of the elements that are not NaN, with `ddof` delta degrees
    /// of freedom (two passes: the mean, then squared deviations from it;
    /// complex numbers give the mean squared modulus, a real number).
    #[track_caller]
    pub fn nanvar_with(&self, ddof: u32, opts: &ReduceOpts) -> Array {
        let keep = opts.clone().keepdims(true);
        let mean = self.nanmean_with(&keep);
        let dev = self - &mean;
        let sq = match self.dtype() {
            Ok(DType::C128) => dev.abs().powi(2),
            _ => dev.powi(2),
        };
        let ss = where_(&self.isnan(), 0.0, &sq).reduce(ReduceOp::Sum, opts);
        let dof = self.count_numbers(opts) - i64::from(ddof);
        let var = &ss / &dof;
        where_(&dof.le(0), f64::NAN, &var)
    }

    /// Standard deviation of the elements that are not NaN.
    #[track_caller]
    pub fn nanstd_with(&self, ddof: u32, opts: &ReduceOpts) -> Array {
        self.nanvar_with(ddof, opts).sqrt()
    }

    /// [`Array::nansum_with`] over every axis.
    #[track_caller]
    pub fn nansum(&self) -> Array {
        self.nansum_with(&ReduceOpts::default())
    }

    /// [`Array::nanmean_with`] over every axis.
    #[track_caller]
    pub fn nanmean(&self) -> Array {
        self.nanmean_with(&ReduceOpts::default())
    }

    /// [`Array::nanmin_with`] over every axis.
    #[track_caller]
    pub fn nanmin(&self) -> Array {
        self.nanmin_with(&ReduceOpts::default())
    }

    /// [`Array::nanmax_with`] over every axis.
    #[track_caller]
    pub fn nanmax(&self) -> Array {
        self.nanmax_with(&ReduceOpts::default())
    }

    /// [`Array::nanvar_with`] over every axis.
    #[track_caller]
    pub fn nanvar(&self, ddof: u32) -> Array {
        self.nanvar_with(ddof, &ReduceOpts::default())
    }

    /// [`Array::nanstd_with`] over every axis.
    #[track_caller]
    pub fn nanstd(&self, ddof: u32) -> Array {
        self.nanstd_with(ddof, &ReduceOpts::default())
    }
}
