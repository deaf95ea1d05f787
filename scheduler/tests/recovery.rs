//! The core's recovery, scripted event by event with every invariant checked
//! after each: lost chunks recomputed from lineage (only what is missing),
//! blame and the crash limit, reports from dead incarnations, overtaken steal
//! replies, retiring workers handing chunks off, cancelled recomputes, lost
//! results, and the end of every job.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::collections::{BTreeSet, VecDeque};

use accel_core::plan::StageKind;
use accel_scheduler::{ClientId, Command, Core, CoreConfig, Event, JobId, TaskRef, WorkerId};
use common::{
    Sim, assigned, job_done, job_failed, run_all, sources_partials_combine, task, tasks_of,
    two_stage,
};

const SOURCE: u32 = 0;
const PARTIAL: u32 = 1;
const COMBINE: u32 = 2;

fn set(tasks: impl IntoIterator<Item = TaskRef>) -> BTreeSet<TaskRef> {
    tasks.into_iter().collect()
}

/// Submits the source → partial → combine job on workers 1 and 2 (2 threads
/// each) and runs it until the combine is assigned; the partials of worker 1
/// report `w1_bytes` each, those of worker 2 1000. Returns the combine's worker.
fn up_to_the_combine(sim: &mut Sim, w1_bytes: u64) -> WorkerId {
    let plan = sources_partials_combine();
    assert!(matches!(plan.stages[0].kind, StageKind::Source(_)));
    assert!(matches!(plan.stages[1].kind, StageKind::Partial { .. }));
    assert!(matches!(plan.stages[2].kind, StageKind::Combine { .. }));
    sim.worker(1, 2);
    sim.worker(2, 2);
    let mut pending: VecDeque<_> = assigned(&sim.submit(1, 1, plan)).into();
    assert_eq!(pending.len(), 4);
    while let Some((w, a)) = pending.pop_front() {
        if a.task.key.stage.0 == COMBINE {
            return w;
        }
        let nbytes = if w == WorkerId(1) && a.task.key.stage.0 == PARTIAL {
            w1_bytes
        } else {
            1000
        };
        pending.extend(assigned(&sim.step([Event::TaskFinished {
            worker: w,
            task: a.task,
            nbytes,
        }])));
    }
    panic!("the combine was never assigned")
}

/// Partial chunks each worker holds.
fn partials_on(sim: &Sim, w: u32) -> Vec<TaskRef> {
    sim.core
        .held_by(WorkerId(w))
        .into_iter()
        .filter(|t| t.key.stage.0 == PARTIAL)
        .collect()
}

#[test]
fn a_lost_chunk_is_recomputed_with_only_its_missing_ancestors() {
    let mut sim = Sim::new();
    let at = up_to_the_combine(&mut sim, 1000);
    let other = if at == WorkerId(1) { 2 } else { 1 };
    let lost = partials_on(&sim, other);
    let kept = partials_on(&sim, at.0);
    assert_eq!(
        (lost.len(), kept.len()),
        (2, 2),
        "partials follow their sources"
    );
    // The lost partials' sources were released: they run again, nothing else.
    let out = sim.lose(other);
    let again = set(lost.iter().map(|p| task(1, SOURCE, p.key.chunk)));
    assert_eq!(set(tasks_of(&out)), again);
    // The combine could not fetch the lost partials: it waits for them.
    let combine = task(1, COMBINE, 0);
    let missing = lost.iter().map(|p| (*p, WorkerId(other))).collect();
    let out = sim.step([Event::InputsMissing {
        worker: at,
        task: combine,
        missing,
    }]);
    assert!(tasks_of(&out).is_empty(), "{out:?}");
    let mut rerun = Vec::new();
    for s in &again {
        let next = tasks_of(&sim.finish(at.0, *s));
        rerun.extend(next);
    }
    assert_eq!(
        set(rerun.clone()),
        set(lost.iter().copied()),
        "only the lost partials run again"
    );
    let mut out = Vec::new();
    for p in rerun {
        out = sim.finish(at.0, p);
    }
    assert_eq!(tasks_of(&out), vec![combine]);
    let (outputs, recomputed) = job_done(&sim.finish(at.0, combine)).unwrap();
    assert_eq!(recomputed, 4, "2 sources and 2 partials ran twice");
    assert_eq!(outputs, vec![vec![(combine, at)]]);
}

