//! The scheduling state machine.

mod event;
mod ids;
mod job;
mod state;

pub use event::{Assignment, Command, Event};
pub use ids::{ClientId, JobId, TaskRef, WorkerId};
pub use state::Core;
