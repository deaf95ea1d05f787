//! Placement of map_blocks tasks: only on workers offering the function they
//! call; a job calling a function no attached worker offers fails with a
//! clear error (at submission, or when the last such worker leaves) instead of
//! waiting forever. Invariants are checked after every step.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::collections::VecDeque;
use std::sync::Arc;

use accel::{Blocks, Client, Functions, MapBlocks, from_ndarray};
use accel_core::Plan;
use accel_scheduler::{Command, Event, WorkerId};
use common::{Sim, assigned, run_all};

/// x (4 source chunks) → `name`(x + 1) (4 source, 4 map, 4 map_blocks tasks).
fn calling(name: &str) -> Arc<Plan> {
    let x = from_ndarray(&ndarray::Array1::<f64>::zeros(40), 10);
    let y = MapBlocks::named(name).apply(&[&(x + 1.0)]);
    let functions = Functions::new().with(name, |b: &Blocks<'_>| {
        b.input::<f64>(0).map(|v| v.to_owned())
    });
    Arc::new(
        Client::local()
            .with_functions(functions)
            .plan(&[&y])
            .unwrap()
            .plan,
    )
}

fn failure(cmds: &[Command]) -> Option<String> {
    cmds.iter().find_map(|c| match c {
        Command::JobFailed { error, .. } => Some(error.clone()),
        _ => None,
    })
}

#[test]
fn map_blocks_tasks_run_only_where_their_function_is() {
    let mut sim = Sim::new();
    sim.worker(1, 2);
    sim.worker_offering(2, 1, &["f"]);
    let cmds = sim.submit(1, 1, calling("f"));
    let all = run_all(&mut sim, assigned(&cmds).into_iter().collect(), None);
    let everything: Vec<_> = sim
        .log
        .iter()
        .flat_map(|c| assigned(std::slice::from_ref(c)))
        .collect();
    let blocks: Vec<_> = everything
        .iter()
        .filter(|(_, a)| a.task.key.stage.0 == 2)
        .collect();
    assert_eq!(blocks.len(), 4);
    assert!(blocks.iter().all(|(w, _)| *w == WorkerId(2)), "{blocks:?}");
    // The plain worker still did other work.
    assert!(everything.iter().any(|(w, _)| *w == WorkerId(1)));
    assert!(all.iter().any(|c| matches!(c, Command::JobDone { .. })));
}

#[test]
fn functions_nobody_offers_fail_the_job_instead_of_waiting() {
    let mut sim = Sim::new();
    // No worker yet: the job waits, as any job does.
    let cmds = sim.submit(1, 1, calling("g"));
    assert_eq!(failure(&cmds), None);
    // A worker without it attaches: now it can never run.
    let cmds = sim.worker(1, 1);
    let pending: VecDeque<_> = assigned(&cmds).into_iter().collect();
    let all = run_all(&mut sim, pending, None);
    let err = failure(&all).expect("the job fails");
    assert!(
        err.contains("no worker offers the map_blocks function 'g'"),
        "{err}"
    );
    // Submitted when no attached worker offers it: refused at once.
    let cmds = sim.submit(2, 1, calling("g"));
    let err = failure(&cmds).expect("refused");
    assert!(err.contains("'g'"), "{err}");

    // The only worker offering it leaves while its job runs.
    sim.worker_offering(2, 1, &["h"]);
    let cmds = sim.submit(3, 1, calling("h"));
    let first = assigned(&cmds);
    assert!(!first.is_empty());
    let lost = sim.step([Event::WorkerLost {
        worker: WorkerId(2),
    }]);
    let mut pending: VecDeque<_> = first
        .into_iter()
        .filter(|(w, _)| *w == WorkerId(1))
        .chain(assigned(&lost))
        .collect();
    let mut log = lost;
    while let Some((w, a)) = pending.pop_front() {
        let cmds = sim.step([Event::TaskFinished {
            worker: w,
            task: a.task,
            nbytes: 8,
        }]);
        pending.extend(assigned(&cmds));
        log.extend(cmds);
    }
    let err = failure(&log).expect("the job fails once its function is gone");
    assert!(err.contains("'h'"), "{err}");
    assert_eq!(sim.core.job_count(), 0);
}
