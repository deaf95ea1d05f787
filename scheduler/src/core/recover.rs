//! Losing workers and chunks: recompute from lineage, blame, bounded retries.

use std::collections::{BTreeMap, BTreeSet};

use super::event::Command;
use super::ids::{JobId, TaskRef, WorkerId};
use super::job::{Effects, TaskState};
use super::state::{Core, MAX_LOSSES};

impl Core {
    /// A worker is gone. Its chunks are lost (recomputed where still needed),
    /// its tasks go back in line, and unless it was retiring, the tasks it was
    /// running are blamed: one blamed on too many deaths fails its job.
    pub(super) fn worker_lost(&mut self, worker: WorkerId, out: &mut Vec<Command>) {
        let Some(w) = self.workers.remove(&worker) else {
            return;
        };
        self.stealing.retain(|_, (w, _)| *w != worker);
        // Copies being made to it will not arrive; copies from it are moot.
        let mut replan = BTreeSet::new();
        self.handoff.retain(|_, (from, to)| {
            if *to == worker {
                replan.insert(*from);
            }
            *to != worker && *from != worker
        });
        let mut fatal: BTreeMap<JobId, String> = BTreeMap::new();
        for &t in &w.holds {
            if let Err(e) = self.lose(t, worker, out) {
                fatal.entry(t.job).or_insert(e);
            }
        }
        for &t in &w.processing {
            self.take_back(worker, t, out);
        }
        if !w.retiring {
            let who = format!("{} (worker {})", w.name, worker.0);
            for &t in &w.running {
                if let Some(e) = self.blame(t, &who, true) {
                    fatal.entry(t.job).or_insert(e);
                }
            }
            // None said it started: a task that kills its worker at once
            // dies before its start is reported (within 100 ms). Those it
            // was given are counted apart, against a higher limit, so that
            // one cannot kill restarted workers for ever.
            if w.running.is_empty() {
                for &t in &w.processing {
                    if let Some(e) = self.blame(t, &who, false) {
                        fatal.entry(t.job).or_insert(e);
                    }
                }
            }
        }
        if !w.holds.is_empty() || !w.processing.is_empty() {
            tracing::info!(
                worker = worker.0,
                chunks = w.holds.len(),
                tasks = w.processing.len(),
                retiring = w.retiring,
                "worker lost: its tasks go back, needed chunks are recomputed"
            );
        }
        for (job, error) in fatal {
            self.drop_job(job, Some(error), out);
        }
        for r in replan {
            self.hand_off(r, out);
            self.maybe_retired(r, out);
        }
    }

    /// Counts a death against a task that was running (`started`), or that
    /// a worker which reported no task started was given; returns the job's
    /// error once the task has killed `allowed_failures` workers (twice as
    /// many when none said it started).
    fn blame(&mut self, t: TaskRef, who: &str, started: bool) -> Option<String> {
        let j = self.jobs.get_mut(&t.job)?;
        let id = j.id(t.key)?;
        let victims = match started {
            true => &mut j.blame,
            false => &mut j.blame_unstarted,
        };
        let victims = victims.entry(id).or_default();
        victims.push(who.to_string());
        let (count, names) = (victims.len(), victims.join(", "));
        let allowed = self.config.allowed_failures.max(1) as usize;
        let limit = if started { allowed } else { 2 * allowed };
        let task = j.describe(id as usize);
        (count >= limit).then(|| match started {
            true => format!(
                "task {task} was running on {count} workers that died ({names}); it is likely \
                 what kills them (allowed failures: {limit})"
            ),
            false => format!(
                "task {task} was given to {count} workers that died before any task of theirs \
                 reported starting ({names}); it is likely what kills them (allowed: {limit})"
            ),
        })
    }

    /// The copy of `t` on `holder` is gone: recompute it if anything needs
    /// it. Returns whether the core had placed it there, or the job's error
    /// if this chunk keeps getting lost.
    pub(super) fn lose(
        &mut self,
        t: TaskRef,
        holder: WorkerId,
        out: &mut Vec<Command>,
    ) -> Result<bool, String> {
        let Some(j) = self.jobs.get_mut(&t.job) else {
            return Ok(false);
        };
        let Some(id) = j.id(t.key).map(|i| i as usize) else {
            return Ok(false);
        };
        if !matches!(j.state[id], TaskState::Memory { worker, .. } if worker == holder) {
            return Ok(false);
        }
        if let Some(w) = self.workers.get_mut(&holder) {
            w.holds.remove(&t);
        }
        let losses = j.losses.entry(id as u32).or_default();
        *losses += 1;
        let losses = *losses;
        if losses > MAX_LOSSES {
            return Err(format!(
                "chunk {} was lost {losses} times (last on worker {}); giving up",
                j.describe(id),
                holder.0
            ));
        }
        let mut fx = Effects::default();
        j.invalidate(id, &mut fx);
        self.apply(t.job, fx, out);
        self.notify_watchers(t, false, out);
        Ok(true)
    }

    /// A task could not fetch inputs from the workers it was told hold them.
    pub(super) fn inputs_missing(
        &mut self,
        worker: WorkerId,
        task: TaskRef,
        missing: Vec<(TaskRef, WorkerId)>,
        out: &mut Vec<Command>,
    ) {
        let valid = self
            .jobs
            .get(&task.job)
            .and_then(|j| j.id(task.key).map(|id| j.state[id as usize]))
            == Some(TaskState::Processing(worker));
        if !valid {
            return;
        }
        if self.stealing.get(&task).is_some_and(|(w, _)| *w == worker) {
            self.stealing.remove(&task);
        }
        let kept = self
            .jobs
            .get(&task.job)
            .and_then(|j| j.external.get(&j.id(task.key)?).copied());
        for (c, holder) in missing {
            if c.job != task.job && Some(c) != kept {
                continue;
            }
            tracing::debug!(?c, holder = holder.0, "input missing");
            match self.lose(c, holder, out) {
                Err(e) => {
                    self.drop_job(c.job, Some(e), out);
                    self.drop_job(
                        task.job,
                        Some("an input kept by another job was lost too often".into()),
                        out,
                    );
                    return;
                }
                // In case the holder is alive and has it after all.
                Ok(true) => out.push(Command::Release {
                    worker: holder,
                    chunks: vec![c],
                }),
                Ok(false) => {}
            }
        }
        self.take_back(worker, task, out);
        self.maybe_retired(worker, out);
    }

    /// The client could not fetch some results: recompute what is really
    /// lost; if nothing is, say where the outputs are again.
    pub(super) fn results_missing(
        &mut self,
        job: JobId,
        missing: Vec<(TaskRef, WorkerId)>,
        out: &mut Vec<Command>,
    ) {
        for (c, holder) in missing {
            if c.job != job {
                continue;
            }
            match self.lose(c, holder, out) {
                Err(e) => {
                    self.drop_job(job, Some(e), out);
                    return;
                }
                // In case the holder is alive and has it after all: the
                // copy nobody counts on any more goes.
                Ok(true) => out.push(Command::Release {
                    worker: holder,
                    chunks: vec![c],
                }),
                Ok(false) => {}
            }
        }
        if self.jobs.get(&job).is_some_and(|j| j.unfinished == 0) {
            self.finish_job(job, out);
        }
    }
}
