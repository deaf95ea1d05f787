//! The scheduling state machine.

mod event;
mod ids;
mod job;
mod persist;
mod recover;
mod retire;
mod sanity;
mod schedule;
mod state;
mod status;
mod worker;

pub use event::{Assignment, Command, Event};
pub use ids::{ClientId, JobId, TaskRef, WorkerId};
pub use state::{Core, CoreConfig};
pub use status::{CoreStatus, JobStatus, StageStatus, WorkerStatus};
