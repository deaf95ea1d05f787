//! The embedded runtime: the cluster's scheduling core driving one in-process
//! worker whose threads are the rayon pool. No sockets, no serialization:
//! chunks are shared `Arc`s and fused outputs are written in place.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use accel_core::exec::{run_task, run_task_into};
use accel_core::kernel::OutSlice;
use accel_core::{Chunk, ChunkKey, Error, Plan, Result};
use accel_scheduler::{ClientId, Command, Core, Event, JobId, TaskRef, WorkerId};

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStats {
    pub tasks: usize,
    /// Largest total size of chunks held at once (excluding the result arrays).
    pub peak_bytes: usize,
    pub elapsed: Duration,
    /// Tasks run again because a worker holding their chunks was lost.
    pub recomputed: usize,
}

const JOB: JobId = JobId(0);
const ME: ClientId = ClientId(0);
const WORKER: WorkerId = WorkerId(0);

/// Runs every task of `plan`. Each chunk of an output stage is handed to
/// `on_output(output_number, key, chunk)` as soon as it exists, except the
/// chunks listed in `direct`, which are written straight into their rows.
pub fn run_plan(
    plan: Arc<Plan>,
    mut direct: HashMap<ChunkKey, Vec<OutSlice<'_>>>,
    mut on_output: impl FnMut(usize, ChunkKey, &Chunk) -> Result<()>,
    progress: &crate::progress::Progress,
) -> Result<RunStats> {
    let start = Instant::now();
    let mut core = Core::new();
    let threads = rayon::current_num_threads() as u32;
    core.handle(Event::WorkerJoined {
        worker: WORKER,
        name: "embedded".into(),
        nthreads: threads,
        memory_limit: None,
        functions: plan.function_names(),
    });
    let mut pending = core.handle(Event::JobSubmitted {
        job: JOB,
        client: ME,
        plan: plan.clone(),
    });
    pending.extend(core.schedule());
    let mut output_of: Vec<Vec<usize>> = vec![Vec::new(); plan.stages.len()];
    for (o, s) in plan.outputs.iter().enumerate() {
        output_of[s.index()].push(o);
    }
    // Chunks of stages nobody reads (terminal outputs) are handed over, not kept.
    let mut consumed = vec![false; plan.stages.len()];
    for st in &plan.stages {
        for i in &st.inputs {
            consumed[i.index()] = true;
        }
    }
    let mut store: HashMap<ChunkKey, Arc<Chunk>> = HashMap::new();
    let (tx, rx) = mpsc::channel::<(TaskRef, Result<Option<Arc<Chunk>>>)>();
    let mut stats = RunStats {
        tasks: plan.task_count(),
        ..RunStats::default()
    };
    let mut held = 0usize;
    let mut done = 0u64;
    let total = plan.task_count() as u64;
    let mut failure: Option<Error> = None;
    let mut finished = false;

    rayon::in_place_scope(|scope| {
        let mut in_flight = 0usize;
        let mut pending_events: Vec<Event> = Vec::new();
        loop {
            for cmd in std::mem::take(&mut pending) {
                match cmd {
                    Command::Assign { tasks, .. } => {
                        for a in tasks {
                            let key = a.task.key;
                            let args: Option<Vec<Arc<Chunk>>> = a
                                .inputs
                                .iter()
                                .map(|(t, _)| store.get(&t.key).cloned())
                                .collect();
                            let dest = direct.remove(&key);
                            let tx = tx.clone();
                            let plan = &plan;
                            scope.spawn(move |_| {
                                let r = match args {
                                    None => {
                                        Err(Error::Graph(format!("inputs of {key:?} are missing")))
                                    }
                                    Some(args) => catch_unwind(AssertUnwindSafe(|| match dest {
                                        Some(rows) => {
                                            run_task_into(plan, key, &args, rows).map(|_| None)
                                        }
                                        None => run_task(plan, key, &args).map(Some),
                                    }))
                                    .unwrap_or_else(|p| Err(panicked(&p))),
                                };
                                // The receiver outlives the scope.
                                let _ = tx.send((a.task, r));
                            });
                            in_flight += 1;
                        }
                    }
                    Command::Release { chunks, .. } => {
                        for t in chunks {
                            if let Some(c) = store.remove(&t.key) {
                                held -= c.nbytes();
                            }
                        }
                    }
                    // One worker never has anyone to give tasks to.
                    Command::Steal { worker, id, tasks } => {
                        pending_events.push(Event::StealReply {
                            worker,
                            id,
                            stolen: Vec::new(),
                            refused: tasks,
                        })
                    }
                    Command::JobDone { .. } => finished = true,
                    // One worker in this process: it never retires or copies,
                    // and everything goes when the run ends.
                    Command::Replicate { .. }
                    | Command::Retired { .. }
                    | Command::OutputReady { .. }
                    | Command::JobForgotten { .. } => {}
                    Command::JobFailed { error, .. } => {
                        failure.get_or_insert(Error::Task {
                            task: "job".into(),
                            message: error,
                        });
                    }
                }
            }
            if !pending_events.is_empty() {
                for e in std::mem::take(&mut pending_events) {
                    pending.extend(core.handle(e));
                }
                pending.extend(core.schedule());
                continue;
            }
            if in_flight == 0 {
                break;
            }
            let Ok((task, result)) = rx.recv() else { break };
            in_flight -= 1;
            if failure.is_some() {
                continue; // drain what is still running
            }
            let event = match result {
                Ok(chunk) => {
                    let nbytes = chunk.as_ref().map_or(0, |c| c.nbytes());
                    if let Some(chunk) = chunk {
                        for &o in &output_of[task.key.stage.index()] {
                            if let Err(e) = on_output(o, task.key, &chunk) {
                                failure.get_or_insert(e);
                            }
                        }
                        if consumed[task.key.stage.index()] {
                            held += nbytes;
                            stats.peak_bytes = stats.peak_bytes.max(held);
                            store.insert(task.key, chunk);
                        }
                    }
                    done += 1;
                    progress.update(done, total);
                    Event::TaskFinished {
                        worker: WORKER,
                        task,
                        nbytes: nbytes as u64,
                    }
                }
                Err(e) => Event::TaskFailed {
                    worker: WORKER,
                    task,
                    message: match e {
                        Error::Task { message, .. } => message,
                        other => other.to_string(),
                    },
                },
            };
            pending = core.handle(event);
            pending.extend(core.schedule());
        }
    });
    // Outputs that were pasted are no longer needed in the store.
    core.handle(Event::ResultsFetched { job: JOB });
    if let Some(e) = failure {
        return Err(e);
    }
    if !finished {
        return Err(Error::Graph(
            "the plan stopped before every task ran".into(),
        ));
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

fn panicked(p: &Box<dyn std::any::Any + Send>) -> Error {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::Task {
        task: String::new(),
        message: format!("panicked: {msg}"),
    }
}
