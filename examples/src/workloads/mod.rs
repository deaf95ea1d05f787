//! One module per seed workload of WORKLOADS.md.

pub mod discriminant;
pub mod fractal;
pub mod harmonic;
pub mod heat;
pub mod heat_frames;
pub mod inc25;
pub mod mag;
pub mod pi;
pub mod trace;
pub mod trig;

use crate::{Args, Report};

/// Runs one workload and reports on each of its cases.
pub type Runner = fn(&Args) -> anyhow::Result<Vec<Report>>;

/// Every workload, in gallery order.
pub const ALL: [(&str, Runner); 9] = [
    ("mag", |a| Ok(vec![mag::run(a)?])),
    ("trig", trig::run),
    ("discriminant", discriminant::run),
    ("harmonic", |a| Ok(vec![harmonic::run(a)?])),
    ("inc25", |a| Ok(vec![inc25::run(a)?])),
    ("fractal", fractal::run),
    ("heat", heat::run),
    ("pi", |a| Ok(vec![pi::run(a)?])),
    ("trace", |a| Ok(vec![trace::run(a)?])),
];