/// A task that kills its worker before the worker reports it started (starts
/// are reported in batches) still ends its job, against a higher limit:
/// restarted workers are not killed for ever.
#[test]
fn a_task_that_kills_workers_before_they_report_it_started_fails_its_job() {
    let mut sim = Sim::with(Core::with_config(CoreConfig {
        allowed_failures: 2,
        ..CoreConfig::default()
    }));
    let x = accel::from_ndarray(&ndarray::Array1::<f64>::zeros(10), 10);
    let plan = common::plan_of(&(x * 2.0));
    sim.worker(1, 1);
    let given = tasks_of(&sim.submit(1, 1, plan));
    assert_eq!(given.len(), 1);
    // Dies at once, three times: requeued each time (the limit is 4).
    for w in 1..=3 {
        let out = sim.lose(w);
        assert!(job_failed(&out).is_none(), "death {w}: {out:?}");
        assert_eq!(tasks_of(&sim.worker(w + 1, 1)), given);
    }
    let out = sim.lose(4);
    let err = job_failed(&out).expect("the fourth death fails the job");
    assert!(
        err.contains("given to 4 workers that died before any task of theirs reported starting")
            && err.contains("w1 (worker 1), w2 (worker 2), w3 (worker 3), w4 (worker 4)"),
        "{err}"
    );
    // A worker that dies with a task reported running blames that task
    // only (see the next test): those given to it are not counted apart.
}

#[test]
fn only_running_tasks_are_blamed_and_a_task_that_kills_too_many_workers_fails_its_job() {
    let mut sim = Sim::with(Core::with_config(CoreConfig {
        queue_depth: 2,
        allowed_failures: 2,
        ..CoreConfig::default()
    }));
    sim.worker(1, 1);
    let first = tasks_of(&sim.submit(1, 1, two_stage()));
    assert_eq!(first.len(), 4, "4 sources: one running, three queued");
    let poison = task(1, SOURCE, 0);
    sim.started(1, &[poison]);
    let out = sim.lose(1);
    assert!(job_failed(&out).is_none(), "one death is allowed");
    let again = tasks_of(&sim.worker(2, 1));
    assert_eq!(set(again), set(first.clone()));
    sim.started(2, &[poison]);
    // Another job waits for room meanwhile; it must not suffer.
    sim.submit(2, 2, two_stage());
    let out = sim.lose(2);
    let err = job_failed(&out).expect("the second death fails the job");
    assert!(
        err.contains("source")
            && err.contains("stage 0 chunk 0 was running on 2 workers that died")
            && err.contains("w1 (worker 1), w2 (worker 2)")
            && err.contains("allowed failures: 2"),
        "{err}"
    );
    assert!(
        out.contains(&Command::JobForgotten { job: JobId(1) }),
        "{out:?}"
    );
    // The queued sources were on both workers too, but never ran: not blamed.
    assert!(
        !err.contains("chunk 1") && !err.contains("chunk 2"),
        "{err}"
    );
    let next = assigned(&sim.worker(3, 1));
    let cmds = run_all(&mut sim, next.into(), None);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::JobDone { job: JobId(2), .. }))
    );
    assert!(job_failed(&cmds).is_none());
}

#[test]
fn reports_from_a_worker_declared_dead_are_ignored() {
    let mut sim = Sim::new();
    sim.worker(1, 1);
    let first = tasks_of(&sim.submit(1, 1, two_stage()));
    let (s0, s1) = (first[0], first[1]);
    sim.started(1, &[s0]);
    let after = tasks_of(&sim.finish(1, s0));
    let m0 = after[0];
    assert_eq!(m0.key.stage.0, 1, "the map of chunk 0 follows its source");
    sim.lose(1);
    let moved = assigned(&sim.worker(2, 1));
    assert_eq!(moved.len(), 2);
    // Worker 1 was only frozen: everything it says now is stale.
    let late = [
        Event::TaskFinished {
            worker: WorkerId(1),
            task: s1,
            nbytes: 8,
        },
        Event::TasksStarted {
            worker: WorkerId(1),
            tasks: vec![s1],
        },
        Event::InputsMissing {
            worker: WorkerId(1),
            task: m0,
            missing: vec![(s0, WorkerId(1))],
        },
        Event::TaskFailed {
            worker: WorkerId(1),
            task: s1,
            message: "late".into(),
        },
        Event::StealReply {
            worker: WorkerId(1),
            id: 99,
            stolen: vec![s1],
            refused: vec![],
        },
    ];
    for e in late {
        let out = sim.step([e]);
        assert!(
            out.iter().all(|c| matches!(
                c,
                Command::Release {
                    worker: WorkerId(1),
                    ..
                }
            )),
            "{out:?}"
        );
    }
    let cmds = run_all(&mut sim, moved.into(), None);
    let (_, recomputed) = job_done(&cmds).unwrap();
    assert_eq!(recomputed, 1, "source 0 ran twice");
}

