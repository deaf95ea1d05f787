//! One module per seed workload of WORKLOADS.md.

pub mod discriminant;
pub mod fractal;
pub mod harmonic;
pub mod inc25;
pub mod mag;
pub mod pi;
pub mod trace;
pub mod trig;

use crate::{Args, Report};

/// Runs one workload and reports on it.
pub type Runner = fn(&Args) -> anyhow::Result<Report>;

/// Every workload, in gallery order.
pub const ALL: [(&str, Runner); 8] = [
    ("mag", mag::run),
    ("trig", trig::run),
    ("discriminant", discriminant::run),
    ("harmonic", harmonic::run),
    ("inc25", inc25::run),
    ("fractal", fractal::run),
    ("pi", pi::run),
    ("trace", trace::run),
];
