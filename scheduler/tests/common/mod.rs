//! What the scripted core tests share: a simulated core that checks its
//! invariants after every event, plans, and helpers to read its commands.

#![allow(dead_code)] // each test file uses its own part

use std::collections::VecDeque;
use std::sync::Arc;

use accel::{Array, from_ndarray};
use accel_core::{ChunkKey, Plan, StageId};
use accel_scheduler::{Assignment, ClientId, Command, Core, Event, JobId, TaskRef, WorkerId};

/// A core plus the log of everything it said.
pub struct Sim {
    pub core: Core,
    pub log: Vec<Command>,
}

impl Sim {
    pub fn new() -> Sim {
        Sim {
            core: Core::new(),
            log: Vec::new(),
        }
    }

    /// Applies events, runs one scheduling pass, checks invariants; returns the commands.
    pub fn step(&mut self, events: impl IntoIterator<Item = Event>) -> Vec<Command> {
        let mut out = Vec::new();
        for e in events {
            out.extend(self.core.handle(e));
            self.core.sanity_check().unwrap();
        }
        out.extend(self.core.schedule());
        self.core.sanity_check().unwrap();
        self.log.extend(out.clone());
        out
    }

    pub fn worker(&mut self, id: u32, nthreads: u32) -> Vec<Command> {
        self.gpu_worker(id, nthreads, 0)
    }

    /// A worker whose fused kernels run on `gpus` GPUs.
    pub fn gpu_worker(&mut self, id: u32, nthreads: u32, gpus: u32) -> Vec<Command> {
        self.step([Event::WorkerJoined {
            worker: WorkerId(id),
            name: format!("w{id}"),
            nthreads,
            memory_limit: None,
            functions: Vec::new(),
            gpus,
        }])
    }

    /// A worker that can run the `map_blocks` functions `functions`.
    pub fn worker_offering(&mut self, id: u32, nthreads: u32, functions: &[&str]) -> Vec<Command> {
        self.step([Event::WorkerJoined {
            worker: WorkerId(id),
            name: format!("w{id}"),
            nthreads,
            memory_limit: None,
            functions: functions.iter().map(|f| f.to_string()).collect(),
            gpus: 0,
        }])
    }

    pub fn submit(&mut self, job: u64, client: u64, plan: Arc<Plan>) -> Vec<Command> {
        self.step([Event::JobSubmitted {
            job: JobId(job),
            client: ClientId(client),
            plan,
        }])
    }

    pub fn finish(&mut self, worker: u32, task: TaskRef) -> Vec<Command> {
        self.step([Event::TaskFinished {
            worker: WorkerId(worker),
            task,
            nbytes: 1000,
        }])
    }
}

pub fn plan_of(a: &Array) -> Arc<Plan> {
    Arc::new(a.plan().unwrap().plan)
}

/// x (4 source chunks) → y = sin(x * 2) (4 map tasks), each reading one chunk.
pub fn two_stage() -> Arc<Plan> {
    let x = from_ndarray(&ndarray::Array1::<f64>::zeros(40), 10);
    plan_of(&(x * 2.0).sin())
}

pub fn assigned(cmds: &[Command]) -> Vec<(WorkerId, Assignment)> {
    cmds.iter()
        .flat_map(|c| match c {
            Command::Assign { worker, tasks } => {
                tasks.iter().map(|t| (*worker, t.clone())).collect()
            }
            _ => vec![],
        })
        .collect()
}

pub fn task(job: u64, stage: u32, chunk: u32) -> TaskRef {
    TaskRef {
        job: JobId(job),
        key: ChunkKey {
            stage: StageId(stage),
            chunk,
        },
    }
}

/// Runs every assigned task to completion (FIFO); returns the final commands.
pub fn run_all(
    sim: &mut Sim,
    mut pending: VecDeque<(WorkerId, Assignment)>,
    fail: Option<TaskRef>,
) -> Vec<Command> {
    let mut all = Vec::new();
    while let Some((w, a)) = pending.pop_front() {
        let ev = if Some(a.task) == fail {
            Event::TaskFailed {
                worker: w,
                task: a.task,
                message: "boom".into(),
            }
        } else {
            Event::TaskFinished {
                worker: w,
                task: a.task,
                nbytes: 8,
            }
        };
        let cmds = sim.step([ev]);
        pending.extend(assigned(&cmds));
        all.extend(cmds);
    }
    all
}

impl Sim {
    pub fn with(core: Core) -> Sim {
        Sim {
            core,
            log: Vec::new(),
        }
    }

    pub fn started(&mut self, worker: u32, tasks: &[TaskRef]) -> Vec<Command> {
        self.step([Event::TasksStarted {
            worker: WorkerId(worker),
            tasks: tasks.to_vec(),
        }])
    }

    pub fn lose(&mut self, worker: u32) -> Vec<Command> {
        self.step([Event::WorkerLost {
            worker: WorkerId(worker),
        }])
    }
}

/// Where each output chunk is, per output.
pub type Outputs = Vec<Vec<(TaskRef, WorkerId)>>;

/// The `JobDone` in `cmds`: output locations and the count of tasks run again.
pub fn job_done(cmds: &[Command]) -> Option<(Outputs, usize)> {
    cmds.iter().find_map(|c| match c {
        Command::JobDone {
            outputs,
            recomputed,
            ..
        } => Some((outputs.clone(), *recomputed)),
        _ => None,
    })
}

/// The error of the `JobFailed` in `cmds`.
pub fn job_failed(cmds: &[Command]) -> Option<String> {
    cmds.iter().find_map(|c| match c {
        Command::JobFailed { error, .. } => Some(error.clone()),
        _ => None,
    })
}

/// Tasks assigned in `cmds`, without their workers.
pub fn tasks_of(cmds: &[Command]) -> Vec<TaskRef> {
    assigned(cmds).into_iter().map(|(_, a)| a.task).collect()
}

/// x: 4 source chunks → 4 partial sums of sin(2x) (one per source chunk) → one combine.
pub fn sources_partials_combine() -> Arc<Plan> {
    let x = from_ndarray(&ndarray::Array1::<f64>::linspace(0.0, 1.0, 40), 10);
    plan_of(&(x * 2.0).sin().sum())
}
