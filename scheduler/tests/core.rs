//! The scheduling core driven by scripted events, with every invariant checked
//! after each step (no sockets, no threads).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::collections::VecDeque;
use std::sync::Arc;

use accel::{DType, from_ndarray};
use accel_core::{Plan, StageId};
use accel_scheduler::{ClientId, Command, Core, Event, JobId, WorkerId};
use common::{Sim, assigned, plan_of, run_all, task, two_stage};

#[test]
fn tasks_go_where_their_inputs_are() {
    let mut sim = Sim::new();
    sim.worker(1, 2);
    sim.worker(2, 2);
    let first = assigned(&sim.submit(1, 1, two_stage()));
    assert_eq!(first.len(), 4, "four sources over two workers");
    // Assignments are batched: one Assign per worker per pass.
    let cmds = sim
        .log
        .iter()
        .filter(|c| matches!(c, Command::Assign { .. }))
        .count();
    assert_eq!(cmds, 2);
    for (w, a) in &first {
        let next = assigned(&sim.finish(w.0, a.task));
        // The map task reading this chunk lands on the worker that holds it.
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].0, *w);
        assert_eq!(next[0].1.inputs, vec![(a.task, *w)]);
    }
}

#[test]
fn workers_get_a_bounded_number_of_tasks_and_newcomers_take_the_rest() {
    let mut sim = Sim::new();
    sim.worker(1, 1);
    let x = from_ndarray(&ndarray::Array1::<f64>::zeros(100), 10);
    let got = assigned(&sim.submit(1, 1, plan_of(&(x + 1.0))));
    assert_eq!(got.len(), 2, "one running and one queued per thread");
    let more = assigned(&sim.worker(2, 3));
    assert_eq!(more.len(), 6);
    assert!(more.iter().all(|(w, _)| *w == WorkerId(2)));
}

#[test]
fn chunks_are_released_when_their_last_consumer_finishes() {
    let mut sim = Sim::new();
    sim.worker(1, 4);
    let first = assigned(&sim.submit(1, 1, two_stage()));
    let src = first[0].1.task;
    let next = assigned(&sim.finish(1, src));
    let out = sim.finish(1, next[0].1.task);
    assert!(
        out.contains(&Command::Release {
            worker: WorkerId(1),
            chunks: vec![src]
        }),
        "{out:?}"
    );
    assert!(!sim.core.held_by(WorkerId(1)).contains(&src));
}

#[test]
fn a_second_finish_of_a_chunk_a_worker_holds_does_not_release_it() {
    let mut sim = Sim::new();
    sim.worker(1, 4);
    let first = assigned(&sim.submit(1, 1, two_stage()));
    let src = first[0].1.task;
    let next = assigned(&sim.finish(1, src));
    assert_eq!(next.len(), 1);
    // The same task finishes again on the same worker (it ran twice there):
    // its chunk replaced the first one, which the job counts on.
    let out = sim.finish(1, src);
    assert!(
        !out.iter()
            .any(|c| matches!(c, Command::Release { chunks, .. } if chunks.contains(&src))),
        "{out:?}"
    );
    assert!(sim.core.held_by(WorkerId(1)).contains(&src));
    // Another worker's stale finish of it is released there.
    sim.worker(2, 4);
    let out = sim.finish(2, src);
    assert!(
        out.contains(&Command::Release {
            worker: WorkerId(2),
            chunks: vec![src]
        }),
        "{out:?}"
    );
}