fn assignment(task: TaskRef) -> accel_scheduler::Assignment {
    accel_scheduler::Assignment {
        task,
        inputs: vec![],
    }
}

#[test]
fn a_steal_reply_overtaken_by_a_newer_request_is_ignored() {
    let mut sim = Sim::with(Core::with_queue_depth(8));
    sim.worker(1, 1);
    let x = accel::from_ndarray(&ndarray::Array1::<f64>::zeros(60), 10);
    let first = tasks_of(&sim.submit(1, 1, common::plan_of(&(x + 1.0))));
    assert_eq!(first.len(), 6);
    let steal = |cmds: &[Command]| {
        cmds.iter()
            .find_map(|c| match c {
                Command::Steal { worker, id, tasks } => Some((*worker, *id, tasks.clone())),
                _ => None,
            })
            .unwrap()
    };
    let (victim, id1, tasks) = steal(&sim.worker(2, 1));
    assert_eq!((victim, tasks.len()), (WorkerId(1), 1));
    let t = tasks[0];
    // Before the request arrives, worker 2 leaves and worker 1 gives t up
    // (its inputs could not be fetched): t goes back to worker 1.
    sim.lose(2);
    let out = sim.step([Event::InputsMissing {
        worker: WorkerId(1),
        task: t,
        missing: vec![],
    }]);
    assert_eq!(assigned(&out), vec![(WorkerId(1), assignment(t))]);
    let (_, id2, tasks) = steal(&sim.worker(3, 1));
    assert_eq!(tasks, vec![t]);
    assert_ne!(id1, id2);
    // The first reply (t was not queued then) must not cancel the second request.
    let out = sim.step([Event::StealReply {
        worker: WorkerId(1),
        id: id1,
        stolen: vec![],
        refused: vec![t],
    }]);
    assert!(tasks_of(&out).is_empty());
    let out = sim.step([Event::StealReply {
        worker: WorkerId(1),
        id: id2,
        stolen: vec![t],
        refused: vec![],
    }]);
    assert_eq!(assigned(&out), vec![(WorkerId(3), assignment(t))]);
}

#[test]
fn a_retiring_worker_hands_its_chunks_to_peers_and_nothing_is_recomputed() {
    let mut sim = Sim::new();
    let at = up_to_the_combine(&mut sim, 1000);
    let leaving = if at == WorkerId(1) { 2 } else { 1 };
    let handed = partials_on(&sim, leaving);
    let out = sim.step([Event::WorkerRetiring {
        worker: WorkerId(leaving),
    }]);
    let copies: Vec<(TaskRef, WorkerId)> = handed.iter().map(|t| (*t, WorkerId(leaving))).collect();
    assert_eq!(
        out,
        vec![Command::Replicate {
            worker: at,
            chunks: copies.clone()
        }]
    );
    let out = sim.step([Event::Replicated {
        worker: at,
        done: handed.iter().map(|t| (*t, 1000)).collect(),
        failed: vec![],
    }]);
    assert!(out.contains(&Command::Retired {
        worker: WorkerId(leaving)
    }));
    assert!(out.contains(&Command::Release {
        worker: WorkerId(leaving),
        chunks: handed.clone(),
    }));
    assert_eq!(sim.core.worker_count(), 1);
    assert_eq!(partials_on(&sim, at.0).len(), 4);
    // The combine fetched from the leaving worker before it left; its result counts.
    let (_, recomputed) = job_done(&sim.finish(at.0, task(1, COMBINE, 0))).unwrap();
    assert_eq!(recomputed, 0);
}

