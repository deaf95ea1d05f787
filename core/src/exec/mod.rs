//! Running one task of a plan.

pub mod task;

pub use task::{run_task, run_task_into};