#[test]
fn a_whole_job_runs_and_reports_where_its_outputs_are() {
    let mut sim = Sim::new();
    sim.worker(1, 1);
    sim.worker(2, 1);
    let x = accel::arange(1000, 100).astype(DType::F64);
    let plan = plan_of(&(&x.sum() + &x));
    let start = assigned(&sim.submit(7, 3, plan.clone()));
    let cmds = run_all(&mut sim, start.into(), None);
    let done: Vec<_> = cmds
        .iter()
        .filter(|c| matches!(c, Command::JobDone { .. }))
        .collect();
    assert_eq!(done.len(), 1);
    let Command::JobDone {
        job,
        client,
        outputs,
        recomputed,
    } = done[0]
    else {
        unreachable!()
    };
    assert_eq!((*job, *client, *recomputed), (JobId(7), ClientId(3), 0));
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].len(), 10, "ten output chunks, all located");
    // Only the outputs are still held; fetching them releases everything.
    let held: usize = [1, 2]
        .iter()
        .map(|w| sim.core.held_by(WorkerId(*w)).len())
        .sum();
    assert_eq!(held, 10);
    sim.step([Event::ResultsFetched { job: JobId(7) }]);
    assert_eq!(sim.core.job_count(), 0);
    assert!(sim.core.held_by(WorkerId(1)).is_empty() && sim.core.held_by(WorkerId(2)).is_empty());
}

#[test]
fn one_jobs_failure_does_not_touch_another() {
    let mut sim = Sim::new();
    sim.worker(1, 2);
    let mut pending: VecDeque<_> = assigned(&sim.submit(1, 1, two_stage())).into();
    pending.extend(assigned(&sim.submit(2, 2, two_stage())));
    let cmds = run_all(&mut sim, pending, Some(task(1, 1, 2)));
    let failed: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::JobFailed { job, error, .. } => Some((*job, error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, JobId(1));
    assert!(
        failed[0].1.contains("chunk 2")
            && failed[0].1.contains("worker 1")
            && failed[0].1.contains("boom"),
        "{}",
        failed[0].1
    );
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::JobDone { job: JobId(2), .. }))
    );
}

#[test]
fn a_lost_worker_gives_its_running_tasks_back() {
    let mut sim = Sim::new();
    sim.worker(1, 2);
    let first = assigned(&sim.submit(1, 1, two_stage()));
    assert!(first.iter().all(|(w, _)| *w == WorkerId(1)));
    sim.worker(2, 2);
    // Worker 1 dies before finishing anything: its four tasks go to worker 2.
    let moved = assigned(&sim.step([Event::WorkerLost {
        worker: WorkerId(1),
    }]));
    assert_eq!(moved.len(), 4);
    assert!(moved.iter().all(|(w, _)| *w == WorkerId(2)));
    // A late result from the dead worker is discarded.
    let late = sim.step([Event::TaskFinished {
        worker: WorkerId(1),
        task: first[0].1.task,
        nbytes: 8,
    }]);
    assert!(
        late.iter().all(|c| matches!(c, Command::Release { .. })),
        "{late:?}"
    );
    let cmds = run_all(&mut sim, moved.into(), None);
    assert!(cmds.iter().any(|c| matches!(c, Command::JobDone { .. })));
}

#[test]
fn a_client_that_leaves_takes_its_jobs_and_chunks_with_it() {
    let mut sim = Sim::new();
    sim.worker(1, 4);
    let mine = assigned(&sim.submit(1, 1, two_stage()));
    let theirs = assigned(&sim.submit(2, 2, two_stage()));
    let a = mine[0].1.task;
    sim.finish(1, a);
    let out = sim.step([Event::ClientGone {
        client: ClientId(1),
    }]);
    assert!(
        out.contains(&Command::JobForgotten { job: JobId(1) }),
        "workers drop the job's plan and chunks: {out:?}"
    );
    assert!(sim.core.held_by(WorkerId(1)).is_empty());
    assert!(
        !out.iter().any(|c| matches!(c, Command::JobFailed { .. })),
        "nobody to tell"
    );
    assert_eq!(sim.core.job_count(), 1);
    let cmds = run_all(&mut sim, theirs.into(), None);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::JobDone { job: JobId(2), .. }))
    );
}

