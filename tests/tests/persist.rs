//! persist on a cluster: the chunks stay on the workers, later jobs start
//! from them (no task of the persisted computation runs again), results equal
//! the embedded client's, and dropping the last handle releases them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::Duration;

use accel::{Client, Rng};
use accel_e2e::Cluster;

/// Lines of the workers' logs saying a task of `job` finished.
fn finished(cluster: &Cluster, job: u64) -> usize {
    let tag = format!("task finished job={job} ");
    (0..2)
        .map(|k| {
            cluster
                .worker_log(k)
                .lines()
                .filter(|l| l.contains(&tag))
                .count()
        })
        .sum()
}

#[test]
fn later_jobs_start_from_persisted_chunks_and_dropping_them_frees_the_workers() {
    let cluster = Cluster::start(2).unwrap();
    cluster.wait_for_workers(2).unwrap();
    let remote = cluster.client().unwrap();
    let local = Client::local();
    let x = Rng::new(8).random(&[4_000_000], 500_000).sin().exp();
    let p = remote.persist(&x).unwrap();
    assert_eq!(
        finished(&cluster, 1),
        8,
        "the persisted job ran its 8 tasks"
    );
    let y1 = (&p * 2.0).sum();
    let y2 = (&p + 1.0).max();
    for (y, same) in [(&y1, (&x * 2.0).sum()), (&y2, (&x + 1.0).max())] {
        let run = remote.run(&[y]).unwrap();
        assert_eq!(run.outputs, local.run(&[&same]).unwrap().outputs);
        // The plan starts from the 8 kept chunks: nothing of x is computed again.
        let plan = &run.planned.plan;
        assert_eq!(plan.stages[0].kind_name(), "persisted");
        assert_eq!(plan.stages[0].task_count(), 8);
        assert!(
            plan.stages.iter().all(|s| !s.label.contains("uniform")),
            "{:?}",
            plan.stages.iter().map(|s| &s.label).collect::<Vec<_>>()
        );
    }
    assert_eq!(
        finished(&cluster, 1),
        8,
        "no task of the persisted job ran again"
    );
    // A persisted array belongs to its cluster.
    let err = local.run(&[&y1]).unwrap_err().to_string();
    assert!(err.contains("kept on a cluster"), "{err}");
    // The last handle gone, every worker drops the kept chunks.
    drop((p, y1, y2));
    cluster
        .wait_for(
            "the workers to drop the persisted job",
            Duration::from_secs(20),
            || (0..2).all(|k| cluster.worker_log(k).contains("job forgotten job=1 ")),
        )
        .unwrap();
}
