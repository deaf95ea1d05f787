//! Every invariant linking tasks, workers, the ready queue, steals and
//! hand-offs; tests run it after each scripted step.

use super::job::TaskState;
use super::state::Core;

impl Core {
    pub fn sanity_check(&self) -> Result<(), String> {
        for (&job, j) in &self.jobs {
            j.check().map_err(|e| format!("job {}: {e}", job.0))?;
            for id in 0..j.len() {
                let t = Self::task(job, j, id);
                let in_ready = self.ready.contains(&Self::ready_key(job, j, id));
                match j.state[id] {
                    TaskState::Ready if !in_ready => {
                        return Err(format!("{t:?} ready but not queued"));
                    }
                    TaskState::Processing(w)
                        if !self
                            .workers
                            .get(&w)
                            .is_some_and(|x| x.processing.contains(&t)) =>
                    {
                        return Err(format!("{t:?} processing on {w:?} which does not list it"));
                    }
                    TaskState::Memory { worker, .. }
                        if !self
                            .workers
                            .get(&worker)
                            .is_some_and(|x| x.holds.contains(&t)) =>
                    {
                        return Err(format!(
                            "{t:?} in memory on {worker:?} which does not hold it"
                        ));
                    }
                    s if s != TaskState::Ready && in_ready => {
                        return Err(format!("{t:?} queued while {s:?}"));
                    }
                    _ => {}
                }
            }
        }
        for (&job, j) in &self.jobs {
            for (&id, &src) in &j.external {
                let here = self.kept_at(src).is_some();
                if here == j.external_missing.contains(&id) {
                    return Err(format!(
                        "job {} task {id}: kept chunk {src:?} in memory: {here}, counted missing: {}",
                        job.0, !here
                    ));
                }
                if !self
                    .watchers
                    .get(&src)
                    .is_some_and(|w| w.contains(&(job, id)))
                {
                    return Err(format!("job {} task {id} is not watching {src:?}", job.0));
                }
            }
        }
        for (src, w) in &self.watchers {
            if !self.jobs.contains_key(&src.job) {
                return Err(format!("watchers of {src:?}, whose job ended"));
            }
            for (job, id) in w {
                if self.jobs.get(job).and_then(|j| j.external.get(id)) != Some(src) {
                    return Err(format!(
                        "job {} task {id} watches {src:?} for nothing",
                        job.0
                    ));
                }
            }
        }
        for (_, job, id) in &self.ready {
            if !self.jobs.contains_key(job) {
                return Err(format!(
                    "task {id} of job {} queued after the job ended",
                    job.0
                ));
            }
        }
        for (t, (w, _)) in &self.stealing {
            let state = self
                .jobs
                .get(&t.job)
                .and_then(|j| j.id(t.key).map(|i| j.state[i as usize]));
            if state != Some(TaskState::Processing(*w)) {
                return Err(format!("{t:?} is being stolen from {w:?} while {state:?}"));
            }
        }
        for (t, (from, to)) in &self.handoff {
            if !self.workers.get(from).is_some_and(|w| w.retiring) {
                return Err(format!(
                    "{t:?} handed off from {from:?}, which is not retiring"
                ));
            }
            if !self.workers.contains_key(to) {
                return Err(format!("{t:?} handed off to {to:?}, which is gone"));
            }
        }
        for (&w, worker) in &self.workers {
            for t in &worker.processing {
                let ok = self
                    .jobs
                    .get(&t.job)
                    .and_then(|j| j.id(t.key).map(|i| j.state[i as usize]));
                if ok != Some(TaskState::Processing(w)) {
                    return Err(format!(
                        "{w:?} lists {t:?} as processing, its state is {ok:?}"
                    ));
                }
            }
            if let Some(t) = worker.running.difference(&worker.processing).next() {
                return Err(format!("{w:?} runs {t:?}, which it was not assigned"));
            }
            for t in &worker.holds {
                let ok = self
                    .jobs
                    .get(&t.job)
                    .and_then(|j| j.id(t.key).map(|i| j.location(i as usize)));
                if ok != Some(Some(w)) {
                    return Err(format!("{w:?} holds {t:?}, which the job places at {ok:?}"));
                }
            }
            if !worker.retiring && !worker.paused && worker.processing.len() > worker.capacity() {
                return Err(format!(
                    "{w:?} has {} tasks for {} slots",
                    worker.processing.len(),
                    worker.capacity()
                ));
            }
        }
        Ok(())
    }
}