#[test]
fn malformed_plans_and_duplicate_jobs_are_refused() {
    let mut sim = Sim::new();
    let bad = Arc::new(Plan {
        stages: vec![],
        outputs: vec![StageId(3)],
        sinks: vec![],
    });
    let out = sim.submit(1, 1, bad);
    assert!(
        matches!(&out[0], Command::JobFailed { error, .. } if error.contains("invalid plan")),
        "{out:?}"
    );
    sim.submit(2, 1, two_stage());
    let out = sim.submit(2, 1, two_stage());
    assert!(
        matches!(&out[0], Command::JobFailed { error, .. } if error.contains("already exists")),
        "{out:?}"
    );
}

#[test]
fn idle_workers_steal_queued_tasks_from_busy_ones() {
    let mut sim = Sim {
        core: Core::with_queue_depth(8),
        log: Vec::new(),
    };
    sim.worker(1, 1);
    let x = from_ndarray(&ndarray::Array1::<f64>::zeros(60), 10);
    let first = assigned(&sim.submit(1, 1, plan_of(&(x + 1.0))));
    // Worker 1 queued everything (6 sources; their maps wait for inputs).
    assert_eq!(first.len(), 6);
    // An idle newcomer finds nothing ready, so the scheduler asks worker 1 to give some back.
    let out = sim.worker(2, 2);
    let Some(Command::Steal { worker, id, tasks }) = out
        .iter()
        .find(|c| matches!(c, Command::Steal { .. }))
        .cloned()
    else {
        panic!("no steal in {out:?}");
    };
    assert_eq!(worker, WorkerId(1));
    assert_eq!(tasks.len(), 2, "one per idle thread");
    // Worker 1 had started one of them already; the other moves to worker 2.
    let out = sim.step([Event::StealReply {
        worker: WorkerId(1),
        id,
        stolen: vec![tasks[0]],
        refused: vec![tasks[1]],
    }]);
    let moved = assigned(&out);
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].0, WorkerId(2));
    assert_eq!(moved[0].1.task, tasks[0]);
    // A late report for a task that was given back is ignored.
    let late = sim.step([Event::TaskFinished {
        worker: WorkerId(1),
        task: tasks[0],
        nbytes: 8,
    }]);
    assert!(
        late.iter()
            .all(|c| matches!(c, Command::Release { .. } | Command::Steal { .. })),
        "{late:?}"
    );
    // Everything still completes.
    let mut pending: VecDeque<_> = first
        .into_iter()
        .filter(|(_, a)| a.task != tasks[0])
        .collect();
    pending.extend(moved);
    let cmds = run_all(&mut sim, pending, None);
    assert!(cmds.iter().any(|c| matches!(c, Command::JobDone { .. })));
}

#[test]
fn large_root_tasks_are_sent_no_faster_than_their_consumers_run() {
    // 10 source chunks of 2 MiB, each read by a map: with a deep queue, all
    // 10 would be sent at once and their chunks held together.
    let plan = || {
        let x = from_ndarray(&ndarray::Array1::<f64>::zeros(10 << 18), 1 << 18);
        plan_of(&(x + 1.0))
    };
    let mut sim = Sim::with(Core::with_queue_depth(64));
    sim.worker(1, 1);
    let first = assigned(&sim.submit(1, 1, plan()));
    assert_eq!(first.len(), 2, "ceil(1 thread × 1.1) roots in flight");
    let mut pending: VecDeque<_> = first.into();
    let mut most = 0;
    let mut done = false;
    while let Some((w, a)) = pending.pop_front() {
        let cmds = sim.finish(w.0, a.task);
        done |= cmds.iter().any(|c| matches!(c, Command::JobDone { .. }));
        pending.extend(assigned(&cmds));
        let held = sim.core.held_by(WorkerId(1));
        most = most.max(held.iter().filter(|t| t.key.stage == StageId(0)).count());
    }
    assert!(done);
    assert!(most <= 2, "{most} source chunks held at once");
    // Without pacing, the same job sends every root at once.
    let mut sim = Sim::with(Core::with_config(accel_scheduler::CoreConfig {
        queue_depth: 64,
        worker_saturation: f64::INFINITY,
        ..Default::default()
    }));
    sim.worker(1, 1);
    assert_eq!(assigned(&sim.submit(1, 1, plan())).len(), 10);
}

