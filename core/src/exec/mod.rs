//! Running one task of a plan.

pub mod boxes;
pub mod failed;
pub mod offload;
pub mod scan;
pub mod task;

pub use failed::{AfterFailure, after_failure};
pub use offload::{Fold, Offload, Operand};
pub use task::{
    copy_box, run_task, run_task_into, run_task_into_or_back, run_task_with, writes_interleave,
};
