//! Jobs that read the chunks another job keeps (`persist`): a task of a
//! persisted stage takes over chunk k of the keeping job's output. It waits
//! while that chunk is not in memory (being computed, or recomputed after a
//! loss), and its job fails if the keeping job is released first.

use std::collections::BTreeSet;

use accel_core::StageKind;

use super::event::Command;
use super::ids::{JobId, TaskRef, WorkerId};
use super::job::{Effects, Job, TaskState};
use super::state::Core;

impl Core {
    /// Links the persisted stages of a new job to the jobs that keep them;
    /// an error if one of those is gone.
    pub(super) fn link_persisted(&mut self, job: JobId, j: &mut Job) -> Result<(), String> {
        let mut links = Vec::new();
        for (s, st) in j.plan.stages.iter().enumerate() {
            let StageKind::Persisted { job: keeper, stage } = &st.kind else {
                continue;
            };
            let keeper = JobId(*keeper);
            let k = self.jobs.get(&keeper).ok_or_else(|| {
                format!(
                    "it reads an array persisted by job {}, which was released",
                    keeper.0
                )
            })?;
            let grid_ok = k
                .plan
                .stages
                .get(stage.index())
                .is_some_and(|ks| ks.meta.chunks == st.meta.chunks);
            if !grid_ok {
                return Err(format!(
                    "stage {s} reads stage {} of job {} with another chunk grid",
                    stage.0, keeper.0
                ));
            }
            for chunk in 0..st.task_count() as u32 {
                let key = accel_core::ChunkKey {
                    stage: accel_core::StageId(s as u32),
                    chunk,
                };
                let id = j.id(key).ok_or("persisted task outside the plan")?;
                let src = TaskRef {
                    job: keeper,
                    key: accel_core::ChunkKey {
                        stage: *stage,
                        chunk,
                    },
                };
                let here = k.id(src.key).and_then(|i| k.location(i as usize)).is_some();
                links.push((id, src, here));
            }
        }
        for (id, src, here) in links {
            j.external.insert(id, src);
            self.watchers.entry(src).or_default().push((job, id));
            if !here {
                let mut fx = Effects::default();
                j.external_lost(id as usize, &mut fx);
            }
        }
        Ok(())
    }

    /// Where a kept chunk is, if in memory.
    pub(super) fn kept_at(&self, t: TaskRef) -> Option<(WorkerId, u64)> {
        let j = self.jobs.get(&t.job)?;
        match j.state[j.id(t.key)? as usize] {
            TaskState::Memory { worker, nbytes } => Some((worker, nbytes)),
            _ => None,
        }
    }

    /// Chunk `t` came into memory (`back`) or left it: the tasks of other
    /// jobs that take it over follow.
    pub(super) fn notify_watchers(&mut self, t: TaskRef, back: bool, out: &mut Vec<Command>) {
        let Some(watchers) = self.watchers.get(&t).cloned() else {
            return;
        };
        for (job, id) in watchers {
            let Some(j) = self.jobs.get_mut(&job) else {
                continue;
            };
            let mut fx = Effects::default();
            if back {
                j.external_back(id as usize, &mut fx);
            } else {
                j.external_lost(id as usize, &mut fx);
            }
            self.apply(job, fx, out);
        }
    }

    /// A job that ends stops watching, and jobs still reading what it kept fail.
    pub(super) fn unlink(&mut self, job: JobId, j: &Job, out: &mut Vec<Command>) {
        for (id, src) in &j.external {
            if let Some(w) = self.watchers.get_mut(src) {
                w.retain(|x| *x != (job, *id));
                if w.is_empty() {
                    self.watchers.remove(src);
                }
            }
        }
        let readers: BTreeSet<JobId> = self
            .watchers
            .iter()
            .filter(|(src, _)| src.job == job)
            .flat_map(|(_, w)| w.iter())
            .filter(|(reader, id)| {
                self.jobs
                    .get(reader)
                    .is_some_and(|r| r.state[*id as usize].is_unfinished())
            })
            .map(|(reader, _)| *reader)
            .collect();
        self.watchers.retain(|src, _| src.job != job);
        for reader in readers {
            let why = format!(
                "the array persisted by job {} that it reads was released",
                job.0
            );
            self.drop_job(reader, Some(why), out);
        }
    }
}
