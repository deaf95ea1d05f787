//! In-process execution of a plan on the rayon pool: tasks run as soon as
//! their inputs exist, the deepest ready task first, with a bounded number in
//! flight, and every chunk is dropped the moment its last consumer has run.

use std::collections::{BinaryHeap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::task::{run_task, run_task_into};
use crate::buffer::Chunk;
use crate::error::{Error, Result};
use crate::kernel::OutSlice;
use crate::plan::{ChunkKey, Plan, StageId, StageKind};
use crate::shape::grid_index;

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStats {
    pub tasks: usize,
    /// Largest total size of chunks held at once (excluding the assembled result).
    pub peak_bytes: usize,
    pub elapsed: Duration,
}

/// Task numbering: tasks of stage s are `first[s]..first[s+1]`.
struct Index {
    first: Vec<usize>,
}

impl Index {
    fn new(plan: &Plan) -> Index {
        let mut first = Vec::with_capacity(plan.stages.len() + 1);
        let mut acc = 0;
        for s in &plan.stages {
            first.push(acc);
            acc += s.task_count();
        }
        first.push(acc);
        Index { first }
    }
    fn id(&self, k: ChunkKey) -> usize {
        self.first[k.stage.index()] + k.chunk as usize
    }
    fn key(&self, id: usize) -> ChunkKey {
        let s = self.first.partition_point(|&f| f <= id) - 1;
        ChunkKey {
            stage: StageId(s as u32),
            chunk: (id - self.first[s]) as u32,
        }
    }
    fn total(&self) -> usize {
        *self.first.last().unwrap_or(&0)
    }
}

/// Runs every task of `plan`. Each chunk of an output stage is handed to
/// `on_output(output_number, key, chunk)` as soon as it exists.
///
/// Chunks listed in `direct` (terminal map stages only) are written straight
/// into the memory given for them and not handed to `on_output`.
pub fn run_plan(
    plan: &Plan,
    mut direct: HashMap<ChunkKey, Vec<OutSlice<'_>>>,
    mut on_output: impl FnMut(usize, ChunkKey, &Chunk) -> Result<()>,
) -> Result<RunStats> {
    let start = Instant::now();
    let index = Index::new(plan);
    let total = index.total();
    let mut inputs: Vec<Vec<usize>> = Vec::with_capacity(total);
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); total];
    for id in 0..total {
        let ins: Vec<usize> = plan
            .task_inputs(index.key(id))
            .into_iter()
            .map(|k| index.id(k))
            .collect();
        for &i in &ins {
            if i >= id {
                return Err(Error::Graph(format!(
                    "task {id} depends on a later task {i}"
                )));
            }
            consumers[i].push(id);
        }
        inputs.push(ins);
    }
    let mut waiting: Vec<usize> = inputs.iter().map(Vec::len).collect();
    let mut refs: Vec<usize> = consumers.iter().map(Vec::len).collect();
    let mut output_of: Vec<Vec<usize>> = vec![Vec::new(); plan.stages.len()];
    for (o, s) in plan.outputs.iter().enumerate() {
        output_of[s.index()].push(o);
    }
    let mut store: Vec<Option<Arc<Chunk>>> = vec![None; total];
    // Deepest stage first (finishes work and frees memory), then chunk order.
    let mut ready: BinaryHeap<(usize, std::cmp::Reverse<usize>)> = BinaryHeap::new();
    for (id, &w) in waiting.iter().enumerate() {
        if w == 0 {
            ready.push((index.key(id).stage.index(), std::cmp::Reverse(id)));
        }
    }
    let max_in_flight = rayon::current_num_threads() + 1;
    for key in direct.keys() {
        let id = index.id(*key);
        if id >= total
            || !consumers[id].is_empty()
            || !matches!(plan.stage(key.stage).kind, StageKind::Map(_))
        {
            return Err(Error::Graph(format!(
                "chunk {key:?} cannot be written in place"
            )));
        }
    }
    let (tx, rx) = mpsc::channel::<(usize, Result<Option<Arc<Chunk>>>)>();
    let mut held = 0usize;
    let mut stats = RunStats {
        tasks: total,
        ..RunStats::default()
    };
    let mut failure: Option<Error> = None;
    let mut done = 0usize;

    rayon::in_place_scope(|scope| {
        let mut in_flight = 0usize;
        loop {
            while failure.is_none() && in_flight < max_in_flight {
                let Some((_, std::cmp::Reverse(id))) = ready.pop() else {
                    break;
                };
                let args: Vec<Arc<Chunk>> = inputs[id]
                    .iter()
                    .filter_map(|&i| store[i].clone())
                    .collect();
                let key = index.key(id);
                let tx = tx.clone();
                let dest = direct.remove(&key);
                scope.spawn(move |_| {
                    let r = if args.len() != inputs_len(plan, key) {
                        Err(Error::Graph("input chunk released too early".into()))
                    } else {
                        catch_unwind(AssertUnwindSafe(|| match dest {
                            Some(out) => run_task_into(plan, key, &args, out).map(|_| None),
                            None => run_task(plan, key, &args).map(Some),
                        }))
                        .unwrap_or_else(|p| {
                            Err(Error::Task {
                                task: String::new(),
                                message: format!("panicked: {}", panic_message(&p)),
                            })
                        })
                    };
                    // The receiver outlives the scope; a failed send cannot happen.
                    let _ = tx.send((id, r));
                });
                in_flight += 1;
            }
            if in_flight == 0 {
                break;
            }
            let Ok((id, result)) = rx.recv() else { break };
            in_flight -= 1;
            let key = index.key(id);
            let chunk = match result {
                Ok(c) => c,
                Err(e) => {
                    if failure.is_none() {
                        failure = Some(describe_failure(plan, key, e));
                    }
                    continue;
                }
            };
            done += 1;
            for &i in &inputs[id] {
                refs[i] -= 1;
                if refs[i] == 0
                    && let Some(c) = store[i].take()
                {
                    held -= c.nbytes();
                }
            }
            for &c in &consumers[id] {
                waiting[c] -= 1;
                if waiting[c] == 0 {
                    ready.push((index.key(c).stage.index(), std::cmp::Reverse(c)));
                }
            }
            let Some(chunk) = chunk else { continue };
            for &o in &output_of[key.stage.index()] {
                if let Err(e) = on_output(o, key, &chunk) {
                    failure.get_or_insert(e);
                }
            }
            if refs[id] > 0 {
                held += chunk.nbytes();
                store[id] = Some(chunk);
            }
            stats.peak_bytes = stats.peak_bytes.max(held);
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    if done != total {
        return Err(Error::Graph(format!(
            "only {done} of {total} tasks could run"
        )));
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

fn inputs_len(plan: &Plan, key: ChunkKey) -> usize {
    plan.task_inputs(key).len()
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Names the stage and chunk of a failed task.
fn describe_failure(plan: &Plan, key: ChunkKey, e: Error) -> Error {
    let stage = plan.stage(key.stage);
    let idx = grid_index(key.chunk as usize, &stage.meta.chunks.grid());
    let task = format!(
        "{} stage {} [{}] chunk {idx:?}",
        stage.kind_name(),
        key.stage.0,
        stage.label
    );
    match e {
        Error::Task { message, .. } => Error::Task { task, message },
        other => Error::Task {
            task,
            message: other.to_string(),
        },
    }
}
