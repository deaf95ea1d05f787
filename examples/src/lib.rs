//! The seed workloads as programs: each builds its expression with accel,
//! runs it on the embedded client, checks the result against an independent
//! scalar reference and reports time and task counts.

pub mod args;
pub mod image;
pub mod report;
pub mod samples;
pub mod workloads;

pub use args::{Args, Size};
pub use report::Report;