#[test]
fn a_retiring_worker_with_nobody_to_take_its_chunks_leaves_them_to_be_recomputed() {
    let mut sim = Sim::new();
    sim.worker(1, 1);
    let mut pending: VecDeque<_> = assigned(&sim.submit(1, 1, sources_partials_combine())).into();
    let combine = loop {
        let (w, a) = pending.pop_front().unwrap();
        if a.task.key.stage.0 == COMBINE {
            break a.task;
        }
        pending.extend(assigned(&sim.finish(w.0, a.task)));
    };
    // The combine is queued, not started: it is asked back first.
    let out = sim.step([Event::WorkerRetiring {
        worker: WorkerId(1),
    }]);
    let Some(Command::Steal { id, tasks, .. }) = out.first().cloned() else {
        panic!("{out:?}")
    };
    assert_eq!(tasks, vec![combine]);
    let out = sim.step([Event::StealReply {
        worker: WorkerId(1),
        id,
        stolen: vec![combine],
        refused: vec![],
    }]);
    assert!(out.contains(&Command::Retired {
        worker: WorkerId(1)
    }));
    // A newcomer recomputes everything (no blame: it left on purpose).
    let next = assigned(&sim.worker(2, 1));
    let cmds = run_all(&mut sim, next.into(), None);
    let (_, recomputed) = job_done(&cmds).unwrap();
    assert_eq!(recomputed, 8);
}

#[test]
fn a_retiring_worker_that_leaves_with_the_last_outputs_does_not_end_the_job() {
    let mut sim = Sim::new();
    sim.worker(1, 1);
    let mut pending: std::collections::VecDeque<_> =
        assigned(&sim.submit(1, 1, two_stage())).into();
    // 8 tasks: run all but the last.
    for _ in 0..7 {
        let (w, a) = pending.pop_front().expect("a task to run");
        pending.extend(assigned(&sim.finish(w.0, a.task)));
    }
    let (w, last) = pending.pop_front().expect("the last task");
    assert!(pending.is_empty());
    // Told to leave while it runs the last task; with no peer to take its
    // chunks, it leaves once that task is done, taking the outputs with it.
    sim.step([Event::WorkerRetiring { worker: w }]);
    let out = sim.finish(w.0, last.task);
    assert!(out.contains(&Command::Retired { worker: w }), "{out:?}");
    assert_eq!(job_done(&out), None, "outputs are gone: no JobDone yet");
    // A new worker makes them again, and then the job is done, whole.
    let again = assigned(&sim.worker(2, 4));
    let cmds = run_all(&mut sim, again.into(), None);
    let (outputs, _) = job_done(&cmds).expect("done");
    assert_eq!(outputs[0].len(), 4);
    assert!(outputs[0].iter().all(|(_, w)| *w == WorkerId(2)));
}

#[test]
fn a_copy_to_a_worker_that_dies_is_made_to_another() {
    let mut sim = Sim::new();
    let at = up_to_the_combine(&mut sim, 1000);
    let leaving = if at == WorkerId(1) { 2 } else { 1 };
    sim.worker(3, 1);
    let out = sim.step([Event::WorkerRetiring {
        worker: WorkerId(leaving),
    }]);
    let Some(Command::Replicate {
        worker: first,
        chunks,
    }) = out.first().cloned()
    else {
        panic!("{out:?}")
    };
    assert_eq!(chunks.len(), 2);
    let out = sim.lose(first.0);
    let Some(Command::Replicate {
        worker: second,
        chunks: again,
    }) = out
        .iter()
        .find(|c| matches!(c, Command::Replicate { .. }))
        .cloned()
    else {
        panic!("{out:?}")
    };
    assert_ne!(second, first);
    assert_eq!(again, chunks);
}

