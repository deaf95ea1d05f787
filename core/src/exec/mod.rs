//! Running plans: one task, or a whole plan in-process.

pub mod local;
pub mod task;

pub use local::{RunStats, run_plan};
pub use task::{run_task, run_task_into};