#[test]
fn a_plan_whose_task_cannot_fit_on_any_worker_is_refused_at_submission() {
    let mut sim = Sim::new();
    sim.step([Event::WorkerJoined {
        worker: WorkerId(1),
        name: "w1".into(),
        nthreads: 1,
        memory_limit: Some(100 << 20),
        functions: Vec::new(),
        gpus: 0,
    }]);
    // 32 MiB chunks fit; one 800 MiB chunk does not.
    let small = accel::zeros(&[100 << 20], DType::F64, vec![4 << 20]) + 1.0;
    assert!(!assigned(&sim.submit(1, 1, plan_of(&small))).is_empty());
    let big = accel::zeros(&[100 << 20], DType::F64, vec![100 << 20]) + 1.0;
    let out = sim.submit(2, 1, plan_of(&big));
    let Some(Command::JobFailed { error, .. }) = out.first() else {
        panic!("{out:?}")
    };
    assert!(
        error.contains("stage 0")
            && error.contains("800.0 MiB")
            && error.contains("100.0 MiB")
            && error.contains("any worker's memory limit")
            && error.contains("chunks of about"),
        "{error}"
    );
    assert_eq!(sim.core.job_count(), 1);
}

/// Remote inputs of every task of a tree reduction over 512 one-element
/// sources on two workers, run to the end (FIFO), and the task count.
fn remote_reads_of_a_tree_reduction(queue_depth: usize) -> (usize, usize) {
    let mut sim = Sim::with(Core::with_queue_depth(queue_depth));
    sim.worker(1, 1);
    sim.worker(2, 1);
    let expr = (accel::arange(512, 1).astype(DType::F64) + 1.0).sum();
    let first = assigned(&sim.submit(1, 1, plan_of(&expr)));
    let mut pending: VecDeque<_> = first.into_iter().collect();
    let (mut remote, mut tasks) = (0, 0);
    while let Some((w, a)) = pending.pop_front() {
        tasks += 1;
        remote += a.inputs.iter().filter(|(_, at)| *at != w).count();
        let cmds = sim.finish(w.0, a.task);
        pending.extend(assigned(&cmds));
    }
    (remote, tasks)
}

#[test]
fn sources_of_one_consumer_go_to_one_worker_when_work_is_plentiful() {
    // 512 partial sums, 32 + 2 + 1 combines of 16 (or fewer) inputs.
    for depth in [0, 8, 64] {
        let (remote, tasks) = remote_reads_of_a_tree_reduction(depth);
        assert_eq!(tasks, 512 + 32 + 2 + 1);
        // Spread by load alone, about half of the 544 inputs of the combines
        // would be on the other worker; grouped, a first-level combine reads
        // at most the few siblings that ran elsewhere.
        assert!(remote <= 40, "queue depth {depth}: {remote} remote inputs");
    }
}

#[test]
fn a_few_sources_are_spread_over_idle_workers_not_grouped() {
    let mut sim = Sim::with(Core::with_queue_depth(64));
    sim.worker(1, 1);
    sim.worker(2, 1);
    // 16 sources of one consumer, 132 free slots: both workers get 8.
    let expr = (accel::arange(16, 1).astype(DType::F64) + 1.0).sum();
    let first = assigned(&sim.submit(1, 1, plan_of(&expr)));
    assert_eq!(first.len(), 16);
    for w in [1, 2] {
        let on = first.iter().filter(|(at, _)| *at == WorkerId(w)).count();
        assert_eq!(on, 8, "worker {w}");
    }
}