#[test]
fn a_recompute_that_nothing_needs_any_more_is_cancelled() {
    let mut sim = Sim::new();
    // Worker 1's partials are small: the combine runs on worker 2.
    let at = up_to_the_combine(&mut sim, 10);
    assert_eq!(at, WorkerId(2));
    let lost = partials_on(&sim, 1);
    let out = sim.lose(1);
    let sources = tasks_of(&out);
    assert_eq!(sources.len(), 2, "the lost partials' sources start again");
    // The combine had fetched everything before worker 1 died: it finishes,
    // and the recomputes it no longer waits for are dropped at once.
    let out = sim.finish(2, task(1, COMBINE, 0));
    let (outputs, recomputed) = job_done(&out).expect("done without the recomputes");
    assert_eq!(recomputed, 0);
    assert_eq!(outputs[0].len(), 1);
    // Their results, when they arrive, are released; the partials never run.
    for s in sources {
        let out = sim.finish(2, s);
        assert!(tasks_of(&out).is_empty());
        assert!(
            out.iter().all(|c| matches!(c, Command::Release { .. })),
            "{out:?}"
        );
    }
    assert!(
        lost.iter()
            .all(|p| !sim.core.held_by(WorkerId(2)).contains(p))
    );
}

#[test]
fn results_lost_before_the_client_fetched_them_are_recomputed_and_reported_again() {
    let mut sim = Sim::new();
    sim.worker(1, 1);
    sim.worker(2, 1);
    let start = assigned(&sim.submit(1, 1, two_stage()));
    let cmds = run_all(&mut sim, start.into(), None);
    let (outputs, _) = job_done(&cmds).unwrap();
    let on_1 = outputs[0].iter().filter(|(_, w)| *w == WorkerId(1)).count();
    assert!(on_1 > 0);
    // Worker 1 dies before the client fetched: its outputs (and their
    // released sources) are computed again, and the job is reported again.
    let again = assigned(&sim.lose(1));
    assert_eq!(again.len(), on_1, "their sources first");
    let cmds = run_all(&mut sim, again.into(), None);
    let (outputs, recomputed) = job_done(&cmds).unwrap();
    assert_eq!(recomputed, 2 * on_1);
    assert!(outputs[0].iter().all(|(_, w)| *w == WorkerId(2)));
    // A report naming a stale holder loses nothing: the outputs are re-sent as they are.
    let stale = vec![(outputs[0][0].0, WorkerId(1))];
    let out = sim.step([Event::ResultsMissing {
        job: JobId(1),
        missing: stale,
    }]);
    assert_eq!(job_done(&out), Some((outputs.clone(), recomputed)));
    // A chunk really missing where the core placed it is recomputed.
    let (t, w) = outputs[0][0];
    let out = sim.step([Event::ResultsMissing {
        job: JobId(1),
        missing: vec![(t, w)],
    }]);
    assert_eq!(tasks_of(&out).len(), 1, "its source");
    // And the holder is told to drop the copy nobody counts on any more
    // (it may still have it: the client may only have failed to reach it).
    assert!(
        out.contains(&Command::Release {
            worker: w,
            chunks: vec![t]
        }),
        "{out:?}"
    );
}

#[test]
fn every_way_a_job_ends_tells_the_workers_to_forget_it() {
    let mut sim = Sim::new();
    sim.worker(1, 4);
    // Done and fetched.
    let start = assigned(&sim.submit(1, 1, two_stage()));
    run_all(&mut sim, start.into(), None);
    let out = sim.step([Event::ResultsFetched { job: JobId(1) }]);
    assert_eq!(out, vec![Command::JobForgotten { job: JobId(1) }]);
    // Failed.
    let start = assigned(&sim.submit(2, 1, two_stage()));
    let cmds = run_all(&mut sim, start.into(), Some(task(2, 1, 0)));
    assert!(cmds.contains(&Command::JobForgotten { job: JobId(2) }));
    // Cancelled, and the client gone.
    sim.submit(3, 1, two_stage());
    sim.submit(4, 4, two_stage());
    let out = sim.step([Event::JobCancelled { job: JobId(3) }]);
    assert!(out.contains(&Command::JobForgotten { job: JobId(3) }));
    let out = sim.step([Event::ClientGone {
        client: ClientId(4),
    }]);
    assert!(out.contains(&Command::JobForgotten { job: JobId(4) }));
    assert_eq!(sim.core.job_count(), 0);
    assert!(sim.core.held_by(WorkerId(1)).is_empty());
}

