//! What goes into the core and what comes out.

use std::sync::Arc;

use accel_core::Plan;

use super::ids::{ClientId, JobId, TaskRef, WorkerId};

#[derive(Clone, Debug)]
pub enum Event {
    WorkerJoined {
        worker: WorkerId,
        nthreads: u32,
    },
    /// Disconnected or stopped heartbeating.
    WorkerLost {
        worker: WorkerId,
    },
    JobSubmitted {
        job: JobId,
        client: ClientId,
        plan: Arc<Plan>,
    },
    TaskFinished {
        worker: WorkerId,
        task: TaskRef,
        nbytes: u64,
    },
    TaskFailed {
        worker: WorkerId,
        task: TaskRef,
        message: String,
    },
    /// The client holds the results of a finished job: its outputs can go.
    ResultsFetched {
        job: JobId,
    },
    /// A worker's answer to [`Command::Steal`]: which tasks it gave back
    /// (not started yet) and which it is already running.
    StealReply {
        worker: WorkerId,
        stolen: Vec<TaskRef>,
        refused: Vec<TaskRef>,
    },
    JobCancelled {
        job: JobId,
    },
    ClientGone {
        client: ClientId,
    },
}

/// A task for a worker, with where each of its inputs can be fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub task: TaskRef,
    pub inputs: Vec<(TaskRef, WorkerId)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// All assignments for one worker from one scheduling pass.
    Assign {
        worker: WorkerId,
        tasks: Vec<Assignment>,
    },
    /// Asks a busy worker to give back queued tasks that it has not started,
    /// for idle workers.
    Steal {
        worker: WorkerId,
        tasks: Vec<TaskRef>,
    },
    /// Chunks no task or client needs any more.
    Release {
        worker: WorkerId,
        chunks: Vec<TaskRef>,
    },
    /// Every task ran; each output chunk (per requested output, in chunk order) and where it is.
    JobDone {
        job: JobId,
        client: ClientId,
        outputs: Vec<Vec<(TaskRef, WorkerId)>>,
    },
    JobFailed {
        job: JobId,
        client: ClientId,
        error: String,
    },
}