#[test]
fn kernels_with_a_gpu_form_go_to_the_gpu_worker_first_and_overflow_to_cpus() {
    let mut sim = Sim::with(Core::with_queue_depth(0));
    sim.worker(1, 4); // 8 slots
    sim.gpu_worker(2, 2, 1); // 4 slots
    // 12 fused kernels (generated range, arithmetic): the GPU worker's 4
    // slots fill first, the CPU worker takes the other 8.
    let expr = accel::arange(12, 1).astype(DType::F64) * 2.0 + 1.0;
    let first = assigned(&sim.submit(1, 1, plan_of(&expr)));
    let on =
        |w: u32, list: &[(WorkerId, _)]| list.iter().filter(|(at, _)| *at == WorkerId(w)).count();
    assert_eq!((on(2, &first), on(1, &first)), (4, 8));
    // As the GPU worker finishes, its freed slots take what is still ready.
    let expr = accel::arange(20, 1).astype(DType::F64) * 2.0 + 1.0;
    let second = assigned(&sim.submit(2, 1, plan_of(&expr)));
    assert!(second.is_empty(), "all 12 slots are taken");
    let done: Vec<accel_scheduler::TaskRef> = first
        .iter()
        .filter(|(at, _)| *at == WorkerId(2))
        .map(|(_, a)| a.task)
        .collect();
    let next: Vec<_> = done
        .into_iter()
        .flat_map(|t| assigned(&sim.finish(2, t)))
        .collect();
    assert_eq!((on(2, &next), on(1, &next)), (4, 0));
    // Two idle workers: two kernels with a GPU form both go to the GPU
    // worker; two that run no kernel (the chunks of a host array) are
    // spread by load, one each.
    for (expr, want) in [
        (accel::arange(2, 1).astype(DType::F64) * 2.0, (2, 0)),
        (from_ndarray(&ndarray::Array1::<f64>::zeros(2), 1), (1, 1)),
    ] {
        let mut sim = Sim::with(Core::with_queue_depth(0));
        sim.worker(1, 4);
        sim.gpu_worker(2, 2, 1);
        let placed = assigned(&sim.submit(1, 1, plan_of(&expr)));
        assert_eq!((on(2, &placed), on(1, &placed)), want);
    }
}

/// A few hundred bytes of plan whose every task reads every chunk of the
/// stage before (a reshape across the chunking, 9,000 × 9,000 chunks'
/// worth of dependencies) is refused with a clear error instead of taking
/// the scheduler's memory; the scheduler carries on.
#[test]
fn a_plan_whose_tasks_read_everything_is_refused_not_built() {
    use accel_proto::pb;
    let n: u64 = 9000;
    let axis = |size, count| pb::Axis {
        sizes: vec![size],
        counts: vec![count],
    };
    let meta = |rows, cols| pb::Meta {
        shape: vec![n, n],
        dtype: pb::DType::F64 as i32,
        chunks: vec![rows, cols],
    };
    let stage = |meta, inputs, kind| pb::Stage {
        meta: Some(meta),
        inputs,
        label: String::new(),
        kind: Some(kind),
    };
    let wire = pb::Plan {
        stages: vec![
            stage(
                meta(axis(1, n), axis(n, 1)),
                vec![],
                pb::stage::Kind::Persisted(pb::Persisted { job: 1, stage: 0 }),
            ),
            stage(
                meta(axis(n, 1), axis(1, n)),
                vec![0],
                pb::stage::Kind::Reshape(true),
            ),
        ],
        outputs: vec![1],
        sinks: vec![],
    };
    let plan = Arc::new(accel_proto::convert::plan_from(wire).unwrap());
    let mut sim = Sim::new();
    sim.worker(1, 2);
    let error = sim
        .submit(2, 1, plan)
        .into_iter()
        .find_map(|c| match c {
            Command::JobFailed { error, .. } => Some(error),
            _ => None,
        })
        .unwrap();
    assert!(
        error.contains("read more than 67108864 chunks") && error.contains("reads 9000"),
        "{error}"
    );
    let first = assigned(&sim.submit(3, 1, two_stage()));
    assert_eq!(first.len(), 4, "the next job's four sources run");
}
