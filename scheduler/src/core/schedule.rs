//! Placement of ready tasks and work stealing.

use std::collections::BTreeMap;

use super::event::{Assignment, Command};
use super::ids::{TaskRef, WorkerId};
use super::job::{Job, TaskState};
use super::state::Core;

/// Tasks a pass may leave waiting for the worker holding their siblings.
const MAX_WAITS: usize = 64;

/// Siblings looked at per task: enough to see where a group is going.
const MAX_SIBLINGS: usize = 64;

/// An amount per worker (a few workers per task: a short list, reused
/// across tasks, beats a map allocated per task).
#[derive(Default)]
struct Tally(Vec<(WorkerId, u64)>);

impl Tally {
    fn add(&mut self, w: WorkerId, n: u64) {
        match self.0.iter_mut().find(|(x, _)| *x == w) {
            Some((_, m)) => *m += n,
            None => self.0.push((w, n)),
        }
    }

    fn get(&self, w: WorkerId) -> u64 {
        self.0.iter().find(|(x, _)| *x == w).map_or(0, |(_, n)| *n)
    }

    /// The worker with the most (the lowest id on ties).
    fn top(&self) -> Option<WorkerId> {
        self.0
            .iter()
            .max_by(|(a, na), (b, nb)| na.cmp(nb).then(b.cmp(a)))
            .map(|(w, _)| *w)
    }
}

/// Per worker, how many siblings of task `id` (the other inputs of its first
/// consumer) it holds or runs.
fn siblings_at(j: &Job, id: usize, at: &mut Tally) {
    let Some(&consumer) = j.consumers(id).first() else {
        return;
    };
    for &s in j.inputs(consumer as usize).iter().take(MAX_SIBLINGS) {
        match j.state[s as usize] {
            TaskState::Processing(w) | TaskState::Memory { worker: w, .. } => at.add(w, 1),
            _ => {}
        }
    }
}

impl Core {
    /// Places ready tasks on workers with free slots: the worker already
    /// holding the most input bytes, then the least loaded. One `Assign` per worker.
    ///
    /// A task with nothing in memory yet (a source) goes, while there is more
    /// ready work than free slots, to the worker already holding or running
    /// most of its siblings (the other inputs of its first consumer): the
    /// consumer then finds its inputs in one place instead of fetching them
    /// from every worker. When that worker is full and another is not, the
    /// task waits for it (a bounded number per pass) while the others take
    /// later tasks. With fewer ready tasks than free slots, tasks are spread.
    pub fn schedule(&mut self) -> Vec<Command> {
        let mut batches: BTreeMap<WorkerId, Vec<Assignment>> = BTreeMap::new();
        let mut deferred = Vec::new();
        let mut unrunnable = Vec::new();
        let mut free: usize = self
            .workers
            .values()
            .map(|w| w.capacity().saturating_sub(w.processing.len()))
            .sum();
        let mut waits = 0;
        let (mut local, mut siblings) = (Tally::default(), Tally::default());
        while let Some(key) = self.ready.pop_first() {
            let (_, job, id) = key;
            // A chunk kept by another job that this task takes over, and where it is.
            let kept = self
                .jobs
                .get(&job)
                .and_then(|j| j.external.get(&id).copied())
                .and_then(|t| self.kept_at(t).map(|(w, n)| (t, w, n)));
            let Some(j) = self.jobs.get_mut(&job) else {
                continue;
            };
            let id = id as usize;
            let needs = j.needs(id);
            let gpu = j.prefers_gpu(id);
            let root = j.is_queued_root(id);
            let saturation = self.config.worker_saturation;
            local.0.clear();
            siblings.0.clear();
            if let Some((_, w, n)) = kept {
                local.add(w, n);
            }
            for &i in j.inputs(id) {
                if let TaskState::Memory { worker, nbytes } = j.state[i as usize] {
                    local.add(worker, nbytes);
                }
            }
            let plenty = self.ready.len() + deferred.len() + 1 >= free;
            if local.0.is_empty() && plenty {
                siblings_at(j, id, &mut siblings);
            }
            let favourite = siblings.top().and_then(|w| self.workers.get(&w));
            if let Some(f) = favourite
                && waits < MAX_WAITS
                && !f.has_room()
                && f.capacity() > 0
                && f.offers(needs)
                && self.workers.values().any(|w| w.has_room())
            {
                // Its siblings' worker is busy, and will free up: others
                // take later tasks meanwhile.
                waits += 1;
                deferred.push(key);
                continue;
            }
            let best = self
                .workers
                .iter()
                .filter(|(_, w)| {
                    w.has_room() && w.offers(needs) && (!root || w.below_saturation(saturation))
                })
                .max_by(|(a, wa), (b, wb)| {
                    // A kernel with a GPU form goes to a GPU worker with room first.
                    (gpu && wa.gpus > 0)
                        .cmp(&(gpu && wb.gpus > 0))
                        .then(local.get(**a).cmp(&local.get(**b)))
                        .then(siblings.get(**a).cmp(&siblings.get(**b)))
                        .then(wb.load().total_cmp(&wa.load()))
                        .then(b.cmp(a))
                })
                .map(|(id, _)| *id);
            let Some(w) = best else {
                deferred.push(key);
                match needs {
                    // Only some workers can take it: others may take what follows.
                    Some(f) if self.workers.values().any(|w| w.has_room()) => {
                        if !self.workers.values().any(|w| w.offers(Some(f))) {
                            unrunnable.push((job, Self::no_function_error(f)));
                        }
                        continue;
                    }
                    _ => break,
                }
            };
            let task = Self::task(job, j, id);
            let inputs = j
                .inputs(id)
                .iter()
                .filter_map(|&i| {
                    j.location(i as usize)
                        .map(|loc| (Self::task(job, j, i as usize), loc))
                })
                .chain(kept.map(|(t, w, _)| (t, w)))
                .collect();
            j.set(id, TaskState::Processing(w));
            free = free.saturating_sub(1);
            if let Some(worker) = self.workers.get_mut(&w) {
                worker.processing.insert(task);
            }
            batches
                .entry(w)
                .or_default()
                .push(Assignment { task, inputs });
        }
        self.ready.extend(deferred);
        let mut out: Vec<Command> = batches
            .into_iter()
            .map(|(worker, tasks)| Command::Assign { worker, tasks })
            .collect();
        for (job, error) in unrunnable {
            self.drop_job(job, Some(error), &mut out);
        }
        if self.ready.is_empty() {
            out.extend(self.steal());
        }
        out
    }

    /// Idle threads with nothing ready: ask the most backlogged worker for
    /// queued tasks (those beyond one per thread), newest first.
    fn steal(&mut self) -> Vec<Command> {
        let idle: usize = self.workers.values().map(|w| w.idle_threads()).sum();
        if idle == 0 {
            return Vec::new();
        }
        let Some((&victim, w)) = self
            .workers
            .iter()
            .filter(|(_, w)| !w.retiring)
            .max_by_key(|(_, w)| w.backlog())
        else {
            return Vec::new();
        };
        let tasks: Vec<TaskRef> = w
            .processing
            .iter()
            .rev()
            .filter(|t| !self.stealing.contains_key(t) && !w.running.contains(t))
            .take(w.backlog().min(idle))
            .copied()
            .collect();
        let mut out = Vec::new();
        if !tasks.is_empty() {
            self.request_steal(victim, tasks, &mut out);
        }
        out
    }
}
