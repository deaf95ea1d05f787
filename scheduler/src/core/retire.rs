//! Workers that stop on purpose: their queued tasks go back, their needed
//! chunks are copied to peers, and only then are they told to leave, so
//! nothing they made is computed twice.

use std::collections::BTreeMap;

use super::event::Command;
use super::ids::{TaskRef, WorkerId};
use super::job::TaskState;
use super::state::Core;

impl Core {
    pub(super) fn retire(&mut self, worker: WorkerId, out: &mut Vec<Command>) {
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        w.retiring = true;
        let queued: Vec<TaskRef> = w
            .processing
            .iter()
            .filter(|t| !w.running.contains(t) && !self.stealing.contains_key(t))
            .copied()
            .collect();
        tracing::info!(
            worker = worker.0,
            chunks = w.holds.len(),
            queued = queued.len(),
            "worker retiring"
        );
        if !queued.is_empty() {
            self.request_steal(worker, queued, out);
        }
        self.hand_off(worker, out);
        self.maybe_retired(worker, out);
    }

    /// Plans copies of the retiring worker's chunks (those not already on
    /// their way) to the peers holding the fewest bytes.
    pub(super) fn hand_off(&mut self, from: WorkerId, out: &mut Vec<Command>) {
        let Some(w) = self.workers.get(&from) else {
            return;
        };
        if !w.retiring {
            return;
        }
        let mut load: BTreeMap<WorkerId, u64> = self
            .workers
            .iter()
            .filter(|(id, x)| **id != from && !x.retiring)
            .map(|(id, x)| (*id, self.held_bytes(x.holds.iter())))
            .collect();
        if load.is_empty() {
            return; // Nobody to hand to: its chunks are recomputed once it leaves.
        }
        let mut batches: BTreeMap<WorkerId, Vec<(TaskRef, WorkerId)>> = BTreeMap::new();
        for t in w.holds.iter().filter(|t| !self.handoff.contains_key(t)) {
            let nbytes = self.held_bytes(std::iter::once(t));
            let Some((&to, bytes)) = load.iter_mut().min_by_key(|(id, b)| (**b, **id)) else {
                break;
            };
            *bytes += nbytes;
            batches.entry(to).or_default().push((*t, from));
        }
        for (to, chunks) in batches {
            for (t, _) in &chunks {
                self.handoff.insert(*t, (from, to));
            }
            out.push(Command::Replicate { worker: to, chunks });
        }
    }

    fn held_bytes<'a>(&self, chunks: impl Iterator<Item = &'a TaskRef>) -> u64 {
        chunks
            .filter_map(|t| {
                let j = self.jobs.get(&t.job)?;
                match j.state[j.id(t.key)? as usize] {
                    TaskState::Memory { nbytes, .. } => Some(nbytes),
                    _ => None,
                }
            })
            .sum()
    }

    /// Copies made (or not) by `worker` for retiring peers.
    pub(super) fn replicated(
        &mut self,
        worker: WorkerId,
        done: Vec<(TaskRef, u64)>,
        failed: Vec<TaskRef>,
        out: &mut Vec<Command>,
    ) {
        let mut froms = Vec::new();
        let mut discard = Vec::new();
        let mut moved_off: BTreeMap<WorkerId, Vec<TaskRef>> = BTreeMap::new();
        for (t, _) in done {
            let Some(&(from, to)) = self.handoff.get(&t).filter(|(_, to)| *to == worker) else {
                discard.push(t);
                continue;
            };
            self.handoff.remove(&t);
            froms.push(from);
            let moved = self.jobs.get_mut(&t.job).and_then(|j| {
                let id = j.id(t.key)? as usize;
                match j.state[id] {
                    TaskState::Memory { worker: w, nbytes } if w == from => {
                        j.set(id, TaskState::Memory { worker: to, nbytes });
                        Some(())
                    }
                    _ => None,
                }
            });
            if moved.is_none() || !self.workers.contains_key(&to) {
                discard.push(t);
                continue;
            }
            if let Some(w) = self.workers.get_mut(&from) {
                w.holds.remove(&t);
            }
            if let Some(w) = self.workers.get_mut(&to) {
                w.holds.insert(t);
            }
            moved_off.entry(from).or_default().push(t);
        }
        out.extend(
            moved_off
                .into_iter()
                .map(|(worker, chunks)| Command::Release { worker, chunks }),
        );
        for t in failed {
            if let Some(&(from, to)) = self.handoff.get(&t)
                && to == worker
            {
                tracing::warn!(
                    ?t,
                    from = from.0,
                    to = to.0,
                    "copy failed: the chunk will be recomputed if needed"
                );
                self.handoff.remove(&t);
                froms.push(from);
            }
        }
        // A copy no longer planned goes, unless the job counts on that
        // chunk there since (made again on this worker meanwhile).
        discard.retain(|&t| !self.placed_on(t, worker));
        if !discard.is_empty() {
            out.push(Command::Release {
                worker,
                chunks: discard,
            });
        }
        froms.sort();
        froms.dedup();
        for from in froms {
            self.maybe_retired(from, out);
        }
    }

    /// A retiring worker that runs nothing and has no copy in flight leaves;
    /// what it still holds (copies that failed, or no peer to take them) is
    /// recomputed where needed, and it is not blamed.
    pub(super) fn maybe_retired(&mut self, worker: WorkerId, out: &mut Vec<Command>) {
        let Some(w) = self.workers.get(&worker) else {
            return;
        };
        if !w.retiring
            || !w.processing.is_empty()
            || self.handoff.values().any(|(from, _)| *from == worker)
        {
            return;
        }
        self.worker_lost(worker, out);
        out.push(Command::Retired { worker });
    }
}
