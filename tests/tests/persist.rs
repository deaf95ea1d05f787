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
    // And to the client that persisted it: another client of the same
    // cluster (which does not hold the job's key) is refused.
    let other = cluster.client().unwrap();
    let err = other.run(&[&y1]).unwrap_err().to_string();
    assert!(
        err.contains("persisted by job 1") && err.contains("key"),
        "{err}"
    );
    assert_eq!(finished(&cluster, 1), 8, "nothing ran for the refused plan");
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

#[test]
fn an_array_persisted_by_the_embedded_client_travels_to_a_cluster_as_data() {
    let cluster = Cluster::start(2).unwrap();
    cluster.wait_for_workers(2).unwrap();
    let remote = cluster.client().unwrap();
    let local = Client::local();
    let x = Rng::new(9).random(&[300, 200], vec![100, 50]).sin();
    let kept = local.persist(&x).unwrap();
    // Small (480 KB): the kept values go in the plan.
    let y = (&kept * 3.0).sum_axis(0);
    let got = remote.run(&[&y]).unwrap().outputs;
    assert_eq!(got, local.run(&[&(&x * 3.0).sum_axis(0)]).unwrap().outputs);
    // Large (8 MB): served to the workers by the client's data plane.
    let big = local
        .persist(&Rng::new(10).random(&[1_000_000], 250_000))
        .unwrap();
    let total = remote.compute::<f64>(&big.sum()).unwrap();
    let want = local.compute::<f64>(&big.sum()).unwrap();
    assert_eq!(total, want);
}
