//! What goes into the core and what comes out.

use std::sync::Arc;

use accel_core::Plan;

use super::ids::{ClientId, JobId, TaskRef, WorkerId};

#[derive(Clone, Debug)]
pub enum Event {
    WorkerJoined {
        worker: WorkerId,
        /// Shown in errors that name the worker.
        name: String,
        nthreads: u32,
        /// Bytes it may use, if limited.
        memory_limit: Option<u64>,
        /// Names of the `map_blocks` functions it can run.
        functions: Vec<String>,
        /// GPUs its fused kernels run on (stages with a GPU form go there first).
        gpus: u32,
    },
    /// The worker's memory went above (or back under) its pause limit.
    WorkerPaused {
        worker: WorkerId,
        paused: bool,
    },
    /// Disconnected or stopped heartbeating. Tasks it was running are blamed
    /// for the loss unless it was retiring.
    WorkerLost {
        worker: WorkerId,
    },
    /// The worker is stopping on purpose (SIGTERM): it takes no new work, its
    /// queued tasks go back, its needed chunks are copied to peers, then it
    /// is told it may leave ([`Command::Retired`]).
    WorkerRetiring {
        worker: WorkerId,
    },
    JobSubmitted {
        job: JobId,
        client: ClientId,
        plan: Arc<Plan>,
    },
    /// A worker's threads began these tasks (only running tasks are blamed
    /// when a worker dies).
    TasksStarted {
        worker: WorkerId,
        tasks: Vec<TaskRef>,
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
    /// A task could not fetch some inputs from where it was told they are:
    /// those copies are treated as lost, and the task waits for them again.
    InputsMissing {
        worker: WorkerId,
        task: TaskRef,
        missing: Vec<(TaskRef, WorkerId)>,
    },
    /// The client could not fetch these result chunks: they are recomputed
    /// (if really lost) and the job reports its outputs again.
    ResultsMissing {
        job: JobId,
        missing: Vec<(TaskRef, WorkerId)>,
    },
    /// A worker's answer to [`Command::Replicate`]: copies it now holds, and
    /// those it could not make.
    Replicated {
        worker: WorkerId,
        done: Vec<(TaskRef, u64)>,
        failed: Vec<TaskRef>,
    },
    /// The client holds the results of a finished job: its outputs can go.
    ResultsFetched {
        job: JobId,
    },
    /// A worker's answer to [`Command::Steal`]: which tasks it gave back
    /// (not started yet) and which it is already running.
    StealReply {
        worker: WorkerId,
        /// The request answered (a reply to an older request is stale).
        id: u64,
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
        id: u64,
        tasks: Vec<TaskRef>,
    },
    /// Chunks no task or client needs any more.
    Release {
        worker: WorkerId,
        chunks: Vec<TaskRef>,
    },
    /// Fetch these chunks from the workers named and keep them (a retiring
    /// worker's chunks moving to a peer).
    Replicate {
        worker: WorkerId,
        chunks: Vec<(TaskRef, WorkerId)>,
    },
    /// A retiring worker holds nothing needed and runs nothing: it may leave.
    Retired { worker: WorkerId },
    /// Every task ran; each output chunk (per requested output, in chunk
    /// order) and where it is. Sent again if lost outputs had to be recomputed.
    JobDone {
        job: JobId,
        client: ClientId,
        outputs: Vec<Vec<(TaskRef, WorkerId)>>,
        /// Tasks run again because chunks they made were lost.
        recomputed: usize,
    },
    JobFailed {
        job: JobId,
        client: ClientId,
        error: String,
    },
    /// An output chunk exists: the client may fetch it before the job ends.
    OutputReady {
        job: JobId,
        client: ClientId,
        chunk: TaskRef,
        worker: WorkerId,
    },
    /// The job is gone from the core (done and fetched, failed, cancelled):
    /// every worker can drop its plan and chunks.
    JobForgotten { job: JobId },
}
