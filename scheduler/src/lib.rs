//! accel-scheduler: the scheduling core of accel's distributed runtime.
//!
//! The core is a synchronous state machine: [`Event`]s in (a job submitted, a
//! worker joined or lost, tasks finished or failed, a client gone), [`Command`]s
//! out (assignments and releases per worker, job results). It does no I/O and
//! reads no clock, so it is driven the same way by a network adapter and by tests.

pub mod core;
pub mod server;

pub use crate::core::{
    Assignment, ClientId, Command, Core, CoreConfig, Event, JobId, TaskRef, WorkerId,
};