/// A job reading job `keeper`'s output stage 1 (4 chunks of 10) and
/// multiplying it by 3: the plan of `x * 3` with its source stage replaced by
/// the persisted one.
fn reads_persisted(keeper: u64) -> std::sync::Arc<accel_core::Plan> {
    let x = accel::from_ndarray(&ndarray::Array1::<f64>::zeros(40), 10);
    let mut plan = (x * 3.0).plan().unwrap().plan;
    assert!(matches!(plan.stages[0].kind, StageKind::Source(_)));
    plan.stages[0].kind = StageKind::Persisted {
        job: keeper,
        stage: accel_core::StageId(1),
    };
    std::sync::Arc::new(plan)
}

/// Runs assignments FIFO; a task whose input is on a worker in `dead`
/// reports it missing instead of finishing.
fn run_with_dead(
    sim: &mut Sim,
    mut pending: VecDeque<(WorkerId, accel_scheduler::Assignment)>,
    dead: &[WorkerId],
) -> Vec<Command> {
    let mut all = Vec::new();
    while let Some((w, a)) = pending.pop_front() {
        if dead.contains(&w) {
            continue;
        }
        let missing: Vec<_> = a
            .inputs
            .iter()
            .copied()
            .filter(|(_, l)| dead.contains(l))
            .collect();
        let ev = if missing.is_empty() {
            Event::TaskFinished {
                worker: w,
                task: a.task,
                nbytes: 8,
            }
        } else {
            Event::InputsMissing {
                worker: w,
                task: a.task,
                missing,
            }
        };
        let cmds = sim.step([ev]);
        pending.extend(assigned(&cmds));
        all.extend(cmds);
    }
    all
}

#[test]
fn a_job_reading_persisted_chunks_waits_while_a_lost_one_is_recomputed() {
    let mut sim = Sim::new();
    sim.worker(1, 2);
    sim.worker(2, 2);
    let start = assigned(&sim.submit(1, 1, two_stage()));
    let (outputs, _) = job_done(&run_all(&mut sim, start.into(), None)).unwrap();
    // Job 1 is kept (never fetched); job 2 takes its chunks over where they are.
    let first = assigned(&sim.submit(2, 2, reads_persisted(1)));
    assert_eq!(first.len(), 4);
    for (w, a) in &first {
        let (src, at) = outputs[0][a.task.key.chunk as usize];
        assert_eq!(a.inputs, vec![(src, at)]);
        assert_eq!(*w, at, "each runs where its chunk is kept");
    }
    // Worker 1 dies first: job 1 recomputes what it held, job 2 waits for it.
    let again = assigned(&sim.lose(1));
    assert!(
        again.iter().all(|(_, a)| a.task.job == JobId(1)),
        "{again:?}"
    );
    let mut pending: VecDeque<_> = first
        .into_iter()
        .filter(|(w, _)| *w != WorkerId(1))
        .collect();
    pending.extend(again);
    let cmds = run_with_dead(&mut sim, pending, &[WorkerId(1)]);
    let done2 = cmds
        .iter()
        .find(|c| matches!(c, Command::JobDone { job: JobId(2), .. }))
        .expect("job 2 finishes");
    let Command::JobDone { recomputed, .. } = done2 else {
        unreachable!()
    };
    assert_eq!(*recomputed, 0, "job 2 ran each of its tasks once");
    assert_eq!(
        sim.core.recomputed(JobId(1)),
        Some(outputs[0].iter().filter(|(_, w)| *w == WorkerId(1)).count() * 2)
    );
}

#[test]
fn a_job_reading_a_released_persisted_array_fails_clearly() {
    let mut sim = Sim::new();
    sim.worker(1, 1);
    let start = assigned(&sim.submit(1, 1, two_stage()));
    run_all(&mut sim, start.into(), None);
    // Job 2 waits for room on the busy worker when job 1 is released under it.
    sim.submit(3, 3, two_stage());
    sim.submit(2, 2, reads_persisted(1));
    let out = sim.step([Event::ResultsFetched { job: JobId(1) }]);
    let err = job_failed(&out).expect("job 2 fails");
    assert!(
        err.contains("persisted by job 1") && err.contains("released"),
        "{err}"
    );
    // Too late from the start: refused at submission.
    let out = sim.submit(4, 4, reads_persisted(1));
    let err = job_failed(&out).unwrap();
    assert!(
        err.contains("persisted by job 1, which was released"),
        "{err}"
    );
    assert_eq!(sim.core.job_count(), 1, "job 3 carries on");
}
